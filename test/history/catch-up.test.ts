// The catch-up policy after a subscriber break, in process on the memory backplane: each case
// (clean, trimmed, lost, unreadable, overtaken) for one channel, and a registry catching up a
// subset of its channels (one Redis shard's) while the others flow on untouched.
import { pino } from 'pino';
import t from 'tap';
import type { Backplane, ChannelMessage } from '../../src/backplane/backplane.js';
import { userChannel, type ChannelName } from '../../src/backplane/redis-keys.js';
import { MemoryBackplane } from '../../src/backplane/memory-backplane.js';
import { catchUpChannel, type CatchUpChannel } from '../../src/history/catch-up.js';
import { channelTag, parsePosition, type Position } from '../../src/history/cursor.js';
import type { ResetCause, SkipTarget } from '../../src/history/gaps.js';
import { SseStream } from '../../src/sse/sse-stream.js';
import { StreamRegistry } from '../../src/sse/stream-registry.js';
import { idleMetrics } from '../helpers/idle-metrics.js';
import { localResponse } from '../helpers/local-stream.js';

const logger = pino({ level: 'silent' });

async function publish(backplane: Backplane, channel: ChannelName, data: string): Promise<{ epoch: string; position: Position }> {
  const result = await backplane.publish({ channel, header: { t: 'message', a: Date.now() }, dataJson: JSON.stringify(data) });
  return { epoch: result.epoch, position: parsePosition(result.position)! };
}

/** A catch-up target that records what the policy did. */
function target(channel: ChannelName, seen: { epoch: string; position: Position }, overtaken = () => false) {
  const written: string[] = [];
  const skips: { to: SkipTarget | undefined; cause: ResetCause }[] = [];
  const moves: { epoch: string; position: Position }[] = [];
  const value: CatchUpChannel = {
    channel,
    seen,
    write: (message: ChannelMessage) => written.push(JSON.parse(message.dataJson) as string),
    skip: (to, cause) => skips.push({ to, cause }),
    moveSeen: (epoch, position) => moves.push({ epoch, position }),
    overtaken,
  };
  return { value, written, skips, moves };
}

t.test('catch-up of one channel, case by case', async (t) => {
  const backplane = new MemoryBackplane({ historyMaxLen: 5, historyTtlSeconds: 60 });
  t.teardown(() => backplane.close());
  const deps = { backplane, metrics: idleMetrics(), logger, firstPageEntries: 2 };

  const clean = userChannel('clean');
  const seen = await publish(backplane, clean, 'seen');
  for (const data of ['m1', 'm2', 'm3']) await publish(backplane, clean, data);
  const cleanTarget = target(clean, seen);
  t.equal(await catchUpChannel(cleanTarget.value, deps), true);
  t.same(cleanTarget.written, ['m1', 'm2', 'm3'], 'clean: what was missed, in order, over pages');
  t.same(cleanTarget.skips, [], 'clean: no reset');

  const trimmed = userChannel('trimmed');
  const old = await publish(backplane, trimmed, 'old');
  for (let n = 0; n < 8; n++) await publish(backplane, trimmed, `t${n}`);
  const trimmedTarget = target(trimmed, old);
  await catchUpChannel(trimmedTarget.value, deps);
  t.same(trimmedTarget.written, [], 'trimmed: nothing written');
  t.same(
    trimmedTarget.skips.map((s) => s.cause),
    ['history_trimmed'],
    'trimmed: one reset',
  );
  t.equal(trimmedTarget.skips[0]!.to?.positionText.endsWith(`-${trimmedTarget.moves[0]!.position.seq}`), true, 'moved to the newest');

  const lost = userChannel('lost');
  const fresh = await publish(backplane, lost, 'after-loss');
  const lostTarget = target(lost, { epoch: 'ffffffffffff', position: { ms: 1, seq: 0 } });
  await catchUpChannel(lostTarget.value, deps);
  t.same(
    lostTarget.skips.map((s) => s.cause),
    ['history_lost'],
    'lost: one reset',
  );
  t.same(lostTarget.moves, [{ epoch: fresh.epoch, position: { ms: 0, seq: 0 } }], 'lost: the new history from its start');
  t.same(lostTarget.written, ['after-loss'], 'lost: then what the new history holds');

  const overtaken = target(clean, seen, () => true);
  t.equal(await catchUpChannel(overtaken.value, deps), false, 'overtaken: stops');
  t.same([overtaken.written, overtaken.skips], [[], []], 'overtaken: does nothing');
});

t.test('history that cannot be read: the streams are told, after retries', async (t) => {
  const memory = new MemoryBackplane({ historyMaxLen: 5, historyTtlSeconds: 60 });
  t.teardown(() => memory.close());
  const failing = Object.create(memory) as Backplane;
  let reads = 0;
  failing.readHistory = async () => {
    reads++;
    throw new Error('Redis is away');
  };
  // The retry timers are unref'd (they must not hold a replica's exit); this keeps the test alive meanwhile.
  const alive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(alive));
  const failed = target(userChannel('unreadable'), { epoch: 'aaaaaaaaaaaa', position: { ms: 1, seq: 0 } });
  await catchUpChannel(failed.value, { backplane: failing, metrics: idleMetrics(), logger, firstPageEntries: 2 });
  t.equal(reads, 4, 'tried four times');
  t.same(
    failed.skips.map((s) => s.cause),
    ['catch_up_failed'],
  );
});

/** A memory backplane whose subscriber path can be broken and restored per channel set, as one Redis shard's would. */
class BreakableBackplane extends MemoryBackplane {
  private readonly lost: ((channels?: readonly ChannelName[]) => void)[] = [];
  private readonly back: ((channels?: readonly ChannelName[]) => void)[] = [];
  private readonly deaf = new Set<ChannelName>();

  // MemoryBackplane's own methods take no handler (one process never loses its subscriber), so
  // these overrides must accept being called without one.
  override onSubscriberLost(handler?: (channels?: readonly ChannelName[]) => void): void {
    if (handler) this.lost.push(handler);
  }

  override onResubscribed(handler?: (channels?: readonly ChannelName[]) => void): void {
    if (handler) this.back.push(handler);
  }

  override onMessage(handler: (message: ChannelMessage) => void): void {
    super.onMessage((message) => {
      if (!this.deaf.has(message.channel)) handler(message);
    });
  }

  breakFor(channels: ChannelName[]): void {
    for (const channel of channels) this.deaf.add(channel);
    for (const handler of this.lost) handler(channels);
  }

  restoreFor(channels: ChannelName[]): void {
    for (const channel of channels) this.deaf.delete(channel);
    for (const handler of this.back) handler(channels);
  }
}

t.test('the registry catches up only the channels that broke; the others flow on', async (t) => {
  const backplane = new BreakableBackplane({ historyMaxLen: 100, historyTtlSeconds: 60 });
  t.teardown(() => backplane.close());
  const registry = new StreamRegistry(
    backplane,
    { heartbeatMs: 60_000, unsubscribeDebounceMs: 10, heldLimit: 100, firstPageEntries: 2 },
    logger,
    idleMetrics(),
  );
  t.teardown(() => registry.close());

  const open = async (user: string) => {
    const local = await localResponse(t);
    const channel = userChannel(user);
    const stream = new SseStream(local.response, {
      userId: user,
      channels: [channel],
      tags: [channelTag(channel)],
      maxBufferedBytes: 1024 * 1024,
      drainTimeoutMs: 1000,
      head: { 'content-type': 'text/event-stream' },
      retryMs: 1000,
      expiresAtMs: Number.MAX_SAFE_INTEGER,
      onEnd: (ended) => registry.detach(ended),
      onReset: () => {},
    });
    await registry.attach(stream);
    const first = await backplane.readHistory(channel, undefined, 1);
    stream.setPosition(0, first.epoch, first.last, `${first.last.ms}-${first.last.seq}`);
    stream.open();
    stream.goLive();
    return { channel, local };
  };
  const shardA = await open('on-shard-a');
  const shardB = await open('on-shard-b');
  await publish(backplane, shardA.channel, 'a0');
  await publish(backplane, shardB.channel, 'b0');
  await shardA.local.waitForText(/"a0"/);

  backplane.breakFor([shardA.channel]);
  await publish(backplane, shardA.channel, 'a1-missed');
  await publish(backplane, shardB.channel, 'b1');
  await shardB.local.waitForText(/"b1"/);
  t.notMatch(shardA.local.received(), /a1-missed/, 'shard A hears nothing while broken');
  t.pass('shard B is delivered while shard A is broken');

  backplane.restoreFor([shardA.channel]);
  await publish(backplane, shardA.channel, 'a2');
  await shardA.local.waitForText(/"a2"/);
  const aData = [...shardA.local.received().matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!));
  t.same(aData, ['a0', 'a1-missed', 'a2'], 'shard A: the missed event from history, then live, no gap, no duplicate');
  const bData = [...shardB.local.received().matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!));
  t.same(bData, ['b0', 'b1'], 'shard B: untouched');
  t.notMatch(shardB.local.received() + shardA.local.received(), /reset/, 'no reset anywhere');
});
