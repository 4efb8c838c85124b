/**
 * The stable codes a Switchboard answer carries in its problem+json body (the server's registry,
 * src/errors.ts; a test keeps this list in step with it). Codes are added, never renamed.
 */
export const ERROR_CODES = [
  'invalid_request',
  'invalid_json',
  'invalid_user_id',
  'invalid_topic',
  'invalid_event_type',
  'missing_token',
  'invalid_token',
  'token_expired',
  'missing_api_key',
  'invalid_api_key',
  'invalid_signature',
  'token_user_mismatch',
  'topic_not_granted',
  'origin_not_allowed',
  'not_found',
  'job_not_found',
  'request_timeout',
  'payload_too_large',
  'batch_too_large',
  'unsupported_media_type',
  'headers_too_large',
  'too_many_streams',
  'internal_error',
  'backplane_unavailable',
  'shutting_down',
  'overloaded',
] as const;

/** A code the server answers with. */
export type ServerErrorCode = (typeof ERROR_CODES)[number];

/**
 * Codes the SDK gives itself: `network_error` (no answer: refused, reset, timed out),
 * `unexpected_response` (an answer that is not Switchboard's, e.g. a proxy's HTML 502), and
 * `invalid_argument` (refused before anything was sent).
 */
export type ClientErrorCode = 'network_error' | 'unexpected_response' | 'invalid_argument';

export type ErrorCode = ServerErrorCode | ClientErrorCode;

/** What a problem+json answer (RFC 9457) says, as the SDK keeps it. */
export interface Problem {
  /** The stable machine-readable code; a newer server may send one this SDK does not list. */
  code: ErrorCode | (string & {});
  status: number;
  title?: string;
  detail?: string;
  type?: string;
}

/**
 * Every failure of the SDK: a refused request (the server's problem+json: `code`, `status`,
 * `detail`), an answer that is not Switchboard's, or no answer at all. Branch on `code`, never on
 * the message: `isSwitchboardError(err, 'token_expired')` narrows it.
 */
export class SwitchboardError extends Error {
  readonly code: ErrorCode | (string & {});
  /** The HTTP status, or 0 when no answer came. */
  readonly status: number;
  readonly detail: string | undefined;
  /** The problem's `type` URI (`urn:switchboard:problem:<code>`) when the server sent one. */
  readonly type: string | undefined;
  /** The server's Retry-After, in seconds, on the last answer (a 503 that outlasted the retries). */
  readonly retryAfterSeconds: number | undefined;
  /** How many requests were sent before giving up (1 when nothing was retried). */
  readonly attempts: number;

  constructor(problem: Problem, options: { cause?: unknown; retryAfterSeconds?: number; attempts?: number } = {}) {
    super(problem.detail ?? problem.title ?? problem.code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchboardError';
    this.code = problem.code;
    this.status = problem.status;
    this.detail = problem.detail;
    this.type = problem.type;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.attempts = options.attempts ?? 1;
  }
}

/** True for a SwitchboardError, with that `code` when one is given (narrowing `err.code`). */
export function isSwitchboardError<C extends ErrorCode>(err: unknown, code?: C): err is SwitchboardError & { code: C } {
  return err instanceof SwitchboardError && (code === undefined || err.code === code);
}

/** Refused before sending: a name, type or lifetime the server would refuse anyway. */
export function invalidArgument(detail: string): SwitchboardError {
  return new SwitchboardError({ code: 'invalid_argument', status: 0, detail }, { attempts: 0 });
}
