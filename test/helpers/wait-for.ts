// Waiting primitives for tests. These are the ONLY way tests should wait:
// never sleep for a fixed time, always wait for a condition with a deadline.
import { once as eventsOnce } from 'node:events';

export interface WaitForOptions {
  /** Overall deadline in ms (default 5000). */
  timeoutMs?: number;
  /** Delay between polls in ms (default 20). */
  intervalMs?: number;
  /** Included in the timeout error so the failing wait can be identified. */
  label?: string;
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    const s = JSON.stringify(value);
    if (s !== undefined) return s.length > 500 ? `${s.slice(0, 500)}…` : s;
  } catch {
    // fall through
  }
  return String(value);
}

/**
 * Polls `fn` until it returns a truthy value (a throw or a rejected promise
 * counts as "not yet"). Resolves with that value. After `timeoutMs` rejects
 * with an Error naming the label and carrying the last error / last value.
 *
 * A call of `fn` that is still pending at the deadline is abandoned (its
 * eventual result is ignored) and the wait fails.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const intervalMs = opts.intervalMs ?? 20;
  const label = opts.label ?? 'condition';
  const start = Date.now();
  const deadline = start + timeoutMs;
  let attempts = 0;
  let lastError: unknown;
  let hasError = false;
  let lastValue: unknown;
  let hasValue = false;

  const fail = (extra?: string): Error => {
    const parts = [`waitFor(${label}) timed out after ${Date.now() - start} ms (${attempts} attempts, limit ${timeoutMs} ms)`];
    if (extra) parts.push(extra);
    if (hasError) parts.push(`last error: ${describe(lastError)}`);
    if (hasValue) parts.push(`last value: ${describe(lastValue)}`);
    const err = new Error(parts.join('; '));
    if (hasError) (err as Error & { cause?: unknown }).cause = lastError;
    return err;
  };

  let pendingAtDeadline = false;
  for (;;) {
    attempts++;
    const remaining = deadline - Date.now();
    let pendingTimer: NodeJS.Timeout | undefined;
    try {
      const result = fn();
      let value: T;
      if (result instanceof Promise || (result && typeof (result as { then?: unknown }).then === 'function')) {
        const TIMEOUT = Symbol('timeout');
        const raced = await Promise.race([
          Promise.resolve(result),
          new Promise<typeof TIMEOUT>((resolve) => {
            pendingTimer = setTimeout(() => resolve(TIMEOUT), Math.max(remaining, 0));
          }),
        ]);
        if (raced === TIMEOUT) {
          // Swallow the abandoned call's eventual rejection.
          Promise.resolve(result).catch(() => {});
          pendingAtDeadline = true;
          break;
        }
        value = raced as T;
      } else {
        value = result as T;
      }
      if (value) return value as NonNullable<T>;
      lastValue = value;
      hasValue = true;
      hasError = false;
    } catch (err) {
      lastError = err;
      hasError = true;
    } finally {
      if (pendingTimer) clearTimeout(pendingTimer);
    }
    const now = Date.now();
    if (now >= deadline) throw fail();
    await new Promise<void>((resolve) => setTimeout(resolve, Math.min(intervalMs, deadline - now)));
  }
  throw fail(pendingAtDeadline ? 'the last call of fn was still pending at the deadline' : undefined);
}

/** Rejects with `${label} timed out after ${ms} ms` unless `p` settles first. */
export function withTimeout<T>(p: Promise<T>, ms: number, label: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${label} timed out after ${ms} ms`));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** Anything node's events.once() accepts: an EventEmitter or an EventTarget (e.g. EventSource). */
export type OnceTarget =
  | NodeJS.EventEmitter
  | {
      addEventListener(type: string, listener: (...args: any[]) => void, opts?: any): void;
      removeEventListener(type: string, listener: (...args: any[]) => void, opts?: any): void;
    };

/**
 * Waits for one `event` from an EventEmitter or EventTarget. Resolves with the
 * listener arguments as an array (like node's events.once: for an EventTarget
 * that is `[event]`). For an EventEmitter an 'error' event rejects. Rejects
 * with `${label} timed out after ${timeoutMs} ms (waiting for '${event}')`.
 */
export async function once(emitter: OnceTarget, event: string | symbol, timeoutMs: number, label: string): Promise<any[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    return await eventsOnce(emitter as NodeJS.EventEmitter, event as string, { signal: ac.signal });
  } catch (err) {
    if (ac.signal.aborted) {
      throw new Error(`${label} timed out after ${timeoutMs} ms (waiting for '${String(event)}')`);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
