import type { FastifyBaseLogger } from 'fastify';
import type { Backplane } from '../backplane/backplane.js';
import { withTimeout } from '../deadline.js';
import { planResume } from '../history/resume.js';
import { replayHistory, type ChannelReplay } from '../history/replay.js';
import type { ReplayBudget } from '../history/replay-budget.js';
import type { Metrics } from '../telemetry/metrics.js';
import { startReplaySpan } from '../telemetry/tracing.js';
import type { SseStream } from './sse-stream.js';
import type { StreamRegistry } from './stream-registry.js';

/** A stream whose channels are not subscribed, or first history page not read, by then is sent to retry. */
const OPEN_TIMEOUT_MS = 5000;
/** The longest a new stream's head waits for its channels' subscribe (see openStream). */
const HEAD_GRACE_MS = 200;
/**
 * Redis stamps history ids with its own clock; replicas' clocks are taken to be within this of
 * it (NTP keeps them far closer). A stream opened before its subscribe replays history from this
 * long before its head: at worst a few events the client did not ask for, never one it missed.
 */
const CLOCK_SKEW_MS = 1000;

export interface StreamOpenerDeps {
  registry: StreamRegistry;
  backplane: Backplane;
  metrics: Metrics;
  log: FastifyBaseLogger;
  /** Entries in each channel's first history page (see history/pages.ts). */
  firstPageEntries: number;
  /** The replica's replay bandwidth, shared by every resume. */
  replayBudget: ReplayBudget;
  /** The reconnect hint, jittered, for a stream that cannot be opened now. */
  retryMs: () => number;
}

/**
 * A stream's open sequence, in the one order that loses nothing:
 *
 *   attach (subscribe; the head once confirmed, or after 200 ms) → plan (first history page) → reset? → replay (paged) → live
 *
 * The head is written once the stream's channels are subscribed (well under a millisecond when
 * Redis is healthy, at once when this replica already holds them), so a client that reacts to
 * `open` by causing an event is sure to get it; but never later than HEAD_GRACE_MS, so a slow or
 * paused Redis does not keep the client and its proxies from seeing the stream open. A stream
 * whose head went out first (its subscribe took longer) starts, where it has no cursor, from
 * what history holds since just before its head (CLOCK_SKEW_MS), so an event the client caused on
 * seeing `open` is not missed even when it reached Redis before the SUBSCRIBE.
 *
 * Channels are subscribed before history is read: an event published in between is then both
 * read and queued live, and the stream drops the second copy by its position (a channel started
 * at its newest position, with nothing replayed, writes every event it hears: see
 * history/resume.ts). Anything that fails before live ends the stream with a `retry:`, so the
 * client comes back (with its last id) rather than giving up. `done` runs once the replay is
 * over, however it ended: the caller's resume slot is released there.
 */
export async function openStream(stream: SseStream, cursorText: string | undefined, deps: StreamOpenerDeps, reqId: string, done: () => void): Promise<void> {
  const { registry, backplane } = deps;
  const attached = registry.attach(stream);
  const subscribedInTime = await settledOrAfter(attached, HEAD_GRACE_MS);
  // Opened before its channels were subscribed: what was accepted since is read from history.
  const openedBefore = subscribedInTime ? undefined : { ms: Date.now() - CLOCK_SKEW_MS, seq: 0 };
  stream.open();
  try {
    await withTimeout(attached, OPEN_TIMEOUT_MS, "subscribing the stream's channels");
    const plan = await withTimeout(
      planResume(stream, cursorText, backplane, registry, deps.firstPageEntries, openedBefore),
      OPEN_TIMEOUT_MS,
      'reading history',
    );
    if (stream.isEnded) return;
    if (plan.reset !== undefined) stream.reset(plan.reset);
    if (plan.replays.length > 0) await replay(stream, plan.replays, deps);
    if (!stream.isEnded) stream.goLive();
  } catch (err) {
    deps.log.warn({ reqId, err, userId: stream.userId }, 'stream could not be opened; asking the client to retry');
    stream.end('not_ready', deps.retryMs());
  } finally {
    done();
  }
}

/** Writes a resume's history at the client's pace, inside one replay span linked to the first page's producers. */
async function replay(stream: SseStream, replays: readonly ChannelReplay[], { registry, metrics, replayBudget }: StreamOpenerDeps): Promise<void> {
  const carriers = replays.flatMap((channel) => channel.pending.flatMap((message) => (message.header.tc === undefined ? [] : [message.header.tc])));
  const span = startReplaySpan('resume', carriers, { 'messaging.destination.name': stream.channels.join(',') });
  let bytes = 0;
  try {
    const events = await replayHistory(replays, replayBudget, {
      write: (message) => {
        const encoded = registry.encode(message, registry.tagOf(message.channel));
        if (encoded !== undefined) bytes += stream.replay(encoded);
      },
      gap: (_channel, cause) => stream.reset(cause),
      drained: () => stream.drained(),
      get ended() {
        return stream.isEnded;
      },
    });
    metrics.replayedEvents.inc(events);
    span.setAttributes({ 'switchboard.replayed_events': events, 'switchboard.bytes_written': bytes });
  } finally {
    span.end();
  }
}

/** Resolves true when `promise` settles (either way) within `ms`, false when `ms` passes first. */
function settledOrAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms).unref();
  });
  const settled = promise.then(
    () => true,
    () => true,
  );
  return Promise.race([settled, grace]).finally(() => clearTimeout(timer));
}
