import type { CallbackEventData, SwitchboardEvent } from './events.js';

/** One recent callback of a job, as GET /v1/jobs/:correlationId lists it. */
export interface JobCallback {
  eventId: string;
  type: string;
  receivedAt: string;
  /** Replicas that held a stream of the user when it was published; absent on a callback only seen on the stream. */
  receivers?: number;
  /** The callback's body; null when it was too large to keep (then `payloadTruncated`). */
  payload: unknown;
  payloadTruncated?: true;
}

/** GET /v1/jobs/:correlationId: the job's ground truth. */
export interface Job {
  correlationId: string;
  userId: string;
  status: string;
  createdAt: string;
  expiresAt: string;
  metadata?: Record<string, unknown>;
  /** Newest first, bounded by the service. */
  callbacks: JobCallback[];
}

/** True when the event is a callback of this job. */
export function isCallbackOf(correlationId: string, event: SwitchboardEvent): event is SwitchboardEvent<CallbackEventData> {
  const data = event.data as Partial<CallbackEventData> | null;
  return typeof data === 'object' && data !== null && data.correlationId === correlationId && typeof data.receivedAt === 'string';
}

/** The service's rule (src/routes/callbacks.ts): a payload's `status` member names the job's status, else `callback_received`. */
const STATUS = /^[A-Za-z0-9._:-]{1,64}$/;
export function statusOf(payload: unknown): string {
  const status = typeof payload === 'object' && payload !== null ? (payload as { status?: unknown }).status : undefined;
  return typeof status === 'string' && STATUS.test(status) ? status : 'callback_received';
}

/**
 * The job with a callback event seen on the stream, as the service would record it: first in
 * the list, and its status. A callback the job already lists changes nothing.
 */
export function withCallback(job: Job, event: SwitchboardEvent<CallbackEventData>): Job {
  if (job.callbacks.some((callback) => callback.eventId === event.id)) return job;
  const callback: JobCallback = { eventId: event.id, type: event.type, receivedAt: event.data.receivedAt, payload: event.data.payload };
  return { ...job, status: statusOf(event.data.payload), callbacks: [callback, ...job.callbacks] };
}
