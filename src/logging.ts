import type { FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';
import { traceFieldsReader } from './telemetry/handoff.js';

/** Query parameters that carry secrets; their values never reach a log line. */
const SECRET_QUERY_NAMES = new Set(['token', 'access_token']);

/**
 * The URL with the value of every secret query parameter replaced. Names are compared the way the
 * query parser reads them (percent-decoded, any case), so `?%74oken=` is caught too.
 */
export function redactUrl(url: string): string {
  const start = url.indexOf('?');
  if (start === -1) return url;
  const pairs = url.slice(start + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    return SECRET_QUERY_NAMES.has(decodeName(name).toLowerCase()) ? `${name}=[redacted]` : pair;
  });
  return `${url.slice(0, start)}?${pairs.join('&')}`;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    return name;
  }
}

/**
 * pino options for the whole replica: JSON lines, the replica id on each, the active trace and
 * span ids on each line logged inside a traced request or delivery (when tracing is on), no secrets.
 */
export function loggerOptions(config: Config): NonNullable<FastifyServerOptions['logger']> & object {
  const traceFields = traceFieldsReader();
  return {
    level: config.logLevel,
    base: { replicaId: config.replicaId },
    ...(traceFields === undefined ? {} : { mixin: traceFields }),
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
