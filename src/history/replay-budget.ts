/**
 * The replica's bandwidth for replaying history: every resume's pages draw from one token bucket,
 * refilled at `bytesPerSecond` and holding at most one second's worth. However many streams
 * resume at once, and however little they read, the replica and Redis spend at most that on
 * replay, and the rest of their time on live events and publishes.
 */
export class ReplayBudget {
  private tokens: number;
  private refilledAtMs: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = bytesPerSecond;
    this.refilledAtMs = now();
  }

  /**
   * Draws `bytes` that were just read; resolves once the bucket is out of debt. Concurrent readers
   * share the debt, so each waits for the pages read before its own: first come, first served.
   */
  async take(bytes: number): Promise<void> {
    const waitMs = this.draw(bytes);
    // Not unref'd: a stream's replay is waiting on it.
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  }

  /** Draws `bytes` now; returns how long the reader must wait until the bucket is out of debt. */
  draw(bytes: number): number {
    const now = this.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((now - this.refilledAtMs) * this.bytesPerSecond) / 1000);
    this.refilledAtMs = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }
}
