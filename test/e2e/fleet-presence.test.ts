// The fleet knows itself: presence counts and the per-user cap across three replica processes on
// one real Redis, Redis killed and restarted empty under them, and a replica killed with SIGKILL
// dropping out of both within PRESENCE_TTL_MS.
// The same scenarios run on Sentinel (sentinel-presence.test.ts) and Cluster
// (test/serial/cluster-presence.test.ts); they live in test/helpers/presence.ts.
import t from 'tap';
import { fleetEnv, withFleet } from '../helpers/fleet.js';
import { PresenceChecks, REPLICA_START_TIMEOUT_MS, recoveryBoundMs } from '../helpers/presence.js';
import { startRedis } from '../helpers/redis-server.js';
import { startReplicas } from '../helpers/replica.js';

/** Short, so the kill -9 test is quick; a heartbeat every 500 ms (a third of it). */
const PRESENCE_TTL_MS = 1500;
const CAP = 16;
const RECOVERY_BOUND_MS = recoveryBoundMs(PRESENCE_TTL_MS);

const redis = await startRedis(t);
const fleet = withFleet(
  redis,
  await startReplicas(t, 3, fleetEnv(redis, { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS), MAX_CONNECTIONS_PER_USER: String(CAP) }), {
    timeoutMs: REPLICA_START_TIMEOUT_MS,
  }),
);
const presence = new PresenceChecks(fleet, { presenceTtlMs: PRESENCE_TTL_MS, cap: CAP });

t.test('presence counts are exact across 3 replicas after graceful opens and closes', (t) =>
  presence.exactCounts(t, { users: ['alice', 'bob', 'carol'], topics: ['news', 'sport'], nobody: 'nobody' }),
);

t.test('the per-user cap counts across replicas: the 17th stream gets 429 on any replica, and a close frees a slot', (t) =>
  presence.capAcrossReplicas(t, 'capped'),
);

t.test('Redis killed and restarted empty: the counts are exact again within a bound, and the cap leaks no slot', (t) =>
  presence.acrossRedisFailover(
    t,
    'erin',
    'weather',
    {
      label: 'one Redis, kill -9 and restarted empty',
      kill: () => redis.kill('SIGKILL'),
      failedOver: () => redis.restart(),
    },
    RECOVERY_BOUND_MS,
  ),
);

t.test('a replica killed with SIGKILL leaves every count, and its slots of the cap, within PRESENCE_TTL_MS', (t) => presence.killReplica(t, 'dave', 'games'));
