// The problem Switchboard exists for: the stream is on one replica, the publish lands on another.
import t from 'tap';
import { PUBLISH_API_KEY, percentile, startFleet, waitOpen } from '../helpers/fleet.js';
import { postJson } from '../helpers/http.js';
import type { SseConnection } from '../helpers/sse-client.js';

const USERS = 150;
const EVENTS_PER_USER = 5;

// One fleet for the file: each test's users are its own, and its streams close when it ends.
const fleet = await startFleet(t, 3);

t.test('150 streams over 3 replicas each get exactly their own events, in order, published via other replicas', async (t) => {
  const [r1, r2, r3] = fleet.replicas;
  const streams: SseConnection[] = [];
  for (let i = 0; i < USERS; i += 25) {
    const batch = await Promise.all(Array.from({ length: Math.min(25, USERS - i) }, (_, j) => fleet.stream(fleet.replicas[(i + j) % 3]!, `user-${i + j}`)));
    streams.push(...batch);
  }
  t.teardown(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s, i) => waitOpen(s, `user-${i}`)));
  t.same(
    new Set(streams.map((s) => s.headers['x-replica-id'])),
    new Set([r1!.replicaId, r2!.replicaId, r3!.replicaId]),
    'streams are spread over all three replicas',
  );

  const receivers: number[] = [];
  // Each user's events go, one after another, to the replica after the one holding its stream.
  await Promise.all(
    streams.map(async (_, i) => {
      const via = fleet.replicas[(i + 1) % 3]!;
      for (let seq = 0; seq < EVENTS_PER_USER; seq++) {
        const answer = await fleet.publish(via, `user-${i}`, { user: `user-${i}`, seq });
        if (answer.status !== 202) throw new Error(`publish user-${i}/${seq}: ${answer.status} ${answer.text}`);
        receivers.push(answer.json.receivers);
      }
    }),
  );
  await Promise.all(streams.map((stream) => stream.waitForEvents(EVENTS_PER_USER, 15_000)));

  let exact = 0;
  streams.forEach((stream, i) => {
    const got = stream.events.map((e) => JSON.parse(e.data));
    const ok = got.length === EVENTS_PER_USER && got.every((d, seq) => d.user === `user-${i}` && d.seq === seq);
    if (ok) exact++;
    else t.fail(`user-${i} got ${JSON.stringify(got)}`);
  });
  t.equal(exact, USERS, 'every stream got exactly its own events in order');
  t.ok(
    receivers.every((n) => n === 1),
    'each publish reached exactly the one replica holding the stream',
  );
  t.ok(
    streams.every((s) => s.events.every((e) => e.type === 'message' && e.lastEventId.length > 0)),
    'events carry type and id',
  );

  // Latency, measured apart from the flood above (which loads this test process more than the
  // replicas): one event at a time, each to a random user via a replica not holding its stream.
  const latencies: number[] = [];
  for (let n = 0; n < 200; n++) {
    const i = Math.floor(Math.random() * USERS);
    const stream = streams[i]!;
    const before = stream.events.length;
    const started = performance.now();
    await fleet.publish(fleet.replicas[(i + 2) % 3]!, `user-${i}`, { user: `user-${i}`, seq: 'latency' });
    await stream.waitForEvents(before + 1);
    latencies.push(performance.now() - started);
  }
  t.comment(
    `cross-replica publish→receive, ${latencies.length} events, 150 open streams: ` +
      `median ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms ` +
      '(includes the HTTP publish round trip from this test process)',
  );
});

t.test('a topic event reaches every stream that joined it, on every replica', async (t) => {
  const streams = await Promise.all(
    fleet.replicas.flatMap((replica, r) => [0, 1].map((k) => fleet.stream(replica, `topic-user-${r}-${k}`, { topics: ['news'] }))),
  );
  const bystander = await fleet.stream(fleet.replicas[0]!, 'bystander');
  t.teardown(() => [...streams, bystander].forEach((s) => s.close()));
  await Promise.all([...streams, bystander].map((s, i) => waitOpen(s, `stream ${i}`)));

  const answer = await postJson(`${fleet.replicas[1]!.url}/v1/topics/news/events`, { type: 'headline', data: { title: 'hi' } }, { bearer: PUBLISH_API_KEY });
  t.equal(answer.status, 202);
  t.equal(answer.json.receivers, 3, 'all three replicas hold a stream of the topic');
  await Promise.all(streams.map((s) => s.waitForEvents(1)));
  t.ok(streams.every((s) => s.events[0]!.type === 'headline' && JSON.parse(s.events[0]!.data).title === 'hi'));
  // The bystander did not join the topic: a later event of its own is the first it sees.
  await fleet.publish(fleet.replicas[2]!, 'bystander', 'own');
  await bystander.waitForEvents(1);
  t.same(
    bystander.events.map((e) => e.data),
    ['"own"'],
    'a stream that did not join the topic never sees it',
  );
});
