/**
 * Server-Sent Events wire encoding (hot path).
 *
 * Everything here is pure string building. Any caller-supplied value that ends
 * up in a field line is validated so it cannot inject new fields or terminate
 * the event early (CWE-93: CR, LF and NUL are refused).
 *
 * Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html
 */

import { isEventTypeName } from '../identifiers.js';

export class SseEncodingError extends Error {
  readonly code = 'sse_encoding' as const;

  constructor(message: string) {
    super(message);
    this.name = 'SseEncodingError';
  }
}

// One precompiled regex, no per-call allocation. CR/LF end a line in the SSE
// grammar; NUL makes browsers drop an `id` and is never legitimate in a field.
const UNSAFE_FIELD_CHARS = /[\r\n\0]/;

// Used only on the defensive (non-JSON.stringify) data path.
const LINE_BREAK = /\r\n|\r|\n/;

function isSafeFieldValue(value: string): boolean {
  return !UNSAFE_FIELD_CHARS.test(value);
}

export function encodeIdLine(id: string): string {
  // An empty `id:` would *reset* the client's last event ID; never emit that by accident.
  if (id.length === 0) throw new SseEncodingError('event id must not be empty');
  if (!isSafeFieldValue(id)) throw new SseEncodingError('event id contains CR, LF or NUL');
  // The parser strips exactly one space after the colon, so ids with leading
  // spaces round-trip unchanged.
  return 'id: ' + id + '\n';
}

export function encodeEventBody(type: string, dataJson: string): string {
  // The charset check also excludes CR/LF/NUL, so no separate safety check is needed.
  if (!isEventTypeName(type)) {
    throw new SseEncodingError('event type must be 1-64 characters of [A-Za-z0-9._:-]');
  }
  // Fast path: JSON.stringify output is always a single line (it escapes
  // control characters, including CR, LF and NUL, as \r, \n, \u0000), so this
  // is what every real caller hits.
  if (dataJson.indexOf('\n') === -1 && dataJson.indexOf('\r') === -1) {
    return 'event: ' + type + '\ndata: ' + dataJson + '\n\n';
  }
  // Defensive path (never taken for JSON.stringify output): one `data:` line
  // per physical line, which the client re-joins with "\n". A raw line break
  // therefore can neither start a new field nor dispatch the event early.
  // (CRLF/CR are normalised to LF by this round trip.)
  const lines = dataJson.split(LINE_BREAK);
  let out = 'event: ' + type + '\n';
  for (const line of lines) out += 'data: ' + line + '\n';
  return out + '\n';
}

export function encodeComment(text: string): string {
  // Comments are used for keep-alives; a line break would turn the tail into a real field.
  if (!isSafeFieldValue(text)) throw new SseEncodingError('comment contains CR, LF or NUL');
  return ': ' + text + '\n\n';
}

export function encodeRetry(ms: number): string {
  // The client only accepts ASCII digits, so negatives/fractions/NaN would be silently ignored.
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new SseEncodingError('retry must be a non-negative integer number of milliseconds');
  }
  return 'retry: ' + String(ms) + '\n';
}

/**
 * `text` of `bytes` UTF-8 bytes as one HTTP/1.1 chunk: its size in hex, CRLF, the data, CRLF
 * (RFC 9112, 7.1), for a stream that writes its chunks to the socket itself (see sse-stream.ts).
 */
export function frameChunk(text: string, bytes: number): string {
  return bytes.toString(16) + '\r\n' + text + '\r\n';
}
