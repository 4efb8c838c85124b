import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { ApiKeys } from '../auth/api-keys.js';

/**
 * The onRequest hook of the publisher routes. The key is checked on the headers alone, so a
 * request without a valid one is refused (401, connection closed) before a byte of its body is
 * read: an unauthenticated sender cannot make the replica buffer bodies. Callback style, like
 * the other per-request hooks: no promise per request.
 */
export function requirePublisherKey(apiKeys: ApiKeys) {
  return (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    try {
      apiKeys.check(request.headers.authorization);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  };
}
