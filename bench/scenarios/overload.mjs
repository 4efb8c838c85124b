// Scenario E — overload: open-loop publishes at a multiple (2×) of the rate the fleet saturates
// at, to random users (as in B), while the streams keep receiving. What is asked of a system
// past its capacity: a publish that is answered is answered quickly (202, or 503 when it sheds),
// the streams' latency stays near its unloaded value, and memory stays bounded.
//
// The saturation rate is measured in the same run: the peak delivered events/s of D (targeted)
// when D ran, else a short closed-loop step at 64 in flight. The unloaded latency is B's p99 at
// its lowest rate, else a short 500/s step here.
import { sumMemory } from '../lib/procs.mjs';
import { nsToMs, quantile, sortNumbers } from '../lib/stats.mjs';
import { waitForEvents } from './util.mjs';

/** How often the servers' memory is read during the overload. */
const MEMORY_SAMPLE_MS = 250;

export async function overload(stack, fleet, { multiple, durationMs, users, saturationRate, unloadedP99Ms, answerBoundMs }) {
  const saturation = saturationRate ?? (await measureSaturation(fleet, users));
  const unloaded = unloadedP99Ms ?? (await measureUnloaded(fleet, users));
  const rate = Math.round(saturation * multiple);
  const pids = stack.serverPids();
  const memoryBefore = sumMemory(pids).rss;
  let memoryPeak = memoryBefore;
  const sampler = setInterval(() => {
    memoryPeak = Math.max(memoryPeak, sumMemory(pids).rss);
  }, MEMORY_SAMPLE_MS);
  let pub;
  let samples;
  let after;
  let before;
  try {
    await fleet.record(true);
    before = await fleet.counts();
    pub = await fleet.publisher.call('rate', { rate, durationMs, users, boundMs: answerBoundMs });
    after = await waitForEvents(fleet, before.events + pub.ok);
    ({ samples } = await fleet.take());
    await fleet.record(false);
  } finally {
    clearInterval(sampler);
  }
  const memoryAfter = sumMemory(pids).rss;
  const sorted = sortNumbers(samples);
  const p99Ms = nsToMs(quantile(sorted, 0.99));
  return {
    saturationRate: saturation,
    rate,
    sent: pub.sent,
    achievedRate: pub.sent / (pub.ms / 1000),
    accepted: pub.ok,
    shed: pub.statuses[503] ?? 0,
    // 0: the connection closed or the bench ended before an answer came.
    unanswered: pub.statuses[0] ?? 0,
    statuses: pub.statuses,
    answerP50Ms: pub.answerP50Ms,
    answerP99Ms: pub.answerP99Ms,
    answerMaxMs: pub.answerMaxMs,
    answeredWithinBound: pub.withinBound,
    answerBoundMs,
    deliveryRatio: pub.ok === 0 ? null : (after.events - before.events) / pub.ok,
    p50Ms: nsToMs(quantile(sorted, 0.5)),
    p99Ms,
    unloadedP99Ms: unloaded,
    p99VsUnloaded: unloaded > 0 ? p99Ms / unloaded : null,
    rssBeforeMiB: memoryBefore / 1024,
    rssPeakMiB: memoryPeak / 1024,
    rssAfterMiB: memoryAfter / 1024,
  };
}

async function measureSaturation(fleet, users) {
  const c0 = await fleet.counts();
  const t0 = performance.now();
  const pub = await fleet.publisher.call('closed', { concurrency: 64, durationMs: 2000, users });
  const c1 = await waitForEvents(fleet, c0.events + pub.ok, { quietMs: 1000 });
  return (c1.events - c0.events) / ((performance.now() - t0) / 1000);
}

async function measureUnloaded(fleet, users) {
  await fleet.record(true);
  const before = await fleet.counts();
  const pub = await fleet.publisher.call('rate', { rate: 500, durationMs: 3000, users });
  await waitForEvents(fleet, before.events + pub.ok);
  const { samples } = await fleet.take();
  await fleet.record(false);
  return nsToMs(quantile(sortNumbers(samples), 0.99));
}
