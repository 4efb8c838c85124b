import type { PublishRequest } from './backplane.js';
import type { ScriptPublished } from './script-calls.js';

/**
 * Events per script call at most: bounds how long one call holds Redis (a script runs alone) and
 * the size of one command.
 */
export const MAX_EVENTS_PER_CALL = 100;

interface Waiting {
  request: PublishRequest;
  resolve: (published: ScriptPublished) => void;
  reject: (err: unknown) => void;
}

export interface PublishCalls {
  /** The publish script for one event. */
  one(request: PublishRequest): Promise<ScriptPublished>;
  /** The batch script: the events in order, in one call, atomically. */
  many(requests: readonly PublishRequest[]): Promise<ScriptPublished[]>;
}

/**
 * The single-event publishes that arrive in one turn of the event loop, sent as one script call
 * when there are several. Under load many requests are parsed in one turn; each then costs Redis
 * one script of the batch instead of a command of its own, and the replica one command, one
 * socket write and one reply to read for the lot. Nothing waits for a timer: the call goes out
 * in the same turn (setImmediate runs right after the I/O that queued it), and a lone publish
 * goes out as it always did.
 *
 * Order is kept: the events of a turn run in arrival order inside the call, and calls run in
 * order on the one connection. A call that fails (Redis down, a timeout) fails each event in it,
 * 503: as with a single publish whose answer timed out, some may have been stored, and a retry
 * with its idempotency key is answered as the duplicate it is.
 */
export class PublishCoalescer {
  private waiting: Waiting[] = [];

  constructor(private readonly calls: PublishCalls) {}

  publish(request: PublishRequest): Promise<ScriptPublished> {
    return new Promise((resolve, reject) => {
      if (this.waiting.length === 0) setImmediate(this.flush);
      this.waiting.push({ request, resolve, reject });
    });
  }

  private readonly flush = (): void => {
    const waiting = this.waiting;
    this.waiting = [];
    if (waiting.length <= MAX_EVENTS_PER_CALL) this.send(waiting);
    else for (let start = 0; start < waiting.length; start += MAX_EVENTS_PER_CALL) this.send(waiting.slice(start, start + MAX_EVENTS_PER_CALL));
  };

  private send(group: readonly Waiting[]): void {
    if (group.length === 1) {
      const [only] = group as [Waiting];
      this.calls.one(only.request).then(only.resolve, only.reject);
      return;
    }
    this.calls.many(group.map((entry) => entry.request)).then(
      (published) => {
        for (const [i, entry] of group.entries()) {
          const outcome = published[i];
          if (outcome === undefined) entry.reject(new Error(`the publish script answered ${published.length} events of ${group.length}`));
          else entry.resolve(outcome);
        }
      },
      (err: unknown) => {
        for (const entry of group) entry.reject(err);
      },
    );
  }
}
