import type { ResetInfo, SwitchboardEvent } from './events.js';
import { streamUrl, type StreamTarget } from './stream-url.js';
import type { TokenKeeper } from './token-keeper.js';

/** First wait before reopening a stream the browser gave up on; doubles per failure up to the max. */
export const REOPEN_MIN_MS = 1_000;
export const REOPEN_MAX_MS = 30_000;

export interface StreamConnectionOptions {
  target: StreamTarget;
  tokens: TokenKeeper;
  withCredentials: boolean;
  /** The id to resume after, read each time a stream is opened. */
  lastEventId(): string | undefined;
  onEvent(event: SwitchboardEvent): void;
  /** `id` is the stream's position after the reset. */
  onReset(id: string, info: ResetInfo): void;
  onError(error: unknown): void;
}

/**
 * The one EventSource a leading tab holds. The browser's own reconnect (same URL, with
 * Last-Event-ID) covers a dropped connection; this class covers what it cannot: a new token
 * (before `exp`, and after `auth-expired`) and a browser that gave up for good (any non-200
 * answer), each with a new URL that carries `?lastEventId=`.
 */
export class StreamConnection {
  private source: EventSource | undefined;
  private readonly types = new Set<string>();
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  private reopenTimer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  /** Bumped by every open and by close: an open that awaited a token checks it is still the latest. */
  private generation = 0;
  private closed = false;

  constructor(private readonly options: StreamConnectionOptions) {}

  /** Listens to one more event type, on the open stream and every later one (EventSource has no wildcard). */
  listen(type: string): void {
    if (this.types.has(type)) return;
    this.types.add(type);
    this.source?.addEventListener(type, this.onMessage);
  }

  start(): void {
    void this.open(false);
  }

  close(): void {
    this.closed = true;
    this.generation++;
    this.clearTimers();
    this.source?.close();
    this.source = undefined;
  }

  /**
   * Opens a stream with a token, then closes the old one, if any. The old stream keeps
   * delivering while the token is fetched; the new URL resumes after the last event it delivered.
   */
  private async open(freshToken: boolean): Promise<void> {
    const generation = ++this.generation;
    this.clearTimers();
    let token: string;
    let renewAtMs: number | undefined;
    try {
      ({ token, renewAtMs } = freshToken ? await this.options.tokens.fresh() : await this.options.tokens.current());
    } catch (err) {
      if (generation !== this.generation) return;
      this.options.onError(err);
      this.reopenLater();
      return;
    }
    if (generation !== this.generation || this.closed) return;
    this.source?.close();
    const source = new EventSource(streamUrl(this.options.target, token, this.options.lastEventId()), { withCredentials: this.options.withCredentials });
    this.source = source;
    for (const type of this.types) source.addEventListener(type, this.onMessage);
    source.addEventListener('reset', (event) => this.onResetEvent(event as MessageEvent<string>));
    source.addEventListener('auth-expired', () => {
      // The service ended the stream: close it before the browser retries the old URL for a 401.
      source.close();
      void this.open(true);
    });
    source.onopen = () => {
      this.failures = 0;
    };
    source.onerror = () => {
      // CONNECTING: the browser reconnects by itself, with Last-Event-ID. CLOSED: it gave up.
      if (source !== this.source || source.readyState !== EventSource.CLOSED) return;
      this.options.onError(new Error('The stream was refused; reopening with a new token.'));
      this.reopenLater();
    };
    if (renewAtMs !== undefined) this.renewTimer = setTimeout(() => void this.open(true), Math.max(0, renewAtMs - Date.now()));
  }

  /** After a refusal (an expired or revoked token, 429, a replica's 4xx): back off, then a new token. */
  private reopenLater(): void {
    if (this.closed) return;
    this.clearTimers();
    const ceiling = Math.min(REOPEN_MAX_MS, REOPEN_MIN_MS * 2 ** this.failures);
    this.failures++;
    // Jittered, so a fleet's worth of clients refused at once do not come back at once.
    this.reopenTimer = setTimeout(() => void this.open(true), ceiling / 2 + Math.random() * (ceiling / 2));
  }

  private clearTimers(): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.reopenTimer);
  }

  private readonly onMessage = (event: Event): void => {
    const message = event as MessageEvent<string>;
    this.options.onEvent({ id: message.lastEventId, type: message.type, data: parseData(message.data) });
  };

  private onResetEvent(event: MessageEvent<string>): void {
    const data = parseData(event.data) as { reason?: unknown } | null;
    this.options.onReset(event.lastEventId, { reason: typeof data?.reason === 'string' ? data.reason : 'unknown' });
  }
}

/** Switchboard's data is JSON; anything else reaches the handler as the text it was. */
function parseData(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
