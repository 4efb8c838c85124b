// One stream token must not be able to hurt other users through resumes. A topic's history holds
// 1,000 events of 60 KB; 32 streams on two replicas of three resume it from the oldest id and then
// never read. Replay is paged under a byte budget and paced by the client, so the replicas' memory
// stays bounded, Redis is never held by one huge read, publishes for other users through the third
// replica keep their latency, and every replica stays ready. The streams that never read are cut.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { percentile, PUBLISH_API_KEY, startFleet } from '../helpers/fleet.js';
import { getJson, postJson } from '../helpers/http.js';
import type { Replica } from '../helpers/replica.js';
import { openSse } from '../helpers/sse-client.js';
import { withTimeout } from '../helpers/wait-for.js';
import { rssMb } from '../helpers/rss.js';

const HISTORY_EVENTS = 1000;
const EVENT_BYTES = 60 * 1024;
const STALLED_PER_REPLICA = 16;
/** Publishes timed through the third replica, per round; p99s are compared as medians of rounds (the host is shared). */
const PUBLISHES_PER_ROUND = 200;
const ROUNDS = 3;
const RSS_GROWTH_LIMIT_MB = 150;
const SAMPLE_EVERY_MS = 25;
const DRAIN_TIMEOUT_MS = 4000;
const TOPIC = 'storm';
/** The default MAX_CONCURRENT_RESUMES_PER_USER. */
const RESUMES_PER_USER = 4;

/** Opens a stream on a raw socket, reads the response head, then never reads again. */
function openStalled(replica: Replica, path: string): Promise<{ status: number; socket: Socket }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = connect(replica.port, '127.0.0.1');
      socket.on('error', () => {}); // the replica cuts it; nothing to do here
      socket.once('data', (chunk: Buffer) => {
        socket.pause();
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 0), socket });
      });
      socket.once('close', () => reject(new Error('closed before the head')));
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    }),
    10_000,
    `stalled stream on ${replica.replicaId}`,
  );
}

/** Publishes to other users through `via`, one at a time: each answer's latency in ms, and the answers that were not 202. */
async function timedPublishes(via: Replica, label: string): Promise<{ latencies: number[]; refused: string[] }> {
  const latencies: number[] = [];
  const refused: string[] = [];
  for (let n = 0; n < PUBLISHES_PER_ROUND; n++) {
    const started = performance.now();
    const answer = await fleet.publish(via, `bystander-${n % 20}`, { n, label });
    latencies.push(performance.now() - started);
    if (answer.status !== 202) refused.push(`${label} publish ${n}: ${answer.status}`);
  }
  return { latencies, refused };
}

/** ROUNDS rounds of timed publishes: the median of their p99s, the median p50, and every refusal. */
async function rounds(label: string): Promise<{ p99: number; p99s: number[]; p50: number; refused: string[] }> {
  const results = [];
  for (let round = 0; round < ROUNDS; round++) results.push(await timedPublishes(r3, `${label}-${round}`));
  const p99s = results.map((result) => percentile(result.latencies, 99));
  return {
    p99: percentile(p99s, 50),
    p99s,
    p50: percentile(
      results.map((result) => percentile(result.latencies, 50)),
      50,
    ),
    refused: results.flatMap((result) => result.refused),
  };
}

const fleet = await startFleet(t, 3, { HISTORY_MAX_LEN: String(HISTORY_EVENTS), STREAM_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS) });
const [r1, r2, r3] = fleet.replicas as [Replica, Replica, Replica];

// The history: 1,000 events of 60 KB on one topic, published 8 at a time.
const pad = 'x'.repeat(EVENT_BYTES);
let oldestId = '';
for (let n = 0; n < HISTORY_EVENTS; n += 8) {
  const answers = await Promise.all(
    Array.from({ length: Math.min(8, HISTORY_EVENTS - n) }, () => postJson(`${r1.url}/v1/topics/${TOPIC}/events`, { data: pad }, { bearer: PUBLISH_API_KEY })),
  );
  for (const answer of answers) if (answer.status !== 202) throw new Error(`history publish: ${answer.status} ${answer.text}`);
  oldestId ||= answers[0]!.json.id as string;
}

/** A stream of a user of its own that resumes the topic from its oldest event. */
async function resumePath(user: string): Promise<string> {
  const token = await fleet.token(user, { topics: [TOPIC] });
  return `/stream/${user}?token=${token}&topics=${TOPIC}&lastEventId=${encodeURIComponent(oldestId)}`;
}

t.test('32 resumes of a 60 MB history that never read: bounded memory, other users unharmed, every replica ready', async (t) => {
  // Readiness and memory are sampled from before the calm rounds to the end, so both phases
  // carry the sampler's load alike.
  const baseline = { r1: rssMb(r1.pid), r2: rssMb(r2.pid) };
  const peak = { ...baseline };
  const notReady: string[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak.r1 = Math.max(peak.r1, rssMb(r1.pid));
      peak.r2 = Math.max(peak.r2, rssMb(r2.pid));
      const answers = await Promise.all(fleet.replicas.map(async (r) => ({ id: r.replicaId, status: (await getJson(`${r.url}/readyz`)).status })));
      for (const answer of answers) if (answer.status !== 200) notReady.push(`${answer.id}: ${answer.status}`);
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS)); // a sampler's pace, not a wait
    }
  })();

  // Warm up, then the same publishes without the storm: the latency to compare against.
  await timedPublishes(r3, 'warm-up');
  const calm = await rounds('calm');

  // The storm: 16 streams on each of r1 and r2, each its own user, resuming from the oldest id.
  const stalled = await Promise.all(
    [r1, r2].flatMap((replica) =>
      Array.from({ length: STALLED_PER_REPLICA }, async (_, i) => openStalled(replica, await resumePath(`attacker-${replica.replicaId}-${i}`))),
    ),
  );
  t.teardown(() => {
    for (const { socket } of stalled) socket.destroy();
  });
  const storm = await rounds('storm');
  sampling = false;
  await sampler;

  const growth = { r1: peak.r1 - baseline.r1, r2: peak.r2 - baseline.r2 };
  const [calmP99, stormP99] = [calm.p99, storm.p99];
  t.comment(
    `RSS r1 ${baseline.r1.toFixed(0)} -> peak ${peak.r1.toFixed(0)} MB (+${growth.r1.toFixed(0)}), r2 ${baseline.r2.toFixed(0)} -> peak ${peak.r2.toFixed(0)} MB (+${growth.r2.toFixed(0)})`,
  );
  t.comment(
    `publishes through r3, p99 per round: calm ${calm.p99s.map((v) => v.toFixed(2)).join(', ')} ms; storm ${storm.p99s.map((v) => v.toFixed(2)).join(', ')} ms; p50 calm ${calm.p50.toFixed(2)}, storm ${storm.p50.toFixed(2)} ms`,
  );
  t.same([...calm.refused, ...storm.refused], [], 'every publish to other users was answered 202');
  t.ok(
    stalled.every(({ status }) => status === 200),
    'every stalled resume was opened (200)',
  );
  t.ok(growth.r1 <= RSS_GROWTH_LIMIT_MB && growth.r2 <= RSS_GROWTH_LIMIT_MB, `RSS grew at most ${RSS_GROWTH_LIMIT_MB} MB on r1 and r2`);
  t.ok(
    fleet.replicas.every((r) => r.running),
    'no replica crashed',
  );
  t.same(notReady, [], '/readyz stayed 200 on every replica throughout');
  t.ok(
    stormP99 <= 2 * calmP99,
    `publish p99 in the storm (${stormP99.toFixed(2)} ms, median of ${ROUNDS} rounds) within 2x of calm (${calmP99.toFixed(2)} ms)`,
  );
});

t.test('a stream that does not read its replay is cut within the drain deadline, freeing its resume slot', async (t) => {
  const mark = r3.logMark();
  const started = performance.now();
  const { socket } = await openStalled(r3, await resumePath('never-reads'));
  t.teardown(() => socket.destroy());
  const cut = await r3.waitForLog((e) => e.userId === 'never-reads' && e.reason === 'slow_client', 30_000, { since: mark, label: 'never-reads cut' });
  t.ok(cut, `cut as a slow client after ${Math.round(performance.now() - started)} ms (drain deadline ${DRAIN_TIMEOUT_MS} ms)`);
});

t.test(`one user gets at most ${RESUMES_PER_USER} resumes at once on a replica; the next is told to retry`, async (t) => {
  const held = await Promise.all(Array.from({ length: RESUMES_PER_USER }, async () => openStalled(r3, await resumePath('greedy'))));
  t.teardown(() => {
    for (const { socket } of held) socket.destroy();
  });
  t.ok(
    held.every(({ status }) => status === 200),
    `${RESUMES_PER_USER} resumes replaying`,
  );
  const refused = await openSse(`${r3.url}${await resumePath('greedy')}`);
  await withTimeout(refused.ended, 5000, 'the refused resume ends');
  t.equal(refused.status, 200, 'the excess resume is answered 200 (EventSource would give up on an error)');
  t.equal(refused.events.length, 0, 'it replays nothing');
  t.ok(refused.retries.length === 1 && refused.retries[0]! >= 0, `it carries a retry: hint (${refused.retries[0]} ms)`);
  t.ok(refused.comments.includes('resume limit'), 'it says why');
  const other = await openSse(`${r3.url}${await resumePath('patient')}`);
  t.teardown(() => other.close());
  await other.waitForEvents(1, 10_000);
  t.equal(other.status, 200, 'another user resumes meanwhile');
});
