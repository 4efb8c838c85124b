// Waiting for deliveries to settle: the clients count every bench event they parse.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls the clients until `expected` events have arrived in total, or until nothing new arrived
 * for `quietMs` (an event that never comes must not hang the bench). Returns the last counts.
 */
export async function waitForEvents(fleet, expected, { quietMs = 1500, pollMs = 25, maxMs = 30000 } = {}) {
  const started = Date.now();
  let last = await fleet.counts();
  let lastChange = Date.now();
  while (last.events < expected && Date.now() - lastChange < quietMs && Date.now() - started < maxMs) {
    await sleep(pollMs);
    const now = await fleet.counts();
    if (now.events !== last.events) lastChange = Date.now();
    last = now;
  }
  return last;
}
