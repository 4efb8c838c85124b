// Redis goes away and comes back: publishers get a fast, honest 503; streams stay open and hear
// again without reconnecting.
import t from 'tap';
import { PUBLISH_API_KEY, startFleet, waitOpen } from '../helpers/fleet.js';
import { getJson, postJson } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

t.test('Redis killed: 503 within about a second everywhere; back: open streams receive again', async (t) => {
  const fleet = await startFleet(t, 3, { PROBE_INTERVAL_MS: '500' }, { persistence: 'aof' });
  const [r1, r2, r3] = fleet.replicas as [(typeof fleet.replicas)[0], (typeof fleet.replicas)[0], (typeof fleet.replicas)[0]];
  const job = await postJson(`${r1.url}/v1/jobs`, { userId: 'erin' }, { bearer: PUBLISH_API_KEY });
  const streams = await Promise.all([r1, r2, r3].map((r, i) => fleet.stream(r, `fault-${i}`)));
  t.teardown(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s, i) => waitOpen(s, `fault-${i}`)));
  for (const [i, stream] of streams.entries()) {
    await fleet.publish(fleet.replicas[(i + 1) % 3]!, `fault-${i}`, 'before');
    await stream.waitForEvents(1);
  }

  await fleet.redis.kill('SIGKILL');

  for (const replica of [r1, r2, r3]) {
    const started = performance.now();
    const publish = await fleet.publish(replica, 'fault-0', 'during');
    const elapsed = performance.now() - started;
    t.equal(publish.status, 503, `publish via ${replica.replicaId} is 503`);
    t.equal(publish.json?.code, 'backplane_unavailable');
    t.ok(Number(publish.headers['retry-after']) > 0, 'with Retry-After');
    t.ok(elapsed < 2000, `answered in ${elapsed.toFixed(0)} ms, not left hanging`);
    t.comment(`${replica.replicaId}: publish answered 503 in ${elapsed.toFixed(0)} ms`);
    const callback = await postJson(`${replica.url}/v1/callbacks/${job.json.correlationId}`, { x: 1 });
    t.equal(callback.status, 503, 'a callback is never 2xx while nothing can be stored');
    t.equal(callback.json?.code, 'backplane_unavailable');
  }
  await Promise.all(
    [r1, r2, r3].map((replica) =>
      waitFor(async () => (await getJson(`${replica.url}/readyz`)).status === 503, { timeoutMs: 3000, label: `${replica.replicaId} unready` }),
    ),
  );
  const stillOpen = streams.filter((s) => !s.isEnded()).length;
  t.equal(stillOpen, 3, 'open streams are kept while Redis is away');

  const downAt = performance.now();
  await fleet.redis.restart();
  await Promise.all(
    [r1, r2, r3].map((replica) =>
      waitFor(async () => (await getJson(`${replica.url}/readyz`)).status === 200, { timeoutMs: 10_000, label: `${replica.replicaId} ready again` }),
    ),
  );
  t.comment(`all replicas ready ${(performance.now() - downAt).toFixed(0)} ms after Redis was restarted`);

  for (const [i, stream] of streams.entries()) {
    const answer = await fleet.publish(fleet.replicas[(i + 2) % 3]!, `fault-${i}`, 'after');
    t.equal(answer.status, 202);
    t.equal(answer.json.receivers, 1, `fault-${i}'s replica is subscribed again`);
    await stream.waitForEvents(2);
    t.same(
      stream.events.map((e) => e.data),
      ['"before"', '"after"'],
      `fault-${i} heard again on the same connection`,
    );
    t.equal(stream.comments.filter((c) => c === 'connected').length, 1, 'the stream never reconnected');
  }
});

t.test('CLIENT KILL TYPE pubsub every 2 s while events flow: open streams lose nothing and never reconnect', async (t) => {
  const fleet = await startFleet(t, 2, { PROBE_INTERVAL_MS: '500' });
  const users = ['kill-a', 'kill-b', 'kill-c', 'kill-d'];
  const streams = await Promise.all(users.map((user, i) => fleet.stream(fleet.replicas[i % 2]!, user)));
  t.teardown(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s, i) => waitOpen(s, users[i]!)));

  let kills = 0;
  const killer = setInterval(() => {
    kills++;
    fleet.redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub').catch(() => undefined);
  }, 2000);
  t.teardown(() => clearInterval(killer));

  const sent = new Map<string, number[]>(users.map((u) => [u, []]));
  let missedByPubSub = 0;
  const started = performance.now();
  for (let n = 0; n < 650; n++) {
    const user = users[n % users.length]!;
    const answer = await fleet.publish(fleet.replicas[(n + 1) % 2]!, user, { n });
    t.equal(answer.status, 202, `event ${n} accepted`, { diagnostic: false });
    if (answer.json.receivers === 0) missedByPubSub++;
    sent.get(user)!.push(n);
    // About 100 events per second, for six and a half seconds.
    const wait = started + (n + 1) * 10 - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  clearInterval(killer);
  t.ok(kills >= 3, `${kills} subscriber kills while events flowed`);
  t.ok(missedByPubSub > 0, `${missedByPubSub} events were published while a subscriber was away (pub/sub dropped them)`);
  for (const [i, stream] of streams.entries()) {
    const expected = sent.get(users[i]!)!;
    await stream.waitForEvents(expected.length, 15_000);
    t.same(
      stream.events.map((e) => JSON.parse(e.data).n),
      expected,
      `${users[i]}: all ${expected.length} events, in order, none twice`,
    );
    t.equal(stream.comments.filter((c) => c === 'connected').length, 1, `${users[i]} never reconnected`);
  }
});
