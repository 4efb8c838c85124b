// `npm run demo -- --cluster` (scripts/demo.mjs) as a user runs it, on ports of its own: six Redis
// Cluster nodes (3 masters, 3 replicas) behind three replicas and nginx. It names the URL to open and
// the masters' pids; a stream through nginx keeps receiving events after a kill -9 of the master
// that serves its channel (the cluster promotes the replica; publishes meanwhile are 503, retried);
// one Ctrl-C (SIGINT) stops every process it started.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import calculateSlot from 'cluster-key-slot';
import t from 'tap';
import { waitOpen } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { postJson, retryPause } from '../helpers/http.js';
import { trackChild } from '../helpers/reaper.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { openSse } from '../helpers/sse-client.js';
import { once, waitFor } from '../helpers/wait-for.js';

/** The first start may compile dist/ first, on a machine shared with other test files. */
const START_TIMEOUT_MS = 150_000;
const STOP_TIMEOUT_MS = 60_000;
/** A publish is retried (same idempotency id) this long at most: a failover takes about 4 s. */
const PUBLISH_RETRY_FOR_MS = 30_000;
t.setTimeout(START_TIMEOUT_MS + STOP_TIMEOUT_MS + 120_000);

const PUBLISH_API_KEY = /^PUBLISH_API_KEY=(.*)$/m.exec(readFileSync(join(REPO_ROOT, 'deploy', 'demo.env'), 'utf8'))?.[1] ?? '';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Distinct free ports (two freePort() calls in a row may return the same one). */
async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

interface NodeRow {
  name: string;
  pid: number;
  port: number;
  /** Inclusive slot ranges, for a master. */
  slots: [number, number][] | undefined;
}

/** The demo's Redis rows: `redis-7001  pid 123  redis://127.0.0.1:7001  master of slots 0-5460` (or `replica`). */
function nodeRows(output: string): NodeRow[] {
  return [...output.matchAll(/^ {4}(redis-\d+)\s+pid (\d+)\s+redis:\/\/127\.0\.0\.1:(\d+)\s+(master of slots ([\d\- ]+)|replica)$/gm)].map((match) => ({
    name: match[1]!,
    pid: Number(match[2]),
    port: Number(match[3]),
    slots: match[5]
      ?.trim()
      .split(' ')
      .map((range) => range.split('-').map(Number) as [number, number]),
  }));
}

t.test('npm run demo -- --cluster: a stream through nginx carries on after kill -9 of its Redis master; Ctrl-C stops everything', async (t) => {
  const [http, worker, ...rest] = await distinctPorts(2 + 3 + 12);
  const replicas = rest.slice(0, 3);
  const clusterPorts = rest.slice(3, 9);
  const busPorts = rest.slice(9, 15);
  const demo = spawn(process.execPath, ['scripts/demo.mjs', '--cluster'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      DEMO_PORT: String(http),
      DEMO_WORKER_PORT: String(worker),
      DEMO_REPLICA_PORTS: replicas.join(','),
      DEMO_CLUSTER_PORTS: clusterPorts.join(','),
      DEMO_CLUSTER_BUS_PORTS: busPorts.join(','),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(demo);
  let output = '';
  demo.stdout.on('data', (chunk: Buffer) => (output += chunk));
  demo.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const exited = once(demo, 'exit', START_TIMEOUT_MS + STOP_TIMEOUT_MS + 60_000, 'demo exit');
  const startedPids = (): number[] => [...output.matchAll(/ pid (\d+) /g)].map((match) => Number(match[1]));
  t.teardown(() => {
    if (!t.passing()) t.comment(`demo output:\n${output}`);
    for (const pid of startedPids()) if (isAlive(pid)) process.kill(-pid, 'SIGKILL');
    if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
    const leftover = /data in (\S+)\)/.exec(output)?.[1];
    if (leftover !== undefined) rmSync(leftover, { recursive: true, force: true });
  });

  const opened = waitFor(() => /^ {2}open (http:\/\/\S+)$/m.exec(output)?.[1], { timeoutMs: START_TIMEOUT_MS, label: 'the "open http://..." line' });
  opened.catch(() => {});
  const url = await Promise.race([
    opened,
    exited.then(([code]) => Promise.reject(new Error(`the demo exited (code ${code}) before it was ready:\n${output}`))),
  ]);
  t.equal(url, `http://127.0.0.1:${http}/`, 'it names the nginx URL');
  const nodes = nodeRows(output);
  t.same(nodes.map((node) => node.port).sort(), [...clusterPorts].sort(), 'it lists the six cluster nodes');
  const masters = nodes.filter((node) => node.slots !== undefined);
  t.equal(masters.length, 3, 'three of them masters');
  t.equal(startedPids().length, 6 + 3 + 2, 'it lists the pids of the six nodes, three replicas, the worker and nginx');
  t.match(output, /kill -9 \d+/, 'it says how to kill a master');

  // A user whose channel is served by the first master: the one to be killed.
  const victim = masters[0]!;
  let user = '';
  for (let i = 0; user === '' && i < 10_000; i++) {
    const slot = calculateSlot(`sb:{u:demo-cluster-${i}}:ch`);
    if (victim.slots!.some(([lo, hi]) => slot >= lo && slot <= hi)) user = `demo-cluster-${i}`;
  }
  const minted = await postJson(`${url}demo/token`, { userId: user });
  t.equal(minted.status, 201, 'demo mode is on: the page can get a token');
  const stream = await waitOpen(await openSse(`${url}stream/${user}?token=${minted.json.token}`), 'stream through nginx');
  t.teardown(() => stream.close());

  let refused = 0;
  const publish = async (n: number): Promise<void> => {
    const deadline = performance.now() + PUBLISH_RETRY_FOR_MS;
    for (;;) {
      const answer = await postJson(`${url}v1/users/${user}/events`, { id: `n-${n}`, data: { n } }, { bearer: PUBLISH_API_KEY }).catch(() => undefined);
      if (answer?.status === 202) return;
      refused++;
      if (performance.now() > deadline) throw new Error(`publish ${n} kept failing: ${answer?.status} ${answer?.text}`);
      await retryPause(answer, 100);
    }
  };
  const seqs = (): number[] => stream.events.filter((event) => event.type !== 'reset').map((event) => JSON.parse(event.data).n as number);
  await publish(1);
  await stream.waitFor(() => seqs().includes(1), 10_000, 'the first event');

  process.kill(victim.pid, 'SIGKILL');
  const killedAt = performance.now();
  await waitFor(() => output.includes(`${victim.name} exited (SIGKILL)`), { timeoutMs: 10_000, label: 'the demo noticing the kill' });
  t.match(output, /The cluster promotes its replica/, 'the demo says the cluster carries on, and does not stop');
  for (let n = 2; n <= 10; n++) await publish(n);
  await stream.waitFor(() => seqs().includes(10), 20_000, 'the events published through the failover');
  t.comment(`last event delivered ${(performance.now() - killedAt).toFixed(0)} ms after the kill; ${refused} publish attempts refused and retried`);
  t.same(
    seqs().filter((n, i, all) => all.indexOf(n) === i),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    'the stream got every accepted event, in order, through the failover',
  );
  t.ok(isAlive(demo.pid!), 'the demo is still running');
  stream.close();

  const pids = startedPids();
  demo.kill('SIGINT');
  const [code] = await exited;
  t.equal(code, 0, 'the demo exits 0 after Ctrl-C');
  t.same(pids.filter(isAlive), [], 'no process it started is left');
  const tempDir = /data in (\S+)\)/.exec(output)?.[1] ?? '';
  t.notOk(tempDir !== '' && existsSync(tempDir), 'its temp dir is removed');
});
