import { randomBytes } from 'node:crypto';
import { MAX_TOPICS_PER_STREAM } from '../identifiers.js';

/**
 * Event ids are resumable cursors. An id names, for every channel the stream joined, the last
 * position the stream saw in that channel's history and the history's epoch:
 *
 *   <tag>.<epoch>.<ms>-<seq>[_<tag>.<epoch>.<ms>-<seq>…]
 *
 * - `tag` is a short hash of the channel name, so a segment is matched to its channel;
 * - `epoch` is random per history: when a history is lost (Redis restarted empty, keys expired)
 *   the next one gets a new epoch and old positions are recognised as unrecoverable;
 * - `<ms>-<seq>` is the Redis Streams entry id (the memory history makes ids of the same shape);
 *   a live-only event, never stored, has `<ms>-<seq>-<n>`: the durable position before it and a
 *   per-channel counter, so it sorts between that event and the next durable one, and a resume
 *   from it reads history after `<ms>-<seq>` — no gap, no duplicate, and no `reset` for an event
 *   history never held.
 *
 * Every character is in [0-9a-z.-_], so an id is safe in an SSE `id:` line and in a query string.
 */
export interface Position {
  readonly ms: number;
  readonly seq: number;
  /** Set for a live-only event: its count after the durable position `<ms>-<seq>`. */
  readonly live?: number;
}

export const ZERO_POSITION: Position = { ms: 0, seq: 0 };

/** The longest id we read back; longer input is not one of ours and is never parsed further. */
export const MAX_CURSOR_LENGTH = 64 * (MAX_TOPICS_PER_STREAM + 1);

const POSITION = /^(\d{1,15})-(\d{1,15})$/;
const EVENT_POSITION = /^(\d{1,15})-(\d{1,15})(?:-(\d{1,15}))?$/;
const SEGMENT = /^([0-9a-z]{7})\.([0-9a-f]{12})\.(\d{1,15}-\d{1,15}(?:-\d{1,15})?)$/;

/** A durable position: a Redis Streams entry id, `<ms>-<seq>`. */
export function parsePosition(text: string): Position | undefined {
  const match = POSITION.exec(text);
  if (match === null) return undefined;
  return { ms: Number(match[1]), seq: Number(match[2]) };
}

/** An event's position: durable, or a live-only event's `<ms>-<seq>-<n>`. */
export function parseEventPosition(text: string): Position | undefined {
  const match = EVENT_POSITION.exec(text);
  if (match === null) return undefined;
  if (match[3] === undefined) return { ms: Number(match[1]), seq: Number(match[2]) };
  return { ms: Number(match[1]), seq: Number(match[2]), live: Number(match[3]) };
}

export const formatPosition = (p: Position): string => (p.live === undefined ? `${p.ms}-${p.seq}` : `${p.ms}-${p.seq}-${p.live}`);

export function comparePositions(a: Position, b: Position): number {
  return a.ms - b.ms || a.seq - b.seq || (a.live ?? 0) - (b.live ?? 0);
}

/** The durable position a live-only event's position names (a durable position itself otherwise). */
export const durablePart = (p: Position): Position => (p.live === undefined ? p : { ms: p.ms, seq: p.seq });

const EPOCH_BYTES = 6;
/**
 * Every publish and history read carries a candidate epoch, used only when the channel has no
 * history yet; drawing random bytes in blocks keeps that off the hot path (one call per publish
 * showed in the benchmark's CPU profile).
 */
const EPOCHS_PER_DRAW = 256;
let randomPool = Buffer.alloc(0);
let poolOffset = 0;

export function newEpoch(): string {
  if (poolOffset >= randomPool.length) {
    randomPool = randomBytes(EPOCH_BYTES * EPOCHS_PER_DRAW);
    poolOffset = 0;
  }
  poolOffset += EPOCH_BYTES;
  return randomPool.toString('hex', poolOffset - EPOCH_BYTES, poolOffset);
}

/** FNV-1a, 32 bit, as 7 base-36 digits: cheap, stable across replicas and versions. */
export function channelTag(channel: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) {
    hash ^= channel.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(36).padStart(7, '0');
}

export const formatSegment = (tag: string, epoch: string, position: string): string => `${tag}.${epoch}.${position}`;

/** Between the segments of a multi-channel id (SseStream.cursor joins them). */
export const SEGMENT_SEPARATOR = '_';

export interface CursorEntry {
  epoch: string;
  position: Position;
}

/** Reads an id we made: tag → (epoch, position). Undefined when it is not one of ours. */
export function parseCursor(text: string): Map<string, CursorEntry> | undefined {
  if (text.length === 0 || text.length > MAX_CURSOR_LENGTH) return undefined;
  const parts = text.split(SEGMENT_SEPARATOR);
  if (parts.length > MAX_TOPICS_PER_STREAM + 1) return undefined;
  const entries = new Map<string, CursorEntry>();
  for (const part of parts) {
    const match = SEGMENT.exec(part);
    if (match === null) return undefined;
    const position = parseEventPosition(match[3] as string);
    if (position === undefined) return undefined;
    entries.set(match[1] as string, { epoch: match[2] as string, position });
  }
  return entries;
}
