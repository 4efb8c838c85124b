import type { Cluster, Redis } from 'ioredis';
import { backplaneUnavailable } from '../errors.js';
import { jobCallbacksKey, jobKey } from '../backplane/redis-keys.js';
import { INITIAL_JOB_STATUS, keptCallback, MAX_CALLBACKS_KEPT, type CallbackRecord, type Job, type JobStore, type NewJob } from './job-store.js';

/**
 * Jobs in Redis: a hash per job and a capped list of its callbacks, both expiring with the job,
 * so any replica can resolve a correlation id. Uses the replica's command connection (no offline
 * queue, short timeout): every failure is a 503, never a hang.
 *
 * Reads are a pipeline, never MULTI: at `maxmemory` (noeviction) Redis refuses every command
 * queued in a MULTI, reads included (EXECABORT), while plain reads still answer. A job must stay
 * readable then (GET /v1/jobs/:id, the callback's 404 check); only writes answer 503.
 */
export class RedisJobStore implements JobStore {
  /** On a Cluster, a job's two keys share the hash tag `{correlationId}`: each MULTI and pipeline stays in one slot. */
  constructor(private readonly redis: Redis | Cluster) {}

  async create(job: NewJob): Promise<Job> {
    const now = Date.now();
    const expiresAtMs = now + job.ttlSeconds * 1000;
    const stored: Job = {
      correlationId: job.correlationId,
      userId: job.userId,
      status: INITIAL_JOB_STATUS,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(expiresAtMs).toISOString(),
      ...(job.metadata === undefined ? {} : { metadata: job.metadata }),
      callbacks: [],
    };
    const fields: Record<string, string> = {
      userId: stored.userId,
      status: stored.status,
      createdAt: stored.createdAt,
      expiresAt: stored.expiresAt,
    };
    if (job.metadata !== undefined) fields.metadata = JSON.stringify(job.metadata);
    await this.replies(this.redis.multi().hset(jobKey(job.correlationId), fields).pexpireat(jobKey(job.correlationId), expiresAtMs).exec());
    return stored;
  }

  async get(correlationId: string): Promise<Job | undefined> {
    // Not atomic, and need not be: a callback recorded between the two reads shows in the next.
    const results = await this.replies(
      this.redis
        .pipeline()
        .hgetall(jobKey(correlationId))
        .lrange(jobCallbacksKey(correlationId), 0, MAX_CALLBACKS_KEPT - 1)
        .exec(),
    );
    const hash = results[0] as Record<string, string>;
    const callbacks = results[1] as string[];
    if (hash.userId === undefined || hash.expiresAt === undefined) return undefined;
    return {
      correlationId,
      userId: hash.userId,
      status: hash.status ?? INITIAL_JOB_STATUS,
      createdAt: hash.createdAt ?? hash.expiresAt,
      expiresAt: hash.expiresAt,
      ...(hash.metadata === undefined ? {} : { metadata: JSON.parse(hash.metadata) as Record<string, unknown> }),
      callbacks: callbacks.map((entry) => JSON.parse(entry) as CallbackRecord),
    };
  }

  async recordCallback(correlationId: string, callback: CallbackRecord, status: string): Promise<boolean> {
    const key = jobKey(correlationId);
    const list = jobCallbacksKey(correlationId);
    const expiresAt = await this.command(this.redis.hget(key, 'expiresAt'));
    if (expiresAt === null) return false;
    const expiresAtMs = Date.parse(expiresAt);
    await this.replies(
      this.redis
        .multi()
        .hset(key, 'status', status)
        // Again on the hash: had it expired since the HGET, HSET made a new one without a TTL.
        .pexpireat(key, expiresAtMs)
        .lpush(list, JSON.stringify(keptCallback(callback)))
        .ltrim(list, 0, MAX_CALLBACKS_KEPT - 1)
        .pexpireat(list, expiresAtMs)
        .exec(),
    );
    return true;
  }

  close(): void {
    // No timers of its own; the connection belongs to connect.ts, which closes it.
  }

  /** Any failure (down, timeout, error reply) is a 503. */
  private async command<T>(pending: Promise<T>): Promise<T> {
    try {
      return await pending;
    } catch (err) {
      throw backplaneUnavailable(err);
    }
  }

  /** A pipeline's or MULTI/EXEC's replies, or a 503 if it or any command in it failed. */
  private async replies(pending: Promise<[Error | null, unknown][] | null>): Promise<unknown[]> {
    const results = await this.command(pending);
    if (results === null) throw backplaneUnavailable(new Error('transaction aborted'));
    const failed = results.find(([err]) => err !== null);
    if (failed !== undefined) throw backplaneUnavailable(failed[0]);
    return results.map(([, value]) => value);
  }
}
