import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { ApiKeys } from './auth/api-keys.js';
import type { StreamTokens } from './auth/stream-tokens.js';
import type { WebhookSignatures } from './auth/webhook-signatures.js';
import type { Backplane } from './backplane/backplane.js';
import type { Config } from './config.js';
import type { Fleet } from './fleet/fleet.js';
import type { JobStore } from './jobs/job-store.js';
import type { EventPublisher } from './publishing/event-publisher.js';
import type { StreamRegistry } from './sse/stream-registry.js';
import type { Metrics } from './telemetry/metrics.js';

/**
 * What routes are given: the app type and the replica's shared parts. Its own module, so routes
 * depend on these types and not on app.ts, which imports the routes.
 */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

/** What the routes share; built once per replica in buildApp. */
export interface RouteContext {
  config: Config;
  backplane: Backplane;
  jobs: JobStore;
  registry: StreamRegistry;
  /** The per-user cap and presence across replicas (src/fleet/). */
  fleet: Fleet;
  publisher: EventPublisher;
  tokens: StreamTokens;
  apiKeys: ApiKeys;
  signatures: WebhookSignatures | undefined;
  lifecycle: Lifecycle;
  metrics: Metrics;
}

export interface Lifecycle {
  /** Set on SIGTERM: readiness fails and new streams are sent elsewhere. */
  draining: boolean;
}
