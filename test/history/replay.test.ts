// Paged replay, in process on the memory backplane: pages stay within their byte and entry
// budgets, a replay stops at the newest position its plan saw, merges channels oldest first,
// waits for the client between pages, and says when history moved past it.
import t from 'tap';
import type { Backplane, ChannelMessage } from '../../src/backplane/backplane.js';
import { topicChannel, userChannel, type ChannelName } from '../../src/backplane/redis-keys.js';
import { MemoryBackplane } from '../../src/backplane/memory-backplane.js';
import { comparePositions, ZERO_POSITION, type Position } from '../../src/history/cursor.js';
import { firstPageEntries, HistoryPager, nextPageEntries, PAGE_BYTES, PAGE_MAX_ENTRIES, pageBytes } from '../../src/history/pages.js';
import { ReplayBudget } from '../../src/history/replay-budget.js';
import { ChannelReplay, replayHistory, type ReplaySink } from '../../src/history/replay.js';
import type { ResetCause } from '../../src/history/gaps.js';

const UNLIMITED = new ReplayBudget(1024 * 1024 * 1024);

async function publishMany(backplane: Backplane, channel: ChannelName, count: number, data: unknown = 'x'): Promise<Position[]> {
  const positions: Position[] = [];
  for (let n = 0; n < count; n++) {
    const result = await backplane.publish({ channel, header: { t: 'message', a: Date.now() }, dataJson: JSON.stringify({ n, data }) });
    const [ms, seq] = result.position.split('-').map(Number) as [number, number];
    positions.push({ ms, seq });
  }
  return positions;
}

/** A backplane that records the size of every history read. */
function recording(backplane: Backplane): { backplane: Backplane; reads: { limit: number; entries: number; bytes: number }[] } {
  const reads: { limit: number; entries: number; bytes: number }[] = [];
  const wrapped = Object.create(backplane) as Backplane;
  wrapped.readHistory = async (channel, after, limit) => {
    const read = await backplane.readHistory(channel, after, limit);
    reads.push({ limit, entries: read.entries.length, bytes: read.entries.reduce((sum, e) => sum + e.dataJson.length, 0) });
    return read;
  };
  return { backplane: wrapped, reads };
}

async function replayOf(backplane: Backplane, channel: ChannelName, from: Position, first = 3): Promise<ChannelReplay> {
  const pager = new HistoryPager(backplane, channel, from, first);
  return new ChannelReplay(channel, pager, await pager.next());
}

function collectingSink(opts: { drainedAfter?: number } = {}): ReplaySink & { written: ChannelMessage[]; gaps: ResetCause[]; ended: boolean } {
  const written: ChannelMessage[] = [];
  const gaps: ResetCause[] = [];
  let drains = 0;
  return {
    written,
    gaps,
    ended: false,
    write: (message) => written.push(message),
    gap: (_channel, cause) => gaps.push(cause),
    drained: async () => opts.drainedAfter === undefined || ++drains <= opts.drainedAfter,
  };
}

t.test('page sizes: as many of the largest event as fit, then sized from what was read', async (t) => {
  t.equal(firstPageEntries(64 * 1024), 3, '64 KiB events: 3 to a 256 KiB page');
  t.equal(firstPageEntries(16 * 1024 * 1024), 1, 'at least one entry, however large');
  const small = Array.from({ length: 10 }, () => ({ dataJson: 'x'.repeat(100) }) as ChannelMessage);
  t.equal(nextPageEntries(small.length, pageBytes(small), 3), PAGE_MAX_ENTRIES, 'small events: capped by entries');
  const large = Array.from({ length: 3 }, () => ({ dataJson: 'x'.repeat(60 * 1024) }) as ChannelMessage);
  t.equal(nextPageEntries(large.length, pageBytes(large), 3), 4, '60 KB events: 4 to a page');
  t.equal(nextPageEntries(0, 0, 7), 7, 'an empty page keeps the size');
});

t.test('a long history is replayed in pages within budget, oldest first, up to the newest the plan saw', async (t) => {
  const memory = new MemoryBackplane({ historyMaxLen: 5000, historyTtlSeconds: 60 });
  t.teardown(() => memory.close());
  const { backplane, reads } = recording(memory);
  const user = userChannel('paged');
  const topic = topicChannel('paged-topic');
  const big = 'y'.repeat(20 * 1024);
  const userPositions = await publishMany(memory, user, 300, big);
  const topicPositions = await publishMany(memory, topic, 700);
  const replays = [await replayOf(backplane, user, ZERO_POSITION), await replayOf(backplane, topic, ZERO_POSITION)];
  await publishMany(memory, user, 5); // after the plan: these reach a stream live, not by replay

  const sink = collectingSink();
  const written = await replayHistory(replays, UNLIMITED, sink);
  t.equal(written, 1000, "every event up to the plan's newest, once");
  t.same(
    sink.written.filter((m) => m.channel === user).map((m) => m.position),
    userPositions,
    'the user channel in order',
  );
  t.same(
    sink.written.filter((m) => m.channel === topic).map((m) => m.position),
    topicPositions,
    'the topic in order',
  );
  t.ok(
    sink.written.every((m, i) => i === 0 || comparePositions(sink.written[i - 1]!.position, m.position) < 0),
    'merged oldest first across channels',
  );
  t.same(sink.gaps, [], 'no gap');
  t.ok(
    reads.every((read) => read.entries <= PAGE_MAX_ENTRIES),
    `no page over ${PAGE_MAX_ENTRIES} entries`,
  );
  const largest = Math.max(...reads.map((read) => read.bytes));
  t.ok(largest <= PAGE_BYTES, `no page over ${PAGE_BYTES} bytes of data (largest ${largest})`);
  t.ok(reads.length > 10, `read in pages (${reads.length} reads)`);
});

t.test('replay waits for the client between pages and stops when the stream ends', async (t) => {
  const backplane = new MemoryBackplane({ historyMaxLen: 5000, historyTtlSeconds: 60 });
  t.teardown(() => backplane.close());
  const channel = userChannel('stops');
  await publishMany(backplane, channel, 2000);
  const sink = collectingSink({ drainedAfter: 2 });
  const written = await replayHistory([await replayOf(backplane, channel, ZERO_POSITION)], UNLIMITED, sink);
  t.equal(written, sink.written.length);
  t.equal(written, 3 + 2 * PAGE_MAX_ENTRIES, 'the first page and the two read after the client took the ones before, no more');
});

t.test('history trimmed past a slow replay: the client is told, and the replay goes on in order', async (t) => {
  const backplane = new MemoryBackplane({ historyMaxLen: 20, historyTtlSeconds: 60 });
  t.teardown(() => backplane.close());
  const channel = userChannel('trimmed');
  const positions = await publishMany(backplane, channel, 20);
  const replay = await replayOf(backplane, channel, ZERO_POSITION, 3);
  // While the client reads the first page, 15 more events trim the next ones away.
  let trimmedOnce = false;
  const sink = collectingSink();
  sink.drained = async () => {
    if (!trimmedOnce) {
      trimmedOnce = true;
      await publishMany(backplane, channel, 15);
    }
    return true;
  };
  await replayHistory([replay], UNLIMITED, sink);
  t.same(sink.gaps, ['history_trimmed'], 'one reset for the gap');
  t.same(
    sink.written.slice(0, 3).map((m) => m.position),
    positions.slice(0, 3),
    'the first page as it was',
  );
  const rest = sink.written.slice(3).map((m) => m.position);
  t.same(rest, positions.slice(15), "then what history still holds, up to the plan's newest");
});

t.test("the replay budget is shared: past a second's worth, readers wait for the refill, first come first served", async (t) => {
  let now = 0;
  const budget = new ReplayBudget(1000, () => now);
  t.equal(budget.draw(1000), 0, "a full bucket (one second's worth) answers at once");
  t.equal(budget.draw(100), 100, 'the next 100 bytes wait 100 ms');
  t.equal(budget.draw(100), 200, 'a reader after it waits for both');
  now = 150;
  t.equal(budget.draw(0), 50, 'time refills the debt');
  now = 10_000;
  t.equal(budget.draw(1000), 0, "the bucket holds one second's worth, no more");
  t.equal(budget.draw(1), 1);
});

t.test('the bucket holds one page at most: a burst of resumes is paced from its second page on', async (t) => {
  let now = 0;
  const budget = new ReplayBudget(16 * PAGE_BYTES, () => now);
  t.equal(budget.draw(PAGE_BYTES), 0, 'a full bucket lets one page through at once');
  t.equal(budget.draw(PAGE_BYTES), 1000 / 16, 'the next page waits for its share of the second');
  now = 10_000;
  t.equal(budget.draw(PAGE_BYTES), 0, 'however long the replica was idle, one page');
  t.equal(budget.draw(1), 1000 / (16 * PAGE_BYTES), 'and not a byte more');
  t.equal(budget.draw(-1), 0, 'bytes drawn and not read are given back');
  t.equal(budget.draw(-PAGE_BYTES), 0, 'never past a full bucket');
  t.equal(budget.draw(PAGE_BYTES + 1), 1000 / (16 * PAGE_BYTES), 'a full bucket, not more, was left');
});

/** A budget that never waits and logs each draw (with its sign) and each take, in order with the reads. */
function recordingBudget(log: string[]): ReplayBudget {
  const budget = new ReplayBudget(1024 * 1024 * 1024);
  const draw = budget.draw.bind(budget);
  budget.draw = (bytes) => {
    log.push(bytes < 0 ? `give back ${-bytes}` : 'draw');
    return draw(bytes);
  };
  budget.take = async (bytes) => {
    log.push(`take ${bytes}`);
    draw(bytes);
  };
  return budget;
}

/** The backplane, logging each history read. */
function loggingReads(backplane: Backplane, log: string[]): Backplane {
  const wrapped = Object.create(backplane) as Backplane;
  wrapped.readHistory = async (channel, after, limit) => {
    log.push('read');
    return backplane.readHistory(channel, after, limit);
  };
  return wrapped;
}

t.test('every page is drawn from the budget: the first ones when the replay starts, each later one before it is read', async (t) => {
  const memory = new MemoryBackplane({ historyMaxLen: 5000, historyTtlSeconds: 60 });
  t.teardown(() => memory.close());
  const channel = userChannel('drawn');
  await publishMany(memory, channel, 3 + 2 * PAGE_MAX_ENTRIES);
  const log: string[] = [];
  const replay = await replayOf(loggingReads(memory, log), channel, ZERO_POSITION);
  log.length = 0; // the plan's read
  const written = await replayHistory([replay], recordingBudget(log), collectingSink());
  t.equal(written, 3 + 2 * PAGE_MAX_ENTRIES, 'every event');
  const kinds = log.map((entry) => entry.split(' ')[0]);
  t.same(
    kinds.slice(0, 4),
    ['draw', 'take', 'read', kinds[3] === 'give' ? 'give' : 'draw'],
    'the first page is drawn at once; the next is taken before it is read, then settled',
  );
  t.ok(
    kinds.every((kind, i) => kind !== 'read' || kinds[i - 1] === 'take'),
    'no page is read before it was taken',
  );
});

t.test('a client that leaves while its replay waits its turn costs no read, and gives its draw back', async (t) => {
  const memory = new MemoryBackplane({ historyMaxLen: 5000, historyTtlSeconds: 60 });
  t.teardown(() => memory.close());
  const channel = userChannel('leaves');
  await publishMany(memory, channel, 3 + PAGE_MAX_ENTRIES);
  const log: string[] = [];
  const replay = await replayOf(loggingReads(memory, log), channel, ZERO_POSITION);
  log.length = 0;
  const budget = recordingBudget(log);
  const sink = collectingSink();
  const take = budget.take;
  budget.take = async (bytes) => {
    await take(bytes);
    sink.ended = true; // the client closed meanwhile
  };
  const written = await replayHistory([replay], budget, sink);
  t.equal(written, 3, 'the first page only');
  const taken = log[1]?.split(' ')[1];
  t.same(log, ['draw', `take ${taken}`, `give back ${taken}`], 'nothing read after the wait; the draw given back whole');
});
