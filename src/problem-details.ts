import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { ERRORS, SwitchboardError, type ErrorCode } from './errors.js';

/** The `type` of every problem: a stable URI per code (listed in openapi.yaml's Problem schema). */
const TYPE_BASE = 'urn:switchboard:problem:';

/** Fastify's own errors that a client can cause, mapped onto the registry. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
};

/** What Node's HTTP parser reports before any route, and the answer each gets. */
const CLIENT_ERRORS: Record<string, { code: ErrorCode; statusLine: string; detail: string }> = {
  HPE_HEADER_OVERFLOW: { code: 'headers_too_large', statusLine: '431 Request Header Fields Too Large', detail: 'The request headers are too large.' },
  ERR_HTTP_REQUEST_TIMEOUT: { code: 'request_timeout', statusLine: '408 Request Timeout', detail: 'The request was not received within REQUEST_TIMEOUT_MS.' },
};
const MALFORMED = { code: 'invalid_request', statusLine: '400 Bad Request', detail: 'The request is not valid HTTP.' } as const;

/**
 * Every non-2xx answer is RFC 9457 `application/problem+json` with a stable `code`, made here and
 * only here. Nothing internal (stack, message of an unexpected error) reaches the client.
 */
export function registerProblemDetails(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const problem = toSwitchboardError(error);
    if (problem.status === 503) {
      // Expected while Redis is away or the replica drains: the caller retries; not an error.
      request.log.warn({ err: error.cause ?? error, code: problem.code }, 'service unavailable');
    } else if (problem.status >= 500) {
      request.log.error({ err: error }, 'request failed');
    }
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, new SwitchboardError('not_found', `No route for ${request.method} ${request.url.split('?')[0]}`)),
  );
}

/** `extensions`: members of the problem beyond RFC 9457's own (a batch's per-event `results`). */
export function sendProblem(reply: FastifyReply, error: SwitchboardError, extensions?: Record<string, unknown>): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  // Refused before the body was all read (a publisher key checked on the headers, a declared
  // length over the limit): close once answered, so the unread rest — or a sender that stalls
  // in it — cannot hold the connection and its buffers.
  if (!reply.request.raw.complete) reply.header('connection', 'close');
  const body = problemBody(error);
  return reply
    .code(error.status)
    .type('application/problem+json')
    .send(extensions === undefined ? body : { ...body, ...extensions });
}

function problemBody(error: SwitchboardError): Record<string, string | number> {
  return { type: TYPE_BASE + error.code, title: ERRORS[error.code].title, status: error.status, detail: error.message, code: error.code };
}

/**
 * Requests Node's HTTP parser refuses before any route (control bytes in a header, a malformed
 * request line, headers over the limit, a request not received within REQUEST_TIMEOUT_MS) still
 * get a problem+json answer — written on the raw socket, since no reply exists. The socket is
 * then destroyed, not just ended: a client that stalls would otherwise keep its half open.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket, replicaId: string): void {
  if (!socket.writable || error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const answer = (error.code === undefined ? undefined : CLIENT_ERRORS[error.code]) ?? MALFORMED;
  const body = JSON.stringify(problemBody(new SwitchboardError(answer.code, answer.detail)));
  socket.end(
    `HTTP/1.1 ${answer.statusLine}\r\nContent-Type: application/problem+json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Replica-Id: ${replicaId}\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

function toSwitchboardError(error: FastifyError): SwitchboardError {
  if (error instanceof SwitchboardError) return error;
  if (error.validation !== undefined) return new SwitchboardError('invalid_request', error.message);
  const mapped = error.code === undefined ? undefined : FASTIFY_CODES[error.code];
  if (mapped !== undefined) return new SwitchboardError(mapped, ERRORS[mapped].title);
  // JSON syntax errors from the body parser carry status 400 but no FST code in some paths.
  if (error instanceof SyntaxError || error.statusCode === 400) return new SwitchboardError('invalid_json');
  return new SwitchboardError('internal_error', 'The request could not be completed.');
}
