/** One line of `switchboard doctor`'s report. */
export interface Finding {
  /** What was checked: `env`, `redis`, `clock`, `replica http://…`. */
  check: string;
  ok: boolean;
  /** What was found; never a secret. */
  detail: string;
}

export const pass = (check: string, detail: string): Finding => ({ check, ok: true, detail });
export const fail = (check: string, detail: string): Finding => ({ check, ok: false, detail });

/**
 * Clocks further apart than this fail the check: each replica judges token `exp` and webhook
 * timestamps by its own clock, so a replica 5 s ahead ends streams 5 s early, and skew grows
 * silently when NTP stops.
 */
export const MAX_CLOCK_SKEW_MS = 2000;

/** Local time minus `remoteMs` (read between `sentMs` and `receivedMs`), allowing for the round trip and the remote's resolution. */
export function skewMs(remoteMs: number, sentMs: number, receivedMs: number, resolutionMs = 0): number {
  // The remote clock read somewhere within [remoteMs, remoteMs + resolution] while we were waiting in [sent, received].
  if (remoteMs + resolutionMs < sentMs) return sentMs - (remoteMs + resolutionMs);
  if (remoteMs > receivedMs) return receivedMs - remoteMs;
  return 0;
}

export function clockFinding(check: string, skew: number, against: string): Finding {
  const text = `${Math.abs(skew)} ms ${skew >= 0 ? 'behind' : 'ahead of'} this machine (${against})`;
  return Math.abs(skew) > MAX_CLOCK_SKEW_MS ? fail(check, `clock ${text}: more than ${MAX_CLOCK_SKEW_MS} ms; check NTP`) : pass(check, `clock ${text}`);
}
