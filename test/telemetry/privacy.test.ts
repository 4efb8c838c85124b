// No token and no payload text in any log line or exported span. Two traced replicas at the most
// verbose log level take a run that puts tokens in query strings and headers and distinctive
// strings in payloads (accepted, delivered, replayed, refused), then stop with SIGTERM so every
// span is flushed. Then everything they printed and exported is searched.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { PUBLISH_API_KEY, waitOpen } from '../helpers/fleet.js';
import { getJson, postJson, rawRequest } from '../helpers/http.js';
import type { Replica } from '../helpers/replica.js';
import { openSse } from '../helpers/sse-client.js';
import { startOtlpReceiver, tracingEnv } from './otlp-receiver.js';
import { startTelemetryFleet } from './telemetry-fleet.js';

const canary = (what: string): string => `${what}-canary-${randomBytes(6).toString('hex')}`;
const PAYLOAD = canary('payload');
const CALLBACK_PAYLOAD = canary('callback');
const BAD_JSON = canary('badjson');
const BIG = canary('big');
const QUERY_TOKEN = canary('querytoken');
const WRONG_KEY = canary('wrongkey');

t.test('tokens and payloads never reach a log line or a span', async (t) => {
  const receiver = await startOtlpReceiver(t);
  const fleet = await startTelemetryFleet(t, 2, () => ({ ...tracingEnv(receiver), LOG_LEVEL: 'trace', MAX_BODY_BYTES: '1024' }));
  const [a, b] = fleet.replicas as [Replica, Replica];

  // Tokens: in the query string, in the query string under a percent-encoded name, in a header.
  const tokens = [await fleet.token('priv'), await fleet.token('priv'), await fleet.token('priv')];
  const [inQuery, inEncodedQuery, inHeader] = tokens as [string, string, string];
  const streams = [
    await openSse(`${b.url}/stream/priv?token=${inQuery}`),
    await openSse(`${b.url}/stream/priv?%74oken=${inEncodedQuery}`),
    await openSse(`${a.url}/stream/priv`, { headers: { authorization: `Bearer ${inHeader}` } }),
  ];
  for (const stream of streams) {
    t.teardown(() => stream.close());
    await waitOpen(stream, 'stream');
  }
  t.equal((await openSse(`${b.url}/stream/priv?token=${QUERY_TOKEN}`)).status, 401, 'a bad token in the query is refused');

  // Payloads: published, delivered on both replicas, then replayed from history.
  const published = await fleet.publish(a, 'priv', { secret: PAYLOAD });
  t.equal(published.json.receivers, 2);
  for (const stream of streams) await stream.waitFor((c) => c.events.some((e) => e.data.includes(PAYLOAD)), 5000, 'payload delivered');
  const created = await postJson(`${a.url}/v1/jobs`, { userId: 'priv' }, { bearer: PUBLISH_API_KEY });
  const callbackUrl = `${a.url}/v1/callbacks/${created.json.correlationId}`;
  t.equal((await postJson(`${callbackUrl}?token=${QUERY_TOKEN}`, { secret: CALLBACK_PAYLOAD }, { headers: { 'idempotency-key': 'once' } })).status, 202);
  t.equal((await postJson(callbackUrl, { secret: CALLBACK_PAYLOAD }, { headers: { 'idempotency-key': 'once' } })).json.duplicate, true);
  for (const stream of streams) await stream.waitFor((c) => c.events.some((e) => e.data.includes(CALLBACK_PAYLOAD)), 5000, 'callback delivered');
  const resumed = await openSse(`${b.url}/stream/priv?token=${inQuery}&lastEventId=${encodeURIComponent(published.json.id)}`);
  t.teardown(() => resumed.close());
  await resumed.waitFor((c) => c.events.some((e) => e.data.includes(CALLBACK_PAYLOAD)), 5000, 'callback replayed');

  // Refusals that carry secrets or payload text.
  t.equal((await rawRequest({ url: callbackUrl, headers: { 'content-type': 'application/json' }, body: `{"secret": ${BAD_JSON}}` })).status, 400);
  t.equal((await postJson(`${a.url}/v1/users/priv/events`, { data: BIG.repeat(100) }, { bearer: PUBLISH_API_KEY })).status, 413);
  t.equal((await postJson(`${a.url}/v1/users/priv/events`, { data: PAYLOAD }, { bearer: WRONG_KEY })).status, 401);
  t.equal((await getJson(`${a.url}/v1/jobs/${created.json.correlationId}`, { bearer: inHeader })).status, 200, "job read with the user's token");
  t.equal((await getJson(`${a.url}/nowhere?token=${QUERY_TOKEN}`)).status, 404);

  // Stop both: SIGTERM flushes whatever spans are still batched.
  for (const stream of [...streams, resumed]) stream.close();
  t.same(await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]), [
    { code: 0, signal: null },
    { code: 0, signal: null },
  ]);

  const spans = receiver.spans;
  t.ok(
    spans.some((s) => s.name === 'switchboard.deliver' && s.instance === 'r2'),
    'spans were collected (the search below is not vacuous)',
  );
  t.ok(
    spans.some((s) => s.attributes['http.response.status_code'] === 400) && spans.some((s) => s.attributes['http.response.status_code'] === 404),
    'including refused requests',
  );
  t.ok(
    spans.some((s) => s.name === 'switchboard.replay'),
    'including the replay',
  );
  const logs = [...a.logs, ...b.logs].join('\n');
  t.match(logs, /"url":"\/stream\/priv\?token=\[redacted\]"/, 'stream URLs are logged, with the token redacted');
  t.match(logs, /"url":"\/stream\/priv\?%74oken=\[redacted\]"/, 'also under a percent-encoded name');
  const exported = receiver.bodies.join('\n');

  const secrets: Record<string, string> = {
    'token in the query': inQuery,
    'token under an encoded name': inEncodedQuery,
    'token in a header': inHeader,
    'bad token in the query': QUERY_TOKEN,
    'publisher key': PUBLISH_API_KEY,
    'wrong publisher key': WRONG_KEY,
    'published payload': PAYLOAD,
    'callback payload': CALLBACK_PAYLOAD,
    'malformed JSON body': BAD_JSON,
    'oversized body': BIG,
  };
  for (const [what, secret] of Object.entries(secrets)) {
    t.notOk(logs.includes(secret), `${what}: in no log line`);
    t.notOk(exported.includes(secret), `${what}: in no exported span`);
  }
  // A token's signature alone would let nobody forge one, but its claims part names the user and
  // expiry: neither part of any token may leak.
  for (const [i, token] of tokens.entries()) {
    for (const part of token.split('.').slice(1)) t.notOk(logs.includes(part) || exported.includes(part), `token ${i}: no part of it leaks`);
  }
});

t.test('a Redis error reply carries no event, metadata or key into a log line or a span', async (t) => {
  const receiver = await startOtlpReceiver(t);
  const fleet = await startTelemetryFleet(t, 1, () => ({ ...tracingEnv(receiver), LOG_LEVEL: 'trace' }));
  const replica = fleet.replicas[0] as Replica;
  const created = await postJson(`${replica.url}/v1/jobs`, { userId: 'oom' }, { bearer: PUBLISH_API_KEY });
  t.equal(created.status, 201, 'a job made while Redis has room');

  // Redis full, evicting nothing: every write is refused with an OOM error reply, which ioredis
  // decorates with the command and its arguments.
  await fleet.redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
  await fleet.redis.cli('CONFIG', 'SET', 'maxmemory', '1');
  const secrets = {
    'event payload': canary('oom-payload'),
    'idempotency key': canary('oom-key'),
    'event type': canary('oom-type').replaceAll('-', '.'),
    'job metadata': canary('oom-metadata'),
    'callback payload': canary('oom-callback'),
  };
  const publish = await postJson(
    `${replica.url}/v1/users/oom/events`,
    { type: secrets['event type'], data: { secret: secrets['event payload'] }, id: secrets['idempotency key'] },
    { bearer: PUBLISH_API_KEY },
  );
  t.equal(publish.status, 503, 'the publish answers 503');
  t.equal(publish.json?.code, 'backplane_unavailable');
  const job = await postJson(`${replica.url}/v1/jobs`, { userId: 'oom', metadata: { secret: secrets['job metadata'] } }, { bearer: PUBLISH_API_KEY });
  t.equal(job.status, 503, 'creating a job answers 503');
  const callback = await postJson(`${replica.url}/v1/callbacks/${created.json.correlationId}`, { secret: secrets['callback payload'] });
  t.equal(callback.status, 503, 'a callback answers 503');

  await fleet.redis.cli('CONFIG', 'SET', 'maxmemory', '0');
  t.same(await replica.kill('SIGTERM'), { code: 0, signal: null }, 'stopped, spans flushed');
  const failures = replica
    .parsedLogs()
    .slice(0)
    .filter((e) => e.msg === 'service unavailable');
  t.ok(
    failures.length === 3 && failures.every((e) => /^(?:OOM|EXECABORT) /.test(e.err?.message ?? '')),
    `each failure was logged once, with Redis' error (${failures.map((e) => e.err?.message.split(' ')[0]).join(', ')})`,
  );
  const logs = replica.logs.join('\n');
  const exported = receiver.bodies.join('\n');
  t.ok(
    receiver.spans.some((s) => s.name === 'switchboard.publish'),
    'the publish span was exported (the search below is not vacuous)',
  );
  for (const [what, secret] of Object.entries(secrets)) {
    t.notOk(logs.includes(secret), `${what}: in no log line`);
    // The event type is a span attribute by design; everything else must stay out of spans too.
    if (what !== 'event type') t.notOk(exported.includes(secret), `${what}: in no exported span`);
  }
});
