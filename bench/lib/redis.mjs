// A private redis-server for one target stack (never the system one on 6379), on a free port,
// with no persistence so memory and CPU are the pub/sub + history work only.
import { openSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, spawnServer, stopServer } from './procs.mjs';

export async function startRedis(logPath) {
  const port = await freePort();
  const child = spawnServer(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxclients', '10000', '--protected-mode', 'no'],
    { log: logPath ? openSync(logPath, 'a') : undefined },
  );
  await waitForPong(port, child);
  return { port, url: `redis://127.0.0.1:${port}`, pid: child.pid, stop: () => stopServer(child) };
}

async function waitForPong(port, child) {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error('redis-server exited at start');
    const ok = await new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => s.write('PING\r\n'));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(30);
  }
  throw new Error(`redis-server on ${port} did not answer PING`);
}
