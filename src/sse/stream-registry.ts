import type { Logger } from 'pino';
import type { Backplane, ChannelMessage } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/channels.js';
import { channelTag, comparePositions, formatSegment, type Position } from '../history/cursor.js';
import type { Metrics } from '../telemetry/metrics.js';
import { SPAN_DELIVER, startDeliverSpan } from '../telemetry/tracing.js';
import { encodeEventBody, encodeIdLine } from './encoder.js';
import type { EncodedEvent, SseStream } from './sse-stream.js';

interface ChannelEntry {
  readonly streams: Set<SseStream>;
  readonly tag: string;
  /** Settles when the backplane confirmed the subscription; undefined after a failed attempt. */
  subscribed: Promise<void> | undefined;
  confirmed: boolean;
  /** Set while the channel has no stream: it is unsubscribed after this time. */
  releaseAtMs: number | undefined;
  /** The newest position this replica has seen, to catch up from when the subscriber was away. */
  seen: { epoch: string; position: Position } | undefined;
}

export interface StreamRegistryOptions {
  heartbeatMs: number;
  unsubscribeDebounceMs: number;
  /** Most history entries read per channel when catching up after a resubscribe. */
  replayLimit: number;
}

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

  constructor(
    private readonly backplane: Backplane,
    private readonly options: StreamRegistryOptions,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    backplane.onMessage((message) => this.deliver(message));
    backplane.onResubscribed(() => void this.catchUp());
    this.heartbeatTimer = setInterval(() => {
      for (const stream of this.all) stream.heartbeat();
    }, options.heartbeatMs).unref();
  }

  get replayLimit(): number {
    return this.options.replayLimit;
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

  streams(): SseStream[] {
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
        entry = { streams: new Set(), tag: channelTag(channel), subscribed: undefined, confirmed: false, releaseAtMs: undefined, seen: undefined };
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

  /** Records where a newly attached stream starts, if nothing newer has been seen. */
  noteStart(channel: ChannelName, epoch: string, position: Position): void {
    const entry = this.channels.get(channel);
    if (entry !== undefined && entry.seen === undefined) entry.seen = { epoch, position };
  }

  /**
   * Encodes an event once and hands it to every stream of its channel. When the event carries
   * trace context, one CONSUMER span per replica records how many streams and bytes it reached.
   */
  deliver(message: ChannelMessage): void {
    const entry = this.channels.get(message.channel);
    if (entry === undefined) return;
    if (entry.seen === undefined || entry.seen.epoch !== message.epoch || comparePositions(message.position, entry.seen.position) > 0) {
      entry.seen = { epoch: message.epoch, position: message.position };
    }
    if (entry.streams.size === 0) return;
    const encoded = this.encode(message, entry.tag);
    if (encoded === undefined) return;
    let streams = 0;
    let bytes = 0;
    for (const stream of entry.streams) {
      const written = stream.deliver(encoded);
      if (written > 0) {
        streams++;
        bytes += written;
      }
    }
    this.metrics.eventsDelivered.inc(streams);
    this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - message.header.a) / 1000);
    if (message.header.tc !== undefined) {
      startDeliverSpan(SPAN_DELIVER, message.header.tc, {
        'messaging.destination.name': message.channel,
        'messaging.message.id': encoded.segment,
        'switchboard.streams_written': streams,
        'switchboard.bytes_written': bytes,
      }).end();
    }
  }

  /** Encodes an event for this replica's streams; undefined (logged) if it cannot be written. */
  encode(message: ChannelMessage, tag: string): EncodedEvent | undefined {
    try {
      const segment = formatSegment(tag, message.epoch, message.positionText);
      const body = encodeEventBody(message.header.t, message.dataJson);
      return { message, segment, body: Buffer.from(body), whole: Buffer.from(encodeIdLine(segment) + body) };
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
      if (entry.releaseAtMs <= now && entry.confirmed) {
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

  /** After the subscriber came back: read what each held channel missed and deliver it. */
  private async catchUp(): Promise<void> {
    this.metrics.backplaneReconnects.inc();
    const held = [...this.channels].filter(([, entry]) => entry.streams.size > 0 && entry.seen !== undefined);
    await Promise.all(
      held.map(async ([channel, entry]) => {
        const seen = entry.seen as { epoch: string; position: Position };
        try {
          const read = await this.backplane.readHistory(channel, seen.position, this.options.replayLimit);
          const complete = read.epoch === seen.epoch && !read.trimmed && !isCut(read.entries.length, this.options.replayLimit, read.entries.at(-1)?.positionText, read.lastText);
          if (!complete) {
            for (const stream of entry.streams) stream.skipTo(channel, read.epoch, read.last, read.lastText, read.epoch === seen.epoch ? 'history_trimmed' : 'history_lost');
            entry.seen = { epoch: read.epoch, position: read.last };
            return;
          }
          this.metrics.replayedEvents.inc(read.entries.length);
          for (const message of read.entries) this.deliver(message);
        } catch (err) {
          this.logger.warn({ err, channel }, 'catch-up read failed; the next resubscribe retries');
        }
      }),
    );
  }
}

/** True when a read stopped at its limit before reaching the newest entry. */
export function isCut(count: number, limit: number, lastRead: string | undefined, newest: string): boolean {
  return count >= limit && lastRead !== newest;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
