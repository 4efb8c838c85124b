// Scenario A — idle capacity: open streams on ONE replica in steps (1k, 10k, ~19k), and after each
// step let the server settle and read its memory. Per-stream memory is the growth over the
// replica's memory before any stream, divided by the streams held (PSS; see procs.memoryKiB).
// Time to open is the sum of the steps' open times (streams opened from zero to N). Beside it,
// the server processes' CPU time (replicas + Redis, /proc utime + stime) spent while opening, per
// 1k streams: unlike the wall-clock time, it holds up on a machine busy with other work.
import { setTimeout as sleep } from 'node:timers/promises';
import { sumCpu, sumMemory } from '../lib/procs.mjs';

export async function idle(stack, fleet, { steps, settleMs, concurrency }) {
  await sleep(settleMs);
  const base = sumMemory(stack.idlePids());
  const points = [];
  let opened = 0;
  let openMs = 0;
  let openCpuSeconds = 0;
  let failed = 0;
  for (const n of steps) {
    const cpu0 = sumCpu(stack.serverPids());
    const r = await fleet.open(stack, { from: opened, to: n, ports: stack.idlePorts, topic: false, concurrency });
    openCpuSeconds += sumCpu(stack.serverPids()) - cpu0;
    openMs += r.ms;
    failed += r.failed;
    opened = n;
    await sleep(settleMs);
    const mem = sumMemory(stack.idlePids());
    const { alive } = await fleet.counts();
    points.push({
      streams: n,
      alive,
      failed,
      openMs,
      openCpuMsPer1k: (openCpuSeconds * 1000 * 1000) / n,
      rssKiB: mem.rss,
      pssKiB: mem.pss,
      kibPerStream: (mem.pss - base.pss) / n,
      rssKibPerStream: (mem.rss - base.rss) / n,
    });
  }
  await fleet.closeAll();
  return { baseKiB: base, points };
}
