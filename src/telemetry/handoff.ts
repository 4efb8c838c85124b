/**
 * What telemetry/start.ts — a separate entry point, loaded with `--import` before the app — hands
 * the app once it has started the SDK: a flush for shutdown and a reader of the active span's ids
 * for log lines. With tracing off nothing is handed over: the logger gets no mixin and the app
 * never loads the OpenTelemetry SDK.
 */
export type TraceFields = { trace_id?: string; span_id?: string };

export interface StartedTelemetry {
  /** Sends the spans still batched and stops the SDK. */
  flush(): Promise<void>;
  /** Must return a new object each call: pino merges the line's own fields into it. */
  traceFields(): TraceFields;
}

let started: StartedTelemetry | undefined;

export function handOver(telemetry: StartedTelemetry): void {
  started = telemetry;
}

/** True once start.ts started the SDK (an exporter is configured). */
export function tracingStarted(): boolean {
  return started !== undefined;
}

/** The reader of the active span's ids, or undefined when tracing is off. */
export function traceFieldsReader(): (() => TraceFields) | undefined {
  return started?.traceFields;
}

/** Flushes pending spans; never throws and never takes longer than `timeoutMs`. */
export async function shutdownTelemetry(timeoutMs = 2000): Promise<void> {
  if (started === undefined) return;
  await Promise.race([started.flush().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
}
