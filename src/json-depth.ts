import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { SwitchboardError } from './errors.js';

/**
 * Deepest nesting of objects and arrays a JSON body may have. Far more than any event, job or
 * callback needs, and far below the ~4,000 levels at which V8's recursive JSON.stringify (which
 * every event and job goes through) runs out of stack and throws a RangeError.
 */
export const MAX_JSON_DEPTH = 128;

/** True when `value` nests objects and arrays deeper than `maxDepth`. Iterative: no stack to exhaust. */
function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next;
    if (typeof item !== 'object' || item === null) continue;
    if (depth > maxDepth) return true;
    for (const child of Object.values(item)) {
      if (typeof child === 'object' && child !== null) pending.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * preValidation hook for every route, so a too-deep body is a 400 whichever route (and whichever
 * JSON parser) took it, before anything serialises it again.
 */
export function rejectDeepBodies(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  try {
    assertShallow(request.body);
  } catch (err) {
    done(err as SwitchboardError);
    return;
  }
  done();
}

/**
 * Throws 400 `invalid_request` when a parsed body nests deeper than MAX_JSON_DEPTH. For a route
 * that parses its body itself, after the hook ran (callbacks: after the signature check).
 */
export function assertShallow(body: unknown): void {
  if (typeof body === 'object' && body !== null && nestsDeeperThan(body, MAX_JSON_DEPTH)) {
    throw new SwitchboardError('invalid_request', `The body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep.`);
  }
}
