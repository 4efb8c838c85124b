import type { Logger } from 'pino';
import type { SseStream } from '../sse/sse-stream.js';
import type { Fleet, ReplicaState, ReplicaStatus } from './fleet.js';

/** How often the rebalancer looks at the fleet; it sheds at most REBALANCE_RATE streams each time. */
const TICK_MS = 1000;
/**
 * The fleet's total is taken as the largest seen within this window (and since the fleet last
 * changed). A stream told to move is on no replica until it reconnects (seconds, on a busy fleet):
 * counted from the live counts alone, the mean would sink with every stream in flight, and
 * replicas would shed again and again the streams that had just arrived (measured: 9 reconnects
 * per stream instead of about one).
 */
const PEAK_WINDOW_MS = 30_000;
/** Counts older than this many heartbeats are too old to act on: a view is read half a heartbeat after its counts, and replaced every heartbeat. */
const FRESH_HEARTBEATS = 2;

export interface RebalancerOptions {
  /** ε: shedding starts above (1 + ε) × the fleet mean, or above the mean while a replica is below (1 − ε) × it. */
  tolerance: number;
  /** Streams ended per second at most. */
  ratePerSecond: number;
  /** RETRY_MS: each shed stream is told to come back after a jittered share of it. */
  retryMs: number;
  /** DRAIN_MS: a replica that left ended its streams, each told to come back within RETRY_MS × 1.5 + DRAIN_MS / 2. */
  drainMs: number;
  /** REBALANCE_SETTLE_MS: how long the fleet must stay as it is (who is in it, and each one's state) before anyone sheds. */
  settleMs: number;
  /** The fleet's heartbeat, which takes every replica's count. */
  heartbeatMs: number;
  /** The clock; tests pass their own. */
  now?: () => number;
}

export interface RebalancedReplica {
  streamCount(): number;
  state(): ReplicaState;
  /** Up to `count` streams to end, the longest open first. */
  oldest(count: number): SseStream[];
}

/**
 * REBALANCE=true: long-lived streams do not move by themselves, so after a scale-out the new
 * replicas would sit nearly empty, and after a rolling deploy the replica restarted last would. A
 * replica holding more than (1 + ε) × the fleet mean ends streams, at most REBALANCE_RATE a
 * second, each with a jittered `retry:` (as a drain does); the client reconnects through the load
 * balancer, most likely elsewhere, and resumes from its last id without a gap. While some replica
 * holds less than (1 − ε) × the mean, every replica above the mean (when the fleet counted, and
 * now) sheds too: with one cold replica and several warm ones, as after a rolling deploy, ε above
 * the mean on each warm one leaves the cold one short by their sum. It sheds down to the mean and
 * never below.
 *
 * It acts only on a fleet that stands still:
 * - never while any replica (itself included) is draining or unready;
 * - never within the settle time after the fleet changed (a replica joined, left, or changed
 *   state): a rolling deploy is a chain of such changes, one step right after the other's
 *   `/readyz`, and streams moved between steps would be moved again by the next drain. After a
 *   replica left, at least until its drained streams have all come back (RETRY_MS × 1.5 +
 *   DRAIN_MS / 2); after any change, at least until streams shed before it have (RETRY_MS × 1.5);
 * - only on counts taken together and recently: the fleet's heartbeats count every replica's
 *   streams at the same instants (RedisFleet), and a stream that moves is on no replica for at
 *   least RETRY_MS / 2, so counts taken closer together than that never hold a stream twice.
 *   Counts taken at different moments can, while streams move (a drain, a rebalance), and a total
 *   counted too high raises the mean for PEAK_WINDOW_MS: the warm replicas would stop shedding
 *   with the cold one still short.
 *
 * The mean is the largest such total since the fleet last changed (within PEAK_WINDOW_MS), over
 * the fleet's size, so streams in flight between replicas still count: a fleet that really shrank
 * is only balanced less eagerly for that long.
 */
export class Rebalancer {
  private shedding = false;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  /** Recent fleet totals, oldest first, for the peak (PEAK_WINDOW_MS), since the fleet last changed. */
  private totals: { atMs: number; total: number }[] = [];
  /** Who was in the fleet and in what state, as last seen: a change starts the settle time. */
  private shape: string | undefined;
  private members = new Set<string>();
  /** No shedding before this. */
  private settledAtMs = 0;
  /** Logged once per run of views whose counts were not taken together, not once a tick. */
  private countsApart = false;

  constructor(
    private readonly fleet: Pick<Fleet, 'replicas'>,
    private readonly replica: RebalancedReplica,
    private readonly options: RebalancerOptions,
    private readonly logger: Logger,
  ) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.tick(), TICK_MS).unref();
  }

  /** One look at the fleet; returns how many streams it ended. */
  tick(): number {
    const now = this.now();
    const replicas = this.fleet.replicas();
    if (replicas === undefined) return this.idle();
    this.noteChanges(replicas, now);
    if (replicas.length < 2 || this.replica.state() !== 'ready' || replicas.some((r) => r.state !== 'ready')) return this.idle();
    const total = this.countedTotal(replicas, now);
    if (total === undefined) return this.idle();
    const mean = this.peakTotal(total, now) / replicas.length;
    if (now < this.settledAtMs) return this.idle();
    const mine = this.replica.streamCount();
    // Both from the same counts: a cold replica's count lags its arrivals by up to a heartbeat, so
    // compared with this replica's live count it would make a replica that is only filling up shed.
    const mineCounted = replicas.find((r) => r.self)?.streams ?? 0;
    const coldest = Math.min(...replicas.map((r) => r.streams));
    const { tolerance } = this.options;
    const cold = mine > mean && mineCounted > mean && coldest < (1 - tolerance) * mean;
    if (!this.shedding && (mine > (1 + tolerance) * mean || cold)) this.shedding = true;
    const excess = mine - Math.ceil(mean);
    if (!this.shedding || excess <= 0) return this.idle();
    const streams = this.replica.oldest(Math.min(excess, this.options.ratePerSecond));
    const retryMs = this.options.retryMs;
    for (const stream of streams) stream.end('rebalanced', Math.round(retryMs / 2 + Math.random() * retryMs));
    this.logger.info(
      { shed: streams.length, streams: mine, fleetMean: Math.round(mean), coldest, replicas: replicas.length },
      'rebalancing: ended streams to move elsewhere',
    );
    return streams.length;
  }

  private idle(): number {
    this.shedding = false;
    return 0;
  }

  /** A fleet unlike the last one seen (first sight included) starts the settle time, and the peak afresh. */
  private noteChanges(replicas: readonly ReplicaStatus[], now: number): void {
    const shape = replicas
      .map((r) => `${r.instance} ${r.state}`)
      .sort()
      .join('\n');
    if (shape === this.shape) return;
    const members = new Set(replicas.map((r) => r.instance));
    const left = [...this.members].some((instance) => !members.has(instance));
    const { settleMs, retryMs, drainMs } = this.options;
    const holdMs = Math.max(settleMs, retryMs * 1.5 + (left ? drainMs / 2 : 0));
    this.shape = shape;
    this.members = members;
    this.settledAtMs = Math.max(this.settledAtMs, now + holdMs);
    this.totals = [];
    this.logger.info(
      { replicas: replicas.length, notReady: replicas.filter((r) => r.state !== 'ready').length, left, holdMs },
      'rebalancing: the fleet changed; no shedding until it has stood still',
    );
  }

  /**
   * The fleet's streams, from counts taken within RETRY_MS / 2 of each other and at most
   * FRESH_HEARTBEATS old; undefined when they were not (a late heartbeat, a replica that does not
   * say when it counted).
   */
  private countedTotal(replicas: readonly ReplicaStatus[], now: number): number | undefined {
    const times = replicas.map((r) => r.countedAtMs ?? Number.NaN);
    const spread = Math.max(...times) - Math.min(...times);
    const together = spread <= this.options.retryMs / 2 && now - Math.min(...times) <= FRESH_HEARTBEATS * this.options.heartbeatMs;
    if (!together) {
      if (!this.countsApart) this.logger.info({ spreadMs: spread }, "rebalancing waits: the replicas' counts were not taken together, or are old");
      this.countsApart = true;
      return undefined;
    }
    this.countsApart = false;
    return replicas.reduce((sum, r) => sum + r.streams, 0);
  }

  /** The largest fleet total within PEAK_WINDOW_MS and since the fleet last changed, this one included. */
  private peakTotal(total: number, now: number): number {
    this.totals = this.totals.filter((entry) => entry.atMs > now - PEAK_WINDOW_MS);
    this.totals.push({ atMs: now, total });
    return Math.max(...this.totals.map((entry) => entry.total));
  }

  close(): void {
    clearInterval(this.timer);
  }
}
