import { CONTROL_EVENT_TYPES, type DefaultEvents, type EventMap, type ResetInfo, type SwitchboardEvent } from './events.js';
import type { Job } from './job-state.js';
import { RecentIds } from './recent-ids.js';
import { StreamConnection } from './stream-connection.js';
import { jobUrl, type StreamTarget } from './stream-url.js';
import { isTabMessage, type TabMessage } from './tab-messages.js';
import { TokenKeeper, type TokenSource } from './token-keeper.js';

export interface SwitchboardOptions {
  userId: string;
  /** Answers a subscriber token for `userId`, from the app's backend (which calls POST /v1/tokens). */
  getToken: TokenSource;
  /** The service's base URL; default '' (this page's origin). */
  url?: string;
  /** Topics to join; the token must grant each. */
  topics?: readonly string[];
  /**
   * Share one stream among this user's tabs (default: when the browser has Web Locks and
   * BroadcastChannel). False: this tab holds a stream of its own.
   */
  share?: boolean;
  /** Renew the token this long before its `exp` (default: a fifth of its lifetime, at most 60 s). */
  renewBeforeMs?: number;
  /** Send cookies with the stream request (a token in a cookie, across origins with CORS). */
  withCredentials?: boolean;
  /** Resume after this id on the first open (an id the app kept, e.g. across a reload). */
  lastEventId?: string;
  /** Reports what the client recovers from by itself: a refused stream, a failed token fetch, a throwing handler. */
  onError?: (error: unknown) => void;
}

/** `leader`: this tab holds the stream. `follower`: another tab does and forwards its events. */
export type Role = 'closed' | 'follower' | 'leader';

/** Ids remembered to drop duplicates: far more than can arrive twice around one takeover or resume. */
export const RECENT_IDS_KEPT = 2_000;

/** An answer of the service that was not 2xx, with its problem+json `code`. */
export class SwitchboardHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'SwitchboardHttpError';
  }
}

type Handler = (event: SwitchboardEvent) => void;

/**
 * One user's stream for this tab. With sharing on, the tabs of the user elect a leader with a
 * Web Lock: the tab holding the lock holds the stream and forwards each event to the others over
 * a BroadcastChannel. When it closes, the browser gives the lock to the next tab, which opens the
 * stream after the last event id every tab has seen: no gap, and ids drop any duplicate.
 */
export class Switchboard<Events extends EventMap = DefaultEvents> {
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly resetHandlers = new Set<(info: ResetInfo) => void>();
  /** Types any tab of this user handles: the leader's stream listens to each. */
  private readonly types = new Set<string>();
  private readonly seen = new RecentIds(RECENT_IDS_KEPT);
  private readonly tokens: TokenKeeper;
  private readonly target: StreamTarget;
  private readonly shared: boolean;
  private lastId: string | undefined;
  private currentRole: Role = 'closed';
  private channel: BroadcastChannel | undefined;
  private stream: StreamConnection | undefined;
  private lockRequest: AbortController | undefined;
  private releaseLock: (() => void) | undefined;

  constructor(private readonly options: SwitchboardOptions) {
    this.tokens = new TokenKeeper(options.getToken, options.renewBeforeMs);
    this.target = { baseUrl: options.url ?? '', userId: options.userId, topics: [...(options.topics ?? [])].sort() };
    this.shared = options.share ?? (typeof navigator !== 'undefined' && 'locks' in navigator && typeof BroadcastChannel === 'function');
    this.lastId = options.lastEventId || undefined;
  }

  get role(): Role {
    return this.currentRole;
  }

  /** The id of the last event this tab received: where any stream it opens resumes. */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  /** Calls `handler` for each event of `type`, once per id. Answers a function that removes it. */
  on<Type extends keyof Events & string>(type: Type, handler: (event: SwitchboardEvent<Events[Type]>) => void): () => void {
    if (CONTROL_EVENT_TYPES.has(type)) throw new Error(`"${type}" is a control event: use onReset(), the client handles the rest.`);
    const set = this.handlers.get(type) ?? new Set<Handler>();
    this.handlers.set(type, set);
    set.add(handler as Handler);
    if (!this.types.has(type)) {
      this.addTypes([type]);
      this.post({ kind: 'types', types: [type] });
    }
    return () => set.delete(handler as Handler);
  }

  /** Calls `handler` when events may be missing (the stream's `reset`): refetch what the page shows. */
  onReset(handler: (info: ResetInfo) => void): () => void {
    this.resetHandlers.add(handler);
    return () => this.resetHandlers.delete(handler);
  }

  /** Joins the user's tabs (or opens a stream alone). Again after close() starts over. */
  start(): void {
    if (this.currentRole !== 'closed') return;
    if (!this.shared) {
      this.lead();
      return;
    }
    // A follower until the browser grants the lock, which it never does synchronously.
    this.currentRole = 'follower';
    const name = `switchboard:${this.target.baseUrl}:${this.target.userId}:${this.target.topics.join(',')}`;
    const channel = new BroadcastChannel(name);
    this.channel = channel;
    channel.onmessage = (message) => {
      if (isTabMessage(message.data)) this.onTabMessage(message.data);
    };
    this.post({ kind: 'hello', types: [...this.types] });
    const lockRequest = new AbortController();
    this.lockRequest = lockRequest;
    navigator.locks
      .request(name, { signal: lockRequest.signal }, () => {
        if (lockRequest.signal.aborted) return undefined;
        // Held until close(), or until the tab goes away and the browser releases it.
        return new Promise<void>((release) => {
          this.releaseLock = release;
          this.lead();
        });
      })
      .catch((err: unknown) => {
        if (!lockRequest.signal.aborted) this.reportError(err);
      });
  }

  /** Closes this tab's part: its stream if it leads (another tab takes over), its channel, its lock. */
  close(): void {
    this.currentRole = 'closed';
    this.stream?.close();
    this.stream = undefined;
    this.lockRequest?.abort();
    this.lockRequest = undefined;
    this.releaseLock?.();
    this.releaseLock = undefined;
    this.channel?.close();
    this.channel = undefined;
  }

  /** A current subscriber token, e.g. for GET /v1/jobs/:id. */
  async token(): Promise<string> {
    return (await this.tokens.current()).token;
  }

  /** GET /v1/jobs/:correlationId with the user's token: the job's ground truth. */
  async fetchJob(correlationId: string): Promise<Job> {
    const url = jobUrl(this.target.baseUrl, correlationId);
    const get = async (token: string) => fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    let response = await get(await this.token());
    // Refused as expired between our clock and the service's: once more with a new token.
    if (response.status === 401) response = await get((await this.tokens.fresh()).token);
    if (response.ok) return (await response.json()) as Job;
    const problem = (await response.json().catch(() => ({}))) as { code?: string; detail?: string };
    throw new SwitchboardHttpError(response.status, problem.code, problem.detail ?? `GET ${url}: ${response.status}`);
  }

  private lead(): void {
    this.currentRole = 'leader';
    const stream = new StreamConnection({
      target: this.target,
      tokens: this.tokens,
      withCredentials: this.options.withCredentials ?? false,
      lastEventId: () => this.lastId,
      onEvent: (event) => this.receive(event, true),
      onReset: (id, info) => this.receiveReset(id, info, true),
      onError: (err) => this.reportError(err),
    });
    this.stream = stream;
    for (const type of this.types) stream.listen(type);
    stream.start();
    this.post({ kind: 'state', types: [...this.types], lastEventId: this.lastId, leader: true });
  }

  private onTabMessage(message: TabMessage): void {
    switch (message.kind) {
      case 'hello':
        this.addTypes(message.types);
        this.post({ kind: 'state', types: [...this.types], lastEventId: this.lastId, leader: this.currentRole === 'leader' });
        return;
      case 'state':
        this.addTypes(message.types);
        // A tab that joined knows no position yet; it takes the others', so it resumes there if it leads.
        if (this.lastId === undefined && message.lastEventId !== undefined) this.lastId = message.lastEventId;
        return;
      case 'types':
        this.addTypes(message.types);
        return;
      case 'event':
        this.receive(message.event, false);
        return;
      case 'reset':
        this.receiveReset(message.id, message.info, false);
        return;
    }
  }

  private addTypes(types: readonly string[]): void {
    for (const type of types) {
      if (this.types.has(type) || CONTROL_EVENT_TYPES.has(type)) continue;
      this.types.add(type);
      this.stream?.listen(type);
    }
  }

  /** One event, from this tab's stream or from the leader's: delivered once per id, forwarded if it came from the stream. */
  private receive(event: SwitchboardEvent, fromStream: boolean): void {
    if (event.id !== '') {
      if (!this.seen.add(event.id)) return;
      this.lastId = event.id;
    }
    if (fromStream) this.post({ kind: 'event', event });
    for (const handler of this.handlers.get(event.type) ?? []) this.call(() => handler(event));
  }

  private receiveReset(id: string, info: ResetInfo, fromStream: boolean): void {
    if (id !== '') {
      // Keyed apart from events: a reset's id is a position, which may equal an event's id.
      if (!this.seen.add(`reset ${id}`)) return;
      this.lastId = id;
    }
    if (fromStream) this.post({ kind: 'reset', id, info });
    for (const handler of this.resetHandlers) this.call(() => handler(info));
  }

  /** A throwing handler must not stop the others, nor the forwarding to other tabs. */
  private call(handler: () => void): void {
    try {
      handler();
    } catch (err) {
      this.reportError(err);
    }
  }

  private post(message: TabMessage): void {
    this.channel?.postMessage(message);
  }

  private reportError(err: unknown): void {
    this.options.onError?.(err);
  }
}

/** A client for one user's stream, started. */
export function connectSwitchboard<Events extends EventMap = DefaultEvents>(options: SwitchboardOptions): Switchboard<Events> {
  const client = new Switchboard<Events>(options);
  client.start();
  return client;
}
