import Type from 'typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { App, RouteContext } from '../context.js';
import { ERRORS, SwitchboardError, type ErrorCode } from '../errors.js';
import { sendProblem } from '../problem-details.js';
import { checkedEvent, targetChannel, type EventFields } from '../publishing/event-checks.js';
import type { BatchEvent, Published } from '../publishing/event-publisher.js';
import { PublishAnswer } from './publish.js';
import { requirePublisherKey } from './publisher-key.js';

/** Events are checked one by one in the handler: one bad event must not refuse the rest. */
const BatchBody = Type.Object({ events: Type.Array(Type.Unknown()) });

const EventRefused = Type.Object({ code: Type.String(), status: Type.Integer(), detail: Type.String() });
const BatchAnswer = Type.Object({
  accepted: Type.Integer(),
  refused: Type.Integer(),
  results: Type.Array(Type.Union([PublishAnswer, EventRefused])),
});

type Outcome = Published | SwitchboardError;

/**
 * POST /v1/events — publish a batch: each event names a user or a topic, and is accepted or
 * refused on its own. The answer lists every event's outcome in order. Its status says how many
 * were accepted: 202 all, 207 some; none: a problem+json with the refusals' common status (400,
 * 413, 503…), or, when they differ, 503 if the backplane refused any (retry those) and 400
 * otherwise — its `results` member lists each event's problem still.
 */
export function publishBatchRoutes(app: App, { apiKeys, publisher, config }: RouteContext): void {
  app.post(
    '/v1/events',
    {
      onRequest: requirePublisherKey(apiKeys),
      bodyLimit: config.maxBatchBytes,
      errorHandler: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
        if (error.code !== 'FST_ERR_CTP_BODY_TOO_LARGE') throw error;
        return sendProblem(reply, new SwitchboardError('payload_too_large', `A batch body may be at most ${config.maxBatchBytes} bytes (MAX_BATCH_BYTES).`));
      },
      schema: { body: BatchBody, response: { 202: BatchAnswer, 207: BatchAnswer } },
    },
    async (request, reply) => {
      const { events } = request.body;
      if (events.length === 0) throw new SwitchboardError('invalid_request', '"events" must hold at least one event.');
      if (events.length > config.maxBatchEvents) {
        throw new SwitchboardError(
          'batch_too_large',
          `A batch may hold at most ${config.maxBatchEvents} events (MAX_BATCH_EVENTS); this one holds ${events.length}.`,
        );
      }
      const outcomes: Outcome[] = new Array(events.length);
      const toSend: BatchEvent[] = [];
      const sentAt: number[] = [];
      events.forEach((raw, index) => {
        try {
          toSend.push(batchEvent(raw, config.maxBodyBytes, config.historyTtlSeconds));
          sentAt.push(index);
        } catch (err) {
          outcomes[index] = err instanceof SwitchboardError ? err : new SwitchboardError('invalid_request');
        }
      });
      if (toSend.length > 0) {
        const published = await publisher.publishBatch(toSend);
        published.forEach((outcome, n) => {
          outcomes[sentAt[n] as number] = outcome;
        });
      }
      const results = outcomes.map((outcome) =>
        outcome instanceof SwitchboardError ? { code: outcome.code, status: outcome.status, detail: outcome.message } : outcome,
      );
      const refused = outcomes.filter((outcome) => outcome instanceof SwitchboardError);
      const accepted = outcomes.length - refused.length;
      if (accepted > 0) return reply.code(refused.length === 0 ? 202 : 207).send({ accepted, refused: refused.length, results });
      const code = commonCause(refused as SwitchboardError[]);
      const problem = new SwitchboardError(code, 'No event of the batch was accepted; "results" says why, event by event.');
      return sendProblem(reply, problem, { accepted, refused: refused.length, results });
    },
  );
}

/** The code of a batch none of whose events was accepted: theirs when they share it. */
function commonCause(refused: readonly SwitchboardError[]): ErrorCode {
  const first = (refused[0] as SwitchboardError).code;
  if (refused.every((error) => error.code === first)) return first;
  if (refused.some((error) => ERRORS[error.code].status === 503)) return 'backplane_unavailable';
  return 'invalid_request';
}

/** One event of the body, checked like a single publish; throws the SwitchboardError that refuses it. */
function batchEvent(raw: unknown, maxEventBytes: number, idempotencyTtlSeconds: number): BatchEvent {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SwitchboardError('invalid_request', 'Each event must be a JSON object.');
  const { user, topic, type, data, id, durable } = raw as Record<string, unknown>;
  if ((user === undefined) === (topic === undefined)) throw new SwitchboardError('invalid_request', 'Each event names exactly one of "user" or "topic".');
  if (type !== undefined && typeof type !== 'string') throw new SwitchboardError('invalid_event_type', '"type" must be a string.');
  if (id !== undefined && typeof id !== 'string') throw new SwitchboardError('invalid_request', '"id" (the idempotency key) must be a string.');
  if (durable !== undefined && typeof durable !== 'boolean') throw new SwitchboardError('invalid_request', '"durable" must be true or false.');
  const kind = user === undefined ? 'topic' : 'user';
  const name = user ?? topic;
  const channel = targetChannel(kind, typeof name === 'string' ? name : '');
  const { data: checked, ...event } = checkedEvent({ type, data, id, durable } as EventFields, idempotencyTtlSeconds);
  const dataJson = JSON.stringify(checked);
  if (Buffer.byteLength(dataJson) > maxEventBytes) {
    throw new SwitchboardError('payload_too_large', `An event's data may serialise to at most ${maxEventBytes} bytes (MAX_BODY_BYTES).`);
  }
  return { channel, route: kind, event: { ...event, dataJson } };
}
