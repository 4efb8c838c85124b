import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';
import { ApiKeys } from './auth/api-keys.js';
import { StreamTokens } from './auth/stream-tokens.js';
import { WebhookSignatures } from './auth/webhook-signatures.js';
import type { Config } from './config.js';
import type { ReplicaParts } from './connect.js';
import type { App, Lifecycle, RouteContext } from './context.js';
import { SwitchboardError } from './errors.js';
import { registerCors } from './http/cors.js';
import { http2Options } from './http/http2-options.js';
import { LoadShedder } from './http/load-shedding.js';
import { rejectDeepBodies } from './json-depth.js';
import { answerClientError, registerProblemDetails, sendProblem } from './problem-details.js';
import type { Fleet } from './fleet/fleet.js';
import { startFleet } from './fleet/start-fleet.js';
import { firstPageEntries } from './history/pages.js';
import { EventPublisher } from './publishing/event-publisher.js';
import { callbackRoutes } from './routes/callbacks.js';
import { demoRoutes } from './routes/demo.js';
import { healthRoutes, readiness } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { openapiRoutes } from './routes/openapi.js';
import { presenceRoutes } from './routes/presence.js';
import { publishRoutes } from './routes/publish.js';
import { publishBatchRoutes } from './routes/publish-batch.js';
import { streamRoutes } from './routes/stream.js';
import { tokenRoutes } from './routes/tokens.js';
import { metricsRoutes } from './routes/metrics.js';
import { StreamRegistry } from './sse/stream-registry.js';
import { Metrics } from './telemetry/metrics.js';

/** Longest path parameter the router passes on; validation then answers with the route's own code. */
const MAX_PATH_PARAM_LENGTH = 1024;
/**
 * How often Node looks for requests past REQUEST_TIMEOUT_MS (its default is 30 s, which would let
 * a stalled sender stay 30 s past the timeout). The check walks only requests still being
 * received, never the open streams, so a short interval is cheap.
 */
const MAX_TIMEOUT_CHECK_INTERVAL_MS = 1000;

export interface Switchboard {
  app: App;
  /** Ends streams in jittered batches, then closes the app (in-flight requests finish first). */
  shutdown(): Promise<void>;
}

/**
 * Builds the replica: the one place that wires its parts, in order. Never listens (main.ts does),
 * so tests can build apps directly. The backplane and job store are made by the caller, which
 * owns their start (connect.ts); closing the app closes them. `logger` is the replica's one root
 * logger: every line, the app's and the backplane's, comes from it.
 */
export function buildApp(config: Config, deps: ReplicaParts & { logger: Logger }): Switchboard {
  const app = Fastify({
    // Typed as Fastify's base logger: the route and context types are written against it.
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: config.maxBodyBytes,
    trustProxy: typeof config.trustProxy === 'boolean' ? config.trustProxy : [...config.trustProxy],
    // A request (headers and body) must arrive within REQUEST_TIMEOUT_MS, or it is answered 408
    // and its connection closed. The bound covers receiving a request, not answering it: a
    // stream's request is complete once its headers are in, so open streams are never cut.
    // No socket idle timeout (connectionTimeout): it would apply to streams as well.
    requestTimeout: config.requestTimeoutMs,
    http: {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(MAX_TIMEOUT_CHECK_INTERVAL_MS, config.requestTimeoutMs),
    },
    // Bodies and queries are validated as sent: `"type": 5` is not the string "5".
    ajv: { customOptions: { coerceTypes: false } },
    // Streams are ended by shutdown() before close; whatever is left idle need not hold exit.
    forceCloseConnections: 'idle',
    // Long enough that an over-long userId or correlation id reaches its route and gets that
    // route's 400/404, not the router's bare 414.
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    frameworkErrors: (_error, _request, reply) => sendProblem(reply, new SwitchboardError('invalid_request', 'The URL is not valid percent-encoding.')),
    clientErrorHandler: (error, socket) => answerClientError(error, socket, config.replicaId),
    // While closing, requests still reach the routes: /stream answers 200 + retry (never a bare
    // 503 that would make EventSource give up), the rest answer problem+json.
    return503OnClosing: false,
    // With TLS_CERT_FILE and TLS_KEY_FILE: HTTP/2 over TLS (HTTP/1.1 by ALPN); these win over the above.
    ...http2Options(config),
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Only JSON bodies: anything else is 415, not parsed as text and then refused as a bad shape.
  app.removeContentTypeParser('text/plain');

  const lifecycle: Lifecycle = { draining: false };
  // Gauges read live state when scraped; `registry` and `shedder` are assigned before any scrape can happen.
  const metrics = new Metrics({
    openStreams: () => registry.streamCount,
    subscribedChannels: () => registry.channelCount,
    probeAgeSeconds: () => deps.backplane.probeAgeMs() / 1000,
    probeAgesSeconds: () => new Map([...deps.backplane.probeAgesMs()].map(([shard, ms]) => [shard, ms / 1000])),
    ready: () => readiness(lifecycle, deps.backplane) === 'ready',
    inFlightPublishes: () => shedder.inFlightPublishes,
    fleetStreams: () => fleetStreamsByReplica(fleet.fleet),
  });
  const shedder: LoadShedder = new LoadShedder(
    {
      maxEventLoopDelayMs: config.shedEventLoopDelayMs,
      maxInFlightPublishes: config.shedMaxInFlightPublishes,
      retryAfterSeconds: config.shedRetryAfterSeconds,
    },
    metrics,
  );
  const registry: StreamRegistry = new StreamRegistry(
    deps.backplane,
    {
      heartbeatMs: config.heartbeatMs,
      unsubscribeDebounceMs: config.unsubscribeDebounceMs,
      heldLimit: heldLimit(config.historyMaxLen),
      firstPageEntries: firstPageEntries(config.maxBodyBytes),
    },
    deps.logger,
    metrics,
  );
  const fleet = startFleet(config, { redis: deps.redis, backplane: deps.backplane, registry, lifecycle }, deps.logger);
  const context: RouteContext = {
    config,
    backplane: deps.backplane,
    jobs: deps.jobs,
    registry,
    fleet: fleet.fleet,
    publisher: new EventPublisher(deps.backplane, metrics, config.replicaId),
    tokens: new StreamTokens(config.streamTokenSecret, config.streamTokenAudience),
    apiKeys: new ApiKeys(config.publishApiKeys),
    signatures: config.callbackSecrets.length === 0 ? undefined : new WebhookSignatures(config.callbackSecrets),
    lifecycle,
    metrics,
  };

  // Callback style, not async: it runs on every answer, and a promise per reply showed in profiles.
  app.addHook('onSend', (_request, reply, payload, done) => {
    reply.header('x-replica-id', config.replicaId);
    done(null, payload);
  });
  registerProblemDetails(app);
  registerCors(app, config.corsOrigins);
  app.addHook('preValidation', rejectDeepBodies);
  // Before any route is declared: every publish route, wherever it is declared, gets the check.
  app.addHook('onRoute', shedder.onRoute);
  app.addHook('onError', async (_request, _reply, error) => {
    if (error instanceof SwitchboardError && (error.status === 401 || error.status === 403)) metrics.authFailures.inc({ reason: error.code });
  });
  healthRoutes(app, context);
  metricsRoutes(app, context);
  openapiRoutes(app);
  streamRoutes(app, context);
  publishRoutes(app, context);
  publishBatchRoutes(app, context);
  presenceRoutes(app, context);
  tokenRoutes(app, context);
  jobRoutes(app, context);
  callbackRoutes(app, context);
  demoRoutes(app, context);

  app.addHook('onClose', async () => {
    shedder.stop();
    registry.close();
    await fleet.close();
    await deps.close();
  });

  return {
    app,
    async shutdown() {
      lifecycle.draining = true;
      fleet.fleet.announce();
      app.log.info({ streams: registry.streamCount }, 'draining');
      await registry.drain(config.drainMs / 2, config.retryMs);
      await app.close();
    },
  };
}

/** Streams per replica id across the fleet, as the last heartbeat saw them (empty while that view is out of date). */
function fleetStreamsByReplica(fleet: Fleet): Map<string, number> {
  const byReplica = new Map<string, number>();
  for (const replica of fleet.replicas() ?? []) byReplica.set(replica.replicaId, (byReplica.get(replica.replicaId) ?? 0) + replica.streams);
  return byReplica;
}

/**
 * Live messages a channel holds back while it catches up after a subscriber break; past it, the
 * channel's streams are told of a gap. About what history keeps (`MAXLEN ~` may keep somewhat
 * more than HISTORY_MAX_LEN), with a floor that keeps a tiny history useful.
 */
function heldLimit(historyMaxLen: number): number {
  return Math.max(100, Math.ceil(historyMaxLen * 1.5));
}
