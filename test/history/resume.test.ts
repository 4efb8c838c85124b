// The resume plan for every kind of cursor, in process on the memory backplane: where each of a
// stream's channels starts, what it replays, and when the client must be told of a gap.
import { pino } from 'pino';
import type { ServerResponse } from 'node:http';
import t from 'tap';
import type { Backplane } from '../../src/backplane/backplane.js';
import { topicChannel, userChannel, type ChannelName } from '../../src/backplane/redis-keys.js';
import { MemoryBackplane } from '../../src/backplane/memory-backplane.js';
import { channelTag, formatSegment, parsePosition, SEGMENT_SEPARATOR } from '../../src/history/cursor.js';
import { planResume } from '../../src/history/resume.js';
import { SseStream } from '../../src/sse/sse-stream.js';
import { StreamRegistry } from '../../src/sse/stream-registry.js';
import { idleMetrics } from '../helpers/idle-metrics.js';
import { localResponse } from '../helpers/local-stream.js';

const backplane = new MemoryBackplane({ historyMaxLen: 5, historyTtlSeconds: 60 });
t.teardown(() => backplane.close());
const registry = new StreamRegistry(
  backplane,
  { heartbeatMs: 60_000, unsubscribeDebounceMs: 10, heldLimit: 100, firstPageEntries: 2 },
  pino({ level: 'silent' }),
  idleMetrics(),
);
t.teardown(() => registry.close());

const user = userChannel('planned');
const topic = topicChannel('planned-topic');

async function publish(channel = user): Promise<string> {
  const result = await backplane.publish({ channel, header: { t: 'message', a: 0 }, dataJson: '1' });
  return formatSegment(channelTag(channel), result.epoch, result.position);
}

/** A stream of `userId` on `channels`, attached to the registry (subscribed), not yet planned. */
async function attachedStream(response: ServerResponse, userId: string, channels: ChannelName[]): Promise<SseStream> {
  const stream = new SseStream(response, {
    userId,
    channels,
    tags: channels.map(channelTag),
    maxBufferedBytes: 1024 * 1024,
    drainTimeoutMs: 1000,
    head: {},
    retryMs: 1000,
    expiresAtMs: Number.MAX_SAFE_INTEGER,
    onEnd: (ended) => registry.detach(ended),
    onReset: () => {},
  });
  await registry.attach(stream);
  return stream;
}

/** A stream of the user (and the topic), attached, with the plan for `cursor`. */
async function plan(cursor: string | undefined, withTopic = false, source: Backplane = backplane) {
  const local = await localResponse(t);
  const stream = await attachedStream(local.response, 'planned', withTopic ? [user, topic] : [user]);
  const result = await planResume(stream, cursor, source, registry, 2);
  const replayed = result.replays.map((replay) => replay.pending.length);
  stream.end('client_closed');
  return { reset: result.reset, replayed, cursor: stream.cursor() };
}

const ids: string[] = [];
for (let n = 0; n < 4; n++) ids.push(await publish());
const topicId = await publish(topic);

t.test('no cursor: starts at the newest, nothing to replay, no reset', async (t) => {
  const result = await plan(undefined);
  t.same([result.reset, result.replayed], [undefined, []]);
  t.equal(result.cursor, ids[3], 'the stream stands at the newest event');
});

t.test('a cursor history covers: replays from it, no reset', async (t) => {
  const result = await plan(ids[1]);
  t.equal(result.reset, undefined);
  t.same(result.replayed, [2], 'the first page of what came after (two entries, all that is missed)');
  t.equal(result.cursor, ids[1], 'the stream stands where the client was');
});

t.test('the newest id: nothing to replay, no reset', async (t) => {
  const result = await plan(ids[3]);
  t.same([result.reset, result.replayed], [undefined, []]);
});

t.test('a cursor older than history holds: history_trimmed, from the newest', async (t) => {
  const first = ids[0]!;
  for (let n = 0; n < 6; n++) ids.push(await publish());
  const result = await plan(first);
  t.equal(result.reset, 'history_trimmed');
  t.same(result.replayed, []);
  t.equal(result.cursor, ids.at(-1), 'moved to the newest');
});

t.test('a cursor from another epoch: history_lost', async (t) => {
  const other = ids.at(-1)!.replace(/\.([0-9a-f]{12})\./, '.000000000000.');
  t.equal((await plan(other)).reset, 'history_lost');
});

t.test('a cursor ahead of history: invalid_cursor', async (t) => {
  const ahead = ids.at(-1)!.replace(/\.(\d+)-(\d+)$/, (_m, ms: string) => `.${Number(ms) + 1_000_000}-0`);
  t.equal((await plan(ahead)).reset, 'invalid_cursor');
});

t.test("not one of our ids, or another channel's: invalid_cursor", async (t) => {
  t.equal((await plan('garbage')).reset, 'invalid_cursor', 'garbage');
  const someoneElse = formatSegment(channelTag(userChannel('someone-else')), 'aaaaaaaaaaaa', '1-0');
  t.equal((await plan(someoneElse)).reset, 'invalid_cursor', "another user's channel");
});

t.test('a multi-channel cursor resumes each channel it names; a channel it does not name starts at the newest', async (t) => {
  const both = await plan(`${ids.at(-2)!}${SEGMENT_SEPARATOR}${topicId}`, true);
  t.equal(both.reset, undefined);
  t.same(both.replayed, [1], 'one user event to replay, none on the topic');
  const userOnly = await plan(ids.at(-2)!, true);
  t.equal(userOnly.reset, undefined, 'a cursor for the user channel alone is fine');
  t.ok(userOnly.cursor.endsWith(topicId.split('.').at(-1)!), 'the topic starts at its newest');
});

t.test('opened before its channels were subscribed: no cursor, yet what was accepted since the head is replayed', async (t) => {
  const late = userChannel('opened-early');
  const before = await backplane.publish({ channel: late, header: { t: 'message', a: 0 }, dataJson: '"before"' });
  // The head went out just after `before` was accepted.
  const openedBefore = parsePosition(before.position)!;
  // Accepted after the head went out, before the SUBSCRIBE reached Redis: never heard live.
  await backplane.publish({ channel: late, header: { t: 'message', a: 0 }, dataJson: '"after-open"' });
  const local = await localResponse(t);
  const stream = await attachedStream(local.response, 'opened-early', [late]);
  const plan = await planResume(stream, undefined, backplane, registry, 2, openedBefore);
  stream.end('client_closed');
  t.equal(plan.reset, undefined, 'no reset');
  t.same(
    plan.replays.flatMap((replay) => replay.pending.map((message) => JSON.parse(message.dataJson))),
    ['after-open'],
    'the event accepted after the head, not the one before',
  );
  t.equal(stream.cursor().split('.').at(-1), before.position, 'the stream stands where the head went out');
});
