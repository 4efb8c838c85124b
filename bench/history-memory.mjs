// What HISTORY_MAX_LEN costs in Redis memory: fill one channel's history with N events of a
// typical size through the real publish script, then ask Redis (MEMORY USAGE … SAMPLES 0).
// Usage: node bench/history-memory.mjs [--json]   (needs `npm run build` and redis-server on PATH)
// `npm run bench` runs it as its "history" scenario with --json and puts the table in its report.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { RedisBackplane } from '../dist/backplane/redis-backplane.js';
import { createRedisConnections } from '../dist/backplane/redis-connections.js';
import { userChannel, channelKeys } from '../dist/backplane/redis-keys.js';

const SIZES = [100, 1000, 10000];
const PAYLOADS = { small: { n: 1 }, typical: { status: 'done', correlationId: 'x'.repeat(24), rows: 42, note: 'y'.repeat(120) } };

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
const url = `redis://127.0.0.1:${port}`;
// redis-server takes a moment to listen: let ioredis retry until it is ready.
const probe = new Redis(url, { retryStrategy: (n) => (n > 100 ? null : 20) });
probe.on('error', () => {});
await new Promise((resolve) => probe.once('ready', resolve));
const logger = pino({ level: 'silent' });
const rows = [];
for (const size of SIZES) {
  for (const [kind, data] of Object.entries(PAYLOADS)) {
    const connections = createRedisConnections(
      { mode: 'standalone', url, username: undefined, password: undefined, tls: undefined, waitReplicas: 0 },
      `mem-${size}-${kind}`,
      logger,
    );
    const backplane = new RedisBackplane(connections, {
      historyMaxLen: size,
      historyTtlSeconds: 3600,
      replicaId: `mem-${size}-${kind}`,
      probeIntervalMs: 1000,
      waitReplicas: 0,
      logger,
    });
    await backplane.start();
    const channel = userChannel(`mem-${size}-${kind}`);
    const dataJson = JSON.stringify(data);
    for (let i = 0; i < size * 1.2; i++) {
      await backplane.publish({ channel, header: { t: 'message', a: Date.now() }, dataJson });
    }
    const keys = channelKeys(channel);
    const bytes = Number(await probe.call('MEMORY', 'USAGE', keys.history, 'SAMPLES', '0')) + Number(await probe.call('MEMORY', 'USAGE', keys.meta));
    const length = Number(await probe.xlen(keys.history));
    rows.push({
      historyMaxLen: size,
      payload: kind,
      dataBytes: dataJson.length,
      entriesKept: length,
      bytesPerChannel: bytes,
      bytesPerEntry: Math.round(bytes / length),
    });
    await backplane.close();
    connections.commands.disconnect();
    connections.subscriber.disconnect();
  }
}
await probe.quit();
server.kill('SIGKILL');
await once(server, 'exit');
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(rows));
  process.exit(0);
}
console.log('| HISTORY_MAX_LEN | event data | entries kept | Redis memory per channel | per entry |');
console.log('| ---: | --- | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.historyMaxLen} | ${r.payload} (${r.dataBytes} B) | ${r.entriesKept} | ${(r.bytesPerChannel / 1024).toFixed(1)} KiB | ${r.bytesPerEntry} B |`,
  );
}
