// Scenario B — targeted latency: open-loop publishes at fixed rates to random users, each posted
// to a replica other than the one holding the user's stream (see publisher.mjs), so the event
// crosses Redis. Every event targets exactly one open stream: delivery ratio = received / accepted.
//
// The rates run on processes started for this scenario, as they were always measured ("cold").
// Then, with `warmupMs`, the last rate runs that long unrecorded and once more measured ("warm",
// `warm: true`): a Node process serves its first seconds at a new rate with code the JIT has not
// optimized yet and a heap still sized for less, and a replica in service is past both.
import { nsToMs, quantile, sortNumbers } from '../lib/stats.mjs';
import { waitForEvents } from './util.mjs';

export async function latency(_stack, fleet, { rates, durationMs, warmupMs = 0, users }) {
  const out = [];
  for (const rate of rates) out.push(await step(fleet, { rate, durationMs, users }));
  if (warmupMs > 0) {
    const rate = rates.at(-1);
    const before = await fleet.counts();
    const pub = await fleet.publisher.call('rate', { rate, durationMs: warmupMs, users });
    await waitForEvents(fleet, before.events + pub.ok);
    out.push({ ...(await step(fleet, { rate, durationMs, users })), warm: true, warmupMs });
  }
  return out;
}

/** One measured rate: publishes for `durationMs`, then every accepted event received. */
async function step(fleet, { rate, durationMs, users }) {
  await fleet.record(true);
  const before = await fleet.counts();
  const pub = await fleet.publisher.call('rate', { rate, durationMs, users });
  const after = await waitForEvents(fleet, before.events + pub.ok);
  const { samples } = await fleet.take();
  await fleet.record(false);
  const sorted = sortNumbers(samples);
  return {
    rate,
    sent: pub.sent,
    accepted: pub.ok,
    failed: pub.failed,
    statuses: pub.statuses,
    achievedRate: pub.sent / (pub.ms / 1000),
    received: after.events - before.events,
    deliveryRatio: pub.ok === 0 ? null : (after.events - before.events) / pub.ok,
    answerP50Ms: pub.answerP50Ms,
    answerP99Ms: pub.answerP99Ms,
    p50Ms: nsToMs(quantile(sorted, 0.5)),
    p99Ms: nsToMs(quantile(sorted, 0.99)),
    p999Ms: nsToMs(quantile(sorted, 0.999)),
    maxMs: nsToMs(quantile(sorted, 1)),
  };
}
