import { bytesToBase64Url } from './base64.js';
import { invalidArgument } from './errors.js';
import { hmacSha256, utf8 } from './hmac.js';
import { checkName } from './identifiers.js';

/** The server refuses a token that lives longer (`exp` − `iat`), however it was minted. */
export const MAX_TOKEN_TTL_SECONDS = 86_400;
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;
/** STREAM_TOKEN_AUDIENCE's default: the `aud` every replica requires unless configured otherwise. */
export const DEFAULT_AUDIENCE = 'switchboard';

export interface TokenOptions {
  /** Topics the holder may join with `?topics=`. */
  topics?: readonly string[];
  /** Lifetime, 1–86400 s (default 3600). */
  ttlSeconds?: number;
}

export interface MintedToken {
  token: string;
  /** ISO 8601, as POST /v1/tokens answers it. */
  expiresAt: string;
}

const HEADER = bytesToBase64Url(utf8(JSON.stringify({ alg: 'HS256', typ: 'JWT' })));

/**
 * A subscriber token made here, with no round trip: the JWT POST /v1/tokens would answer (HS256
 * over STREAM_TOKEN_SECRET; `sub`, `aud`, `iat`, `exp`, and `topics` when any), so every replica
 * sharing the secret and audience accepts it.
 */
export async function mintStreamToken(secret: string, audience: string, userId: string, options: TokenOptions = {}, nowMs = Date.now()): Promise<MintedToken> {
  checkName('userId', userId);
  const topics = [...new Set(options.topics ?? [])];
  for (const topic of topics) checkName('topic', topic);
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
    throw invalidArgument(`ttlSeconds must be a whole number of seconds from 1 to ${MAX_TOKEN_TTL_SECONDS}`);
  }
  const iat = Math.floor(nowMs / 1000);
  const exp = iat + ttlSeconds;
  const claims: Record<string, unknown> = { sub: userId, aud: audience, exp, iat };
  if (topics.length > 0) claims.topics = topics;
  const signingInput = `${HEADER}.${bytesToBase64Url(utf8(JSON.stringify(claims)))}`;
  const signature = await hmacSha256(utf8(secret), utf8(signingInput));
  return { token: `${signingInput}.${bytesToBase64Url(signature)}`, expiresAt: new Date(exp * 1000).toISOString() };
}
