import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { withTimeout } from '../deadline.js';
import { backplaneUnavailable } from '../errors.js';
import { formatPosition, newEpoch, parsePosition, ZERO_POSITION, type Position } from '../history/cursor.js';
import type { Backplane, ChannelMessage, HistoryRead, PublishRequest, PublishResult } from './backplane.js';
import { channelKeys, probeChannel, type ChannelName } from './redis-keys.js';
import { buildMessage, encodeHeader, parseWireMessage } from './envelope.js';
import type { HistoryOptions } from './memory-backplane.js';
import type { RedisConnections } from './redis-connections.js';
import { ReplicationWait } from './replication-wait.js';
import { HISTORY_SCRIPT, PUBLISH_SCRIPT } from './scripts.js';

export interface RedisBackplaneOptions extends HistoryOptions {
  replicaId: string;
  probeIntervalMs: number;
  logger: Logger;
  /** A publish is answered only once this many Redis replicas hold it (0: once the master does). */
  waitReplicas: number;
}

/** Commands the scripts add to the publisher connection (ioredis `defineCommand`). */
interface ScriptCommands {
  sbPublish(...args: (string | number)[]): Promise<[string, string, number]>;
  sbHistory(...args: (string | number)[]): Promise<[string, string, [string, string[]][]]>;
}

/** Channels per SUBSCRIBE/UNSUBSCRIBE command when many change at once. */
const CHANNELS_PER_COMMAND = 500;
/** How long boot waits for the subscriber's first SUBSCRIBE to be confirmed. */
const FIRST_SUBSCRIBE_TIMEOUT_MS = 15_000;
/** The probe is late (the subscriber deaf) after this many intervals without it arriving. */
const PROBE_MISSES_BEFORE_DEAF = 3;

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
  private readonly publisher: Redis & ScriptCommands;
  private readonly subscriber: Redis;
  private readonly subscribed = new Set<ChannelName>();
  private readonly messageHandlers: ((message: ChannelMessage) => void)[] = [];
  private readonly resubscribedHandlers: (() => void)[] = [];
  private readonly lostHandlers: (() => void)[] = [];
  private readonly probe: ChannelName;
  private probeTimer: NodeJS.Timeout | undefined;
  private lastProbeAtMs = 0;
  /**
   * When this replica first processed Redis' answer to a probe PUBLISH that it has not heard back
   * since. Both the answer and the message reach this one event loop, so a starved loop delays
   * both alike: only a path that takes answers but not messages looks deaf, never a busy replica.
   */
  private unheardProbeSinceMs: number | undefined;
  private probesSent = 0;
  private lastProbeHeard = 0;
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

  constructor(
    connections: RedisConnections,
    private readonly options: RedisBackplaneOptions,
  ) {
    this.publisher = connections.commands as Redis & ScriptCommands;
    this.publisher.defineCommand('sbPublish', { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
    this.publisher.defineCommand('sbHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT });
    this.subscriber = connections.subscriber;
    this.replication = options.waitReplicas > 0 ? new ReplicationWait(this.publisher, options.waitReplicas) : undefined;
    this.probe = probeChannel(options.replicaId);

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
    await withTimeout(this.firstSubscribed, FIRST_SUBSCRIBE_TIMEOUT_MS, 'the subscriber\'s first SUBSCRIBE');
    this.probeTimer = setInterval(() => this.sendProbe(), this.options.probeIntervalMs).unref();
    this.sendProbe();
  }

  async publish(request: PublishRequest): Promise<PublishResult> {
    const keys = channelKeys(request.channel);
    const idempotent = request.idempotencyKey !== undefined;
    try {
      const [position, epoch, receivers] = await this.publisher.sbPublish(
        keys.history,
        keys.meta,
        keys.idempotencyPrefix + (request.idempotencyKey ?? ''),
        request.channel,
        encodeHeader(request.header),
        request.dataJson,
        this.options.historyMaxLen,
        this.options.historyTtlSeconds,
        newEpoch(),
        idempotent ? '1' : '0',
        request.idempotencyTtlSeconds ?? this.options.historyTtlSeconds,
      );
      const duplicate = receivers < 0;
      // A duplicate wrote nothing here to wait for: the first publish of its key was answered already.
      if (this.replication !== undefined && !duplicate && !(await this.replication.acknowledged())) {
        throw new Error(`fewer than ${this.options.waitReplicas} Redis replicas acknowledged the write in time`);
      }
      return { epoch, position, receivers: Math.max(receivers, 0), duplicate };
    } catch (err) {
      throw backplaneUnavailable(err);
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
    const keys = channelKeys(channel);
    let reply: [string, string, [string, string[]][]];
    try {
      reply = await this.publisher.sbHistory(
        keys.history,
        keys.meta,
        newEpoch(),
        this.options.historyTtlSeconds,
        after === undefined ? '' : formatPosition(after),
        limit,
      );
    } catch (err) {
      throw backplaneUnavailable(err);
    }
    const [epoch, lastText, rawEntries] = reply;
    const entries: ChannelMessage[] = [];
    let firstPredecessor: string | undefined;
    for (const [id, fields] of rawEntries) {
      const field = fieldReader(fields);
      firstPredecessor ??= field('p');
      const message = buildMessage(channel, epoch, id, field('h') ?? '', field('d') ?? '');
      if (message === undefined) {
        this.options.logger.warn({ channel, id }, 'dropped a malformed history entry');
        continue;
      }
      entries.push(message);
    }
    const last = parsePosition(lastText) ?? ZERO_POSITION;
    const afterText = after === undefined ? undefined : formatPosition(after);
    const trimmed =
      afterText !== undefined &&
      afterText !== lastText &&
      (rawEntries.length === 0 ? true : firstPredecessor !== afterText);
    return { epoch, last, lastText, entries, trimmed };
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
    return (
      !this.closed &&
      this.publisher.status === 'ready' &&
      this.subscriberReady &&
      Date.now() - this.lastProbeAtMs < this.options.probeIntervalMs * PROBE_MISSES_BEFORE_DEAF
    );
  }

  /** Milliseconds since the probe last came back through Redis (for metrics and readiness). */
  probeAgeMs(): number {
    return this.lastProbeAtMs === 0 ? Number.POSITIVE_INFINITY : Date.now() - this.lastProbeAtMs;
  }

  /** Stops probing and reports unready. The connections were made, and are closed, by connect.ts. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probeTimer);
  }

  private receive(channel: string, payload: string): void {
    if (channel === this.probe) {
      this.lastProbeAtMs = Date.now();
      this.lastProbeHeard = Math.max(this.lastProbeHeard, Number(payload) || 0);
      this.unheardProbeSinceMs = undefined;
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
    // The probe may have been missed while away; count the path as alive again from now.
    this.lastProbeAtMs = Date.now();
    this.unheardProbeSinceMs = undefined;
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
    const unheardMs = this.unheardProbeSinceMs === undefined ? 0 : Date.now() - this.unheardProbeSinceMs;
    if (unheardMs > this.options.probeIntervalMs * PROBE_MISSES_BEFORE_DEAF && this.subscriberReady) {
      // Redis keeps taking the probe, yet the subscriber never hears it: connected by every sign
      // ioredis has, but deaf. Rebuild the connection, which resubscribes and catches up.
      this.options.logger.warn({ probeAgeMs: this.probeAgeMs(), unheardMs }, 'subscriber stopped hearing its probe; reconnecting');
      this.unheardProbeSinceMs = undefined;
      this.markLost();
      this.subscriber.disconnect(true);
    }
    const probe = ++this.probesSent;
    this.publisher.publish(this.probe, String(probe)).then(
      () => {
        // The answer can be processed after the message itself: only a probe not yet heard counts.
        if (this.lastProbeHeard < probe) this.unheardProbeSinceMs ??= Date.now();
      },
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

/** XRANGE gives an entry's fields as a flat [name, value, …] list. */
function fieldReader(fields: string[]): (name: string) => string | undefined {
  return (name) => {
    for (let i = 0; i < fields.length - 1; i += 2) if (fields[i] === name) return fields[i + 1];
    return undefined;
  };
}
