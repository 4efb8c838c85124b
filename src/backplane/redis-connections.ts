import { readFileSync } from 'node:fs';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { HostPort, RedisSettings } from '../config.js';

/** A command that Redis has not answered by then fails (as a 503), never hangs the request. */
const COMMAND_TIMEOUT_MS = 1000;
/** Reconnect attempts back off to this and no further: a replica should hear again quickly. */
const MAX_RECONNECT_DELAY_MS = 1000;

const retryStrategy = (attempt: number): number => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS);

/**
 * A `READONLY` reply means the node this connection reached is a replica now (a master demoted by
 * a Sentinel failover): reconnect, which asks the sentinels for the master again. The command that
 * got it fails (as a 503, or retried by the caller); Redis ran none of its writes.
 */
const reconnectOnReadonly = (err: Error): 1 | false => (err.message.startsWith('READONLY') ? 1 : false);

export interface RedisConnections {
  /** Publishes, scripts, jobs. No offline queue: while Redis is away, commands fail at once. */
  commands: Redis;
  /** The replica's one subscriber. */
  subscriber: Redis;
}

/**
 * The only two Redis connections a replica makes, however many streams it holds. Named, so
 * `CLIENT LIST` shows which replica each belongs to. Both connect lazily; RedisBackplane.start()
 * connects them and waits until they are ready. Behind Sentinel, both follow the master: ioredis
 * asks the sentinels where it is on every connect; a dead master drops the connections, and a
 * demoted one answers READONLY, and either way they reconnect to the one the sentinels name.
 */
export function createRedisConnections(settings: RedisSettings, replicaId: string, logger: Logger): RedisConnections {
  if (settings.mode === 'cluster') throw new Error('Redis Cluster has no single subscriber: use createClusterConnections');
  const target = targetOptions(settings);
  const commands = connection(settings, target, {
    lazyConnect: true,
    retryStrategy,
    connectionName: `switchboard:cmd:${replicaId}`,
    // No auto-pipelining: ioredis sends one auto-pipeline per connection at a time, so a loop
    // turn's commands wait in a Pipeline for the previous one's replies, and those Pipelines were
    // most of what a publish promoted to the old space (3.9 KB per publish with it, 0.8 without).
    // Off, each command is one write, and the publishing replica spent ~19% less CPU per event at
    // 1,500/s and less at 3,000/s too (docs/BENCHMARKS.md).
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
    reconnectOnError: reconnectOnReadonly,
  });
  const subscriber = connection(settings, target, {
    lazyConnect: true,
    retryStrategy,
    connectionName: `switchboard:sub:${replicaId}`,
    // RedisBackplane resubscribes itself, so it knows when every channel is back.
    autoResubscribe: false,
    // Subscribe commands wait for the connection rather than fail: they are replayed anyway.
    maxRetriesPerRequest: null,
    reconnectOnError: reconnectOnReadonly,
  });
  for (const [role, redis] of [
    ['commands', commands],
    ['subscriber', subscriber],
  ] as const) {
    redis.on('error', (err: Error) => logger.warn({ err, role }, 'redis connection error'));
  }
  return { commands, subscriber };
}

type ClusterSettings = Extract<RedisSettings, { mode: 'cluster' }>;

export interface ClusterConnections {
  /** Publishes, history reads, jobs and probes, each routed to its slot's master. No offline queue. */
  commands: Cluster;
  /** A new subscriber connection to one master: cluster-backplane.ts keeps one per master. */
  subscriberTo(node: HostPort): Redis;
}

/**
 * Redis Cluster: one ioredis `Cluster` for commands, and plain subscriber connections made per
 * master on demand. Not ioredis' own `shardedSubscribers`: it never says which channels a
 * resubscribe confirmed, so a replica could not catch up exactly the channels that had a gap.
 */
export function createClusterConnections(settings: ClusterSettings, replicaId: string, logger: Logger): ClusterConnections {
  const auth = targetOptions(settings);
  const commands = new Cluster(
    settings.nodes.map(({ host, port }) => ({ host, port })),
    {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Auto-pipelining stays on here, unlike for one server: a pipeline that meets MOVED is sent
      // again once the slot map is refreshed, while a lone command is redirected at once to the
      // new master's connection, which may not be open yet: the first publish after a failover
      // then failed (test/serial/cluster-topology.test.ts, 2 runs of 3 without it).
      enableAutoPipelining: true,
      // No `slotsRefreshInterval`: ClusterBackplane asks for a refresh every second itself. ioredis'
      // own timer re-arms itself when a disconnect() lands while one of its refreshes is in flight,
      // then runs every interval for good and the process never exits (seen as a test file that
      // passed and then hung until tap's timeout).
      // A command whose connection closed is NOT re-sent: its script may already have run, and a
      // publish without an idempotency key would then be stored twice. It fails (503) instead;
      // the sender retries, with its id. MOVED, ASK, TRYAGAIN and CLUSTERDOWN ran nothing and
      // are still followed.
      retryDelayOnFailover: 0,
      clusterRetryStrategy: retryStrategy,
      redisOptions: {
        ...auth,
        connectionName: `switchboard:cmd:${replicaId}`,
        maxRetriesPerRequest: 1,
        commandTimeout: COMMAND_TIMEOUT_MS,
      },
    },
  );
  commands.on('error', (err: Error) => logger.warn({ err, role: 'commands' }, 'redis cluster error'));
  const subscriberTo = ({ host, port }: HostPort): Redis => {
    const subscriber = new Redis({
      ...auth,
      host,
      port,
      lazyConnect: true,
      retryStrategy,
      connectionName: `switchboard:sub:${replicaId}`,
      // ClusterBackplane resubscribes itself, so it knows when every channel is back.
      autoResubscribe: false,
      // Nothing waits for a connection: every channel is subscribed again on 'ready'.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    });
    subscriber.on('error', (err: Error) => logger.warn({ err, role: 'subscriber', node: `${host}:${port}` }, 'redis connection error'));
    return subscriber;
  };
  return { commands, subscriberTo };
}

function connection(settings: RedisSettings, target: RedisOptions, options: RedisOptions): Redis {
  return settings.mode === 'standalone' ? new Redis(settings.url, { ...target, ...options }) : new Redis({ ...target, ...options });
}

/** Where and how to connect, from the settings: the part both connections share. */
function targetOptions(settings: RedisSettings): RedisOptions {
  const tls = settings.tls === undefined ? undefined : { ...(settings.tls.caFile === undefined ? {} : { ca: readCa(settings.tls.caFile) }) };
  const auth = {
    ...(settings.username === undefined ? {} : { username: settings.username }),
    ...(settings.password === undefined ? {} : { password: settings.password }),
    ...(tls === undefined ? {} : { tls }),
  };
  if (settings.mode !== 'sentinel') return auth;
  return {
    ...auth,
    sentinels: settings.sentinels.map(({ host, port }) => ({ host, port })),
    name: settings.name,
    ...(settings.sentinelPassword === undefined ? {} : { sentinelPassword: settings.sentinelPassword }),
    ...(tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: tls }),
    // Off on purpose: with ioredis' failover detector on, in about one kill -9 failover in three
    // the command connection stayed unconnected for over 15 s (test/e2e/sentinel-failover.test.ts:
    // 3 of 3 failures with it, 0 of 9 runs without). A dead master drops the connection anyway,
    // and a demoted one answers READONLY, which reconnects (above).
    failoverDetector: false,
    sentinelRetryStrategy: retryStrategy,
  };
}

function readCa(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read REDIS_TLS_CA_FILE (${path}): ${(err as Error).message}`, { cause: err });
  }
}
