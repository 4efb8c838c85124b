// Scenario D — throughput: closed-loop publishers (each sends its next event when the last is
// answered) at rising concurrency, until delivered events/s stop growing (< 5% more). For each
// step: delivered events/s at the clients, and delivered events per CPU-second of the server
// processes (replicas + Redis, from /proc utime+stime) — a figure that holds up on a shared,
// noisy machine where wall-clock rates do not. The load processes' own CPU is reported too, to
// show they were not the bottleneck.
//
// Two kinds of load: `targeted` (each event to one random user: one delivery per publish, so the
// publish path dominates) and `fanout` (each event to the topic every stream joined: `streams`
// deliveries per publish, so the delivery path dominates). Two more kinds of targeted load:
// `batch` (each request carries `batch` events to random users, POST /v1/events, on systems that
// have a batch API) and `durable: false` (live-only events: no history append).
import { sumCpu } from '../lib/procs.mjs';
import { waitForEvents } from './util.mjs';

export async function throughput(stack, fleet, { steps, durationMs, users, loadPids, topic, streams = 1, batch, durable }) {
  const out = [];
  let best;
  for (const concurrency of steps) {
    const pids = stack.serverPids();
    const cpu0 = sumCpu(pids);
    const redisCpu0 = stack.redisPid === undefined ? 0 : sumCpu([stack.redisPid]);
    const load0 = sumCpu(loadPids);
    const c0 = await fleet.counts();
    const t0 = performance.now();
    const pub = await fleet.publisher.call('closed', { concurrency, durationMs, users, topic, batch, durable });
    const c1 = await waitForEvents(fleet, c0.events + pub.ok * streams, { quietMs: 1000 });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = sumCpu(pids) - cpu0;
    const redisCpu = stack.redisPid === undefined ? null : sumCpu([stack.redisPid]) - redisCpu0;
    const delivered = c1.events - c0.events;
    const step = {
      concurrency,
      accepted: pub.ok,
      failed: pub.failed,
      delivered,
      deliveryRatio: pub.ok === 0 ? null : delivered / (pub.ok * streams),
      eventsPerSec: delivered / seconds,
      serverCpuSeconds: cpu,
      serverCores: cpu / seconds,
      // Where the server CPU went: Redis' share (null for a target without its own Redis).
      redisCpuShare: redisCpu === null || cpu <= 0 ? null : redisCpu / cpu,
      eventsPerCpuSecond: cpu > 0 ? delivered / cpu : null,
      loadCores: (sumCpu(loadPids) - load0) / seconds,
    };
    out.push(step);
    if (best === undefined || step.eventsPerSec > best.eventsPerSec) best = step;
    const prev = out.at(-2);
    if (prev !== undefined && step.eventsPerSec < prev.eventsPerSec * 1.05) break;
  }
  return { steps: out, peak: best };
}
