// The steady-state cost of the targeted path. Scenario D's peak step also pays for the JIT
// warming up on fresh processes; this measures after a warm-up, for A/B work on the publish path
// and for sampling the replicas with system tools: one target on a fresh stack, 1k streams,
// closed-loop publishes to random users (16 in flight) for a warm-up, then a measured window:
// delivered events per server CPU-second (replicas + Redis, /proc utime + stime).
//
//   node bench/steady.mjs [--target=switchboard|raw-node] [--runs=3] [--warmup-ms=8000] [--ms=4000]
//                         [--root=DIR] [--perf | --strace]
//
// Switchboard runs the dist/ of --root (default: this work tree; `npm run build` first). With
// --perf the replicas run with --perf-basic-prof and `perf record` samples them during the window
// (JS frames named); with --strace, `strace -c` counts their system calls. Both write to
// bench/results/steady/<target>-<run>.{perf.data,strace.txt}. A sampler slows what it samples
// (strace a lot): read its runs for where the time goes, not for the rate.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet } from './lib/fleet.mjs';
import { sumCpu } from './lib/procs.mjs';
import { summary } from './lib/stats.mjs';
import { waitForEvents } from './scenarios/util.mjs';
import { TARGETS } from './targets/index.mjs';
import { parseFlags } from './lib/flags.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = parseFlags();
const targetName = String(args.target ?? 'switchboard');
const target = TARGETS.find((t) => t.name === targetName);
if (target === undefined) throw new Error(`unknown target ${targetName}`);
const runs = Number(args.runs ?? 3);
const warmupMs = Number(args['warmup-ms'] ?? 8000);
const windowMs = Number(args.ms ?? 4000);
const root = resolve(String(args.root ?? ROOT));
const outDir = join(ROOT, 'bench/results/steady');
mkdirSync(join(outDir, 'logs'), { recursive: true });

const USERS = 1000;
const IN_FLIGHT = 16;

/** A sampler attached to the replicas for the window, or none. */
function sample(pids, file) {
  if (args.perf) return spawn('perf', ['record', '-F', '1999', '-g', '-o', `${file}.perf.data`, '-p', pids.join(',')], { stdio: 'ignore' });
  if (args.strace) return spawn('strace', ['-c', '-f', '-o', `${file}.strace.txt`, ...pids.flatMap((pid) => ['-p', String(pid)])], { stdio: 'ignore' });
  return undefined;
}

async function stop(sampler) {
  if (sampler === undefined || sampler.exitCode !== null) return;
  const exited = new Promise((done) => sampler.once('exit', done));
  sampler.kill('SIGINT');
  await exited;
}

async function once(fleet, run) {
  const nodeArgs = args.perf ? ['--perf-basic-prof-only-functions'] : [];
  const stack = await target.start({ logDir: join(outDir, 'logs'), root, nodeArgs });
  let sampler;
  try {
    await fleet.publisher.call('setup', { system: stack.system, ctx: stack.ctx, ports: stack.publishPorts });
    await fleet.open(stack, { from: 0, to: USERS, ports: stack.streamPorts, topic: true, concurrency: 64 });
    if (warmupMs > 0) await fleet.publisher.call('closed', { concurrency: IN_FLIGHT, durationMs: warmupMs, users: USERS });
    await waitForEvents(fleet, (await fleet.counts()).events, { quietMs: 500 });
    sampler = sample(
      stack.children.map((c) => c.pid),
      join(outDir, `${targetName}-${run}`),
    );
    if (sampler !== undefined) await sleep(500);
    const cpu0 = sumCpu(stack.serverPids());
    const t0 = performance.now();
    const before = await fleet.counts();
    const published = await fleet.publisher.call('closed', { concurrency: IN_FLIGHT, durationMs: windowMs, users: USERS });
    const after = await waitForEvents(fleet, before.events + published.ok);
    const cpu = sumCpu(stack.serverPids()) - cpu0;
    const delivered = after.events - before.events;
    return { delivered, perCpuSecond: delivered / cpu, perSecond: delivered / ((performance.now() - t0) / 1000) };
  } finally {
    await stop(sampler);
    await fleet.closeAll();
    await fleet.publisher.call('close');
    await stack.stop();
  }
}

const fleet = new Fleet(4);
try {
  const results = [];
  for (let run = 1; run <= runs; run++) {
    const r = await once(fleet, run);
    results.push(r);
    console.log(
      `${targetName} run ${run}: ${Math.round(r.perCpuSecond)} delivered events per server CPU-second (${Math.round(r.perSecond)}/s, ${r.delivered} events)`,
    );
  }
  const { median, min, max } = summary(results.map((r) => r.perCpuSecond));
  console.log(
    `${targetName}: median ${Math.round(median)} [${Math.round(min)}–${Math.round(max)}] per CPU-second over ${runs} runs (warm-up ${warmupMs} ms, window ${windowMs} ms)`,
  );
} finally {
  await fleet.exit();
}
