// Redis behind Sentinel: kill -9 the master while events flow through three replicas. Every
// replica's connections follow the master to the promoted replica, its subscriber catches up from
// history, and every stream ends with every accepted event exactly once, in order (a `reset` only
// where the history read afterwards proves an acknowledged write was lost).
import t from 'tap';
import { EventSource } from 'eventsource';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { checkDelivery } from '../helpers/delivery-check.js';
import { postJson, retryPause } from '../helpers/http.js';
import { redisCommand } from '../helpers/redis-server.js';
import { startRedisSentinel } from '../helpers/redis-sentinel.js';
import { startReplicas } from '../helpers/replica.js';
import { waitFor } from '../helpers/wait-for.js';

const USERS = 60;
const EVENTS = 600;
const RATE_PER_SECOND = 100;
const KILL_AT_MS = 2000;
/** A publish is retried (same idempotency id) until accepted, at most this long: failover takes ~3.5 s. */
const PUBLISH_RETRY_FOR_MS = 15_000;

interface Stream {
  user: string;
  source: EventSource;
  /** seq of each event in arrival order; -1 for a reset. */
  received: number[];
  arrivals: number[];
}

t.test('Sentinel: kill -9 the master mid-stream; every stream gets every accepted event once, in order', async (t) => {
  const sentinel = await startRedisSentinel(t);
  const replicas = await startReplicas(t, 3, {
    REDIS_SENTINELS: sentinel.sentinels.join(','),
    REDIS_SENTINEL_NAME: sentinel.name,
    STREAM_TOKEN_SECRET,
    PUBLISH_API_KEY,
    ALLOW_UNSIGNED_CALLBACKS: 'true',
    PROBE_INTERVAL_MS: '500',
  });

  const streams: Stream[] = [];
  for (let i = 0; i < USERS; i++) {
    const user = `sentinel-${i}`;
    const via = replicas[i % replicas.length]!;
    const minted = await postJson(`${via.url}/v1/tokens`, { userId: user }, { bearer: PUBLISH_API_KEY });
    const stream: Stream = { user, received: [], arrivals: [], source: new EventSource(`${via.url}/stream/${user}?token=${minted.json.token}`) };
    stream.source.addEventListener('message', (event) => {
      stream.received.push(JSON.parse(event.data).seq as number);
      stream.arrivals.push(performance.now());
    });
    stream.source.addEventListener('reset', () => stream.received.push(-1));
    streams.push(stream);
  }
  t.teardown(() => streams.forEach((s) => s.source.close()));
  await waitFor(() => streams.every((s) => s.source.readyState === EventSource.OPEN), { timeoutMs: 10_000, label: 'every stream open' });

  const accepted = new Map<string, number[]>(streams.map((s) => [s.user, []]));
  let retried = 0;
  let killedAt = 0;
  let longestPublishWaitMs = 0;
  const oldMaster = sentinel.master();
  const started = performance.now();
  for (let seq = 0; seq < EVENTS; seq++) {
    if (killedAt === 0 && performance.now() - started >= KILL_AT_MS) {
      killedAt = performance.now();
      await sentinel.killMaster();
    }
    const user = `sentinel-${seq % USERS}`;
    const via = replicas[seq % replicas.length]!;
    const firstTry = performance.now();
    for (;;) {
      const answer = await postJson(`${via.url}/v1/users/${user}/events`, { id: `seq-${seq}`, data: { seq } }, { bearer: PUBLISH_API_KEY }).catch(
        () => undefined,
      );
      if (answer?.status === 202) break;
      retried++;
      if (performance.now() - firstTry > PUBLISH_RETRY_FOR_MS) throw new Error(`publish ${seq} kept failing: ${answer?.status} ${answer?.text}`);
      await retryPause(answer);
    }
    longestPublishWaitMs = Math.max(longestPublishWaitMs, performance.now() - firstTry);
    accepted.get(user)!.push(seq);
    const wait = started + ((seq + 1) * 1000) / RATE_PER_SECOND - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the publisher's pace
  }
  t.ok(killedAt > 0, 'the master was killed while events flowed');
  const promoted = await sentinel.waitForFailover();
  t.not(promoted.master.port, (await oldMaster).port, 'the sentinels promoted the replica');

  await checkDelivery(
    t,
    new Map(streams.map((s) => [s.user, s.received])),
    accepted,
    (user) => redisCommand(promoted.master.port, ['XRANGE', `sb:{u:${user}}:hist`, '-', '+']),
    20_000,
  );

  // The gap: the longest time no stream received anything, around the kill.
  const arrivals = streams.flatMap((s) => s.arrivals).sort((a, b) => a - b);
  let gapMs = 0;
  for (let i = 1; i < arrivals.length; i++) if (arrivals[i - 1]! >= killedAt - 1000) gapMs = Math.max(gapMs, arrivals[i]! - arrivals[i - 1]!);
  t.comment(
    `failover: sentinels promoted a new master; longest delivery gap ${gapMs.toFixed(0)} ms, longest wait of one publish ${longestPublishWaitMs.toFixed(0)} ms, ` +
      `${retried} publish attempts refused and retried, ${streams.filter((s) => s.received.includes(-1)).length} streams told of a gap`,
  );
  t.ok(gapMs < 15_000, 'delivery resumed');
});
