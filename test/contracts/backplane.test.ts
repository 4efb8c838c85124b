// One behaviour suite for every Backplane: the in-process one and Redis (on a redis-server this
// file starts). Whatever a replica relies on is asserted here for both.
import t, { type Test } from 'tap';
import { pino } from 'pino';
import type { Backplane, ChannelMessage } from '../../src/backplane/backplane.js';
import { userChannel, topicChannel } from '../../src/backplane/redis-keys.js';
import { MemoryBackplane, type HistoryOptions } from '../../src/backplane/memory-backplane.js';
import { RedisBackplane } from '../../src/backplane/redis-backplane.js';
import { ClusterBackplane } from '../../src/backplane/cluster-backplane.js';
import { createClusterConnections, createRedisConnections } from '../../src/backplane/redis-connections.js';
import { parsePosition, parseEventPosition, comparePositions, ZERO_POSITION } from '../../src/history/cursor.js';
import type { RedisSettings } from '../../src/config.js';
import { clusterSettings, startRedisCluster } from '../helpers/redis-cluster.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';
import { sentinelSettings, startRedisSentinel } from '../helpers/redis-sentinel.js';
import { waitFor } from '../helpers/wait-for.js';

type Make = (t: Test, history: HistoryOptions) => Promise<Backplane>;

const silent = pino({ level: 'silent' });
let replicaSeq = 0;
const NO_AUTH = { username: undefined, password: undefined, tls: undefined, waitReplicas: 0 };

/**
 * A backplane maker, and for Redis a way to empty every server's script cache (as a restart
 * does), so the scripts must be sent again.
 */
interface Implementation {
  make: Make;
  flushScripts?: () => Promise<void>;
}

const flushScriptsOn = (servers: readonly RedisServer[]) => async () => {
  for (const server of servers) await server.command('SCRIPT', 'FLUSH');
};

const implementations: Record<string, (t: Test) => Promise<Implementation>> = {
  memory: async () => ({
    make: async (t, history) => {
      const backplane = new MemoryBackplane(history);
      t.teardown(() => backplane.close());
      return backplane;
    },
  }),
  redis: async (t) => {
    const redis = await startRedis(t);
    return { make: redisBackplanes({ mode: 'standalone', url: redis.url, ...NO_AUTH }), flushScripts: flushScriptsOn([redis]) };
  },
  sentinel: async (t) => {
    const set = await startRedisSentinel(t);
    return { make: redisBackplanes(sentinelSettings(set)), flushScripts: flushScriptsOn(set.nodes) };
  },
  cluster: async (t) => {
    const cluster = await startRedisCluster(t);
    const settings = clusterSettings(cluster);
    return {
      make: async (t, history) => {
        const replicaId = `contract-${++replicaSeq}`;
        const connections = createClusterConnections(settings, replicaId, silent);
        const backplane = new ClusterBackplane(connections, { ...history, replicaId, probeIntervalMs: 500, waitReplicas: 0, logger: silent });
        t.teardown(async () => {
          await backplane.close();
          connections.commands.disconnect();
        });
        await backplane.start();
        return backplane;
      },
      flushScripts: flushScriptsOn(cluster.nodes),
    };
  },
};

/** Backplanes on Redis reached through `settings`, each with connections of its own, closed at teardown. */
function redisBackplanes(settings: RedisSettings): Make {
  return async (t, history) => {
    const replicaId = `contract-${++replicaSeq}`;
    const connections = createRedisConnections(settings, replicaId, silent);
    const backplane = new RedisBackplane(connections, {
      ...history,
      replicaId,
      probeIntervalMs: 500,
      waitReplicas: 0,
      logger: silent,
    });
    t.teardown(async () => {
      await backplane.close();
      connections.commands.disconnect();
      connections.subscriber.disconnect();
    });
    await backplane.start();
    return backplane;
  };
}

function collect(backplane: Backplane): ChannelMessage[] {
  const received: ChannelMessage[] = [];
  backplane.onMessage((message) => received.push(message));
  return received;
}

const publishData = (backplane: Backplane, channel: ReturnType<typeof userChannel>, data: unknown, idempotencyKey?: string) =>
  backplane.publish({
    channel,
    header: { t: 'message', a: Date.now() },
    dataJson: JSON.stringify(data),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  });

for (const [name, setup] of Object.entries(implementations)) {
  t.test(`${name} backplane`, async (t) => {
    const { make, flushScripts } = await setup(t);
    const history = { historyMaxLen: 1000, historyTtlSeconds: 60 };

    t.test('a subscribed channel hears every publish, in order, with the published header and data', async (t) => {
      const backplane = await make(t, history);
      const received = collect(backplane);
      const channel = userChannel(`order-${name}`);
      await backplane.subscribe([channel]);
      const results = [];
      for (let i = 0; i < 50; i++) results.push(await publishData(backplane, channel, { i }));
      t.ok(
        results.every((r) => r.receivers === 1 && !r.duplicate),
        'each publish reached one subscriber',
      );
      await waitFor(() => received.length === 50, { label: '50 messages' });
      t.same(
        received.map((m) => JSON.parse(m.dataJson).i),
        [...Array(50).keys()],
        'in publish order',
      );
      t.same(
        received.map((m) => m.positionText),
        results.map((r) => r.position),
        'positions match the publish results',
      );
      for (let i = 1; i < received.length; i++) {
        t.ok(comparePositions(received[i]!.position, received[i - 1]!.position) > 0, `position ${i} increases`);
      }
      t.equal(received[0]!.header.t, 'message');
      t.equal(received[0]!.epoch, results[0]!.epoch);
    });

    t.test('no subscriber: zero receivers, but the event is in history', async (t) => {
      const backplane = await make(t, history);
      const channel = topicChannel(`nobody-${name}`);
      const before = await backplane.readHistory(channel, undefined, 10);
      t.same(before.entries, [], 'a read without a position returns no entries');
      const published = await publishData(backplane, channel, 'x');
      t.equal(published.receivers, 0);
      const after = await backplane.readHistory(channel, before.last, 10);
      t.equal(after.epoch, before.epoch, 'the epoch made by the first read is the one publish used');
      t.same(
        after.entries.map((m) => m.dataJson),
        ['"x"'],
      );
      t.equal(after.lastText, published.position);
      t.equal(after.trimmed, false);
    });

    t.test('unsubscribed channels are not heard', async (t) => {
      const backplane = await make(t, history);
      const received = collect(backplane);
      const a = userChannel(`unsub-a-${name}`);
      const b = userChannel(`unsub-b-${name}`);
      await backplane.subscribe([a, b]);
      await backplane.unsubscribe([a]);
      t.equal((await publishData(backplane, a, 1)).receivers, 0);
      await publishData(backplane, b, 2);
      await waitFor(() => received.length === 1, { label: 'message on b' });
      t.equal(received[0]!.channel, b, 'only the still-subscribed channel was heard');
    });

    t.test('history: entries after a position, bounded by the limit', async (t) => {
      const backplane = await make(t, history);
      const channel = userChannel(`hist-${name}`);
      const positions = [];
      for (let i = 0; i < 10; i++) positions.push((await publishData(backplane, channel, i)).position);
      const from3 = await backplane.readHistory(channel, parsePosition(positions[3]!), 100);
      t.same(
        from3.entries.map((m) => m.positionText),
        positions.slice(4),
        'everything after position 3',
      );
      t.equal(from3.trimmed, false);
      const limited = await backplane.readHistory(channel, parsePosition(positions[0]!), 4);
      t.same(
        limited.entries.map((m) => m.positionText),
        positions.slice(1, 5),
        'at most the limit, oldest first',
      );
      const atLast = await backplane.readHistory(channel, parsePosition(positions[9]!), 100);
      t.same(atLast.entries, [], 'nothing after the newest');
      t.equal(atLast.trimmed, false);
    });

    t.test('history tells when a position is older than what it still holds', async (t) => {
      // Redis trims whole nodes (MAXLEN ~), so publish well past the bound.
      const backplane = await make(t, { historyMaxLen: 5, historyTtlSeconds: 60 });
      const channel = userChannel(`trim-${name}`);
      const positions = [];
      for (let i = 0; i < 400; i++) positions.push((await publishData(backplane, channel, i)).position);
      const old = await backplane.readHistory(channel, parsePosition(positions[0]!), 1000);
      t.equal(old.trimmed, true, 'a position from before the trimmed part is reported');
      const recent = await backplane.readHistory(channel, parsePosition(positions[397]!), 1000);
      t.equal(recent.trimmed, false, 'a recent position is complete');
      t.same(
        recent.entries.map((m) => m.positionText),
        positions.slice(398),
      );
    });

    t.test('with history off, positions still advance and a resume knows what it missed', async (t) => {
      const backplane = await make(t, { historyMaxLen: 0, historyTtlSeconds: 60 });
      const channel = userChannel(`off-${name}`);
      const first = await publishData(backplane, channel, 1);
      const second = await publishData(backplane, channel, 2);
      t.ok(comparePositions(parsePosition(second.position)!, parsePosition(first.position)!) > 0);
      const missed = await backplane.readHistory(channel, parsePosition(first.position), 10);
      t.equal(missed.trimmed, true, 'one event after the position is gone');
      t.same(missed.entries, []);
      const current = await backplane.readHistory(channel, parsePosition(second.position), 10);
      t.equal(current.trimmed, false, 'nothing missed from the newest position');
      const never = await backplane.readHistory(userChannel(`never-${name}`), ZERO_POSITION, 10);
      t.equal(never.trimmed, false, 'a channel never published to has nothing to miss');
    });

    t.test('an idempotency key is accepted once: a repeat answers the first id and is not published', async (t) => {
      const backplane = await make(t, history);
      const received = collect(backplane);
      const channel = userChannel(`idem-${name}`);
      await backplane.subscribe([channel]);
      const first = await publishData(backplane, channel, 'once', 'key-1');
      const again = await publishData(backplane, channel, 'once', 'key-1');
      const other = await publishData(backplane, channel, 'twice', 'key-2');
      t.equal(first.duplicate, false);
      t.equal(again.duplicate, true);
      t.equal(again.position, first.position, 'the duplicate names the original event');
      t.equal(again.receivers, 0);
      t.equal(other.duplicate, false);
      await waitFor(() => received.length === 2, { label: 'two deliveries' });
      t.same(
        received.map((m) => m.dataJson),
        ['"once"', '"twice"'],
        'the duplicate was not delivered',
      );
    });

    t.test('a duplicate names the first event by its own epoch, even after that history expired', async (t) => {
      const backplane = await make(t, { historyMaxLen: 1000, historyTtlSeconds: 1 });
      const channel = userChannel(`idem-expired-${name}`);
      const request = { channel, header: { t: 'message', a: Date.now() }, dataJson: '"once"', idempotencyKey: 'key-x', idempotencyTtlSeconds: 60 };
      const first = await backplane.publish(request);
      // History lives HISTORY_TTL_SECONDS (1 s here); the idempotency key 60 s.
      await waitFor(() => Date.now() - request.header.a > 1100, { timeoutMs: 5000, label: 'the history TTL to pass' });
      const after = await backplane.readHistory(channel, undefined, 1);
      t.not(after.epoch, first.epoch, 'the history expired and a new one began');
      const again = await backplane.publish(request);
      t.equal(again.duplicate, true);
      t.same([again.epoch, again.position], [first.epoch, first.position], 'the duplicate answers the original epoch and position');
    });

    t.test('reads asked for at once (as thousands of opening streams do) each get their own channel', async (t) => {
      const backplane = await make(t, history);
      // Some of them twice for the same channel.
      const channels = Array.from({ length: 150 }, (_, i) => userChannel(`many-${name}-${i % 100}`));
      const published = await Promise.all(channels.slice(0, 100).map((channel, i) => publishData(backplane, channel, i)));
      const reads = await Promise.all(channels.map((channel) => backplane.readHistory(channel, ZERO_POSITION, 10)));
      reads.forEach((read, i) => {
        const own = published[i % 100]!;
        t.equal(read.epoch, own.epoch, `read ${i}: its channel's epoch`);
        t.same(
          read.entries.map((m) => [m.channel, m.dataJson]),
          [[channels[i], String(i % 100)]],
          `read ${i}: its channel's one event`,
        );
      });
      const fresh = await Promise.all([1, 2, 3].map(() => backplane.readHistory(userChannel(`fresh-${name}`), undefined, 1)));
      t.equal(new Set(fresh.map((read) => read.epoch)).size, 1, 'concurrent reads of a new channel agree on the epoch it got');
    });

    t.test('single publishes sent at once each get their own outcome, in order per channel', async (t) => {
      const backplane = await make(t, history);
      const received = collect(backplane);
      const channels = [userChannel(`together-a-${name}`), topicChannel(`together-b-${name}`), userChannel(`together-c-${name}`)];
      await backplane.subscribe(channels);
      // 200 in one turn (two script calls of 100 on one Redis), one idempotency key used three
      // times: repeated in the same call (4, then 61) and in a later call (130).
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => publishData(backplane, channels[i % 3]!, { i }, i === 4 || i === 61 || i === 130 ? 'thrice' : undefined)),
      );
      t.same(
        results.map((r) => r.duplicate),
        results.map((_, i) => i === 61 || i === 130),
        'only the repeated key is a duplicate',
      );
      t.equal(results[61]!.position, results[4]!.position, 'a duplicate in the same call names the first event');
      t.equal(results[130]!.position, results[4]!.position, 'a duplicate in a later call too');
      await waitFor(() => received.length === 198, { label: '198 messages' });
      for (const [c, channel] of channels.entries()) {
        const heard = received.filter((m) => m.channel === channel);
        const expected = results.flatMap((_r, i) => (i % 3 === c && i !== 61 && i !== 130 ? [i] : []));
        t.same(
          heard.map((m) => JSON.parse(m.dataJson).i),
          expected,
          `channel ${c}: every event, in the order sent`,
        );
        t.same(
          heard.map((m) => m.positionText),
          expected.map((i) => results[i]!.position),
          `channel ${c}: each answer names its own event`,
        );
      }
    });

    t.test('a batch publishes every event in order per channel, each with its own outcome', async (t) => {
      const backplane = await make(t, history);
      const received = collect(backplane);
      const channels = [userChannel(`batch-a-${name}`), topicChannel(`batch-b-${name}`), userChannel(`batch-c-${name}`)];
      await backplane.subscribe(channels);
      const requests = Array.from({ length: 60 }, (_, i) => ({
        channel: channels[i % 3]!,
        header: { t: 'message', a: Date.now() },
        dataJson: JSON.stringify({ i }),
        // A key used twice in the batch, on one channel: the second is a duplicate of the first.
        ...(i === 3 || i === 6 ? { idempotencyKey: 'twice' } : {}),
      }));
      const outcomes = await backplane.publishBatch(requests);
      t.equal(outcomes.length, 60, 'one outcome per event');
      const results = outcomes.map((outcome) => {
        if (outcome instanceof Error) throw outcome;
        return outcome;
      });
      t.same(
        results.map((r) => r.duplicate),
        requests.map((_, i) => i === 6),
        'only the repeated key is a duplicate',
      );
      t.equal(results[6]!.position, results[3]!.position, 'the duplicate names the first event');
      await waitFor(() => received.length === 59, { label: '59 messages' });
      for (const [c, channel] of channels.entries()) {
        const heard = received.filter((m) => m.channel === channel);
        const expected = requests.flatMap((_r, i) => (i % 3 === c && i !== 6 ? [i] : []));
        t.same(
          heard.map((m) => JSON.parse(m.dataJson).i),
          expected,
          `channel ${c}: every event, in batch order`,
        );
        const read = await backplane.readHistory(channel, ZERO_POSITION, 100);
        t.same(
          read.entries.map((m) => m.positionText),
          heard.map((m) => m.positionText),
          `channel ${c}: history holds the same events`,
        );
      }
      const next = await backplane.publishBatch([requests[0]!, requests[3]!]);
      const [after, again] = next as unknown as [{ position: string; duplicate: boolean }, { position: string; duplicate: boolean }];
      t.ok(comparePositions(parsePosition(after.position)!, parsePosition(results[57]!.position)!) > 0, 'a later batch comes after the earlier one');
      t.equal(again.duplicate, true, 'a key stays taken across batches');
    });

    t.test('a live-only event is heard but never stored; its position sits between its durable neighbours', async (t) => {
      const backplane = await make(t, history);
      const received = collect(backplane);
      const channel = userChannel(`live-${name}`);
      await backplane.subscribe([channel]);
      const publish = (data: string, durable: boolean) =>
        backplane.publish({ channel, header: { t: 'tick', a: Date.now() }, dataJson: JSON.stringify(data), durable });
      const before = await publish('before', true);
      const live1 = await publish('live1', false);
      const live2 = await publish('live2', false);
      const after = await publish('after', true);
      t.equal(live1.receivers, 1, 'the live-only event reached the subscriber');
      t.equal(live1.epoch, before.epoch, 'it carries the history epoch');
      const positions = [before, live1, live2, after].map((r) => parseEventPosition(r.position)!);
      for (let i = 1; i < positions.length; i++) t.ok(comparePositions(positions[i]!, positions[i - 1]!) > 0, `position ${i} sorts after ${i - 1}`);
      await waitFor(() => received.length === 4, { label: 'four messages' });
      t.same(
        received.map((m) => [m.dataJson, m.positionText]),
        [before, live1, live2, after].map((r, i) => [JSON.stringify(['before', 'live1', 'live2', 'after'][i]), r.position]),
        'heard in order, with the positions published',
      );
      const all = await backplane.readHistory(channel, ZERO_POSITION, 100);
      t.same(
        all.entries.map((m) => m.dataJson),
        ['"before"', '"after"'],
        'history holds the durable events only',
      );
      const fromLive = await backplane.readHistory(channel, positions[1], 100);
      t.same(
        fromLive.entries.map((m) => m.dataJson),
        ['"after"'],
        'a read from a live-only position gets the durable events after it',
      );
      t.equal(fromLive.trimmed, false, 'and knows it missed nothing');
      t.equal(fromLive.lastText, after.position);
      const batch = await backplane.publishBatch([{ channel, header: { t: 'tick', a: Date.now() }, dataJson: '"live3"', durable: false }]);
      const live3 = batch[0] as { position: string };
      t.ok(comparePositions(parseEventPosition(live3.position)!, positions[3]!) > 0, 'a live-only event in a batch sorts after the durable one before it');
      const still = await backplane.readHistory(channel, positions[3], 100);
      t.same(still.entries, [], 'and is not stored either');
    });

    t.test('a live-only event on a channel with no history yet makes its epoch, and a read from it misses nothing', async (t) => {
      const backplane = await make(t, history);
      const channel = topicChannel(`live-fresh-${name}`);
      const live = await backplane.publish({ channel, header: { t: 'tick', a: Date.now() }, dataJson: '1', durable: false });
      const durable = await publishData(backplane, channel, 2);
      t.equal(durable.epoch, live.epoch, 'the durable event that follows keeps the epoch');
      const read = await backplane.readHistory(channel, parseEventPosition(live.position), 10);
      t.equal(read.epoch, live.epoch);
      t.equal(read.trimmed, false);
      t.same(
        read.entries.map((m) => m.dataJson),
        ['2'],
      );
    });

    if (flushScripts !== undefined) {
      t.test('a Redis that lost its scripts (restarted, SCRIPT FLUSH) gets them again: publishes and reads go on', async (t) => {
        const backplane = await make(t, history);
        const received = collect(backplane);
        const channel = userChannel(`flushed-${name}`);
        await backplane.subscribe([channel]);
        const before = await publishData(backplane, channel, { n: 1 });
        await backplane.readHistory(channel, undefined, 10);
        await flushScripts();
        const after = await publishData(backplane, channel, { n: 2 });
        t.equal(after.receivers, 1, 'the publish after the flush reached its subscriber');
        t.ok(comparePositions(parsePosition(after.position)!, parsePosition(before.position)!) > 0, 'after the first one');
        await flushScripts();
        const together = await Promise.all([3, 4].map((n) => publishData(backplane, channel, { n })));
        t.same(
          together.map((r) => r.receivers),
          [1, 1],
          'publishes sent at once after a flush (one call for both, on one Redis) reach the subscriber',
        );
        await flushScripts();
        const read = await backplane.readHistory(channel, parsePosition(before.position), 10);
        t.same(
          read.entries.map((m) => m.positionText),
          [after.position, ...together.map((r) => r.position)],
          'a history read after another flush finds the events published after the first',
        );
        await waitFor(() => received.length === 4, { label: 'all four messages heard' });
      });
    }

    t.test('epochs are per channel', async (t) => {
      const backplane = await make(t, history);
      const a = await backplane.readHistory(userChannel(`ep-a-${name}`), undefined, 1);
      const b = await backplane.readHistory(userChannel(`ep-b-${name}`), undefined, 1);
      t.not(a.epoch, b.epoch);
      t.match(a.epoch, /^[0-9a-f]{12}$/);
    });
  });
}
