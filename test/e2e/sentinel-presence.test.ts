// Presence and the fleet-wide cap on Redis behind Sentinel (a master, its replica, three
// sentinels), three replica processes: the scenarios of fleet-presence.test.ts, and a kill -9 of
// the master while a user holds the whole cap. After the failover the counts are exact again, and
// the cap has exactly the slots freed during the outage: none leaked, none counted twice.
import t from 'tap';
import { fleetEnv, withFleet } from '../helpers/fleet.js';
import { PresenceChecks, REPLICA_START_TIMEOUT_MS, recoveryBoundMs } from '../helpers/presence.js';
import { startRedisSentinel } from '../helpers/redis-sentinel.js';
import { startReplicas } from '../helpers/replica.js';

/**
 * Longer than the failover takes (the master is noticed down after 2 s, a replica promoted about
 * 1.5 s later, and the replicas reconnect within 1 s): the instance keys outlive the outage, so
 * this test shows the counts repaired in place. cluster-presence.test.ts, whose TTL is shorter
 * than its failover, shows the other path: every replica rejoining under a new instance id.
 */
const PRESENCE_TTL_MS = 10_000;
const CAP = 16;
const RECOVERY_BOUND_MS = recoveryBoundMs(PRESENCE_TTL_MS);

const sentinel = await startRedisSentinel(t);
const fleet = withFleet(
  sentinel,
  await startReplicas(t, 3, fleetEnv(sentinel, { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS), MAX_CONNECTIONS_PER_USER: String(CAP), PROBE_INTERVAL_MS: '500' }), {
    timeoutMs: REPLICA_START_TIMEOUT_MS,
  }),
);
const presence = new PresenceChecks(fleet, { presenceTtlMs: PRESENCE_TTL_MS, cap: CAP });

t.test('Sentinel: presence counts are exact across 3 replicas after graceful opens and closes', (t) =>
  presence.exactCounts(t, { users: ['alice', 'bob', 'carol'], topics: ['news', 'sport'], nobody: 'nobody' }),
);

t.test('Sentinel: the 17th stream of a user gets 429 on any replica, and a close frees a slot', (t) => presence.capAcrossReplicas(t, 'capped'));

t.test('Sentinel: kill -9 the master; after the failover the counts are exact again and the cap leaks no slot', (t) =>
  presence.acrossRedisFailover(
    t,
    'erin',
    'weather',
    {
      label: 'Sentinel, kill -9 of the master',
      kill: async () => {
        await sentinel.killMaster();
      },
      failedOver: async () => {
        const { ms } = await sentinel.waitForFailover();
        t.comment(`the sentinels promoted the replica ${ms} ms after the kill`);
      },
    },
    RECOVERY_BOUND_MS,
  ),
);

t.test('Sentinel: a replica killed with SIGKILL leaves every count, and its slots of the cap, within PRESENCE_TTL_MS', (t) =>
  presence.killReplica(t, 'dave', 'games'),
);
