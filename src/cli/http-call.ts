import { CliError } from './cli-error.js';

/** A command's requests give up after this: the CLI is interactive, it should not hang. */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * One JSON request to a replica. A problem+json refusal becomes a CliError naming its code and
 * detail; no answer at all, one naming the URL.
 */
export async function callJson(method: 'GET' | 'POST', url: string, bearer: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new CliError(`${method} ${url}: no answer (${cause ?? (err as Error).message})`);
  }
  const text = await response.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = text;
  }
  if (!response.ok) {
    const problem = (typeof json === 'object' && json !== null ? json : {}) as { code?: string; detail?: string };
    throw new CliError(`${method} ${url}: ${response.status} ${problem.code ?? ''}${problem.detail === undefined ? '' : `: ${problem.detail}`}`.trim());
  }
  return { status: response.status, json };
}
