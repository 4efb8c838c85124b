// A fleet for end-to-end tests: one real redis-server (or a Redis Cluster, or a Sentinel set) and
// N real replica processes sharing its secrets, plus the few calls every e2e test makes (mint a
// token, open a stream, publish).
import type { RedisCluster } from './redis-cluster.js';
import type { RedisSentinelSet } from './redis-sentinel.js';
import { startRedis, type RedisServer, type StartRedisOptions } from './redis-server.js';
import { startReplicas, type Replica, type ReplicaEnv, type TeardownHost } from './replica.js';
import { openSse, type OpenSseOptions, type SseConnection } from './sse-client.js';
import { postJson, type JsonResponse } from './http.js';

export const STREAM_TOKEN_SECRET = 'test-stream-secret-0123456789abcdef';
export const PUBLISH_API_KEY = 'test-publish-key-0123456789abcdef';

/** What the fleet's calls need of a replica: a process (Replica) or one built in this process. */
export interface Endpoint {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly replicaId: string;
}

/** The Redis a fleet runs on, in any of the three modes. */
export type FleetRedis = RedisServer | RedisCluster | RedisSentinelSet;

export interface Fleet<R extends Endpoint = Replica, S extends FleetRedis = RedisServer> {
  redis: S;
  replicas: R[];
  /** A subscriber token for the user (and topics), minted through a replica's API. */
  token(userId: string, opts?: { topics?: string[]; ttlSeconds?: number; via?: Endpoint }): Promise<string>;
  /** Opens GET /stream/:userId on a replica with a fresh token in the query string. */
  stream(replica: Endpoint, userId: string, opts?: { topics?: string[]; query?: string } & OpenSseOptions): Promise<SseConnection>;
  publish(replica: Endpoint, userId: string, data: unknown, body?: { type?: string; id?: string; durable?: boolean }): Promise<JsonResponse>;
}

/** The env every fleet replica shares: the fleet's Redis and secrets, then the test's own `env`. */
export function fleetEnv(redis: FleetRedis, env: ReplicaEnv = {}): ReplicaEnv {
  return {
    ...redisEnv(redis),
    STREAM_TOKEN_SECRET,
    PUBLISH_API_KEY,
    // Most e2e tests post unsigned callbacks; the signing tests set CALLBACK_SECRET.
    ALLOW_UNSIGNED_CALLBACKS: 'true',
    LOG_LEVEL: 'info',
    ...env,
  };
}

export async function startFleet(t: TeardownHost, replicaCount: number, env: ReplicaEnv = {}, redisOptions: StartRedisOptions = {}): Promise<Fleet> {
  const redis = await startRedis(t, redisOptions);
  const replicas = await startReplicas(t, replicaCount, fleetEnv(redis, env));
  return withFleet(redis, replicas);
}

/**
 * How a replica reaches `redis`: REDIS_URL for one server, REDIS_CLUSTER_NODES for a Cluster,
 * REDIS_SENTINELS and REDIS_SENTINEL_NAME for a Sentinel set (and the other modes' variables
 * removed, should the test's own environment carry one: exactly one mode is allowed).
 */
function redisEnv(redis: FleetRedis): ReplicaEnv {
  if ('seeds' in redis) {
    return { REDIS_URL: undefined, REDIS_SENTINELS: undefined, REDIS_CLUSTER_NODES: redis.seeds.join(','), REDIS_PASSWORD: redis.password };
  }
  if ('sentinels' in redis) {
    return {
      REDIS_URL: undefined,
      REDIS_CLUSTER_NODES: undefined,
      REDIS_SENTINELS: redis.sentinels.join(','),
      REDIS_SENTINEL_NAME: redis.name,
      REDIS_PASSWORD: redis.password,
      REDIS_SENTINEL_PASSWORD: redis.sentinelPassword,
    };
  }
  return { REDIS_URL: redis.url };
}

export function withFleet<R extends Endpoint, S extends FleetRedis = RedisServer>(redis: S, replicas: R[]): Fleet<R, S> {
  const fleet: Fleet<R, S> = {
    redis,
    replicas,
    async token(userId, opts = {}) {
      const via = opts.via ?? (replicas[0] as R);
      const answer = await postJson(
        `${via.url}/v1/tokens`,
        { userId, ...(opts.topics ? { topics: opts.topics } : {}), ...(opts.ttlSeconds ? { ttlSeconds: opts.ttlSeconds } : {}) },
        { bearer: PUBLISH_API_KEY },
      );
      if (answer.status !== 201) throw new Error(`token for ${userId}: ${answer.status} ${answer.text}`);
      return answer.json.token as string;
    },
    async stream(replica, userId, opts = {}) {
      const token = await fleet.token(userId, { ...(opts.topics ? { topics: opts.topics } : {}) });
      const topics = opts.topics ? `&topics=${opts.topics.join(',')}` : '';
      return openSse(`${replica.url}/stream/${encodeURIComponent(userId)}?token=${token}${topics}${opts.query ?? ''}`, opts);
    },
    publish(replica, userId, data, body = {}) {
      return postJson(`${replica.url}/v1/users/${encodeURIComponent(userId)}/events`, { data, ...body }, { bearer: PUBLISH_API_KEY });
    },
  };
  return fleet;
}

/** Opened streams only count once the server wrote its first comment (the client's `open`). */
export async function waitOpen(connection: SseConnection, label: string): Promise<SseConnection> {
  if (connection.status !== 200) throw new Error(`${label}: status ${connection.status}: ${connection.body}`);
  await connection.waitFor((c) => c.comments.length > 0, 5000, `${label} open`);
  return connection;
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}
