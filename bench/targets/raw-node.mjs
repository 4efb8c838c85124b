// The bare node:http reference (bench/peers/raw-node.mjs) in Switchboard's topology: Redis plus
// three processes, one ioredis subscriber each.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNodeFleet } from './node-fleet.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const info = { name: 'raw-node', label: 'bare node:http (3 procs + Redis)', system: 'raw' };

export function start({ logDir, replicas = 3, nodeArgs = [] }) {
  return startNodeFleet(
    {
      logDir,
      logName: 'raw-node.log',
      replicas,
      readyPath: '/healthz',
      spawn: (port, _replica, redisUrl) => ({
        args: [...nodeArgs, join(ROOT, 'bench/peers/raw-node.mjs')],
        env: { PORT: String(port), REDIS_URL: redisUrl },
        cwd: ROOT,
      }),
    },
    { ...info, ctx: {} },
  );
}
