/**
 * What the app's token function answers: the token alone (its JWT `exp` is read), or the token
 * with `expiresAt` as POST /v1/tokens answers it.
 */
export type TokenAnswer = string | { token: string; expiresAt?: string | number };
export type TokenSource = () => Promise<TokenAnswer>;

export interface TokenGrant {
  token: string;
  /** Undefined when neither the answer nor the token tells: then it is renewed only on `auth-expired`. */
  expiresAtMs: number | undefined;
  /** When to fetch the next one, so a stream never runs into `exp`. */
  renewAtMs: number | undefined;
}

/** Renew at most this long before `exp`… */
export const MAX_RENEW_MARGIN_MS = 60_000;
/** …and at most this share of the token's lifetime before it, so a short-lived token is used for most of its life. */
export const RENEW_MARGIN_SHARE = 0.2;
/**
 * No sooner than this after fetching: an app whose function keeps answering an almost expired
 * token must not make the client fetch in a tight loop.
 */
export const MIN_RENEW_DELAY_MS = 1_000;

/** The `exp` claim of a JWT, in ms; undefined when the token is not a JWT with a numeric `exp`. */
export function jwtExpiryMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '=')));
    const exp = typeof claims === 'object' && claims !== null ? (claims as { exp?: unknown }).exp : undefined;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** The grant for an answer fetched at `nowMs`. */
export function grantOf(answer: TokenAnswer, nowMs: number, renewBeforeMs?: number): TokenGrant {
  const token = typeof answer === 'string' ? answer : answer.token;
  const stated = typeof answer === 'string' || answer.expiresAt === undefined ? undefined : new Date(answer.expiresAt).getTime();
  const expiresAtMs = stated !== undefined && Number.isFinite(stated) ? stated : jwtExpiryMs(token);
  if (expiresAtMs === undefined) return { token, expiresAtMs, renewAtMs: undefined };
  const margin = renewBeforeMs ?? Math.min(MAX_RENEW_MARGIN_MS, (expiresAtMs - nowMs) * RENEW_MARGIN_SHARE);
  return { token, expiresAtMs, renewAtMs: Math.max(nowMs + MIN_RENEW_DELAY_MS, expiresAtMs - margin) };
}

/** The current token: fetched from the app once, again when due for renewal or when told it was refused. */
export class TokenKeeper {
  private grant: TokenGrant | undefined;
  private pending: Promise<TokenGrant> | undefined;

  constructor(
    private readonly source: TokenSource,
    private readonly renewBeforeMs: number | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** A token not yet due for renewal; fetches one when there is none or it is due. */
  current(): Promise<TokenGrant> {
    const grant = this.grant;
    if (grant !== undefined && (grant.renewAtMs === undefined || this.now() < grant.renewAtMs)) return Promise.resolve(grant);
    return this.fresh();
  }

  /** A newly fetched token (the service refused the last one). Concurrent callers share one fetch. */
  fresh(): Promise<TokenGrant> {
    this.pending ??= this.source()
      .then((answer) => {
        this.grant = grantOf(answer, this.now(), this.renewBeforeMs);
        return this.grant;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }
}
