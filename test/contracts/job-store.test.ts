// One behaviour suite for every JobStore: in memory and in Redis (on a redis-server this file
// starts). Whatever the job and callback routes rely on is asserted here for both; what only
// Redis can do wrong (reads at maxmemory) follows, on a server of its own.
import t, { type Test } from 'tap';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { createClusterConnections, createRedisConnections } from '../../src/backplane/redis-connections.js';
import { SwitchboardError } from '../../src/errors.js';
import { MAX_CALLBACK_PAYLOAD_BYTES, MAX_CALLBACKS_KEPT, type CallbackRecord, type JobStore } from '../../src/jobs/job-store.js';
import { MemoryJobStore } from '../../src/jobs/memory-job-store.js';
import { RedisJobStore } from '../../src/jobs/redis-job-store.js';
import { newCorrelationId } from '../../src/jobs/job-store.js';
import type { RedisSettings } from '../../src/config.js';
import { clusterSettings, startRedisCluster } from '../helpers/redis-cluster.js';
import { startRedis } from '../helpers/redis-server.js';
import { sentinelSettings, startRedisSentinel } from '../helpers/redis-sentinel.js';
import { waitFor } from '../helpers/wait-for.js';

const silent = pino({ level: 'silent' });
let connectionSeq = 0;
const NO_AUTH = { username: undefined, password: undefined, tls: undefined, waitReplicas: 0 };

/** The replica's own command connection (no offline queue, 1 s timeout), connected, closed at teardown. */
async function commandConnection(t: Test, target: string | RedisSettings): Promise<Redis> {
  const settings: RedisSettings = typeof target === 'string' ? { mode: 'standalone', url: target, ...NO_AUTH } : target;
  const { commands } = createRedisConnections(settings, `job-store-contract-${++connectionSeq}`, silent);
  t.teardown(() => commands.disconnect());
  await commands.connect();
  return commands;
}

const implementations: Record<string, (t: Test) => Promise<() => Promise<JobStore>>> = {
  memory: async (t) => async () => {
    const store = new MemoryJobStore();
    t.teardown(() => store.close());
    return store;
  },
  redis: async (t) => {
    const redis = await startRedis(t);
    const connection = await commandConnection(t, redis.url);
    return async () => new RedisJobStore(connection);
  },
  sentinel: async (t) => {
    const connection = await commandConnection(t, sentinelSettings(await startRedisSentinel(t)));
    return async () => new RedisJobStore(connection);
  },
  cluster: async (t) => {
    // The replica's own Cluster connection: its jobs spread over every master.
    const settings = clusterSettings(await startRedisCluster(t));
    const { commands } = createClusterConnections(settings, `job-store-contract-${++connectionSeq}`, silent);
    t.teardown(() => commands.disconnect());
    await commands.connect();
    return async () => new RedisJobStore(commands);
  },
};

const callback = (n: number, extra: Partial<CallbackRecord> = {}): CallbackRecord => ({
  eventId: `event-${n}`,
  type: 'callback',
  receivedAt: new Date().toISOString(),
  receivers: 1,
  payload: { n },
  ...extra,
});

for (const [name, setup] of Object.entries(implementations)) {
  t.test(`${name} job store`, async (t) => {
    const make = await setup(t);

    t.test('create answers the job, and get reads back the same job', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      const before = Date.now();
      const created = await store.create({ correlationId, userId: 'alice', ttlSeconds: 600, metadata: { kind: 'export', n: [1, 2] } });
      t.match(created, { correlationId, userId: 'alice', status: 'pending', metadata: { kind: 'export', n: [1, 2] }, callbacks: [] });
      const createdAt = Date.parse(created.createdAt);
      t.ok(createdAt >= before && createdAt <= Date.now(), 'createdAt is now');
      t.equal(Date.parse(created.expiresAt) - createdAt, 600_000, 'expiresAt is createdAt + ttlSeconds');
      t.same(await store.get(correlationId), created, 'get answers what create did');
    });

    t.test('metadata is optional, and absent when not given', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      await store.create({ correlationId, userId: 'bob', ttlSeconds: 600, metadata: undefined });
      const job = await store.get(correlationId);
      t.ok(job !== undefined && !('metadata' in job), 'no metadata member');
    });

    t.test('an unknown id is undefined, and recording a callback for it writes nothing', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      t.equal(await store.get(correlationId), undefined);
      t.equal(await store.recordCallback(correlationId, callback(1), 'done'), false, 'recordCallback answers false');
      t.equal(await store.get(correlationId), undefined, 'and the job still does not exist');
    });

    t.test('a job expires at expiresAt: get is undefined and a late callback is not recorded', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      const created = await store.create({ correlationId, userId: 'carol', ttlSeconds: 1, metadata: undefined });
      t.equal(await store.recordCallback(correlationId, callback(1), 'running'), true, 'recorded while the job lives');
      await waitFor(async () => (await store.get(correlationId)) === undefined, { timeoutMs: 5000, label: 'the job expired' });
      t.ok(Date.now() >= Date.parse(created.expiresAt), 'not before expiresAt');
      t.equal(await store.recordCallback(correlationId, callback(2), 'done'), false, 'a callback after expiry is not recorded');
      t.equal(await store.get(correlationId), undefined, 'and does not bring the job back');
    });

    t.test('recordCallback sets the status and keeps the newest callbacks first, at most MAX_CALLBACKS_KEPT', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      await store.create({ correlationId, userId: 'dave', ttlSeconds: 600, metadata: undefined });
      const total = MAX_CALLBACKS_KEPT + 5;
      for (let n = 1; n <= total; n++) t.equal(await store.recordCallback(correlationId, callback(n, { type: `step.${n}` }), `step-${n}`), true);
      const job = await store.get(correlationId);
      t.equal(job?.status, `step-${total}`, 'the last status wins');
      t.equal(job?.callbacks.length, MAX_CALLBACKS_KEPT, `${MAX_CALLBACKS_KEPT} kept`);
      t.same(
        job?.callbacks.map((c) => c.eventId),
        Array.from({ length: MAX_CALLBACKS_KEPT }, (_, i) => `event-${total - i}`),
        'newest first, oldest dropped',
      );
      t.match(job?.callbacks[0], { eventId: `event-${total}`, type: `step.${total}`, receivers: 1, receivedAt: String });
    });

    t.test('each callback keeps its payload, as JSON round-trips it', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      await store.create({ correlationId, userId: 'gina', ttlSeconds: 600, metadata: undefined });
      const payloads = [{ status: 'done', rows: 42, nested: { list: [1, 'two', null, true] } }, 'Zoë 🚀 \u2028', 12.5, [], null];
      for (const [n, payload] of payloads.entries()) await store.recordCallback(correlationId, callback(n, { payload }), 'done');
      const job = await store.get(correlationId);
      t.same(
        job?.callbacks.map((c) => c.payload),
        [...payloads].reverse(),
        'newest first, each payload as given',
      );
      t.notOk(
        job?.callbacks.some((c) => 'payloadTruncated' in c),
        'none truncated',
      );
    });

    t.test(`a payload over ${MAX_CALLBACK_PAYLOAD_BYTES} bytes of UTF-8 JSON is kept as null, marked payloadTruncated`, async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      await store.create({ correlationId, userId: 'hank', ttlSeconds: 600, metadata: undefined });
      // JSON.stringify of a string adds its two quotes; é is two bytes in UTF-8.
      const atLimit = 'x'.repeat(MAX_CALLBACK_PAYLOAD_BYTES - 2);
      const overLimit = 'x'.repeat(MAX_CALLBACK_PAYLOAD_BYTES - 1);
      const overInBytes = 'é'.repeat(MAX_CALLBACK_PAYLOAD_BYTES / 2);
      t.ok(JSON.stringify(overInBytes).length < MAX_CALLBACK_PAYLOAD_BYTES, 'under the limit in characters, over it in bytes');
      for (const [n, payload] of [atLimit, overLimit, overInBytes].entries()) await store.recordCallback(correlationId, callback(n, { payload }), 'done');
      const [bytes, over, exact] = (await store.get(correlationId))?.callbacks ?? [];
      t.same([exact?.payload, 'payloadTruncated' in (exact ?? {})], [atLimit, false], 'exactly at the limit: kept');
      t.same([over?.payload, over?.payloadTruncated], [null, true], 'one byte over: null, payloadTruncated');
      t.same([bytes?.payload, bytes?.payloadTruncated], [null, true], 'over in bytes though not in characters: null, payloadTruncated');
      t.same([over?.eventId, over?.type, over?.receivers], ['event-1', 'callback', 1], 'the rest of the record is kept');
    });

    t.test('a job full of callbacks at the payload bound holds every payload whole, and no more than the bound in total', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      await store.create({ correlationId, userId: 'ivan', ttlSeconds: 600, metadata: undefined });
      // JSON.stringify adds the string's two quotes: each payload is exactly at the bound.
      const payloadAt = (n: number): string => `${n}`.padEnd(MAX_CALLBACK_PAYLOAD_BYTES - 2, 'z');
      for (let n = 1; n <= MAX_CALLBACKS_KEPT + 3; n++) await store.recordCallback(correlationId, callback(n, { payload: payloadAt(n) }), 'running');
      const callbacks = (await store.get(correlationId))?.callbacks ?? [];
      t.same(
        callbacks.map((c) => c.payload),
        Array.from({ length: MAX_CALLBACKS_KEPT }, (_, i) => payloadAt(MAX_CALLBACKS_KEPT + 3 - i)),
        'the newest, each whole',
      );
      const payloadBytes = callbacks.reduce((sum, c) => sum + Buffer.byteLength(JSON.stringify(c.payload)), 0);
      t.equal(
        payloadBytes,
        MAX_CALLBACKS_KEPT * MAX_CALLBACK_PAYLOAD_BYTES,
        'payloads total MAX_CALLBACKS_KEPT × MAX_CALLBACK_PAYLOAD_BYTES, the most a job holds',
      );
    });

    t.test('what a caller passes or reads is a copy: mutating it changes nothing stored', async (t) => {
      const store = await make();
      const correlationId = newCorrelationId();
      await store.create({ correlationId, userId: 'erin', ttlSeconds: 600, metadata: { a: 1 } });
      const record = callback(1, { payload: { rows: 1 } });
      await store.recordCallback(correlationId, record, 'done');
      record.eventId = 'mutated';
      (record.payload as { rows: number }).rows = 2;
      const read = await store.get(correlationId);
      (read as { status: string }).status = 'mutated';
      const again = await store.get(correlationId);
      t.same([again?.status, again?.callbacks[0]?.eventId, again?.callbacks[0]?.payload], ['done', 'event-1', { rows: 1 }]);
    });
  });
}

t.test('redis job store: jobs stay readable at maxmemory (noeviction), where MULTI is refused; writes are 503', async (t) => {
  const redis = await startRedis(t);
  const connection = await commandConnection(t, redis.url);
  const store = new RedisJobStore(connection);
  const correlationId = newCorrelationId();
  await store.create({ correlationId, userId: 'frank', ttlSeconds: 600, metadata: undefined });
  await store.recordCallback(correlationId, callback(1), 'running');

  // Fill past 1 MB (20,000 keys of ~100 bytes), then cap memory below what is used.
  await redis.command('EVAL', "for i = 1, 20000 do redis.call('SET', 'fill:' .. i, string.rep('x', 100)) end return 1", 0);
  await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
  await redis.command('CONFIG', 'SET', 'maxmemory', '1mb');
  await t.rejects(redis.command('SET', 'one-more', 'x'), /OOM/, 'Redis is out of memory: writes are refused');
  await t.rejects(connection.multi().hgetall('anything').exec(), /EXECABORT/, 'and a MULTI of reads alone is refused too');

  const job = await store.get(correlationId);
  t.match(job, { correlationId, userId: 'frank', status: 'running' }, 'get still answers the job');
  t.same(
    job?.callbacks.map((c) => c.eventId),
    ['event-1'],
    'with its callbacks',
  );
  t.equal(await store.get(newCorrelationId()), undefined, 'and an unknown id is still undefined (a 404, not a 503)');

  const isUnavailable = (err: unknown): boolean => err instanceof SwitchboardError && err.code === 'backplane_unavailable';
  t.ok(
    await store.create({ correlationId: newCorrelationId(), userId: 'frank', ttlSeconds: 600, metadata: undefined }).then(() => false, isUnavailable),
    'create: 503',
  );
  t.ok(await store.recordCallback(correlationId, callback(2), 'done').then(() => false, isUnavailable), 'recordCallback: 503');
});
