import type { Backplane, ChannelMessage, HistoryRead } from '../backplane/backplane.js';
import type { SseStream, ResetCause } from '../sse/sse-stream.js';
import { isCut, type StreamRegistry } from '../sse/stream-registry.js';
import { comparePositions, formatPosition, parseCursor, type CursorEntry } from './cursor.js';

export interface ResumePlan {
  /** Set when the client must refetch ground truth before trusting the events that follow. */
  reset: ResetCause | undefined;
  /** History to write before going live, oldest first, across all the stream's channels. */
  replay: ChannelMessage[];
}

/**
 * Decides where a new stream starts in each of its channels and what it must replay. Called
 * after the stream's channels are subscribed (so nothing published from now on is missed) and
 * before anything is written: the live events queued meanwhile are merged after the replay,
 * minus what the replay already covered.
 *
 * A cursor is trusted only as far as history can prove it: a position from another epoch
 * (history lost), ahead of history, older than what history still holds, or an id that is not
 * ours or names none of this stream's channels (another user's) gives a `reset` and starts at the
 * newest position. Reads are bounded by `replayLimit` per channel, whatever the cursor says.
 */
export async function planResume(
  stream: SseStream,
  cursorText: string | undefined,
  backplane: Backplane,
  registry: StreamRegistry,
  replayLimit: number,
): Promise<ResumePlan> {
  const cursor = cursorText === undefined ? undefined : parseCursor(cursorText);
  let reset: ResetCause | undefined = cursorText !== undefined && cursor === undefined ? 'invalid_cursor' : undefined;
  const reads = await Promise.all(
    stream.channels.map(async (channel, index) => {
      const from = cursor?.get(stream.tagAt(index));
      // Nothing to replay here: a channel this replica already hears live starts where it is,
      // without a history read (10k streams joining one topic read it once per replica).
      const live = from === undefined ? registry.liveStart(channel) : undefined;
      return { channel, index, from, live, read: live === undefined ? await backplane.readHistory(channel, from?.position, replayLimit) : undefined };
    }),
  );
  const replay: ChannelMessage[] = [];
  let matchedAny = false;
  for (const { channel, index, from, live, read } of reads) {
    if (read === undefined) {
      if (live !== undefined) stream.setPosition(index, live.epoch, live.position, formatPosition(live.position));
      continue;
    }
    let start = { position: read.last, text: read.lastText };
    if (from !== undefined) {
      matchedAny = true;
      const cause = judge(from, read, replayLimit);
      if (cause === undefined) {
        start = { position: from.position, text: formatPosition(from.position) };
        replay.push(...read.entries);
      } else {
        reset ??= cause;
      }
    }
    stream.setPosition(index, read.epoch, start.position, start.text);
    registry.noteStart(channel, read.epoch, start.position);
  }
  if (cursor !== undefined && !matchedAny) reset ??= 'invalid_cursor';
  replay.sort((a, b) => comparePositions(a.position, b.position));
  return { reset, replay };
}

function judge(from: CursorEntry, read: HistoryRead, replayLimit: number): ResetCause | undefined {
  if (from.epoch !== read.epoch) return 'history_lost';
  if (comparePositions(from.position, read.last) > 0) return 'invalid_cursor';
  if (read.trimmed || isCut(read.entries.length, replayLimit, read.entries.at(-1)?.positionText, read.lastText)) {
    return 'history_trimmed';
  }
  return undefined;
}
