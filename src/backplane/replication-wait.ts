import type { Redis } from 'ioredis';

/**
 * How long one WAIT may block for the replicas' acknowledgement. A healthy replica acknowledges
 * in about a round trip; past this, the publishes it covers are answered 503 (not yet durable).
 */
export const REPLICATION_WAIT_TIMEOUT_MS = 250;

/**
 * Group commit for REDIS_WAIT_REPLICAS: one `WAIT` for every publish whose write Redis has
 * answered since the last one was sent, instead of one per publish (measured: 10.5k/s per publish
 * against 29.6k/s grouped, on this kind of machine; see docs). WAIT counts this connection's
 * writes up to the moment Redis runs it, and commands on one connection run in order, so a WAIT
 * sent after a write's reply covers that write.
 */
export class ReplicationWait {
  private batch: Promise<boolean> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly replicas: number,
  ) {}

  /** Resolves true once `replicas` replicas hold every write answered on this connection so far. */
  acknowledged(): Promise<boolean> {
    this.batch ??= new Promise<boolean>((resolve) => {
      // The next turn of the event loop: every reply that has arrived by then joins this WAIT.
      setImmediate(() => {
        this.batch = undefined;
        this.redis.wait(this.replicas, REPLICATION_WAIT_TIMEOUT_MS).then(
          (acked) => resolve(acked >= this.replicas),
          () => resolve(false),
        );
      });
    });
    return this.batch;
  }
}
