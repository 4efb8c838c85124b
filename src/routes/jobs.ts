import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { bearer } from '../auth/api-keys.js';
import { MAX_JOB_TTL_SECONDS } from '../config.js';
import { SwitchboardError } from '../errors.js';
import { isValidCorrelationId, isValidUserId } from '../identifiers.js';
import { newCorrelationId, type Job } from '../jobs/job-store.js';
import { requirePublisherKey } from './publisher-key.js';

const JobBody = Type.Object({
  userId: Type.String(),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_JOB_TTL_SECONDS })),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

/** POST /v1/jobs and GET /v1/jobs/:correlationId — register an async job, read its state. */
export function jobRoutes(app: App, { apiKeys, tokens, jobs, config, signatures }: RouteContext): void {
  app.post('/v1/jobs', { onRequest: requirePublisherKey(apiKeys), schema: { body: JobBody } }, async (request, reply) => {
    const { userId, ttlSeconds = config.jobTtlSeconds, metadata } = request.body;
    if (!isValidUserId(userId)) throw new SwitchboardError('invalid_user_id');
    const job = await jobs.create({ correlationId: newCorrelationId(), userId, ttlSeconds, metadata });
    return reply.code(201).send({
      correlationId: job.correlationId,
      callbackUrl: `${baseUrl(request, config.publicUrl)}/v1/callbacks/${job.correlationId}`,
      expiresAt: job.expiresAt,
      // The job runner signs its callbacks with this; it is valid for this job only.
      ...(signatures === undefined ? {} : { callbackSecret: signatures.secretFor(job.correlationId) }),
    });
  });

  /** The ground truth a client refetches after a `reset`: the publisher key or the job user's token. */
  app.get('/v1/jobs/:correlationId', { schema: { params: Type.Object({ correlationId: Type.String() }) } }, async (request) => {
    const credential = bearer(request.headers.authorization);
    const isPublisher = credential !== undefined && apiKeys.isValid(credential);
    const grant = isPublisher ? undefined : tokens.check(credential);
    const { correlationId } = request.params;
    const job: Job | undefined = isValidCorrelationId(correlationId) ? await jobs.get(correlationId) : undefined;
    if (job === undefined) throw new SwitchboardError('job_not_found');
    if (grant !== undefined && grant.userId !== job.userId) throw new SwitchboardError('token_user_mismatch');
    return job;
  });
}

/**
 * PUBLIC_URL, or the URL this request came to. The scheme is http or https and nothing else:
 * behind a trusted proxy it comes from X-Forwarded-Proto, which must not make `javascript://…`.
 */
function baseUrl(request: FastifyRequest, publicUrl: string | undefined): string {
  if (publicUrl !== undefined) return publicUrl;
  return `${request.protocol.toLowerCase() === 'https' ? 'https' : 'http'}://${request.host}`;
}
