import type { Backplane, ChannelMessage, HistoryRead } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/redis-keys.js';
import type { Position } from './cursor.js';

/**
 * About this many bytes of events per history page. A reader holds one page at a time, and one
 * page's XRANGE costs Redis well under a millisecond, so no history read holds Redis (and the
 * publishes queued behind it) for long, whatever the history holds: 1,000 events of 60 KB read
 * in one XRANGE took Redis over 400 ms.
 */
export const PAGE_BYTES = 256 * 1024;
/** Most entries in one page, however small the events: bounds each read's Redis time too. */
export const PAGE_MAX_ENTRIES = 256;
/** What an entry costs beyond its data (ids, the header): counted so tiny events still add up. */
const ENTRY_OVERHEAD_BYTES = 64;

/**
 * Entries to ask for in a channel's first page, before its events' sizes are known: as many of
 * the largest possible event as fit in a page.
 */
export function firstPageEntries(maxEventBytes: number): number {
  return clamp(Math.floor(PAGE_BYTES / (maxEventBytes + ENTRY_OVERHEAD_BYTES)), 1, PAGE_MAX_ENTRIES);
}

/** Entries to ask for next, from the average size of the page just read (`count` entries weighing `bytes`, see pageBytes). */
export function nextPageEntries(count: number, bytes: number, previous: number): number {
  if (count === 0) return previous;
  return clamp(Math.floor(PAGE_BYTES / (bytes / count)), 1, PAGE_MAX_ENTRIES);
}

/** About what a page of entries weighs (in UTF-16 units of their data, near enough to bytes). */
export function pageBytes(page: readonly ChannelMessage[]): number {
  let bytes = 0;
  for (const message of page) bytes += message.dataJson.length + ENTRY_OVERHEAD_BYTES;
  return bytes;
}

/**
 * Reads one channel's history forward from a position, a page at a time, each page sized from
 * the last so it holds about PAGE_BYTES. Each page is a `HistoryRead` of its own: its epoch and
 * `trimmed` say whether history was lost or trimmed past this reader since the page before.
 */
export class HistoryPager {
  private after: Position;
  private entries: number;
  /** What the next page is expected to weigh: its entries at the average size of the last page. */
  private expectedBytes = PAGE_BYTES;
  private readBytes = 0;

  constructor(
    private readonly backplane: Backplane,
    readonly channel: ChannelName,
    from: Position,
    firstEntries: number,
  ) {
    this.after = from;
    this.entries = firstEntries;
  }

  /** About what the next page will weigh (PAGE_BYTES until a page was read): what a reader draws from the replay budget before reading it. */
  get nextPageBytes(): number {
    return this.expectedBytes;
  }

  /** What the page last read weighs (pageBytes): what a reader settles its draw from the replay budget with. */
  get lastPageBytes(): number {
    return this.readBytes;
  }

  async next(): Promise<HistoryPage> {
    const asked = this.entries;
    const read = await this.backplane.readHistory(this.channel, this.after, asked);
    const count = read.entries.length;
    const last = read.entries.at(-1);
    if (last !== undefined) this.after = last.position;
    this.readBytes = pageBytes(read.entries);
    this.entries = nextPageEntries(count, this.readBytes, asked);
    if (count > 0) this.expectedBytes = Math.ceil((this.readBytes / count) * this.entries);
    return { ...read, reachedNewest: read.entries.length < asked || last === undefined || last.positionText === read.lastText };
  }
}

export interface HistoryPage extends HistoryRead {
  /** Nothing newer than this page's last entry was in history when it was read. */
  reachedNewest: boolean;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
