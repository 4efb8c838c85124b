import { PAGE_BYTES } from './pages.js';

/**
 * The replica's bandwidth for replaying history: every resume's pages draw from one token bucket,
 * refilled at `bytesPerSecond`. However many streams resume at once, and however little they
 * read, the replica and Redis spend at most that on replay, and the rest of their time on live
 * events and publishes.
 *
 * The bucket holds one page (or one second's worth, if less): a full bucket lets that much
 * through at once. It held a second's worth (4 MiB) before, which let 16 resumes opened together
 * read, encode and write a second page each at once, on top of their first pages: about 7 MB per
 * replica in one go, a core's worth of work for half a second on a 2-core machine, when other
 * users' slowest publishes of the resume storm test fell.
 */
export class ReplayBudget {
  private readonly capacity: number;
  private tokens: number;
  private refilledAtMs: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.capacity = Math.min(bytesPerSecond, PAGE_BYTES);
    this.tokens = this.capacity;
    this.refilledAtMs = now();
  }

  /**
   * Draws `bytes` about to be read; resolves once the bucket is out of debt. Concurrent readers
   * share the debt, so each waits for the pages drawn before its own: first come, first served.
   */
  async take(bytes: number): Promise<void> {
    const waitMs = this.draw(bytes);
    // Not unref'd: a stream's replay is waiting on it.
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  }

  /**
   * Draws `bytes` now (a negative count gives back what was drawn and not read); returns how
   * long the reader must wait until the bucket is out of debt.
   */
  draw(bytes: number): number {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.refilledAtMs) * this.bytesPerSecond) / 1000);
    this.refilledAtMs = now;
    this.tokens = Math.min(this.capacity, this.tokens - bytes);
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }
}
