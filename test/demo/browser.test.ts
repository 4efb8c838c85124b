// The demo page in a real browser (Debian's chromium, driven by playwright-core) through nginx
// with the shipped config, round-robin over three replicas and a redis-server: the page's own
// EventSource survives kill -9 of the replica holding it, reconnects by itself, and resumes with
// no gap and no duplicate. Also leaves a screenshot of the page in test-artifacts/demo.png.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.js';
import t from 'tap';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { getJson, postJson } from '../helpers/http.js';
import { startRedis } from '../helpers/redis-server.js';
import { REPO_ROOT, startReplicas } from '../helpers/replica.js';
import { startNginx, startWorker } from './topology.js';

const SCREENSHOT = join(REPO_ROOT, 'test-artifacts', 'demo.png');
const USER = 'browser-demo';
/** Generous: other test files and benchmarks share this machine's two cores. */
const WAIT_MS = 30_000;

/** What the test reads of the page's state (`window.demo` in public/demo.js). */
interface PageState {
  streamState: string;
  connections: { n: number; replica?: string; resumedAfter?: string }[];
  events: { id: string; type: string; data: { seq?: number }; connection: number }[];
  log: { kind: string; what: string }[];
  jobs: { correlationId: string; status: string; callbacks: { step: number; takenBy?: string; connection: number }[] }[];
}

const readState = (page: Page): Promise<PageState> =>
  page.evaluate(() => {
    const demo = (window as unknown as { demo: PageState & { jobs: Map<string, PageState['jobs'][number]> } }).demo;
    return { ...demo, source: undefined, jobs: [...demo.jobs.values()] } as unknown as PageState;
  });

t.test('the demo page keeps its stream through kill -9 of the replica holding it', async (t) => {
  const nginxPort = await freePort();
  const nginxUrl = `http://127.0.0.1:${nginxPort}`;
  const redis = await startRedis(t);
  const replicas = await startReplicas(
    t,
    3,
    // RETRY_MS 1000: the browser reconnects a second after losing its replica. CALLBACK_SECRET:
    // as in deploy/demo.env, so the worker's callbacks arrive only if it signs them with each job's secret.
    {
      REDIS_URL: redis.url,
      STREAM_TOKEN_SECRET,
      PUBLISH_API_KEY,
      CALLBACK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
      DEMO_MODE: 'true',
      PUBLIC_URL: nginxUrl,
      RETRY_MS: '1000',
    },
    { timeoutMs: WAIT_MS },
  );
  const worker = await startWorker(t, { SWITCHBOARD_URL: nginxUrl, PUBLISH_API_KEY, STEP_DELAY_MIN_MS: '100', STEP_DELAY_MAX_MS: '600' });
  await startNginx(t, { port: nginxPort, replicas: replicas.map((replica) => `127.0.0.1:${replica.port}`), worker: `127.0.0.1:${worker.port}` });

  const browser = await launchChromium(t, { viewport: { width: 1200, height: 1000 } });
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));

  await page.goto(`${nginxUrl}/`);
  await page.fill('#user', USER);
  await page.click('#connect');
  await page.waitForFunction(() => (window as any).demo.connections[0]?.replica !== undefined, undefined, { timeout: WAIT_MS });

  /**
   * Through nginx, at least once: a publish that meets the dying replica is retried with the
   * same idempotency id, which Switchboard accepts once.
   */
  const publish = async (seq: number): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const answer = await postJson(`${nginxUrl}/v1/users/${USER}/events`, { data: { seq }, id: `seq-${seq}` }, { bearer: PUBLISH_API_KEY });
      if (answer.status === 202) return;
      if (attempt === 3) throw new Error(`publish ${seq}: ${answer.status} ${answer.text}`);
    }
  };

  for (let seq = 1; seq <= 20; seq++) await publish(seq);
  await page.waitForFunction(() => (window as any).demo.events.length >= 20, undefined, { timeout: WAIT_MS });

  // The replica the page names is the one holding the stream: ask each replica directly.
  const before = await readState(page);
  const holders = [];
  for (const replica of replicas) {
    const answer = await getJson(`${replica.url}/demo/streams/${USER}`);
    if (answer.json?.streams > 0) holders.push(replica);
  }
  t.equal(holders.length, 1, 'exactly one replica holds the stream');
  const holder = holders[0]!;
  t.equal(before.connections[0]?.replica, holder.replicaId, `the page names the replica holding its stream (${holder.replicaId})`);

  await holder.kill('SIGKILL');
  // Published at once: some land while the browser is between connections and come from history.
  for (let seq = 21; seq <= 40; seq++) await publish(seq);
  await page.waitForFunction(() => (window as any).demo.events.length >= 40 && (window as any).demo.connections[1]?.replica !== undefined, undefined, {
    timeout: WAIT_MS,
  });

  const after = await readState(page);
  const seqs = after.events.map((event) => event.data.seq);
  t.same(
    seqs,
    Array.from({ length: 40 }, (_, i) => i + 1),
    'events 1..40, each exactly once, in order',
  );
  t.equal(new Set(after.events.map((event) => event.id)).size, 40, '40 distinct event ids');
  t.equal(after.connections.length, 2, 'one reconnect, made by the browser itself');
  t.equal(after.connections[1]?.resumedAfter, after.events[19]?.id, 'the reconnect resumed after the last event seen (event 20)');
  t.not(after.connections[1]?.replica, holder.replicaId, `the new stream is on a live replica (${after.connections[1]?.replica})`);
  t.ok(
    after.events.slice(20).every((event) => event.connection === 2),
    'events 21..40 came on the new connection',
  );
  t.notOk(
    after.log.some((line) => line.kind === 'reset'),
    'no reset: history covered the gap',
  );

  // A job through the worker, from the page's button: each callback lands on any replica.
  await page.click('#start-job');
  await page.waitForFunction(
    () => [...(window as any).demo.jobs.values()].some((job: any) => job.callbacks.length === 3 && job.callbacks.every((c: any) => c.takenBy)),
    undefined,
    { timeout: WAIT_MS },
  );
  const [job] = (await readState(page)).jobs;
  t.same(
    job?.callbacks.map((callback) => callback.step),
    [1, 2, 3],
    'the three callbacks of the job arrived in order',
  );
  t.equal(job?.status, 'done', 'the job ended done');
  t.same(pageErrors, [], 'no script errors on the page');

  mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  t.ok(existsSync(SCREENSHOT), `screenshot written to ${SCREENSHOT}`);
});
