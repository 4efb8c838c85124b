import { FastifyOtelInstrumentation } from '@fastify/otel';
import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { TelemetrySettings } from '../config.js';
import type { StartedTelemetry, TraceFields } from './handoff.js';

/**
 * Starts the OpenTelemetry SDK (loaded by start.ts only when an exporter is configured). The
 * exporter, endpoint, protocol, sampler and batching come from the standard OTEL_* variables.
 * Returns what the app needs of it: the flush main.ts calls before exit, the log lines' trace ids.
 */
export function startSdk(settings: TelemetrySettings): StartedTelemetry {
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': settings.serviceName, 'service.instance.id': settings.replicaId }),
    // One metrics stack: prom-client at GET /metrics. Logs are pino lines on stdout carrying
    // trace ids. Without these empty lists the SDK would also push OTLP metrics and logs.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        ignorePaths: ({ url }) => isUntraced(url),
        // The request span, plus a span around the handler (it carries the span into the handler
        // even after the body was read on other ticks); a span per hook is noise.
        instrumentHooks: false,
        // @fastify/otel records `url.path` as the raw URL, query included: `?token=` must never
        // be exported.
        requestHook: (span, request) => span.setAttribute('url.path', pathOf(request.url)),
      }),
      // Only commands inside a traced request (the publish script, job reads), not the probe.
      // The statement is the command name alone: the publish script's arguments are the payload.
      new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command) => command }),
    ],
  });
  sdk.start();
  return { flush: () => sdk.shutdown(), traceFields: activeTraceFields };
}

/** Health probes and scrapes are noise; a stream lives for hours, so its span would never end. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * True for requests that get no span. @fastify/otel asks with a route pattern
 * (`/stream/:userId`) when routes are registered and with the raw URL, query included, per request.
 */
export function isUntraced(url: string): boolean {
  const path = pathOf(url);
  return path.startsWith('/stream/') || UNTRACED_PATHS.has(path);
}

export function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The active span's ids, in the field names OpenTelemetry's log correlation uses. */
function activeTraceFields(): TraceFields {
  const spanContext = trace.getSpan(context.active())?.spanContext();
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
