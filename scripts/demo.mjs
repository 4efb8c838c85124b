// `npm run demo`: the docker-compose.yml topology on one machine, without Docker — a real
// redis-server (AOF on), three replicas sharing deploy/demo.env's secrets, the demo worker, and nginx
// with the shipped config in front. Started together, stopped together (Ctrl-C), in order.
//
// `npm run demo -- --cluster`: the same, on a local Redis Cluster instead of one Redis: six
// redis-servers (3 masters, 3 replicas, cluster-node-timeout 2000, full coverage not required),
// joined by `redis-cli --cluster create`; the replicas get REDIS_CLUSTER_NODES. Kill -9 a master
// and the page carries on: its replica takes over in about 4 s, and the streams catch up.
//
// Ports come from the environment, so a test (or a second copy) can run beside the defaults:
// DEMO_PORT (8080, nginx), DEMO_REPLICA_PORTS (3001,3002,3003: one replica per port),
// DEMO_REDIS_PORT (6380), DEMO_WORKER_PORT (3100); with --cluster, DEMO_CLUSTER_PORTS
// (7001,…,7006: one node per port) and DEMO_CLUSTER_BUS_PORTS (each node's port + 10000).
// LOG_LEVEL (warn) is passed to the replicas.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareNginx } from '../deploy/nginx/local.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** How long one part may take to become ready (a first start on a busy machine is slow). */
const READY_TIMEOUT_MS = 60_000;
/** How long one part may take to stop before it is killed; replicas drain within DRAIN_MS. */
const STOP_TIMEOUT_MS = 15_000;
/** Lines of a part's output kept to explain a failed start. */
const OUTPUT_KEPT = 20;

/** Redis Cluster instead of one Redis. */
const CLUSTER = process.argv.slice(2).includes('--cluster');
/** `cluster-node-timeout`: a dead master is replaced about 2 s after this. */
const CLUSTER_NODE_TIMEOUT_MS = 2000;

const clusterPorts = (process.env.DEMO_CLUSTER_PORTS ?? '7001,7002,7003,7004,7005,7006').split(',').map(Number);
const ports = {
  http: Number(process.env.DEMO_PORT ?? 8080),
  replicas: (process.env.DEMO_REPLICA_PORTS ?? '3001,3002,3003').split(',').map(Number),
  redis: Number(process.env.DEMO_REDIS_PORT ?? 6380),
  worker: Number(process.env.DEMO_WORKER_PORT ?? 3100),
  cluster: clusterPorts,
  clusterBus: process.env.DEMO_CLUSTER_BUS_PORTS?.split(',').map(Number) ?? clusterPorts.map((port) => port + 10000),
};

/**
 * The demo's processes. Each runs in a process group of its own (detached), so Ctrl-C in the
 * terminal reaches only this script, which then stops them in order: the worker, then the
 * replicas (draining their streams) with nginx, and Redis last, once nobody needs it.
 */
class Parts {
  /** @type {{ name: string, child: import('node:child_process').ChildProcess, exited: Promise<void>, output: string[], logFile?: string }[]} */
  list = [];
  stopping = false;

  /** `logFile`: where the part logs instead of its output, read back if it fails to start. */
  start(name, command, args, { env = process.env, essential = true, logFile = undefined } = {}) {
    const child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const part = { name, child, exited, output: [], logFile };
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (text) => {
        for (const line of text.split('\n').filter(Boolean)) {
          part.output.push(line);
          if (part.output.length > OUTPUT_KEPT) part.output.shift();
          process.stdout.write(`${name.padEnd(14)}| ${line}\n`);
        }
      });
    }
    child.once('error', (err) => process.stdout.write(`${name}: ${err.message}\n`));
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      // One write per notice: a reader of the pipe sees the exit and what follows from it together.
      const exitedAs = `\n${name} exited (${signal ?? `code ${code}`}).`;
      if (essential) {
        process.stdout.write(`${exitedAs} The demo cannot work without it: stopping.\n`);
        void shutDown(1);
      } else if (name.startsWith('redis-')) {
        process.stdout.write(`${exitedAs} The cluster promotes its replica in about 4 s; the page carries on. Ctrl-C stops the demo.\n`);
      } else {
        process.stdout.write(`${exitedAs} The other replicas keep serving; Ctrl-C stops the demo.\n`);
      }
    });
    this.list.push(part);
    return part;
  }

  /** Stops every part in order; anything still running after STOP_TIMEOUT_MS is killed. */
  async stopAll() {
    this.stopping = true;
    const stop = (predicate, signal) => Promise.all(this.list.filter(predicate).map((part) => stopPart(part, signal)));
    await stop((part) => part.name === 'worker', 'SIGTERM');
    await Promise.all([stop((part) => part.name.startsWith('switchboard-'), 'SIGTERM'), stop((part) => part.name === 'nginx', 'SIGQUIT')]);
    await stop(() => true, 'SIGTERM');
  }

  /** Last resort, when this script exits any other way: SIGKILL every group still running. */
  killAll() {
    for (const { child } of this.list) if (isRunning(child)) signalGroup(child, 'SIGKILL');
  }
}

const isRunning = (child) => child.exitCode === null && child.signalCode === null;

async function stopPart({ child, exited }, signal) {
  if (!isRunning(child)) return;
  signalGroup(child, signal);
  const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** The whole group: nginx's workers and any child Redis forks go with their parent. */
function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

const parts = new Parts();
let tempDir;
let shuttingDown = false;

/** Stops everything, in order, once; the stop is bounded by STOP_TIMEOUT_MS per step. */
async function shutDown(exitCode) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (parts.list.length > 0) process.stdout.write('\nstopping: the worker, then the replicas (draining their streams) and nginx, then redis ...\n');
  await parts.stopAll();
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  process.stdout.write('stopped.\n');
  process.exit(exitCode);
}

// Repeated signals are ignored: under `npm run demo`, one Ctrl-C arrives twice (from the
// terminal, and forwarded by npm).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => void shutDown(0));
// Whatever ends this script, nothing it started outlives it.
process.on('exit', () => parts.killAll());

try {
  await main();
} catch (err) {
  process.stdout.write(`\ndemo failed: ${err.message}\n`);
  await shutDown(1);
}

async function main() {
  const tools = {
    'redis-server': findExecutable('redis-server'),
    nginx: findExecutable('nginx'),
    ...(CLUSTER ? { 'redis-cli': findExecutable('redis-cli') } : {}),
  };
  const missing = Object.keys(tools).filter((name) => tools[name] === undefined);
  if (missing.length > 0) {
    process.stdout.write(
      `npm run demo needs ${missing.join(' and ')} on this machine.\n` +
        '  Debian/Ubuntu: sudo apt-get install redis-server nginx\n' +
        '  macOS:         brew install redis nginx\n' +
        'Or run the same demo in containers: docker compose up\n',
    );
    process.exit(1);
  }
  if (CLUSTER && (ports.cluster.length !== 6 || ports.clusterBus.length !== 6)) {
    throw new Error('DEMO_CLUSTER_PORTS and DEMO_CLUSTER_BUS_PORTS: six ports each (3 masters, 3 replicas)');
  }
  const wanted = [
    ['DEMO_PORT', ports.http],
    ['DEMO_WORKER_PORT', ports.worker],
    ...ports.replicas.map((port) => ['DEMO_REPLICA_PORTS', port]),
    ...(CLUSTER
      ? [...ports.cluster.map((port) => ['DEMO_CLUSTER_PORTS', port]), ...ports.clusterBus.map((port) => ['DEMO_CLUSTER_BUS_PORTS', port])]
      : [['DEMO_REDIS_PORT', ports.redis]]),
  ];
  for (const [variable, port] of wanted) {
    if (!(await isFree(port))) throw new Error(`port ${port} is taken: set ${variable} to free port(s)`);
  }
  buildIfStale();

  tempDir = mkdtempSync(join(tmpdir(), 'switchboard-demo-'));
  const shared = readEnvFile(join(ROOT, 'deploy', 'demo.env'));
  const publicUrl = `http://127.0.0.1:${ports.http}`;

  const redis = CLUSTER ? await startCluster(tools) : await startRedis(tools['redis-server']);
  const replicas = ports.replicas.map((port, i) =>
    parts.start(`switchboard-${i + 1}`, process.execPath, ['--import', './dist/telemetry/start.js', 'dist/main.js'], {
      essential: false,
      env: {
        ...process.env,
        ...shared,
        PORT: String(port),
        HOST: '127.0.0.1',
        REPLICA_ID: `switchboard-${i + 1}`,
        ...(CLUSTER ? { REDIS_CLUSTER_NODES: ports.cluster.map((port) => `127.0.0.1:${port}`).join(',') } : { REDIS_URL: `redis://127.0.0.1:${ports.redis}` }),
        PUBLIC_URL: publicUrl,
        // The proxy in front runs on this machine: believe its X-Forwarded-* (client addresses in logs).
        TRUST_PROXY: 'loopback',
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      },
    }),
  );
  await Promise.all(replicas.map((replica, i) => waitUntil(replica, () => answersOk(`http://127.0.0.1:${ports.replicas[i]}/readyz`))));

  const worker = parts.start('worker', process.execPath, ['deploy/worker/worker.mjs'], {
    env: { ...process.env, PORT: String(ports.worker), HOST: '127.0.0.1', SWITCHBOARD_URL: publicUrl, PUBLISH_API_KEY: shared.PUBLISH_API_KEY },
  });
  await waitUntil(worker, () => answersOk(`http://127.0.0.1:${ports.worker}/healthz`));

  const nginxArgs = prepareNginx(join(tempDir, 'nginx'), {
    listen: `127.0.0.1:${ports.http}`,
    replicas: ports.replicas.map((port) => `127.0.0.1:${port}`),
    worker: `127.0.0.1:${ports.worker}`,
    accessLog: 'off',
  });
  const nginx = parts.start('nginx', tools.nginx, nginxArgs);
  await waitUntil(nginx, () => answersOk(`${publicUrl}/healthz`));

  const row = (name, pid, where) => `    ${name.padEnd(14)} pid ${String(pid).padEnd(8)} ${where}\n`;
  const redisRows = CLUSTER
    ? redis.map(({ part, port, role }) => row(part.name, part.child.pid, `redis://127.0.0.1:${port}  ${role}`)).join('')
    : row('redis-server', redis[0].part.child.pid, `redis://127.0.0.1:${ports.redis}  (AOF on, data in ${tempDir})`);
  const aMaster = CLUSTER ? redis.find(({ role }) => role.startsWith('master')) : undefined;
  process.stdout.write(
    `\n  Switchboard demo: ${CLUSTER ? 'a Redis Cluster (3 masters, 3 replicas)' : 'redis'}, ${replicas.length} replicas, a job worker, nginx round-robin in front.\n\n` +
      redisRows +
      replicas.map((replica, i) => row(replica.name, replica.child.pid, `http://127.0.0.1:${ports.replicas[i]}`)).join('') +
      row('worker', worker.child.pid, `http://127.0.0.1:${ports.worker}  (the page reaches it at /worker/)`) +
      row('nginx', nginx.child.pid, `${publicUrl}  (round-robin over the replicas, no stickiness)`) +
      (CLUSTER ? `\n    (AOF on, data in ${tempDir})\n` : '') +
      `\n  open ${publicUrl}/\n\n` +
      '  Open stream, start a few jobs, then kill -9 the pid of the replica the page says holds it.\n' +
      (aMaster === undefined
        ? ''
        : `  Or kill a Redis master: kill -9 ${aMaster.part.child.pid}  (${aMaster.part.name}). Its replica takes over in about\n` +
          `  ${(CLUSTER_NODE_TIMEOUT_MS + 2000) / 1000} s; publishes to its slots answer 503 meanwhile (retried), the streams then catch up,\n` +
          '  and streams on the other masters never stop.\n') +
      '  Ctrl-C stops everything.\n\n',
  );
}

/** One redis-server with AOF: the default demo. */
async function startRedis(command) {
  const redisLog = join(tempDir, 'redis.log');
  const part = parts.start(
    'redis-server',
    command,
    ['--port', String(ports.redis), '--bind', '127.0.0.1', '--dir', tempDir, '--appendonly', 'yes', '--save', '', '--logfile', redisLog],
    { logFile: redisLog },
  );
  await waitUntil(part, () => redisAnswers(ports.redis, 'PING', '+PONG'));
  return [{ part, port: ports.redis, role: 'master' }];
}

/**
 * Six cluster nodes, each with its own dir (nodes.conf) and AOF, joined by redis-cli into 3
 * masters with a replica each. Resolves once every node reports cluster_state:ok, with each
 * node's role as it reports it.
 */
async function startCluster(tools) {
  const nodes = ports.cluster.map((port, i) => {
    const dir = join(tempDir, `redis-${port}`);
    mkdirSync(dir);
    const logFile = join(dir, 'redis.log');
    const part = parts.start(
      `redis-${port}`,
      tools['redis-server'],
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--save',
        '',
        '--logfile',
        logFile,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-port',
        String(ports.clusterBus[i]),
        '--cluster-node-timeout',
        String(CLUSTER_NODE_TIMEOUT_MS),
        // A shard whose master is down must not stop the others (the default answers CLUSTERDOWN everywhere).
        '--cluster-require-full-coverage',
        'no',
        // A master waits this long (5 s by default) for more replicas before a full sync.
        '--repl-diskless-sync-delay',
        '0',
      ],
      { logFile, essential: false },
    );
    return { part, port };
  });
  await Promise.all(nodes.map(({ part, port }) => waitUntil(part, () => redisAnswers(port, 'PING', '+PONG'))));
  const create = spawnSync(
    tools['redis-cli'],
    ['--cluster', 'create', ...ports.cluster.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'],
    { encoding: 'utf8', timeout: READY_TIMEOUT_MS },
  );
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}${create.stderr}`);
  await Promise.all(nodes.map(({ part, port }) => waitUntil(part, () => redisAnswers(port, 'CLUSTER INFO', 'cluster_state:ok'))));
  const listed = await Promise.all(
    nodes.map(async (node) => {
      const line = (await redisReply(node.port, 'CLUSTER NODES')).split('\n').find((entry) => entry.includes('myself'));
      const [, , flags = '', , , , , , ...slots] = (line ?? '').split(' ');
      const role = flags.includes('master') ? `master of slots ${slots.join(' ')}` : 'replica';
      return { ...node, role };
    }),
  );
  // A replica that has not finished its first sync refuses to take over ("disconnected from
  // master for longer than allowed"): the demo is ready only once every replica has its data.
  const replicas = listed.filter((node) => node.role === 'replica');
  await Promise.all(replicas.map(({ part, port }) => waitUntil(part, () => redisAnswers(port, 'INFO replication', 'master_link_status:up'))));
  return listed;
}
/** Polls `check` until it passes; fails at once if the part exits, with what it printed. */
async function waitUntil(part, check) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await check())) {
    if (!isRunning(part.child)) {
      const logged = part.logFile && existsSync(part.logFile) ? readFileSync(part.logFile, 'utf8').split('\n') : [];
      throw new Error(`${part.name} exited while starting:\n${[...part.output, ...logged].slice(-OUTPUT_KEPT).join('\n')}`);
    }
    if (Date.now() > deadline) throw new Error(`${part.name} was not ready within ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function answersOk(url) {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

/** True if Redis on `port` answers the inline `command` with a reply containing `expected`. */
async function redisAnswers(port, command, expected) {
  return (await redisReply(port, command).catch(() => '')).includes(expected);
}

/** The raw reply to one inline command (small replies: the first chunk read). */
function redisReply(port, command) {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => socket.write(`${command}\r\n`));
    socket.setTimeout(1000, () => socket.destroy());
    socket.once('data', (reply) => {
      socket.destroy();
      resolve(reply.toString());
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`redis on ${port} closed the connection`)));
  });
}

function isFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Replicas run dist/: compile first when it is missing or older than any source file. */
function buildIfStale() {
  const built = join(ROOT, 'dist', 'main.js');
  const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
  const newestSource = Math.max(statSync(join(ROOT, 'tsconfig.json')).mtimeMs, ...listFiles(join(ROOT, 'src')).map((file) => statSync(file).mtimeMs));
  if (newestSource <= builtAt) return;
  process.stdout.write(builtAt === 0 ? 'building (no dist/ yet) ...\n' : 'building (src/ changed since the last build) ...\n');
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
}

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)]));
}

/** `KEY=value` lines; blank lines and `#` comments skipped. */
function readEnvFile(path) {
  const entries = readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
  return Object.fromEntries(entries);
}

/** Like `command -v`, plus the sbin directories a non-root PATH often lacks (Debian's nginx). */
function findExecutable(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
}
