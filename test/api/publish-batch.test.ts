// POST /v1/events on one in-process replica with real Redis: each event accepted or refused on
// its own, outcomes in order, the status naming all / some / none, the limits, and delivery in
// batch order to real streams.
import { createHash } from 'node:crypto';
import t from 'tap';
import { PUBLISH_BATCH_SCRIPT, PUBLISH_SCRIPT } from '../../src/backplane/scripts.js';
import { PUBLISH_API_KEY, waitOpen } from '../helpers/fleet.js';
import { postJson } from '../helpers/http.js';
import { inProcessFleet } from '../helpers/in-process-replica.js';
import type { RespValue } from '../helpers/redis-server.js';

const fleet = await inProcessFleet(t, { MAX_BATCH_EVENTS: '50', MAX_BATCH_BYTES: '8192', MAX_BODY_BYTES: '1024' });
const replica = fleet.replicas[0]!;
const batch = (events: unknown, bearer = PUBLISH_API_KEY) => postJson(`${replica.url}/v1/events`, { events }, { bearer });

t.test('every event accepted: 202, outcomes in order, streams get them in batch order', async (t) => {
  const user = await waitOpen(await fleet.stream(replica, 'bea'), 'bea');
  const topic = await waitOpen(await fleet.stream(replica, 'cal', { topics: ['news'] }), 'cal');
  t.teardown(() => [user, topic].forEach((c) => c.close()));
  const events = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? { user: 'bea', data: { i } } : { topic: 'news', type: 'headline', data: { i } }));
  const answer = await batch(events);
  t.equal(answer.status, 202);
  t.equal(answer.json.accepted, 20);
  t.equal(answer.json.refused, 0);
  t.equal(answer.json.results.length, 20, 'one outcome per event');
  t.ok(
    answer.json.results.every((r: { id: string; receivers: number; duplicate: boolean }) => typeof r.id === 'string' && r.receivers === 1 && !r.duplicate),
    'each accepted, reaching the one replica',
  );
  await user.waitForEvents(10);
  await topic.waitForEvents(10);
  t.same(
    user.events.map((e) => JSON.parse(e.data).i),
    [0, 2, 4, 6, 8, 10, 12, 14, 16, 18],
    "the user's events in batch order",
  );
  t.same(
    topic.events.map((e) => [e.type, JSON.parse(e.data).i]),
    [1, 3, 5, 7, 9, 11, 13, 15, 17, 19].map((i) => ['headline', i]),
    "the topic's events in batch order, with their type",
  );
  t.same(
    user.events.map((e) => e.lastEventId),
    answer.json.results.filter((_: unknown, i: number) => i % 2 === 0).map((r: { id: string }) => r.id),
    'the ids the answer gave are the ids the stream saw',
  );
});

t.test('some refused: 207, each refusal with the code a single publish would get', async (t) => {
  const events = [
    { user: 'dan', data: 1 },
    { user: 'bad user', data: 2 },
    { topic: 'bad topic!', data: 3 },
    { user: 'dan', type: 'reset', data: 4 },
    { user: 'dan' },
    { user: 'dan', topic: 'news', data: 5 },
    { data: 6 },
    { user: 'dan', data: 7, durable: 'no' },
    { user: 'dan', data: 'x'.repeat(2000) },
    'not an object',
    { user: 'dan', data: 8, id: 'k1' },
    { user: 'dan', data: 9, id: 'k1' },
  ];
  const answer = await batch(events);
  t.equal(answer.status, 207);
  t.equal(answer.json.accepted, 3);
  t.equal(answer.json.refused, 9);
  t.same(
    answer.json.results.map((r: { code?: string; duplicate?: boolean }) => r.code ?? (r.duplicate ? 'duplicate' : 'accepted')),
    [
      'accepted',
      'invalid_user_id',
      'invalid_topic',
      'invalid_event_type',
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'payload_too_large',
      'invalid_request',
      'accepted',
      'duplicate',
    ],
    'each outcome in order',
  );
  t.equal(answer.json.results[11].id, answer.json.results[10].id, 'the repeated key names the first event');
  t.match(answer.json.results[8], { status: 413, detail: /MAX_BODY_BYTES/ });
});

t.test('none accepted: a problem with their common code, and every refusal', async (t) => {
  const answer = await batch([
    { user: 'no way', data: 1 },
    { user: 'nor this', data: 2 },
  ]);
  t.equal(answer.status, 400);
  t.match(answer.headers['content-type'], /^application\/problem\+json/);
  t.match(answer.json, { code: 'invalid_user_id', status: 400, accepted: 0, refused: 2 });
  t.same(
    answer.json.results.map((r: { code: string }) => r.code),
    ['invalid_user_id', 'invalid_user_id'],
  );
  const mixed = await batch([{ user: 'no way', data: 1 }, { user: 'ok' }]);
  t.equal(mixed.status, 400, 'differing causes, none from Redis: 400');
  t.equal(mixed.json.code, 'invalid_request');
});

t.test('limits: too many events, too large a body, no events — each a clear problem', async (t) => {
  const many = await batch(Array.from({ length: 51 }, (_, i) => ({ user: 'eve', data: i })));
  t.equal(many.status, 413);
  t.match(many.json, { code: 'batch_too_large', detail: /MAX_BATCH_EVENTS/ });
  const large = await batch(Array.from({ length: 20 }, () => ({ user: 'eve', data: 'y'.repeat(500) })));
  t.equal(large.status, 413);
  t.match(large.json, { code: 'payload_too_large', detail: /MAX_BATCH_BYTES/ });
  const empty = await batch([]);
  t.equal(empty.status, 400);
  t.equal(empty.json.code, 'invalid_request');
  const noKey = await batch([{ user: 'eve', data: 1 }], 'wrong-key-0123456789abcdef');
  t.equal(noKey.status, 401);
});

t.test('live-only events in a batch reach open streams and are not replayed', async (t) => {
  const stream = await waitOpen(await fleet.stream(replica, 'fay'), 'fay');
  t.teardown(() => stream.close());
  const answer = await batch([
    { user: 'fay', data: 'durable-1' },
    { user: 'fay', data: 'tick', durable: false },
    { user: 'fay', data: 'durable-2' },
  ]);
  t.equal(answer.status, 202);
  await stream.waitForEvents(3);
  t.same(
    stream.events.map((e) => JSON.parse(e.data)),
    ['durable-1', 'tick', 'durable-2'],
    'heard live, in order',
  );
  const replay = await waitOpen(await fleet.stream(replica, 'fay', { headers: { 'last-event-id': answer.json.results[0].id } }), 'fay replay');
  t.teardown(() => replay.close());
  await replay.waitForEvents(1);
  const probe = await fleet.publish(replica, 'fay', 'after');
  t.equal(probe.status, 202);
  await replay.waitFor((c) => c.events.some((e) => e.data === '"after"'), 5000, 'the live event after the replay');
  t.same(
    replay.events.map((e) => JSON.parse(e.data)),
    ['durable-2', 'after'],
    'a replay skips the live-only event',
  );
});

t.test('a batch is one script call on Redis, not one per event', async (t) => {
  // The slow log, set to record every command, names each script call by its SHA; other
  // scripts (the fleet's presence and heartbeat) run on their own timers and are not counted.
  const sha = (script: string): string => createHash('sha1').update(script).digest('hex');
  const [batchSha, singleSha] = [sha(PUBLISH_BATCH_SCRIPT), sha(PUBLISH_SCRIPT)];
  await fleet.redis.command('CONFIG', 'SET', 'slowlog-log-slower-than', '0');
  await fleet.redis.command('CONFIG', 'SET', 'slowlog-max-len', '10000');
  await fleet.redis.command('SLOWLOG', 'RESET');
  const answer = await batch(Array.from({ length: 40 }, (_, i) => ({ user: `many-${i % 7}`, data: i })));
  t.equal(answer.status, 202);
  const entries = (await fleet.redis.command('SLOWLOG', 'GET', '10000')) as RespValue[][];
  const calls = (scriptSha: string): number =>
    entries.filter((entry) => {
      const args = entry[3] as string[];
      return String(args[0]).toLowerCase() === 'evalsha' && args[1] === scriptSha;
    }).length;
  t.equal(calls(batchSha), 1, '40 events on 7 channels, one batch script call');
  t.equal(calls(singleSha), 0, 'and no single-event script call');
});
