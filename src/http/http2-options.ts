import { readFileSync } from 'node:fs';
import type { FastifyHttpOptions } from 'fastify';
import type { Server } from 'node:http';
import { type Config, ConfigError } from '../config.js';

/**
 * Fastify closes an HTTP/2 session with no frame either way for this long (its default, 72 s).
 * A session that holds streams has the heartbeat at least every HEARTBEAT_MS, so the bound stays
 * above two heartbeats: a long HEARTBEAT_MS must not cut open streams.
 */
const HTTP2_SESSION_TIMEOUT_MS = 72_000;

/** What a replica's server options become with TLS; empty without it. */
type Http2Options = Pick<FastifyHttpOptions<Server>, 'forceCloseConnections'>;

/**
 * With TLS_CERT_FILE and TLS_KEY_FILE, the Fastify options that serve HTTP/2 over TLS, and
 * HTTP/1.1 over TLS to clients that do not offer h2 in ALPN (`allowHTTP1`); nothing without them
 * (plain HTTP/1.1). Over HTTP/2 a browser multiplexes every stream to an origin on one
 * connection, instead of the six connections per origin HTTP/1.1 allows it.
 *
 * Typed as HTTP/1.1 options on purpose: the routes are written against Node's IncomingMessage and
 * ServerResponse, and an HTTP/2 request reaches them through Node's compatibility API
 * (Http2ServerRequest/Http2ServerResponse), the same shape for what they use. The differences that
 * matter are handled where they arise: HTTP/2 allows no connection-specific header (`Connection`;
 * the stream head sets none), and its server has no `closeIdleConnections`, so closing ends its
 * sessions instead (`forceCloseConnections: true`). The app's `http` timeouts are HTTP/1.1
 * server settings and do not apply here.
 *
 * Reads the two PEM files now: a missing or unreadable one stops the boot, naming the variable.
 */
export function http2Options(config: Config): Http2Options {
  if (config.tls === undefined) return {};
  const options = {
    http2: true,
    https: { allowHTTP1: true, cert: readPem('TLS_CERT_FILE', config.tls.certFile), key: readPem('TLS_KEY_FILE', config.tls.keyFile) },
    http2SessionTimeout: Math.max(HTTP2_SESSION_TIMEOUT_MS, 2 * config.heartbeatMs + 1000),
    forceCloseConnections: true,
  } as const;
  return options as Http2Options;
}

function readPem(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
