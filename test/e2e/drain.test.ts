// SIGTERM drain (CONTRACT.md, Shutdown): readiness fails at once, new streams are sent elsewhere
// with 200 + retry + end, open streams are ended in jittered batches each with its own `retry:`,
// and the process exits 0 within DRAIN_MS; the other replica is untouched.
import t from 'tap';
import { startFleet, waitOpen } from '../helpers/fleet.js';
import { getJson } from '../helpers/http.js';
import { openSse, type SseConnection } from '../helpers/sse-client.js';
import { waitFor, withTimeout } from '../helpers/wait-for.js';

const DRAIN_MS = 3000;
const RETRY_MS = 1000;
const STREAMS = 30;
const EXIT_MARGIN_MS = 2000;

/** The body ends with a `retry:` line (and the blank line after it): the server's last word. */
const ENDS_WITH_RETRY = /(?:^|\n)retry: (\d+)\n\n?$/;

t.test('SIGTERM: unready at once, new streams bounced with retry, open streams ended with jittered retry, exit 0 in time', async (t) => {
  const fleet = await startFleet(t, 2, { DRAIN_MS: String(DRAIN_MS), RETRY_MS: String(RETRY_MS) });
  const [draining, other] = fleet.replicas as [(typeof fleet.replicas)[0], (typeof fleet.replicas)[0]];

  const streams: SseConnection[] = [];
  t.teardown(() => streams.forEach((s) => s.close()));
  for (let i = 0; i < STREAMS; i += 10) {
    const batch = await Promise.all(Array.from({ length: 10 }, (_, j) => fleet.stream(draining, `drain-${i + j}`)));
    streams.push(...batch);
  }
  await Promise.all(streams.map((s, i) => waitOpen(s, `drain-${i}`)));
  t.ok(
    streams.every((s) => s.headers['x-replica-id'] === draining.replicaId),
    `${STREAMS} streams open on ${draining.replicaId}`,
  );
  t.ok(
    streams.every((s) => s.retries[0] === RETRY_MS),
    'each stream got retry: RETRY_MS on open',
  );
  const survivor = await waitOpen(await fleet.stream(other, 'survivor'), 'survivor');
  t.teardown(() => survivor.close());
  t.equal((await getJson(`${draining.url}/readyz`)).status, 200, 'ready before SIGTERM');

  // Made before SIGTERM so the drain-time request measures the replica, not token minting.
  const lateToken = await fleet.token('late-comer');
  const endedAt = new Map<SseConnection, number>();
  for (const s of streams) void s.ended.then(() => endedAt.set(s, performance.now()));

  const sigtermAt = performance.now();
  const exited = draining.kill('SIGTERM');

  // Readiness turns 503 (problem+json, shutting_down) quickly.
  const unready = await waitFor(
    async () => {
      const answer = await getJson(`${draining.url}/readyz`, { timeoutMs: 1000 });
      return answer.status === 503 ? answer : undefined;
    },
    { timeoutMs: 1000, intervalMs: 10, label: '/readyz 503 after SIGTERM' },
  );
  const unreadyMs = performance.now() - sigtermAt;
  t.ok(unreadyMs < 1000, `/readyz answered 503 ${unreadyMs.toFixed(0)} ms after SIGTERM`);
  t.match(unready.headers['content-type'], /^application\/problem\+json/, 'as problem+json');
  t.equal(unready.json?.code, 'shutting_down', 'code shutting_down');
  t.equal(unready.json?.status, 503);
  t.ok(Number(unready.headers['retry-after']) > 0, `with Retry-After (${unready.headers['retry-after']})`);

  // A stream asked for during the drain: 200 + retry: + end, never a 5xx.
  const late = await openSse(`${draining.url}/stream/late-comer?token=${lateToken}`);
  t.teardown(() => late.close());
  t.equal(late.status, 200, 'a new stream during the drain is answered 200 (not 5xx)');
  t.match(late.headers['content-type'], /^text\/event-stream/);
  await withTimeout(late.ended, 2000, 'the drain-time stream ending');
  t.equal(late.retries.length, 1, `it carries one retry: line (${late.retries.join(',')} ms)`);
  t.equal(late.events.length, 0, 'and no events');
  const lateAt = performance.now() - sigtermAt;

  // Every open stream is ended by the server, a retry: line its last word.
  await withTimeout(Promise.all(streams.map((s) => s.ended)), DRAIN_MS + EXIT_MARGIN_MS, 'all drained streams ending');
  const finalRetries: number[] = [];
  let endedWithRetry = 0;
  for (const s of streams) {
    const match = ENDS_WITH_RETRY.exec(s.body);
    if (match === null) {
      t.fail(`a stream did not end with a retry: line: ${JSON.stringify(s.body.slice(-80))}`);
      continue;
    }
    endedWithRetry++;
    finalRetries.push(Number(match[1]));
  }
  t.equal(endedWithRetry, STREAMS, 'every open stream ended with a retry: line before the end');
  t.ok(
    streams.every((s) => s.retries.length === 2 && s.retries[1] === finalRetries[streams.indexOf(s)]),
    'the client parsed that retry: as its reconnect hint',
  );
  const distinct = new Set(finalRetries).size;
  t.ok(distinct > 1, `the drain retry: values are jittered (${distinct} distinct of ${STREAMS})`);
  const endTimes = [...endedAt.values()].map((at) => at - sigtermAt);
  const spreadMs = Math.max(...endTimes) - Math.min(...endTimes);
  t.ok(spreadMs > 200, `streams were ended in batches spread over ${spreadMs.toFixed(0)} ms, not all at once`);
  t.comment(
    `drain: readyz 503 after ${unreadyMs.toFixed(0)} ms; drain-time stream bounced at ${lateAt.toFixed(0)} ms; ` +
      `streams ended between ${Math.min(...endTimes).toFixed(0)} and ${Math.max(...endTimes).toFixed(0)} ms; ` +
      `retry: ${Math.min(...finalRetries)}..${Math.max(...finalRetries)} ms (${distinct} distinct)`,
  );

  // The process exits 0, within the bound.
  const exit = await withTimeout(exited, DRAIN_MS + EXIT_MARGIN_MS, 'replica exit after SIGTERM');
  const exitMs = performance.now() - sigtermAt;
  t.same(exit, { code: 0, signal: null }, 'exit code 0');
  t.ok(exitMs < DRAIN_MS + EXIT_MARGIN_MS, `exited ${exitMs.toFixed(0)} ms after SIGTERM (bound ${DRAIN_MS} + ${EXIT_MARGIN_MS} ms)`);
  t.comment(`SIGTERM → exit: ${exitMs.toFixed(0)} ms (DRAIN_MS ${DRAIN_MS})`);
  t.ok(
    draining.logs.some((l) => /draining/.test(l)),
    'the replica logged its drain',
  );

  // The other replica behind the same Redis keeps working, before and after the exit.
  t.notOk(survivor.isEnded(), 'the stream on the other replica was not touched');
  const viaOther = await fleet.publish(other, 'survivor', { after: 'exit' });
  t.equal(viaOther.status, 202, 'the other replica accepts a publish');
  t.equal(viaOther.json?.receivers, 1, 'and it reaches the one replica holding the stream');
  await survivor.waitForEvents(1, 2000);
  t.same(JSON.parse(survivor.events[0]!.data), { after: 'exit' }, 'the stream on the other replica receives it');
  t.equal((await getJson(`${other.url}/readyz`)).status, 200, 'the other replica is ready');
});
