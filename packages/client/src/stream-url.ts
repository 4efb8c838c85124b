/** Where a stream is opened: the service's base URL ('' = this page's origin). */
export interface StreamTarget {
  baseUrl: string;
  userId: string;
  topics: readonly string[];
}

/**
 * GET /stream/:userId with the token and, when resuming, `?lastEventId=`: a new URL is a new
 * EventSource, which cannot carry the old one's Last-Event-ID header.
 */
export function streamUrl({ baseUrl, userId, topics }: StreamTarget, token: string, lastEventId: string | undefined): string {
  const query = new URLSearchParams({ token });
  if (topics.length > 0) query.set('topics', topics.join(','));
  if (lastEventId) query.set('lastEventId', lastEventId);
  return `${trimSlash(baseUrl)}/stream/${encodeURIComponent(userId)}?${query}`;
}

/** GET /v1/jobs/:correlationId. */
export const jobUrl = (baseUrl: string, correlationId: string): string => `${trimSlash(baseUrl)}/v1/jobs/${encodeURIComponent(correlationId)}`;

const trimSlash = (url: string): string => url.replace(/\/+$/, '');
