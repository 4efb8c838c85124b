// Switchboard as shipped: Redis plus three replicas (`node dist/main.js`), configured only through
// the environment, as in production. Streams of the idle scenario all go to replica 0.
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis } from '../lib/redis.mjs';
import { freePort, spawnServer, stopServer, waitHttpOk } from '../lib/procs.mjs';

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
export async function start({ logDir, replicas = 3, nodeArgs = [], root = ROOT, cwd = root }) {
  const log = openSync(join(logDir, 'switchboard.log'), 'a');
  const redis = await startRedis(join(logDir, 'redis.log'));
  const children = [];
  const ports = [];
  try {
    for (let r = 0; r < replicas; r++) {
      const port = await freePort();
      const child = spawnServer(process.execPath, [...nodeArgs, join(root, 'dist/main.js')], {
        cwd,
        log,
        env: {
          REDIS_URL: redis.url,
          PORT: String(port),
          HOST: '127.0.0.1',
          REPLICA_ID: `bench-r${r}`,
          STREAM_TOKEN_SECRET: SECRET,
          PUBLISH_API_KEY: API_KEY,
          LOG_LEVEL: 'warn',
          MAX_CONNECTIONS: '50000',
          MAX_CONNECTIONS_PER_USER: '16',
          HEARTBEAT_MS: '15000',
          HISTORY_MAX_LEN: '1000',
          OTEL_SDK_DISABLED: 'true',
        },
      });
      children.push(child);
      ports.push(port);
    }
    await Promise.all(children.map((c, r) => waitHttpOk(ports[r], '/readyz', 20000, c)));
  } catch (err) {
    await Promise.all(children.map((c) => stopServer(c)));
    await redis.stop();
    throw err;
  }
  return {
    ...info,
    ctx: { secret: SECRET, apiKey: API_KEY },
    streamPorts: ports,
    publishPorts: ports,
    idlePorts: [ports[0]],
    children,
    idlePids: () => [children[0].pid],
    serverPids: () => [...children.map((c) => c.pid), redis.pid],
    redisPid: redis.pid,
    redisPort: redis.port,
    async stop() {
      await Promise.all(children.map((c) => stopServer(c, 12000)));
      await redis.stop();
    },
  };
}
