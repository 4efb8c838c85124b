import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Backplane } from './backplane/backplane.js';
import { MemoryBackplane } from './backplane/memory-backplane.js';
import { ClusterBackplane } from './backplane/cluster-backplane.js';
import { RedisBackplane } from './backplane/redis-backplane.js';
import { createClusterConnections, createRedisConnections } from './backplane/redis-connections.js';
import type { Config } from './config.js';
import type { JobStore } from './jobs/job-store.js';
import { MemoryJobStore } from './jobs/memory-job-store.js';
import { RedisJobStore } from './jobs/redis-job-store.js';

/** The parts that hold the replica's state outside the process, and the one way to close them. */
export interface ReplicaParts {
  backplane: Backplane;
  jobs: JobStore;
  /** The command connection, for the fleet's presence (src/fleet/); undefined without Redis. */
  redis: Redis | Cluster | undefined;
  /** Closes the job store and the backplane, then the Redis connections made here. */
  close(): Promise<void>;
}

/**
 * The backplane and job registry the config asks for: Redis when it is configured (connected and
 * subscribed before this resolves; rejects if Redis cannot be reached), else the in-process pair.
 * The Redis connections are made here, so they are closed here too.
 */
export async function connectParts(config: Config, logger: Logger): Promise<ReplicaParts> {
  const history = { historyMaxLen: config.historyMaxLen, historyTtlSeconds: config.historyTtlSeconds };
  if (config.redis === undefined) return memoryParts(history);
  if (config.redis.mode === 'cluster') {
    const cluster = createClusterConnections(config.redis, config.replicaId, logger);
    const backplane = new ClusterBackplane(cluster, {
      ...history,
      replicaId: config.replicaId,
      probeIntervalMs: config.probeIntervalMs,
      waitReplicas: config.redis.waitReplicas,
      logger,
    });
    logger.info({ mode: 'cluster' }, 'connecting to Redis');
    await backplane.start();
    return withClose(backplane, new RedisJobStore(cluster.commands), cluster.commands, async () => {
      await cluster.commands.quit().catch(() => {});
      cluster.commands.disconnect();
    });
  }
  const connections = createRedisConnections(config.redis, config.replicaId, logger);
  const backplane = new RedisBackplane(connections, {
    ...history,
    replicaId: config.replicaId,
    probeIntervalMs: config.probeIntervalMs,
    waitReplicas: config.redis.waitReplicas,
    logger,
  });
  const jobs = new RedisJobStore(connections.commands);
  logger.info({ mode: config.redis.mode }, 'connecting to Redis');
  await backplane.start();
  return withClose(backplane, jobs, connections.commands, async () => {
    await Promise.allSettled([connections.commands.quit(), connections.subscriber.quit()]);
    connections.commands.disconnect();
    connections.subscriber.disconnect();
  });
}

/** The in-process pair: one replica, nothing outside it. */
export function memoryParts(history: { historyMaxLen: number; historyTtlSeconds: number }): ReplicaParts {
  return withClose(new MemoryBackplane(history), new MemoryJobStore(), undefined, async () => {});
}

/** The parts, closed in order: the job store, the backplane, then what they were built on. */
function withClose(backplane: Backplane, jobs: JobStore, redis: Redis | Cluster | undefined, closeUnderlying: () => Promise<void>): ReplicaParts {
  return {
    backplane,
    jobs,
    redis,
    async close() {
      jobs.close();
      await backplane.close();
      await closeUnderlying();
    },
  };
}
