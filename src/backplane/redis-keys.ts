/**
 * Every Redis key and pub/sub channel name is built here and nowhere else.
 *
 * A channel's history, meta and idempotency keys share its hash tag (`{u:alice}`), so the one
 * publish script touches a single slot and runs unchanged on Redis Cluster. User ids and topics
 * cannot contain `{` or `}` (see identifiers.ts), so a tag can never be broken out of.
 */
export type ChannelName = string & { readonly __brand: 'ChannelName' };

export interface ChannelKeys {
  /** Redis Stream of the channel's recent events. */
  history: string;
  /** Hash: the history's `epoch` and the `last` position appended. */
  meta: string;
  idempotencyPrefix: string;
  /** Hash: instance → streams it holds on the channel (the fleet's presence, src/fleet/). */
  presence: string;
}

const PREFIX = 'sb:';

export const userChannel = (userId: string): ChannelName => `${PREFIX}{u:${userId}}:ch` as ChannelName;
export const topicChannel = (topic: string): ChannelName => `${PREFIX}{t:${topic}}:ch` as ChannelName;

export function channelKeys(channel: ChannelName): ChannelKeys {
  const base = channel.slice(0, -':ch'.length);
  return { history: `${base}:hist`, meta: `${base}:meta`, idempotencyPrefix: `${base}:idem:`, presence: `${base}:presence` };
}

export const jobKey = (correlationId: string): string => `${PREFIX}job:{${correlationId}}`;
export const jobCallbacksKey = (correlationId: string): string => `${PREFIX}job:{${correlationId}}:callbacks`;
export const probeChannel = (replicaId: string): ChannelName => `${PREFIX}probe:{${replicaId}}` as ChannelName;
/** A probe channel for one Redis Cluster shard: cluster-topology.ts picks `n` so its slot is that shard's. */
export const shardProbeChannel = (replicaId: string, n: number): ChannelName => `${PREFIX}probe:{${replicaId}:${n}}` as ChannelName;
export const isProbeChannel = (channel: string): boolean => channel.startsWith(`${PREFIX}probe:`);
export const isTopicChannel = (channel: ChannelName): boolean => channel.startsWith(`${PREFIX}{t:`);

/**
 * The fleet's own keys (src/fleet/) share one hash tag, so a heartbeat's reads and writes touch
 * one slot on Redis Cluster: a key per live instance (expiring unless its heartbeat renews it), the
 * index of instances, and the instances known dead (their presence fields are pruned).
 */
export const fleetInstanceKey = (instance: string): string => `${PREFIX}{fleet}:instance:${instance}`;
export const fleetIndexKey = `${PREFIX}{fleet}:instances`;
export const fleetDeadKey = `${PREFIX}{fleet}:dead`;
