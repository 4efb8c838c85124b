// The fleet knows itself: presence counts and the per-user cap across three replica processes on
// one real Redis, Redis killed and restarted empty under them, and a replica killed with SIGKILL
// dropping out of both within PRESENCE_TTL_MS.
// The same scenarios run on Sentinel (sentinel-presence.test.ts) and Cluster
// (test/serial/cluster-presence.test.ts); they live in test/helpers/presence.ts.
import t from 'tap';
import { heartbeatMsFor } from '../../src/fleet/redis-fleet.js';
import { fleetEnv, withFleet } from '../helpers/fleet.js';
import { PresenceChecks } from '../helpers/presence.js';
import { startRedis } from '../helpers/redis-server.js';
import { startReplicas } from '../helpers/replica.js';

/** Short, so the kill -9 test is quick; a heartbeat every 500 ms (a third of it). */
const PRESENCE_TTL_MS = 1500;
const CAP = 16;
/**
 * After Redis is back (empty, so every replica's heartbeat key is gone): a replica reconnects
 * within its backoff (at most 1 s), its next heartbeat rejoins under a new instance id and writes
 * the user counts, the next topic flush (every 500 ms) the topic counts; plus 2 s for a loaded
 * 2-core machine.
 */
const RECOVERY_BOUND_MS = 1000 + heartbeatMsFor(PRESENCE_TTL_MS) + 500 + 2000;

/** A replica starts in about a second, but this shared 2-core host under load has taken over 30 s. */
const START_TIMEOUT_MS = 120_000;

const redis = await startRedis(t);
const fleet = withFleet(
  redis,
  await startReplicas(t, 3, fleetEnv(redis, { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS), MAX_CONNECTIONS_PER_USER: String(CAP) }), {
    timeoutMs: START_TIMEOUT_MS,
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
