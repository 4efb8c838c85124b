#!/usr/bin/env node
// `npm run bench` — Switchboard against Nchan, Pushpin and a bare node:http reference, one
// harness, one run. See docs/BENCHMARKS.md for what is measured and how to read it.
//
//   npm run bench                      full run: 3 rounds of every scenario on every target (~15 min)
//   npm run bench -- --quick           smoke run: 1 round, small sizes (~3 min)
//   npm run bench -- --rounds=5 --targets=switchboard,nchan-redis --scenarios=latency,throughput
//   npm run bench -- --scenarios=batch,live     targeted throughput through batches, and of live-only events
//   npm run bench -- --profile         also a profile pass of Switchboard (CPU profiles + heap snapshot)
//   npm run bench -- --profile-only    only the profile pass
//   npm run bench -- --ref=HEAD        measure a git revision instead of the work tree
//   npm run bench -- --in-place        build and run the work tree's own dist/ (default: a snapshot)
//   npm run bench -- --root=DIR        run the Switchboard already built in DIR (A/B experiments)
//   npm run bench -- --compare=DIR     add the Switchboard built in DIR as one more target (A/B)
//   npm run bench -- --compare=. --compare-node-args="--single-threaded-gc"
//                                      the same build, B's replicas started with these Node flags
//   npm run bench -- --scale-out       also targeted publishes/s with 1 Redis vs a 3-master Redis
//                                      Cluster, and Redis CPU per publish (--scenarios=none: only it)
//
// Rounds interleave the targets (the order rotates each round), so a burst of load from other
// work on this shared machine falls on every target alike; figures are medians over rounds with
// the spread (min–max). Results: bench/results/<stamp>.json and .md, and latest.json/latest.md.
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, copyFileSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet } from './lib/fleet.mjs';
import { TOPIC } from './lib/wire.mjs';
import { TARGETS } from './targets/index.mjs';
import { idle } from './scenarios/idle.mjs';
import { latency } from './scenarios/latency.mjs';
import { broadcast } from './scenarios/broadcast.mjs';
import { throughput } from './scenarios/throughput.mjs';
import { historyMemory } from './scenarios/history.mjs';
import { scaleOut, scaleOutMarkdown } from './scenarios/scale-out.mjs';
import { overload } from './scenarios/overload.mjs';
import { profile } from './profile.mjs';
import { renderMarkdown, summarize } from './lib/report.mjs';
import { parseFlags } from './lib/flags.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const RESULTS = join(ROOT, 'bench/results');
let switchboardRoot = ROOT;

const args = parseFlags();
const quick = Boolean(args.quick);

const CONFIG = {
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  clients: Number(args.clients ?? 4),
  openConcurrency: 64, // in-flight opens per client process
  idle: { steps: quick ? [1000, 5000] : [1000, 10000, 19000], settleMs: 1000 },
  latency: { rates: [500, 2000], durationMs: quick ? 2000 : 5000, warmupMs: quick ? 3000 : 10000 },
  broadcast: { sizes: quick ? [1000, 3000] : [1000, 10000], events: quick ? 3 : 5, gapMs: 200 },
  throughput: { steps: quick ? [1, 8, 32] : [1, 4, 16, 64], durationMs: quick ? 1500 : 2500 },
  fanout: { steps: quick ? [1, 4] : [1, 2, 4, 8], durationMs: quick ? 1500 : 2000 },
  // Targeted events through POST /v1/events, `batch` per request (single POSTs on peers without a batch API).
  batch: { steps: quick ? [1, 4] : [1, 2, 4, 8], durationMs: quick ? 1500 : 2500, batch: 100 },
  // Targeted live-only events ("durable": false; peers publish as usual).
  live: { steps: quick ? [1, 8, 32] : [1, 4, 16, 64], durationMs: quick ? 1500 : 2500 },
  // 2× the saturation rate (D's targeted peak), open loop; answers within 100 ms are counted.
  overload: { multiple: 2, durationMs: quick ? 2000 : 5000, answerBoundMs: 100 },
};
const scenarioList = String(args.scenarios ?? 'idle,latency,broadcast,throughput,batch,live,overload,history').split(',');
const want = (s) => scenarioList.includes(s);
const targetNames = args.targets ? String(args.targets).split(',') : TARGETS.map((t) => t.name);

function log(...parts) {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...parts);
}

/**
 * Builds what is measured, in a snapshot, and returns the directory whose dist/ the replicas run.
 * By default the snapshot is this work tree as it is now (tracked and untracked files, minus what
 * .gitignore drops); with --ref=<git rev> it is that revision (git archive). Either way the build
 * goes to bench/results/tmp/, so a long bench is not disturbed by edits in progress and never
 * rewrites the work tree's dist/. --in-place builds and runs the work tree's own dist/ instead.
 */
function build() {
  if (args.root) return { root: resolve(String(args.root)), revision: `build in ${args.root}` };
  if (args['in-place']) {
    if (!args['no-build']) {
      log('npm run build');
      const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0) throw new Error('npm run build failed');
    }
    return { root: ROOT, revision: null };
  }
  const head = execFileSync('git', ['rev-parse', '--short', args.ref ? String(args.ref) : 'HEAD'], { cwd: ROOT })
    .toString()
    .trim();
  const dir = join(RESULTS, 'tmp', args.ref ? `ref-${head}` : 'worktree');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (args.ref) {
    log(`snapshot of ${args.ref} (${head}) in ${dir}`);
    execFileSync('sh', ['-c', `git archive ${head} | tar -x -C '${dir}'`], { cwd: ROOT });
  } else {
    log(`snapshot of the work tree (HEAD ${head} + uncommitted changes) in ${dir}`);
    // Not node_modules: in a worktree it may be a symlink, which `node_modules/` in .gitignore
    // does not match; the snapshot gets its own link below.
    execFileSync('sh', ['-c', `git ls-files -z -co --exclude-standard -- . ':!node_modules' | tar --null -T - -cf - | tar -x -C '${dir}'`], { cwd: ROOT });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const r = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: dir, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the build of the snapshot failed (tsc)');
  return { root: dir, revision: args.ref ? head : `${head}+worktree` };
}

/** A, on a fresh stack. */
async function runIdle(target, fleet, logDir) {
  const stack = await target.start({ logDir, root: switchboardRoot });
  try {
    return await idle(stack, fleet, { ...CONFIG.idle, concurrency: CONFIG.openConcurrency });
  } finally {
    await fleet.closeAll();
    await stack.stop();
  }
}

/** B, C and D on one fresh stack: 1k streams (user + topic), then 9k more for the 10k broadcast. */
async function runFlow(target, fleet, logDir) {
  const stack = await target.start({ logDir, root: switchboardRoot });
  const out = {};
  try {
    await fleet.publisher.call('setup', { system: stack.system, ctx: stack.ctx, ports: stack.publishPorts });
    const [small, large] = CONFIG.broadcast.sizes;
    const first = await fleet.open(stack, { from: 0, to: small, ports: stack.streamPorts, topic: true, concurrency: CONFIG.openConcurrency });
    out.open = { small: first };
    await sleep(500);
    if (want('latency')) out.latency = await latency(stack, fleet, { ...CONFIG.latency, users: small });
    if (want('broadcast'))
      out.broadcastSmall = await broadcast(stack, fleet, {
        streams: (await fleet.counts()).alive,
        events: CONFIG.broadcast.events,
        gapMs: CONFIG.broadcast.gapMs,
      });
    if (want('throughput')) {
      out.throughput = await throughput(stack, fleet, { ...CONFIG.throughput, users: small, loadPids: fleet.pids() });
      const streams = (await fleet.counts()).alive;
      out.fanout = await throughput(stack, fleet, { ...CONFIG.fanout, users: small, loadPids: fleet.pids(), topic: TOPIC, streams });
    }
    if (want('batch')) out.batch = await throughput(stack, fleet, { ...CONFIG.batch, users: small, loadPids: fleet.pids() });
    if (want('live')) out.live = await throughput(stack, fleet, { ...CONFIG.live, users: small, loadPids: fleet.pids(), durable: false });
    if (want('broadcast')) {
      out.open.large = await fleet.open(stack, { from: small, to: large, ports: stack.streamPorts, topic: true, concurrency: CONFIG.openConcurrency });
      await sleep(1000);
      out.broadcastLarge = await broadcast(stack, fleet, {
        streams: (await fleet.counts()).alive,
        events: CONFIG.broadcast.events,
        gapMs: CONFIG.broadcast.gapMs * 2,
      });
      out.broadcastLarge.expectedStreams = large;
    }
    // Last: an open-loop overload leaves seconds of queued requests behind it (answer p99s of 2 to
    // 80 s), which a measure run after it would wait behind. It once ran before the 10k broadcast,
    // whose publishes then went unanswered in 3 of 12 runs (Switchboard and Nchan + Redis alike).
    if (want('overload')) {
      out.overload = await overload(stack, fleet, {
        ...CONFIG.overload,
        users: small,
        saturationRate: out.throughput?.peak?.eventsPerSec,
        unloadedP99Ms: out.latency?.[0]?.p99Ms,
      });
    }
    out.alive = (await fleet.counts()).alive;
    return out;
  } finally {
    await fleet.closeAll();
    await fleet.publisher.call('close');
    await stack.stop();
  }
}

async function main() {
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const logDir = join(RESULTS, 'logs', stamp);
  mkdirSync(logDir, { recursive: true });
  const built = build();
  switchboardRoot = built.root;

  const meta = {
    startedAt: new Date().toISOString(),
    node: process.version,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadAverageAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    gitRevision:
      built.revision ??
      (() => {
        try {
          return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
        } catch {
          return null;
        }
      })(),
    gitDirty: args.ref
      ? false
      : (() => {
          try {
            return execFileSync('git', ['status', '--porcelain', 'src'], { cwd: ROOT }).toString().trim().length > 0;
          } catch {
            return null;
          }
        })(),
    quick,
    args,
  };
  const targets = TARGETS.filter((t) => targetNames.includes(t.name));
  if (args.compare) {
    // A/B: a second Switchboard build (already built in DIR) as one more target, so its rounds
    // interleave with the first one's and the machine's noise falls on both alike.
    const dir = resolve(String(args.compare));
    const nodeArgs = args['compare-node-args'] ? String(args['compare-node-args']).split(' ').filter(Boolean) : [];
    const sb = TARGETS.find((t) => t.name === 'switchboard');
    targets.splice(1, 0, {
      ...sb,
      name: 'switchboard-b',
      label: `Switchboard B (${[dir.split('/').pop(), ...nodeArgs].join(' ')})`,
      start: (opts) => sb.start({ ...opts, root: dir, nodeArgs: [...(opts.nodeArgs ?? []), ...nodeArgs] }),
      missing: () => undefined,
    });
  }
  const availability = Object.fromEntries(targets.map((t) => [t.name, { label: t.label, unavailable: t.missing() ?? null }]));
  for (const [name, a] of Object.entries(availability)) if (a.unavailable) log(`${name}: NOT RUN — ${a.unavailable}`);
  const runnable = targets.filter((t) => !availability[t.name].unavailable);

  const runs = [];
  let profileResult;
  let history;
  const scaleOutRounds = [];
  const fleet = new Fleet(CONFIG.clients);
  try {
    if (!args['profile-only']) {
      // With --scenarios=none (e.g. --scale-out alone) no target is started at all.
      const perTarget = ['idle', 'latency', 'broadcast', 'throughput'].some(want);
      for (let round = 0; perTarget && round < CONFIG.rounds; round++) {
        // Rotate the order so no target always runs first (cold caches) or last (tired machine).
        const order = runnable.map((_, i) => runnable[(i + round) % runnable.length]);
        for (const target of order) {
          const run = { round, target: target.name, errors: [], loadAverage: loadavg()[0] };
          if (want('idle')) {
            log(`round ${round + 1}/${CONFIG.rounds} ${target.name}: idle capacity`);
            try {
              run.idle = await runIdle(target, fleet, logDir);
            } catch (err) {
              run.errors.push(`idle: ${err.message}`);
              log(`  ${target.name} idle failed: ${err.message}`);
            }
          }
          if (want('latency') || want('broadcast') || want('throughput') || want('batch') || want('live') || want('overload')) {
            log(`round ${round + 1}/${CONFIG.rounds} ${target.name}: latency, broadcast, throughput, batch, live, overload`);
            try {
              run.flow = await runFlow(target, fleet, logDir);
            } catch (err) {
              run.errors.push(`flow: ${err.message}`);
              log(`  ${target.name} flow failed: ${err.message}`);
            }
          }
          runs.push(run);
          log(`  ${brief(run)}`);
        }
      }
      if (want('history')) {
        log('history memory (bench/history-memory.mjs)');
        history = await historyMemory();
      }
      if (args['scale-out']) {
        for (let round = 0; round < CONFIG.rounds; round++) {
          log(`round ${round + 1}/${CONFIG.rounds}: scale-out (1 Redis vs a 3-master cluster)`);
          scaleOutRounds.push(await scaleOut({ root: switchboardRoot, durationMs: quick ? 2000 : 5000, log }));
        }
      }
    }
    if (args.profile || args['profile-only']) {
      log('profile pass (Switchboard under --cpu-prof, heap snapshot at 10k idle streams)');
      profileResult = await profile(fleet, { root: switchboardRoot, logDir, outDir: join(RESULTS, 'profiles', stamp), quick });
    }
  } finally {
    await fleet.exit();
  }

  const result = { meta: { ...meta, finishedAt: new Date().toISOString() }, config: CONFIG, targets: availability, runs, history, profile: profileResult };
  if (scaleOutRounds.length > 0) result.scaleOut = scaleOutRounds;
  result.summary = summarize(result);
  const md = renderMarkdown(result) + (scaleOutRounds.length > 0 ? scaleOutMarkdown(scaleOutRounds) : '');
  writeFileSync(join(RESULTS, `${stamp}.json`), JSON.stringify(result, null, 2));
  writeFileSync(join(RESULTS, `${stamp}.md`), md);
  copyFileSync(join(RESULTS, `${stamp}.json`), join(RESULTS, 'latest.json'));
  copyFileSync(join(RESULTS, `${stamp}.md`), join(RESULTS, 'latest.md'));
  console.log(`\n${md}`);
  log(`results: bench/results/${stamp}.json and .md (also latest.*)`);
}

/** One line per run for the console, so a long run shows progress. */
function brief(run) {
  const parts = [];
  const top = run.idle?.points.at(-1);
  if (top) parts.push(`A ${top.alive}/${top.streams} streams ${top.kibPerStream.toFixed(1)} KiB/stream open ${(top.openMs / 1000).toFixed(1)}s`);
  const b = run.flow?.latency?.filter((l) => !l.warm).at(-1);
  const w = run.flow?.latency?.find((l) => l.warm);
  if (b)
    parts.push(
      `B@${b.rate} p50 ${b.p50Ms?.toFixed(2)} p99 ${b.p99Ms?.toFixed(2)} ms ratio ${b.deliveryRatio?.toFixed(3)}${w ? ` (warm p50 ${w.p50Ms?.toFixed(2)} p99 ${w.p99Ms?.toFixed(2)})` : ''}`,
    );
  const c = run.flow?.broadcastLarge;
  if (c) parts.push(`C ${c.streams} last ${c.timeToLastMs?.median.toFixed(0)} ms ratio ${c.deliveryRatio.toFixed(3)}`);
  const d = run.flow?.throughput?.peak;
  if (d) parts.push(`D ${d.eventsPerSec.toFixed(0)}/s ${d.eventsPerCpuSecond?.toFixed(0)}/cpu-s`);
  const f = run.flow?.fanout?.peak;
  if (f) parts.push(`D-fanout ${f.eventsPerSec.toFixed(0)}/s ${f.eventsPerCpuSecond?.toFixed(0)}/cpu-s`);
  for (const [name, key] of [
    ['D-batch', 'batch'],
    ['D-live', 'live'],
  ]) {
    const peak = run.flow?.[key]?.peak;
    if (peak) parts.push(`${name} ${peak.eventsPerSec.toFixed(0)}/s ${peak.eventsPerCpuSecond?.toFixed(0)}/cpu-s`);
  }
  const e = run.flow?.overload;
  if (e)
    parts.push(
      `E@${e.rate}/s 202 ${e.accepted} 503 ${e.shed} answered≤${e.answerBoundMs}ms ${(100 * (e.answeredWithinBound ?? 0)).toFixed(1)}% answer p99 ${e.answerP99Ms?.toFixed(1)} ms stream p99 ${e.p99Ms?.toFixed(2)} ms (${e.p99VsUnloaded?.toFixed(1)}× unloaded) RSS peak ${e.rssPeakMiB.toFixed(0)} MiB`,
    );
  if (run.errors.length) parts.push(`errors: ${run.errors.join('; ')}`);
  return `${run.target}: ${parts.join(' | ')}`;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
