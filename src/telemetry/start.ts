// Loaded before the app: `node --import ./dist/telemetry/start.js dist/main.js` (npm start does).
// Without an exporter configured it loads nothing and returns: tracing off costs nothing.
import { register } from 'node:module';
import { telemetrySettings } from '../config.js';
import { onTelemetryShutdown } from './shutdown.js';

const settings = telemetrySettings();
if (settings.tracing) {
  // Without this loader hook, modules imported from ESM (fastify, ioredis) are not instrumented.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  const { IORedisInstrumentation } = await import('@opentelemetry/instrumentation-ioredis');
  const { FastifyOtelInstrumentation } = await import('@fastify/otel');
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': settings.serviceName, 'service.instance.id': settings.replicaId }),
    instrumentations: [
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        // Streams live for hours: a span per stream would never end. Health checks are noise.
        ignorePaths: (route: { url: string }) => ['/stream/:userId', '/healthz', '/readyz', '/metrics'].includes(route.url),
        // The request span records the path without its query: `?token=` must never be exported.
        requestHook: (span: { setAttribute(k: string, v: string): void }, request: { url: string }) => {
          span.setAttribute('url.path', request.url.split('?')[0] ?? '');
        },
      }),
      // Only Redis commands inside a traced request (the publish script), not the probe.
      new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command: string) => command }),
    ],
  });
  sdk.start();
  onTelemetryShutdown(() => sdk.shutdown());
}
