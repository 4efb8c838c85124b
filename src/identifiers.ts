/** The character rules of the contract for everything a caller names, checked at the edge. */
const NAME = /^[A-Za-z0-9._~:@-]{1,128}$/;
/** SSE event names: a conservative token set, so a type can never carry a line break into a stream. */
const EVENT_TYPE = /^[A-Za-z0-9._:-]{1,64}$/;
/** Correlation ids are base64url of 18 random bytes (144 bits); anything else is not one of ours. */
const CORRELATION_ID = /^[A-Za-z0-9_-]{24}$/;
/** Idempotency keys come from outside (headers, bodies); they become part of a Redis key. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export const isValidUserId = (value: string): boolean => NAME.test(value);
export const isValidTopic = (value: string): boolean => NAME.test(value);
/**
 * Event types the service emits itself (`reset`, `auth-expired`, `error`, `open`) or keeps for
 * presence (`join`, `leave`). Refused from every sender, so a client can trust that an event of
 * one of these types came from Switchboard: a forged `auth-expired` would make every client of a
 * user drop its stream and refetch its token, a forged `reset` is indistinguishable from a real one.
 */
export const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set(['reset', 'auth-expired', 'error', 'open', 'join', 'leave']);

/** An event type as a stream may carry it: the service's own types included. */
export const isEventTypeName = (value: string): boolean => EVENT_TYPE.test(value);
/** The rule for every type a sender names (publish body `type`, callback `X-Event-Type`). */
export const isValidEventType = (value: string): boolean => EVENT_TYPE.test(value) && !RESERVED_EVENT_TYPES.has(value);
/** The rule above in words, for the 400 that refuses a type. */
export const EVENT_TYPE_RULE = `Event types are 1-64 characters of [A-Za-z0-9._:-], and not one the service reserves (${[...RESERVED_EVENT_TYPES].join(', ')}).`;
export const isValidCorrelationId = (value: string): boolean => CORRELATION_ID.test(value);
export const isValidIdempotencyKey = (value: string): boolean => IDEMPOTENCY_KEY.test(value);

/** Topics one stream may join at once: bounds the cursor length and the per-stream channel work. */
export const MAX_TOPICS_PER_STREAM = 32;
