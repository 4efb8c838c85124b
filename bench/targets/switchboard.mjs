// Switchboard as shipped: Redis plus three replicas (`node dist/main.js`), configured only through
// the environment, as in production. Streams of the idle scenario all go to replica 0.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNodeFleet } from './node-fleet.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECRET = 'bench-stream-token-secret-0123456789';
const API_KEY = 'bench-publish-api-key-0123456789';

export const info = {
  name: 'switchboard',
  label: 'Switchboard (3 replicas + Redis)',
  system: 'switchboard',
};

/**
 * @param {{ logDir: string, replicas?: number, nodeArgs?: string[], root?: string, cwd?: string }} opts
 *   root: the checkout whose dist/ runs (a --ref snapshot or this work tree); nodeArgs lets the
 *   profile pass add --cpu-prof / --heapsnapshot-signal.
 */
export function start({ logDir, replicas = 3, nodeArgs = [], root = ROOT, cwd = root }) {
  return startNodeFleet(
    {
      logDir,
      logName: 'switchboard.log',
      replicas,
      readyPath: '/readyz',
      stopGraceMs: 12000,
      spawn: (port, replica, redisUrl) => ({
        args: [...nodeArgs, join(root, 'dist/main.js')],
        cwd,
        env: {
          REDIS_URL: redisUrl,
          PORT: String(port),
          HOST: '127.0.0.1',
          REPLICA_ID: `bench-r${replica}`,
          STREAM_TOKEN_SECRET: SECRET,
          PUBLISH_API_KEY: API_KEY,
          // The benchmarks post no callbacks.
          ALLOW_UNSIGNED_CALLBACKS: 'true',
          LOG_LEVEL: 'warn',
          MAX_CONNECTIONS: '50000',
          MAX_CONNECTIONS_PER_USER: '16',
          HEARTBEAT_MS: '15000',
          HISTORY_MAX_LEN: '1000',
          OTEL_SDK_DISABLED: 'true',
        },
      }),
    },
    { ...info, ctx: { secret: SECRET, apiKey: API_KEY } },
  );
}
