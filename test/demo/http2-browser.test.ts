// HTTP/2 in a real browser (Debian's chromium, driven by playwright-core): one page opens 10
// EventSource streams to one origin. Served over HTTP/2 (a replica with TLS_CERT_FILE and
// TLS_KEY_FILE, a certificate made for the test and trusted for its key alone), all 10 are open
// at once on one connection, and an event published after all opened reaches every one. Served
// over HTTP/1.1 (the same replica setup without TLS), the browser holds 6 connections per origin:
// 6 streams open and get the event, the other 4 wait, unopened, with nothing received.
import type { Page } from 'playwright-core';
import { launchBrowser } from '../helpers/chromium.js';
import t, { type Test } from 'tap';
import { PUBLISH_API_KEY } from '../helpers/fleet.js';
import { inProcessFleet, type InProcessReplica } from '../helpers/in-process-replica.js';
import { makeTestCertificate } from '../helpers/tls-cert.js';

const STREAMS = 10;
/** Chromium's (and every major browser's) HTTP/1.1 connections per origin. */
const HTTP1_CONNECTIONS_PER_ORIGIN = 6;
const USER = 'h2-ada';
/** Generous: other test files and benchmarks share this machine's two cores. */
const WAIT_MS = 30_000;

interface StreamsState {
  open: number;
  connecting: number;
  received: number[];
}

/** Opens `count` EventSources from the page; each counts the `greeting` events it receives. */
function openStreams(page: Page, url: string, count: number): Promise<void> {
  return page.evaluate(
    ({ url, count }) => {
      const sources = Array.from({ length: count }, () => new EventSource(url));
      const received = sources.map(() => 0);
      sources.forEach((source, i) =>
        source.addEventListener('greeting', () => {
          received[i] = (received[i] ?? 0) + 1;
        }),
      );
      (window as unknown as { streams: () => StreamsState }).streams = () => ({
        open: sources.filter((s) => s.readyState === EventSource.OPEN).length,
        connecting: sources.filter((s) => s.readyState === EventSource.CONNECTING).length,
        received: [...received],
      });
    },
    { url, count },
  );
}

const streamsState = (page: Page): Promise<StreamsState> => page.evaluate(() => (window as unknown as { streams: () => StreamsState }).streams());

async function launch(t: Test, extraArgs: string[] = []): Promise<Page> {
  const browser = await launchBrowser(t, extraArgs);
  return (await browser.newContext()).newPage();
}

/** A token and a publish, through the page itself (same origin): the test's fetch cannot be told to trust the certificate. */
function pageJson(page: Page, path: string, body: unknown): Promise<{ status: number; json: any }> {
  return page.evaluate(
    async ({ path, body, key }) => {
      const answer = await fetch(path, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: answer.status, json: await answer.json() };
    },
    { path, body, key: PUBLISH_API_KEY },
  );
}

async function openStreamsFromPage(page: Page, origin: string): Promise<void> {
  await page.goto(`${origin}/`);
  const minted = await pageJson(page, '/v1/tokens', { userId: USER });
  if (minted.status !== 201) throw new Error(`token: ${minted.status}`);
  await openStreams(page, `/stream/${USER}?token=${minted.json.token}`, STREAMS);
}

t.test('HTTP/2: 10 streams from one page to one origin are all live at once', async (t) => {
  const cert = await makeTestCertificate(t);
  const fleet = await inProcessFleet(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile });
  const replica = fleet.replicas[0] as InProcessReplica;
  // Trust for this certificate's key only, the way a pinned key is trusted; no other error is ignored.
  const page = await launch(t, [`--ignore-certificate-errors-spki-list=${cert.spkiSha256}`]);
  const origin = `https://127.0.0.1:${replica.port}`;
  await openStreamsFromPage(page, origin);
  t.equal(
    await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol),
    'h2',
    'the page came over HTTP/2',
  );
  await page.waitForFunction((n) => (window as any).streams().open === n, STREAMS, { timeout: WAIT_MS });
  t.equal(
    Number(/^switchboard_open_streams (\d+)$/m.exec(await page.evaluate(async () => (await fetch('/metrics')).text()))?.[1]),
    STREAMS,
    'the replica holds all 10 streams',
  );

  const published = await pageJson(page, `/v1/users/${USER}/events`, { type: 'greeting', data: { hello: 'h2' } });
  t.equal(published.status, 202, 'an event published after all 10 opened');
  await page.waitForFunction(
    (n) => (window as any).streams().received.every((count: number) => count === 1) && (window as any).streams().received.length === n,
    STREAMS,
    {
      timeout: WAIT_MS,
    },
  );
  const state = await streamsState(page);
  t.same(state.received, Array(STREAMS).fill(1), 'every one of the 10 streams received it, once');
  t.equal(state.open, STREAMS, 'all 10 still open');
});

t.test('HTTP/1.1: the same page gets only 6 live streams; the other 4 wait', async (t) => {
  const fleet = await inProcessFleet(t);
  const replica = fleet.replicas[0] as InProcessReplica;
  const page = await launch(t);
  await openStreamsFromPage(page, replica.url);
  t.equal(
    await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol),
    'http/1.1',
    'the page came over HTTP/1.1',
  );
  await page.waitForFunction((n) => (window as any).streams().open === n, HTTP1_CONNECTIONS_PER_ORIGIN, { timeout: WAIT_MS });
  // Published once 6 are open, and received by those 6: by then the other 4 had every chance.
  const published = await fleet.publish(replica, USER, { hello: 'http/1.1' }, { type: 'greeting' });
  t.equal(published.status, 202, 'an event published after 6 opened');
  await page.waitForFunction((n) => (window as any).streams().received.filter((count: number) => count === 1).length === n, HTTP1_CONNECTIONS_PER_ORIGIN, {
    timeout: WAIT_MS,
  });
  const state = await streamsState(page);
  t.equal(state.open, HTTP1_CONNECTIONS_PER_ORIGIN, '6 streams open');
  t.equal(state.connecting, STREAMS - HTTP1_CONNECTIONS_PER_ORIGIN, 'the other 4 still connecting, with no error');
  t.equal(state.received.filter((count) => count === 0).length, STREAMS - HTTP1_CONNECTIONS_PER_ORIGIN, '4 streams received nothing');
  const metrics = await (await fetch(`${replica.url}/metrics`)).text();
  t.equal(
    Number(/^switchboard_open_streams (\d+)$/m.exec(metrics)?.[1]),
    HTTP1_CONNECTIONS_PER_ORIGIN,
    'the replica holds 6 streams: the other 4 never reached it',
  );
});
