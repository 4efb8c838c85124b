// Senders that stall in the middle of a body cannot pile up on a replica. A real replica process
// takes waves of 1,000 unauthenticated publishes that send their headers and 60 KB of a declared
// 65 KB body, then stop: each is refused (401) on its headers alone and its connection closed,
// and the replica's RSS stays within a bound however many waves come. Senders WITH the key that
// stall are cut by REQUEST_TIMEOUT_MS (408). A stream opened before all of this outlives them all
// and still delivers.
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { PUBLISH_API_KEY, startFleet, waitOpen } from '../helpers/fleet.js';
import { postJson } from '../helpers/http.js';
import type { Replica } from '../helpers/replica.js';
import { withTimeout } from '../helpers/wait-for.js';
import { rssMb } from '../helpers/rss.js';

const REQUEST_TIMEOUT_MS = 2000;
/** Node checks request deadlines on an interval (the replica uses at most 1 s). */
const CHECK_INTERVAL_MS = 1000;
/** ulimit -n is 20000 on the test machines: 1,000 client sockets (plus the replica's ends) fit. */
const UNAUTHENTICATED_SENDERS = 1000;
const AUTHENTICATED_SENDERS = 50;
const DECLARED_BYTES = 65_000;
const SENT_BYTES = 60_000;
const BATCH = 100;
const WAVES = 3;
/**
 * What held bodies would cost: each wave's partial bodies, kept until their senders give up.
 * Refused bodies are garbage at once, but V8 collects Buffers only once tens of MB of them have
 * piled up, and freed pages stay with the process: RSS rises once, to a level that depends on the
 * runtime's GC heuristics (measured after three waves: +38 to +48 MB on Node 20, +24 to +83 MB on
 * Node 24), and then stays there however many waves come. Two bounds tell that plateau from
 * retention: the growth after the first wave stays under one wave's bodies (held bodies would add
 * one per wave), and the total stays under what the waves' bodies would hold.
 */
const WAVE_BODIES_MB = (UNAUTHENTICATED_SENDERS * SENT_BYTES) / 2 ** 20;
const RSS_GROWTH_AFTER_FIRST_WAVE_LIMIT_MB = WAVE_BODIES_MB;
const RSS_GROWTH_LIMIT_MB = 2 * WAVE_BODIES_MB;

interface StalledSender {
  /** When the partial body was handed to the kernel. */
  writtenAt: number;
  /** Resolves with the time the connection closed. */
  closed: Promise<number>;
  /** Whatever the replica answered, as text. */
  received(): string;
  socket: Socket;
}

/** Sends the head of a publish and most of its body, then nothing more. */
function stall(replica: Replica, i: number, authorization: string | undefined): Promise<StalledSender> {
  const socket = connect({ host: '127.0.0.1', port: replica.port });
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  // A close that races our own write shows as EPIPE or ECONNRESET: the close itself is what counts.
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  const head =
    `POST /v1/users/stall-${i}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `${authorization === undefined ? '' : `Authorization: ${authorization}\r\n`}Content-Length: ${DECLARED_BYTES}\r\n\r\n`;
  const partial = `{"data":"${'x'.repeat(SENT_BYTES - 10)}`;
  return new Promise<StalledSender>((resolve, reject) => {
    socket.once('connect', () => {
      socket.write(head + partial, (err) => {
        if (err) reject(err);
        else resolve({ writtenAt: Date.now(), closed, received: () => received, socket });
      });
    });
    socket.once('error', reject);
  });
}

async function stallMany(t: Test, replica: Replica, count: number, authorization: string | undefined): Promise<StalledSender[]> {
  const senders: StalledSender[] = [];
  for (let start = 0; start < count; start += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, count - start) }, (_, i) => stall(replica, start + i, authorization)));
    senders.push(...batch);
  }
  t.teardown(() => {
    for (const sender of senders) sender.socket.destroy();
  });
  return senders;
}

const statusOf = (text: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);

t.test('stalled bodies are closed, memory stays bounded, and streams are untouched', async (t) => {
  const fleet = await startFleet(t, 1, { REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
  const replica = fleet.replicas[0] as Replica;

  const stream = await waitOpen(await fleet.stream(replica, 'watcher'), 'watcher');
  t.teardown(() => stream.close());
  const streamOpenedAt = Date.now();

  // Warm the paths the flood takes, so the baseline is a replica that has served requests.
  for (let i = 0; i < 100; i++) await postJson(`${replica.url}/v1/users/warm/events`, { data: i });
  for (let i = 0; i < 20; i++) await postJson(`${replica.url}/v1/users/warm/events`, { data: i }, { bearer: PUBLISH_API_KEY });
  const baselineMb = rssMb(replica.pid);
  let peakMb = baselineMb;
  const sampler = setInterval(() => {
    try {
      peakMb = Math.max(peakMb, rssMb(replica.pid));
    } catch {
      // The process is gone; the assertions below say so.
    }
  }, 25);
  t.teardown(() => clearInterval(sampler));

  // Waves of 1,000 unauthenticated senders stall mid-body, one wave after another.
  const deadline = REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS + 2000;
  const settled: number[] = [];
  for (let wave = 1; wave <= WAVES; wave++) {
    const floodStart = Date.now();
    const senders = await stallMany(t, replica, UNAUTHENTICATED_SENDERS, undefined);
    const written = Date.now();
    const lastClose = await withTimeout(Promise.all(senders.map((s) => s.closed)), deadline, 'every unauthenticated sender closed').then(
      (times) => Math.max(...times),
      () => undefined,
    );
    const statuses = new Map<number, number>();
    for (const sender of senders) {
      const status = statusOf(sender.received());
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    settled.push(rssMb(replica.pid));
    const stillOpen = senders.filter((s) => !s.socket.destroyed).length;
    t.comment(
      `wave ${wave}: ${UNAUTHENTICATED_SENDERS} senders written in ${written - floodStart} ms; ` +
        `${lastClose === undefined ? `NOT all closed after ${deadline} ms (${stillOpen} still open)` : `all closed ${lastClose - written} ms after the last write`}; ` +
        `answers ${JSON.stringify(Object.fromEntries(statuses))}; RSS baseline ${baselineMb.toFixed(1)} MB, peak so far ${peakMb.toFixed(1)} MB, ` +
        `now ${settled.at(-1)!.toFixed(1)} MB`,
    );
    t.ok(lastClose !== undefined, `wave ${wave}: every unauthenticated stalled sender was closed within ${deadline} ms of the last write`);
    t.same(
      [...statuses.keys()].filter((status) => status !== 401 && status !== 0),
      [],
      `wave ${wave}: every answer that arrived is a 401`,
    );
    t.ok((statuses.get(401) ?? 0) > 0, `wave ${wave}: the refusals are 401s`);
  }
  const grownMb = settled.at(-1)! - baselineMb;
  t.ok(
    grownMb <= RSS_GROWTH_LIMIT_MB,
    `RSS after ${WAVES} waves is ${grownMb.toFixed(1)} MB above its baseline (at most ${RSS_GROWTH_LIMIT_MB.toFixed(0)}; held bodies would be ~${(WAVES * WAVE_BODIES_MB).toFixed(0)} MB)`,
  );
  const grownAfterFirstMb = settled.at(-1)! - settled[0]!;
  t.ok(
    grownAfterFirstMb <= RSS_GROWTH_AFTER_FIRST_WAVE_LIMIT_MB,
    `RSS grew ${grownAfterFirstMb.toFixed(1)} MB over waves 2-${WAVES} (at most ${RSS_GROWTH_AFTER_FIRST_WAVE_LIMIT_MB.toFixed(0)}; held bodies would add ~${((WAVES - 1) * WAVE_BODIES_MB).toFixed(0)} MB)`,
  );

  // Senders with the key get past authentication; REQUEST_TIMEOUT_MS cuts them.
  const authenticated = await stallMany(t, replica, AUTHENTICATED_SENDERS, `Bearer ${PUBLISH_API_KEY}`);
  const cutAfter = await withTimeout(
    Promise.all(authenticated.map(async (s) => (await s.closed) - s.writtenAt)),
    deadline,
    'every authenticated sender closed',
  ).catch(() => undefined);
  t.comment(`authenticated: ${cutAfter === undefined ? 'NOT all closed' : `closed ${Math.min(...cutAfter)}-${Math.max(...cutAfter)} ms after their writes`}`);
  t.ok(cutAfter !== undefined, `every authenticated stalled sender was closed within ${deadline} ms`);
  if (cutAfter !== undefined) {
    t.ok(Math.min(...cutAfter) >= REQUEST_TIMEOUT_MS - 100, 'not before REQUEST_TIMEOUT_MS');
    t.ok(Math.max(...cutAfter) <= REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS + 1000, 'and soon after it');
  }
  const answers = authenticated.map((s) => s.received());
  t.ok(
    answers.every((answer) => statusOf(answer) === 408),
    `each was answered 408 (${answers.filter((a) => statusOf(a) === 408).length}/${answers.length})`,
  );
  t.match(answers[0], /application\/problem\+json[\s\S]*"code":"request_timeout"/, 'as problem+json with the request_timeout code');

  // The stream opened first has lived through all of it, longer than the request timeout.
  t.ok(Date.now() - streamOpenedAt > REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS, 'the stream is older than the request timeout');
  t.notOk(stream.isEnded(), 'the stream is still open');
  const published = await fleet.publish(replica, 'watcher', 'still here');
  t.equal(published.status, 202);
  const [event] = await stream.waitForEvents(1);
  t.equal(event?.data, '"still here"', 'and still delivers');
});
