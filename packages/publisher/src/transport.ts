import { type Problem, SwitchboardError } from './errors.js';

export interface RetryOptions {
  /** Requests sent at most, the first included (default 6). */
  attempts: number;
  /** First backoff; it doubles per attempt, with full jitter (default 200 ms). */
  baseDelayMs: number;
  /** Longest backoff between two attempts (default 5000 ms). */
  maxDelayMs: number;
  /** Longest Retry-After honoured; a longer one ends the retries with the 503 (default 30000 ms). */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 6, baseDelayMs: 200, maxDelayMs: 5000, maxRetryAfterMs: 30_000 };
/** One attempt that has no answer by then is abandoned (and retried when that is safe). */
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface TransportOptions {
  fetch: typeof fetch;
  retry: RetryOptions;
  timeoutMs: number;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  /** Sent as is: a retry sends the same bytes (and so the same idempotency key and signature input). */
  body?: string;
  /**
   * Whether a request that got no answer may be sent again: true when a repeat cannot act twice
   * (a GET, a publish with its idempotency key, a callback with its webhook-id). A 503 is retried
   * either way: the server answers it for work it did not do.
   */
  idempotent: boolean;
  /** Retry 5xx answers other than 503 too (webhook senders do; publishers don't). */
  retryServerErrors?: boolean;
  /** Called before each retry, e.g. to sign again with a fresh timestamp. */
  prepareRetry?: (request: HttpRequest) => Promise<HttpRequest>;
}

export interface HttpAnswer {
  status: number;
  body: unknown;
  headers: Headers;
  attempts: number;
}

/**
 * Sends a request, retrying what is safe to retry: a 503 (the server stored nothing; it says when
 * to come back in Retry-After, which is honoured), and — for idempotent requests — an attempt
 * with no answer. Other answers come back as they are; a non-2xx one as a SwitchboardError.
 */
export async function send(options: TransportOptions, first: HttpRequest): Promise<HttpAnswer> {
  const { retry } = options;
  let request = first;
  for (let attempt = 1; ; attempt++) {
    let response: Response;
    try {
      response = await options.fetch(request.url, {
        method: request.method,
        headers: request.headers,
        ...(request.body === undefined ? {} : { body: request.body }),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err) {
      const failure = new SwitchboardError(
        { code: 'network_error', status: 0, detail: `${request.method} ${request.url}: no answer (${describe(err)})` },
        { cause: err, attempts: attempt },
      );
      if (!request.idempotent || attempt >= retry.attempts) throw failure;
      await delay(backoffMs(retry, attempt));
      request = request.prepareRetry === undefined ? request : await request.prepareRetry(request);
      continue;
    }
    const body = await readBody(response);
    if (response.ok) return { status: response.status, body, headers: response.headers, attempts: attempt };

    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    const failure = toError(response, body, attempt, retryAfterMs);
    const retriable = response.status === 503 || (request.retryServerErrors === true && response.status >= 500);
    if (!retriable || attempt >= retry.attempts) throw failure;
    if (retryAfterMs !== undefined && retryAfterMs > retry.maxRetryAfterMs) throw failure;
    await delay(retryAfterMs ?? backoffMs(retry, attempt));
    request = request.prepareRetry === undefined ? request : await request.prepareRetry(request);
  }
}

/** Full jitter: a random wait up to base × 2^(attempt−1), capped, so many senders spread out. */
function backoffMs(retry: RetryOptions, attempt: number): number {
  return Math.random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110), in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A problem+json answer keeps its code; anything else (a proxy's error page) is `unexpected_response`. */
function toError(response: Response, body: unknown, attempts: number, retryAfterMs: number | undefined): SwitchboardError {
  const retryAfter = retryAfterMs === undefined ? {} : { retryAfterSeconds: Math.ceil(retryAfterMs / 1000) };
  if (typeof body === 'object' && body !== null && typeof (body as Problem).code === 'string') {
    const problem = body as Problem;
    return new SwitchboardError({ ...problem, status: response.status }, { attempts, ...retryAfter });
  }
  const detail = `HTTP ${response.status} without a problem+json body${typeof body === 'string' ? `: ${body.slice(0, 200)}` : ''}`;
  return new SwitchboardError({ code: 'unexpected_response', status: response.status, detail }, { attempts, ...retryAfter });
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
