// ClusterBackplane.close() (then the Cluster's disconnect, as connect.ts does) leaves nothing
// running: a process that built one, subscribed, and closed it while a slot-map refresh was in
// flight and its subscribers were reconnecting, exits by itself. Before, ioredis' own
// `slotsRefreshInterval` timer re-armed itself after such a close and kept the process alive for
// good (a test file that passed, then hung until tap's timeout).
import { spawn } from 'node:child_process';
import t from 'tap';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import { trackChild } from '../helpers/reaper.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { waitFor, withTimeout } from '../helpers/wait-for.js';

/** The process closes at once once the race is set up; this bounds its own exit. */
const EXIT_WITHIN_MS = 15_000;

/** Run with dist/ built: the backplane as a replica runs it. Prints `closed` before it ends. */
const CHILD = `
import { pino } from 'pino';
import { createClusterConnections } from './dist/backplane/redis-connections.js';
import { ClusterBackplane } from './dist/backplane/cluster-backplane.js';
import { userChannel } from './dist/backplane/redis-keys.js';
const nodes = process.env.SEEDS.split(',').map((seed) => ({ host: '127.0.0.1', port: Number(seed.split(':')[1]) }));
const settings = { mode: 'cluster', nodes, username: undefined, password: undefined, tls: undefined, waitReplicas: 0 };
const logger = pino({ level: 'silent' });
const connections = createClusterConnections(settings, 'close-test', logger);
const backplane = new ClusterBackplane(connections, { historyMaxLen: 100, historyTtlSeconds: 60, replicaId: 'close-test', probeIntervalMs: 200, waitReplicas: 0, logger });
await backplane.start();
await backplane.subscribe(Array.from({ length: 30 }, (_, i) => userChannel('close-' + i)));
// Every subscriber connection dropped by Redis: each is reconnecting when close() comes.
await connections.commands.nodes('master')[0].call('CLIENT', 'KILL', 'TYPE', 'pubsub');
await Promise.all(connections.commands.nodes('master').slice(1).map((node) => node.call('CLIENT', 'KILL', 'TYPE', 'pubsub')));
// And the Cluster's slot-map refresh (asked every second) in flight.
await new Promise((resolve) => {
  const check = setInterval(() => {
    if (connections.commands.isRefreshing) {
      clearInterval(check);
      resolve();
    }
  }, 0);
});
await backplane.close();
connections.commands.disconnect();
console.log('closed');
`;

t.test('after close() with reconnects and a slot-map refresh in flight, the process exits by itself', async (t) => {
  const cluster = await startRedisCluster(t);
  for (let run = 1; run <= 3; run++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      cwd: REPO_ROOT,
      env: { ...process.env, SEEDS: cluster.seeds.join(',') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await waitFor(() => output.includes('closed') || child.exitCode !== null, { timeoutMs: 60_000, label: 'the backplane set up and closed' });
    t.match(output, /closed/, `run ${run}: it closed the backplane`);
    const closed = performance.now();
    await withTimeout(exited, EXIT_WITHIN_MS, 'its exit').catch(() => {}); // judged below
    t.equal(child.exitCode, 0, `run ${run}: and then exited by itself (${(performance.now() - closed).toFixed(0)} ms), nothing left running`);
  }
});
