// Presence and the fleet-wide cap on a Redis Cluster (3 masters with a replica each), three
// replica processes: the scenarios of test/e2e/fleet-presence.test.ts with users and topics whose
// keys land on different masters, and two kill -9s of a master while a user on it holds the whole
// cap: first the one that holds the fleet's own keys (the `{fleet}` hash tag: every replica's
// heartbeat key and the index of replicas), then another.
import t, { type Test } from 'tap';
import { fleetEnv, withFleet } from '../helpers/fleet.js';
import { PresenceChecks, REPLICA_START_TIMEOUT_MS, recoveryBoundMs } from '../helpers/presence.js';
import { type ClusterNode, startRedisCluster } from '../helpers/redis-cluster.js';
import { startReplicas } from '../helpers/replica.js';

/**
 * Short, so the kill -9 test is quick; a heartbeat every 500 ms. Shorter than a master's failover
 * (about 4 s with cluster-node-timeout 2000), so every instance key expires meanwhile and every
 * replica rejoins under a new instance id: the path this test shows (sentinel-presence.test.ts
 * shows the other, counts repaired in place).
 */
const PRESENCE_TTL_MS = 1500;
const CAP = 16;
const RECOVERY_BOUND_MS = recoveryBoundMs(PRESENCE_TTL_MS);

// A dead master's slots stop answering, but the other shards go on (as in cluster-failover.test.ts).
const cluster = await startRedisCluster(t, { extraArgs: ['--cluster-require-full-coverage', 'no'] });
const fleet = withFleet(
  cluster,
  await startReplicas(t, 3, fleetEnv(cluster, { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS), MAX_CONNECTIONS_PER_USER: String(CAP), PROBE_INTERVAL_MS: '500' }), {
    timeoutMs: REPLICA_START_TIMEOUT_MS,
  }),
);
const presence = new PresenceChecks(fleet, { presenceTtlMs: PRESENCE_TTL_MS, cap: CAP });

const masters = await cluster.masters();
/** The slot map as the nodes last told it (read again after the failover). */
let view = await cluster.view();
const ownerOf = (key: string): ClusterNode => {
  const slot = cluster.slotOf(key);
  const owner = view.find((e) => e.flags.includes('master') && e.slots.some(([lo, hi]) => slot >= lo && slot <= hi));
  if (owner === undefined) throw new Error(`no master serves slot ${slot}`);
  return cluster.node(owner.id);
};
/** The master of a user's keys (its channel, history and presence share one hash tag). */
const userMaster = (userId: string): ClusterNode => ownerOf(`sb:{u:${userId}}:presence`);
const topicMaster = (topic: string): ClusterNode => ownerOf(`sb:{t:${topic}}:presence`);
/** The first `${prefix}-<n>` whose keys land on `master`. */
function nameOn(prefix: string, master: ClusterNode, masterOf: (name: string) => ClusterNode): string {
  for (let n = 0; n < 10_000; n++) if (masterOf(`${prefix}-${n}`) === master) return `${prefix}-${n}`;
  throw new Error(`no ${prefix}-<n> on ${master.addr}`);
}
const fleetMaster = ownerOf('sb:{fleet}:instances');
const [m1, m2, m3] = masters as [ClusterNode, ClusterNode, ClusterNode];
t.equal(masters.length, 3, 'three masters');

t.test('Cluster: presence counts are exact across 3 replicas, for users and topics on different masters', async (t) => {
  const users: [string, string, string] = [nameOn('alice', m1, userMaster), nameOn('bob', m2, userMaster), nameOn('carol', m3, userMaster)];
  const topics: [string, string] = [nameOn('news', m2, topicMaster), nameOn('sport', m3, topicMaster)];
  t.equal(new Set(users.map(userMaster)).size, 3, `the users' keys are on three masters: ${users.map((u) => `${u} on ${userMaster(u).addr}`).join(', ')}`);
  t.comment(`topics: ${topics.map((topic) => `${topic} on ${topicMaster(topic).addr}`).join(', ')}`);
  await presence.exactCounts(t, { users, topics, nobody: nameOn('nobody', m1, userMaster) });
});

t.test('Cluster: the 17th stream of a user gets 429 on any replica, and a close frees a slot, on every master', async (t) => {
  for (const master of masters) {
    const user = nameOn('capped', master, userMaster);
    await t.test(`${user}, on ${master.addr}`, (t) => presence.capAcrossReplicas(t, user));
  }
});

/** The failover step of `acrossRedisFailover`: kill -9 this master, then wait until the cluster has settled. */
const killMaster = (t: Test, master: ClusterNode, label: string) => ({
  label,
  kill: async () => {
    await cluster.killMaster(master);
  },
  failedOver: async () => {
    const { ms, promoted } = await cluster.waitForFailover();
    t.comment(`the cluster settled ${ms} ms after the kill, ${promoted.map((node) => node.addr).join(', ')} serving the dead master's slots`);
  },
});

t.test("Cluster: kill -9 the master of the fleet's keys; after the failover the counts are exact again and the cap leaks no slot", async (t) => {
  const user = nameOn('erin', fleetMaster, userMaster);
  const topic = nameOn('weather', fleetMaster, topicMaster);
  t.comment(`the fleet's keys, ${user} and ${topic} on ${fleetMaster.addr}`);
  await presence.acrossRedisFailover(t, user, topic, killMaster(t, fleetMaster, "Cluster, kill -9 of the fleet keys' master"), RECOVERY_BOUND_MS);
});

t.test("Cluster: kill -9 a master without the fleet's keys; the other shards' heartbeats go on, and the counts are repaired in place", async (t) => {
  view = await cluster.view();
  const fleetNow = ownerOf('sb:{fleet}:instances');
  const candidates: ClusterNode[] = [];
  for (const master of await cluster.masters()) if (master !== fleetNow && (await cluster.replicasOf(master)).length > 0) candidates.push(master);
  const victim = candidates[0];
  if (victim === undefined) throw new Error('no live master with a replica, other than the one of the fleet keys');
  const user = nameOn('frank', victim, userMaster);
  const topic = nameOn('traffic', victim, topicMaster);
  t.comment(`${user} and ${topic} on ${victim.addr}; the fleet's keys on ${fleetNow.addr}`);
  await presence.acrossRedisFailover(t, user, topic, killMaster(t, victim, "Cluster, kill -9 of a master without the fleet's keys"), RECOVERY_BOUND_MS);
});

t.test('Cluster: a replica killed with SIGKILL leaves every count, and its slots of the cap, within PRESENCE_TTL_MS', async (t) => {
  // The user's keys on one live master, the topic's on another.
  view = await cluster.view();
  const live = await cluster.masters();
  const [a, b] = live as [ClusterNode, ClusterNode];
  await presence.killReplica(t, nameOn('dave', a, userMaster), nameOn('games', b, topicMaster));
});
