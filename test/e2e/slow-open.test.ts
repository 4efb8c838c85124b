// A stream that is still opening (its channel subscribe waits on a slow Redis) must not be
// touched by the replica's heartbeat: a byte written before the SSE head makes Node send a head
// without `text/event-stream`, and a browser's EventSource then gives up for good.
import t from 'tap';
import { startFleet, waitOpen } from '../helpers/fleet.js';
import { rawRequest } from '../helpers/http.js';
import { openSse } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait-for.js';

const HEARTBEAT_MS = 100;

t.test('heartbeats while a stream is still opening leave its SSE head intact', async (t) => {
  const fleet = await startFleet(t, 1, { HEARTBEAT_MS: String(HEARTBEAT_MS) });
  const replica = fleet.replicas[0]!;
  const early = await waitOpen(await fleet.stream(replica, 'early'), 'early');
  t.teardown(() => early.close());

  // Redis frozen: the next stream's SUBSCRIBE waits, so it sits registered but unopened.
  const lateToken = await fleet.token('late');
  fleet.redis.pause();
  t.teardown(() => {
    if (fleet.redis.paused) fleet.redis.resume();
  });
  const opening = openSse(`${replica.url}/stream/late?token=${lateToken}`, { timeoutMs: 15_000 });
  await waitFor(async () => /^switchboard_open_streams 2$/m.test((await rawRequest({ url: `${replica.url}/metrics` })).body), {
    timeoutMs: 5000,
    label: 'the late stream registered',
  });
  // Two heartbeats reach the open stream while the late one is still waiting on Redis.
  const heard = early.comments.length;
  await early.waitFor((c) => c.comments.length >= heard + 2, 5000, 'two heartbeats');
  fleet.redis.resume();

  // The head arrives only when the stream opens (or is told to retry): always the SSE one.
  const late = await opening;
  t.teardown(() => late.close());
  t.equal(late.status, 200);
  t.match(late.headers['content-type'] ?? '', /^text\/event-stream/, 'the head is the SSE head, not one implied by an early heartbeat');
  await waitOpen(late, 'late');
  await fleet.publish(replica, 'late', 'hello');
  await late.waitFor((c) => c.events.length > 0 || c.isEnded(), 5000, 'an event or a retry ending');
  if (late.isEnded()) {
    // Opening timed out while Redis was frozen: it was told to retry, as the contract says.
    t.match(late.body, /^retry: \d+/m, 'an opening that failed ends with a retry hint');
    const reopened = await waitOpen(await fleet.stream(replica, 'late'), 'late, reconnected');
    t.teardown(() => reopened.close());
    await fleet.publish(replica, 'late', 'hello');
    await reopened.waitForEvents(1);
    t.equal(JSON.parse(reopened.events[0]!.data), 'hello', 'the reconnected stream works');
    return;
  }
  t.equal(JSON.parse(late.events[0]!.data), 'hello', 'the stream works once Redis is back');
});

t.test('with Redis frozen, a new stream gets its head and first comment at once, and goes live once Redis is back', async (t) => {
  const fleet = await startFleet(t, 1);
  const replica = fleet.replicas[0]!;
  const token = await fleet.token('frozen');
  fleet.redis.pause();
  t.teardown(() => {
    if (fleet.redis.paused) fleet.redis.resume();
  });
  const stream = await openSse(`${replica.url}/stream/frozen?token=${token}`);
  t.teardown(() => stream.close());
  await stream.waitFor((c) => c.comments.length > 0, 2000, 'the first comment while Redis is frozen');
  t.ok(fleet.redis.paused, 'Redis was still frozen when the client saw the stream open');
  t.equal(stream.status, 200);
  t.match(stream.headers['content-type'] ?? '', /^text\/event-stream/);
  t.ok(stream.retries.length === 1, 'the retry: hint came with the head');
  fleet.redis.resume();
  await waitFor(async () => (await fleet.publish(replica, 'frozen', 'thawed')).status === 202, { timeoutMs: 10_000, label: 'a publish once Redis is back' });
  await stream.waitForEvents(1, 5000);
  t.equal(JSON.parse(stream.events[0]!.data), 'thawed', 'the stream went live');
});
