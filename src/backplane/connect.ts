import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { JobStore } from '../jobs/job-store.js';
import { MemoryJobStore } from '../jobs/memory-job-store.js';
import { RedisJobStore } from '../jobs/redis-job-store.js';
import type { Backplane } from './backplane.js';
import { MemoryBackplane } from './memory-backplane.js';
import { RedisBackplane } from './redis-backplane.js';
import { createRedisConnections } from './redis-connections.js';

export interface ConnectedBackplane {
  backplane: Backplane;
  jobs: JobStore;
  closeJobs?: () => void;
}

/**
 * The backplane and job registry the config asks for: Redis when REDIS_URL is set (connected and
 * subscribed before this resolves; rejects if Redis cannot be reached), else the in-process pair.
 */
export async function connectBackplane(config: Config, logger: Logger): Promise<ConnectedBackplane> {
  const history = { historyMaxLen: config.historyMaxLen, historyTtlSeconds: config.historyTtlSeconds };
  if (config.redisUrl === undefined) {
    const jobs = new MemoryJobStore();
    return { backplane: new MemoryBackplane(history), jobs, closeJobs: () => jobs.close() };
  }
  const connections = createRedisConnections(config.redisUrl, config.replicaId, logger);
  const backplane = new RedisBackplane(connections, { ...history, replicaId: config.replicaId, probeIntervalMs: config.probeIntervalMs, logger });
  logger.info('connecting to Redis');
  await backplane.start();
  return { backplane, jobs: new RedisJobStore(connections.commands) };
}
