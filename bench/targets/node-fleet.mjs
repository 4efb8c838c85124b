// Redis plus N Node processes on free ports: the topology Switchboard and the bare node:http
// reference share, started and described the same way so the two are measured alike.
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { startRedis } from '../lib/redis.mjs';
import { freePort, spawnServer, stopServer, waitHttpOk } from '../lib/procs.mjs';

/**
 * @param {{ logDir: string, logName: string, replicas: number, readyPath: string, stopGraceMs?: number,
 *   spawn: (port: number, replica: number, redisUrl: string) => { args: string[], env: Record<string, string>, cwd: string } }} opts
 * @param {object} target the adapter's `info` plus its `ctx` (what the wire needs: secrets)
 */
export async function startNodeFleet({ logDir, logName, replicas, readyPath, stopGraceMs = 3000, spawn }, target) {
  const log = openSync(join(logDir, logName), 'a');
  const redis = await startRedis(join(logDir, 'redis.log'));
  const children = [];
  const ports = [];
  const stop = async () => {
    await Promise.all(children.map((c) => stopServer(c, stopGraceMs)));
    await redis.stop();
  };
  try {
    for (let r = 0; r < replicas; r++) {
      const port = await freePort();
      const { args, env, cwd } = spawn(port, r, redis.url);
      children.push(spawnServer(process.execPath, args, { cwd, log, env }));
      ports.push(port);
    }
    await Promise.all(children.map((c, r) => waitHttpOk(ports[r], readyPath, 20000, c)));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    ...target,
    streamPorts: ports,
    publishPorts: ports,
    idlePorts: [ports[0]],
    children,
    // The idle scenario puts every stream on the first process.
    idlePids: () => [children[0].pid],
    serverPids: () => [...children.map((c) => c.pid), redis.pid],
    redisPid: redis.pid,
    redisPort: redis.port,
    stop,
  };
}
