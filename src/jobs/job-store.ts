/**
 * The job registry: correlation id → the user to deliver to, and the job's state. In Redis when
 * the service runs with Redis (any replica can take the callback), in memory otherwise.
 */
export interface JobStore {
  create(job: NewJob): Promise<Job>;
  /** Undefined when the id is unknown or the job expired. */
  get(correlationId: string): Promise<Job | undefined>;
  /**
   * Records a delivered callback and the job's new status; keeps the newest MAX_CALLBACKS_KEPT.
   * False, and nothing written, when the job is unknown or expired.
   */
  recordCallback(correlationId: string, callback: CallbackRecord, status: string): Promise<boolean>;
}

export interface NewJob {
  correlationId: string;
  userId: string;
  ttlSeconds: number;
  metadata: Record<string, unknown> | undefined;
}

export interface Job {
  correlationId: string;
  userId: string;
  status: string;
  createdAt: string;
  expiresAt: string;
  metadata?: Record<string, unknown>;
  /** Newest first. */
  callbacks: CallbackRecord[];
}

export interface CallbackRecord {
  eventId: string;
  type: string;
  receivedAt: string;
  receivers: number;
}

/** Callbacks kept per job for GET /v1/jobs/:id; older ones are dropped. */
export const MAX_CALLBACKS_KEPT = 20;

export const INITIAL_JOB_STATUS = 'pending';
