import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import { SwitchboardError } from '../errors.js';
import { isValidTopic } from '../identifiers.js';

/** What a verified subscriber token grants. */
export interface StreamGrant {
  userId: string;
  topics: readonly string[];
  expiresAtMs: number;
}

/** Longest lifetime of a subscriber token, minted here or by hand (`exp` − `iat`). */
export const MAX_TOKEN_TTL_SECONDS = 86_400;
/** A replica whose clock runs ahead may mint an `iat` this far in the future of another's. */
const MAX_CLOCK_SKEW_SECONDS = 60;

/**
 * Subscriber tokens: JWTs signed with HS256 and the shared STREAM_TOKEN_SECRET, `sub` = user id,
 * `exp` and `aud` (STREAM_TOKEN_AUDIENCE) required, optional `topics`. Only HS256 is accepted, so
 * `alg: none` and algorithm confusion are refused by the verifier itself. A token that would live
 * longer than MAX_TOKEN_TTL_SECONDS is refused too, so a hand-minted token cannot outlast the
 * bound POST /v1/tokens keeps.
 */
export class StreamTokens {
  private readonly sign: (payload: Record<string, unknown>) => string;
  private readonly verify: (token: string) => Record<string, unknown>;

  constructor(
    secret: string,
    private readonly audience: string,
  ) {
    this.sign = createSigner({ key: secret, algorithm: 'HS256' });
    // No verify cache: fast-jwt keys it by a hash of the token, so a miss (nearly every open: a
    // token comes back only on a reconnect, to one replica in three) cost two hashes and kept
    // the token for ages, more than the one HMAC it saves on a hit.
    // fast-jwt skips `allowedAud` for a token without `aud` unless the claim is required.
    this.verify = createVerifier({ key: secret, algorithms: ['HS256'], allowedAud: audience, requiredClaims: ['sub', 'exp', 'aud'] });
  }

  mint(userId: string, topics: readonly string[], ttlSeconds: number, nowMs = Date.now()): { token: string; expiresAtMs: number } {
    const exp = Math.floor(nowMs / 1000) + ttlSeconds;
    const payload: Record<string, unknown> = { sub: userId, aud: this.audience, exp, iat: Math.floor(nowMs / 1000) };
    if (topics.length > 0) payload.topics = topics;
    return { token: this.sign(payload), expiresAtMs: exp * 1000 };
  }

  /** Verifies a token; throws `missing_token`, `token_expired` or `invalid_token`. */
  check(token: string | undefined): StreamGrant {
    if (token === undefined || token.length === 0) throw new SwitchboardError('missing_token');
    let claims: Record<string, unknown>;
    try {
      claims = this.verify(token);
    } catch (err) {
      if (err instanceof TokenError && err.code === TokenError.codes.expired) {
        throw new SwitchboardError('token_expired', 'The subscriber token has expired; fetch a new one.');
      }
      throw new SwitchboardError('invalid_token');
    }
    const { sub, exp, iat, topics } = claims;
    if (typeof sub !== 'string' || typeof exp !== 'number') throw new SwitchboardError('invalid_token');
    if (iat !== undefined && typeof iat !== 'number') throw new SwitchboardError('invalid_token');
    // The lifetime counts from `iat`, or from now without one; an `iat` in the future (beyond
    // clock skew) cannot stretch it.
    const nowSeconds = Date.now() / 1000;
    const issuedAt = iat === undefined ? nowSeconds : Math.min(iat, nowSeconds + MAX_CLOCK_SKEW_SECONDS);
    if (exp - issuedAt > MAX_TOKEN_TTL_SECONDS) {
      throw new SwitchboardError('invalid_token', `The token lives longer than ${MAX_TOKEN_TTL_SECONDS} seconds.`);
    }
    if (topics !== undefined && !(Array.isArray(topics) && topics.every((t) => typeof t === 'string' && isValidTopic(t)))) {
      throw new SwitchboardError('invalid_token', "The token's topics claim must be a list of topic names.");
    }
    return { userId: sub, topics: (topics as string[] | undefined) ?? [], expiresAtMs: exp * 1000 };
  }
}
