import type { Redis } from 'ioredis';
import { bySlot, type NodeAddress } from './cluster-topology.js';
import { ProbeTracker } from './probe-tracker.js';
import type { ChannelName } from './redis-keys.js';

export interface ShardEvents {
  message(shard: ShardSubscriber, channel: string, payload: string): void;
  /** The connection is (re)connected: its channels must be subscribed again. */
  connected(shard: ShardSubscriber): void;
  /** The connection closed: every channel it held is unheard from now. */
  closed(shard: ShardSubscriber): void;
  /** Redis dropped channels of this connection on its own (failover, slot migration: unsolicited SUNSUBSCRIBE, or MOVED). */
  moved(shard: ShardSubscriber): void;
}

/**
 * The subscriber connection to one Cluster master, with the channels placed on it and its probe.
 * It only carries commands and events; ClusterBackplane decides what is subscribed where.
 */
export class ShardSubscriber {
  /** Channels whose slot this master serves, as ClusterBackplane last placed them. */
  readonly channels = new Set<ChannelName>();
  readonly probe: ProbeTracker;
  /** This shard's probe channel (in a slot the master serves), once known. */
  probeChannel: ChannelName | undefined;
  probeConfirmed = false;
  /** The probe was taken by Redis but not heard for too long; cleared when it is heard again. */
  deaf = false;
  /** The latest probe publish failed: the shard is down for everyone, not deaf to this replica. */
  publishFailing = false;
  /** Counts connection breaks: a confirmation sent before a break confirms nothing. */
  generation = 0;
  private closing = false;

  constructor(
    readonly address: NodeAddress,
    private readonly redis: Redis,
    probeIntervalMs: number,
    events: ShardEvents,
  ) {
    this.probe = new ProbeTracker(probeIntervalMs);
    // Once closed, nothing is reported: a reconnect in flight at close() can still reach 'ready'
    // (ioredis finishes a handshake already answered), and ClusterBackplane must not place
    // channels, or make subscribers, for a connection that is going away.
    redis.on('smessage', (channel: string, payload: string) => {
      if (!this.closing) events.message(this, channel, payload);
    });
    redis.on('ready', () => {
      if (!this.closing) events.connected(this);
    });
    redis.on('close', () => {
      this.generation++;
      this.probeConfirmed = false;
      if (!this.closing) events.closed(this);
    });
    redis.on('moved', () => {
      if (!this.closing) events.moved(this);
    });
  }

  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  /** Connects; failures are retried by ioredis and reported through 'error' and 'close'. */
  connect(): void {
    this.redis.connect().catch(() => {});
  }

  /** SSUBSCRIBE, one command per slot (several slots in one fail CROSSSLOT). Resolves with each slot's channels as Redis confirms them. */
  ssubscribe(channels: Iterable<ChannelName>, confirmed: (channels: ChannelName[]) => void): Promise<void> {
    const pending = [...bySlot(channels).values()].map((group) => this.redis.ssubscribe(...group).then(() => confirmed(group)));
    return Promise.all(pending).then(() => undefined);
  }

  async sunsubscribe(channels: Iterable<ChannelName>): Promise<void> {
    if (!this.ready) return;
    await Promise.all([...bySlot(channels).values()].map((group) => this.redis.sunsubscribe(...group)));
  }

  /** CLUSTER SLOTS as this master sees it: right after it dropped channels, it knows who has them now. */
  clusterSlots(): Promise<unknown> {
    return this.redis.call('CLUSTER', 'SLOTS');
  }

  /** Drops the connection and connects again (a deaf subscriber). */
  reconnect(): void {
    this.redis.disconnect(true);
  }

  /** Ends the connection for good, a reconnect in flight included (ioredis cancels its retry timer). */
  close(): void {
    this.closing = true;
    this.redis.disconnect();
  }
}
