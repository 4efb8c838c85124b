import { invalidArgument } from './errors.js';
import { DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, type HttpRequest, type RetryOptions, send } from './transport.js';
import { signWebhook } from './webhook-signing.js';

export interface CallbackSenderOptions {
  /** Retries of a 5xx or of an attempt with no answer, each with the same webhook-id. */
  retry?: Partial<RetryOptions>;
  /** Per attempt (default 10000 ms). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface CallbackInput {
  /** The job's `callbackUrl` (from POST /v1/jobs). */
  callbackUrl: string;
  /**
   * The job's `callbackSecret` (from POST /v1/jobs, or jobCallbackSecret(CALLBACK_SECRET, id));
   * omit it only when the replicas accept unsigned callbacks.
   */
  secret?: string;
  /** Any JSON value; `{"status": "done", …}` also sets the job's status. */
  payload: unknown;
  /**
   * The delivery's id (`webhook-id`), the dedupe key: the same id is delivered once, however many
   * times it is sent. Made when omitted; pass your own to stay idempotent across your own retries.
   */
  webhookId?: string;
  /**
   * The event type for an unsigned callback (X-Event-Type; default `callback`). Signed callbacks
   * cannot set it: the header is not covered by the signature.
   */
  eventType?: string;
}

export interface CallbackDelivered {
  eventId: string;
  receivers: number;
  /** True when this webhook-id was delivered before (by an earlier attempt or send). */
  duplicate: boolean;
  webhookId: string;
  attempts: number;
}

/**
 * Posts a job's result to Switchboard the way a job runner should: signed with Standard Webhooks
 * (the job's own secret, over the exact bytes sent), and retried on a 5xx or a lost answer with
 * the same `webhook-id`, so the user sees the result once. Each retry is signed again with a fresh
 * `webhook-timestamp`, as the Standard Webhooks spec asks, so a long retry stays within the
 * server's 5-minute tolerance.
 */
export class CallbackSender {
  private readonly fetch: typeof fetch;
  private readonly retry: RetryOptions;
  private readonly timeoutMs: number;

  constructor(options: CallbackSenderOptions = {}) {
    this.fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async send(callback: CallbackInput): Promise<CallbackDelivered> {
    if (!/^https?:\/\//.test(callback.callbackUrl)) throw invalidArgument('callbackUrl must be an http:// or https:// URL');
    if (callback.payload === undefined) throw invalidArgument('a callback needs a payload (any JSON value; null is one)');
    if (callback.secret !== undefined && callback.eventType !== undefined) {
      throw invalidArgument('a signed callback cannot set eventType: X-Event-Type is not covered by the signature');
    }
    const webhookId = callback.webhookId ?? `msg_${crypto.randomUUID()}`;
    const body = JSON.stringify(callback.payload);
    const request = async (): Promise<HttpRequest> => ({
      method: 'POST',
      url: callback.callbackUrl,
      headers: {
        'content-type': 'application/json',
        ...(callback.secret === undefined
          ? { 'webhook-id': webhookId, ...(callback.eventType === undefined ? {} : { 'x-event-type': callback.eventType }) }
          : await signWebhook(callback.secret, webhookId, Math.floor(Date.now() / 1000), body)),
      },
      body,
      idempotent: true,
      retryServerErrors: true,
      prepareRetry: request,
    });
    const answer = await send({ fetch: this.fetch, retry: this.retry, timeoutMs: this.timeoutMs }, await request());
    const delivered = answer.body as Omit<CallbackDelivered, 'webhookId' | 'attempts'>;
    return { ...delivered, webhookId, attempts: answer.attempts };
  }
}
