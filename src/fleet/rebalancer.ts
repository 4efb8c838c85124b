import type { Logger } from 'pino';
import type { SseStream } from '../sse/sse-stream.js';
import type { Fleet, ReplicaState } from './fleet.js';

/** How often the rebalancer looks at the fleet; it sheds at most REBALANCE_RATE streams each time. */
const TICK_MS = 1000;
/**
 * The fleet's total is taken as the largest seen within this window. A stream told to move is on
 * no replica until it reconnects (seconds, on a busy fleet): counted from the live counts alone,
 * the mean would sink with every stream in flight, and replicas would shed again and again the
 * streams that had just arrived (measured: 9 reconnects per stream instead of about one).
 */
const PEAK_WINDOW_MS = 30_000;

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
 * The mean comes from heartbeats' snapshots of every replica's count (its own included as it
 * published it), with the fleet's total taken as the largest within PEAK_WINDOW_MS, so streams
 * in flight between replicas still count: a fleet that really shrank is only balanced less eagerly
 * for that long.
 */
export class Rebalancer {
  private shedding = false;
  private readonly timer: NodeJS.Timeout;
  /** Recent fleet totals, oldest first, for the peak (PEAK_WINDOW_MS). */
  private totals: { atMs: number; total: number }[] = [];

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
    const mean = this.peakTotal(replicas.reduce((sum, r) => sum + r.streams, 0)) / replicas.length;
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

  /** The largest fleet total within PEAK_WINDOW_MS, this one included. */
  private peakTotal(total: number): number {
    const now = Date.now();
    this.totals = this.totals.filter((entry) => entry.atMs > now - PEAK_WINDOW_MS);
    this.totals.push({ atMs: now, total });
    return Math.max(...this.totals.map((entry) => entry.total));
  }

  close(): void {
    clearInterval(this.timer);
  }
}
