/** One event from the stream, as handlers receive it. */
export interface SwitchboardEvent<Data = unknown> {
  /** The id the service gave it: send it back to resume after it. */
  id: string;
  type: string;
  /** The event's JSON data, parsed. */
  data: Data;
}

/** Why the app must refetch what it shows: the stream could not carry every event since the last one seen. */
export interface ResetInfo {
  /** The service's reason, e.g. `history_gap`. */
  reason: string;
}

/**
 * Maps each event type the app handles to its data. The service's own control events are not
 * in it: `reset` has its own callback, and `auth-expired` is handled by the client.
 */
export type EventMap = Record<string, unknown>;

/** The data of a job's callback event on the stream (contract: `{correlationId, payload, receivedAt}`). */
export interface CallbackEventData {
  correlationId: string;
  payload: unknown;
  receivedAt: string;
}

/**
 * The events an app gets without declaring any: the service itself shapes a job's callback event
 * (type `callback`, unless its sender set `X-Event-Type`); every other type's data is the app's.
 */
export type DefaultEvents = { callback: CallbackEventData } & EventMap;

/** Event types the service emits itself (contract: reserved, refused from senders). */
export const CONTROL_EVENT_TYPES: ReadonlySet<string> = new Set(['reset', 'auth-expired', 'error', 'open']);
