import type { Backplane, HistoryRead } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/redis-keys.js';
import { comparePositions, durablePart, formatPosition, parseCursor, ZERO_POSITION, type CursorEntry, type Position } from './cursor.js';
import type { ResetCause } from './gaps.js';
import { HistoryPager } from './pages.js';
import { ChannelReplay } from './replay.js';

/** What the plan needs of the stream it is for (sse/sse-stream.ts's SseStream). */
export interface ResumingStream {
  readonly channels: readonly ChannelName[];
  tagAt(index: number): string;
  setPosition(index: number, epoch: string, position: Position, positionText: string): void;
}

/** What the plan needs of the replica's channels (sse/stream-registry.ts's StreamRegistry). */
export interface HeardChannels {
  /** Where a stream can start without a history read, when this replica hears the channel live. */
  liveStart(channel: ChannelName): { epoch: string; position: Position } | undefined;
  noteStart(channel: ChannelName, epoch: string, position: Position): void;
}

export interface ResumePlan {
  /** Set when the client must refetch ground truth before trusting the events that follow. */
  reset: ResetCause | undefined;
  /** The channels with history to write before going live, each holding its first page. */
  replays: ChannelReplay[];
}

/**
 * Decides where a new stream starts in each of its channels and what it must replay. Called
 * after the stream's channels are subscribed (so nothing published from now on is missed) and
 * before any event is written: the live events queued meanwhile are merged after the replay,
 * minus what the replay already covered.
 *
 * A cursor is trusted only as far as history can prove it: a position from another epoch
 * (history lost), ahead of history, older than what history still holds, or an id that is not
 * ours or names none of this stream's channels (another user's) gives a `reset` and starts at the
 * newest position. Only each channel's first page is read here; the rest is read as the client
 * takes it (replay.ts).
 */
export async function planResume(
  stream: ResumingStream,
  cursorText: string | undefined,
  backplane: Backplane,
  registry: HeardChannels,
  firstPageEntries: number,
  openedBefore?: Position,
): Promise<ResumePlan> {
  const cursor = cursorText === undefined ? undefined : parseCursor(cursorText);
  let reset: ResetCause | undefined = cursorText !== undefined && cursor === undefined ? 'invalid_cursor' : undefined;
  const replays: ChannelReplay[] = [];
  let matchedAny = false;
  /**
   * Where a channel starts that has no cursor to resume from: its newest position, except that
   * when the head went out before the channels were subscribed (`openedBefore`), the events
   * accepted since are replayed: the client may have seen the stream open and caused them.
   */
  const sinceOpened = async (channel: ChannelName, newest: { epoch: string; position: Position }): Promise<Start> => {
    if (openedBefore === undefined || comparePositions(openedBefore, newest.position) >= 0) return takeEveryHeard(newest);
    const pager = new HistoryPager(backplane, channel, openedBefore, firstPageEntries);
    const page = await pager.next();
    if (page.epoch !== newest.epoch || page.entries.length === 0) return takeEveryHeard(newest);
    replays.push(new ChannelReplay(channel, pager, page));
    return { epoch: page.epoch, position: openedBefore, floor: openedBefore };
  };
  const starts = await Promise.all(
    stream.channels.map(async (channel, index): Promise<Start> => {
      const from = cursor?.get(stream.tagAt(index));
      if (from === undefined) {
        const live = registry.liveStart(channel);
        if (live !== undefined) return takeEveryHeard(live);
        const read = await backplane.readHistory(channel, undefined, 1);
        return sinceOpened(channel, { epoch: read.epoch, position: read.last });
      }
      matchedAny = true;
      const pager = new HistoryPager(backplane, channel, from.position, firstPageEntries);
      const read = await pager.next();
      const cause = judge(from, read);
      if (cause !== undefined) {
        reset ??= cause;
        return sinceOpened(channel, { epoch: read.epoch, position: read.last });
      }
      if (read.entries.length > 0) replays.push(new ChannelReplay(channel, pager, read));
      return { epoch: read.epoch, position: from.position, floor: from.position };
    }),
  );
  starts.forEach((start, index) => {
    stream.setPosition(index, start.epoch, start.floor, formatPosition(start.position));
    registry.noteStart(stream.channels[index] as ChannelName, start.epoch, start.position);
  });
  if (cursor !== undefined && !matchedAny) reset ??= 'invalid_cursor';
  return { reset, replays };
}

interface Start {
  epoch: string;
  /** Where the stream's id says it stands in the channel. */
  position: Position;
  /** Events at or before this are not written: what a replay already covers. */
  floor: Position;
}

/**
 * A start at the newest position with nothing replayed: every event the stream hears live from
 * now on is written, whatever its position. It heard only what was published after its
 * SUBSCRIBE took effect, which is exactly what it must get; comparing positions with a history
 * read (on another connection) could drop one whose message was still on its way (a client that
 * saw the stream open and caused an event at once).
 */
function takeEveryHeard(newest: { epoch: string; position: Position }): Start {
  return { epoch: newest.epoch, position: newest.position, floor: ZERO_POSITION };
}

function judge(from: CursorEntry, read: HistoryRead): ResetCause | undefined {
  if (from.epoch !== read.epoch) return 'history_lost';
  // A live-only event's id sits after the durable position it names, which history does hold.
  if (comparePositions(durablePart(from.position), read.last) > 0) return 'invalid_cursor';
  if (read.trimmed) return 'history_trimmed';
  return undefined;
}
