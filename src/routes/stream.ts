import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { presentedStreamToken } from '../auth/stream-token-source.js';
import { topicChannel, userChannel } from '../backplane/redis-keys.js';
import { SwitchboardError } from '../errors.js';
import { firstPageEntries } from '../history/pages.js';
import { ReplayBudget } from '../history/replay-budget.js';
import { isValidTopic, isValidUserId, MAX_TOPICS_PER_STREAM } from '../identifiers.js';
import { ResumeGate } from '../sse/resume-gate.js';
import { sendRetryElsewhere, SseStream, type StreamEndReason } from '../sse/sse-stream.js';
import { openStream, type StreamOpenerDeps } from '../sse/stream-opener.js';

const Query = Type.Object({
  token: Type.Optional(Type.String()),
  topics: Type.Optional(Type.String()),
  lastEventId: Type.Optional(Type.String()),
});

/** Why a stream open was told to retry instead of opening; a metric label. */
type DeferReason = 'draining' | 'full' | 'backplane_not_ready' | 'resume_limit';

/** A stream without a cursor replays nothing, so it takes no resume slot. */
const NO_SLOT = { release: (): void => {} };

/**
 * GET /stream/:userId — the SSE stream. Conditions a retry cannot fix are answered with 4xx
 * (EventSource then stops for good); temporary ones (draining, full, backplane not ready, too many
 * resumes at once) with 200 + a jittered `retry:` + end, so the browser reconnects by itself, most
 * likely elsewhere. HEAD answers the same checks at once, with the stream's head and no stream.
 */
export function streamRoutes(app: App, context: RouteContext): void {
  const { config, registry, backplane, tokens, lifecycle, metrics, fleet } = context;
  // No `Connection` header: HTTP/1.1 keeps the connection alive by itself (Node says so in the
  // head), and HTTP/2 forbids connection-specific headers (Node drops one with a warning).
  const headers = {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    'x-replica-id': config.replicaId,
  };
  const cookieToken = { name: config.streamTokenCookie, corsOrigins: config.corsOrigins };
  const gate = new ResumeGate(config.maxConcurrentResumes, config.maxConcurrentResumesPerUser);
  const opener: StreamOpenerDeps = {
    registry,
    backplane,
    metrics,
    log: app.log,
    firstPageEntries: firstPageEntries(config.maxBodyBytes),
    replayBudget: new ReplayBudget(config.replayBytesPerSecond),
    retryMs: () => jitter(config.retryMs),
  };

  app.get('/stream/:userId', { schema: { params: Type.Object({ userId: Type.String() }), querystring: Query } }, async (request, reply) => {
    const { userId } = request.params;
    if (!isValidUserId(userId)) throw new SwitchboardError('invalid_user_id', 'User ids are 1-128 characters of [A-Za-z0-9._~:@-].');
    const topics = parseTopics(request.query.topics);
    const grant = tokens.check(
      presentedStreamToken(
        {
          authorization: request.headers.authorization,
          queryToken: request.query.token,
          cookieHeader: request.headers.cookie,
          origin: request.headers.origin,
        },
        cookieToken,
      ),
    );
    if (grant.userId !== userId) throw new SwitchboardError('token_user_mismatch');
    checkGranted(topics, grant.topics);
    if (request.method === 'HEAD') return reply.code(200).headers(headers).send();
    // A slot of the user's cap, across the fleet (src/fleet/): given back when the stream ends, or now if it does not open.
    if (!(await fleet.reserve(userId))) {
      throw new SwitchboardError('too_many_streams', `At most ${config.maxConnectionsPerUser} open streams per user.`);
    }
    // An empty id is no id (EventSource sends none before the first event; forms may send `?lastEventId=`).
    const cursorText = headerValue(request.headers['last-event-id']) || request.query.lastEventId || undefined;

    reply.hijack();
    const response = reply.raw;
    response.socket?.setNoDelay(true);
    const deferred: DeferReason | undefined = lifecycle.draining
      ? 'draining'
      : registry.streamCount >= config.maxConnections
        ? 'full'
        : !backplane.isReady()
          ? 'backplane_not_ready'
          : undefined;
    const slot = deferred !== undefined ? undefined : cursorText === undefined ? NO_SLOT : gate.tryEnter(userId);
    if (slot === undefined) {
      const reason = deferred ?? 'resume_limit';
      fleet.release(userId);
      metrics.streamsDeferred.inc({ reason });
      sendRetryElsewhere(response, headers, jitter(config.retryMs), reason.replaceAll('_', ' '));
      return;
    }

    const channels = [userChannel(userId), ...topics.map(topicChannel)];
    // The stream outlives the request: its callbacks keep only what they log, not `request`
    // (with its logger, query and headers), which would stay alive as long as the stream.
    const log = app.log;
    const reqId = request.id;
    const stream = new SseStream(response, {
      userId,
      channels,
      tags: channels.map((channel) => registry.tagOf(channel)),
      maxBufferedBytes: config.streamMaxBufferedBytes,
      drainTimeoutMs: config.streamDrainTimeoutMs,
      head: headers,
      retryMs: config.retryMs,
      expiresAtMs: grant.expiresAtMs,
      onEnd: (ended: SseStream, reason: StreamEndReason) => {
        registry.detach(ended);
        fleet.release(userId);
        metrics.streamsEnded.inc({ reason });
        if (reason !== 'client_closed') log.info({ reqId, userId, reason }, 'stream ended');
      },
      onReset: (cause) => metrics.resets.inc({ cause }),
    });
    await openStream(stream, cursorText, opener, reqId, slot.release);
  });
}

/**
 * Throws unless the token grants every topic. A function of its own, not an arrow inside the
 * handler: an arrow there capturing `grant` would keep it alive as long as the stream's callbacks.
 */
function checkGranted(topics: readonly string[], granted: readonly string[]): void {
  const refused = topics.find((topic) => !granted.includes(topic));
  if (refused !== undefined) throw new SwitchboardError('topic_not_granted', `The token does not grant topic "${refused}".`);
}

function parseTopics(raw: string | undefined): string[] {
  if (raw === undefined || raw === '') return [];
  const topics = [...new Set(raw.split(','))];
  if (topics.length > MAX_TOPICS_PER_STREAM) {
    throw new SwitchboardError('invalid_topic', `At most ${MAX_TOPICS_PER_STREAM} topics per stream.`);
  }
  const invalid = topics.find((topic) => !isValidTopic(topic));
  if (invalid !== undefined) throw new SwitchboardError('invalid_topic', 'Topics are 1-128 characters of [A-Za-z0-9._~:@-].');
  return topics.sort();
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Spreads reconnects: between half and one and a half times the configured hint. */
function jitter(retryMs: number): number {
  return Math.round(retryMs * (0.5 + Math.random()));
}
