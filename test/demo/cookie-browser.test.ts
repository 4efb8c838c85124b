// Cookie auth (STREAM_TOKEN_COOKIE) in a real browser (Debian's chromium, driven by
// playwright-core), with real host names: Chromium resolves *.switchboard.test to 127.0.0.1. The
// app's origin (app.switchboard.test) sets the stream token as a cookie on the parent domain,
// the way an app's backend would; a page there streams from the push origin
// (push.switchboard.test, the replica) with `withCredentials` and the cookie alone: no token in
// any URL. Without the cookie the stream is refused with a 401 and the EventSource closes. A page
// on an origin CORS_ORIGINS does not list (evil.switchboard.test, same site, so the browser does
// send it the cookie) is refused: by the browser (CORS) and by the replica (no stream opened).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrowserContext, Page } from 'playwright-core';
import { launchBrowser } from '../helpers/chromium.js';
import t, { type Test } from 'tap';
import { inProcessFleet, type InProcessReplica } from '../helpers/in-process-replica.js';

/** Real host names for the three origins, all on this machine; nothing else resolves. */
const HOST_RULES = '--host-resolver-rules=MAP *.switchboard.test 127.0.0.1, EXCLUDE localhost';
const PARENT_DOMAIN = 'switchboard.test';
const COOKIE = 'sb_token';
const USER = 'cookie-ada';
/** Generous: other test files and benchmarks share this machine's two cores. */
const WAIT_MS = 30_000;

interface StreamState {
  state: 'connecting' | 'open' | 'closed';
  errors: number;
  seen: unknown[];
}

/**
 * A front end on 127.0.0.1: `/` is an empty page; `/login` also sets `Set-Cookie` (the token, on
 * the parent domain), as an app's backend does once the user is signed in.
 */
async function frontEnd(t: Test, token: () => string): Promise<number> {
  const server: Server = createServer((request, response) => {
    const headers: Record<string, string> = { 'content-type': 'text/html; charset=utf-8' };
    if (request.url === '/login') headers['set-cookie'] = `${COOKIE}=${token()}; Domain=${PARENT_DOMAIN}; Path=/; HttpOnly; SameSite=Lax`;
    response.writeHead(200, headers);
    response.end('<!doctype html><title>front end</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.unref();
  return (server.address() as AddressInfo).port;
}

/** Opens an EventSource with credentials; its state is kept on `window.stream`. */
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

/** A credentialed fetch from the page: the status, or the error's name when the browser refuses the answer. */
function credentialedFetch(page: Page, url: string): Promise<{ status?: number; code?: string; error?: string }> {
  return page.evaluate(async (url) => {
    try {
      const answer = await fetch(url, { credentials: 'include' });
      return { status: answer.status, code: (await answer.json()).code };
    } catch (err) {
      return { error: (err as Error).name };
    }
  }, url);
}

async function newPage(context: BrowserContext, url: string, consoleErrors: string[]): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
  await page.goto(url);
  return page;
}

t.test('a page on the app origin streams from the push origin with the cookie alone', async (t) => {
  let token = '';
  const appPort = await frontEnd(t, () => token);
  const evilPort = await frontEnd(t, () => token);
  const appOrigin = `http://app.${PARENT_DOMAIN}:${appPort}`;
  const evilOrigin = `http://evil.${PARENT_DOMAIN}:${evilPort}`;
  const fleet = await inProcessFleet(t, { STREAM_TOKEN_COOKIE: COOKIE, CORS_ORIGINS: `${appOrigin},http://localhost:5173` });
  const replica = fleet.replicas[0] as InProcessReplica;
  token = await fleet.token(USER);
  const streamUrl = `http://push.${PARENT_DOMAIN}:${replica.port}/stream/${USER}`;

  const browser = await launchBrowser(t, [HOST_RULES]);

  // Signed in: the app's /login set the cookie on the parent domain.
  const signedIn = await browser.newContext();
  const appErrors: string[] = [];
  const app = await newPage(signedIn, `${appOrigin}/login`, appErrors);
  const cookies = await signedIn.cookies(streamUrl);
  t.same(
    cookies.map((c) => [c.name, c.domain]),
    [[COOKIE, `.${PARENT_DOMAIN}`]],
    'the app set the token cookie on the parent domain, so the browser sends it to the push origin',
  );
  await openStream(app, streamUrl);
  await app.waitForFunction(() => (window as any).stream.state === 'open', undefined, { timeout: WAIT_MS });

  // The same browser, a page on an unlisted origin of the same site: the cookie goes with it.
  const evilErrors: string[] = [];
  const evil = await newPage(signedIn, `${evilOrigin}/`, evilErrors);
  await openStream(evil, streamUrl);
  await evil.waitForFunction(() => (window as any).stream.state === 'closed', undefined, { timeout: WAIT_MS });

  // Not signed in: the app's page, no cookie.
  const anonymous = await browser.newContext();
  const anonymousErrors: string[] = [];
  const noCookie = await newPage(anonymous, `${appOrigin}/`, anonymousErrors);
  await openStream(noCookie, streamUrl);
  await noCookie.waitForFunction(() => (window as any).stream.state === 'closed', undefined, { timeout: WAIT_MS });

  const published = await fleet.publish(replica, USER, { hello: 'by cookie' }, { type: 'greeting' });
  t.equal(published.status, 202, 'an event for the user is accepted');
  await app.waitForFunction(() => (window as any).stream.seen.length >= 1, undefined, { timeout: WAIT_MS });

  const streaming = await streamState(app);
  t.same(streaming.seen, [{ hello: 'by cookie' }], 'the app page received the event over the cookie-authenticated stream');
  t.equal(streaming.errors, 0, 'with no error');
  t.same(appErrors, [], 'and no console error');
  t.notOk(
    replica.logs.some((line) => line.includes(token)),
    'the token is on no log line of the replica (it was in no URL)',
  );

  const refusedNoCookie = await streamState(noCookie);
  t.equal(refusedNoCookie.state, 'closed', 'without the cookie the EventSource failed for good');
  t.same(refusedNoCookie.seen, [], 'and received nothing');
  t.same(await credentialedFetch(noCookie, streamUrl), { status: 401, code: 'missing_token' }, 'because the stream answered 401 missing_token');

  const refusedEvil = await streamState(evil);
  t.equal(refusedEvil.state, 'closed', "the unlisted origin's EventSource failed for good, though the browser sent the cookie");
  t.same(refusedEvil.seen, [], 'and received nothing');
  t.ok(
    evilErrors.some((text) => /CORS policy/.test(text) && text.includes(evilOrigin)),
    'the browser says CORS refused it',
    { found: evilErrors },
  );
  const metrics = await (await fetch(`${replica.url}/metrics`)).text();
  t.equal(
    Number(/^switchboard_open_streams (\d+)$/m.exec(metrics)?.[1]),
    1,
    "the replica holds one stream, the app page's: the unlisted origin's was refused there too",
  );
  t.match(metrics, /^switchboard_auth_failures_total\{reason="origin_not_allowed"\} [1-9]/m, 'counted as origin_not_allowed');
});
