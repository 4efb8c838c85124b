import { topicChannel, userChannel, type ChannelName } from '../backplane/redis-keys.js';
import { SwitchboardError } from '../errors.js';
import { EVENT_TYPE_RULE, isValidEventType, isValidIdempotencyKey, isValidTopic, isValidUserId } from '../identifiers.js';
import type { EventToPublish } from './event-publisher.js';

const DEFAULT_EVENT_TYPE = 'message';

/** What a publish body says about its event, single or in a batch. */
export interface EventFields {
  type?: string;
  data: unknown;
  id?: string;
  durable?: boolean;
}

/**
 * The checks every published event passes, for the single routes and each event of a batch alike:
 * throws the `SwitchboardError` that names the first rule broken. `idempotencyTtlSeconds` is how
 * long an idempotency key is remembered (the history TTL).
 */
export function checkedEvent({ type = DEFAULT_EVENT_TYPE, data, id, durable }: EventFields, idempotencyTtlSeconds: number): EventToPublish {
  if (!isValidEventType(type)) throw new SwitchboardError('invalid_event_type', EVENT_TYPE_RULE);
  if (data === undefined) throw new SwitchboardError('invalid_request', 'The event must have a "data" member.');
  if (id !== undefined && !isValidIdempotencyKey(id)) {
    throw new SwitchboardError('invalid_request', '"id" (the idempotency key) must be 1-200 printable ASCII characters.');
  }
  return {
    type,
    data,
    // Scoped apart from callbacks' keys (`cb:`), per channel (the key lives beside its history).
    ...(id === undefined ? {} : { idempotencyKey: `pub:${id}`, idempotencyTtlSeconds }),
    ...(durable === false ? { durable: false } : {}),
  };
}

/** The channel of a user or topic named by a publish, checked. */
export function targetChannel(kind: 'user' | 'topic', name: string): ChannelName {
  if (kind === 'user') {
    if (!isValidUserId(name)) throw new SwitchboardError('invalid_user_id');
    return userChannel(name);
  }
  if (!isValidTopic(name)) throw new SwitchboardError('invalid_topic');
  return topicChannel(name);
}
