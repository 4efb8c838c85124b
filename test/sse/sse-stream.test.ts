// SseStream's life, in process: opening → replaying → live → ended, and what each state allows.
import type { ServerResponse } from 'node:http';
import t from 'tap';
import type { ChannelMessage } from '../../src/backplane/backplane.js';
import { topicChannel, userChannel } from '../../src/backplane/redis-keys.js';
import { channelTag, formatSegment, type Position } from '../../src/history/cursor.js';
import { encodeEventBody, encodeIdLine, frameChunk } from '../../src/sse/encoder.js';
import { SseStream, type EncodedEvent, type StreamEndReason } from '../../src/sse/sse-stream.js';
import { localResponse } from '../helpers/local-stream.js';
import type { TeardownHost } from '../helpers/redis-server.js';

const CHANNEL = userChannel('life');
const TAG = channelTag(CHANNEL);
const EPOCH = 'aaaaaaaaaaaa';

function event(ms: number, data: string): EncodedEvent {
  const position: Position = { ms, seq: 0 };
  const positionText = `${ms}-0`;
  const message: ChannelMessage = { channel: CHANNEL, epoch: EPOCH, position, positionText, header: { t: 'message', a: 0 }, dataJson: JSON.stringify(data) };
  const segment = formatSegment(TAG, EPOCH, positionText);
  const body = encodeEventBody('message', message.dataJson);
  const whole = Buffer.from(encodeIdLine(segment) + body);
  const wholeChunk = Buffer.from(frameChunk(whole.toString(), whole.length));
  return { message, segment, body, bodyBytes: Buffer.byteLength(body), whole, wholeChunk, wholeBytes: whole.length };
}

/** A stream of the user's channel, and of `topics` after it, each at position 1-0. */
async function newStream(t: TeardownHost, maxBufferedBytes = 1024 * 1024, topics: readonly string[] = []) {
  const local = await localResponse(t);
  const ended: StreamEndReason[] = [];
  const channels = [CHANNEL, ...topics.map(topicChannel)];
  const stream = new SseStream(local.response, {
    userId: 'life',
    channels,
    tags: channels.map(channelTag),
    maxBufferedBytes,
    drainTimeoutMs: 1000,
    head: { 'content-type': 'text/event-stream' },
    retryMs: 1000,
    expiresAtMs: Number.MAX_SAFE_INTEGER,
    onEnd: (_stream, reason) => ended.push(reason),
    onReset: () => {},
  });
  for (let i = 0; i < channels.length; i++) stream.setPosition(i, EPOCH, { ms: 1, seq: 0 }, '1-0');
  return { stream, local, ended };
}

/** Counts the calls of `response.write` from now on. */
function countWrites(response: ServerResponse): () => number {
  let calls = 0;
  const write = response.write.bind(response) as (...args: unknown[]) => boolean;
  response.write = ((...args: unknown[]) => {
    calls++;
    return write(...args);
  }) as typeof response.write;
  return () => calls;
}

const dataOf = (text: string): string[] => [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!) as string);

t.test('opening: nothing is written before the head, not even a heartbeat', async (t) => {
  const { stream, local } = await newStream(t);
  stream.heartbeat();
  stream.deliver(event(5, 'early'));
  t.equal(local.response.headersSent, false, 'no head yet');
  stream.open();
  stream.goLive();
  await local.waitForText(/data: "early"/);
  t.match(local.received(), /^retry: 1000\n: connected\n\n/, 'the head first, then what was queued');
});

t.test('replaying: live events wait; going live writes them after the replay, minus what it covered, in order', async (t) => {
  const { stream, local } = await newStream(t);
  stream.open();
  stream.deliver(event(3, 'live-3'));
  stream.deliver(event(4, 'live-4'));
  stream.replay(event(2, 'replayed-2'));
  stream.replay(event(3, 'replayed-3'));
  stream.goLive();
  stream.deliver(event(4, 'live-4-again'));
  stream.deliver(event(5, 'live-5'));
  await local.waitForText(/live-5/);
  t.same(dataOf(local.received()), ['replayed-2', 'replayed-3', 'live-4', 'live-5'], 'each position once, in order');
  t.match(stream.cursor(), /\.5-0$/, 'the cursor is at the last event written');
});

t.test('a gap found while replaying is told when the stream goes live, not before', async (t) => {
  const { stream, local } = await newStream(t);
  stream.open();
  stream.skipTo(CHANNEL, { epoch: EPOCH, position: { ms: 9, seq: 0 }, positionText: '9-0' }, 'history_trimmed');
  stream.replay(event(2, 'replayed'));
  t.notMatch(local.received(), /reset/, 'no reset yet');
  stream.goLive();
  stream.deliver(event(10, 'after'));
  await local.waitForText(/"after"/);
  const text = local.received();
  t.ok(text.indexOf('event: reset') > text.indexOf('"replayed"'), 'the reset comes after the replay');
  t.match(text, /: history_trimmed\n\nid: \S+\.9-0\nevent: reset/, 'with its cause, at the position skipped to');
});

t.test('ended: once, from any state, and nothing is written after', async (t) => {
  const { stream, local, ended } = await newStream(t);
  stream.open();
  stream.goLive();
  stream.end('draining', 1234);
  stream.end('slow_client');
  stream.deliver(event(7, 'too-late'));
  stream.heartbeat();
  t.same(ended, ['draining'], 'ended once, for the first reason');
  t.ok(stream.isEnded);
  await local.waitForText(/retry: 1234/);
  t.notMatch(local.received(), /too-late/);
});

t.test('over HTTP/1.1 a live stream frames its own chunks: every event arrives whole, multibyte and large ones, several in one tick', async (t) => {
  const { stream, local } = await newStream(t);
  stream.open();
  stream.goLive();
  const writesThroughResponse = countWrites(local.response);
  const large = 'x'.repeat(70_000);
  stream.deliver(event(5, 'é€😀'));
  stream.deliver(event(6, 'second'));
  stream.heartbeat();
  stream.deliver(event(7, large));
  await local.waitForText(/"x{70000}"/);
  t.same(dataOf(local.received()), ['é€😀', 'second', large], "Node's client parsed every chunk: each size was right");
  t.equal(writesThroughResponse(), 0, 'written to the socket, not through response.write');
  stream.end('draining', 1234);
  await local.waitForText(/retry: 1234\n\n$/);
  t.equal(writesThroughResponse(), 0, "the end's hint too; only response.end() writes the last chunk");
});

t.test('a stream of several channels frames each event with its own id line, sized in bytes', async (t) => {
  const { stream, local } = await newStream(t, undefined, ['news']);
  stream.open();
  stream.goLive();
  const writesThroughResponse = countWrites(local.response);
  const topicEvent = event(8, 'ünïcødé');
  const onTopic = { ...topicEvent, message: { ...topicEvent.message, channel: topicChannel('news') } };
  stream.deliver(onTopic);
  stream.deliver(event(9, 'mine'));
  await local.waitForText(/"mine"/);
  t.same(dataOf(local.received()), ['ünïcødé', 'mine']);
  const ids = [...local.received().matchAll(/^id: (.*)$/gm)].map((m) => m[1]);
  t.same(ids, [stream.cursor().replace(/\.9-0/, '.1-0'), stream.cursor()], 'each event carries the whole cursor at its point');
  t.equal(writesThroughResponse(), 0);
});

t.test('a stream queueing more live events than the bound while replaying is cut', async (t) => {
  const { stream, ended } = await newStream(t, 64 * 1024);
  stream.open();
  for (let ms = 10; ms < 20 && !stream.isEnded; ms++) stream.deliver(event(ms, 'x'.repeat(16 * 1024)));
  t.same(ended, ['slow_client']);
});
