// A client that stops reading must not cost the replica unbounded memory or slow anyone else
// down: past STREAM_MAX_BUFFERED_BYTES of queued output it is cut, and it resumes from history
// when it comes back.
import t from 'tap';
import { percentile, startFleet, waitOpen } from '../helpers/fleet.js';
import type { SseConnection } from '../helpers/sse-client.js';
import { withTimeout } from '../helpers/wait-for.js';
import { rssMb } from '../helpers/rss.js';

const MAX_BUFFERED_BYTES = 1024 * 1024;
/** ~32 KB per event: loopback TCP absorbs a few MB before the server's own buffer grows. */
const PAD = 'x'.repeat(32 * 1024);
/** Upper bound on the flood (~19 MB); it stops as soon as the replica cuts the slow stream. */
const MAX_FLOOD_EVENTS = 600;
/** Published to the slow user after the cut: they must come back through history too. */
const AFTER_CUT = 10;
const RSS_GROWTH_LIMIT_MB = 150;

const seqOf = (e: { data: string }): number => JSON.parse(e.data).seq as number;

t.test('a client that stops reading is cut past the bound, others keep sub-second delivery, and it resumes from history', async (t) => {
  const fleet = await startFleet(t, 1, {
    HISTORY_MAX_LEN: '2000',
    STREAM_MAX_BUFFERED_BYTES: String(MAX_BUFFERED_BYTES),
  });
  const replica = fleet.replicas[0]!;
  const slowCuts = (): number => replica.parsedLogs().filter((e) => e.reason === 'slow_client' && e.userId === 'slow-user').length;

  const slow = await waitOpen(await fleet.stream(replica, 'slow-user'), 'slow');
  t.teardown(() => slow.close());
  const normal = await waitOpen(await fleet.stream(replica, 'normal-user'), 'normal');
  t.teardown(() => normal.close());
  slow.pauseReading();

  // RSS sampled while the flood runs (a sampler, not a wait).
  const rssBaselineMb = rssMb(replica.pid);
  let rssPeakMb = rssBaselineMb;
  const sampler = setInterval(() => {
    try {
      rssPeakMb = Math.max(rssPeakMb, rssMb(replica.pid));
    } catch {
      // The process is gone; the assertions below will say so.
    }
  }, 25);
  t.teardown(() => clearInterval(sampler));

  const mark = replica.logMark();
  let cut = false;
  const cutLogged = replica
    .waitForLog((e) => e.reason === 'slow_client' && e.userId === 'slow-user', 60_000, { since: mark, label: 'slow_client cut of slow-user' })
    .then((entry) => {
      cut = true;
      return entry;
    });
  cutLogged.catch(() => {}); // awaited below; a rejection must not go unhandled meanwhile

  // The flood: one publish at a time, so acceptance order is seq order.
  let published = 0;
  let floodDone = false;
  const flood = (async () => {
    try {
      while (!cut && published < MAX_FLOOD_EVENTS) {
        const answer = await fleet.publish(replica, 'slow-user', { seq: published, pad: PAD });
        if (answer.status !== 202) throw new Error(`flood publish ${published}: ${answer.status} ${answer.text}`);
        published++;
      }
      const publishedAtCut = published;
      for (let n = 0; n < AFTER_CUT && cut; n++) {
        const answer = await fleet.publish(replica, 'slow-user', { seq: published, pad: PAD });
        if (answer.status !== 202) throw new Error(`post-cut publish ${published}: ${answer.status} ${answer.text}`);
        published++;
      }
      return publishedAtCut;
    } finally {
      floodDone = true;
    }
  })();

  // Meanwhile: small stamped events to the normal stream, one at a time, publish→receive timed.
  const latencies: number[] = [];
  const probe = (async () => {
    for (let n = 0; !floodDone && n < 2000; n++) {
      const before = normal.events.length;
      const sentAt = performance.now();
      const answer = await fleet.publish(replica, 'normal-user', { n, sentAt });
      if (answer.status !== 202) throw new Error(`normal publish ${n}: ${answer.status} ${answer.text}`);
      await normal.waitForEvents(before + 1, 5000);
      latencies.push(performance.now() - sentAt);
    }
  })();

  const [publishedAtCut] = await Promise.all([flood, probe]);
  const cutEntry = await cutLogged;
  clearInterval(sampler);
  rssPeakMb = Math.max(rssPeakMb, rssMb(replica.pid));

  t.ok(
    cut,
    `the replica cut the slow stream (reason slow_client) after ${publishedAtCut} flood events (~${((publishedAtCut * PAD.length) / 1e6).toFixed(1)} MB)`,
  );
  t.equal(cutEntry.reason, 'slow_client');

  // Normal stream: sub-second delivery throughout, and never cut.
  t.ok(latencies.length >= 10, `the normal stream was probed during the flood (${latencies.length} events)`);
  const slowest = Math.max(...latencies);
  t.ok(slowest < 1000, `every normal-stream event arrived within 1000 ms (max ${slowest.toFixed(1)} ms)`);
  t.comment(
    `normal stream during the flood: ${latencies.length} events, publish→receive median ${percentile(latencies, 50).toFixed(1)} ms, ` +
      `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${slowest.toFixed(1)} ms (includes the HTTP publish round trip)`,
  );
  t.same(
    normal.events.map((e) => JSON.parse(e.data).n),
    latencies.map((_, n) => n),
    'the normal stream got each of its events once, in order',
  );
  t.notOk(normal.isEnded(), 'the normal stream is still open');

  // Memory stays bounded.
  const growthMb = rssPeakMb - rssBaselineMb;
  t.ok(growthMb < RSS_GROWTH_LIMIT_MB, `replica RSS growth ${growthMb.toFixed(1)} MB < ${RSS_GROWTH_LIMIT_MB} MB`);
  t.comment(`replica RSS: baseline ${rssBaselineMb.toFixed(1)} MB, peak ${rssPeakMb.toFixed(1)} MB, growth ${growthMb.toFixed(1)} MB`);

  // The slow client reads again: it gets what the kernel buffered, then the connection ends.
  slow.resumeReading();
  await withTimeout(slow.ended, 15_000, 'slow connection ending after resumeReading');
  t.ok(slow.isEnded(), 'the server ended the slow connection');
  const received = slow.events.map(seqOf);
  t.ok(received.length > 0, `the slow client received ${received.length} events before the cut`);
  t.same(
    received,
    received.map((_, i) => i),
    'what it did receive is a gap-free prefix, in order',
  );
  const lastSeq = received.at(-1) ?? -1;
  t.ok(lastSeq < published - 1, `it missed events (last seq ${lastSeq} of ${published - 1})`);
  const lastId = slow.events.at(-1)?.lastEventId ?? '';
  t.ok(lastId.length > 0, 'the last event it received carries an id');

  // Reconnect with Last-Event-ID: everything after that id comes from history, once, in order.
  // Like a browser's EventSource, a reconnect that fails at the network level is retried (bounded).
  let resumed: SseConnection | undefined;
  const failures: string[] = [];
  for (let attempt = 0; attempt < 3 && resumed === undefined; attempt++) {
    const cutsBefore = slowCuts();
    try {
      const connection = await fleet.stream(replica, 'slow-user', { headers: { 'last-event-id': lastId } });
      t.teardown(() => connection.close());
      resumed = await waitOpen(connection, 'resumed');
    } catch (err) {
      failures.push(`attempt ${attempt + 1}: ${(err as Error).message} (replica logged ${slowCuts() - cutsBefore} new slow_client cut(s) of slow-user)`);
    }
  }
  if (resumed === undefined) {
    t.fail(`resuming with Last-Event-ID ${lastId} (${published - 1 - lastSeq} events to replay) never opened: ${failures.join('; ')}`);
    return;
  }
  t.equal(failures.length, 0, `the first resume opened (${failures.join('; ') || 'no failures'})`);
  const missed = published - 1 - lastSeq;
  await resumed.waitForEvents(missed, 20_000);
  // A marker after the replay: once it is in, anything extra (a duplicate) would be too.
  const marker = await fleet.publish(replica, 'slow-user', { seq: 'marker' });
  t.equal(marker.status, 202);
  await resumed.waitFor((c) => c.events.some((e) => JSON.parse(e.data).seq === 'marker'), 5000, 'marker');
  t.notOk(
    resumed.events.some((e) => e.type === 'reset'),
    'no reset: history covered the gap',
  );
  t.same(
    resumed.events.map((e) => JSON.parse(e.data).seq),
    [...Array.from({ length: missed }, (_, i) => lastSeq + 1 + i), 'marker'],
    `the resumed stream got exactly the ${missed} missed events (seq ${lastSeq + 1}..${published - 1}), then live ones`,
  );
  t.notOk(resumed.isEnded(), 'the resumed stream (a reading client) stays open');
  t.equal(slowCuts(), 1, 'the resumed, reading client was not cut as slow');
});
