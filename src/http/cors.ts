import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';

/** Request headers a cross-origin page may send: auth, bodies, resume, idempotency, signed callbacks. */
export const CORS_ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'Last-Event-ID',
  'Idempotency-Key',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'X-Event-Type',
] as const;

/** How long a browser may reuse a preflight answer; short, so a changed list takes effect soon. */
export const CORS_MAX_AGE_SECONDS = 600;

/** The headers a hijacked reply (the SSE stream) must carry over from the reply to its raw head. */
const CORS_RESPONSE_HEADERS = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers', 'vary'] as const;

/**
 * Cross-origin access for browsers on the origins CORS_ORIGINS names; nothing at all when it is
 * unset (no headers, and OPTIONS stays a 404). An origin that is not allowed gets no CORS header
 * and its preflight a 404, so the browser refuses the answer. A listed origin is echoed with
 * credentials allowed (cookies, for a cookie-carried token); `*` never allows credentials, as
 * the Fetch standard requires.
 */
export function registerCors(app: FastifyInstance, origins: Config['corsOrigins']): void {
  if (origins === undefined) return;
  const listed = origins === '*' ? undefined : new Set(origins);
  // Loaded only when configured: importing it costs a replica's boot some 15-25 ms.
  void app.register(import('@fastify/cors'), {
    // A request without Origin is not a cross-origin browser request: it gets no CORS header.
    origin: (origin, allow) => allow(null, origin !== undefined && (listed === undefined ? '*' : listed.has(origin))),
    credentials: listed !== undefined,
    methods: ['GET', 'HEAD', 'POST'],
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: ['X-Replica-Id'],
    maxAge: CORS_MAX_AGE_SECONDS,
  });
  // The plugin sets its headers on the fastify reply, which a hijacked reply never sends: the
  // stream writes its own head on reply.raw. Node merges headers set on the raw response into
  // that head (writeHead(status, headers) adds to, and wins over, what setHeader put there), so
  // copying them onto reply.raw here makes every stream answer — open, `retry:` + end — carry
  // them, whatever head the route writes. preHandler runs after every onRequest hook, the
  // plugin's included, and before any handler can hijack.
  app.addHook('preHandler', (_request, reply, done) => {
    if (reply.hasHeader('access-control-allow-origin')) {
      for (const name of CORS_RESPONSE_HEADERS) {
        const value = reply.getHeader(name);
        if (value !== undefined) reply.raw.setHeader(name, value);
      }
    }
    done();
  });
}
