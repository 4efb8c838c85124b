// REDIS_WAIT_REPLICAS=1 on a Redis Cluster: a publish is answered 202 only once a replica of the
// master that ran it holds the event. One WAIT per batch per master (group commit), on the very
// connection that ran the script. A master whose replica is paused or killed gets 503 (with
// Retry-After) within the WAIT bound; publishes on the other masters go on being acknowledged.
import t from 'tap';
import { pino } from 'pino';
import { ClusterBackplane } from '../../src/backplane/cluster-backplane.js';
import { createClusterConnections } from '../../src/backplane/redis-connections.js';
import { userChannel } from '../../src/backplane/redis-keys.js';
import { REPLICATION_WAIT_TIMEOUT_MS } from '../../src/backplane/replication-wait.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { postJson } from '../helpers/http.js';
import { clusterSettings, startRedisCluster, type ClusterNode, type RedisCluster } from '../helpers/redis-cluster.js';
import { redisPipeline } from '../helpers/redis-server.js';
import { startReplica } from '../helpers/replica.js';
import { waitFor } from '../helpers/wait-for.js';

/** The replication WAIT bound (src/backplane/replication-wait.ts) plus the request's own time. */
const REFUSED_WITHIN_MS = REPLICATION_WAIT_TIMEOUT_MS + 750;
/** Publishes sent at once to each master in the group-commit check. */
const BURST_PER_MASTER = 40;

/** One user per master, found by slot. */
async function userPerMaster(cluster: RedisCluster, prefix: string): Promise<Map<ClusterNode, string>> {
  const view = await cluster.view();
  const users = new Map<ClusterNode, string>();
  for (let i = 0; users.size < 3 && i < 10_000; i++) {
    const slot = cluster.slotOf(`sb:{u:${prefix}-${i}}:ch`);
    const owner = view.find((e) => e.flags.includes('master') && e.slots.some(([lo, hi]) => slot >= lo && slot <= hi));
    const node = cluster.node(owner!.id);
    if (!users.has(node)) users.set(node, `${prefix}-${i}`);
  }
  return users;
}

/** XLEN of the user's history as the Redis replica `node` holds it (READONLY: a replica answers reads of its master's slots). */
async function heldBy(node: ClusterNode, user: string): Promise<number> {
  const replies = await redisPipeline(node.port, [['READONLY'], ['XLEN', `sb:{u:${user}}:hist`]]);
  return Number(replies[1]);
}

async function waitCalls(node: ClusterNode): Promise<number> {
  const stats = String(await node.cli('INFO', 'commandstats'));
  return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

t.test(
  'Cluster with REDIS_WAIT_REPLICAS=1: 202 means a replica of that master holds the event; a master without one answers 503, the others 202',
  async (t) => {
    const cluster = await startRedisCluster(t, { extraArgs: ['--cluster-require-full-coverage', 'no'] });
    const replica = await startReplica(t, {
      REDIS_CLUSTER_NODES: cluster.seeds.join(','),
      REDIS_WAIT_REPLICAS: '1',
      STREAM_TOKEN_SECRET,
      PUBLISH_API_KEY,
      ALLOW_UNSIGNED_CALLBACKS: 'true',
    });
    const publish = (user: string, n: number) => postJson(`${replica.url}/v1/users/${user}/events`, { data: { n }, id: `n-${n}` }, { bearer: PUBLISH_API_KEY });
    const users = await userPerMaster(cluster, 'durable');
    t.equal(users.size, 3, 'a user on each master');

    for (const [master, user] of users) {
      const answer = await publish(user, 1);
      t.equal(answer.status, 202, `${user} on ${master.addr}: acknowledged`);
      const [standby] = await cluster.replicasOf(master);
      t.equal(await heldBy(standby!, user), 1, `and ${standby!.addr}, its replica, holds it`);
    }

    const [paused, other1, other2] = [...users.keys()] as [ClusterNode, ClusterNode, ClusterNode];
    const [standby] = await cluster.replicasOf(paused);
    standby!.pause();
    const started = performance.now();
    const refused = await publish(users.get(paused)!, 2);
    const tookMs = performance.now() - started;
    t.equal(refused.status, 503, "the paused replica's master: 503, never a 2xx");
    t.equal(refused.json?.code, 'backplane_unavailable', 'as backplane_unavailable');
    t.ok(refused.headers['retry-after'], 'with Retry-After');
    t.ok(tookMs < REFUSED_WITHIN_MS, `answered within the WAIT bound (${tookMs.toFixed(0)} ms)`);
    t.equal((await publish(users.get(other1)!, 2)).status, 202, 'another master: still acknowledged');
    t.equal((await publish(users.get(other2)!, 2)).status, 202, 'and the third');

    standby!.resume();
    await waitFor(async () => (await publish(users.get(paused)!, 3)).status === 202, { timeoutMs: 10_000, label: 'acknowledged again once the replica runs' });
    t.pass('acknowledged again once its replica runs again');

    await standby!.kill('SIGKILL');
    t.equal((await publish(users.get(paused)!, 4)).status, 503, 'its replica killed: 503');
    t.equal((await publish(users.get(other1)!, 4)).status, 202, 'the other masters: 202');
  },
);

t.test('Cluster group commit: one WAIT per batch per master, not one per publish', async (t) => {
  const cluster = await startRedisCluster(t);
  const silent = pino({ level: 'silent' });
  const connections = createClusterConnections(clusterSettings(cluster), 'wait-test', silent);
  const backplane = new ClusterBackplane(connections, {
    historyMaxLen: 1000,
    historyTtlSeconds: 60,
    replicaId: 'wait-test',
    probeIntervalMs: 60_000,
    waitReplicas: 1,
    logger: silent,
  });
  t.teardown(async () => {
    await backplane.close();
    connections.commands.disconnect();
  });
  await backplane.start();
  const users = await userPerMaster(cluster, 'burst');
  const before = new Map(await Promise.all([...users.keys()].map(async (m) => [m, await waitCalls(m)] as const)));
  const results = await Promise.all(
    [...users.values()].flatMap((user) =>
      Array.from({ length: BURST_PER_MASTER }, (_, i) =>
        backplane.publish({ channel: userChannel(user), header: { t: 'message', a: Date.now() }, dataJson: String(i) }),
      ),
    ),
  );
  t.equal(results.length, 3 * BURST_PER_MASTER, 'every publish acknowledged');
  for (const [master, user] of users) {
    const waits = (await waitCalls(master)) - before.get(master)!;
    t.ok(waits >= 1 && waits < BURST_PER_MASTER / 2, `${master.addr}: ${waits} WAIT(s) for ${BURST_PER_MASTER} publishes`);
    const [standby] = await cluster.replicasOf(master);
    t.equal(await heldBy(standby!, user), BURST_PER_MASTER, `its replica holds all ${BURST_PER_MASTER}`);
  }
});
