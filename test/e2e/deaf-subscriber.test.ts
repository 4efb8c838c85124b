// The subscriber's TCP connection stays up but nothing reaches it any more. Redis still counts it
// as a receiver, so publishes are "accepted" — exactly the silent failure this service exists to
// prevent. The self-probe must notice, make the replica unready, rebuild the subscriber and catch
// the stream up from history.
import t from 'tap';
import { startRedis } from '../helpers/redis-server.js';
import { startReplica } from '../helpers/replica.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen, withFleet } from '../helpers/fleet.js';
import { getJson } from '../helpers/http.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

t.test('a deaf subscriber is detected and recovered within 15 s, and the stream misses nothing', async (t) => {
  const redis = await startRedis(t);
  const proxy = await startTcpProxy(t, () => [{ host: '127.0.0.1', port: redis.port }]);
  const replica = await startReplica(t, {
    REPLICA_ID: 'r1',
    REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
    STREAM_TOKEN_SECRET,
    PUBLISH_API_KEY,
    ALLOW_UNSIGNED_CALLBACKS: 'true',
    // The default interval (2 s) also recovers within 15 s; 1 s keeps the test short.
    PROBE_INTERVAL_MS: '1000',
  });
  const fleet = withFleet(redis, [replica]);
  const stream = await waitOpen(await fleet.stream(replica, 'deaf'), 'deaf');
  t.teardown(() => stream.close());
  await fleet.publish(replica, 'deaf', 0);
  await stream.waitForEvents(1);

  t.equal(proxy.deafen('switchboard:sub:'), 1, 'exactly one connection (the subscriber) made deaf');
  const deafAt = performance.now();
  const sent: unknown[] = [0];
  const during = await fleet.publish(replica, 'deaf', 1);
  sent.push(1);
  t.equal(during.json.receivers, 1, 'Redis still counts the deaf subscriber as a receiver');

  await waitFor(async () => (await getJson(`${replica.url}/readyz`)).status === 503, { timeoutMs: 15_000, label: 'unready while deaf' });
  const detectedMs = performance.now() - deafAt;
  for (let n = 2; n < 5; n++) {
    const answer = await fleet.publish(replica, 'deaf', n).catch(() => undefined);
    if (answer?.status === 202) sent.push(n);
  }
  await waitFor(async () => (await getJson(`${replica.url}/readyz`)).status === 200, { timeoutMs: 15_000, label: 'ready again' });
  const recoveredMs = performance.now() - deafAt;
  t.ok(recoveredMs < 15_000, `detected after ${detectedMs.toFixed(0)} ms, recovered after ${recoveredMs.toFixed(0)} ms`);
  t.comment(`deaf subscriber: detected after ${detectedMs.toFixed(0)} ms, recovered after ${recoveredMs.toFixed(0)} ms`);

  await fleet.publish(replica, 'deaf', 'live');
  sent.push('live');
  await stream.waitForEvents(sent.length, 5000);
  t.same(
    stream.events.map((e) => JSON.parse(e.data)),
    sent,
    'every accepted event arrived, in order, once',
  );
  t.equal(stream.comments.filter((c) => c === 'connected').length, 1, 'the stream itself never reconnected');
});
