import type { ServerResponse } from 'node:http';
import Type from 'typebox';
import type { App, RouteContext } from '../app.js';
import type { ChannelMessage } from '../backplane/backplane.js';
import { bearer } from '../auth/api-keys.js';
import { topicChannel, userChannel } from '../backplane/channels.js';
import { withTimeout } from '../deadline.js';
import { SwitchboardError } from '../errors.js';
import { planResume } from '../history/resume.js';
import { isValidTopic, isValidUserId, MAX_TOPICS_PER_STREAM } from '../identifiers.js';
import { encodeComment, encodeRetry } from '../sse/encoder.js';
import { SseStream, type StreamEndReason } from '../sse/sse-stream.js';
import { startReplaySpan } from '../telemetry/tracing.js';

/** A stream whose channels are not subscribed and read by then is sent to retry elsewhere. */
const OPEN_TIMEOUT_MS = 5000;

const Query = Type.Object({
  token: Type.Optional(Type.String()),
  topics: Type.Optional(Type.String()),
  lastEventId: Type.Optional(Type.String()),
});

/**
 * GET /stream/:userId — the SSE stream. Conditions a retry cannot fix are answered with 4xx
 * (EventSource then stops for good); temporary ones (draining, full, backplane not ready) with
 * 200 + a jittered `retry:` + end, so the browser reconnects by itself, most likely elsewhere.
 */
export function streamRoutes(app: App, context: RouteContext): void {
  const { config, registry, backplane, tokens, lifecycle, metrics } = context;
  const headers = {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-replica-id': config.replicaId,
  };

  app.get('/stream/:userId', { schema: { params: Type.Object({ userId: Type.String() }), querystring: Query } }, async (request, reply) => {
    const { userId } = request.params;
    if (!isValidUserId(userId)) throw new SwitchboardError('invalid_user_id', 'User ids are 1-128 characters of [A-Za-z0-9._~:@-].');
    const topics = parseTopics(request.query.topics);
    const grant = tokens.check(bearer(request.headers.authorization) ?? request.query.token);
    if (grant.userId !== userId) throw new SwitchboardError('token_user_mismatch');
    checkGranted(topics, grant.topics);
    if (registry.streamsOfUser(userId) >= config.maxConnectionsPerUser) {
      throw new SwitchboardError('too_many_streams', `At most ${config.maxConnectionsPerUser} open streams per user on one replica.`);
    }
    // An empty id is no id (EventSource sends none before the first event; forms may send `?lastEventId=`).
    const cursorText = headerValue(request.headers['last-event-id']) || request.query.lastEventId || undefined;

    reply.hijack();
    const response = reply.raw;
    response.socket?.setNoDelay(true);
    const temporary = lifecycle.draining ? 'draining' : registry.streamCount >= config.maxConnections ? 'full' : !backplane.isReady() ? 'backplane not ready' : undefined;
    if (temporary !== undefined) {
      retryElsewhere(response, headers, jitter(config.retryMs), temporary);
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
      head: headers,
      retryMs: config.retryMs,
      expiresAtMs: grant.expiresAtMs,
      onEnd: (ended: SseStream, reason: StreamEndReason) => {
        registry.detach(ended);
        metrics.streamsEnded.inc({ reason });
        if (reason !== 'client_closed') log.info({ reqId, userId, reason }, 'stream ended');
      },
      onReset: (cause) => metrics.resets.inc({ cause }),
    });

    let plan;
    try {
      await withTimeout(registry.attach(stream), OPEN_TIMEOUT_MS, 'subscribing the stream\'s channels');
      plan = await withTimeout(planResume(stream, cursorText, backplane, registry, registry.replayLimit), OPEN_TIMEOUT_MS, 'reading history');
    } catch (err) {
      log.warn({ reqId, err, userId }, 'stream could not be opened; asking the client to retry');
      stream.end('not_ready', jitter(config.retryMs));
      return;
    }
    if (stream.isEnded) return;

    stream.open();
    if (plan.reset !== undefined) stream.reset(plan.reset);
    if (plan.replay.length > 0) await replay(stream, plan.replay, context);
    stream.goLive();
  });
}

/**
 * Writes a resume's history to the stream, paced by the client (a long replay waits for the
 * socket to drain rather than pile up past the slow-client bound), inside one replay span.
 */
async function replay(stream: SseStream, messages: readonly ChannelMessage[], { registry, metrics }: RouteContext): Promise<void> {
  const span = startReplaySpan(
    'resume',
    messages.flatMap((message) => (message.header.tc === undefined ? [] : [message.header.tc])),
    { 'messaging.destination.name': stream.channels.join(','), 'switchboard.replayed_events': messages.length },
  );
  let bytes = 0;
  for (const message of messages) {
    const encoded = registry.encode(message, registry.tagOf(message.channel));
    if (encoded !== undefined) bytes += await stream.replay(encoded);
    if (stream.isEnded) break;
  }
  metrics.replayedEvents.inc(messages.length);
  span.setAttribute('switchboard.bytes_written', bytes);
  span.end();
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
export function jitter(retryMs: number): number {
  return Math.round(retryMs * (0.5 + Math.random()));
}

function retryElsewhere(response: ServerResponse, headers: Record<string, string>, retryMs: number, reason: string): void {
  response.writeHead(200, headers);
  response.end(encodeRetry(retryMs) + encodeComment(reason));
}
