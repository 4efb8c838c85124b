// The fleet knows itself: presence counts and the per-user cap across three replica processes on
// one real Redis, and a replica killed with SIGKILL dropping out of both within PRESENCE_TTL_MS.
import t, { type Test } from 'tap';
import { type Endpoint, fleetEnv, PUBLISH_API_KEY, waitOpen, withFleet } from '../helpers/fleet.js';
import { getJson } from '../helpers/http.js';
import { startRedis } from '../helpers/redis-server.js';
import { type Replica, startReplicas } from '../helpers/replica.js';
import type { SseConnection } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait-for.js';

/** Short, so the kill -9 test is quick; a heartbeat every 500 ms (a third of it). */
const PRESENCE_TTL_MS = 1500;
const CAP = 16;

/** A replica starts in about a second, but this shared 2-core host under load has taken over 30 s. */
const START_TIMEOUT_MS = 120_000;

const redis = await startRedis(t);
const fleet = withFleet(
  redis,
  await startReplicas(t, 3, fleetEnv(redis, { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS), MAX_CONNECTIONS_PER_USER: String(CAP) }), {
    timeoutMs: START_TIMEOUT_MS,
  }),
);
const [r1, r2, r3] = fleet.replicas as [Replica, Replica, Replica];

async function open(t: Test, replica: Endpoint, userId: string, topics?: string[]): Promise<SseConnection> {
  const stream = await fleet.stream(replica, userId, topics ? { topics } : {});
  t.teardown(() => stream.close());
  return waitOpen(stream, `${userId} on ${replica.replicaId}`);
}

async function userPresence(via: Endpoint, userId: string): Promise<{ userId: string; streams: number; replicas: Record<string, number> }> {
  const answer = await getJson(`${via.url}/v1/users/${userId}/presence`, { bearer: PUBLISH_API_KEY });
  if (answer.status !== 200) throw new Error(`presence of ${userId}: ${answer.status} ${answer.text}`);
  return answer.json;
}

async function topicPresence(via: Endpoint, topic: string): Promise<number> {
  const answer = await getJson(`${via.url}/v1/topics/${topic}/presence`, { bearer: PUBLISH_API_KEY });
  if (answer.status !== 200) throw new Error(`presence of topic ${topic}: ${answer.status} ${answer.text}`);
  t.same(Object.keys(answer.json).sort(), ['streams', 'topic']);
  return answer.json.streams;
}

/** Waits until every replica answers `expected` for the user. */
async function untilUserPresence(userId: string, expected: { streams: number; replicas: Record<string, number> }, timeoutMs = 5000): Promise<void> {
  for (const via of fleet.replicas.filter((r) => r.running)) {
    await waitFor(
      async () => {
        const got = await userPresence(via, userId);
        return got.userId === userId && got.streams === expected.streams && JSON.stringify(sorted(got.replicas)) === JSON.stringify(sorted(expected.replicas));
      },
      { timeoutMs, label: `presence of ${userId} via ${via.replicaId} is ${JSON.stringify(expected)}` },
    );
  }
}

async function untilTopicPresence(topic: string, streams: number, timeoutMs = 5000): Promise<void> {
  for (const via of fleet.replicas.filter((r) => r.running)) {
    await waitFor(async () => (await topicPresence(via, topic)) === streams, {
      timeoutMs,
      label: `presence of topic ${topic} via ${via.replicaId} is ${streams}`,
    });
  }
}

const sorted = (record: Record<string, number>): [string, number][] => Object.entries(record).sort(([a], [b]) => a.localeCompare(b));

t.test('presence counts are exact across 3 replicas after graceful opens and closes', async (t) => {
  const alice = [
    await open(t, r1, 'alice', ['news']),
    await open(t, r1, 'alice'),
    await open(t, r2, 'alice', ['news']),
    await open(t, r2, 'alice'),
    await open(t, r2, 'alice'),
    await open(t, r3, 'alice'),
  ];
  const others = [await open(t, r3, 'bob', ['news']), await open(t, r1, 'carol', ['news', 'sport'])];
  await untilUserPresence('alice', { streams: 6, replicas: { [r1.replicaId]: 2, [r2.replicaId]: 3, [r3.replicaId]: 1 } });
  await untilUserPresence('bob', { streams: 1, replicas: { [r3.replicaId]: 1 } });
  await untilUserPresence('nobody', { streams: 0, replicas: {} });
  await untilTopicPresence('news', 4);
  await untilTopicPresence('sport', 1);

  const metrics = await waitFor(
    async () => {
      const text = (await getJson(`${r1.url}/metrics`)).text;
      const lines = fleet.replicas.map((r) => new RegExp(`^switchboard_fleet_streams\\{replica="${r.replicaId}"\\} \\d+$`, 'm').exec(text));
      return lines.every(Boolean) ? text : undefined;
    },
    { label: 'switchboard_fleet_streams names every replica' },
  );
  t.match(metrics, /# TYPE switchboard_fleet_streams gauge/);

  // Close a stream on each replica, one of them on the topic.
  for (const stream of [alice[0], alice[3], alice[5]]) stream?.close();
  await untilUserPresence('alice', { streams: 3, replicas: { [r1.replicaId]: 1, [r2.replicaId]: 2 } });
  await untilTopicPresence('news', 3);

  for (const stream of [...alice, ...others]) stream.close();
  await untilUserPresence('alice', { streams: 0, replicas: {} });
  await untilTopicPresence('news', 0);
  await untilTopicPresence('sport', 0);
});

t.test('the per-user cap counts across replicas: the 17th stream gets 429 on any replica, and a close frees a slot', async (t) => {
  const streams: SseConnection[] = [];
  for (let i = 0; i < CAP; i++) streams.push(await open(t, fleet.replicas[i % 3] as Endpoint, 'capped'));
  await untilUserPresence('capped', { streams: CAP, replicas: { [r1.replicaId]: 6, [r2.replicaId]: 5, [r3.replicaId]: 5 } });
  for (const replica of fleet.replicas) {
    const refused = await fleet.stream(replica, 'capped');
    t.teardown(() => refused.close());
    t.equal(refused.status, 429, `the 17th stream on ${replica.replicaId} is refused`);
    t.match(refused.body, /too_many_streams/);
  }
  streams[0]?.close();
  // The slot comes back as soon as the close reached the replica: the next open takes it.
  const again = await waitFor(
    async () => {
      const stream = await fleet.stream(r3, 'capped');
      if (stream.status === 200) return stream;
      stream.close();
      return undefined;
    },
    { label: 'a freed slot is taken by a new stream' },
  );
  t.teardown(() => again.close());
  await waitOpen(again, 'the stream in the freed slot');
  const refused = await fleet.stream(r1, 'capped');
  t.teardown(() => refused.close());
  t.equal(refused.status, 429, 'and then the cap is full again');
});

t.test('a replica killed with SIGKILL leaves every count, and its slots of the cap, within PRESENCE_TTL_MS', async (t) => {
  const dying = fleet.replicas[2];
  if (dying === undefined) throw new Error('no third replica');
  for (let i = 0; i < 10; i++) await open(t, r3, 'dave', ['games']);
  for (let i = 0; i < 6; i++) await open(t, r1, 'dave', ['games']);
  await untilUserPresence('dave', { streams: 16, replicas: { [r1.replicaId]: 6, [r3.replicaId]: 10 } });
  await untilTopicPresence('games', 16);
  const refused = await fleet.stream(r2, 'dave');
  t.teardown(() => refused.close());
  t.equal(refused.status, 429, 'the cap is full before the kill');

  await dying.kill('SIGKILL');
  const killedAt = Date.now();
  // The bound: the dead replica's key expires at most PRESENCE_TTL_MS after its last heartbeat;
  // the readers ask Redis directly. Plus the time a request takes on a loaded machine.
  const bound = PRESENCE_TTL_MS + 2000;
  await untilUserPresence('dave', { streams: 6, replicas: { [r1.replicaId]: 6 } }, bound);
  await untilTopicPresence('games', 6, bound);
  t.comment(`the killed replica's streams left the counts ${Date.now() - killedAt} ms after the kill`);

  // The cap's slots come back once a surviving heartbeat names the replica dead: within one more beat.
  const reclaimed = await waitFor(
    async () => {
      const stream = await fleet.stream(r2, 'dave');
      if (stream.status === 200) return stream;
      stream.close();
      return undefined;
    },
    { timeoutMs: bound + PRESENCE_TTL_MS, label: "the dead replica's slots of the cap are free again" },
  );
  t.teardown(() => reclaimed.close());
  await waitOpen(reclaimed, 'a stream in a reclaimed slot');
  t.comment(`its slots of the cap were free ${Date.now() - killedAt} ms after the kill`);
  await untilUserPresence('dave', { streams: 7, replicas: { [r1.replicaId]: 6, [r2.replicaId]: 1 } });
});
