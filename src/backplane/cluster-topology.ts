import calculateSlot from 'cluster-key-slot';
import { shardProbeChannel, type ChannelName } from './redis-keys.js';

/** A master's address as `host:port`: how shards are told apart. */
export type NodeAddress = string;

export interface SlotRange {
  first: number;
  last: number;
  master: NodeAddress;
}

/** Channels per slot: one SSUBSCRIBE may name channels of one slot only (else CROSSSLOT). */
export function bySlot(channels: Iterable<ChannelName>): Map<number, ChannelName[]> {
  const groups = new Map<number, ChannelName[]>();
  for (const channel of channels) {
    const slot = calculateSlot(channel);
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [channel]);
    else group.push(channel);
  }
  return groups;
}

/** Which master serves each slot, as one node reported it (CLUSTER SLOTS). */
export class SlotMap {
  constructor(readonly ranges: readonly SlotRange[]) {}

  /** Reads a CLUSTER SLOTS reply: [[first, last, [host, port, id, …], …replicas], …]. */
  static fromClusterSlots(reply: unknown): SlotMap {
    if (!Array.isArray(reply)) throw new Error('CLUSTER SLOTS: not an array');
    const ranges: SlotRange[] = [];
    for (const entry of reply as unknown[]) {
      const [first, last, master] = entry as [unknown, unknown, unknown];
      const [host, port] = Array.isArray(master) ? (master as unknown[]) : [];
      if (typeof host !== 'string' || host === '' || port === undefined) continue;
      ranges.push({ first: Number(first), last: Number(last), master: `${host}:${Number(port)}` });
    }
    return new SlotMap(ranges);
  }

  ownerOf(channel: ChannelName): NodeAddress | undefined {
    const slot = calculateSlot(channel);
    return this.ranges.find((range) => slot >= range.first && slot <= range.last)?.master;
  }

  masters(): NodeAddress[] {
    return [...new Set(this.ranges.map((range) => range.master))];
  }

  /**
   * A channel only this replica subscribes whose slot `master` serves: the shard probe channel with
   * the smallest such n (a few tries for a handful of masters).
   */
  probeChannelOf(replicaId: string, master: NodeAddress): ChannelName | undefined {
    for (let n = 0; n < 100_000; n++) {
      const channel = shardProbeChannel(replicaId, n);
      if (this.ownerOf(channel) === master) return channel;
    }
    return undefined;
  }
}

export const parseAddress = (address: NodeAddress): { host: string; port: number } => {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
};
