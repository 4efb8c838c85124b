import { randomBytes } from 'node:crypto';

/** 144 random bits, base64url: the correlation id is the callback's only capability. */
export const newCorrelationId = (): string => randomBytes(18).toString('base64url');

/**
 * The job registry: correlation id → the user to deliver to, and the job's state. In Redis when
 * the service runs with Redis (any replica can take the callback), in memory otherwise.
 */
export interface JobStore {
  create(job: NewJob): Promise<Job>;
  /** Undefined when the id is unknown or the job expired. */
  get(correlationId: string): Promise<Job | undefined>;
  /**
   * Records a delivered callback (its payload bounded by `keptCallback`) and the job's new status;
   * keeps the newest MAX_CALLBACKS_KEPT. False, and nothing written, when the job is unknown or
   * expired.
   */
  recordCallback(correlationId: string, callback: CallbackRecord, status: string): Promise<boolean>;
  /** Stops the store's own timers. Connections it was given are closed by whoever made them. */
  close(): void;
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
  /**
   * The callback's body, so a client that missed the event learns the result from the job;
   * null when the body was larger than MAX_CALLBACK_PAYLOAD_BYTES (then `payloadTruncated`).
   */
  payload: unknown;
  payloadTruncated?: true;
}

/** Callbacks kept per job for GET /v1/jobs/:id; older ones are dropped. */
export const MAX_CALLBACKS_KEPT = 20;
/**
 * Largest payload kept on a job record, as UTF-8 JSON. With MAX_CALLBACKS_KEPT it bounds what one
 * job holds (~160 KiB) and what GET /v1/jobs/:id answers, whatever MAX_BODY_BYTES allows.
 */
export const MAX_CALLBACK_PAYLOAD_BYTES = 8 * 1024;

/** The record as a store keeps it: a payload over MAX_CALLBACK_PAYLOAD_BYTES becomes null. */
export function keptCallback(callback: CallbackRecord): CallbackRecord {
  const { eventId, type, receivedAt, receivers } = callback;
  const payload = callback.payload ?? null;
  return Buffer.byteLength(JSON.stringify(payload)) <= MAX_CALLBACK_PAYLOAD_BYTES
    ? { eventId, type, receivedAt, receivers, payload }
    : { eventId, type, receivedAt, receivers, payload: null, payloadTruncated: true };
}

export const INITIAL_JOB_STATUS = 'pending';
