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

/** Event types the service emits itself (contract: reserved, refused from senders). */
export const CONTROL_EVENT_TYPES: ReadonlySet<string> = new Set(['reset', 'auth-expired', 'error', 'open']);
