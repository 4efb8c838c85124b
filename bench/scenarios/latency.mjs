// Scenario B — targeted latency: open-loop publishes at fixed rates to random users, each posted
// to a replica other than the one holding the user's stream (see publisher.mjs), so the event
// crosses Redis. Every event targets exactly one open stream: delivery ratio = received / accepted.
import { nsToMs, quantile, sortNumbers } from '../lib/stats.mjs';
import { waitForEvents } from './util.mjs';

export async function latency(_stack, fleet, { rates, durationMs, users }) {
  const out = [];
  for (const rate of rates) {
    await fleet.record(true);
    const before = await fleet.counts();
    const pub = await fleet.publisher.call('rate', { rate, durationMs, users });
    const after = await waitForEvents(fleet, before.events + pub.ok);
    const { samples } = await fleet.take();
    await fleet.record(false);
    const sorted = sortNumbers(samples);
    out.push({
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
    });
  }
  return out;
}
