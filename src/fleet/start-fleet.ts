import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Backplane } from '../backplane/backplane.js';
import type { Config } from '../config.js';
import type { Lifecycle } from '../context.js';
import type { StreamRegistry } from '../sse/stream-registry.js';
import { type Fleet, type LocalReplica, MemoryFleet, type ReplicaState } from './fleet.js';
import { Rebalancer } from './rebalancer.js';
import { heartbeatMsFor, RedisFleet } from './redis-fleet.js';

/**
 * The replica's place in the fleet: RedisFleet when Redis is configured, else MemoryFleet, and the
 * rebalancer when REBALANCE=true. `close` leaves the fleet (call it once the streams have ended).
 */
export function startFleet(
  config: Config,
  parts: { redis: Redis | Cluster | undefined; backplane: Backplane; registry: StreamRegistry; lifecycle: Lifecycle },
  logger: Logger,
): { fleet: Fleet; close(): Promise<void> } {
  const { registry, lifecycle, backplane } = parts;
  const state = (): ReplicaState => (lifecycle.draining ? 'draining' : backplane.isReady() ? 'ready' : 'unready');
  const local: LocalReplica = {
    replicaId: config.replicaId,
    streamCount: () => registry.streamCount,
    state,
    streamsOn: (channel) => registry.streamsOn(channel),
    channelStreams: () => registry.channelStreams(),
  };
  let fleet: Fleet;
  if (parts.redis === undefined) fleet = new MemoryFleet(local, config.maxConnectionsPerUser);
  else {
    const redisFleet = new RedisFleet(parts.redis, local, { presenceTtlMs: config.presenceTtlMs, maxStreamsPerUser: config.maxConnectionsPerUser }, logger);
    // A subscriber that came back means Redis itself may have changed under it (a failover, on one
    // Cluster shard or behind Sentinel; a restart): the presence counts there are written again.
    backplane.onResubscribed((channels) => redisFleet.rewrite(channels));
    fleet = redisFleet;
  }
  const rebalancer = config.rebalance
    ? new Rebalancer(
        fleet,
        { streamCount: () => registry.streamCount, state, oldest: (count) => registry.oldest(count) },
        {
          tolerance: config.rebalanceTolerance,
          ratePerSecond: config.rebalanceRate,
          retryMs: config.retryMs,
          drainMs: config.drainMs,
          settleMs: config.rebalanceSettleMs,
          heartbeatMs: heartbeatMsFor(config.presenceTtlMs),
        },
        logger,
      )
    : undefined;
  return {
    fleet,
    async close() {
      rebalancer?.close();
      await fleet.close();
    },
  };
}
