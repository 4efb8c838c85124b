/**
 * Incremental Server-Sent Events parser for tests, written to follow the WHATWG
 * HTML "event stream interpretation" algorithm as literally as possible:
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 *
 * It is deliberately independent of src/ so it can act as an oracle for the
 * encoder. Things it models:
 *  - UTF-8 decode with replacement characters; a Buffer chunk may end in the
 *    middle of a multi-byte sequence (streaming TextDecoder).
 *  - One leading U+FEFF BOM at the very start of the stream is dropped.
 *  - Lines end with CRLF, LF or CR; a CRLF may be split across chunks.
 *  - Lines starting with ":" are comments; a line without ":" is a field name
 *    with an empty value; one leading U+0020 SPACE of the value is removed.
 *  - `event` sets the type buffer, `data` appends value + LF, `id` sets the
 *    last event ID buffer unless the value contains NUL, `retry` is honoured
 *    only if it is all ASCII digits; anything else is ignored.
 *  - A blank line dispatches: the last event ID persists across events, an
 *    empty data buffer dispatches nothing, one trailing LF of data is removed,
 *    the type defaults to "message", and data/type buffers are reset.
 *  - At end of stream (see `end()`) an incomplete line/event is discarded.
 */

export interface ParsedSseEvent {
  type: string;
  data: string;
  /** The event source's last event ID string at dispatch time (persists across events). */
  lastEventId: string;
  /** The `id` field value if this event's block itself set one (possibly ""). */
  id?: string;
}

const LF = 0x0a;
const CR = 0x0d;

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  // BOM handling happens at the text level so string and Buffer input behave the same.
  private atStreamStart = true;
  // Text of the current, not yet terminated line.
  private partialLine = '';
  // True if the previous chunk ended in CR: a leading LF in the next chunk is
  // the second half of a CRLF, not an empty line.
  private skipLeadingLf = false;
  private ended = false;

  private dataBuffer = '';
  private eventTypeBuffer = '';
  private lastEventIdBuffer = '';
  private idInThisEvent: string | undefined = undefined;

  constructor(
    private readonly onEvent: (e: ParsedSseEvent) => void,
    private readonly onComment?: (text: string) => void,
    private readonly onRetry?: (ms: number) => void,
  ) {}

  /** The event source's current last event ID string. */
  get lastEventId(): string {
    return this.lastEventIdBuffer;
  }

  push(chunk: string | Buffer | Uint8Array): void {
    if (this.ended) throw new Error('SseParser: push() after end()');
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    this.feedText(text);
  }

  /**
   * Signal end of stream. Flushes the UTF-8 decoder (an incomplete trailing
   * sequence becomes U+FFFD) and, as the spec requires, discards any pending
   * incomplete line and undispatched event.
   */
  end(): void {
    if (this.ended) return;
    this.feedText(this.decoder.decode());
    this.ended = true;
    this.partialLine = '';
    this.dataBuffer = '';
    this.eventTypeBuffer = '';
    this.idInThisEvent = undefined;
  }

  private feedText(text: string): void {
    if (text.length === 0) return;
    let start = 0;
    if (this.atStreamStart) {
      this.atStreamStart = false;
      if (text.charCodeAt(0) === 0xfeff) start = 1;
    }
    if (this.skipLeadingLf) {
      this.skipLeadingLf = false;
      if (start < text.length && text.charCodeAt(start) === LF) start++;
    }

    let lineStart = start;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== CR && c !== LF) continue;
      const line = this.partialLine + text.slice(lineStart, i);
      this.partialLine = '';
      if (c === CR) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === LF) i++;
        } else {
          // CR is the last char of this chunk; the LF may arrive in the next one.
          this.skipLeadingLf = true;
        }
      }
      lineStart = i + 1;
      this.processLine(line);
    }
    if (lineStart < text.length) this.partialLine += text.slice(lineStart);
  }

  private processLine(line: string): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      // Comment. The spec ignores it; we surface the text with one leading
      // space removed (mirroring field values) so keep-alives can be asserted.
      if (this.onComment) {
        const rest = line.slice(1);
        this.onComment(rest.charCodeAt(0) === 0x20 ? rest.slice(1) : rest);
      }
      return;
    }
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    }
    this.processField(field, value);
  }

  private processField(field: string, value: string): void {
    switch (field) {
      case 'event':
        this.eventTypeBuffer = value;
        break;
      case 'data':
        this.dataBuffer += value + '\n';
        break;
      case 'id':
        if (value.indexOf('\0') === -1) {
          this.lastEventIdBuffer = value;
          this.idInThisEvent = value;
        }
        break;
      case 'retry':
        // "consists of only ASCII digits"; an empty value is not a number, so it is ignored.
        if (/^[0-9]+$/.test(value)) this.onRetry?.(Number.parseInt(value, 10));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  private dispatch(): void {
    const id = this.idInThisEvent;
    this.idInThisEvent = undefined;
    if (this.dataBuffer.length === 0) {
      this.eventTypeBuffer = '';
      return;
    }
    let data = this.dataBuffer;
    if (data.charCodeAt(data.length - 1) === LF) data = data.slice(0, -1);
    const event: ParsedSseEvent = {
      type: this.eventTypeBuffer === '' ? 'message' : this.eventTypeBuffer,
      data,
      lastEventId: this.lastEventIdBuffer,
    };
    if (id !== undefined) event.id = id;
    this.dataBuffer = '';
    this.eventTypeBuffer = '';
    this.onEvent(event);
  }
}

/** Convenience: parse a complete stream (string or bytes) and return everything it dispatched. */
export function parseSseStream(input: string | Buffer | Uint8Array | ReadonlyArray<string | Buffer | Uint8Array>): {
  events: ParsedSseEvent[];
  comments: string[];
  retries: number[];
} {
  const events: ParsedSseEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = new SseParser(
    (e) => events.push(e),
    (c) => comments.push(c),
    (r) => retries.push(r),
  );
  const chunks = Array.isArray(input) ? input : [input as string | Buffer | Uint8Array];
  for (const chunk of chunks) parser.push(chunk);
  parser.end();
  return { events, comments, retries };
}
