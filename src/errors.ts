/**
 * The error registry: every error the service answers with has a stable code here, one HTTP
 * status and a title. Routes throw `SwitchboardError`; `problem-details.ts` turns it into an
 * RFC 9457 answer. Codes are part of the public contract: add, never rename.
 */
export const ERRORS = {
  invalid_request: { status: 400, title: 'The request does not match the schema' },
  invalid_json: { status: 400, title: 'The body is not valid JSON' },
  invalid_user_id: { status: 400, title: 'Invalid user id' },
  invalid_topic: { status: 400, title: 'Invalid topic' },
  invalid_event_type: { status: 400, title: 'Invalid event type' },
  missing_token: { status: 401, title: 'A subscriber token is required' },
  invalid_token: { status: 401, title: 'The subscriber token is invalid' },
  token_expired: { status: 401, title: 'The subscriber token has expired' },
  missing_api_key: { status: 401, title: 'A publisher API key is required' },
  invalid_api_key: { status: 401, title: 'The publisher API key is not valid' },
  invalid_signature: { status: 401, title: 'The webhook signature is not valid' },
  token_user_mismatch: { status: 403, title: 'The token was issued for another user' },
  topic_not_granted: { status: 403, title: 'The token does not grant this topic' },
  origin_not_allowed: { status: 403, title: 'This origin may not present the token cookie' },
  not_found: { status: 404, title: 'Not found' },
  job_not_found: { status: 404, title: 'Unknown or expired correlation id' },
  request_timeout: { status: 408, title: 'The request was not received in time' },
  payload_too_large: { status: 413, title: 'The body is too large' },
  batch_too_large: { status: 413, title: 'The batch holds too many events' },
  unsupported_media_type: { status: 415, title: 'The body must be application/json' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  too_many_streams: { status: 429, title: 'Too many open streams for this user' },
  internal_error: { status: 500, title: 'Internal error' },
  backplane_unavailable: { status: 503, title: 'The backplane (Redis) is unavailable' },
  shutting_down: { status: 503, title: 'This replica is shutting down' },
  overloaded: { status: 503, title: 'This replica is saturated' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds a client should wait before retrying (sent as Retry-After on 503). */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(detail ?? ERRORS[code].title, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchboardError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryAfterSeconds = options?.retryAfterSeconds ?? (this.status === 503 ? 1 : undefined);
  }
}

/** Thrown by backplane implementations when Redis cannot take or answer a command in time. */
export function backplaneUnavailable(cause: unknown): SwitchboardError {
  return new SwitchboardError('backplane_unavailable', 'The event could not be stored and published; retry shortly.', {
    cause,
    retryAfterSeconds: 1,
  });
}
