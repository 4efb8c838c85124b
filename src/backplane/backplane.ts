import type { SwitchboardError } from '../errors.js';
import type { Position } from '../history/cursor.js';
import type { ChannelName } from './redis-keys.js';

/**
 * The seam between a replica and whatever carries events between replicas. Two implementations:
 * `MemoryBackplane` (one process, the default without Redis) and `RedisBackplane` (Redis pub/sub
 * for the fast path, Redis Streams for history). Both pass `test/contracts/backplane.test.ts`.
 *
 * Publishing appends to the channel's history and publishes in one atomic step, so "accepted"
 * always means "stored and published".
 */
export interface Backplane {
  /** Appends to history and publishes. Rejects with `backplane_unavailable` when it cannot. */
  publish(request: PublishRequest): Promise<PublishResult>;
  /**
   * Publishes many events, each as `publish` would, in order (per channel, in the order given),
   * in one round trip per Redis node. Each event has its own outcome: a result, or the error
   * (`backplane_unavailable`) of the node that could not take it. Never rejects.
   */
  publishBatch(requests: readonly PublishRequest[]): Promise<BatchOutcome[]>;
  /**
   * Subscribes the replica's one subscriber connection to these channels. Resolves once the
   * backplane confirmed them: from then on every event published reaches `onMessage`.
   */
  subscribe(channels: readonly ChannelName[]): Promise<void>;
  unsubscribe(channels: readonly ChannelName[]): Promise<void>;
  /**
   * Reads a channel's history after `after` (exclusive), at most `limit` entries, with the
   * facts a resume needs to tell a gap from a clean catch-up. Creates the epoch if none exists.
   */
  readHistory(channel: ChannelName, after: Position | undefined, limit: number): Promise<HistoryRead>;
  /** The single place messages arrive. Handlers must not throw; they are called synchronously. */
  onMessage(handler: (message: ChannelMessage) => void): void;
  /**
   * Called after the subscriber path came back (reconnect, resubscribe, rebuilt after a failed
   * probe): messages published meanwhile were lost on the fast path and must be read from history.
   * `channels` names the channels it came back for (one Redis shard's); undefined means all.
   */
  onResubscribed(handler: (channels?: readonly ChannelName[]) => void): void;
  /**
   * Called when the subscriber path breaks, before anything it hears again can arrive: from then
   * until the catch-up after `onResubscribed`, live messages may have a gap behind them.
   * `channels` names the channels it broke for; undefined means all.
   */
  onSubscriberLost(handler: (channels?: readonly ChannelName[]) => void): void;
  /** True while the replica can both publish and hear what is published. */
  isReady(): boolean;
  /** Milliseconds since this replica last heard itself through the backplane (its probe). */
  probeAgeMs(): number;
  /** The same, per subscriber path: one per Redis Cluster master (`host:port`), one for a single Redis, none in process. */
  probeAgesMs(): ReadonlyMap<string, number>;
  readonly kind: 'memory' | 'redis';
  close(): Promise<void>;
}

export interface PublishRequest {
  channel: ChannelName;
  header: EnvelopeHeader;
  /** JSON text, one line (the output of JSON.stringify). */
  dataJson: string;
  /** Accept this key once within `idempotencyTtlSeconds`; a repeat answers the first event's id. */
  idempotencyKey?: string;
  idempotencyTtlSeconds?: number;
  /**
   * False: a live-only event, published but never appended to history (so never replayed). Its
   * position is the last durable one's plus a counter (see history/cursor.ts). Default true.
   */
  durable?: boolean;
}

export interface PublishResult {
  epoch: string;
  position: string;
  /** Replicas whose subscriber received it (0 for a duplicate, which is not published again). */
  receivers: number;
  duplicate: boolean;
}

/** One event of a batch: its result, or why it was not published. */
export type BatchOutcome = PublishResult | SwitchboardError;

/** Per-event metadata that travels with the data through pub/sub and history. */
export interface EnvelopeHeader {
  /** SSE event type. */
  t: string;
  /** Accepted-at, ms since the epoch, for delivery latency. */
  a: number;
  /** W3C trace context, when tracing is on. */
  tc?: Record<string, string>;
}

/** One event as it arrives at a replica: parsed once per replica, shared by all its streams. */
export interface ChannelMessage {
  channel: ChannelName;
  epoch: string;
  position: Position;
  /** The position as Redis wrote it (`<ms>-<seq>`), reused for ids without reformatting. */
  positionText: string;
  header: EnvelopeHeader;
  dataJson: string;
}

export interface HistoryRead {
  epoch: string;
  /** Position of the newest event ever appended in this epoch (0-0 when none). */
  last: Position;
  lastText: string;
  /** Entries after the position asked for, oldest first, at most `limit`. */
  entries: ChannelMessage[];
  /**
   * True when some event after the position asked for is no longer in history (trimmed, or
   * history is off), so `entries` cannot be the complete sequence. False when nothing was asked.
   */
  trimmed: boolean;
}
