// CORS_ORIGINS in a real browser (Debian's chromium, driven by playwright-core): a page served
// from one origin opens an EventSource, with credentials, to a replica on another origin and
// receives an event; a page on an origin the list does not name is refused by the browser itself.
// The listed page can also read what a front end needs to read: a preflighted request with the
// exposed X-Replica-Id, a 4xx problem from the stream, and a 503 once Redis is gone.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { launchBrowser } from '../helpers/chromium.js';
import t, { type Test } from 'tap';
import { startFleet } from '../helpers/fleet.js';
import { getJson } from '../helpers/http.js';
import type { Replica } from '../helpers/replica.js';
import { waitFor } from '../helpers/wait-for.js';

const USER = 'cors-ada';
/** Generous: other test files and benchmarks share this machine's two cores. */
const WAIT_MS = 30_000;

/** What a page records of its EventSource (see `openStream`). */
interface StreamState {
  state: 'connecting' | 'open' | 'closed';
  errors: number;
  seen: unknown[];
}

/** A front end's origin: a static server on 127.0.0.1 that serves one empty page. */
async function frontEnd(t: Test): Promise<string> {
  const server: Server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end('<!doctype html><title>front end</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.unref();
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Opens an EventSource in the page; its state is kept on `window.stream`. */
function openStream(page: Page, url: string): Promise<void> {
  return page.evaluate((url) => {
    const record: StreamState = { state: 'connecting', errors: 0, seen: [] };
    (window as unknown as { stream: StreamState }).stream = record;
    const source = new EventSource(url, { withCredentials: true });
    source.onopen = () => {
      record.state = 'open';
    };
    source.onerror = () => {
      record.errors++;
      if (source.readyState === EventSource.CLOSED) record.state = 'closed';
    };
    source.addEventListener('greeting', (event) => record.seen.push(JSON.parse((event as MessageEvent).data)));
  }, url);
}

const streamState = (page: Page): Promise<StreamState> => page.evaluate(() => (window as unknown as { stream: StreamState }).stream);

/** A cross-origin fetch from the page: its status, X-Replica-Id and JSON body, or the error's name. */
function crossOriginFetch(page: Page, url: string, init: RequestInit): Promise<{ status?: number; replicaId?: string | null; body?: any; error?: string }> {
  return page.evaluate(
    async ({ url, init }) => {
      try {
        const answer = await fetch(url, init);
        const text = await answer.text();
        return { status: answer.status, replicaId: answer.headers.get('x-replica-id'), body: text === '' ? undefined : JSON.parse(text) };
      } catch (err) {
        return { error: (err as Error).name };
      }
    },
    { url, init },
  );
}

t.test('a page on a listed origin gets its stream from another origin; an unlisted one is refused', async (t) => {
  const listedOrigin = await frontEnd(t);
  const unlistedOrigin = await frontEnd(t);
  // A second listed origin that is never used: the list form (echo + credentials), not a lone origin.
  const fleet = await startFleet(t, 1, { CORS_ORIGINS: `${listedOrigin},http://localhost:5173`, PROBE_INTERVAL_MS: '200' });
  const replica = fleet.replicas[0] as Replica;
  const token = await fleet.token(USER);
  const streamUrl = `${replica.url}/stream/${USER}?token=${token}`;

  const browser = await launchBrowser(t);
  const context = await browser.newContext();
  const pages: Record<'listed' | 'unlisted', Page> = { listed: await context.newPage(), unlisted: await context.newPage() };
  const consoleErrors: Record<'listed' | 'unlisted', string[]> = { listed: [], unlisted: [] };
  for (const name of ['listed', 'unlisted'] as const)
    pages[name].on('console', (message) => message.type() === 'error' && consoleErrors[name].push(message.text()));
  await pages.listed.goto(`${listedOrigin}/`);
  await pages.unlisted.goto(`${unlistedOrigin}/`);

  await openStream(pages.listed, streamUrl);
  await openStream(pages.unlisted, streamUrl);
  await pages.listed.waitForFunction(() => (window as any).stream.state === 'open', undefined, { timeout: WAIT_MS });
  await pages.unlisted.waitForFunction(() => (window as any).stream.state === 'closed', undefined, { timeout: WAIT_MS });

  const published = await fleet.publish(replica, USER, { hello: 'from another origin' }, { type: 'greeting' });
  t.equal(published.status, 202, 'an event for the user is accepted');
  await pages.listed.waitForFunction(() => (window as any).stream.seen.length >= 1, undefined, { timeout: WAIT_MS });

  const listed = await streamState(pages.listed);
  t.same(listed.seen, [{ hello: 'from another origin' }], "the listed origin's EventSource (withCredentials) received the event");
  t.equal(listed.errors, 0, 'with no error on the way');
  const unlisted = await streamState(pages.unlisted);
  t.equal(unlisted.state, 'closed', "the unlisted origin's EventSource failed for good");
  t.same(unlisted.seen, [], 'and received nothing, though the same event reached the listed page');
  t.ok(
    consoleErrors.unlisted.some((text) => /CORS policy/.test(text) && text.includes(unlistedOrigin)),
    'the browser says it was CORS that refused it',
    { found: consoleErrors.unlisted },
  );
  t.same(consoleErrors.listed, [], 'no console error on the listed page');

  // Last-Event-ID is not CORS-safelisted: this fetch is preflighted.
  const preflighted = { headers: { 'Last-Event-ID': 'none' }, credentials: 'include' } as const;
  const readable = await crossOriginFetch(pages.listed, `${replica.url}/healthz`, preflighted);
  t.equal(readable.status, 200, 'a preflighted, credentialed request from the listed origin goes through');
  t.equal(readable.replicaId, replica.replicaId, 'and X-Replica-Id is readable (exposed)');
  const refused = await crossOriginFetch(pages.unlisted, `${replica.url}/healthz`, preflighted);
  t.equal(refused.error, 'TypeError', 'the same request from the unlisted origin fails in the browser');

  const problem = await crossOriginFetch(pages.listed, `${replica.url}/stream/${USER}`, {});
  t.equal(problem.status, 401, 'a 4xx on the stream (no token) is readable by the listed page');
  t.equal(problem.body?.status, 401, 'with its problem body');

  await fleet.redis.kill();
  await waitFor(async () => (await getJson(`${replica.url}/readyz`)).status === 503, { timeoutMs: WAIT_MS, label: '/readyz answers 503 once Redis is gone' });
  const unavailable = await crossOriginFetch(pages.listed, `${replica.url}/readyz`, {});
  t.equal(unavailable.status, 503, 'a 503 is readable by the listed page');
  t.equal(unavailable.body?.code, 'backplane_unavailable', 'with its problem code');
});
