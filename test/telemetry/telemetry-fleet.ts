// Replicas for the telemetry tests: the real service preloaded with dist/telemetry/start.js, the
// way `npm start` runs it, on one real redis-server.
import { fileURLToPath } from 'node:url';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, withFleet, type Fleet } from '../helpers/fleet.js';
import { startRedis } from '../helpers/redis-server.js';
import { startReplicas, type ReplicaEnv, type TeardownHost } from '../helpers/replica.js';

export const START_JS = fileURLToPath(new URL('../../dist/telemetry/start.js', import.meta.url));

/** Loading the SDK on a busy machine takes seconds; a replica gets this long to listen. */
const BOOT_TIMEOUT_MS = 60_000;

export async function startTelemetryFleet(t: TeardownHost, count: number, env: (index: number) => ReplicaEnv): Promise<Fleet> {
  const redis = await startRedis(t);
  const replicas = await startReplicas(
    t,
    count,
    (index) => ({ REDIS_URL: redis.url, STREAM_TOKEN_SECRET, PUBLISH_API_KEY, ALLOW_UNSIGNED_CALLBACKS: 'true', ...env(index) }),
    { nodeArgs: ['--import', START_JS], timeoutMs: BOOT_TIMEOUT_MS },
  );
  return withFleet(redis, replicas);
}
