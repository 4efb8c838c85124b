import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { tracingStarted } from './handoff.js';

/**
 * Thin tracing helpers. Without a configured exporter the SDK is never started (see start.ts) and
 * every call here hits the API's no-op implementation. Attributes never carry tokens or payloads.
 */
const TRACER_NAME = 'switchboard';
const tracer = trace.getTracer(TRACER_NAME);

/** True when start.ts started the SDK (an exporter is configured): spans are worth building. */
export const isTracing = tracingStarted;

const SPAN_PUBLISH = 'switchboard.publish';
const SPAN_DELIVER = 'switchboard.deliver';
const SPAN_REPLAY = 'switchboard.replay';

const SEND: Attributes = { 'messaging.system': 'redis', 'messaging.operation.type': 'send', 'messaging.operation.name': 'publish' };
const PROCESS: Attributes = { 'messaging.system': 'redis', 'messaging.operation.type': 'process', 'messaging.operation.name': 'deliver' };

/** The PRODUCER span of one publish, child of the active (HTTP server) span. */
export function startPublishSpan(attributes: Attributes): Span {
  return tracer.startSpan(SPAN_PUBLISH, { kind: SpanKind.PRODUCER, attributes: { ...SEND, ...attributes } });
}

/** W3C trace context of `span`, to travel inside the envelope; undefined when not recording. */
export function traceContextOf(span: Span): Record<string, string> | undefined {
  if (!span.isRecording()) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return Object.keys(carrier).length > 0 ? carrier : undefined;
}

/** Runs `fn` with `span` active: spans it starts are its children, log lines carry its ids. */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** The CONSUMER span of a live delivery on one replica: a child of the producer whose context came along. */
export function startDeliverSpan(carrier: Record<string, string>, attributes: Attributes): Span {
  const parent = propagation.extract(ROOT_CONTEXT, carrier);
  return tracer.startSpan(SPAN_DELIVER, { kind: SpanKind.CONSUMER, attributes: { ...PROCESS, ...attributes } }, parent);
}

/** What made a replica write events from history: a stream's resume, or its subscriber coming back. */
export type ReplayTrigger = 'resume' | 'catch_up';

/** Replay spans link to at most this many of the replayed events' producer spans. */
const MAX_REPLAY_LINKS = 32;

/**
 * One CONSUMER span for writing events from history, linked to the PRODUCER spans of the events
 * it re-delivered (their traces ended long ago, so links, not parents).
 */
export function startReplaySpan(trigger: ReplayTrigger, carriers: readonly Record<string, string>[], attributes: Attributes): Span {
  const links = carriers.slice(0, MAX_REPLAY_LINKS).flatMap((carrier) => {
    const spanContext = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, carrier));
    return spanContext === undefined ? [] : [{ context: spanContext }];
  });
  return tracer.startSpan(SPAN_REPLAY, { kind: SpanKind.CONSUMER, links, attributes: { ...PROCESS, 'switchboard.replay.trigger': trigger, ...attributes } });
}

export function endWithError(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.name : 'error' });
  span.end();
}
