// GET /metrics tells the truth as it changes: two replicas (preloaded like `npm start`, no
// exporter), events accepted by A and delivered by B, and each metric read before and after the
// thing it counts.
import t from 'tap';
import { PUBLISH_API_KEY, waitOpen } from '../helpers/fleet.js';
import { getJson, postJson } from '../helpers/http.js';
import { openSse } from '../helpers/sse-client.js';
import type { Replica } from '../helpers/replica.js';
import { waitFor } from '../helpers/wait-for.js';
import { scrape } from './prometheus-text.js';
import { startTelemetryFleet } from './telemetry-fleet.js';

const PROBE_INTERVAL_MS = 200;
const fleet = await startTelemetryFleet(t, 2, () => ({
  // The smallest bound the config allows: the slow client is cut after the kernel's buffers fill.
  STREAM_MAX_BUFFERED_BYTES: '1024',
  UNSUBSCRIBE_DEBOUNCE_MS: '100',
  PROBE_INTERVAL_MS: String(PROBE_INTERVAL_MS),
}));
const [a, b] = fleet.replicas as [Replica, Replica];

/** Resolves once `read` of B's (or A's) latest scrape satisfies `ok`; returns that reading. */
async function until(
  replica: Replica,
  label: string,
  read: (s: Awaited<ReturnType<typeof scrape>>) => number | undefined,
  ok: (v: number) => boolean,
): Promise<number> {
  return waitFor(
    async () => {
      const v = read(await scrape(replica));
      return v !== undefined && ok(v) ? { v } : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 50, label },
  ).then(({ v }) => v);
}

t.test('GET /metrics is Prometheus text with help and type for every listed metric', async (t) => {
  const s = await scrape(b);
  t.match(s.contentType, /^text\/plain; version=0\.0\.4/);
  for (const [name, type] of [
    ['switchboard_open_streams', 'gauge'],
    ['switchboard_ready', 'gauge'],
    ['switchboard_subscribed_channels', 'gauge'],
    ['switchboard_events_accepted_total', 'counter'],
    ['switchboard_events_zero_receivers_total', 'counter'],
    ['switchboard_events_delivered_total', 'counter'],
    ['switchboard_delivery_latency_seconds', 'histogram'],
    ['switchboard_replayed_events_total', 'counter'],
    ['switchboard_resets_total', 'counter'],
    ['switchboard_streams_ended_total', 'counter'],
    ['switchboard_backplane_reconnects_total', 'counter'],
    ['switchboard_probe_age_seconds', 'gauge'],
    ['switchboard_shard_probe_age_seconds', 'gauge'],
    ['switchboard_duplicates_total', 'counter'],
    ['switchboard_auth_failures_total', 'counter'],
  ] as const) {
    t.match(s.text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} has help`);
    t.match(s.text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${name} is a ${type}`);
  }
});

t.test('open streams and subscribed channels follow streams opening and closing', async (t) => {
  const before = await scrape(b);
  const streams = before.count('switchboard_open_streams');
  const channels = before.count('switchboard_subscribed_channels');
  const first = await waitOpen(await fleet.stream(b, 'm-open-1'), 'first');
  const second = await waitOpen(await fleet.stream(b, 'm-open-2', { topics: ['m-news'] }), 'second');
  t.equal((await scrape(b)).value('switchboard_open_streams'), streams + 2, 'two more open streams');
  t.equal((await scrape(b)).value('switchboard_subscribed_channels'), channels + 3, 'three more channels (two users and a topic)');
  second.close();
  await until(
    b,
    'one stream closed',
    (s) => s.value('switchboard_open_streams'),
    (v) => v === streams + 1,
  );
  await until(
    b,
    'its two channels released after the debounce',
    (s) => s.value('switchboard_subscribed_channels'),
    (v) => v === channels + 1,
  );
  first.close();
  await until(
    b,
    'both closed',
    (s) => s.value('switchboard_open_streams'),
    (v) => v === streams,
  );
  await until(
    b,
    'every channel released',
    (s) => s.value('switchboard_subscribed_channels'),
    (v) => v === channels,
  );
  t.pass('the gauges went back down');
});

t.test('events accepted by route, delivered, latency, and publishes nobody received', async (t) => {
  const stream = await waitOpen(await fleet.stream(b, 'm-flow'), 'stream on B');
  t.teardown(() => stream.close());
  const beforeA = await scrape(a);
  const beforeB = await scrape(b);

  t.equal((await fleet.publish(a, 'm-flow', { n: 1 })).json.receivers, 1);
  await stream.waitForEvents(1);
  t.equal((await fleet.publish(a, 'm-nobody', { n: 2 })).json.receivers, 0, 'nobody holds a stream of m-nobody');
  const topic = await postJson(`${a.url}/v1/topics/m-empty/events`, { data: { n: 3 } }, { bearer: PUBLISH_API_KEY });
  t.equal(topic.json.receivers, 0);

  const afterA = await scrape(a);
  const delta = (name: string, labels: Record<string, string>) => afterA.count(name, labels) - beforeA.count(name, labels);
  t.equal(delta('switchboard_events_accepted_total', { route: 'user' }), 2, 'A accepted two user events');
  t.equal(delta('switchboard_events_accepted_total', { route: 'topic' }), 1, 'and one topic event');
  t.equal(delta('switchboard_events_zero_receivers_total', { route: 'user' }), 1, 'one user event reached no replica');
  t.equal(delta('switchboard_events_zero_receivers_total', { route: 'topic' }), 1, 'nor did the topic event');

  const afterB = await until(
    b,
    'B counted the delivery',
    (s) => s.value('switchboard_events_delivered_total'),
    (v) => v === beforeB.count('switchboard_events_delivered_total') + 1,
  );
  t.ok(afterB, 'B delivered one event to one stream');
  const latency = await scrape(b);
  t.equal(
    latency.count('switchboard_delivery_latency_seconds_count') - beforeB.count('switchboard_delivery_latency_seconds_count'),
    1,
    'one latency observation',
  );
  t.ok(latency.count('switchboard_delivery_latency_seconds_sum') > beforeB.count('switchboard_delivery_latency_seconds_sum'), 'with a positive latency');
  t.equal(latency.value('switchboard_delivery_latency_seconds_bucket', { le: '+Inf' }), latency.value('switchboard_delivery_latency_seconds_count'));
  t.equal(
    (await scrape(a)).count('switchboard_events_delivered_total'),
    beforeA.count('switchboard_events_delivered_total'),
    'A, holding no stream, delivered nothing',
  );
});

t.test('a retried callback is a dedupe hit, not a second accepted event', async (t) => {
  const created = await postJson(`${a.url}/v1/jobs`, { userId: 'm-job' }, { bearer: PUBLISH_API_KEY });
  const url = `${a.url}/v1/callbacks/${created.json.correlationId}`;
  const before = await scrape(a);
  t.equal((await postJson(url, { ok: true }, { headers: { 'idempotency-key': 'k-1' } })).json.duplicate, false);
  t.equal((await postJson(url, { ok: true }, { headers: { 'idempotency-key': 'k-1' } })).json.duplicate, true);
  const after = await scrape(a);
  t.equal(
    after.count('switchboard_events_accepted_total', { route: 'callback' }) - before.count('switchboard_events_accepted_total', { route: 'callback' }),
    1,
  );
  t.equal(
    after.count('switchboard_duplicates_total', { route: 'callback' }) - before.count('switchboard_duplicates_total', { route: 'callback' }),
    1,
    'callback dedupe hits: duplicates{route="callback"}',
  );
});

t.test('auth failures are counted by reason', async (t) => {
  const before = await scrape(b);
  const aliceToken = await fleet.token('m-alice');
  t.equal((await openSse(`${b.url}/stream/m-alice`)).status, 401);
  t.equal((await openSse(`${b.url}/stream/m-alice?token=not-a-jwt`)).status, 401);
  t.equal((await openSse(`${b.url}/stream/m-bob?token=${aliceToken}`)).status, 403);
  t.equal((await postJson(`${b.url}/v1/users/m-alice/events`, { data: 1 })).status, 401);
  t.equal((await postJson(`${b.url}/v1/users/m-alice/events`, { data: 1 }, { bearer: 'wrong-key-0123456789abcdef' })).status, 401);
  const after = await scrape(b);
  for (const reason of ['missing_token', 'invalid_token', 'token_user_mismatch', 'missing_api_key', 'invalid_api_key']) {
    t.equal(after.count('switchboard_auth_failures_total', { reason }) - before.count('switchboard_auth_failures_total', { reason }), 1, reason);
  }
});

t.test('replayed events and resets', async (t) => {
  const stream = await waitOpen(await fleet.stream(b, 'm-replay'), 'stream');
  t.teardown(() => stream.close());
  await fleet.publish(a, 'm-replay', { n: 1 });
  await fleet.publish(a, 'm-replay', { n: 2 });
  const [first] = await stream.waitForEvents(2);
  const before = await scrape(b);
  const resumed = await waitOpen(await fleet.stream(b, 'm-replay', { query: `&lastEventId=${encodeURIComponent(first!.lastEventId)}` }), 'resumed');
  t.teardown(() => resumed.close());
  await resumed.waitForEvents(1);
  const reset = await waitOpen(await fleet.stream(b, 'm-replay', { query: '&lastEventId=not-a-cursor' }), 'reset');
  t.teardown(() => reset.close());
  await reset.waitFor((c) => c.events.some((e) => e.type === 'reset'), 5000, 'reset event');
  const after = await scrape(b);
  t.equal(after.count('switchboard_replayed_events_total') - before.count('switchboard_replayed_events_total'), 1, 'one event replayed');
  t.equal(
    after.count('switchboard_resets_total', { cause: 'invalid_cursor' }) - before.count('switchboard_resets_total', { cause: 'invalid_cursor' }),
    1,
    'one reset, by cause',
  );
});

t.test('a client that stops reading is counted as a slow-client drop', async (t) => {
  const before = (await scrape(b)).count('switchboard_streams_ended_total', { reason: 'slow_client' });
  const slow = await waitOpen(await fleet.stream(b, 'm-slow'), 'slow');
  t.teardown(() => slow.close());
  slow.pauseReading();
  const pad = 'x'.repeat(32 * 1024);
  const mark = b.logMark();
  let cut = false;
  const cutLogged = b.waitForLog((e) => e.reason === 'slow_client' && e.userId === 'm-slow', 60_000, { since: mark }).then(() => (cut = true));
  // Loopback buffers hold a few MB before the replica's own queue grows; ~19 MB at most.
  for (let n = 0; n < 600 && !cut; n++) await fleet.publish(a, 'm-slow', { n, pad });
  await cutLogged;
  const after = await until(
    b,
    'slow_client counted',
    (s) => s.count('switchboard_streams_ended_total', { reason: 'slow_client' }),
    (v) => v >= before + 1,
  );
  t.equal(after, before + 1, 'one stream ended for not reading');
});

t.test('a subscriber reconnect is counted, and the probe age stays small', async (t) => {
  const age = await until(
    b,
    'probe heard',
    (s) => s.value('switchboard_probe_age_seconds'),
    (v) => Number.isFinite(v),
  );
  t.ok(age < (3 * PROBE_INTERVAL_MS) / 1000 + 1, `probe age ${age} s`);
  const shardAge = (await scrape(b)).value('switchboard_shard_probe_age_seconds', { shard: 'redis' });
  t.ok(shardAge !== undefined && shardAge < (3 * PROBE_INTERVAL_MS) / 1000 + 1, `the one Redis's probe age, per shard: ${shardAge} s`);
  const before = (await scrape(b)).count('switchboard_backplane_reconnects_total');
  await fleet.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await until(
    b,
    'reconnect counted',
    (s) => s.value('switchboard_backplane_reconnects_total'),
    (v) => v === before + 1,
  );
  await waitFor(async () => (await getJson(`${b.url}/readyz`)).status === 200, { timeoutMs: 10_000, label: 'B ready again' });
  const fresh = await until(
    b,
    'probe heard again',
    (s) => s.value('switchboard_probe_age_seconds'),
    (v) => v < (3 * PROBE_INTERVAL_MS) / 1000,
  );
  t.ok(fresh >= 0, `probe age back to ${fresh} s`);
});

// Last: it drains A. Three open streams are ended in three batches spread over DRAIN_MS / 2
// (5 s): the replica serves /metrics in between, long enough to read the gauge while /readyz says 503.
t.test('switchboard_ready is 1 while /readyz answers 200, and 0 from the moment SIGTERM starts the drain', async (t) => {
  t.equal((await getJson(`${a.url}/readyz`)).status, 200, 'A is ready');
  t.equal((await scrape(a)).value('switchboard_ready'), 1, 'switchboard_ready 1');
  const streams = await Promise.all(['m-ready-1', 'm-ready-2', 'm-ready-3'].map(async (user) => waitOpen(await fleet.stream(a, user), user)));
  t.teardown(() => streams.forEach((stream) => stream.close()));
  const exited = a.kill('SIGTERM');
  await waitFor(async () => (await getJson(`${a.url}/readyz`, { timeoutMs: 1000 })).status === 503, { timeoutMs: 5000, label: 'A unready' });
  t.equal((await scrape(a)).value('switchboard_ready'), 0, 'switchboard_ready 0 while draining');
  t.same(await exited, { code: 0, signal: null }, 'A exits 0 after its drain');
});
