import type { Logger } from 'pino';
import type { SseStream } from '../sse/sse-stream.js';
import type { Fleet, ReplicaState } from './fleet.js';

/** How often the rebalancer looks at the fleet; it sheds at most REBALANCE_RATE streams each time. */
const TICK_MS = 1000;

export interface RebalancerOptions {
  /** ε: shedding starts above (1 + ε) × the fleet mean. */
  tolerance: number;
  /** Streams ended per second at most. */
  ratePerSecond: number;
  /** RETRY_MS: each shed stream is told to come back after a jittered share of it. */
  retryMs: number;
}

export interface RebalancedReplica {
  streamCount(): number;
  state(): ReplicaState;
  /** Up to `count` streams to end, the longest open first. */
  oldest(count: number): SseStream[];
}

/**
 * REBALANCE=true: long-lived streams do not move by themselves, so after a scale-out the new
 * replicas would sit nearly empty. A replica holding more than (1 + ε) × the fleet mean ends
 * streams, at most REBALANCE_RATE a second, each with a jittered `retry:` (as a drain does); the
 * client reconnects through the load balancer, most likely elsewhere, and resumes from its last
 * id without a gap. It sheds down to the mean and never below, and does nothing while any replica
 * (itself included) is draining or unready, or while its view of the fleet is out of date.
 *
 * The mean comes from one heartbeat's snapshot of every replica's count (its own included as it
 * published it), so streams in flight between replicas are counted once, where they were.
 */
export class Rebalancer {
  private shedding = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly fleet: Pick<Fleet, 'replicas'>,
    private readonly replica: RebalancedReplica,
    private readonly options: RebalancerOptions,
    private readonly logger: Logger,
  ) {
    this.timer = setInterval(() => this.tick(), TICK_MS).unref();
  }

  /** One look at the fleet; returns how many streams it ended. */
  tick(): number {
    const replicas = this.fleet.replicas();
    if (replicas === undefined || replicas.length < 2 || this.replica.state() !== 'ready' || replicas.some((r) => r.state !== 'ready')) {
      this.shedding = false;
      return 0;
    }
    const mean = replicas.reduce((sum, r) => sum + r.streams, 0) / replicas.length;
    const mine = this.replica.streamCount();
    if (!this.shedding && mine > (1 + this.options.tolerance) * mean) this.shedding = true;
    const excess = mine - Math.ceil(mean);
    if (!this.shedding || excess <= 0) {
      this.shedding = false;
      return 0;
    }
    const streams = this.replica.oldest(Math.min(excess, this.options.ratePerSecond));
    const retryMs = this.options.retryMs;
    for (const stream of streams) stream.end('rebalanced', Math.round(retryMs / 2 + Math.random() * retryMs));
    this.logger.info(
      { shed: streams.length, streams: mine, fleetMean: Math.round(mean), replicas: replicas.length },
      'rebalancing: ended streams to move elsewhere',
    );
    return streams.length;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
