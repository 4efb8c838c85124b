import type { ResetInfo, SwitchboardEvent } from './events.js';

/**
 * What the tabs of one user tell each other over their BroadcastChannel. Every tab keeps the
 * union of the event types any tab handles (the leader's EventSource must listen to each by
 * name) and the last event id, so whichever tab leads next resumes where the last leader stopped.
 */
export type TabMessage =
  /** A tab opened: every tab answers with `state`. */
  | { kind: 'hello'; types: string[] }
  /** A tab's event types and last event id; `leader` when it holds the stream. */
  | { kind: 'state'; types: string[]; lastEventId: string | undefined; leader: boolean }
  /** A tab handles more types. */
  | { kind: 'types'; types: string[] }
  /** The leader received an event. */
  | { kind: 'event'; event: SwitchboardEvent }
  /** The leader received `reset`; `id` is the stream's position after it. */
  | { kind: 'reset'; id: string; info: ResetInfo };

/** Messages come from other tabs, possibly running another version of the app: check the shape, drop the rest. */
export function isTabMessage(value: unknown): value is TabMessage {
  if (typeof value !== 'object' || value === null) return false;
  const message = value as Record<string, unknown>;
  switch (message.kind) {
    case 'hello':
    case 'types':
      return isStringList(message.types);
    case 'state':
      return (
        isStringList(message.types) && (message.lastEventId === undefined || typeof message.lastEventId === 'string') && typeof message.leader === 'boolean'
      );
    case 'event': {
      const event = message.event as Record<string, unknown> | null;
      return typeof event === 'object' && event !== null && typeof event.id === 'string' && typeof event.type === 'string';
    }
    case 'reset':
      return typeof message.id === 'string' && typeof (message.info as { reason?: unknown } | null)?.reason === 'string';
    default:
      return false;
  }
}

const isStringList = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string');
