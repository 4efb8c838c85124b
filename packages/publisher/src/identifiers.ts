import { invalidArgument } from './errors.js';

// The contract's character rules, checked before a request is sent so a typo fails at the call,
// with the argument named, rather than as a 400 from the server.
const NAME = /^[A-Za-z0-9._~:@-]{1,128}$/;
const EVENT_TYPE = /^[A-Za-z0-9._:-]{1,64}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
/** Types the service emits itself; it refuses them from senders. */
const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set(['reset', 'auth-expired', 'error', 'open', 'join', 'leave']);

export function checkName(kind: 'userId' | 'topic', value: string): void {
  if (typeof value !== 'string' || !NAME.test(value)) throw invalidArgument(`${kind} must be 1-128 characters of [A-Za-z0-9._~:@-]`);
}

export function checkEventType(value: string | undefined): void {
  if (value === undefined) return;
  if (!EVENT_TYPE.test(value) || RESERVED_EVENT_TYPES.has(value)) {
    throw invalidArgument(`type must be 1-64 characters of [A-Za-z0-9._:-] and not one the service reserves (${[...RESERVED_EVENT_TYPES].join(', ')})`);
  }
}

export function checkIdempotencyKey(value: string): void {
  if (!IDEMPOTENCY_KEY.test(value)) throw invalidArgument('id (the idempotency key) must be 1-200 printable ASCII characters');
}
