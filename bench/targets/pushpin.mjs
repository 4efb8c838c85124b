// Pushpin (Debian's package): one instance — condure (client connections), zurl (requests to the
// origin), pushpin-proxy and pushpin-handler — in front of bench/peers/pushpin-origin.mjs.
// Publishes go to the handler's HTTP publish endpoint. The handler's rate limiter
// (message_rate 2500/s, message_hwm 25000 by default) is lifted, as the issue asks, or a 10k
// broadcast would be paced over seconds by design. Its memory and CPU are Pushpin's processes
// summed; the origin is not counted (it is only asked once per stream open).
import { mkdtempSync, openSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, processTree, spawnServer, stopServer, waitForPort, waitHttpOk } from '../lib/procs.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BASE_CONF = '/usr/share/pushpin/pushpin.conf.condure';

export const info = { name: 'pushpin', label: 'Pushpin (1 instance)', system: 'pushpin' };

function portFree(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Pushpin's handler listens on 5560..5563 + port_offset: find an offset whose four ports are free. */
async function freeOffset() {
  for (let tries = 0; tries < 50; tries++) {
    const offset = 1000 + Math.floor(Math.random() * 20000);
    const free = await Promise.all([0, 1, 2, 3].map((k) => portFree(5560 + offset + k)));
    if (free.every(Boolean)) return offset;
  }
  throw new Error('no free port range for Pushpin');
}

function config(dir, offset) {
  let conf = readFileSync(BASE_CONF, 'utf8');
  const set = (key, value) => {
    conf = conf.replace(new RegExp(`^${key}=.*$`, 'm'), `${key}=${value}`);
  };
  set('include', '/usr/lib/pushpin/internal.conf');
  set('rundir', join(dir, 'run'));
  set('logdir', join(dir, 'log'));
  set('port_offset', String(offset));
  // condure alone cannot reach an origin in this build; zurl makes the origin requests.
  set('services', 'condure,zurl,pushpin-proxy,pushpin-handler');
  set('routesfile', join(dir, 'routes'));
  set('message_rate', '10000000');
  set('message_hwm', '10000000');
  set('log_level', '1');
  // Point the proxy at the zurl this runner starts (internal.conf names a system-wide one).
  conf = conf.replace(
    /^\[proxy\]$/m,
    `[proxy]
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out`,
  );
  return conf;
}

export async function start({ logDir }) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-pushpin-'));
  mkdirSync(join(dir, 'run'));
  mkdirSync(join(dir, 'log'));
  const log = openSync(join(logDir, 'pushpin.log'), 'a');
  const originPort = await freePort();
  const origin = spawnServer(process.execPath, [join(ROOT, 'bench/peers/pushpin-origin.mjs')], { log, env: { PORT: String(originPort) } });
  await waitHttpOk(originPort, '/healthz', 10000, origin);
  const offset = await freeOffset();
  const port = await freePort();
  writeFileSync(join(dir, 'routes'), `* 127.0.0.1:${originPort}\n`);
  writeFileSync(join(dir, 'pushpin.conf'), config(dir, offset));
  const runner = spawnServer('pushpin', ['--config', join(dir, 'pushpin.conf'), '--port', `127.0.0.1:${port}`, '-m'], { log, cwd: dir });
  const publishPort = 5561 + offset;
  try {
    await waitForPort(port, 15000, runner);
    await waitForPort(publishPort, 15000, runner);
    // The proxy path (condure -> proxy -> zurl -> origin) is up once a stream request gets through.
    await waitHttpOk(port, '/healthz', 15000, runner);
  } catch (err) {
    await stopServer(runner);
    await stopServer(origin);
    throw err;
  }
  return {
    ...info,
    ctx: {},
    streamPorts: [port],
    publishPorts: [publishPort],
    idlePorts: [port],
    idlePids: () => processTree(runner.pid),
    serverPids: () => processTree(runner.pid),
    async stop() {
      await stopServer(runner, 5000);
      await stopServer(origin);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
