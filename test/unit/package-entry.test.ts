// The package entry (`import 'switchboard'`, what `main`/`exports` name) is a library module with
// no side effect: importing it, in a process configured exactly like a replica, listens on no
// port and connects to nothing, and the process exits by itself. The same import of the
// executable (dist/main.js) does connect, which shows the check can see a replica starting.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { freePort } from '../helpers/free-port.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { waitFor, withTimeout } from '../helpers/wait-for.js';

const WAIT_MS = 20_000;

/** A TCP server standing in for Redis: it only counts the connections it is offered. */
async function fakeRedis(t: Test): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, connections: () => connections };
}

/** Runs `node -e <code>` in the repository (so `switchboard` resolves to this package) with a replica's env. */
function runNode(t: Test, code: string, env: Record<string, string>): { exit: Promise<number | null>; stdout: () => string } {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.resume();
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { exit, stdout: () => stdout };
}

async function replicaEnv(redisPort: number): Promise<Record<string, string>> {
  return {
    HOST: '127.0.0.1',
    PORT: String(await freePort()),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    STREAM_TOKEN_SECRET: 'package-entry-stream-secret-0123456789',
    PUBLISH_API_KEY: 'package-entry-publish-key-0123456789',
    ALLOW_UNSIGNED_CALLBACKS: 'true',
    LOG_LEVEL: 'silent',
  };
}

t.test('importing the package entry starts nothing', async (t) => {
  const redis = await fakeRedis(t);
  const env = await replicaEnv(redis.port);
  const run = runNode(t, "const entry = await import('switchboard'); process.stdout.write(JSON.stringify(Object.keys(entry).sort()));", env);
  const code = await withTimeout(run.exit, WAIT_MS, 'the importing process exits by itself');
  t.equal(code, 0, 'the import succeeds and nothing keeps the process alive (no server, no socket, no timer)');
  t.same(
    JSON.parse(run.stdout()),
    ['ConfigError', 'buildApp', 'connectParts', 'loadConfig', 'memoryParts'],
    'the entry exports the pieces that build a replica',
  );
  t.equal(redis.connections(), 0, 'no connection to the configured Redis');
});

t.test('control: importing the executable does start a replica', async (t) => {
  const redis = await fakeRedis(t);
  const env = await replicaEnv(redis.port);
  runNode(t, "await import('./dist/main.js');", env);
  await waitFor(() => redis.connections() > 0, { timeoutMs: WAIT_MS, label: 'dist/main.js connects to the configured Redis' });
  t.pass('the check sees a replica start');
});
