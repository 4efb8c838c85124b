import type { Position } from './cursor.js';

/**
 * Why a stream was told to refetch ground truth. The `reset` event's data is exactly the
 * contract's `{"reason":"history_gap"}`; the cause goes on a comment line just before it (for
 * people reading the raw stream) and into the resets metric.
 */
export type ResetCause = 'history_trimmed' | 'history_lost' | 'invalid_cursor' | 'catch_up_failed';

/** A position in a channel's history to move a stream to, past a gap. */
export interface SkipTarget {
  epoch: string;
  position: Position;
  positionText: string;
}
