/**
 * Trace ids on log lines. start.ts installs the reader when it starts the SDK; logging.ts turns it
 * into a pino mixin. Without tracing nothing is installed and the logger gets no mixin at all, so
 * log lines cost nothing extra and the log path never loads the OpenTelemetry API.
 */
export type TraceFields = { trace_id?: string; span_id?: string };

let reader: (() => TraceFields) | undefined;

/** `read` must return a new object each call: pino merges the line's own fields into it. */
export function installTraceFields(read: () => TraceFields): void {
  reader = read;
}

/** The reader of the active span's ids, or undefined when tracing is off. */
export function traceFieldsReader(): (() => TraceFields) | undefined {
  return reader;
}
