import { parse as parseCookies } from 'cookie';
import { SwitchboardError } from '../errors.js';
import { bearer } from './api-keys.js';

/** What a stream request may carry a subscriber token in, as received. */
export interface PresentedCredentials {
  authorization: string | undefined;
  queryToken: string | undefined;
  cookieHeader: string | undefined;
  origin: string | undefined;
}

/** Where the cookie-carried token may come from: STREAM_TOKEN_COOKIE, and the origins allowed to send it. */
export interface CookieTokenPolicy {
  /** The cookie's name; undefined when cookie auth is off. */
  name: string | undefined;
  /** CORS_ORIGINS as configured: only a listed origin's page may present the cookie. */
  corsOrigins: '*' | readonly string[] | undefined;
}

/**
 * The subscriber token a stream request presents, from the first source it uses, in this order:
 * `Authorization: Bearer`, then `?token=`, then the STREAM_TOKEN_COOKIE cookie. An explicit token
 * wins over the cookie, which a browser sends by itself: an app can open a stream for another
 * user, or with a narrower token, while a cookie for its domain is set. The first source given
 * decides; a bad explicit token is refused, never replaced by the cookie behind it.
 *
 * A cookie arrives with every request the browser makes, whichever page asks: a page on any site
 * could open streams with it, which fill the user's stream limit and show in presence, even
 * though CORS keeps their events from that page. So a cookie token is taken only from a request
 * without `Origin` (same-origin, or not a browser) or from an origin CORS_ORIGINS lists; from
 * any other, the request is refused (403 `origin_not_allowed`).
 *
 * Returns undefined when no source carries a token (`missing_token` for the caller).
 */
export function presentedStreamToken(credentials: PresentedCredentials, cookie: CookieTokenPolicy): string | undefined {
  const explicit = bearer(credentials.authorization) ?? credentials.queryToken;
  if (explicit !== undefined || cookie.name === undefined || credentials.cookieHeader === undefined) return explicit;
  // The parser keeps the first of several same-named cookies: the browser sends the one with the
  // longest path, then the oldest, first (RFC 6265 §5.4).
  const token = parseCookies(credentials.cookieHeader)[cookie.name];
  if (token === undefined) return undefined;
  const { origin } = credentials;
  if (origin !== undefined && (cookie.corsOrigins === undefined || cookie.corsOrigins === '*' || !cookie.corsOrigins.includes(origin))) {
    throw new SwitchboardError('origin_not_allowed', 'A token in a cookie is accepted only from the origins CORS_ORIGINS lists.');
  }
  return token;
}
