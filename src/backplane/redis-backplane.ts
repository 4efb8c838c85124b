import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { withTimeout } from '../deadline.js';
import { backplaneUnavailable } from '../errors.js';
import type { Position } from '../history/cursor.js';
import type { Backplane, BatchOutcome, ChannelMessage, HistoryRead, PublishRequest, PublishResult } from './backplane.js';
import { probeChannel, type ChannelName } from './redis-keys.js';
import { parseWireMessage } from './envelope.js';
import type { HistoryOptions } from './memory-backplane.js';
import { ProbeTracker } from './probe-tracker.js';
import { PublishCoalescer } from './publish-coalescer.js';
import type { RedisConnections } from './redis-connections.js';
import { ReplicationWait } from './replication-wait.js';
import { runHistoryRead, runPublish, runPublishMany, toResult, type ScriptPublished } from './script-calls.js';

export interface RedisBackplaneOptions extends HistoryOptions {
  replicaId: string;
  probeIntervalMs: number;
  logger: Logger;
  /** A publish is answered only once this many Redis replicas hold it (0: once the master does). */
  waitReplicas: number;
}

/** Channels per SUBSCRIBE/UNSUBSCRIBE command when many change at once. */
const CHANNELS_PER_COMMAND = 500;
/** How long boot waits for the subscriber's first SUBSCRIBE to be confirmed. */
export const FIRST_SUBSCRIBE_TIMEOUT_MS = 15_000;

/**
 * Redis pub/sub is the fast path; each channel's Redis Stream is the history.
 *
 * It uses the replica's two connections (redis-connections.ts): commands, which fail within about
 * a second while Redis is down or frozen (ioredis' defaults hung for over a minute), and ONE
 * subscriber. Resubscription is done here rather than by ioredis, so the replica knows the moment
 * every channel is back and can catch up from history.
 *
 * A probe message to a channel only this replica subscribes checks the whole subscriber path:
 * a connection that looks healthy but hears nothing makes the replica unready and is rebuilt.
 */
export class RedisBackplane implements Backplane {
  readonly kind = 'redis' as const;
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly subscribed = new Set<ChannelName>();
  private readonly messageHandlers: ((message: ChannelMessage) => void)[] = [];
  private readonly resubscribedHandlers: (() => void)[] = [];
  private readonly lostHandlers: (() => void)[] = [];
  private readonly probe: ChannelName;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly probeTracker: ProbeTracker;
  /** True once the subscriber's channels are confirmed after its latest (re)connect. */
  private subscriberReady = false;
  private hasSubscribedBefore = false;
  private resolveFirstSubscribed!: () => void;
  private readonly firstSubscribed = new Promise<void>((resolve) => {
    this.resolveFirstSubscribed = resolve;
  });
  private closed = false;
  /** Set when REDIS_WAIT_REPLICAS > 0. */
  private readonly replication: ReplicationWait | undefined;
  private readonly coalescer: PublishCoalescer;

  constructor(
    connections: RedisConnections,
    private readonly options: RedisBackplaneOptions,
  ) {
    this.publisher = connections.commands;
    this.subscriber = connections.subscriber;
    this.replication = options.waitReplicas > 0 ? new ReplicationWait(this.publisher, options.waitReplicas) : undefined;
    this.coalescer = new PublishCoalescer({
      one: (request) => runPublish(this.publisher, false, request, options),
      many: (requests) => runPublishMany(this.publisher, requests, options),
    });
    this.probe = probeChannel(options.replicaId);
    this.probeTracker = new ProbeTracker(options.probeIntervalMs);

    this.subscriber.on('message', (channel: string, payload: string) => this.receive(channel, payload));
    this.subscriber.on('ready', () => void this.resubscribeAll());
    this.subscriber.on('close', () => this.markLost());
  }

  /** Connects both connections and subscribes the probe. Rejects if Redis cannot be reached. */
  async start(): Promise<void> {
    // ioredis rejects connect() with a bare "Connection is closed."; the socket error says why.
    let cause: Error | undefined;
    const remember = (err: Error): void => {
      cause ??= err;
    };
    this.publisher.on('error', remember);
    try {
      await Promise.all([this.publisher.connect(), this.subscriber.connect()]);
    } catch (err) {
      throw new Error(`cannot reach Redis: ${(cause ?? (err as Error)).message}`, { cause: err });
    } finally {
      this.publisher.off('error', remember);
    }
    // A replica that cannot hear Redis must fail at boot (and be restarted), never hang unready.
    await withTimeout(this.firstSubscribed, FIRST_SUBSCRIBE_TIMEOUT_MS, "the subscriber's first SUBSCRIBE");
    this.probeTimer = setInterval(() => this.sendProbe(), this.options.probeIntervalMs).unref();
    this.sendProbe();
  }

  async publish(request: PublishRequest): Promise<PublishResult> {
    try {
      const published = await this.coalescer.publish(request);
      await this.replicated([published], [request]);
      return toResult(published);
    } catch (err) {
      throw backplaneUnavailable(err);
    }
  }

  /** One script call for the whole batch: one round trip, and it runs atomically. */
  async publishBatch(requests: readonly PublishRequest[]): Promise<BatchOutcome[]> {
    try {
      const published = await runPublishMany(this.publisher, requests, this.options);
      await this.replicated(published, requests);
      return published.map(toResult);
    } catch (err) {
      const error = backplaneUnavailable(err);
      return requests.map(() => error);
    }
  }

  /** With REDIS_WAIT_REPLICAS, waits for the replicas to hold what these publishes stored. */
  private async replicated(published: readonly ScriptPublished[], requests: readonly PublishRequest[]): Promise<void> {
    if (this.replication === undefined) return;
    // Only a stored event has a write to wait for: a duplicate's was answered already, and a
    // live-only event is not kept.
    if (!published.some((result, i) => result.receivers >= 0 && requests[i]?.durable !== false)) return;
    if (!(await this.replication.acknowledged())) {
      throw new Error(`fewer than ${this.options.waitReplicas} Redis replicas acknowledged the write in time`);
    }
  }

  async subscribe(channels: readonly ChannelName[]): Promise<void> {
    for (const channel of channels) this.subscribed.add(channel);
    await this.inBatches(channels, (batch) => this.subscriber.subscribe(...batch));
  }

  async unsubscribe(channels: readonly ChannelName[]): Promise<void> {
    for (const channel of channels) this.subscribed.delete(channel);
    // While disconnected there is nothing to unsubscribe: the reconnect replays `subscribed` only.
    if (this.subscriber.status !== 'ready') return;
    await this.inBatches(channels, (batch) => this.subscriber.unsubscribe(...batch));
  }

  async readHistory(channel: ChannelName, after: Position | undefined, limit: number): Promise<HistoryRead> {
    try {
      return await runHistoryRead(this.publisher, channel, after, limit, this.options.historyTtlSeconds, this.options.logger);
    } catch (err) {
      throw backplaneUnavailable(err);
    }
  }

  onMessage(handler: (message: ChannelMessage) => void): void {
    this.messageHandlers.push(handler);
  }

  onResubscribed(handler: () => void): void {
    this.resubscribedHandlers.push(handler);
  }

  onSubscriberLost(handler: () => void): void {
    this.lostHandlers.push(handler);
  }

  isReady(): boolean {
    return !this.closed && this.publisher.status === 'ready' && this.subscriberReady && this.probeTracker.fresh();
  }

  /** Milliseconds since the probe last came back through Redis (for metrics and readiness). */
  /** One path: this replica's one subscriber. */
  probeAgesMs(): ReadonlyMap<string, number> {
    return new Map([['redis', this.probeAgeMs()]]);
  }

  probeAgeMs(): number {
    return this.probeTracker.ageMs();
  }

  /** Stops probing and reports unready. The connections were made, and are closed, by connect.ts. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probeTimer);
  }

  private receive(channel: string, payload: string): void {
    if (channel === this.probe) {
      this.probeTracker.heard(payload);
      return;
    }
    const message = parseWireMessage(channel as ChannelName, payload);
    if (message === undefined) {
      this.options.logger.warn({ channel }, 'dropped a malformed message from Redis');
      return;
    }
    for (const handler of this.messageHandlers) handler(message);
  }

  /** On every (re)connect: subscribe everything held, then tell the replica to catch up. */
  private async resubscribeAll(): Promise<void> {
    try {
      await this.inBatches([this.probe, ...this.subscribed], (batch) => this.subscriber.subscribe(...batch));
    } catch (err) {
      this.options.logger.warn({ err }, 'resubscribe failed; waiting for the next reconnect');
      return;
    }
    this.subscriberReady = true;
    this.probeTracker.restart();
    if (!this.hasSubscribedBefore) {
      this.hasSubscribedBefore = true;
      this.resolveFirstSubscribed();
      return;
    }
    this.options.logger.info({ channels: this.subscribed.size }, 'subscriber back; catching up from history');
    for (const handler of this.resubscribedHandlers) handler();
  }

  /** The subscriber path broke: tell the replica once per break (ioredis closes on every failed retry too). */
  private markLost(): void {
    if (!this.subscriberReady) return;
    this.subscriberReady = false;
    for (const handler of this.lostHandlers) handler();
  }

  private sendProbe(): void {
    if (this.probeTracker.deaf() && this.subscriberReady) {
      // Redis keeps taking the probe, yet the subscriber never hears it: connected by every sign
      // ioredis has, but deaf. Rebuild the connection, which resubscribes and catches up.
      this.options.logger.warn(
        { probeAgeMs: this.probeAgeMs(), unheardMs: this.probeTracker.unheardMs() },
        'subscriber stopped hearing its probe; reconnecting',
      );
      this.probeTracker.forgetUnheard();
      this.markLost();
      this.subscriber.disconnect(true);
    }
    const probe = this.probeTracker.next();
    this.publisher.publish(this.probe, String(probe)).then(
      () => this.probeTracker.accepted(probe),
      () => {
        // Redis unreachable or frozen: readiness already reflects it through the probe's age.
      },
    );
  }

  /**
   * Issues every batch at once, not one after another's reply: commands then reach Redis in call
   * order, so a SUBSCRIBE of a channel held anew cannot be overtaken by an older UNSUBSCRIBE.
   */
  private async inBatches(channels: readonly ChannelName[], run: (batch: ChannelName[]) => Promise<unknown>): Promise<void> {
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < channels.length; i += CHANNELS_PER_COMMAND) pending.push(run(channels.slice(i, i + CHANNELS_PER_COMMAND)));
    await Promise.all(pending);
  }
}
