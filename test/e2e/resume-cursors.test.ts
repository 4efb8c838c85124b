// What a resume does with every kind of Last-Event-ID, and after history was lost.
import t from 'tap';
import { startFleet, waitOpen, type Fleet } from '../helpers/fleet.js';
import { openSse, type SseConnection } from '../helpers/sse-client.js';
import { getJson } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

async function resume(fleet: Fleet, replicaIndex: number, user: string, lastEventId: string): Promise<SseConnection> {
  const token = await fleet.token(user);
  const connection = await openSse(`${fleet.replicas[replicaIndex]!.url}/stream/${user}?token=${token}`, {
    headers: { 'last-event-id': lastEventId },
  });
  return waitOpen(connection, `resume ${user}`);
}

const dataOf = (c: SseConnection): unknown[] => c.events.filter((e) => e.type === 'message').map((e) => JSON.parse(e.data));

// One fleet for the file. A short history (Redis trims whole nodes of ~100 entries), so old
// positions really are gone; a fast probe, so the replicas see Redis come back soon. The restart
// test empties Redis, so it stays last.
const fleet = await startFleet(t, 2, { HISTORY_MAX_LEN: '5', PROBE_INTERVAL_MS: '500' });

t.test("cursor table: each kind of Last-Event-ID gets what the contract says, never a 5xx, never another user's events", async (t) => {
  const source = await waitOpen(await fleet.stream(fleet.replicas[0]!, 'ann'), 'ann');
  const other = await waitOpen(await fleet.stream(fleet.replicas[0]!, 'ben'), 'ben');
  t.teardown(() => [source, other].forEach((c) => c.close()));
  for (let n = 0; n < 250; n++) await fleet.publish(fleet.replicas[1]!, 'ann', n);
  await fleet.publish(fleet.replicas[1]!, 'ben', 'ben-secret');
  await source.waitForEvents(250, 10_000);
  await other.waitForEvents(1);
  const firstId = source.events[0]!.lastEventId;
  const [tag, epoch, position] = source.events.at(-1)!.lastEventId.split('.') as [string, string, string];
  const otherEpoch = epoch.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  // Cursors relative to "now": earlier cases' live events are in history too.
  const idBack = (n: number) => (): string => source.events.at(-1 - n)!.lastEventId;
  const lastData = (n: number) => (): unknown[] => (n === 0 ? [] : source.events.slice(-n).map((e) => JSON.parse(e.data)));
  const fixed = (cursor: string) => (): string => cursor;
  const none = (): unknown[] => [];

  const cases: { name: string; cursor: () => string; replay: () => unknown[]; reset?: string }[] = [
    { name: 'latest', cursor: idBack(0), replay: none },
    { name: 'mid-history', cursor: idBack(3), replay: lastData(3) },
    { name: 'older than history', cursor: fixed(firstId), replay: none, reset: 'history_trimmed' },
    { name: 'another epoch (history lost)', cursor: fixed(`${tag}.${otherEpoch}.${position}`), replay: none, reset: 'history_lost' },
    { name: 'ahead of history', cursor: fixed(`${tag}.${epoch}.9999999999999-0`), replay: none, reset: 'invalid_cursor' },
    { name: 'garbage', cursor: fixed('not-an-id'), replay: none, reset: 'invalid_cursor' },
    { name: 'very long', cursor: fixed(`${firstId}_`.repeat(400)), replay: none, reset: 'invalid_cursor' },
    { name: "another user's", cursor: fixed(other.events[0]!.lastEventId), replay: none, reset: 'invalid_cursor' },
  ];
  let published = 250;
  for (const { name, cursor: cursorOf, replay: replayOf, reset } of cases) {
    await t.test(name, async (t) => {
      const cursor = cursorOf();
      const replay = replayOf();
      const stream = await resume(fleet, 1, 'ann', cursor);
      t.teardown(() => stream.close());
      t.equal(stream.status, 200, 'a resume is never refused');
      const marker = `live-after-${name}`;
      await fleet.publish(fleet.replicas[0]!, 'ann', marker);
      published++;
      await stream.waitFor((c) => dataOf(c).includes(marker), 5000, 'the live event');
      await source.waitForEvents(published);
      const resets = stream.events.filter((e) => e.type === 'reset');
      if (reset === undefined) {
        t.equal(resets.length, 0, 'no reset');
      } else {
        t.equal(resets.length, 1, 'exactly one reset');
        t.same(JSON.parse(resets[0]!.data), { reason: 'history_gap' }, "the reset data is exactly the contract's");
        t.ok(stream.comments.includes(reset), `a comment before it names the cause (${reset})`);
        t.equal(stream.events[0]!.type, 'reset', 'the reset comes before any event');
        t.not(resets[0]!.lastEventId, cursor, 'the reset carries a fresh cursor to resume from');
      }
      t.same(dataOf(stream), [...replay, marker], 'replayed what history proves was missed, then live');
      t.notOk(stream.body.includes('ben-secret'), "never another user's event");
      if (cursor.length > 1000) t.notOk(stream.body.includes(cursor), 'the junk cursor is not echoed');
    });
  }
  const status = await getJson(`${fleet.replicas[1]!.url}/readyz`);
  t.equal(status.status, 200, 'the replica is fine after all that');
});

t.test('Redis restarted empty: open streams and resuming clients are told, then get live events', async (t) => {
  const open = await waitOpen(await fleet.stream(fleet.replicas[0]!, 'cy'), 'cy');
  t.teardown(() => open.close());
  for (let n = 0; n < 3; n++) await fleet.publish(fleet.replicas[1]!, 'cy', n);
  await open.waitForEvents(3);
  const lastId = open.events[2]!.lastEventId;

  await fleet.redis.kill('SIGKILL');
  await fleet.redis.restart();
  await Promise.all(
    fleet.replicas.map((r) => waitFor(async () => (await getJson(`${r.url}/readyz`)).status === 200, { timeoutMs: 10_000, label: `${r.replicaId} ready` })),
  );

  const resumed = await resume(fleet, 1, 'cy', lastId);
  t.teardown(() => resumed.close());
  await fleet.publish(fleet.replicas[1]!, 'cy', 'after-restart');
  await resumed.waitFor((c) => dataOf(c).includes('after-restart'), 5000, 'live event after reset');
  t.same(
    resumed.events.map((e) => e.type),
    ['reset', 'message'],
    'the resuming client: reset, then live',
  );
  t.same(JSON.parse(resumed.events[0]!.data), { reason: 'history_gap' });
  t.ok(resumed.comments.includes('history_lost'), 'the resuming client is told the history was lost');

  await open.waitFor((c) => dataOf(c).includes('after-restart'), 5000, 'the stream that stayed open hears again');
  t.same(
    open.events.slice(3).map((e) => e.type),
    ['reset', 'message'],
    'the stream that stayed open: reset, then live',
  );
  t.same(JSON.parse(open.events[3]!.data), { reason: 'history_gap' });
  t.ok(open.comments.includes('history_lost'), 'the open stream is told the history was lost');
  t.equal(open.comments.filter((c) => c === 'connected').length, 1, 'it never reconnected');
});
