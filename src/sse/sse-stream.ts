import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ChannelMessage } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/redis-keys.js';
import { comparePositions, formatSegment, SEGMENT_SEPARATOR, ZERO_POSITION, type Position } from '../history/cursor.js';
import type { ResetCause, SkipTarget } from '../history/gaps.js';
import { encodeComment, encodeEventBody, encodeIdLine, encodeRetry, frameChunk } from './encoder.js';

/** Why a stream ended; logged and counted. */
export type StreamEndReason = 'client_closed' | 'slow_client' | 'auth_expired' | 'draining' | 'not_ready' | 'rebalanced';

/** Where a stream stands in one of its channels. */
interface ChannelCursor {
  readonly tag: string;
  epoch: string;
  position: Position;
  /** `<tag>.<epoch>.<position>`: this channel's part of the stream's event ids. */
  segment: string;
}

/** An event encoded once per replica and shared by every stream it is written to. */
export interface EncodedEvent {
  message: ChannelMessage;
  /** `<tag>.<epoch>.<position>`: this event's cursor segment for its channel. */
  segment: string;
  /** `event:` and `data:` lines plus the blank line. */
  body: string;
  /** The body's length in UTF-8 bytes. */
  bodyBytes: number;
  /**
   * `id: <segment>` + body: the whole event for a stream that joined only this channel. Made on
   * first use and then shared: a stream of several channels writes its own id line and `body`
   * instead, so an event (or a replayed page) that reaches only such streams never makes it.
   */
  readonly whole: Buffer;
  /** `whole` framed as one HTTP/1.1 chunk, for streams that write their own (`ownChunkedSocket`); made on first use like `whole`. */
  readonly wholeChunk: Buffer;
  /** The length of `whole`, known without making it. */
  wholeBytes: number;
}

export interface SseStreamOptions {
  userId: string;
  /** The user's channel first, then topics; the order of segments in this stream's ids. */
  channels: readonly ChannelName[];
  tags: readonly string[];
  /** Past this many bytes queued in the socket, the client is not reading: cut it. */
  maxBufferedBytes: number;
  /** A replay waiting this long for the client to read is cut (see `drained`). */
  drainTimeoutMs: number;
  /** The SSE response head (status 200), written by `open()`. */
  head: Record<string, string>;
  /** The reconnect hint sent on open. */
  retryMs: number;
  /** When the stream's token expires: the registry's sweep then calls `expire()`. */
  expiresAtMs: number;
  onEnd: (stream: SseStream, reason: StreamEndReason) => void;
  onReset: (cause: ResetCause) => void;
}

/** A heartbeat comment, both ways it can be written (see `writeBytes`). */
const HEARTBEAT: Pick<EncodedEvent, 'whole' | 'wholeChunk'> = { whole: Buffer.from(':\n\n'), wholeChunk: Buffer.from(frameChunk(':\n\n', 3)) };
const RESET_DATA = '{"reason":"history_gap"}';
const AUTH_EXPIRED = { type: 'auth-expired', dataJson: '{"reason":"token_expired"}' };

/**
 * One open SSE response. It writes only whole events, never blocks the replica on a slow client
 * (Node buffers what the socket does not take; past `maxBufferedBytes` the stream is destroyed,
 * and the client resumes from history on reconnect), and drops any event at or before the
 * position it already wrote for that channel — which is what makes replay + live merge without
 * duplicates.
 *
 * Its life is one explicit state (see `StreamState`): opening → replaying → live → ended, where
 * any state may end. Live events are queued until `goLive()`: the stream is still replaying.
 */
export class SseStream {
  readonly userId: string;
  readonly channels: readonly ChannelName[];
  /** Per channel, in `channels` order: where this stream stands (one record, not an array per field: memory per idle stream). */
  private readonly cursors: ChannelCursor[];
  /** Kept without `tags`: the cursors hold them. */
  private readonly options: Omit<SseStreamOptions, 'tags'>;
  private state: StreamState = { name: 'opening', queued: [], queuedBytes: 0, pendingSkip: undefined };
  /** Set once the head is out, when this stream frames its own chunks (see `ownChunkedSocket`). */
  private socket: Socket | undefined;

  constructor(
    private readonly response: ServerResponse,
    { tags, ...options }: SseStreamOptions,
  ) {
    this.options = options;
    this.userId = options.userId;
    this.channels = options.channels;
    this.cursors = tags.map((tag) => ({ tag, epoch: '', position: ZERO_POSITION, segment: '' }));
    response.on('close', () => this.finish('client_closed'));
  }

  get isEnded(): boolean {
    return this.state.name === 'ended';
  }

  get expiresAtMs(): number {
    return this.options.expiresAtMs;
  }

  /** The token expired: say so and end; the client must come back with a fresh token. */
  expire(): void {
    this.end('auth_expired', undefined, AUTH_EXPIRED);
  }

  /** The cursor tag of the channel at `index` (the user's channel is 0). */
  tagAt(index: number): string {
    return (this.cursors[index] as ChannelCursor).tag;
  }

  /** Where this stream stands in a channel's history before anything is written. */
  setPosition(index: number, epoch: string, position: Position, positionText: string): void {
    const cursor = this.cursors[index] as ChannelCursor;
    cursor.epoch = epoch;
    cursor.position = position;
    cursor.segment = formatSegment(cursor.tag, epoch, positionText);
  }

  /** The id a client sends back to resume exactly here. */
  cursor(): string {
    // Built in place (no array per event): multi-channel streams rebuild it for every event.
    let id = (this.cursors[0] as ChannelCursor).segment;
    for (let i = 1; i < this.cursors.length; i++) id += SEGMENT_SEPARATOR + (this.cursors[i] as ChannelCursor).segment;
    return id;
  }

  /**
   * Writes the response head, the reconnect hint and a first comment, so `open` fires now.
   * Nothing else is written before this (heartbeats skip unopened streams): a byte written first
   * would make Node send a head without the SSE content type, which EventSource rejects for good.
   */
  open(): void {
    const state = this.state;
    if (state.name !== 'opening') return;
    this.state = { ...state, name: 'replaying' };
    this.response.writeHead(200, this.options.head);
    flattenHead(this.response);
    this.response.write(encodeRetry(this.options.retryMs) + encodeComment('connected'));
    this.socket = ownChunkedSocket(this.response);
  }

  /** Tells the client its view may have a gap and it should refetch ground truth. */
  reset(cause: ResetCause): void {
    this.write(encodeComment(cause) + encodeIdLine(this.cursor()) + encodeEventBody('reset', RESET_DATA));
    this.options.onReset(cause);
  }

  /**
   * The replica's catch-up found a gap in a channel: move past it to `to` (or stay where the
   * stream is, when the newest position is unknown) and tell the client.
   */
  skipTo(channel: ChannelName, to: SkipTarget | undefined, cause: ResetCause): void {
    const index = this.channels.indexOf(channel);
    const state = this.state;
    if (index < 0 || state.name === 'ended') return;
    if (state.name !== 'live') {
      // Still replaying: this stream's own history read may predate the gap, so tell it at goLive.
      state.pendingSkip = { channel, to, cause };
      return;
    }
    if (to !== undefined) this.setPosition(index, to.epoch, to.position, to.positionText);
    this.reset(cause);
  }

  /**
   * A live event from the backplane: queued while replaying, else written unless already seen.
   * Returns the bytes written now (0 when queued or already seen).
   */
  deliver(event: EncodedEvent): number {
    const state = this.state;
    if (state.name === 'live') return this.writeEvent(event);
    if (state.name === 'ended') return 0;
    state.queued.push(event);
    state.queuedBytes += event.wholeBytes;
    if (state.queuedBytes > this.options.maxBufferedBytes) this.cut();
    return 0;
  }

  /**
   * An event read from history during replay, written at once; returns the bytes written. The
   * replay reads its next page only after `drained()`, so what it writes stays within the
   * slow-client bound, which replayed bytes count toward like any others.
   */
  replay(event: EncodedEvent): number {
    return this.writeEvent(event);
  }

  /**
   * Resolves true once the socket has taken what was written, false if the stream ended instead.
   * A client that takes nothing for `drainTimeoutMs` is cut like any slow reader: it would
   * otherwise hold its replay (and the replica's resume slot) for as long as it likes.
   */
  async drained(): Promise<boolean> {
    if (this.isEnded) return false;
    const output = this.socket ?? this.response;
    if (!output.writableNeedDrain) return true;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(deadline);
        output.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      const deadline = setTimeout(() => {
        this.cut();
        done();
      }, this.options.drainTimeoutMs).unref();
      output.on('drain', done);
      this.response.on('close', done);
    });
    return !this.isEnded;
  }

  /** Replay is over: write what arrived meanwhile (minus what replay already wrote), then go live. */
  goLive(): void {
    const state = this.state;
    if (state.name !== 'replaying') return;
    this.state = LIVE;
    if (state.pendingSkip !== undefined) this.skipTo(state.pendingSkip.channel, state.pendingSkip.to, state.pendingSkip.cause);
    for (const event of state.queued) this.writeEvent(event);
  }

  heartbeat(): void {
    // Never while opening: a byte before the head would make Node send a head without the SSE type.
    if (this.state.name === 'replaying' || this.state.name === 'live') this.writeBytes(HEARTBEAT);
  }

  /** Ends the stream with a reconnect hint (`retry:`), so the client comes back by itself. */
  end(reason: StreamEndReason, retryMs?: number, finalEvent?: { type: string; dataJson: string }): void {
    if (this.isEnded) return;
    // Ended while still opening (drain, a failed open): it must still be a valid SSE answer.
    this.open();
    let tail = retryMs === undefined ? '' : encodeRetry(retryMs) + '\n';
    if (finalEvent !== undefined) tail += encodeEventBody(finalEvent.type, finalEvent.dataJson);
    if (tail.length > 0 && this.response.writable) this.write(tail);
    this.finish(reason);
    this.response.end();
  }

  private writeEvent(event: EncodedEvent): number {
    const message = event.message;
    const cursor = this.cursors[this.channels.indexOf(message.channel)];
    if (cursor === undefined) return 0;
    if (message.epoch !== cursor.epoch) {
      // A new history (the old one expired while the channel was idle, or was lost). This stream
      // heard every live event of the channel meanwhile, so nothing is missing: a gap is only
      // possible while the replica's subscriber was away, and its catch-up tells streams so.
      cursor.epoch = message.epoch;
      cursor.position = ZERO_POSITION;
    }
    if (comparePositions(message.position, cursor.position) <= 0) return 0;
    cursor.position = message.position;
    cursor.segment = event.segment;
    if (this.channels.length === 1) {
      this.writeBytes(event);
      return event.wholeBytes;
    }
    // One string, one write per event: two writes would double the per-write work, and Buffers
    // concatenated per stream per event showed in the fan-out profile.
    const idLine = encodeIdLine(this.cursor());
    // Ids are ASCII (the cursor alphabet), so their length is their size in bytes.
    const bytes = idLine.length + event.bodyBytes;
    this.writeText(idLine + event.body, bytes);
    return bytes;
  }

  /** Writes SSE text, of `bytes` UTF-8 bytes when the caller knows (else measured). */
  private write(text: string): void {
    this.writeText(text, this.socket === undefined ? 0 : Buffer.byteLength(text));
  }

  private writeText(text: string, bytes: number): void {
    if (this.isEnded) return;
    if (this.socket === undefined) this.response.write(text);
    else holdUntilTick(this.socket).write(frameChunk(text, bytes));
    this.cutIfBehind();
  }

  /** Writes bytes already encoded: `whole` through the response, or `wholeChunk` (made only then) to the socket. */
  private writeBytes(bytes: Pick<EncodedEvent, 'whole' | 'wholeChunk'>): void {
    if (this.isEnded) return;
    if (this.socket === undefined) this.response.write(bytes.whole);
    else holdUntilTick(this.socket).write(bytes.wholeChunk);
    this.cutIfBehind();
  }

  private cutIfBehind(): void {
    if ((this.socket ?? this.response).writableLength > this.options.maxBufferedBytes) this.cut();
  }

  /** The client stopped reading. Node would buffer without bound; cut it instead. */
  private cut(): void {
    this.finish('slow_client');
    this.response.destroy();
  }

  private finish(reason: StreamEndReason): void {
    if (this.isEnded) return;
    this.state = ENDED;
    this.options.onEnd(this, reason);
  }
}

/**
 * The whole answer to a stream that cannot open here now (replica draining or full, backplane not
 * ready, too many resumes): the SSE head, a `retry:` hint and a comment saying why, then the end,
 * so the browser reconnects by itself, most likely to another replica. Never a 5xx: EventSource
 * would give up for good.
 */
export function sendRetryElsewhere(response: ServerResponse, head: Record<string, string>, retryMs: number, reason: string): void {
  response.writeHead(200, head);
  response.end(encodeRetry(retryMs) + encodeComment(reason));
}

/**
 * Where a stream is in its life. Only these moves exist: opening → replaying (`open`, the head is
 * written), replaying → live (`goLive`), and any → ended. What a state needs lives in it: the
 * queue of live events exists only until the stream is live.
 */
type StreamState =
  | { readonly name: 'opening' | 'replaying'; queued: EncodedEvent[]; queuedBytes: number; pendingSkip: PendingSkip | undefined }
  | { readonly name: 'live' }
  | { readonly name: 'ended' };

/** A gap the replica's catch-up found while the stream was not live yet; told at goLive. */
interface PendingSkip {
  channel: ChannelName;
  to: SkipTarget | undefined;
  cause: ResetCause;
}

/** Shared by every stream in these states: nothing per stream (memory per idle stream). */
const LIVE: StreamState = { name: 'live' };
const ENDED: StreamState = { name: 'ended' };

/**
 * The socket an HTTP/1.1 response holds, when its body is chunked: the stream then writes its
 * chunks to it directly, framed as Node would frame them (`frameChunk`). Node's `response.write`
 * does more per write: a cork and a nextTick to uncork, and a four-part writev (size, CRLF, data,
 * CRLF), which together were a tenth of the fan-out profile's time. Undefined, so the stream
 * writes through the response, for HTTP/2 (its own framing) or a response without a socket of its
 * own yet (one waiting behind a pipelined request). Called after the head's first write, so the
 * head is in the socket (or its cork buffer) before any chunk written directly.
 */
function ownChunkedSocket(response: ServerResponse): Socket | undefined {
  return response.chunkedEncoding && response.socket !== null ? response.socket : undefined;
}

/** Sockets corked by `holdUntilTick`, uncorked together once the current tick is over. */
const held: Socket[] = [];

/**
 * Corks `socket` until the current tick is over, as Node's `response.write` does, so the events
 * one Redis read brings for a stream leave in one write; one nextTick for all of a tick's sockets
 * rather than one per socket. Returns the socket.
 */
function holdUntilTick(socket: Socket): Socket {
  if (socket.writableCorked === 0) {
    socket.cork();
    if (held.push(socket) === 1) process.nextTick(uncorkHeld);
  }
  return socket;
}

function uncorkHeld(): void {
  for (const socket of held) socket.uncork();
  held.length = 0;
}

/**
 * Node keeps the head it wrote (`_header`) for the life of the response, built by concatenation
 * into a tree of ~30 string pieces: ~1 KiB per idle stream in the heap snapshot. Reading one
 * character makes V8 flatten it in place into one ~250-byte string and drop the pieces. If a
 * Node version stops keeping the field, this does nothing.
 */
function flattenHead(response: ServerResponse): void {
  const head: unknown = (response as unknown as { _header?: unknown })._header;
  if (typeof head === 'string') head.charCodeAt(0);
}
