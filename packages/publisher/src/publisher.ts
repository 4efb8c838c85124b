import { invalidArgument, SwitchboardError } from './errors.js';
import { checkEventType, checkIdempotencyKey, checkName } from './identifiers.js';
import { DEFAULT_AUDIENCE, type MintedToken, mintStreamToken, type TokenOptions } from './tokens.js';
import { DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, type RetryOptions, send, type TransportOptions } from './transport.js';

export interface PublisherOptions {
  /** Any replica, or the load balancer in front of them: `https://push.example.com`. */
  url: string;
  /** PUBLISH_API_KEY (one of its keys). Server-side only: never send it to a browser. */
  apiKey: string;
  /** STREAM_TOKEN_SECRET, to mint tokens locally; without it mintToken asks POST /v1/tokens. */
  streamTokenSecret?: string;
  /** STREAM_TOKEN_AUDIENCE of the replicas (default `switchboard`). */
  audience?: string;
  /** Retries of a 503 (and of a request with no answer, when safe); `attempts: 1` turns them off. */
  retry?: Partial<RetryOptions>;
  /** Per attempt (default 10000 ms). */
  timeoutMs?: number;
  /** A fetch to use instead of the global one (a proxy agent, instrumentation). */
  fetch?: typeof fetch;
}

export interface EventInput {
  /** The SSE `event:` name (default `message`); 1–64 characters of [A-Za-z0-9._:-]. */
  type?: string;
  /** Any JSON value: what the stream's `data:` carries. */
  data: unknown;
  /**
   * Idempotency key: the same key within the history TTL is delivered once. Filled in with a
   * random UUID when omitted, so the SDK's own retries can never deliver twice.
   */
  id?: string;
  /** `false`: live only, never stored or replayed. */
  durable?: boolean;
}

export interface Published {
  /** The event id the streams carry (`id:`), for a duplicate the first delivery's. */
  id: string;
  /** Replicas that held a stream for it when it was published (0 is not an error). */
  receivers: number;
  /** True when this idempotency key was accepted before: nothing was delivered again. */
  duplicate: boolean;
  /** The idempotency key sent, yours or the one the SDK made. */
  idempotencyKey: string;
}

export type BatchEvent = EventInput & ({ user: string; topic?: never } | { topic: string; user?: never });

/** One event of a batch: accepted (`ok: true`) or refused on its own, with the problem's code. */
export type BatchOutcome = ({ ok: true } & Published) | { ok: false; code: string; detail: string | undefined; idempotencyKey: string };

/** Most events one POST /v1/events takes. */
export const MAX_BATCH_EVENTS = 1000;

export interface JobInput {
  /** The user whose streams receive the job's callbacks. */
  userId: string;
  /** Lifetime of the job and its correlation id (server default JOB_TTL_SECONDS). */
  ttlSeconds?: number;
  metadata?: Record<string, unknown>;
}

export interface CreatedJob {
  correlationId: string;
  /** Where the job runner posts its result: give it this and `callbackSecret`. */
  callbackUrl: string;
  expiresAt: string;
  /** This job's own Standard Webhooks secret, when the replicas sign callbacks (CALLBACK_SECRET). */
  callbackSecret?: string;
}

export interface JobCallback {
  eventId: string;
  type: string;
  receivedAt: string;
  receivers: number;
  payload?: unknown;
}

export interface JobState {
  correlationId: string;
  userId: string;
  status: string;
  createdAt: string;
  expiresAt: string;
  metadata?: Record<string, unknown>;
  callbacks: JobCallback[];
}

/**
 * A backend's handle on Switchboard: publish to users and topics, register jobs, mint tokens.
 * Uses only fetch and Web Crypto, so it runs on Node 18+ and on edge runtimes alike.
 */
export class Publisher {
  private readonly base: string;
  private readonly transport: TransportOptions;

  constructor(private readonly options: PublisherOptions) {
    if (!/^https?:\/\//.test(options.url)) throw invalidArgument('url must be an http:// or https:// URL');
    if (typeof options.apiKey !== 'string' || options.apiKey.length === 0) throw invalidArgument('apiKey (PUBLISH_API_KEY) is required');
    this.base = options.url.replace(/\/+$/, '');
    this.transport = {
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
      retry: { ...DEFAULT_RETRY, ...options.retry },
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    };
  }

  /** POST /v1/users/:userId/events: every stream of that user, on every replica. */
  async publish(userId: string, event: EventInput): Promise<Published> {
    checkName('userId', userId);
    return this.publishTo(`/v1/users/${encodeURIComponent(userId)}/events`, event);
  }

  /** POST /v1/topics/:topic/events: every stream that joined the topic. */
  async publishTopic(topic: string, event: EventInput): Promise<Published> {
    checkName('topic', topic);
    return this.publishTo(`/v1/topics/${encodeURIComponent(topic)}/events`, event);
  }

  /**
   * POST /v1/events: up to 1000 events in one request, each accepted or refused on its own; the
   * outcomes come back in order. Every event gets an idempotency key, so a retried batch delivers
   * none twice.
   */
  async publishBatch(events: readonly BatchEvent[]): Promise<BatchOutcome[]> {
    if (events.length === 0 || events.length > MAX_BATCH_EVENTS) throw invalidArgument(`a batch holds 1 to ${MAX_BATCH_EVENTS} events`);
    const keyed = events.map((event) => {
      if ((event.user === undefined) === (event.topic === undefined)) throw invalidArgument('each batch event names exactly one of user or topic');
      if (event.user !== undefined) checkName('userId', event.user);
      else checkName('topic', event.topic as string);
      return withKey(event);
    });
    const answer = await this.post('/v1/events', { events: keyed.map(({ body }) => body) }, true);
    const results = (answer as { results?: unknown }).results;
    if (!Array.isArray(results) || results.length !== keyed.length) {
      throw new SwitchboardError({ code: 'unexpected_response', status: 200, detail: `POST /v1/events answered without one outcome per event` });
    }
    return results.map((result: Record<string, unknown>, i): BatchOutcome => {
      const idempotencyKey = (keyed[i] as { key: string }).key;
      if (typeof result.code === 'string') return { ok: false, code: result.code, detail: result.detail as string | undefined, idempotencyKey };
      return { ok: true, ...(result as unknown as Omit<Published, 'idempotencyKey'>), idempotencyKey };
    });
  }

  /** POST /v1/jobs: a correlation id and callback URL (and secret) to hand to the job runner. */
  async createJob(job: JobInput): Promise<CreatedJob> {
    checkName('userId', job.userId);
    // Not resent after a lost answer: a second job would be made (a 503 made none, and is retried).
    return (await this.post('/v1/jobs', job, false)) as CreatedJob;
  }

  /** GET /v1/jobs/:correlationId: the job's authoritative state, recent callbacks included. */
  async getJob(correlationId: string): Promise<JobState> {
    const answer = await send(this.transport, {
      method: 'GET',
      url: `${this.base}/v1/jobs/${encodeURIComponent(correlationId)}`,
      headers: { authorization: `Bearer ${this.options.apiKey}` },
      idempotent: true,
    });
    return answer.body as JobState;
  }

  /**
   * A subscriber token for `userId`: signed here when `streamTokenSecret` was given (no round
   * trip), else minted by POST /v1/tokens. Either way every replica accepts it.
   */
  async mintToken(userId: string, options: TokenOptions = {}): Promise<MintedToken> {
    if (this.options.streamTokenSecret !== undefined) {
      return mintStreamToken(this.options.streamTokenSecret, this.options.audience ?? DEFAULT_AUDIENCE, userId, options);
    }
    checkName('userId', userId);
    const body = {
      userId,
      ...(options.topics === undefined ? {} : { topics: options.topics }),
      ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }),
    };
    return (await this.post('/v1/tokens', body, true)) as MintedToken;
  }

  private async publishTo(path: string, event: EventInput): Promise<Published> {
    const { body, key } = withKey(event);
    const answer = (await this.post(path, body, true)) as Omit<Published, 'idempotencyKey'>;
    return { ...answer, idempotencyKey: key };
  }

  private async post(path: string, body: unknown, idempotent: boolean): Promise<unknown> {
    const answer = await send(this.transport, {
      method: 'POST',
      url: this.base + path,
      headers: { authorization: `Bearer ${this.options.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      idempotent,
    });
    return answer.body;
  }
}

/** The event as sent, with its idempotency key (the caller's, or a new random one). */
function withKey<E extends EventInput>(event: E): { body: E & { id: string }; key: string } {
  if (event.data === undefined) throw invalidArgument('an event needs data (any JSON value; null is one)');
  checkEventType(event.type);
  const key = event.id ?? crypto.randomUUID();
  checkIdempotencyKey(key);
  return { body: { ...event, id: key }, key };
}
