import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { userChannel } from '../backplane/redis-keys.js';
import { SwitchboardError } from '../errors.js';
import { assertShallow } from '../json-depth.js';
import { EVENT_TYPE_RULE, isValidCorrelationId, isValidEventType, isValidIdempotencyKey } from '../identifiers.js';
import type { Job } from '../jobs/job-store.js';

const DEFAULT_CALLBACK_TYPE = 'callback';
/** Status recorded on the job when the payload does not name one. */
const CALLBACK_RECEIVED_STATUS = 'callback_received';
/**
 * Callback dedupe keys live as long as their job, and at least this long: twice the 5-minute
 * signature tolerance, so a captured signed callback cannot be replayed into a second delivery.
 */
const MIN_CALLBACK_DEDUPE_SECONDS = 600;

const STATUS = /^[A-Za-z0-9._:-]{1,64}$/;

/** Strict: a body that is not UTF-8 is not JSON (RFC 8259), and is refused rather than patched up. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });
const NO_BODY = Buffer.alloc(0);

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received: webhook signatures are computed over these bytes. */
    rawBody?: Buffer;
    /** The job behind the callback's correlation id, looked up before the body is read. */
    job: Job | null;
  }
}

/**
 * POST /v1/callbacks/:correlationId — an async job reports back to whichever replica the load
 * balancer picked. No bearer: the unguessable correlation id is the capability, plus, when
 * CALLBACK_SECRET is set, a Standard Webhooks signature made with the job's own secret (see
 * auth/webhook-signatures.ts). A retry with the same Idempotency-Key or webhook-id is answered
 * 202 again but delivered once.
 */
export function callbackRoutes(app: App, context: RouteContext): void {
  const { jobs, publisher, signatures } = context;

  // A named plugin: its name is what the tracing instrumentation calls the handler's span.
  void app.register(async function callbackRoute(scope) {
    // Only read the bytes here: the handler checks the signature over them first, then decodes
    // and parses them with Fastify's own (poisoning-safe) parser.
    const parseJson = scope.getDefaultJsonParser('error', 'error');
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request: FastifyRequest, body, done) => {
      request.rawBody = body as Buffer;
      done(null, undefined);
    });
    /** The JSON value of the raw body, or a 400 (`invalid_json`) for bytes that are not UTF-8 JSON. */
    const parseBody = (request: FastifyRequest, raw: Buffer): Promise<unknown> => {
      let text: string;
      try {
        text = UTF8.decode(raw);
      } catch {
        throw new SwitchboardError('invalid_json', 'The body is not valid UTF-8.');
      }
      return new Promise((resolve, reject) => parseJson(request, text, (err, body) => (err ? reject(err) : resolve(body))));
    };

    scope.decorateRequest('job', null);
    // An unknown or expired correlation id is 404 before anything else: its body is never read.
    scope.addHook('onRequest', async (request) => {
      const { correlationId } = request.params as { correlationId: string };
      const job = isValidCorrelationId(correlationId) ? await jobs.get(correlationId) : undefined;
      if (job === undefined) throw new SwitchboardError('job_not_found');
      request.job = job;
    });

    scope.post('/v1/callbacks/:correlationId', { schema: { params: Type.Object({ correlationId: Type.String() }) } }, async (request, reply) => {
      const job = request.job as Job;
      const { correlationId } = job;
      // Every line about this event names its job (and, when traced, its trace).
      request.log = request.log.child({ correlationId });
      signatures?.verify(correlationId, request.rawBody ?? NO_BODY, request.headers);
      const payload = request.rawBody === undefined ? null : await parseBody(request, request.rawBody);
      assertShallow(payload);

      const typeHeader = header(request, 'x-event-type');
      if (signatures !== undefined && typeHeader !== undefined) {
        // Headers other than webhook-* are not signed: whoever replays a captured callback could
        // change its type. Signed callbacks are always `callback` events.
        throw new SwitchboardError(
          'invalid_event_type',
          'X-Event-Type is not covered by the signature, so signed callbacks may not set it; they are delivered as "callback" events.',
        );
      }
      const type = typeHeader ?? DEFAULT_CALLBACK_TYPE;
      if (!isValidEventType(type)) throw new SwitchboardError('invalid_event_type', `X-Event-Type: ${EVENT_TYPE_RULE}`);
      // Signed callbacks dedupe on the signed webhook-id alone: an unsigned Idempotency-Key added
      // to a captured request must not make its replay count as a new delivery.
      const dedupeKey = signatures !== undefined ? header(request, 'webhook-id') : (header(request, 'idempotency-key') ?? header(request, 'webhook-id'));
      if (dedupeKey !== undefined && !isValidIdempotencyKey(dedupeKey)) {
        throw new SwitchboardError('invalid_request', 'Idempotency-Key must be 1-200 printable ASCII characters.');
      }

      const receivedAt = new Date().toISOString();
      const published = await publisher.publish(
        userChannel(job.userId),
        {
          type,
          data: { correlationId, payload, receivedAt },
          ...(dedupeKey === undefined ? {} : { idempotencyKey: `cb:${correlationId}:${dedupeKey}`, idempotencyTtlSeconds: dedupeSecondsFor(job) }),
        },
        { route: 'callback', correlationId },
      );
      // A retry of a callback whose first try was published but not recorded (Redis failed in
      // between, answered 503) records it now, so the job's state cannot stay behind for good.
      if (!published.duplicate || !job.callbacks.some((callback) => callback.eventId === published.id)) {
        const recorded = await jobs.recordCallback(
          correlationId,
          { eventId: published.id, type, receivedAt, receivers: published.receivers, payload },
          statusOf(payload),
        );
        if (!recorded) request.log.info({ eventId: published.id }, 'callback delivered, but its job expired before it was recorded');
      }
      request.log.info({ eventId: published.id, receivers: published.receivers, duplicate: published.duplicate }, 'callback accepted');
      return reply.code(202).send({ eventId: published.id, receivers: published.receivers, duplicate: published.duplicate });
    });
  });
}

/** A job's runner may retry a callback for as long as the job lives; a retry must stay a duplicate. */
function dedupeSecondsFor(job: Job): number {
  return Math.max(MIN_CALLBACK_DEDUPE_SECONDS, Math.ceil((Date.parse(job.expiresAt) - Date.now()) / 1000));
}

/** A payload may name the job's new status (`{"status": "done", …}`); otherwise it is "callback_received". */
function statusOf(payload: unknown): string {
  const status = typeof payload === 'object' && payload !== null ? (payload as { status?: unknown }).status : undefined;
  return typeof status === 'string' && STATUS.test(status) ? status : CALLBACK_RECEIVED_STATUS;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}
