/**
 * Raw-HTTP Server-Sent Events client for tests (node:http + the spec parser).
 *
 * Unlike a browser EventSource it never reconnects, accepts any status and
 * content type, keeps the raw body text, and can stop reading from the socket
 * to simulate a slow consumer. All waits are event-driven with a timeout;
 * nothing sleeps for a fixed time.
 */
import http from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { SseParser } from './sse-parser.js';
import type { ParsedSseEvent } from './sse-parser.js';

export type { ParsedSseEvent } from './sse-parser.js';

export interface OpenSseOptions {
  /** Extra request headers. `accept: text/event-stream` is sent unless overridden here. */
  headers?: Record<string, string>;
  /** How long to wait for the response headers (default 5000 ms). */
  timeoutMs?: number;
}

export interface SseConnection {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Every event dispatched so far, in order. */
  readonly events: ParsedSseEvent[];
  /** Comment lines (text after ":" with one leading space removed), e.g. keep-alives. */
  readonly comments: string[];
  /** Every valid `retry:` value seen. */
  readonly retries: number[];
  /** Raw response body text received so far (UTF-8 decoded, nothing stripped). */
  readonly body: string;
  /** Resolves when the response ends or the socket closes (never rejects). */
  readonly ended: Promise<void>;
  isEnded(): boolean;
  /** Resolves with `events` once at least `n` events have arrived. */
  waitForEvents(n: number, timeoutMs?: number): Promise<ParsedSseEvent[]>;
  /** Resolves once `predicate(conn)` is true; re-checked on every chunk and at end. */
  waitFor(predicate: (c: SseConnection) => boolean, timeoutMs?: number, label?: string): Promise<void>;
  /** Abort the request and destroy the socket. */
  close(): void;
  /** Stop reading: data backs up in the kernel and, once the TCP windows fill, on the server. */
  pauseReading(): void;
  resumeReading(): void;
}

interface Waiter {
  check(): void;
}

class Connection implements SseConnection {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly events: ParsedSseEvent[] = [];
  readonly comments: string[] = [];
  readonly retries: number[] = [];
  body = '';
  readonly ended: Promise<void>;

  private isDone = false;
  private resolveEnded!: () => void;
  private readonly waiters = new Set<Waiter>();
  private readonly bodyDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private readonly parser = new SseParser(
    (e) => this.events.push(e),
    (c) => this.comments.push(c),
    (r) => this.retries.push(r),
  );

  constructor(
    private readonly req: ClientRequest,
    private readonly res: IncomingMessage,
  ) {
    this.status = res.statusCode ?? 0;
    this.headers = res.headers;
    this.ended = new Promise<void>((resolve) => {
      this.resolveEnded = resolve;
    });

    res.on('data', (chunk: Buffer) => {
      this.body += this.bodyDecoder.decode(chunk, { stream: true });
      this.parser.push(chunk);
      this.notify();
    });
    const finish = (): void => this.finish();
    res.on('end', finish);
    res.on('close', finish);
    res.on('error', finish); // e.g. "aborted" when the server resets mid-body
    req.on('error', finish);
    req.on('close', finish);
  }

  isEnded(): boolean {
    return this.isDone;
  }

  waitForEvents(n: number, timeoutMs = 5000): Promise<ParsedSseEvent[]> {
    return this.waitFor((c) => c.events.length >= n, timeoutMs, `${n} event(s)`).then(() => this.events);
  }

  waitFor(predicate: (c: SseConnection) => boolean, timeoutMs = 5000, label = 'predicate'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (err?: Error): void => {
        if (timer) clearTimeout(timer);
        this.waiters.delete(waiter);
        if (err) reject(err);
        else resolve();
      };
      const waiter: Waiter = {
        check: () => {
          let ok: boolean;
          try {
            ok = predicate(this);
          } catch (err) {
            settle(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          if (ok) settle();
          // State is frozen once the connection is over, so fail fast instead of timing out.
          else if (this.isDone) settle(new Error(`SSE connection ended before ${label}; ${this.summary()}`));
        },
      };
      this.waiters.add(waiter);
      timer = setTimeout(() => settle(new Error(`Timed out after ${timeoutMs} ms waiting for ${label}; ${this.summary()}`)), timeoutMs);
      waiter.check();
    });
  }

  close(): void {
    this.req.destroy();
    this.res.destroy();
  }

  pauseReading(): void {
    // Pausing both stops 'data' delivery; net.Socket then stops reading from the
    // kernel once its readable buffer reaches its high-water mark, so the TCP
    // receive window fills and the server's writes start to back up.
    this.res.pause();
    this.res.socket?.pause();
  }

  resumeReading(): void {
    this.res.socket?.resume();
    this.res.resume();
  }

  private finish(): void {
    if (this.isDone) return;
    this.isDone = true;
    const tail = this.bodyDecoder.decode();
    if (tail) this.body += tail;
    this.parser.end();
    this.resolveEnded();
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w.check();
  }

  private summary(): string {
    const last = this.events.slice(-3).map((e) => `${e.type}#${e.lastEventId}:${truncate(e.data, 60)}`);
    return (
      `status=${this.status} ended=${this.isDone} events=${this.events.length}` +
      (last.length ? ` (last: ${last.join(', ')})` : '') +
      ` comments=${this.comments.length} bodyBytes=${Buffer.byteLength(this.body)}` +
      (this.status !== 200 ? ` body=${JSON.stringify(truncate(this.body, 200))}` : '')
    );
  }
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max) + '…';
}

export function openSse(url: string, opts: OpenSseOptions = {}): Promise<SseConnection> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const target = new URL(url);
  if (target.protocol !== 'http:') return Promise.reject(new Error(`openSse only supports http: URLs, got ${url}`));

  const headers: Record<string, string> = { accept: 'text/event-stream' };
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;

  return new Promise<SseConnection>((resolve, reject) => {
    // agent: false → a dedicated socket per stream, so close()/pause affect only this one.
    const req = http.request(target, { method: 'GET', headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`openSse: no response headers from ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onEarlyError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    req.once('error', onEarlyError);
    req.once('response', (res) => {
      clearTimeout(timer);
      req.off('error', onEarlyError);
      resolve(new Connection(req, res));
    });
    req.end();
  });
}
