/** The probe is late (the subscriber deaf) after this many intervals without it arriving. */
const PROBE_MISSES_BEFORE_DEAF = 3;

/**
 * The bookkeeping of one probe: a numbered message this replica publishes to a channel only it
 * subscribes, and hears back through its subscriber. One per subscriber connection.
 */
export class ProbeTracker {
  private lastHeardAtMs = 0;
  /**
   * When this replica first processed Redis' answer to a probe publish that it has not heard back
   * since. Both the answer and the message reach this one event loop, so a starved loop delays
   * both alike: only a path that takes answers but not messages looks deaf, never a busy replica.
   */
  private unheardSinceMs: number | undefined;
  private sent = 0;
  private lastHeard = 0;

  constructor(private readonly intervalMs: number) {}

  /** The number to publish next. */
  next(): number {
    return ++this.sent;
  }

  /** Redis took probe `n`. The answer can be processed after the message itself: only a probe not yet heard counts. */
  accepted(n: number): void {
    if (this.lastHeard < n) this.unheardSinceMs ??= Date.now();
  }

  heard(payload: string): void {
    this.lastHeardAtMs = Date.now();
    this.lastHeard = Math.max(this.lastHeard, Number(payload) || 0);
    this.unheardSinceMs = undefined;
  }

  /** The subscriber was (re)subscribed: probes may have been missed while away; count it alive from now. */
  restart(): void {
    this.lastHeardAtMs = Date.now();
    this.unheardSinceMs = undefined;
  }

  /** Deafness was acted on (the connection is being rebuilt): start counting afresh. */
  forgetUnheard(): void {
    this.unheardSinceMs = undefined;
  }

  /** Redis has taken probes for this many intervals, and none came back. */
  deaf(): boolean {
    return this.unheardSinceMs !== undefined && Date.now() - this.unheardSinceMs > this.intervalMs * PROBE_MISSES_BEFORE_DEAF;
  }

  unheardMs(): number {
    return this.unheardSinceMs === undefined ? 0 : Date.now() - this.unheardSinceMs;
  }

  /** Heard within the last few intervals. */
  fresh(): boolean {
    return Date.now() - this.lastHeardAtMs < this.intervalMs * PROBE_MISSES_BEFORE_DEAF;
  }

  ageMs(): number {
    return this.lastHeardAtMs === 0 ? Number.POSITIVE_INFINITY : Date.now() - this.lastHeardAtMs;
  }
}
