import calculateSlot from 'cluster-key-slot';
import type { ChainableCommander, Cluster } from 'ioredis';
import type { Logger } from 'pino';
import { withTimeout } from '../deadline.js';
import { backplaneUnavailable, type SwitchboardError } from '../errors.js';
import type { Position } from '../history/cursor.js';
import type { Backplane, BatchOutcome, ChannelMessage, HistoryRead, PublishRequest, PublishResult } from './backplane.js';
import { ClusterReplicationWait } from './cluster-replication-wait.js';
import { parseAddress, SlotMap, type NodeAddress } from './cluster-topology.js';
import { parseWireMessage } from './envelope.js';
import type { HistoryOptions } from './memory-backplane.js';
import type { ClusterConnections } from './redis-connections.js';
import { FIRST_SUBSCRIBE_TIMEOUT_MS } from './redis-backplane.js';
import { isProbeChannel, type ChannelName } from './redis-keys.js';
import { defineBatchScript, publishManyArguments, publishReplies, runHistoryRead, runPublish, toResult, type BatchScriptCommand } from './script-calls.js';
import { ShardSubscriber } from './shard-subscriber.js';

export interface ClusterBackplaneOptions extends HistoryOptions {
  replicaId: string;
  probeIntervalMs: number;
  /** REDIS_WAIT_REPLICAS: a publish is answered only once this many replicas of its master hold it. */
  waitReplicas: number;
  logger: Logger;
}

/**
 * The slot → master map is read again this often, by the subscribers and by the command Cluster
 * (for its routing, and true receiver counts): a failover or migration is noticed within it.
 */
const TOPOLOGY_REFRESH_MS = 1000;
/** A subscribe() not confirmed by then fails (the stream is refused with a 503, not left hanging). */
const SUBSCRIBE_TIMEOUT_MS = 10_000;

/**
 * Redis Cluster: every channel is a sharded channel. The publish script appends to history and
 * SPUBLISHes in the channel's one slot, through an ioredis `Cluster` (which also runs history
 * reads, jobs and probes). Subscribers are this class's own: one plain connection per master,
 * SSUBSCRIBE per slot, placed by a slot → master map read from CLUSTER SLOTS every second and
 * at once when a subscriber closes or Redis drops its channels.
 *
 * When a channel's owner changes (failover, migration) or its connection drops, only the
 * channels concerned are reported lost, subscribed on their owner, confirmed one slot at a time,
 * and reported back: the registry catches up exactly those; streams on other shards go on.
 *
 * Each shard has a probe channel in one of its slots. A shard whose probe Redis takes but this
 * replica never hears is deaf: its connection alone is rebuilt. A shard that is down for everyone
 * (its probe publish fails) does not make the replica unready.
 */
export class ClusterBackplane implements Backplane {
  readonly kind = 'redis' as const;
  private readonly commands: Cluster & BatchScriptCommand;
  /** Set when REDIS_WAIT_REPLICAS > 0. */
  private readonly replication: ClusterReplicationWait | undefined;
  private topology = new SlotMap([]);
  private readonly shards = new Map<NodeAddress, ShardSubscriber>();
  /** Channels the replica asked for. */
  private readonly wanted = new Set<ChannelName>();
  /** Where each wanted channel is placed. */
  private readonly placement = new Map<ChannelName, ShardSubscriber>();
  /** Confirmed on their owner and not broken since. */
  private readonly live = new Set<ChannelName>();
  /** Reported lost, not yet reported back. */
  private readonly broken = new Set<ChannelName>();
  /** The SSUBSCRIBE in flight per channel: only the latest one's confirmation counts. */
  private readonly inFlight = new Map<ChannelName, { shard: ShardSubscriber; generation: number; token: number }>();
  private tokens = 0;
  private readonly waiters = new Map<ChannelName, (() => void)[]>();
  private readonly messageHandlers: ((message: ChannelMessage) => void)[] = [];
  private readonly resubscribedHandlers: ((channels?: readonly ChannelName[]) => void)[] = [];
  private readonly lostHandlers: ((channels?: readonly ChannelName[]) => void)[] = [];
  private refreshing: Promise<void> | undefined;
  private refreshAgain: ShardSubscriber | 'any' | undefined;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(
    private readonly connections: ClusterConnections,
    private readonly options: ClusterBackplaneOptions,
  ) {
    this.commands = defineBatchScript(connections.commands);
    this.replication = options.waitReplicas > 0 ? new ClusterReplicationWait(connections.commands, options.waitReplicas) : undefined;
  }

  /** Connects, reads the topology, subscribes every master's probe. Rejects if the cluster cannot be used. */
  async start(): Promise<void> {
    let cause: Error | undefined;
    const remember = (err: Error): void => {
      cause ??= err;
    };
    this.commands.on('error', remember);
    try {
      await withTimeout(this.commands.connect(), FIRST_SUBSCRIBE_TIMEOUT_MS, 'connecting to the Redis Cluster');
    } catch (err) {
      const why = (cause as (Error & { lastNodeError?: Error }) | undefined)?.lastNodeError?.message ?? cause?.message ?? (err as Error).message;
      this.commands.disconnect();
      throw new Error(`cannot use REDIS_CLUSTER_NODES as a Redis Cluster: ${why}`, { cause: err });
    } finally {
      this.commands.off('error', remember);
    }
    await this.refresh();
    const everyProbe = async (): Promise<void> => {
      while (this.shards.size === 0 || [...this.shards.values()].some((shard) => !shard.probeConfirmed)) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        if (this.closed) return;
        await this.refresh();
      }
    };
    await withTimeout(everyProbe(), FIRST_SUBSCRIBE_TIMEOUT_MS, "every master's first SSUBSCRIBE");
    this.timers = [
      setInterval(() => {
        this.commands.refreshSlotsCache();
        void this.refresh();
      }, TOPOLOGY_REFRESH_MS).unref(),
      setInterval(() => void this.sendProbes(), this.options.probeIntervalMs).unref(),
    ];
    // A master's command connection opens on its first command, and one still opening fails
    // what is sent to it (no offline queue): open them all before the first publish.
    await this.sendProbes();
  }

  async publish(request: PublishRequest): Promise<PublishResult> {
    try {
      return toResult(
        this.replication === undefined ? await runPublish(this.commands, true, request, this.options) : await this.replication.publish(request, this.options),
      );
    } catch (err) {
      throw backplaneUnavailable(err);
    }
  }

  /**
   * One script call per slot (a call may touch one slot only), and one pipeline per master for
   * its slots' calls: one round trip per node. The grouping follows ioredis' own slot map, which
   * routes the pipeline (it refuses one whose slots it places on different nodes). A node that
   * fails fails its events only; a channel's events are all in one call, so they keep their order.
   */
  async publishBatch(requests: readonly PublishRequest[]): Promise<BatchOutcome[]> {
    if (this.replication !== undefined) return this.publishEachAcknowledged(requests);
    const outcomes: BatchOutcome[] = new Array(requests.length);
    const byNode = new Map<string, number[][]>();
    for (const [slot, indexes] of groupBySlot(requests)) {
      const node = this.commands.slots[slot]?.[0] ?? '';
      const groups = byNode.get(node);
      if (groups === undefined) byNode.set(node, [indexes]);
      else groups.push(indexes);
    }
    await Promise.all(
      [...byNode.values()].map(async (groups) => {
        const pipeline = this.commands.pipeline() as ChainableCommander & { sbPublishMany(...args: (string | number)[]): ChainableCommander };
        for (const indexes of groups) {
          pipeline.sbPublishMany(
            ...publishManyArguments(
              indexes.map((i) => requests[i] as PublishRequest),
              this.options,
            ),
          );
        }
        let replies: [Error | null, unknown][];
        try {
          replies = (await pipeline.exec()) ?? [];
        } catch (err) {
          replies = groups.map(() => [err as Error, undefined]);
        }
        groups.forEach((indexes, g) => {
          const [err, reply] = replies[g] ?? [new Error('no reply from Redis'), undefined];
          const published = err === null ? publishReplies(reply as (string | number)[]) : [];
          indexes.forEach((requestIndex, n) => {
            const one = published[n];
            outcomes[requestIndex] = one === undefined ? backplaneUnavailable(err ?? new Error('short reply from Redis')) : toResult(one);
          });
        });
      }),
    );
    return outcomes;
  }

  /**
   * With REDIS_WAIT_REPLICAS, each event takes the single-event path (the script on its master's
   * own connection, whose WAIT counts it), so none is answered before its replicas hold it. The
   * concurrent publishes share their master's group-commit WAITs; channels run in parallel, a
   * channel's events one after another, in order.
   */
  private async publishEachAcknowledged(requests: readonly PublishRequest[]): Promise<BatchOutcome[]> {
    const outcomes: BatchOutcome[] = new Array(requests.length);
    const byChannel = new Map<string, number[]>();
    requests.forEach((request, i) => {
      const indexes = byChannel.get(request.channel);
      if (indexes === undefined) byChannel.set(request.channel, [i]);
      else indexes.push(i);
    });
    await Promise.all(
      [...byChannel.values()].map(async (indexes) => {
        for (const i of indexes) {
          outcomes[i] = await this.publish(requests[i] as PublishRequest).catch((err: unknown) => err as SwitchboardError); // publish() throws only these
        }
      }),
    );
    return outcomes;
  }

  async readHistory(channel: ChannelName, after: Position | undefined, limit: number): Promise<HistoryRead> {
    try {
      return await runHistoryRead(this.commands, channel, after, limit, this.options.historyTtlSeconds, this.options.logger);
    } catch (err) {
      throw backplaneUnavailable(err);
    }
  }

  async subscribe(channels: readonly ChannelName[]): Promise<void> {
    const confirmations = channels.map((channel) => {
      this.wanted.add(channel);
      if (this.live.has(channel)) return undefined;
      return new Promise<void>((resolve) => {
        const list = this.waiters.get(channel);
        if (list === undefined) this.waiters.set(channel, [resolve]);
        else list.push(resolve);
      });
    });
    this.place(channels);
    try {
      await withTimeout(Promise.all(confirmations), SUBSCRIBE_TIMEOUT_MS, "SSUBSCRIBE on the channels' masters");
    } catch (err) {
      throw backplaneUnavailable(err);
    }
  }

  async unsubscribe(channels: readonly ChannelName[]): Promise<void> {
    const byShard = new Map<ShardSubscriber, ChannelName[]>();
    for (const channel of channels) {
      this.wanted.delete(channel);
      this.live.delete(channel);
      this.broken.delete(channel);
      this.inFlight.delete(channel);
      const shard = this.placement.get(channel);
      this.placement.delete(channel);
      if (shard === undefined) continue;
      shard.channels.delete(channel);
      byShard.set(shard, [...(byShard.get(shard) ?? []), channel]);
    }
    await Promise.all([...byShard].map(([shard, list]) => shard.sunsubscribe(list)));
  }

  onMessage(handler: (message: ChannelMessage) => void): void {
    this.messageHandlers.push(handler);
  }

  onResubscribed(handler: (channels?: readonly ChannelName[]) => void): void {
    this.resubscribedHandlers.push(handler);
  }

  onSubscriberLost(handler: (channels?: readonly ChannelName[]) => void): void {
    this.lostHandlers.push(handler);
  }

  /** False only for a fault of this replica's own: commands unusable, or a shard deaf to it. */
  isReady(): boolean {
    return (
      !this.closed && this.commands.status === 'ready' && this.shards.size > 0 && ![...this.shards.values()].some((shard) => shard.deaf || shard.probe.deaf())
    );
  }

  /** The oldest probe over the shards that are up (a shard down for everyone is not this replica's fault). */
  probeAgeMs(): number {
    const shards = [...this.shards.values()];
    const up = shards.filter((shard) => !shard.publishFailing);
    return Math.max(0, ...(up.length > 0 ? up : shards).map((shard) => shard.probe.ageMs()));
  }

  /** Per master (`host:port`): milliseconds since its probe was last heard. */
  probeAgesMs(): ReadonlyMap<NodeAddress, number> {
    return new Map([...this.shards].map(([address, shard]) => [address, shard.probe.ageMs()]));
  }

  /**
   * Stops timers and closes every subscriber it made, those reconnecting included, once a topology
   * read in flight has ended (it could otherwise still make one). Nothing is placed or made after.
   * The Cluster connection is closed by connect.ts.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.refreshing;
    for (const shard of this.shards.values()) shard.close();
    this.shards.clear();
  }

  /**
   * Reads the topology (from `from`, a master that just dropped channels, or any node), makes a
   * subscriber for each new master, closes those of former masters, and places every channel on
   * its owner. Runs one at a time; a call meanwhile runs once more after it.
   */
  private refresh(from?: ShardSubscriber): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.refreshing !== undefined) {
      this.refreshAgain = from ?? this.refreshAgain ?? 'any';
      return this.refreshing;
    }
    this.refreshing = this.readTopology(from)
      .catch((err: unknown) => this.options.logger.warn({ err }, 'cannot read the cluster topology; keeping the last one'))
      .finally(() => {
        this.refreshing = undefined;
        const again = this.refreshAgain;
        this.refreshAgain = undefined;
        if (again !== undefined && !this.closed) void this.refresh(again === 'any' ? undefined : again);
      });
    return this.refreshing;
  }

  private async readTopology(from: ShardSubscriber | undefined): Promise<void> {
    const reply = from?.ready === true ? await from.clusterSlots() : await this.commands.call('CLUSTER', 'SLOTS');
    if (this.closed) return;
    const topology = SlotMap.fromClusterSlots(reply);
    if (topology.ranges.length === 0) return;
    this.topology = topology;
    const masters = new Set(topology.masters());
    for (const [address, shard] of this.shards) {
      if (masters.has(address)) continue;
      // No longer a master (failed over, or emptied by migrations): its channels move below.
      this.breakChannels([...shard.channels]);
      for (const channel of shard.channels) this.placement.delete(channel);
      shard.close();
      this.shards.delete(address);
    }
    for (const address of masters) this.shardOf(address);
    const moved = this.place([...this.wanted]);
    if (from !== undefined && moved === 0) {
      // Redis dropped channels here, yet none changed owner: subscribe them all again to be sure.
      this.breakChannels([...from.channels]);
      this.place([...from.channels]);
    }
    for (const shard of this.shards.values()) this.subscribeProbe(shard);
  }

  private shardOf(address: NodeAddress): ShardSubscriber {
    let shard = this.shards.get(address);
    if (shard === undefined) {
      shard = new ShardSubscriber(address, this.connections.subscriberTo(parseAddress(address)), this.options.probeIntervalMs, {
        message: (s, channel, payload) => this.receive(s, channel, payload),
        connected: (s) => {
          this.place([...s.channels]);
          this.subscribeProbe(s);
        },
        closed: (s) => {
          this.breakChannels([...s.channels]);
          void this.refresh();
        },
        moved: (s) => void this.refresh(s),
      });
      this.shards.set(address, shard);
      shard.connect();
    }
    return shard;
  }

  /**
   * Puts each wanted channel on its owner's subscriber and SSUBSCRIBEs what is not live there.
   * A live channel whose owner changed is reported lost first. Returns how many changed owner.
   */
  private place(channels: readonly ChannelName[]): number {
    if (this.closed) return 0;
    const moved: ChannelName[] = [];
    const toSubscribe = new Map<ShardSubscriber, ChannelName[]>();
    for (const channel of channels) {
      if (!this.wanted.has(channel)) continue;
      const owner = this.topology.ownerOf(channel);
      if (owner === undefined) continue;
      const shard = this.shardOf(owner);
      const previous = this.placement.get(channel);
      if (previous !== shard) {
        if (previous !== undefined) {
          moved.push(channel);
          previous.channels.delete(channel);
        }
        this.placement.set(channel, shard);
        shard.channels.add(channel);
      }
      const flight = this.inFlight.get(channel);
      const sending = flight !== undefined && flight.shard === shard && flight.generation === shard.generation;
      if (shard.ready && !sending && (!this.live.has(channel) || previous !== shard)) {
        toSubscribe.set(shard, [...(toSubscribe.get(shard) ?? []), channel]);
      }
    }
    this.breakChannels(moved);
    for (const [shard, list] of toSubscribe) this.send(shard, list);
    return moved.length;
  }

  private send(shard: ShardSubscriber, channels: ChannelName[]): void {
    const sent = new Map(channels.map((channel) => [channel, { shard, generation: shard.generation, token: ++this.tokens }]));
    for (const [channel, flight] of sent) this.inFlight.set(channel, flight);
    shard
      .ssubscribe(channels, (group) => this.confirm(group.filter((channel) => this.inFlight.get(channel) === sent.get(channel))))
      .catch((err: unknown) => {
        for (const [channel, flight] of sent) if (this.inFlight.get(channel) === flight) this.inFlight.delete(channel);
        if (this.closed) return;
        this.options.logger.warn({ err, node: shard.address, channels: channels.length }, 'SSUBSCRIBE failed; reading the topology again');
        void this.refresh();
      });
  }

  /** Confirmed by Redis: live from now; those reported lost are reported back (the registry catches them up). */
  private confirm(channels: ChannelName[]): void {
    const back: ChannelName[] = [];
    for (const channel of channels) {
      this.inFlight.delete(channel);
      this.live.add(channel);
      if (this.broken.delete(channel)) back.push(channel);
      for (const resolve of this.waiters.get(channel) ?? []) resolve();
      this.waiters.delete(channel);
    }
    if (back.length === 0) return;
    this.options.logger.info({ channels: back.length }, 'channels resubscribed; catching up from history');
    for (const handler of this.resubscribedHandlers) handler(back);
  }

  /** These channels are unheard from now: report the live ones lost (each once per break). */
  private breakChannels(channels: readonly ChannelName[]): void {
    const lost: ChannelName[] = [];
    for (const channel of channels) {
      this.inFlight.delete(channel);
      if (!this.live.delete(channel)) continue;
      this.broken.add(channel);
      lost.push(channel);
    }
    if (lost.length === 0) return;
    for (const handler of this.lostHandlers) handler(lost);
  }

  private subscribeProbe(shard: ShardSubscriber): void {
    const channel = this.topology.probeChannelOf(this.options.replicaId, shard.address);
    if (channel !== shard.probeChannel) {
      shard.probeChannel = channel;
      shard.probeConfirmed = false;
    }
    if (channel === undefined || shard.probeConfirmed || !shard.ready) return;
    const generation = shard.generation;
    shard
      .ssubscribe([channel], () => {
        if (shard.generation !== generation || shard.probeChannel !== channel) return;
        shard.probeConfirmed = true;
        shard.probe.restart();
      })
      .catch(() => {
        // Reported by the next refresh, which tries again.
      });
  }

  /** Settles once every probe publish is answered: the first round, awaited by start(), opens every master's command connection. */
  private async sendProbes(): Promise<void> {
    const sent: Promise<void>[] = [];
    for (const shard of this.shards.values()) {
      if (shard.probe.deaf() && shard.ready) {
        // Redis keeps taking this shard's probe, yet its subscriber never hears it: rebuild that
        // one connection, which resubscribes its channels and catches them up.
        this.options.logger.warn({ node: shard.address, unheardMs: shard.probe.unheardMs() }, 'shard subscriber stopped hearing its probe; reconnecting');
        shard.probe.forgetUnheard();
        shard.deaf = true;
        this.breakChannels([...shard.channels]);
        shard.reconnect();
      }
      const channel = shard.probeChannel;
      if (channel === undefined) continue;
      const probe = shard.probe.next();
      sent.push(
        this.commands.spublish(channel, String(probe)).then(
          () => {
            shard.publishFailing = false;
            shard.probe.accepted(probe);
          },
          () => {
            shard.publishFailing = true;
          },
        ),
      );
    }
    await Promise.all(sent);
  }

  private receive(shard: ShardSubscriber, channel: string, payload: string): void {
    if (channel === shard.probeChannel) {
      shard.probe.heard(payload);
      shard.deaf = false;
      return;
    }
    if (isProbeChannel(channel)) return; // a former probe of this shard, still in flight
    const message = parseWireMessage(channel as ChannelName, payload);
    if (message === undefined) {
      this.options.logger.warn({ channel }, 'dropped a malformed message from Redis');
      return;
    }
    for (const handler of this.messageHandlers) handler(message);
  }
}

/** Request indexes per slot, in order. */
function groupBySlot(requests: readonly PublishRequest[]): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  requests.forEach((request, index) => {
    const slot = calculateSlot(request.channel);
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [index]);
    else group.push(index);
  });
  return groups;
}
