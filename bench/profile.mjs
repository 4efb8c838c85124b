// The profile pass (`npm run bench -- --profile`): replicas under `node --cpu-prof`, each load on
// its own fresh stack so each profile shows one job:
//   open     — N idle streams opened on Switchboard's replica 0 (the cost of a stream open), with
//              a heap snapshot before the first stream and one with N open: what one idle stream
//              holds on the JS heap;
//   targeted — closed-loop publishes to random users (the publish -> Redis -> deliver path);
//   fan-out  — closed-loop topic events to 1k streams (the delivery path);
// the last two also on the bare node:http reference, so costs compare per delivered event.
// Profiles are not taken during the measured rounds: profiling slows the process.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as switchboard from './targets/switchboard.mjs';
import * as rawNode from './targets/raw-node.mjs';
import { TOPIC } from './lib/wire.mjs';
import { waitForEvents } from './scenarios/util.mjs';
import { analyzeCpuProfiles, callersOf } from './lib/cpuprofile.mjs';
import { perStreamHeap } from './lib/heapsnapshot.mjs';
import { waitHttpOk } from './lib/procs.mjs';

const list = (dir, ext) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .map((f) => join(dir, f));

/** Writes a heap snapshot of one replica (SIGUSR2) and waits until it is written. */
async function heapSnapshot(child, port, dir) {
  const before = new Set(list(dir, '.heapsnapshot'));
  process.kill(child.pid, 'SIGUSR2');
  await sleep(200);
  // The replica writes the snapshot on its main thread: once it answers again, the file is whole.
  await waitHttpOk(port, '/healthz', 120000, child);
  const added = list(dir, '.heapsnapshot').filter((f) => !before.has(f));
  if (added.length !== 1) throw new Error(`expected one new heap snapshot in ${dir}, found ${added.length}`);
  return added[0];
}

export async function profile(fleet, { root, logDir, outDir, quick }) {
  const openDir = join(outDir, 'open');
  const flowDir = join(outDir, 'flow');
  const heapDir = join(outDir, 'heap');
  for (const d of [openDir, heapDir]) mkdirSync(d, { recursive: true });
  const streams = quick ? 3000 : 10000;

  const stack = await switchboard.start({
    logDir,
    root,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${openDir}`, `--diagnostic-dir=${heapDir}`, '--heapsnapshot-signal=SIGUSR2'],
  });
  let heapBefore;
  let heapAfter;
  try {
    await sleep(1000);
    heapBefore = await heapSnapshot(stack.children[0], stack.idlePorts[0], heapDir);
    await fleet.open(stack, { from: 0, to: streams, ports: stack.idlePorts, topic: false, concurrency: 64 });
    await sleep(2000);
    heapAfter = await heapSnapshot(stack.children[0], stack.idlePorts[0], heapDir);
  } finally {
    await fleet.closeAll();
    await stack.stop();
  }

  const durationMs = quick ? 3000 : 8000;
  const flow = await loadPass(switchboard, fleet, { logDir, root, dir: flowDir, durationMs });
  const fanout = await loadPass(switchboard, fleet, { logDir, root, dir: join(outDir, 'fanout'), durationMs: durationMs / 2, topic: true });
  const rawFlow = await loadPass(rawNode, fleet, { logDir, root, dir: join(outDir, 'raw-flow'), durationMs });
  const rawFanout = await loadPass(rawNode, fleet, { logDir, root, dir: join(outDir, 'raw-fanout'), durationMs: durationMs / 2, topic: true });
  const open = analyzeCpuProfiles(list(openDir, '.cpuprofile'));
  const heap = perStreamHeap(heapBefore, heapAfter, streams);
  const result = { streams, open, flow, fanout, rawFlow, rawFanout, heap, files: { outDir } };
  return { ...result, markdown: render(result) };
}

/**
 * One load on a fresh stack under --cpu-prof: 1k streams (user + topic), then closed-loop
 * publishes (16 in flight) to random users — or, with `topic`, to the topic (4 in flight) — for
 * `durationMs`. Returns the replicas' profile analysis and the events delivered, so costs can be
 * given per delivered event.
 */
async function loadPass(target, fleet, { logDir, root, dir, durationMs, topic }) {
  mkdirSync(dir, { recursive: true });
  const stack = await target.start({ logDir, root, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  let delivered = 0;
  // Only the load itself: the stream opens before it are left out (the open pass covers them).
  const window = { fromUs: 0, toUs: Infinity };
  try {
    await fleet.publisher.call('setup', { system: stack.system, ctx: stack.ctx, ports: stack.publishPorts });
    await fleet.open(stack, { from: 0, to: 1000, ports: stack.streamPorts, topic: true, concurrency: 64 });
    await sleep(500);
    const before = await fleet.counts();
    window.fromUs = Number(process.hrtime.bigint() / 1000n);
    const pub = await fleet.publisher.call('closed', { concurrency: topic ? 4 : 16, durationMs, users: 1000, topic: topic ? TOPIC : undefined });
    const after = await waitForEvents(fleet, before.events + pub.ok * (topic ? before.alive : 1));
    delivered = after.events - before.events;
    window.toUs = Number(process.hrtime.bigint() / 1000n);
  } finally {
    await fleet.closeAll();
    await fleet.publisher.call('close');
    await stack.stop();
  }
  const files = list(dir, '.cpuprofile');
  const analysis = analyzeCpuProfiles(files, 25, window);
  // The top native frames are socket writes; say which code issues them.
  analysis.callers = Object.fromEntries(['writeUtf8String', 'writev'].map((leaf) => [leaf, callersOf(files, leaf, 4, window)]));
  analysis.delivered = delivered;
  analysis.usPerEvent = (analysis.busyMs * 1000) / Math.max(1, delivered);
  return analysis;
}

function render({ streams, open, flow, fanout, rawFlow, rawFanout, heap }) {
  const rows = (items, n) =>
    items
      .slice(0, n)
      .map((r) => `| ${r.name.replace(/\|/g, '\\|')} | ${r.pct.toFixed(1)}% | ${r.ms.toFixed(0)} |`)
      .join('\n');
  const perEvent = (sb, raw, n) => {
    const names = [...new Set([...sb.modules.slice(0, n), ...raw.modules.slice(0, 6)].map((m) => m.name))];
    const us = (a, name) => {
      const m = a.modules.find((x) => x.name === name);
      return m ? ((m.ms * 1000) / Math.max(1, a.delivered)).toFixed(1) : '—';
    };
    return [
      '| module | Switchboard µs/event | raw Node µs/event |',
      '| --- | ---: | ---: |',
      `| **all (replicas' busy CPU)** | **${sb.usPerEvent.toFixed(1)}** | **${raw.usPerEvent.toFixed(1)}** |`,
      ...names.map((name) => `| ${name} | ${us(sb, name)} | ${us(raw, name)} |`),
    ].join('\n');
  };
  const callers = (a) =>
    Object.entries(a.callers)
      .map(([leaf, rs]) => `| ${leaf} | ${rs.map((r) => `${r.name} ${r.pct.toFixed(0)}%`).join('; ')} |`)
      .join('\n');
  return [
    '## Profile (replicas under --cpu-prof; boot and heap-snapshot samples left out)',
    '',
    `Targeted load (closed loop, 16 in flight, events to random users across replicas; ${flow.delivered} events): replicas' CPU per delivered event, by module:`,
    '',
    perEvent(flow, rawFlow, 12),
    '',
    'Switchboard, targeted — self time, % of busy:',
    '',
    '| function | self | ms |',
    '| --- | ---: | ---: |',
    rows(flow.self, 20),
    '',
    'Switchboard, targeted — inclusive time:',
    '',
    '| function | inclusive | ms |',
    '| --- | ---: | ---: |',
    rows(
      flow.inclusive.filter((r) => !r.name.startsWith('node:') && !/^\S+ node:/.test(r.name)),
      25,
    ),
    '',
    'Switchboard, targeted — who issues the top native calls (nearest caller outside node internals):',
    '',
    '| native call | callers |',
    '| --- | --- |',
    callers(flow),
    '',
    `Fan-out load (closed loop, 4 in flight, topic events to 1k streams; ${fanout.delivered} deliveries): CPU per delivered event:`,
    '',
    perEvent(fanout, rawFanout, 10),
    '',
    'Switchboard, fan-out — self time:',
    '',
    '| function | self | ms |',
    '| --- | ---: | ---: |',
    rows(fanout.self, 15),
    '',
    `Open (${streams} streams opened on one replica; ${(open.busyMs / 1000).toFixed(1)} s busy) — self time:`,
    '',
    '| function | self | ms |',
    '| --- | ---: | ---: |',
    rows(open.self, 15),
    '',
    'Open — inclusive:',
    '',
    '| function | inclusive | ms |',
    '| --- | ---: | ---: |',
    rows(
      open.inclusive.filter((r) => !/^\S+ node:/.test(r.name)),
      20,
    ),
    '',
    `Heap per idle stream (snapshot with ${streams} streams minus snapshot before any): ${(heap.heapBytesPerStream / 1024).toFixed(2)} KiB of JS heap per stream`,
    '',
    '| retained by | bytes per stream | objects per stream |',
    '| --- | ---: | ---: |',
    heap.top
      .slice(0, 20)
      .map((r) => `| ${r.name.replace(/\|/g, '\\|').slice(0, 80)} | ${r.bytesPerStream.toFixed(0)} | ${r.objectsPerStream.toFixed(2)} |`)
      .join('\n'),
  ].join('\n');
}
