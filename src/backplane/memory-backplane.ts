import { comparePositions, formatPosition, newEpoch, ZERO_POSITION, type Position } from '../history/cursor.js';
import type { Backplane, BatchOutcome, ChannelMessage, HistoryRead, PublishRequest, PublishResult } from './backplane.js';
import type { ChannelName } from './redis-keys.js';
import { encodeHeader } from './envelope.js';

export interface HistoryOptions {
  historyMaxLen: number;
  historyTtlSeconds: number;
}

interface ChannelHistory {
  epoch: string;
  entries: ChannelMessage[];
  last: Position;
  /** The newest position trimmed away: a resume from before it has missed events. */
  lastTrimmed: Position;
  /** Live-only events published so far: the counter in their positions. */
  live: number;
  expiresAtMs: number;
}

/** How often expired histories and idempotency keys are swept. */
const SWEEP_INTERVAL_MS = 30_000;

/**
 * The in-process backplane: one replica, no Redis. Same contract as RedisBackplane (the shared
 * suite in test/contracts proves it), including epochs, trimming and idempotency, so a single
 * replica resumes streams exactly as a fleet does. Everything is lost when the process exits;
 * the new epoch then turns old ids into a `reset`.
 */
export class MemoryBackplane implements Backplane {
  readonly kind = 'memory' as const;
  private readonly histories = new Map<ChannelName, ChannelHistory>();
  private readonly idempotency = new Map<string, { epoch: string; position: string; expiresAtMs: number }>();
  private readonly subscribed = new Set<ChannelName>();
  private readonly handlers: ((message: ChannelMessage) => void)[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private lastPosition: Position = ZERO_POSITION;

  constructor(private readonly options: HistoryOptions) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), SWEEP_INTERVAL_MS).unref();
  }

  async publish(request: PublishRequest): Promise<PublishResult> {
    const now = Date.now();
    const history = this.history(request.channel, now);
    const idempotencyId = request.idempotencyKey === undefined ? undefined : `${request.channel}\n${request.idempotencyKey}`;
    if (idempotencyId !== undefined) {
      const prior = this.idempotency.get(idempotencyId);
      if (prior !== undefined && prior.expiresAtMs > now) {
        return { epoch: prior.epoch, position: prior.position, receivers: 0, duplicate: true };
      }
    }
    const durable = request.durable !== false;
    const position = durable ? this.nextPosition(now) : { ms: history.last.ms, seq: history.last.seq, live: ++history.live };
    const positionText = formatPosition(position);
    const message: ChannelMessage = {
      channel: request.channel,
      epoch: history.epoch,
      position,
      positionText,
      // Round-trip the header like the wire does, so both backplanes hand out equal messages.
      header: JSON.parse(encodeHeader(request.header)) as ChannelMessage['header'],
      dataJson: request.dataJson,
    };
    if (durable) {
      history.last = position;
      history.entries.push(message);
      while (history.entries.length > this.options.historyMaxLen) {
        history.lastTrimmed = (history.entries.shift() as ChannelMessage).position;
      }
    }
    if (idempotencyId !== undefined) {
      const ttlMs = (request.idempotencyTtlSeconds ?? this.options.historyTtlSeconds) * 1000;
      this.idempotency.set(idempotencyId, { epoch: history.epoch, position: positionText, expiresAtMs: now + ttlMs });
    }
    const receivers = this.subscribed.has(request.channel) ? 1 : 0;
    if (receivers > 0) queueMicrotask(() => this.emit(message));
    return { epoch: history.epoch, position: positionText, receivers, duplicate: false };
  }

  /** One process: each event in turn, each its own outcome (publish cannot fail here). */
  async publishBatch(requests: readonly PublishRequest[]): Promise<BatchOutcome[]> {
    const outcomes: BatchOutcome[] = [];
    for (const request of requests) outcomes.push(await this.publish(request));
    return outcomes;
  }

  async subscribe(channels: readonly ChannelName[]): Promise<void> {
    for (const channel of channels) this.subscribed.add(channel);
  }

  async unsubscribe(channels: readonly ChannelName[]): Promise<void> {
    for (const channel of channels) this.subscribed.delete(channel);
  }

  async readHistory(channel: ChannelName, after: Position | undefined, limit: number): Promise<HistoryRead> {
    const history = this.history(channel, Date.now());
    const entries = after === undefined ? [] : history.entries.filter((entry) => comparePositions(entry.position, after) > 0).slice(0, limit);
    return {
      epoch: history.epoch,
      last: history.last,
      lastText: formatPosition(history.last),
      entries,
      trimmed: after !== undefined && comparePositions(after, history.lastTrimmed) < 0,
    };
  }

  onMessage(handler: (message: ChannelMessage) => void): void {
    this.handlers.push(handler);
  }

  onResubscribed(): void {
    // One process: the subscriber path cannot break, so there is never anything to catch up.
  }

  onSubscriberLost(): void {
    // Never happens in one process (see onResubscribed).
  }

  isReady(): boolean {
    return true;
  }

  probeAgesMs(): ReadonlyMap<string, number> {
    // No subscriber path to probe (see probeAgeMs).
    return new Map();
  }

  probeAgeMs(): number {
    // In one process the path is a function call: it is always heard at once.
    return 0;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.subscribed.clear();
  }

  private emit(message: ChannelMessage): void {
    if (!this.subscribed.has(message.channel)) return;
    for (const handler of this.handlers) handler(message);
  }

  /** The channel's history, (re)created with a new epoch when missing or expired. */
  private history(channel: ChannelName, now: number): ChannelHistory {
    let history = this.histories.get(channel);
    if (history === undefined || history.expiresAtMs <= now) {
      history = { epoch: newEpoch(), entries: [], last: ZERO_POSITION, lastTrimmed: ZERO_POSITION, live: 0, expiresAtMs: 0 };
      this.histories.set(channel, history);
    }
    history.expiresAtMs = now + this.options.historyTtlSeconds * 1000;
    return history;
  }

  /** Positions shaped like Redis stream ids: wall-clock ms, and a sequence within the same ms. */
  private nextPosition(now: number): Position {
    const last = this.lastPosition;
    this.lastPosition = now > last.ms ? { ms: now, seq: 0 } : { ms: last.ms, seq: last.seq + 1 };
    return this.lastPosition;
  }

  private sweep(now: number): void {
    for (const [channel, history] of this.histories) {
      if (history.expiresAtMs <= now) this.histories.delete(channel);
    }
    for (const [key, entry] of this.idempotency) {
      if (entry.expiresAtMs <= now) this.idempotency.delete(key);
    }
  }
}
