/** The character rules of the contract for everything a caller names, checked at the edge. */
const NAME = /^[A-Za-z0-9._~:@-]{1,128}$/;
const EVENT_TYPE = /^[A-Za-z0-9._:-]{1,64}$/;
/** Correlation ids are base64url of 18 random bytes (144 bits); anything else is not one of ours. */
const CORRELATION_ID = /^[A-Za-z0-9_-]{24}$/;
/** Idempotency keys come from outside (headers, bodies); they become part of a Redis key. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export const isValidUserId = (value: string): boolean => NAME.test(value);
export const isValidTopic = (value: string): boolean => NAME.test(value);
export const isValidEventType = (value: string): boolean => EVENT_TYPE.test(value);
export const isValidCorrelationId = (value: string): boolean => CORRELATION_ID.test(value);
export const isValidIdempotencyKey = (value: string): boolean => IDEMPOTENCY_KEY.test(value);

/** Topics one stream may join at once: bounds the cursor length and the per-stream channel work. */
export const MAX_TOPICS_PER_STREAM = 32;
