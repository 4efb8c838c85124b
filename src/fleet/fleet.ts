import { randomBytes } from 'node:crypto';
import { type ChannelName, topicChannel, userChannel } from '../backplane/redis-keys.js';

/** What a replica tells the fleet about itself with every heartbeat. */
export type ReplicaState = 'ready' | 'unready' | 'draining';

/** One live replica process as the fleet last saw it. */
export interface ReplicaStatus {
  /** One process: the replica id plus a random suffix, so a restart under the same id is a new instance. */
  instance: string;
  replicaId: string;
  streams: number;
  state: ReplicaState;
  /**
   * When `streams` was counted, by that replica's clock (every replica counts at the same
   * instants); undefined from a replica that does not say (an older version).
   */
  countedAtMs: number | undefined;
  /** This replica's own entry, as it last wrote it. */
  self: boolean;
}

export interface UserPresence {
  /** The user's open streams across the fleet. */
  streams: number;
  /** Per replica id, the replicas holding at least one of them. */
  replicas: Record<string, number>;
}

/** What the fleet needs to know of its own replica, read when it is needed. */
export interface LocalReplica {
  readonly replicaId: string;
  streamCount(): number;
  state(): ReplicaState;
  /** Streams on one channel of this replica. */
  streamsOn(channel: ChannelName): number;
  /** Every channel of this replica with its streams (topics are picked out of them). */
  channelStreams(): Iterable<[ChannelName, number]>;
}

/**
 * The fleet's view of itself: the per-user cap, presence, and the replicas' stream counts. One
 * replica alone (no Redis) is its own fleet (MemoryFleet); with Redis, RedisFleet.
 */
export interface Fleet {
  /**
   * Takes one of the user's stream slots (MAX_CONNECTIONS_PER_USER, across the fleet with Redis);
   * false when the user holds them all. The caller must `release` every slot it took, once.
   */
  reserve(userId: string): Promise<boolean>;
  release(userId: string): void;
  /** Rejects when Redis cannot be read. */
  userPresence(userId: string): Promise<UserPresence>;
  topicPresence(topic: string): Promise<number>;
  /** Every live replica and its streams, as last seen; undefined while that view is out of date. */
  replicas(): readonly ReplicaStatus[] | undefined;
  /** Tells the fleet this replica's state now, not at the next heartbeat (a drain began). */
  announce(): void;
  /** Leaves the fleet: this replica stops counting anywhere. */
  close(): Promise<void>;
}

export function newInstanceId(replicaId: string): string {
  return `${replicaId}#${randomBytes(4).toString('hex')}`;
}

/** The replica id inside an instance id. */
export function replicaOf(instance: string): string {
  const hash = instance.lastIndexOf('#');
  return hash < 0 ? instance : instance.slice(0, hash);
}

/** One replica without Redis: presence is its own streams, the cap its own count. */
export class MemoryFleet implements Fleet {
  private readonly leases = new Map<string, number>();
  private readonly instance: string;

  constructor(
    private readonly local: LocalReplica,
    private readonly limit: number,
  ) {
    this.instance = newInstanceId(local.replicaId);
  }

  async reserve(userId: string): Promise<boolean> {
    const held = this.leases.get(userId) ?? 0;
    if (held >= this.limit) return false;
    this.leases.set(userId, held + 1);
    return true;
  }

  release(userId: string): void {
    const left = (this.leases.get(userId) ?? 0) - 1;
    if (left > 0) this.leases.set(userId, left);
    else this.leases.delete(userId);
  }

  async userPresence(userId: string): Promise<UserPresence> {
    const streams = this.local.streamsOn(userChannel(userId));
    return { streams, replicas: streams > 0 ? { [this.local.replicaId]: streams } : {} };
  }

  async topicPresence(topic: string): Promise<number> {
    return this.local.streamsOn(topicChannel(topic));
  }

  replicas(): readonly ReplicaStatus[] {
    return [
      {
        instance: this.instance,
        replicaId: this.local.replicaId,
        streams: this.local.streamCount(),
        state: this.local.state(),
        countedAtMs: Date.now(),
        self: true,
      },
    ];
  }

  announce(): void {}

  async close(): Promise<void> {}
}
