// `npm run demo` (scripts/demo.mjs) as a user runs it, on ports of its own: it says which URL to
// open, that URL serves the page and a working stream through nginx (a job's callbacks arrive),
// and one Ctrl-C (SIGINT) stops every process it started and removes its temp dir.
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import t from 'tap';
import { waitOpen } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { getJson, postJson } from '../helpers/http.js';
import { trackChild } from '../helpers/reaper.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { openSse } from '../helpers/sse-client.js';
import { once, waitFor } from '../helpers/wait-for.js';

const USER = 'script-demo';
/** The first start may compile dist/ first, on a machine shared with other test files. */
const START_TIMEOUT_MS = 150_000;
/** Replicas drain within DRAIN_MS (10 s); every stop step is bounded at 15 s by the script. */
const STOP_TIMEOUT_MS = 60_000;
// Above tap's per-file default (package.json), for a start that compiles first on a busy machine.
t.setTimeout(START_TIMEOUT_MS + STOP_TIMEOUT_MS + 60_000);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('npm run demo starts everything, serves the page and a stream through nginx, and stops on Ctrl-C', async (t) => {
  const [http, redis, worker, ...replicas] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const demo = spawn(process.execPath, ['scripts/demo.mjs'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      DEMO_PORT: String(http),
      DEMO_REDIS_PORT: String(redis),
      DEMO_WORKER_PORT: String(worker),
      DEMO_REPLICA_PORTS: replicas.join(','),
      // Reach the worker through the demo's environment: quick job steps for the test.
      STEP_DELAY_MIN_MS: '100',
      STEP_DELAY_MAX_MS: '500',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(demo);
  let output = '';
  demo.stdout.on('data', (chunk: Buffer) => (output += chunk));
  demo.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const exited = once(demo, 'exit', START_TIMEOUT_MS + STOP_TIMEOUT_MS, 'demo exit');
  const startedPids = (): number[] => [...output.matchAll(/ pid (\d+) /g)].map((match) => Number(match[1]));
  t.teardown(() => {
    if (!t.passing()) t.comment(`demo output:\n${output}`);
    // Only if the test failed half-way: every process group the demo started, then the demo.
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
  const pids = startedPids();
  t.equal(pids.length, 6, 'it lists the pids of redis, three replicas, the worker and nginx');
  const tempDir = /data in (\S+)\)/.exec(output)?.[1] ?? '';
  t.ok(existsSync(tempDir), `its temp dir exists while it runs (${tempDir})`);

  const page = await getJson(url);
  t.equal(page.status, 200, 'GET / through nginx');
  t.match(page.headers['content-type'], /^text\/html/, 'as HTML');
  t.match(page.text, /<title>Switchboard demo<\/title>/, 'the demo page');

  const minted = await postJson(`${url}demo/token`, { userId: USER });
  t.equal(minted.status, 201, 'demo mode is on: the page can get a token');
  const stream = await waitOpen(await openSse(`${url}stream/${USER}?token=${minted.json.token}`), 'stream through nginx');
  t.teardown(() => stream.close());
  const job = await postJson(`${url}worker/jobs`, { userId: USER });
  t.equal(job.status, 201, 'the worker took a job');
  await stream.waitFor((c) => c.events.filter((event) => event.type === 'callback').length >= 3, 30_000, 'three callbacks');
  const callbacks = stream.events.filter((event) => event.type === 'callback').map((event) => JSON.parse(event.data));
  t.same(
    callbacks.map((callback) => [callback.correlationId, callback.payload.step]),
    [1, 2, 3].map((step) => [job.json.correlationId, step]),
    "the job's callbacks reached the stream, in order",
  );
  stream.close();

  demo.kill('SIGINT');
  const [code] = await exited;
  t.equal(code, 0, 'the demo exits 0 after Ctrl-C');
  t.match(output, /stopped\.\n$/, 'and says so last');
  t.same(pids.filter(isAlive), [], 'no process it started is left');
  await t.rejects(getJson(url, { timeoutMs: 2000 }), /failed/, 'nothing listens on the nginx port any more (nginx workers included)');
  t.notOk(existsSync(tempDir), 'its temp dir is removed');
});

t.test('without redis-server it says how to install it and stops', async (t) => {
  // A PATH with nothing on it: redis-server (in /usr/bin) cannot be found; node runs by its full path.
  const demo = spawn(process.execPath, ['scripts/demo.mjs'], {
    cwd: REPO_ROOT,
    env: { ...process.env, PATH: '/nonexistent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(demo);
  let output = '';
  demo.stdout.on('data', (chunk: Buffer) => (output += chunk));
  const [code] = await once(demo, 'exit', 30_000, 'demo exit');
  t.equal(code, 1, 'exits 1');
  t.match(output, /needs redis-server/, 'names what is missing');
  t.match(output, /apt-get install redis-server nginx/, 'and how to install it');
});
