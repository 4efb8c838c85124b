import type { FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';

/** Query parameters that carry secrets; their values never reach a log line. */
const SECRET_QUERY = /([?&](?:token|access_token)=)[^&#]*/gi;

export const redactUrl = (url: string): string => url.replace(SECRET_QUERY, '$1[redacted]');

/** pino options for the whole replica: JSON lines, replica id on each, no secrets. */
export function loggerOptions(config: Config): NonNullable<FastifyServerOptions['logger']> & object {
  return {
    level: config.logLevel,
    base: { replicaId: config.replicaId },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["webhook-signature"]', 'headers.authorization'],
      censor: '[redacted]',
    },
    serializers: {
      req: (request: { method: string; url: string; ip?: string }) => ({
        method: request.method,
        url: redactUrl(request.url),
        remoteAddress: request.ip,
      }),
    },
  };
}
