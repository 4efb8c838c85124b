/**
 * Bounds the resumes a replica runs at once, in all and per user. A resume reads history and
 * writes it at the client's pace; without a bound, one token opening streams from the oldest id
 * could keep the replica and Redis busy for everyone. A stream refused here is told to retry
 * (200 + jittered `retry:` + end), never answered with an error: EventSource would give up.
 */
export class ResumeGate {
  private active = 0;
  private readonly perUser = new Map<string, number>();

  constructor(
    private readonly maxActive: number,
    private readonly maxPerUser: number,
  ) {}

  get activeResumes(): number {
    return this.active;
  }

  /** A slot for one resume of `userId`, or undefined when either bound is reached. Call `release` once. */
  tryEnter(userId: string): { release(): void } | undefined {
    const ofUser = this.perUser.get(userId) ?? 0;
    if (this.active >= this.maxActive || ofUser >= this.maxPerUser) return undefined;
    this.active++;
    this.perUser.set(userId, ofUser + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        const left = (this.perUser.get(userId) ?? 1) - 1;
        if (left > 0) this.perUser.set(userId, left);
        else this.perUser.delete(userId);
      },
    };
  }
}
