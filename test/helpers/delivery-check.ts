// The fault tests' delivery check: per user, the events a stream received (seq numbers in arrival
// order, -1 for a reset) against the events accepted for that user.
import type { Test } from 'tap';
import { waitFor } from './wait-for.js';

/**
 * Waits until every user's stream has every accepted event (or was told of a gap), then asserts:
 * every accepted event once, in order, after dedupe; a reset only where the history read after
 * the run (`historyOf`, Redis' XRANGE reply for the user's channel) proves an acknowledged write
 * was lost. `received` holds live arrays that the streams keep filling.
 */
export async function checkDelivery(
  t: Test,
  received: ReadonlyMap<string, readonly number[]>,
  accepted: ReadonlyMap<string, readonly number[]>,
  historyOf: (user: string) => Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  const deduped = (user: string): number[] => [...new Set((received.get(user) ?? []).filter((seq) => seq >= 0))];
  const toldOfGap = (user: string): boolean => (received.get(user) ?? []).includes(-1);
  await waitFor(() => [...accepted].every(([user, seqs]) => deduped(user).length >= seqs.length || toldOfGap(user)), {
    timeoutMs,
    label: 'every stream has every accepted event (or was told of a gap)',
  });
  for (const [user, expected] of accepted) {
    if (!toldOfGap(user)) {
      t.same(deduped(user), expected, `${user}: every accepted event once, in order`);
      continue;
    }
    const missing = expected.filter((seq) => !deduped(user).includes(seq));
    const history = JSON.stringify(await historyOf(user));
    t.ok(
      missing.length > 0 && missing.every((seq) => !history.includes(`{\\"seq\\":${seq}}`)),
      `${user}: its reset covers writes the new master lost (${missing.join(', ')})`,
    );
  }
}
