/**
 * Lets main.ts flush the tracing SDK started by start.ts (a separate entry point) before exit,
 * without importing the SDK when tracing is off.
 */
let flush: (() => Promise<void>) | undefined;

export function onTelemetryShutdown(fn: () => Promise<void>): void {
  flush = fn;
}

/** Flushes pending spans; never throws and never takes longer than `timeoutMs`. */
export async function shutdownTelemetry(timeoutMs = 2000): Promise<void> {
  if (flush === undefined) return;
  await Promise.race([flush().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
}
