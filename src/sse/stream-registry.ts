import type { Logger } from 'pino';
import type { Backplane, ChannelMessage } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/redis-keys.js';
import { channelTag, comparePositions, formatSegment, type Position } from '../history/cursor.js';
import { catchUpChannel, type CatchUpDeps } from '../history/catch-up.js';
import type { Metrics } from '../telemetry/metrics.js';
import { startDeliverSpan, withSpan } from '../telemetry/tracing.js';
import { encodeEventBody, encodeIdLine, frameChunk } from './encoder.js';
import type { EncodedEvent, SseStream } from './sse-stream.js';

interface ChannelEntry {
  readonly channel: ChannelName;
  readonly streams: Set<SseStream>;
  readonly tag: string;
  /** Settles when the backplane confirmed the subscription; undefined after a failed attempt. */
  subscribed: Promise<void> | undefined;
  confirmed: boolean;
  /** Set while the channel has no stream: it is unsubscribed after this time. */
  releaseAtMs: number | undefined;
  /** The newest position this replica has seen, to catch up from when the subscriber was away. */
  seen: { epoch: string; position: Position } | undefined;
  /**
   * Live messages held back from the moment the subscriber path broke until this channel's
   * catch-up from history is written: delivered first, they would hide the gap behind them.
   */
  held: ChannelMessage[] | undefined;
  /** More arrived meanwhile than `held` may keep; the newest of them. */
  heldOverflow: ChannelMessage | undefined;
  /** Bumped on every subscriber break of this channel, so a catch-up overtaken by a newer break stops. */
  breaks: number;
}

export interface StreamRegistryOptions {
  heartbeatMs: number;
  unsubscribeDebounceMs: number;
  /** Live messages held per channel while it catches up after a resubscribe. */
  heldLimit: number;
  /** Entries in a catch-up's first history page (see history/pages.ts). */
  firstPageEntries: number;
}

/** What a channel keeps once its subscribe is confirmed: one settled promise shared by all. */
const SUBSCRIBED = Promise.resolve();

/** Channels whose history is read at once during a catch-up (each read has a ~1 s timeout). */
const CATCH_UP_CONCURRENCY = 64;
/** How often streams are checked for an expired token. */
const EXPIRY_SWEEP_MS = 1000;

/**
 * The replica's one map of channel → open streams, and the only code that subscribes or
 * unsubscribes the backplane. A channel is subscribed when its first stream arrives (subscribes
 * from many streams in the same tick go out as one command) and unsubscribed a debounce after its
 * last stream left, so a reconnect storm does not churn Redis.
 *
 * Each event is encoded here once and the same bytes go to every stream; one heartbeat timer
 * serves all streams.
 */
export class StreamRegistry {
  private readonly channels = new Map<ChannelName, ChannelEntry>();
  private readonly all = new Set<SseStream>();
  private readonly perUser = new Map<string, number>();
  private subscribeQueue: ChannelName[] = [];
  private subscribeBatch: Promise<void> | undefined;
  private releaseTimer: NodeJS.Timeout | undefined;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly expiryTimer: NodeJS.Timeout;
  private readonly catchUpDeps: CatchUpDeps;

  constructor(
    private readonly backplane: Backplane,
    private readonly options: StreamRegistryOptions,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    backplane.onMessage((message) => this.deliver(message));
    this.catchUpDeps = { backplane, metrics, logger, firstPageEntries: options.firstPageEntries };
    backplane.onSubscriberLost((channels) => this.holdLive(channels));
    backplane.onResubscribed((channels) => void this.catchUp(channels));
    this.heartbeatTimer = setInterval(() => {
      for (const stream of this.all) stream.heartbeat();
    }, options.heartbeatMs).unref();
    // One sweep for every stream's token expiry rather than a timer per stream (memory per idle
    // stream). Tokens expire on whole seconds, so a second's sweep is precise enough.
    this.expiryTimer = setInterval(() => {
      const now = Date.now();
      for (const stream of this.all) if (stream.expiresAtMs <= now) stream.expire();
    }, EXPIRY_SWEEP_MS).unref();
  }

  get streamCount(): number {
    return this.all.size;
  }

  /** Channels this replica holds (subscribed or awaiting their debounced unsubscribe). */
  get channelCount(): number {
    return this.channels.size;
  }

  streamsOfUser(userId: string): number {
    return this.perUser.get(userId) ?? 0;
  }

  /** Streams this replica holds on `channel` (the fleet's presence counts topics with it). */
  streamsOn(channel: ChannelName): number {
    return this.channels.get(channel)?.streams.size ?? 0;
  }

  /** Every channel this replica holds, with its stream count. */
  *channelStreams(): IterableIterator<[ChannelName, number]> {
    for (const [channel, entry] of this.channels) yield [channel, entry.streams.size];
  }

  /** Up to `count` open streams, the longest open first (the rebalancer ends some). */
  oldest(count: number): SseStream[] {
    const picked: SseStream[] = [];
    for (const stream of this.all) {
      if (picked.length >= count) break;
      picked.push(stream);
    }
    return picked;
  }

  private streams(): SseStream[] {
    return [...this.all];
  }

  tagOf(channel: ChannelName): string {
    return this.channels.get(channel)?.tag ?? channelTag(channel);
  }

  /**
   * Registers a stream on its channels and resolves once every one is subscribed, so from then
   * on every event published to them reaches the stream (queued until it goes live).
   */
  async attach(stream: SseStream): Promise<void> {
    this.all.add(stream);
    this.perUser.set(stream.userId, this.streamsOfUser(stream.userId) + 1);
    const waits: Promise<void>[] = [];
    for (const channel of stream.channels) {
      let entry = this.channels.get(channel);
      if (entry === undefined) {
        entry = {
          channel,
          streams: new Set(),
          tag: channelTag(channel),
          subscribed: undefined,
          confirmed: false,
          releaseAtMs: undefined,
          seen: undefined,
          held: undefined,
          heldOverflow: undefined,
          breaks: 0,
        };
        this.channels.set(channel, entry);
      }
      entry.streams.add(stream);
      entry.releaseAtMs = undefined;
      entry.subscribed ??= this.subscribe(channel, entry);
      waits.push(entry.subscribed);
    }
    await Promise.all(waits);
  }

  /** Removes a stream everywhere; channels left empty are released after the debounce. */
  detach(stream: SseStream): void {
    if (!this.all.delete(stream)) return;
    const left = this.streamsOfUser(stream.userId) - 1;
    if (left > 0) this.perUser.set(stream.userId, left);
    else this.perUser.delete(stream.userId);
    for (const channel of stream.channels) {
      const entry = this.channels.get(channel);
      if (entry === undefined) continue;
      entry.streams.delete(stream);
      if (entry.streams.size === 0) {
        entry.releaseAtMs = Date.now() + this.options.unsubscribeDebounceMs;
        this.scheduleRelease();
      }
    }
  }

  /**
   * Where a new stream without a cursor for `channel` can start without reading history: the
   * newest position this replica has seen, when the channel is subscribed and its subscriber has
   * not broken since (every later event then reaches the stream live). Undefined otherwise.
   */
  liveStart(channel: ChannelName): { epoch: string; position: Position } | undefined {
    const entry = this.channels.get(channel);
    if (entry === undefined || !entry.confirmed || entry.held !== undefined) return undefined;
    return entry.seen;
  }

  /** Records where a newly attached stream starts, if nothing newer has been seen. */
  noteStart(channel: ChannelName, epoch: string, position: Position): void {
    const entry = this.channels.get(channel);
    if (entry !== undefined && entry.seen === undefined) entry.seen = { epoch, position };
  }

  /**
   * A live event from the backplane: encoded once and handed to every stream of its channel. When
   * it carries trace context, one CONSUMER span per replica (child of the producer) covers the
   * writes and records how many streams and bytes it reached.
   */
  deliver(message: ChannelMessage): void {
    const entry = this.channels.get(message.channel);
    if (entry === undefined) return;
    if (entry.held !== undefined) {
      if (entry.held.length < this.options.heldLimit) entry.held.push(message);
      else entry.heldOverflow = message;
      return;
    }
    if (message.header.tc === undefined) {
      this.fanOut(entry, message);
      return;
    }
    const span = startDeliverSpan(message.header.tc, { 'messaging.destination.name': message.channel });
    const written = withSpan(span, () => this.fanOut(entry, message));
    span.setAttributes({
      ...(written.segment === undefined ? {} : { 'messaging.message.id': written.segment }),
      'switchboard.streams_written': written.streams,
      'switchboard.bytes_written': written.bytes,
    });
    span.end();
  }

  /** Writes one event to the channel's streams (each drops what it already has); counts what was written. */
  private fanOut(entry: ChannelEntry, message: ChannelMessage): { segment: string | undefined; streams: number; bytes: number } {
    if (entry.seen === undefined || entry.seen.epoch !== message.epoch || comparePositions(message.position, entry.seen.position) > 0) {
      entry.seen = { epoch: message.epoch, position: message.position };
    }
    if (entry.streams.size === 0) return { segment: undefined, streams: 0, bytes: 0 };
    const encoded = this.encode(message, entry.tag);
    if (encoded === undefined) return { segment: undefined, streams: 0, bytes: 0 };
    let streams = 0;
    let bytes = 0;
    for (const stream of entry.streams) {
      const written = stream.deliver(encoded);
      if (written > 0) {
        streams++;
        bytes += written;
      }
    }
    if (streams > 0) {
      this.metrics.eventsDelivered.inc(streams);
      this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - message.header.a) / 1000);
    }
    return { segment: encoded.segment, streams, bytes };
  }

  /** Encodes an event for this replica's streams; undefined (logged) if it cannot be written. */
  encode(message: ChannelMessage, tag: string): EncodedEvent | undefined {
    try {
      const segment = formatSegment(tag, message.epoch, message.positionText);
      return new Encoded(message, segment, encodeIdLine(segment), encodeEventBody(message.header.t, message.dataJson));
    } catch (err) {
      this.metrics.droppedMessages.inc();
      this.logger.warn({ err, channel: message.channel }, 'dropped an event that cannot be encoded');
      return undefined;
    }
  }

  /** Ends every stream in jittered batches over `windowMs`, each told to come back after a random delay. */
  async drain(windowMs: number, retryMs: number): Promise<void> {
    const streams = this.streams();
    const batches = Math.max(1, Math.min(10, streams.length));
    const perBatch = Math.ceil(streams.length / batches);
    for (let b = 0; b < batches; b++) {
      for (const stream of streams.slice(b * perBatch, (b + 1) * perBatch)) {
        stream.end('draining', Math.round(retryMs / 2 + Math.random() * (retryMs + windowMs)));
      }
      if (b < batches - 1) await delay(windowMs / batches);
    }
  }

  close(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.expiryTimer);
    clearTimeout(this.releaseTimer);
  }

  private subscribe(channel: ChannelName, entry: ChannelEntry): Promise<void> {
    this.subscribeQueue.push(channel);
    this.subscribeBatch ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        const batch = this.subscribeQueue;
        this.subscribeQueue = [];
        this.subscribeBatch = undefined;
        this.backplane.subscribe(batch).then(resolve, reject);
      });
    });
    return this.subscribeBatch.then(
      () => {
        entry.confirmed = true;
        // The batch's promise is shared by many channels; each keeps only the settled constant.
        entry.subscribed = SUBSCRIBED;
      },
      (err: unknown) => {
        entry.subscribed = undefined;
        throw err;
      },
    );
  }

  private scheduleRelease(): void {
    if (this.releaseTimer !== undefined) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined;
      this.releaseDue();
    }, this.options.unsubscribeDebounceMs).unref();
  }

  private releaseDue(): void {
    const now = Date.now();
    const due: ChannelName[] = [];
    let pending = false;
    for (const [channel, entry] of this.channels) {
      if (entry.releaseAtMs === undefined) continue;
      // An unconfirmed subscribe is still in flight; unsubscribing now could be overtaken by it.
      // One that failed (`subscribed` cleared) is released too, or it would be retried forever.
      if (entry.releaseAtMs <= now && (entry.confirmed || entry.subscribed === undefined)) {
        this.channels.delete(channel);
        due.push(channel);
      } else {
        pending = true;
      }
    }
    if (due.length > 0) {
      this.backplane.unsubscribe(due).catch((err: unknown) => this.logger.warn({ err }, 'unsubscribe failed'));
    }
    if (pending) this.scheduleRelease();
  }

  /**
   * The subscriber path broke for `channels` (all when undefined): hold their live messages until
   * they have caught up. Other channels go on as they were.
   */
  private holdLive(channels: readonly ChannelName[] | undefined): void {
    for (const entry of this.entriesOf(channels)) {
      entry.breaks++;
      entry.held ??= [];
    }
  }

  /** The subscriber path came back for `channels` (all when undefined): catch each one up from history. */
  private async catchUp(channels: readonly ChannelName[] | undefined): Promise<void> {
    this.metrics.backplaneReconnects.inc();
    const waiting = this.entriesOf(channels).filter((entry) => entry.held !== undefined);
    await forEachLimited(waiting, CATCH_UP_CONCURRENCY, (entry) => this.catchUpEntry(entry));
  }

  private entriesOf(channels: readonly ChannelName[] | undefined): ChannelEntry[] {
    if (channels === undefined) return [...this.channels.values()];
    return channels.flatMap((channel) => this.channels.get(channel) ?? []);
  }

  /** Writes what one channel missed (history/catch-up.ts decides how), then the live messages held meanwhile. */
  private async catchUpEntry(entry: ChannelEntry): Promise<void> {
    const { channel, seen } = entry;
    if (seen !== undefined && entry.streams.size > 0) {
      const round = entry.breaks;
      const completed = await catchUpChannel(
        {
          channel,
          seen,
          write: (message) => this.fanOut(entry, message).bytes,
          skip: (to, cause) => {
            for (const stream of entry.streams) stream.skipTo(channel, to, cause);
          },
          moveSeen: (epoch, position) => {
            entry.seen = { epoch, position };
          },
          // Broken again meanwhile (the next round takes over, `held` kept), or released.
          overtaken: () => entry.breaks !== round || this.channels.get(channel) !== entry,
        },
        this.catchUpDeps,
      );
      if (!completed) return;
    }
    const held = entry.held ?? [];
    const overflow = entry.heldOverflow;
    entry.held = undefined;
    entry.heldOverflow = undefined;
    for (const message of held) this.deliver(message);
    if (overflow !== undefined) {
      // More arrived during the catch-up than could be held: say there is a gap, then go on
      // from the newest.
      for (const stream of entry.streams) stream.skipTo(channel, undefined, 'history_trimmed');
      this.deliver(overflow);
    }
  }
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** An event encoded once for every stream of its channel; `whole` is made only if a stream of this one channel writes it. */
class Encoded implements EncodedEvent {
  readonly bodyBytes: number;
  readonly wholeBytes: number;
  private wholeBuffer: Buffer | undefined;
  private wholeChunkBuffer: Buffer | undefined;

  constructor(
    readonly message: ChannelMessage,
    readonly segment: string,
    private readonly idLine: string,
    readonly body: string,
  ) {
    this.bodyBytes = Buffer.byteLength(body);
    // Ids are ASCII (the cursor alphabet): the id line's length is its size in bytes.
    this.wholeBytes = idLine.length + this.bodyBytes;
  }

  get whole(): Buffer {
    this.wholeBuffer ??= Buffer.from(this.idLine + this.body);
    return this.wholeBuffer;
  }

  get wholeChunk(): Buffer {
    this.wholeChunkBuffer ??= Buffer.from(frameChunk(this.idLine + this.body, this.wholeBytes));
    return this.wholeChunkBuffer;
  }
}
