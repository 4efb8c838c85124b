// Small HTTP helpers for tests: JSON over global fetch, arbitrary requests over
// node:http, and truly raw bytes over a TCP socket.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

export interface JsonRequestOptions {
  headers?: Record<string, string>;
  /** Adds `authorization: Bearer <token>`. */
  bearer?: string;
  /** Abort after this many ms (default 5000) so a hung server fails the test instead of hanging it. */
  timeoutMs?: number;
}

export interface JsonResponse<T = any> {
  status: number;
  /** Response headers, lower-cased names. */
  headers: Record<string, string>;
  /** Parsed body, or undefined if the body is empty or not JSON. */
  json: T | undefined;
  text: string;
}

function tryParseJson(text: string): any {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Any method via global fetch. A `body` other than undefined is sent as JSON
 * with content-type application/json (unless opts.headers sets one).
 */
export async function requestJson<T = any>(method: string, url: string, body?: unknown, opts: JsonRequestOptions = {}): Promise<JsonResponse<T>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (opts.bearer !== undefined) headers.authorization = `Bearer ${opts.bearer}`;
  for (const [k, v] of Object.entries(opts.headers ?? {})) {
    // Let callers override defaults case-insensitively.
    for (const existing of Object.keys(headers)) if (existing.toLowerCase() === k.toLowerCase()) delete headers[existing];
    headers[k] = v;
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await res.text();
  } catch (err) {
    const e = err as Error & { cause?: unknown };
    const why =
      e.name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : `${e.message}${e.cause ? ` (${String((e.cause as Error).message ?? e.cause)})` : ''}`;
    const wrapped = new Error(`${method} ${url} failed: ${why}`);
    (wrapped as Error & { cause?: unknown }).cause = err;
    throw wrapped;
  }
  const outHeaders: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    outHeaders[k] = v;
  });
  return { status: res.status, headers: outHeaders, json: tryParseJson(text) as T | undefined, text };
}

export function postJson<T = any>(url: string, body: unknown, opts: JsonRequestOptions = {}): Promise<JsonResponse<T>> {
  return requestJson<T>('POST', url, body, opts);
}

export function getJson<T = any>(url: string, opts: JsonRequestOptions = {}): Promise<JsonResponse<T>> {
  return requestJson<T>('GET', url, undefined, opts);
}

// ---------------------------------------------------------------------------

export interface RawRequestOptions {
  /** Full URL, e.g. http://127.0.0.1:1234/v1/events?x=1 */
  url: string;
  method?: string;
  /** Overrides the URL's path+query (node:http still rejects control characters and spaces). */
  path?: string;
  /**
   * Headers to send exactly as given (no defaults other than Host, and
   * Content-Length for a body). An array of pairs allows repeated headers.
   * node:http rejects CR/LF in values: use rawSocketRequest for that.
   */
  headers?: Record<string, string | string[]> | Array<[string, string]>;
  body?: string | Buffer;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  chunked?: boolean;
  /** Default 5000 ms. */
  timeoutMs?: number;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  bodyBuffer: Buffer;
  /** Parsed body, or undefined if it isn't JSON. */
  json: any;
}

/**
 * One request over node:http on its own connection (agent: false). If the
 * server answers before the whole body was sent (e.g. 413) and then drops the
 * connection, the answer is still returned.
 */
export function rawRequest(opts: RawRequestOptions): Promise<RawResponse> {
  const u = new URL(opts.url);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const method = opts.method ?? (opts.body !== undefined ? 'POST' : 'GET');
  const label = `${method} ${opts.url}`;
  return new Promise<RawResponse>((resolve, reject) => {
    let settled = false;
    let response: { status: number; headers: IncomingHttpHeaders; rawHeaders: string[]; chunks: Buffer[] } | undefined;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (response) {
        const bodyBuffer = Buffer.concat(response.chunks);
        const body = bodyBuffer.toString('utf8');
        resolve({ status: response.status, headers: response.headers, rawHeaders: response.rawHeaders, body, bodyBuffer, json: tryParseJson(body) });
      } else {
        reject(err ?? new Error(`${label}: no response`));
      }
      req.destroy();
    };
    const timer = setTimeout(() => {
      finish(new Error(`${label} timed out after ${timeoutMs} ms`));
    }, timeoutMs);

    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({
        host: u.hostname,
        port: u.port || 80,
        method,
        path: opts.path ?? `${u.pathname}${u.search}`,
        agent: false,
        setHost: true,
      });
      const hasHeader = (name: string): boolean => {
        const h = opts.headers;
        if (!h) return false;
        const names = Array.isArray(h) ? h.map(([k]) => k) : Object.keys(h);
        return names.some((k) => k.toLowerCase() === name);
      };
      if (Array.isArray(opts.headers)) {
        for (const [k, v] of opts.headers) req.appendHeader(k, v);
      } else if (opts.headers) {
        for (const [k, v] of Object.entries(opts.headers)) req.setHeader(k, v);
      }
      if (opts.body !== undefined && !opts.chunked && !hasHeader('content-length') && !hasHeader('transfer-encoding')) {
        req.setHeader('content-length', Buffer.byteLength(opts.body));
      }
    } catch (err) {
      clearTimeout(timer);
      reject(err as Error);
      return;
    }
    req.on('response', (res) => {
      response = { status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, chunks: [] };
      res.on('data', (c: Buffer) => response?.chunks.push(c));
      res.on('end', () => finish());
      res.on('error', (e) => finish(e));
      res.on('aborted', () => finish());
    });
    req.on('error', (e) => {
      // After a response started, a reset just ends it (server answered early and hung up).
      if (response) setImmediate(() => finish());
      else finish(new Error(`${label} failed: ${e.message}`, { cause: e }));
    });
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

// ---------------------------------------------------------------------------

export interface RawSocketResponse {
  /** 0 if no parsable status line arrived. */
  status: number;
  /** Lower-cased names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: string;
  /** Everything received, as text. */
  raw: string;
}

/**
 * Writes `data` byte for byte to the server at `url` (only host and port are
 * used) and reads the response. Resolves once a complete response (by
 * Content-Length or final chunk) has arrived, or the server closes the
 * connection, or the timeout passes with some data received. Include
 * `Connection: close` in your request. Rejects if nothing arrived.
 */
export function rawSocketRequest(url: string, data: string | Buffer, opts: { timeoutMs?: number } = {}): Promise<RawSocketResponse> {
  const u = new URL(url);
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise<RawSocketResponse>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const socket = connect({ host: u.hostname, port: Number(u.port || 80) });
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (buf.length === 0) {
        reject(err ?? new Error(`raw request to ${u.host}: connection closed without a response`));
        return;
      }
      resolve(parseRawResponse(buf).response);
    };
    const timer = setTimeout(() => finish(new Error(`raw request to ${u.host} timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.write(data));
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (parseRawResponse(buf).complete) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    socket.on('error', (e) => finish(e));
  });
}

function parseRawResponse(buf: Buffer): { complete: boolean; response: RawSocketResponse } {
  const raw = buf.toString('latin1');
  const headEnd = raw.indexOf('\r\n\r\n');
  const head = headEnd >= 0 ? raw.slice(0, headEnd) : raw;
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const m = /^HTTP\/\d(?:\.\d)?\s+(\d{3})/.exec(statusLine);
  const headers: Record<string, string> = {};
  for (const l of headerLines) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
  }
  const rawText = buf.toString('utf8');
  if (headEnd < 0) return { complete: false, response: { status: m ? Number(m[1]) : 0, headers, body: '', raw: rawText } };
  const bodyBytes = buf.subarray(Buffer.byteLength(raw.slice(0, headEnd + 4), 'latin1'));
  let complete = false;
  let body: Buffer = bodyBytes;
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    let p = 0;
    for (;;) {
      const eol = bodyBytes.indexOf('\r\n', p);
      if (eol < 0) break;
      const size = parseInt(bodyBytes.toString('latin1', p, eol).split(';')[0] ?? '', 16);
      if (Number.isNaN(size)) break;
      if (size === 0) {
        complete = true;
        break;
      }
      if (bodyBytes.length < eol + 2 + size + 2) break;
      parts.push(bodyBytes.subarray(eol + 2, eol + 2 + size));
      p = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const len = Number(headers['content-length']);
    complete = bodyBytes.length >= len;
    body = bodyBytes.subarray(0, len);
  } else if (m && (Number(m[1]) === 204 || Number(m[1]) === 304 || Number(m[1]) < 200)) {
    complete = true;
  }
  return { complete, response: { status: m ? Number(m[1]) : 0, headers, body: body.toString('utf8'), raw: rawText } };
}

/**
 * A well-behaved sender's pause before it retries a refused publish (RFC 9110, as the publisher
 * SDK does): the 503's Retry-After when it gave one, else `fallbackMs` (no answer at all, or a
 * proxy's 502). Retrying faster than the server asked turns a failover into a retry storm.
 */
export function retryPause(answer: { status: number; headers: Record<string, string> } | undefined, fallbackMs = 50): Promise<void> {
  const retryAfterMs = answer?.status === 503 ? Number(answer.headers['retry-after']) * 1000 : Number.NaN;
  return new Promise((resolve) => setTimeout(resolve, Number.isFinite(retryAfterMs) ? retryAfterMs : fallbackMs));
}
