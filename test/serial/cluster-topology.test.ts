// Redis Cluster topology changes under a live ClusterBackplane: a manual CLUSTER FAILOVER and a
// slot migration. Only the channels whose owner changed are reported lost and then resubscribed
// (confirmed on the new owner), soon after the change; channels on other shards are untouched.
// Meanwhile three replica processes carry streams while events are published through the change:
// every user gets every accepted event exactly once, in order (a `reset` only where the history
// read afterwards proves an acknowledged write was lost).
import t, { type Test } from 'tap';
import { pino } from 'pino';
import type { ChannelMessage } from '../../src/backplane/backplane.js';
import { ClusterBackplane } from '../../src/backplane/cluster-backplane.js';
import { createClusterConnections } from '../../src/backplane/redis-connections.js';
import { userChannel, type ChannelName } from '../../src/backplane/redis-keys.js';
import { SwitchboardError } from '../../src/errors.js';
import { ZERO_POSITION } from '../../src/history/cursor.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../helpers/fleet.js';
import { postJson, retryPause } from '../helpers/http.js';
import { clusterSettings, startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import type { TeardownHost } from '../helpers/redis-server.js';
import { startReplicas } from '../helpers/replica.js';
import { openSse, type SseConnection } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait-for.js';
import { checkDelivery } from '../helpers/delivery-check.js';

const silent = pino({ level: 'silent' });

async function backplaneOn(t: TeardownHost, cluster: RedisCluster) {
  const connections = createClusterConnections(clusterSettings(cluster), 'topology-test', silent);
  const backplane = new ClusterBackplane(connections, {
    historyMaxLen: 1000,
    historyTtlSeconds: 60,
    replicaId: 'topology-test',
    probeIntervalMs: 500,
    waitReplicas: 0,
    logger: silent,
  });
  t.teardown(async () => {
    await backplane.close();
    connections.commands.disconnect();
  });
  await backplane.start();
  const lost: { at: number; channels: readonly ChannelName[] }[] = [];
  const back: { at: number; channels: readonly ChannelName[] }[] = [];
  const received: ChannelMessage[] = [];
  backplane.onSubscriberLost((channels) => lost.push({ at: performance.now(), channels: channels ?? [] }));
  backplane.onResubscribed((channels) => back.push({ at: performance.now(), channels: channels ?? [] }));
  backplane.onMessage((message) => received.push(message));
  return { backplane, lost, back, received };
}

/** Events per second published through the replicas while the topology changes. */
const RATE_PER_SECOND = 100;
/** Bound on one traffic run (it stops well before, when the test says so). */
const MAX_EVENTS = 6000;

interface Traffic {
  /** Per user: seq of each event in arrival order, -1 for a reset. */
  received: Map<string, number[]>;
  /** Per user: the seqs a replica accepted (202), in order. */
  accepted: Map<string, number[]>;
  retried(): number;
  /** Stops publishing and waits for every publish in flight to be accepted. */
  stop(): Promise<void>;
}

/**
 * Three replicas on `cluster`, a raw SSE stream per user spread over them, and events published
 * at a steady pace to `pick(seq)`, each retried with its idempotency id until accepted (a 503
 * while a slot moves or fails over is the sender's to retry).
 */
async function traffic(t: Test, cluster: RedisCluster, users: string[], pick: (seq: number) => string): Promise<Traffic> {
  const replicas = await startReplicas(t, 3, {
    REDIS_CLUSTER_NODES: cluster.seeds.join(','),
    STREAM_TOKEN_SECRET,
    PUBLISH_API_KEY,
    ALLOW_UNSIGNED_CALLBACKS: 'true',
    PROBE_INTERVAL_MS: '500',
  });
  const received = new Map<string, number[]>();
  const accepted = new Map<string, number[]>(users.map((user) => [user, []]));
  const connections: SseConnection[] = [];
  t.teardown(() => connections.forEach((c) => c.close()));
  await Promise.all(
    users.map(async (user, i) => {
      const via = replicas[i % replicas.length]!;
      const minted = await postJson(`${via.url}/v1/tokens`, { userId: user }, { bearer: PUBLISH_API_KEY });
      const connection = await waitOpen(await openSse(`${via.url}/stream/${user}?token=${minted.json.token}`), user);
      connections.push(connection);
      const seqs: number[] = [];
      received.set(user, seqs);
      // Called on every chunk: records each new event. Never true; ends with the connection.
      connection
        .waitFor(() => {
          for (const event of connection.events.slice(seqs.length)) seqs.push(event.type === 'reset' ? -1 : (JSON.parse(event.data).seq as number));
          return false;
        }, 300_000)
        .catch(() => {});
    }),
  );
  let retried = 0;
  let stopped = false;
  const chains = new Map<string, Promise<void>>();
  const publishUntilAccepted = async (seq: number, user: string): Promise<void> => {
    const via = replicas[seq % replicas.length]!;
    for (let attempt = 0; ; attempt++) {
      const answer = await postJson(`${via.url}/v1/users/${user}/events`, { id: `seq-${seq}`, data: { seq } }, { bearer: PUBLISH_API_KEY }).catch(
        () => undefined,
      );
      if (answer?.status === 202) break;
      retried++;
      if (attempt >= 200) throw new Error(`publish ${seq} kept failing: ${answer?.status} ${answer?.text}`);
      await retryPause(answer);
    }
    accepted.get(user)!.push(seq);
  };
  const loop = (async () => {
    const started = performance.now();
    for (let seq = 0; !stopped && seq < MAX_EVENTS; seq++) {
      const user = pick(seq);
      chains.set(
        user,
        (chains.get(user) ?? Promise.resolve()).then(() => publishUntilAccepted(seq, user)),
      );
      const wait = started + ((seq + 1) * 1000) / RATE_PER_SECOND - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the publisher's pace
    }
  })();
  // Some events before the change.
  await waitFor(() => [...accepted.values()].reduce((n, seqs) => n + seqs.length, 0) >= RATE_PER_SECOND, {
    timeoutMs: 10_000,
    label: 'a second of events accepted',
  });
  return {
    received,
    accepted,
    retried: () => retried,
    async stop() {
      stopped = true;
      await loop;
      await Promise.all(chains.values());
    },
  };
}

/** Every user got every accepted event once, in order; a reset only where history proves a lost write. */
function checkRun(t: Test, cluster: RedisCluster, run: Traffic): Promise<void> {
  return checkDelivery(t, run.received, run.accepted, (user) => cluster.call(`sb:{u:${user}}:hist`, 'XRANGE', `sb:{u:${user}}:hist`, '-', '+'), 15_000);
}

const publish = (backplane: ClusterBackplane, channel: ChannelName, data: unknown) =>
  backplane.publish({ channel, header: { t: 'message', a: Date.now() }, dataJson: JSON.stringify(data) });

t.test(
  "manual CLUSTER FAILOVER mid-stream: only that shard's channels are lost and resubscribed, within about a second; every stream gets every accepted event once, in order",
  async (t) => {
    const cluster = await startRedisCluster(t);
    const { backplane, lost, back, received } = await backplaneOn(t, cluster);
    const channels = Array.from({ length: 30 }, (_, i) => userChannel(`fo-${i}`));
    await backplane.subscribe(channels);
    const [master] = await cluster.masters();
    const [replica] = await cluster.replicasOf(master!);
    const owned = new Set<ChannelName>();
    for (const channel of channels) if ((await cluster.masterOfSlot(cluster.slotOf(channel))) === master) owned.add(channel);
    t.ok(owned.size > 0 && owned.size < channels.length, `${owned.size} of ${channels.length} channels on the failed-over shard`);
    const users = Array.from({ length: 30 }, (_, i) => `fo-live-${i}`);
    const onShard = [];
    for (const user of users) if ((await cluster.masterOfSlot(cluster.slotOf(`sb:{u:${user}}:ch`))) === master) onShard.push(user);
    t.ok(onShard.length > 0 && onShard.length < users.length, `${onShard.length} of ${users.length} streamed users on the failed-over shard`);
    const run = await traffic(t, cluster, users, (seq) => users[seq % users.length]!);

    // When the replica took over, as it says itself: noticing is measured from there.
    let promotedAt = 0;
    const promotion = waitFor(
      async () => {
        const role = (await replica!.command('ROLE')) as unknown[];
        if (role[0] !== 'master') throw new Error(`${replica!.addr} is still a ${String(role[0])}`);
        promotedAt = performance.now();
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 10, label: 'the replica promoted' },
    );
    const started = performance.now();
    const { ms } = await cluster.failover(replica!);
    await promotion;
    await waitFor(() => [...owned].every((c) => back.some((b) => b.channels.includes(c))), { timeoutMs: 5000, label: "the shard's channels resubscribed" });
    const lostChannels = new Set(lost.flatMap((l) => l.channels));
    t.same([...lostChannels].sort(), [...owned].sort(), "exactly the failed-over shard's channels were reported lost");
    const backAt = Math.max(...back.map((b) => b.at)) - started;
    t.comment(`CLUSTER FAILOVER settled in ${ms} ms; channels back ${backAt.toFixed(0)} ms after the command`);
    t.ok(backAt < ms + 1500, 'resubscribed within about a second of the failover settling');
    const noticedMs = Math.min(...lost.map((l) => l.at)) - promotedAt;
    t.comment(
      `ownership change noticed ${noticedMs.toFixed(0)} ms after the replica reported itself master (${(promotedAt - started).toFixed(0)} ms after the command; ROLE polled every 10 ms, so below 0 means before the poll saw it)`,
    );
    t.ok(noticedMs < 1000, 'the ownership change was noticed within a second of it (the dropped channels, not the probe)');

    // The first command to the promoted master may find ioredis still opening its connection:
    // a 503 the sender retries (the script ran nowhere), as the traffic above does.
    let refusedAfterFailover = 0;
    for (const [i, channel] of channels.entries()) {
      const published = await waitFor(
        () =>
          publish(backplane, channel, i).catch((err: unknown) => {
            if (!(err instanceof SwitchboardError) || err.code !== 'backplane_unavailable') throw err;
            refusedAfterFailover++;
            return undefined;
          }),
        { timeoutMs: 5_000, intervalMs: 50, label: `${channel} accepted after the failover` },
      );
      t.equal(published.receivers, 1, `${channel}: heard on its owner after the failover`);
    }
    t.comment(`${refusedAfterFailover} publishes refused (503) right after the failover and retried`);
    await waitFor(() => received.length >= channels.length, { label: 'every channel heard' });
    t.ok(backplane.isReady(), 'ready');

    const acceptedSoFar = (): number => [...run.accepted.values()].reduce((n, seqs) => n + seqs.length, 0);
    const mark = acceptedSoFar();
    await waitFor(() => acceptedSoFar() >= mark + RATE_PER_SECOND, { timeoutMs: 10_000, label: 'a second more of events accepted after the failover' });
    await run.stop();
    t.comment(`${acceptedSoFar()} events accepted through the failover, ${run.retried()} publish attempts refused and retried`);
    await checkRun(t, cluster, run);
  },
);

t.test(
  "slot migration mid-stream: only the moved slot's channel is lost and resubscribed on its new master; every stream gets every accepted event once, in order",
  async (t) => {
    const cluster = await startRedisCluster(t);
    const { backplane, lost, back, received } = await backplaneOn(t, cluster);
    const channels = Array.from({ length: 12 }, (_, i) => userChannel(`mig-${i}`));
    await backplane.subscribe(channels);
    const moving = channels[0]!;
    const slot = cluster.slotOf(moving);
    const from = await cluster.masterOfSlot(slot);
    const to = (await cluster.masters()).find((m) => m !== from)!;
    const sameSlot = channels.filter((c) => cluster.slotOf(c) === slot);
    // Streamed users in the moving slot (half the events go to them) and elsewhere.
    const movingUsers: string[] = [];
    for (let i = 0; movingUsers.length < 4 && i < 500_000; i++) if (cluster.slotOf(`sb:{u:mig-live-${i}}:ch`) === slot) movingUsers.push(`mig-live-${i}`);
    t.equal(movingUsers.length, 4, 'streamed users whose channel is in the moving slot');
    const otherUsers = Array.from({ length: 12 }, (_, i) => `mig-other-${i}`);
    const run = await traffic(t, cluster, [...movingUsers, ...otherUsers], (seq) =>
      seq % 2 === 0 ? movingUsers[(seq / 2) % movingUsers.length]! : otherUsers[((seq - 1) / 2) % otherUsers.length]!,
    );
    await publish(backplane, moving, 'before');
    const { keys, ms } = await cluster.migrateSlot(slot, to);
    t.comment(`slot ${slot} migrated with ${keys} keys in ${ms} ms while events flowed`);
    await waitFor(() => back.some((b) => b.channels.includes(moving)), { timeoutMs: 5000, label: 'the moved channel resubscribed' });
    t.same([...new Set(lost.flatMap((l) => l.channels))].sort(), sameSlot.sort(), "only the moved slot's channels were reported lost");
    const after = await publish(backplane, moving, 'after');
    t.equal(after.receivers, 1, 'heard on the new master');
    await waitFor(() => received.some((m) => m.dataJson === '"after"'), { label: 'the message after the move' });
    const history = await backplane.readHistory(moving, ZERO_POSITION, 10);
    t.same(
      history.entries.map((m) => m.dataJson),
      ['"before"', '"after"'],
      'history moved with the slot',
    );

    const acceptedSoFar = (): number => [...run.accepted.values()].reduce((n, seqs) => n + seqs.length, 0);
    const mark = acceptedSoFar();
    await waitFor(() => acceptedSoFar() >= mark + RATE_PER_SECOND, { timeoutMs: 10_000, label: 'a second more of events accepted after the migration' });
    await run.stop();
    t.comment(`${acceptedSoFar()} events accepted through the migration, ${run.retried()} publish attempts refused and retried`);
    await checkRun(t, cluster, run);
  },
);
