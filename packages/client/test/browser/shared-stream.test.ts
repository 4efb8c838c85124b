// @switchboard/client in a real browser (Debian's chromium, driven by playwright-core) through
// nginx with the shipped config over HTTP/1.1, round-robin over two replicas and a redis-server:
// one stream shared by a user's tabs, a leader tab's close, tokens expiring mid-stream, and the
// React hook refetching a job after `reset`. The page is the package's source bundled with
// esbuild, served at the nginx origin by the browser context itself (same origin as the API).
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser } from '../../../../test/helpers/chromium.js';
import t, { type Test } from 'tap';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../../../../test/helpers/fleet.js';
import { freePort } from '../../../../test/helpers/free-port.js';
import { getJson, postJson } from '../../../../test/helpers/http.js';
import { startRedis } from '../../../../test/helpers/redis-server.js';
import { startReplicas, type Replica } from '../../../../test/helpers/replica.js';
import { waitFor } from '../../../../test/helpers/wait-for.js';
import { startNginx } from '../../../../test/demo/topology.js';
import type { HarnessState, StartOptions } from './page.js';

/** Generous: other test files share this machine's two cores. */
const WAIT_MS = 30_000;
/** A replica starts in about a second, but this shared machine under load has taken over 30 s. */
const START_MS = 90_000;
// Above tap's per-file default (package.json): the replicas' start, then five scenarios of up to
// about 20 s each (the token tests run 6 s of token lifetimes), on a machine shared with other files.
t.setTimeout(START_MS + 180_000);
const PAGE_PATH = '/__client-test/';
/** Bounds the token tests' publish loop (each event is waited for; three 3 s tokens take about 50). */
const MAX_TOKEN_EVENTS = 2000;

/** The page's script: page.ts and the package's source, bundled for the browser. */
async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./page.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const [output] = result.outputFiles;
  if (output === undefined) throw new Error('esbuild wrote no output');
  return output.text;
}

/** Open streams on each replica, from its /metrics (nginx does not proxy /metrics). */
async function openStreams(replicas: Replica[]): Promise<number[]> {
  return Promise.all(replicas.map(async (replica) => metric(await metricsOf(replica), 'switchboard_open_streams')));
}

async function metricsOf(replica: Replica): Promise<string> {
  const answer = await getJson(`${replica.url}/metrics`);
  if (answer.status !== 200) throw new Error(`${replica.url}/metrics: ${answer.status}`);
  return answer.text;
}

/** The sum of a metric's samples whose labels include `labels` (e.g. `reason="auth_expired"`). */
function metric(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (match?.[1] === name && (match[2] ?? '').includes(labels)) sum += Number(match[3]);
  }
  return sum;
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const read = (page: Page): Promise<HarnessState> => page.evaluate(() => window.harness.read());

t.test('@switchboard/client in chromium through nginx', async (t) => {
  const nginxPort = await freePort();
  const nginxUrl = `http://127.0.0.1:${nginxPort}`;
  const redis = await startRedis(t);
  // RETRY_MS 1000: a browser whose replica died reconnects a second later. Callbacks unsigned:
  // signing is not what this file tests.
  const replicas = await startReplicas(
    t,
    2,
    { REDIS_URL: redis.url, STREAM_TOKEN_SECRET, PUBLISH_API_KEY, ALLOW_UNSIGNED_CALLBACKS: 'true', RETRY_MS: '1000' },
    { timeoutMs: START_MS },
  );
  // The template needs a demo worker upstream; nothing here calls /worker/, so nothing listens there.
  await startNginx(t, { port: nginxPort, replicas: replicas.map((replica) => `127.0.0.1:${replica.port}`), worker: `127.0.0.1:${await freePort()}` });
  const script = await bundlePage();
  const browser: Browser = await launchBrowser(t);

  /** Tokens minted for each user, by the test's stand-in for the app's backend. */
  const minted = new Map<string, number>();
  const mint = async (userId: string, ttlSeconds: number) => {
    const answer = await postJson(`${nginxUrl}/v1/tokens`, { userId, ttlSeconds }, { bearer: PUBLISH_API_KEY });
    if (answer.status !== 201) throw new Error(`POST /v1/tokens: ${answer.status} ${answer.text}`);
    minted.set(userId, (minted.get(userId) ?? 0) + 1);
    return answer.json;
  };

  /** A browser context (one profile: its tabs share locks and BroadcastChannels) serving the page. */
  const newContext = async (t: Test): Promise<{ context: BrowserContext; streamUrls: URL[]; jobFetches: () => number; errors: string[] }> => {
    const context = await browser.newContext();
    t.teardown(() => context.close());
    await context.route(`${nginxUrl}${PAGE_PATH}**`, (route) => {
      const isScript = new URL(route.request().url()).pathname.endsWith('.js');
      return route.fulfill(
        isScript
          ? { contentType: 'text/javascript', body: script }
          : { contentType: 'text/html', body: `<!doctype html><meta charset="utf-8"><script type="module" src="${PAGE_PATH}page.js"></script>` },
      );
    });
    await context.exposeFunction('mintToken', mint);
    const streamUrls: URL[] = [];
    let jobFetches = 0;
    context.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname.startsWith('/stream/')) streamUrls.push(url);
      if (url.pathname.startsWith('/v1/jobs/') && request.method() === 'GET') jobFetches++;
    });
    const errors: string[] = [];
    context.on('weberror', (error) => errors.push(error.error().message));
    return { context, streamUrls, jobFetches: () => jobFetches, errors };
  };

  /** Each stream response's status and protocol, as Chromium's network layer saw them. */
  const streamResponses: { status: number; protocol: string }[] = [];
  const openTab = async (context: BrowserContext): Promise<Page> => {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.responseReceived', ({ response }) => {
      if (new URL(response.url).pathname.startsWith('/stream/')) streamResponses.push({ status: response.status, protocol: response.protocol ?? 'unknown' });
    });
    await page.goto(`${nginxUrl}${PAGE_PATH}index.html`);
    await page.waitForFunction(() => window.harness !== undefined, undefined, { timeout: WAIT_MS });
    return page;
  };
  /**
   * Until Chromium has the head of one more stream response than `before`: the replica writes it
   * once the stream's channels are subscribed, so an event published after it reaches the stream.
   */
  const untilStreamHead = (before: number, label: string) =>
    waitFor(() => streamResponses.length > before, { timeoutMs: WAIT_MS, label: `${label}: the stream's head reached the browser` });
  const start = (page: Page, options: StartOptions) => page.evaluate((options) => window.harness.start(options), options);

  /** Through nginx; a publish that meets a dying replica is retried with the same idempotency id. */
  const publish = async (userId: string, seq: number): Promise<string> => {
    for (let attempt = 1; ; attempt++) {
      const answer = await postJson(`${nginxUrl}/v1/users/${userId}/events`, { data: { seq }, id: `seq-${seq}` }, { bearer: PUBLISH_API_KEY });
      if (answer.status === 202) return answer.json.id;
      if (attempt === 3) throw new Error(`publish ${seq}: ${answer.status} ${answer.text}`);
    }
  };

  /** Every page's state, once each has at least `count` events. */
  const untilEvents = (pages: Page[], count: number, label: string): Promise<HarnessState[]> =>
    waitFor(
      async () => {
        const states = await Promise.all(pages.map(read));
        return states.every((state) => state.events.length >= count) ? states : undefined;
      },
      { timeoutMs: WAIT_MS, intervalMs: 50, label },
    );

  const TABS_USER = 'tabs-user';
  const { context: tabsContext, streamUrls: tabStreams, errors: tabErrors } = await newContext(t);
  const tabs: Page[] = [];

  await t.test('8 tabs of one user: all 8 receive every event, over one server stream', async (t) => {
    tabs.push(...(await Promise.all(range(1, 8).map(() => openTab(tabsContext)))));
    await Promise.all(tabs.map((tab) => start(tab, { userId: TABS_USER, ttlSeconds: 3600 })));
    await untilStreamHead(0, '8 tabs');
    await waitFor(async () => sum(await openStreams(replicas)) === 1, { timeoutMs: WAIT_MS, label: 'one stream open on the fleet' });
    // The stream is open: publish, and every tab must get each event.
    for (const seq of range(1, 20)) await publish(TABS_USER, seq);
    const states = await untilEvents(tabs, 20, 'all 8 tabs have 20 events');
    for (const [i, state] of states.entries())
      t.same(
        state.events.map((event) => event.seq),
        range(1, 20),
        `tab ${i + 1}: events 1..20, once each, in order`,
      );
    t.same(
      states.map((state) => state.role).sort(),
      ['follower', 'follower', 'follower', 'follower', 'follower', 'follower', 'follower', 'leader'],
      'one tab leads, 7 follow',
    );
    t.equal(sum(await openStreams(replicas)), 1, 'the fleet holds one stream (switchboard_open_streams summed over the replicas)');
    t.equal(tabStreams.length, 1, 'the browser made one stream request for the 8 tabs');
    t.same(streamResponses, [{ status: 200, protocol: 'http/1.1' }], 'over HTTP/1.1');
    t.equal(minted.get(TABS_USER), 1, 'one token fetched, by the leader');
    t.same(tabErrors, [], 'no script errors');
  });

  await t.test('the leading tab closes: another takes over, no gap, no duplicate', async (t) => {
    const states = await Promise.all(tabs.map(read));
    const leader = tabs[states.findIndex((state) => state.role === 'leader')]!;
    const lastBeforeClose = states[0]!.events.at(-1)!.id;
    const others = tabs.filter((tab) => tab !== leader);
    await leader.close();
    // Published at once: some land while no tab holds a stream, and come from history.
    for (const seq of range(21, 40)) await publish(TABS_USER, seq);
    const after = await untilEvents(others, 40, 'the 7 remaining tabs have 40 events');
    for (const [i, state] of after.entries()) {
      t.same(
        state.events.map((event) => event.seq),
        range(1, 40),
        `tab ${i + 1}: events 1..40, once each, in order`,
      );
      t.equal(new Set(state.events.map((event) => event.id)).size, 40, `tab ${i + 1}: 40 distinct ids`);
    }
    t.equal(after.filter((state) => state.role === 'leader').length, 1, 'a remaining tab leads');
    t.equal(tabStreams.length, 2, 'one new stream request, by the new leader');
    t.equal(tabStreams[1]?.searchParams.get('lastEventId'), lastBeforeClose, 'the new stream resumed after the last event the tabs had (event 20)');
    await waitFor(async () => sum(await openStreams(replicas)) === 1, { timeoutMs: WAIT_MS, label: 'again one stream on the fleet' });
    t.same(tabErrors, [], 'no script errors');
  });
  await tabsContext.close();
  await waitFor(async () => sum(await openStreams(replicas)) === 0, { timeoutMs: WAIT_MS, label: 'the tabs’ stream closed' });

  for (const { name, renewBeforeMs, authExpired } of [
    { name: 'renewed before exp', renewBeforeMs: undefined, authExpired: false },
    // Renewal planned 10 s after exp: the service's `auth-expired` comes first, and the client acts on it.
    { name: 'renewed on auth-expired', renewBeforeMs: -10_000, authExpired: true },
  ]) {
    await t.test(`a token expiring mid-stream is ${name}, without losing an event`, async (t) => {
      const userId = `ttl-${authExpired ? 'expired' : 'renewed'}`;
      const { context, streamUrls, errors } = await newContext(t);
      const page = await openTab(context);
      const ended = async () =>
        sum(await Promise.all(replicas.map(async (r) => metric(await metricsOf(r), 'switchboard_streams_ended_total', 'reason="auth_expired"'))));
      const expiredBefore = await ended();
      const streamsBefore = streamResponses.length;
      await start(page, { userId, ttlSeconds: 3, ...(renewBeforeMs === undefined ? {} : { renewBeforeMs }) });
      await untilStreamHead(streamsBefore, userId);
      await waitFor(async () => sum(await openStreams(replicas)) === 1, { timeoutMs: WAIT_MS, label: 'the stream is open' });
      // One event at a time, each waited for, until the page has used three tokens (two renewals).
      let seq = 0;
      while ((minted.get(userId) ?? 0) < 3 && seq < MAX_TOKEN_EVENTS) {
        await publish(userId, ++seq);
        await untilEvents([page], seq, `event ${seq} arrived`);
      }
      t.ok((minted.get(userId) ?? 0) >= 3, `three tokens used within ${MAX_TOKEN_EVENTS} events`);
      await publish(userId, ++seq);
      const [state] = await untilEvents([page], seq, 'the last event arrived');
      t.same(
        state?.events.map((event) => event.seq),
        range(1, seq),
        `events 1..${seq}, once each, in order, across ${streamUrls.length} streams`,
      );
      t.ok(streamUrls.length >= 3, `a new stream for each token (${streamUrls.length})`);
      t.ok(
        streamUrls.slice(1).every((url) => url.searchParams.get('lastEventId')),
        'each reopened stream resumes with ?lastEventId=',
      );
      t.same(
        streamResponses.slice(streamsBefore).map((response) => response.status),
        streamUrls.map(() => 200),
        'every stream request was answered 200: none went out with an expired token',
      );
      const expired = (await ended()) - expiredBefore;
      if (authExpired) t.ok(expired >= 2, `the service ended streams with auth-expired (${expired}), and the client renewed`);
      else t.equal(expired, 0, 'no stream ran into its exp: each token was renewed before');
      t.same(errors, [], 'no script errors');
      await context.close();
      await waitFor(async () => sum(await openStreams(replicas)) === 0, { timeoutMs: WAIT_MS, label: 'the stream closed' });
    });
  }

  await t.test('after reset, the React hook refetches the job', async (t) => {
    const userId = 'react-user';
    const { context, jobFetches, errors } = await newContext(t);
    const page = await openTab(context);
    const created = await postJson(`${nginxUrl}/v1/jobs`, { userId }, { bearer: PUBLISH_API_KEY });
    t.equal(created.status, 201);
    const { correlationId } = created.json;
    const streamsBefore = streamResponses.length;
    await page.evaluate(([userId, correlationId]) => window.harness.renderJob(userId!, correlationId!), [userId, correlationId]);
    const jobOf = async () => (await read(page)).job;
    await waitFor(async () => (await jobOf())?.job?.status === 'pending', { timeoutMs: WAIT_MS, label: 'the hook shows the job, pending' });
    await untilStreamHead(streamsBefore, userId);
    await waitFor(async () => sum(await openStreams(replicas)) === 1, { timeoutMs: WAIT_MS, label: 'the stream is open' });

    const callback = async (payload: unknown) => {
      for (let attempt = 1; ; attempt++) {
        const answer = await postJson(`${nginxUrl}/v1/callbacks/${correlationId}`, payload, { headers: { 'idempotency-key': JSON.stringify(payload) } });
        if (answer.status === 202) return;
        if (attempt === 3) throw new Error(`callback: ${answer.status} ${answer.text}`);
      }
    };
    await callback({ status: 'running', step: 1 });
    await waitFor(async () => (await jobOf())?.job?.status === 'running', { timeoutMs: WAIT_MS, label: 'the stream event reached the hook' });
    t.equal(jobFetches(), 1, 'a callback on the stream is merged in, without a refetch');

    // Lose the user's history, then the replica holding the stream: the browser reconnects with
    // an id from a history that is gone, and gets `reset`. Callback 2 lands meanwhile.
    const holders = (await openStreams(replicas)).map((count, i) => (count > 0 ? replicas[i] : undefined)).filter((r) => r !== undefined);
    t.equal(holders.length, 1, 'one replica holds the stream');
    await redis.command('DEL', `sb:{u:${userId}}:hist`, `sb:{u:${userId}}:meta`);
    await holders[0]!.kill('SIGKILL');
    await callback({ status: 'done', result: 42 });

    const state = await waitFor(
      async () => {
        const state = await read(page);
        return state.resets.length > 0 && state.job?.job?.status === 'done' && !state.job.loading ? state : undefined;
      },
      { timeoutMs: WAIT_MS, label: 'reset seen, and the job shows done' },
    );
    t.ok(jobFetches() >= 2, `the hook fetched the job again after the reset (${jobFetches()} fetches)`);
    t.same(
      state.job?.job?.callbacks.map((c) => c.payload),
      [
        { status: 'done', result: 42 },
        { status: 'running', step: 1 },
      ],
      'both callbacks, with their payloads, newest first',
    );
    t.same(errors, [], 'no script errors');
  });
});
