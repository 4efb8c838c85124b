import { INITIAL_JOB_STATUS, keptCallback, MAX_CALLBACKS_KEPT, type CallbackRecord, type Job, type JobStore, type NewJob } from './job-store.js';

/** How often expired jobs are swept from memory. */
const SWEEP_INTERVAL_MS = 30_000;

/** Jobs of a single replica without Redis; lost on restart, like the rest of its state. */
export class MemoryJobStore implements JobStore {
  private readonly jobs = new Map<string, Job>();
  private readonly sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();

  async create(job: NewJob): Promise<Job> {
    const now = Date.now();
    const stored: Job = {
      correlationId: job.correlationId,
      userId: job.userId,
      status: INITIAL_JOB_STATUS,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + job.ttlSeconds * 1000).toISOString(),
      ...(job.metadata === undefined ? {} : { metadata: job.metadata }),
      callbacks: [],
    };
    this.jobs.set(job.correlationId, stored);
    return structuredClone(stored);
  }

  async get(correlationId: string): Promise<Job | undefined> {
    const job = this.live(correlationId);
    return job === undefined ? undefined : structuredClone(job);
  }

  async recordCallback(correlationId: string, callback: CallbackRecord, status: string): Promise<boolean> {
    const job = this.live(correlationId);
    if (job === undefined) return false;
    job.status = status;
    job.callbacks.unshift(structuredClone(keptCallback(callback)));
    job.callbacks.length = Math.min(job.callbacks.length, MAX_CALLBACKS_KEPT);
    return true;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** The job unless it is unknown or expired: an expired job is gone even before the sweep. */
  private live(correlationId: string): Job | undefined {
    const job = this.jobs.get(correlationId);
    return job === undefined || Date.parse(job.expiresAt) <= Date.now() ? undefined : job;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, job] of this.jobs) if (Date.parse(job.expiresAt) <= now) this.jobs.delete(id);
  }
}
