export { CallbackSender, type CallbackDelivered, type CallbackInput, type CallbackSenderOptions } from './callback-sender.js';
export { ERROR_CODES, isSwitchboardError, SwitchboardError, type ClientErrorCode, type ErrorCode, type Problem, type ServerErrorCode } from './errors.js';
export {
  MAX_BATCH_EVENTS,
  Publisher,
  type BatchEvent,
  type BatchOutcome,
  type CreatedJob,
  type EventInput,
  type JobCallback,
  type JobInput,
  type JobState,
  type Published,
  type PublisherOptions,
} from './publisher.js';
export { DEFAULT_AUDIENCE, MAX_TOKEN_TTL_SECONDS, mintStreamToken, type MintedToken, type TokenOptions } from './tokens.js';
export { DEFAULT_RETRY, type RetryOptions } from './transport.js';
export { jobCallbackSecret, signWebhook } from './webhook-signing.js';
