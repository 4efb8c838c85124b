import type { FastifyServerOptions } from 'fastify';
import { stdSerializers } from 'pino';
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
  const pairs = url
    .slice(start + 1)
    .split('&')
    .map((pair) => {
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
 * Properties ioredis puts on an error that carry what was sent: the failed command and its
 * arguments (event JSON, job metadata, idempotency keys), and for a failed MULTI the errors of
 * each queued command, each with its own command. None of it may reach a log line.
 */
const COMMAND_FIELDS = new Set(['command', 'args', 'previousErrors']);

/** What a logged `err` becomes: pino's fields, without the original error (`raw`). */
type SerializedError = { type: string; message: string; stack: string; [key: string]: unknown };

/**
 * pino's error serializer, minus every command field at any depth (in a `cause`, an aggregated
 * error, …). The copy is made through JSON, as pino would write it, so the logged error itself
 * is left untouched.
 */
function serializeError(err: Error): SerializedError {
  const serialized = stdSerializers.err(err);
  try {
    return JSON.parse(JSON.stringify(serialized, (key, value: unknown) => (COMMAND_FIELDS.has(key) ? undefined : value))) as SerializedError;
  } catch {
    // A circular or BigInt extra: keep what identifies the error, drop the rest.
    return { type: serialized.type, message: serialized.message, stack: serialized.stack };
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
      err: serializeError,
      req: (request: { method: string; url: string; ip?: string }) => ({
        method: request.method,
        url: redactUrl(request.url),
        remoteAddress: request.ip,
      }),
    },
  };
}
