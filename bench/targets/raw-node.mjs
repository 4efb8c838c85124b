// The bare node:http reference (bench/peers/raw-node.mjs) in Switchboard's topology: Redis plus
// three processes, one ioredis subscriber each.
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis } from '../lib/redis.mjs';
import { freePort, spawnServer, stopServer, waitHttpOk } from '../lib/procs.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const info = { name: 'raw-node', label: 'bare node:http (3 procs + Redis)', system: 'raw' };

export async function start({ logDir, replicas = 3, nodeArgs = [] }) {
  const log = openSync(join(logDir, 'raw-node.log'), 'a');
  const redis = await startRedis(join(logDir, 'redis.log'));
  const children = [];
  const ports = [];
  for (let r = 0; r < replicas; r++) {
    const port = await freePort();
    children.push(spawnServer(process.execPath, [...nodeArgs, join(ROOT, 'bench/peers/raw-node.mjs')], {
      cwd: ROOT, log, env: { PORT: String(port), REDIS_URL: redis.url },
    }));
    ports.push(port);
  }
  await Promise.all(children.map((c, r) => waitHttpOk(ports[r], '/healthz', 10000, c)));
  return {
    ...info,
    ctx: {},
    streamPorts: ports,
    publishPorts: ports,
    idlePorts: [ports[0]],
    children,
    idlePids: () => [children[0].pid],
    serverPids: () => [...children.map((c) => c.pid), redis.pid],
    redisPid: redis.pid,
    async stop() {
      await Promise.all(children.map((c) => stopServer(c)));
      await redis.stop();
    },
  };
}
