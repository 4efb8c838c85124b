// One subscriber connection per replica, channels subscribed while streams need them and
// released (debounced) after, and nothing left behind after thousands of streams.
import t from 'tap';
import { fleetEnv, startFleet, waitOpen } from '../helpers/fleet.js';
import { getJson } from '../helpers/http.js';
import { startReplica } from '../helpers/replica.js';
import { openSse, type SseConnection } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait-for.js';

const DEBOUNCE_MS = 300;

const userChannels = async (cliLines: () => Promise<string[]>): Promise<string[]> =>
  (await cliLines()).filter((channel) => channel.startsWith('sb:{u:')).sort();

// One fleet for the file. Each test leaves no stream open, and the churn test counts only what
// is left once every channel was released.
const fleet = await startFleet(t, 3, { UNSUBSCRIBE_DEBOUNCE_MS: String(DEBOUNCE_MS), MAX_CONNECTIONS_PER_USER: '64' });

t.test('one subscriber connection per replica, whatever the number of streams', async (t) => {
  const streams: SseConnection[] = [];
  for (let i = 0; i < 90; i++) streams.push(await fleet.stream(fleet.replicas[i % 3]!, `sub-user-${i}`));
  t.teardown(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s, i) => waitOpen(s, `stream ${i}`)));

  const clients = await fleet.redis.clientList();
  const subscribers = clients.filter((c) => c.name?.startsWith('switchboard:sub:'));
  t.same(subscribers.map((c) => c.name).sort(), ['switchboard:sub:r1', 'switchboard:sub:r2', 'switchboard:sub:r3'], 'exactly one subscriber per replica');
  const ours = clients.filter((c) => c.name?.startsWith('switchboard:'));
  t.equal(ours.length, 6, 'two connections per replica in all (commands + subscriber), for 90 streams');
  t.ok(
    subscribers.every((c) => Number(c.sub) === 31),
    'each subscriber holds its 30 user channels plus its probe',
  );

  const channels = await userChannels(() => fleet.redis.cliLines('PUBSUB', 'CHANNELS'));
  t.equal(channels.length, 90, 'every user with an open stream has its channel subscribed once');

  // Close user 0's stream: its channel goes after the debounce, the others stay.
  streams[0]!.close();
  await waitFor(async () => !(await fleet.redis.cliLines('PUBSUB', 'CHANNELS')).includes('sb:{u:sub-user-0}:ch'), {
    timeoutMs: DEBOUNCE_MS + 3000,
    label: 'channel released after the last stream closed',
  });
  t.equal((await userChannels(() => fleet.redis.cliLines('PUBSUB', 'CHANNELS'))).length, 89, 'only that channel left');
});

t.test('a stream that reconnects within the debounce keeps its channel subscribed', async (t) => {
  // Its own replica, with a debounce long enough for a reconnect, on the fleet's Redis.
  const replica = await startReplica(t, fleetEnv(fleet.redis, { REPLICA_ID: 'r-debounce', UNSUBSCRIBE_DEBOUNCE_MS: '2000' }));
  const first = await waitOpen(await fleet.stream(replica, 'flappy'), 'first');
  const subscribesBefore = await subscribeCount(fleet.redis.cli.bind(fleet.redis));
  first.close();
  const second = await waitOpen(await fleet.stream(replica, 'flappy'), 'second');
  t.teardown(() => second.close());
  t.equal(await subscribeCount(fleet.redis.cli.bind(fleet.redis)), subscribesBefore, 'no new SUBSCRIBE for the reconnect');
  const answer = await fleet.publish(replica, 'flappy', 'still here');
  t.equal(answer.json.receivers, 1);
  await second.waitForEvents(1);
});

t.test('thousands of opens and closes leave no stream, channel or subscription behind', async (t) => {
  const [replica] = fleet.replicas;
  const token = new Map<string, string>();
  for (let u = 0; u < 50; u++) token.set(`churn-${u}`, await fleet.token(`churn-${u}`));
  let opened = 0;
  // 40 rounds × 50 concurrent streams = 2000 opens and closes; every fifth is closed as soon as
  // its headers arrive, without waiting for the first comment.
  for (let round = 0; round < 40; round++) {
    const batch = await Promise.all([...token].map(([user, tok]) => openSse(`${replica!.url}/stream/${user}?token=${tok}`)));
    await Promise.all(batch.map((s, i) => (i % 5 === 0 ? Promise.resolve() : s.waitFor((c) => c.comments.length > 0, 5000, 'open'))));
    opened += batch.filter((s) => s.status === 200).length;
    batch.forEach((s) => s.close());
  }
  t.equal(opened, 2000, '2000 streams opened');
  await waitFor(async () => (await getJson(`${replica!.url}/readyz`)).json?.streams === 0, { label: 'no open streams left', timeoutMs: 5000 });
  await waitFor(async () => (await userChannels(() => fleet.redis.cliLines('PUBSUB', 'CHANNELS'))).length === 0, {
    timeoutMs: DEBOUNCE_MS + 5000,
    label: 'every user channel unsubscribed',
  });
  const [subscriber] = (await fleet.redis.clientList()).filter((c) => c.name === 'switchboard:sub:r1');
  t.equal(Number(subscriber!.sub), 1, 'the subscriber holds only its probe channel');
});

/** How many SUBSCRIBE commands Redis has served so far. */
async function subscribeCount(cli: (...args: string[]) => Promise<string>): Promise<number> {
  const stats = await cli('INFO', 'commandstats');
  return Number(/cmdstat_subscribe:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}
