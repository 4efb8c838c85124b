import type { ChannelMessage } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/redis-keys.js';
import type { ResetCause } from './gaps.js';
import { comparePositions, type Position } from './cursor.js';
import type { HistoryPage, HistoryPager } from './pages.js';
import type { ReplayBudget } from './replay-budget.js';

/**
 * One channel's part of a resume: the history between the client's position and the newest
 * position when the resume was planned (what came later reaches the stream live). Holds one page
 * at a time.
 */
export class ChannelReplay {
  private readonly epoch: string;
  private readonly until: Position;
  private page: readonly ChannelMessage[] = [];
  private next = 0;
  private exhausted = false;

  constructor(
    readonly channel: ChannelName,
    private readonly pager: HistoryPager,
    first: HistoryPage,
  ) {
    this.epoch = first.epoch;
    this.until = first.last;
    this.take(first);
  }

  /** The oldest entry not yet written; undefined when the page is used up. */
  get head(): ChannelMessage | undefined {
    return this.page[this.next];
  }

  /** What is left of the current page, oldest first. */
  get pending(): readonly ChannelMessage[] {
    return this.page.slice(this.next);
  }

  get needsPage(): boolean {
    return this.next >= this.page.length && !this.exhausted;
  }

  /** About what the next page will weigh, drawn from the replay budget before it is read. */
  get nextPageBytes(): number {
    return this.pager.nextPageBytes;
  }

  /** What the page last read from history weighs (the first page, until `readPage`). */
  get lastPageBytes(): number {
    return this.pager.lastPageBytes;
  }

  shift(): ChannelMessage {
    return this.page[this.next++] as ChannelMessage;
  }

  /** Reads the next page; returns the gap it found behind it, if history moved on meanwhile. */
  async readPage(): Promise<ResetCause | undefined> {
    const page = await this.pager.next();
    if (page.epoch !== this.epoch) {
      // History was lost mid-replay (Redis restarted empty): nothing of this channel's old history
      // can follow. The subscriber broke too, and the replica's catch-up takes the channel from here.
      this.page = [];
      this.exhausted = true;
      return 'history_lost';
    }
    this.take(page);
    // Trimmed past this replay while the client was slow: what follows is still in order.
    return page.trimmed ? 'history_trimmed' : undefined;
  }

  private take(page: HistoryPage): void {
    // Entries past `until` were published after the plan: they reach the stream live.
    const entries = page.entries;
    let kept = entries.length;
    while (kept > 0 && comparePositions((entries[kept - 1] as ChannelMessage).position, this.until) > 0) kept--;
    this.page = kept === entries.length ? entries : entries.slice(0, kept);
    this.next = 0;
    const last = this.page.at(-1);
    this.exhausted = page.reachedNewest || kept < entries.length || last === undefined || comparePositions(last.position, this.until) >= 0;
  }
}

/** Where a resume's replay writes. */
export interface ReplaySink {
  write(message: ChannelMessage): void;
  /** History moved past the replay in `channel`: tell the client to refetch ground truth. */
  gap(channel: ChannelName, cause: ResetCause): void;
  /**
   * Resolves true once the client has taken what was written, false if the stream ended
   * (closed, or cut for not reading in time).
   */
  drained(): Promise<boolean>;
  /** The stream ended (closed, or cut): nothing more is written to it. */
  readonly ended: boolean;
}

/**
 * Writes a resume's history, oldest first across the stream's channels. The next page of a
 * channel is read only after the client has taken what was written, so a stream's replay costs
 * the replica one page per channel, however long the history and however slow the client; and
 * only as the replica's replay budget allows, so many resumes at once cannot crowd out the rest.
 * Returns the number of events written.
 *
 * Every page is drawn from the budget, the first pages (read by the plan, before the stream's
 * reset is known) included; a later page is drawn before it is read, so the budget paces the Redis
 * read, its parsing and its writes alike, and a stream that waits its turn holds no page meanwhile.
 */
export async function replayHistory(replays: readonly ChannelReplay[], budget: ReplayBudget, sink: ReplaySink): Promise<number> {
  let written = 0;
  for (const replay of replays) budget.draw(replay.lastPageBytes);
  for (;;) {
    for (const replay of replays) {
      if (!replay.needsPage) continue;
      if (!(await sink.drained())) return written;
      const expected = replay.nextPageBytes;
      await budget.take(expected);
      // The client left while this replay waited its turn: give the draw back, read nothing.
      if (sink.ended) {
        budget.draw(-expected);
        return written;
      }
      const gap = await replay.readPage();
      // Settles the draw: the page as read, against what was expected of it.
      budget.draw(replay.lastPageBytes - expected);
      if (gap !== undefined) sink.gap(replay.channel, gap);
    }
    let oldest: ChannelReplay | undefined;
    for (const replay of replays) {
      const head = replay.head;
      if (head !== undefined && (oldest === undefined || comparePositions(head.position, (oldest.head as ChannelMessage).position) < 0)) oldest = replay;
    }
    if (oldest === undefined) return written;
    sink.write(oldest.shift());
    written++;
  }
}
