import type { Logger } from 'pino';
import type { Backplane, ChannelMessage } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/redis-keys.js';
import type { ResetCause, SkipTarget } from './gaps.js';
import type { Metrics } from '../telemetry/metrics.js';
import { startReplaySpan, withSpan } from '../telemetry/tracing.js';
import { comparePositions, formatPosition, ZERO_POSITION, type Position } from './cursor.js';
import { HistoryPager, type HistoryPage } from './pages.js';

/** Tries of one page's read before the channel's streams are told of a possible gap. */
const CATCH_UP_ATTEMPTS = 4;
const CATCH_UP_RETRY_BASE_MS = 250;

/** One channel to catch up, as the replica's registry holds it. */
export interface CatchUpChannel {
  readonly channel: ChannelName;
  /** The newest position the replica saw before the break. */
  readonly seen: { epoch: string; position: Position };
  /** Writes a missed event to the channel's streams (each drops what it already has); returns the bytes written. */
  write(message: ChannelMessage): number;
  /** Tells every stream of the channel of a gap, moving them to `to` when it is known. */
  skip(to: SkipTarget | undefined, cause: ResetCause): void;
  /** Where the channel stands after a reset to a new or trimmed history. */
  moveSeen(epoch: string, position: Position): void;
  /** A newer break of this channel, or its release, took over: stop at once. */
  overtaken(): boolean;
}

export interface CatchUpDeps {
  backplane: Backplane;
  metrics: Metrics;
  logger: Logger;
  /** Entries in the first history page (see pages.ts). */
  firstPageEntries: number;
}

/**
 * The catch-up policy, for one channel, after the replica's subscriber path broke and came back:
 * read what the channel missed from history (in pages, from the newest position the replica had
 * seen up to the newest one there is) and write it to the channel's streams; or, where history
 * cannot prove the gap closed, tell them with a `reset`:
 *
 * - history unreadable after retries: `catch_up_failed`, the streams stay where they are;
 * - history lost (a new epoch): `history_lost`, then what the new history already holds;
 * - history trimmed past the seen position: `history_trimmed`, moved to the newest.
 *
 * Channels are independent: run it over all of a replica's channels, or only one Redis shard's.
 * Returns false when overtaken (the caller must then leave the channel's held messages alone).
 */
export async function catchUpChannel(target: CatchUpChannel, deps: CatchUpDeps): Promise<boolean> {
  const { seen } = target;
  const pager = new HistoryPager(deps.backplane, target.channel, seen.position, deps.firstPageEntries);
  const first = await readPage(pager, target, deps.logger);
  if (target.overtaken()) return false;
  if (first === undefined) {
    target.skip(undefined, 'catch_up_failed');
    return true;
  }
  if (first.epoch !== seen.epoch) {
    // The history was lost (Redis restarted empty): the gap is everything before the new
    // history, and what the new history already holds came after it — written after the reset.
    target.skip({ epoch: first.epoch, position: ZERO_POSITION, positionText: formatPosition(ZERO_POSITION) }, 'history_lost');
    target.moveSeen(first.epoch, ZERO_POSITION);
    return writeMissed(target, pager, first, deps);
  }
  if (first.trimmed) {
    target.skip({ epoch: first.epoch, position: first.last, positionText: first.lastText }, 'history_trimmed');
    target.moveSeen(first.epoch, first.last);
    return true;
  }
  return writeMissed(target, pager, first, deps);
}

/**
 * Writes the missed events page by page, up to the newest position the first page saw (live
 * messages held meanwhile follow), inside one replay span linked to the events' producers.
 */
async function writeMissed(target: CatchUpChannel, pager: HistoryPager, first: HistoryPage, { metrics, logger }: CatchUpDeps): Promise<boolean> {
  const span = startReplaySpan(
    'catch_up',
    first.entries.flatMap((message) => (message.header.tc === undefined ? [] : [message.header.tc])),
    { 'messaging.destination.name': target.channel },
  );
  const until = first.last;
  let events = 0;
  let bytes = 0;
  let page: HistoryPage | undefined = first;
  try {
    for (;;) {
      const entries: readonly ChannelMessage[] = page.entries;
      withSpan(span, () => {
        for (const message of entries) {
          if (comparePositions(message.position, until) > 0) break;
          bytes += target.write(message);
          events++;
        }
      });
      const last = entries.at(-1);
      if (page.reachedNewest || last === undefined || comparePositions(last.position, until) >= 0) return true;
      page = await readPage(pager, target, logger);
      if (target.overtaken()) return false;
      if (page === undefined || page.epoch !== first.epoch) {
        target.skip(undefined, 'catch_up_failed');
        return true;
      }
      if (page.trimmed) target.skip(undefined, 'history_trimmed');
    }
  } finally {
    metrics.replayedEvents.inc(events);
    span.setAttributes({ 'switchboard.replayed_events': events, 'switchboard.bytes_written': bytes });
    span.end();
  }
}

/** One page, retried with backoff; undefined when every try failed or the catch-up was overtaken. */
async function readPage(pager: HistoryPager, target: CatchUpChannel, logger: Logger): Promise<HistoryPage | undefined> {
  for (let attempt = 0; attempt < CATCH_UP_ATTEMPTS; attempt++) {
    if (attempt > 0) await delay(CATCH_UP_RETRY_BASE_MS * 2 ** (attempt - 1));
    if (target.overtaken()) return undefined;
    try {
      return await pager.next();
    } catch (err) {
      logger.warn({ err, channel: target.channel, attempt }, 'catch-up read failed');
    }
  }
  return undefined;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
