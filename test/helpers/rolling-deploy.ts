// A rolling deploy under load, for test/serial/rolling-deploy*.test.ts: three replicas behind
// nginx with the shipped config and a real redis-server; 60 clients (the `eventsource` package)
// and 3 pages of the demo in Debian's chromium stream while events are published steadily, each
// to one client's user, through nginx (idempotency keys, retried on 502/503/504). Then r1, r2 and
// r3 are restarted in turn as an orchestrator does: SIGTERM, wait for the drain to end and the
// process to exit 0, start the new process on the same port, wait for its /readyz. It asserts
// what every rolling deploy must keep: every accepted event reaches every client once after
// dedupe by id, in order; no EventSource gives up; every client was moved at least once. It
// prints the deploy's time, each step's, each client's reconnects and their histogram.
import { EventSource } from 'eventsource';
import type { Page } from 'playwright-core';
import type { Test } from 'tap';
import { startNginx } from '../demo/topology.js';
import { launchChromium } from './chromium.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from './fleet.js';
import { freePort } from './free-port.js';
import { getJson, postJson, retryPause } from './http.js';
import { startRedis } from './redis-server.js';
import { type Replica, type ReplicaEnv, startReplicas } from './replica.js';
import { waitFor } from './wait-for.js';

export const CLIENTS = 60;
export const PAGES = 3;
/** Events per second over all users, through nginx. */
const RATE_PER_SECOND = 60;
/** Short drains keep the test bounded; the jittered retry: spreads reconnects over RETRY_MS / 2 .. RETRY_MS × 1.5 + DRAIN_MS / 2. */
const DRAIN_MS = 4000;
const RETRY_MS = 1000;
/** A publish is retried (same idempotency key) this long at most before the test gives up on it. */
const PUBLISH_RETRY_FOR_MS = 15_000;
/** Answers a sender retries: nginx's own when an upstream connection breaks, and Switchboard's 503. */
const RETRYABLE = new Set([502, 503, 504]);
/** Generous: other test files share this machine's two cores. */
const WAIT_MS = 60_000;
/**
 * A test file's timeout for one rolling deploy: six replica starts, nginx, Chromium and three
 * drains took 4.4 minutes on a 2-core machine shared by 8 busy developers (load average 23; a
 * replica then took 25-43 s to start).
 */
export const ROLLING_DEPLOY_TIMEOUT_MS = 420_000;

/** One of the 60 Node clients: what its EventSource saw. */
interface Client {
  user: string;
  source: EventSource;
  /** Each data event's id and seq, in arrival order, duplicates included. */
  received: { id: string; seq: number }[];
  opens: number;
  resets: number;
  /** True if an error ever left the EventSource CLOSED: it gave up. */
  gaveUp: boolean;
  /** Why it gave up: the error event's status code and message, with the time since the deploy began. */
  gaveUpWith?: string;
}

/** What the test reads of a demo page (`window.demo` in public/demo.js). */
interface PageState {
  streamState: string;
  connections: unknown[];
  events: { id: string; data: { seq?: number } }[];
  log: { kind: string }[];
}

const readPage = (page: Page): Promise<PageState> =>
  page.evaluate(() => {
    const demo = (window as unknown as { demo: PageState }).demo;
    return { streamState: demo.streamState, connections: demo.connections, events: demo.events, log: demo.log };
  });

/** A page's events, deduped like a client's. */
const pageSeqs = (state: PageState) => dedupe(state.events.map((event) => ({ id: event.id, seq: event.data.seq as number })));

/** Seqs in arrival order after dropping repeated ids, and how many repeats were dropped. */
function dedupe(received: readonly { id: string; seq: number }[]): { seqs: number[]; repeats: number } {
  const seen = new Set<string>();
  const seqs: number[] = [];
  for (const { id, seq } of received) {
    if (seen.has(id)) continue;
    seen.add(id);
    seqs.push(seq);
  }
  return { seqs, repeats: received.length - seqs.length };
}

export interface RollingDeployOptions {
  /** Set on every replica, beside the fleet's own settings (REBALANCE, for one). */
  env?: ReplicaEnv;
  /**
   * Runs once the last replica restarted answers /readyz 200 (`lastReadyAt`, by Date.now()),
   * while events are still being published; the delivery checks then wait for events published
   * after it returns.
   */
  afterDeploy?: (deploy: { replicas: readonly Replica[]; lastReadyAt: number }) => Promise<void>;
}

export interface RollingDeployReport {
  replicas: readonly Replica[];
  /** From the first SIGTERM to the last /readyz 200. */
  deployMs: number;
  /** Date.now() at the last /readyz 200. */
  lastReadyAt: number;
  /** Per client, the 60 EventSource ones then the 3 pages: opens after the first. */
  reconnects: number[];
}

/** The rolling deploy, with every check it must pass; `t` is the test it reports into. */
export async function rollingDeploy(t: Test, options: RollingDeployOptions = {}): Promise<RollingDeployReport> {
  const redis = await startRedis(t);
  const replicas = await startReplicas(
    t,
    3,
    {
      REDIS_URL: redis.url,
      STREAM_TOKEN_SECRET,
      PUBLISH_API_KEY,
      ALLOW_UNSIGNED_CALLBACKS: 'true',
      // The pages are the demo page, which gets its token from /demo/token.
      DEMO_MODE: 'true',
      DRAIN_MS: String(DRAIN_MS),
      RETRY_MS: String(RETRY_MS),
      ...options.env,
    },
    { timeoutMs: WAIT_MS },
  );
  // No demo worker: the pages here only stream. nginx needs an address for its upstream anyway.
  const nginx = await startNginx(t, { port: await freePort(), replicas: replicas.map((r) => `127.0.0.1:${r.port}`), worker: `127.0.0.1:${await freePort()}` });

  const clients: Client[] = [];
  let deployStarted: number | undefined;
  /** Each replica's restart, timed: what a timeout reports beside the clients. */
  const steps: string[] = [];
  t.teardown(() => clients.forEach((client) => client.source.close()));
  for (let i = 0; i < CLIENTS; i++) {
    const user = `rolling-${i}`;
    const minted = await postJson(`${nginx.url}/v1/tokens`, { userId: user }, { bearer: PUBLISH_API_KEY });
    if (minted.status !== 201) throw new Error(`token for ${user}: ${minted.status} ${minted.text}`);
    const client: Client = {
      user,
      source: new EventSource(`${nginx.url}/stream/${user}?token=${minted.json.token}`),
      received: [],
      opens: 0,
      resets: 0,
      gaveUp: false,
    };
    client.source.addEventListener('open', () => client.opens++);
    client.source.addEventListener('message', (event) => client.received.push({ id: event.lastEventId, seq: JSON.parse(event.data).seq as number }));
    client.source.addEventListener('reset', () => client.resets++);
    client.source.addEventListener('error', (event) => {
      if (client.source.readyState !== EventSource.CLOSED) return;
      client.gaveUp = true;
      const since = deployStarted === undefined ? 'before the deploy' : `${(performance.now() - deployStarted).toFixed(0)} ms into the deploy`;
      client.gaveUpWith = `${event.code ?? 'no status'} ${event.message ?? ''}, ${since}`;
    });
    clients.push(client);
  }

  const browser = await launchChromium(t);
  const pages: { user: string; page: Page; errors: string[] }[] = [];
  for (let i = 0; i < PAGES; i++) {
    const user = `rolling-page-${i}`;
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${nginx.url}/`);
    await page.fill('#user', user);
    await page.click('#connect');
    pages.push({ user, page, errors });
  }
  await waitFor(() => clients.every((client) => client.source.readyState === EventSource.OPEN), { timeoutMs: WAIT_MS, label: 'every client open' });
  for (const { user, page } of pages) {
    await page.waitForFunction(() => (window as any).demo.streamState === 'open', undefined, { timeout: WAIT_MS });
    t.pass(`page of ${user} streaming`);
  }
  const perReplica = await Promise.all(replicas.map(async (r) => (await getJson(`${r.url}/readyz`)).json?.streams as number));
  t.ok(
    perReplica.every((streams) => streams > 0),
    `nginx spread the ${CLIENTS + PAGES} streams over the 3 replicas (${perReplica.join(', ')})`,
  );

  // The publisher: one event at a time, round robin over the users, at a steady pace. Each is
  // retried with its idempotency key until accepted, so per user the accepted order is seq order.
  const users = [...clients.map((client) => client.user), ...pages.map((page) => page.user)];
  const accepted = new Map<string, number[]>(users.map((user) => [user, []]));
  let published = 0;
  let refusedAttempts = 0;
  let duplicateAnswers = 0;
  let stopPublishing = false;
  const publisher = (async () => {
    const started = performance.now();
    while (!stopPublishing) {
      const user = users[published % users.length] as string;
      const seq = (accepted.get(user) as number[]).length + 1;
      const firstTry = performance.now();
      for (;;) {
        const answer = await postJson(`${nginx.url}/v1/users/${user}/events`, { id: `${user}:${seq}`, data: { seq } }, { bearer: PUBLISH_API_KEY }).catch(
          () => undefined,
        );
        if (answer?.status === 202) {
          if (answer.json?.duplicate === true) duplicateAnswers++;
          break;
        }
        if (answer !== undefined && !RETRYABLE.has(answer.status)) throw new Error(`publish ${user}:${seq}: ${answer.status} ${answer.text}`);
        refusedAttempts++;
        if (performance.now() - firstTry > PUBLISH_RETRY_FOR_MS) throw new Error(`publish ${user}:${seq} kept failing: ${answer?.status} ${answer?.text}`);
        await retryPause(answer);
      }
      accepted.get(user)?.push(seq);
      published++;
      const wait = started + (published * 1000) / RATE_PER_SECOND - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the publisher's pace
    }
  })();
  let publisherFailed: unknown;
  publisher.catch((err: unknown) => {
    publisherFailed = err;
  });
  /** Who has not had an event past `counts` yet, and in what state: what a timeout reports. */
  let lagging: string[] = [];
  const deliveredSince = (counts: Map<string, number>) => async () => {
    if (publisherFailed !== undefined) throw publisherFailed;
    const pageStates = await Promise.all(pages.map(({ page }) => readPage(page)));
    lagging = [
      ...clients
        .filter((client) => dedupe(client.received).seqs.length <= (counts.get(client.user) ?? 0))
        .map(
          (client) =>
            `${client.user} (readyState ${client.source.readyState}, gave up ${client.gaveUpWith ?? 'no'}, opens ${client.opens}, ` +
            `${dedupe(client.received).seqs.length} of ${accepted.get(client.user)?.length} accepted)`,
        ),
      ...pages
        .filter(({ user }, i) => pageSeqs(pageStates[i] as PageState).seqs.length <= (counts.get(user) ?? 0))
        .map(({ user }) => `page ${user} (${JSON.stringify(pageStates[pages.findIndex((p) => p.user === user)]?.streamState)})`),
    ];
    return lagging.length === 0;
  };
  /** waitFor on deliveredSince, whose timeout names the clients still waiting. */
  const waitDelivered = async (counts: Map<string, number>, label: string): Promise<void> => {
    try {
      await waitFor(deliveredSince(counts), { timeoutMs: WAIT_MS, label });
    } catch (err) {
      throw new Error(`${(err as Error).message}; still waiting: ${lagging.join('; ')}; ${published} events accepted; deploy steps: ${steps.join('; ')}`, {
        cause: err,
      });
    }
  };
  const acceptedCounts = () => new Map([...accepted].map(([user, seqs]) => [user, seqs.length]));
  await waitDelivered(new Map(), 'every client and page receives events before the deploy');

  // The deploy: each replica in turn, as Kubernetes does it with maxUnavailable 0 once the new pod is ready.
  deployStarted = performance.now();
  for (const replica of replicas) {
    const sigtermAt = performance.now();
    const exit = await replica.kill('SIGTERM');
    const drainedMs = performance.now() - sigtermAt;
    t.same(exit, { code: 0, signal: null }, `${replica.replicaId} drained and exited 0 after SIGTERM`);
    const startAt = performance.now();
    await replica.restart();
    const listeningMs = performance.now() - startAt;
    await waitFor(async () => (await getJson(`${replica.url}/readyz`, { timeoutMs: 2000 })).status === 200, {
      timeoutMs: WAIT_MS,
      label: `${replica.replicaId} ready again`,
    });
    steps.push(
      `${replica.replicaId} (SIGTERM ${(sigtermAt - deployStarted).toFixed(0)} ms into the deploy): SIGTERM to exit ${drainedMs.toFixed(0)} ms; new process listening ${listeningMs.toFixed(0)} ms after its start, ` +
        `ready ${(performance.now() - startAt - listeningMs).toFixed(0)} ms later`,
    );
  }
  const deployMs = performance.now() - deployStarted;
  const lastReadyAt = Date.now();
  // With two of three replicas up at every moment, nginx must never have counted them all failed.
  t.notMatch(nginx.errorLog(), /no live upstreams/, 'nginx always had a live replica to send a request to');
  await options.afterDeploy?.({ replicas, lastReadyAt });

  // Publishing goes on until every client and page has had an event published after the deploy
  // (and after whatever afterDeploy waited for).
  await waitDelivered(acceptedCounts(), 'every client and page receives events after the deploy');
  stopPublishing = true;
  await publisher;

  // Every accepted event reaches every client: wait for the last ones, then compare exactly.
  const pageStates = async (): Promise<PageState[]> => Promise.all(pages.map(({ page }) => readPage(page)));
  await waitFor(
    async () =>
      clients.every((client) => dedupe(client.received).seqs.length >= (accepted.get(client.user)?.length ?? 0)) &&
      (await pageStates()).every((state, i) => pageSeqs(state).seqs.length >= (accepted.get(pages[i]?.user as string)?.length ?? 0)),
    { timeoutMs: WAIT_MS, label: 'every accepted event delivered' },
  );

  let repeats = 0;
  for (const client of clients) {
    const { seqs, repeats: dropped } = dedupe(client.received);
    repeats += dropped;
    t.same(seqs, accepted.get(client.user), `${client.user}: every accepted event (${seqs.length}) once, in order`);
    t.equal(client.resets, 0, `${client.user}: no reset (history covered every reconnect)`);
    t.notOk(client.gaveUp, `${client.user}: its EventSource never gave up`);
    t.equal(client.source.readyState, EventSource.OPEN, `${client.user}: open at the end`);
    t.ok(client.opens >= 2, `${client.user}: moved by the deploy (${client.opens - 1} reconnects)`);
  }
  const states = await pageStates();
  for (const [i, { user, errors }] of pages.entries()) {
    const state = states[i] as PageState;
    const { seqs, repeats: dropped } = pageSeqs(state);
    repeats += dropped;
    t.same(seqs, accepted.get(user), `page ${user}: every accepted event (${seqs.length}) once, in order`);
    t.equal(state.streamState, 'open', `page ${user}: streaming at the end`);
    t.notOk(
      state.log.some((line) => line.kind === 'refused' || line.kind === 'reset'),
      `page ${user}: its EventSource never gave up, and no reset`,
    );
    t.ok(state.connections.length >= 2, `page ${user}: moved by the deploy (${state.connections.length - 1} reconnects)`);
    t.same(errors, [], `page ${user}: no script errors`);
  }

  const streamsAfter = await Promise.all(replicas.map(async (r) => `${r.replicaId} ${(await getJson(`${r.url}/readyz`)).json?.streams}`));
  const reconnects = [...clients.map((client) => client.opens - 1), ...states.map((state) => state.connections.length - 1)];
  const histogram = new Map<number, number>();
  for (const count of reconnects) histogram.set(count, (histogram.get(count) ?? 0) + 1);
  t.comment(
    `rolling deploy of 3 replicas: ${deployMs.toFixed(0)} ms from the first SIGTERM to the last /readyz 200 (DRAIN_MS ${DRAIN_MS}, RETRY_MS ${RETRY_MS})`,
  );
  for (const step of steps) t.comment(`  ${step}`);
  t.comment(`streams per replica after the deploy (r3 restarted last): ${streamsAfter.join(', ')}`);
  t.comment(
    `${published} events accepted (${RATE_PER_SECOND}/s target) for ${users.length} users; ${refusedAttempts} publish attempts answered 502/503/504 or failed and retried, ` +
      `${duplicateAnswers} retries answered as duplicates; ${repeats} repeated deliveries dropped by id`,
  );
  t.comment(
    `reconnects per client: ${[...histogram]
      .sort(([a], [b]) => a - b)
      .map(([count, n]) => `${count}: ${n} clients`)
      .join(', ')}`,
  );
  t.comment(`reconnects, each client in order (60 EventSource, then 3 pages): ${reconnects.join(' ')}`);
  return { replicas, deployMs, lastReadyAt, reconnects };
}
