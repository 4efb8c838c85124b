import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** A command that Redis has not answered by then fails (as a 503), never hangs the request. */
const COMMAND_TIMEOUT_MS = 1000;
/** Reconnect attempts back off to this and no further: a replica should hear again quickly. */
const MAX_RECONNECT_DELAY_MS = 1000;

const retryStrategy = (attempt: number): number => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS);

export interface RedisConnections {
  /** Publishes, scripts, jobs. No offline queue: while Redis is away, commands fail at once. */
  commands: Redis;
  /** The replica's one subscriber. */
  subscriber: Redis;
}

/**
 * The only two Redis connections a replica makes, however many streams it holds. Named, so
 * `CLIENT LIST` shows which replica each belongs to. Both connect lazily; RedisBackplane.start()
 * connects them and waits until they are ready.
 */
export function createRedisConnections(url: string, replicaId: string, logger: Logger): RedisConnections {
  const commands = new Redis(url, {
    lazyConnect: true,
    retryStrategy,
    connectionName: `switchboard:cmd:${replicaId}`,
    // Commands issued in the same tick (many publishes under load) go out in one write.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
  });
  const subscriber = new Redis(url, {
    lazyConnect: true,
    retryStrategy,
    connectionName: `switchboard:sub:${replicaId}`,
    // RedisBackplane resubscribes itself, so it knows when every channel is back.
    autoResubscribe: false,
    // Subscribe commands wait for the connection rather than fail: they are replayed anyway.
    maxRetriesPerRequest: null,
  });
  for (const [role, connection] of [['commands', commands], ['subscriber', subscriber]] as const) {
    connection.on('error', (err: Error) => logger.warn({ err, role }, 'redis connection error'));
  }
  return { commands, subscriber };
}
