// What a targeted event allocates, and what outlives the young generation: the garbage behind the
// scavenges that make the latency tail (docs/BENCHMARKS.md, "The tail with a GC trace"). Two
// replicas and a Redis: A holds 300 streams, B takes the publishes (open loop, --rate per second,
// to random users), so every event crosses Redis. After a 3 s warm-up, each replica's sampling
// heap profiler runs for the measured window; the report is bytes per event by allocating
// function, and the publish → receive latency and server CPU per event (each replica, Redis) of
// the same window.
//
//   node bench/allocations.mjs [--rate=1500] [--secs=8] [--top=25] [--promoted] [--no-sample]
//                              [--root=DIR] [--node-args="--max-semi-space-size=8"]
//
// --promoted: only what outlived a scavenge (promoted, then freed by a major GC). --no-sample:
// no profiler (it slows what it samples), for the latency and CPU figures alone. Runs the dist/
// of --root (default: this work tree; `npm run build` first).
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseFlags } from './lib/flags.mjs';
import { signToken } from './lib/jwt.mjs';
import { cpuSeconds } from './lib/procs.mjs';
import { quantile, sortNumbers } from './lib/stats.mjs';
import { start } from './targets/switchboard.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = parseFlags();
const RATE = Number(args.rate ?? 1500);
const SECS = Number(args.secs ?? 8);
const TOP = Number(args.top ?? 25);
const STREAMS = 300;
const WARMUP_SECS = 3;
const sampling = !args['no-sample'];
const outDir = join(ROOT, 'bench/results/allocations');
mkdirSync(outDir, { recursive: true });

// Replicas as the bench runs Switchboard (its environment and secrets), with the sampler preloaded;
// they inherit this process's environment, which tells the sampler where to write and what.
process.env.HEAP_SAMPLE_DIR = outDir;
process.env.HEAP_SAMPLE_PROMOTED = args.promoted ? '1' : '0';
const stack = await start({
  logDir: outDir,
  replicas: 2,
  root: resolve(String(args.root ?? ROOT)),
  nodeArgs: [
    ...String(args['node-args'] ?? '')
      .split(' ')
      .filter(Boolean),
    '--import',
    join(ROOT, 'bench/lib/heap-sampler.mjs'),
  ],
});
const { secret, apiKey } = stack.ctx;
const replicas = stack.children.map((child, i) => ({
  name: i === 0 ? 'A' : 'B',
  port: stack.streamPorts[i],
  child,
  sample: join(outDir, `heap-${child.pid}.json`),
}));
const [holder, publisher] = replicas;

const latenciesMs = [];
let counting = false;
for (let i = 0; i < STREAMS; i++) {
  const token = signToken(secret, { sub: `u${i}`, aud: 'switchboard', exp: Math.floor(Date.now() / 1000) + 3600 });
  await new Promise((opened, failed) => {
    http
      .get({ host: '127.0.0.1', port: holder.port, path: `/stream/u${i}?token=${token}`, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          const now = process.hrtime.bigint();
          if (counting) for (const m of chunk.matchAll(/"t":(\d+)/g)) latenciesMs.push(Number(now - BigInt(m[1])) / 1e6);
        });
        opened();
      })
      .on('error', failed);
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const publish = () =>
  new Promise((answered) => {
    const body = `{"type":"bench","data":{"t":${process.hrtime.bigint()}}}`;
    const req = http.request(
      {
        host: '127.0.0.1',
        port: publisher.port,
        path: `/v1/users/u${Math.floor(Math.random() * STREAMS)}/events`,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}`, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => answered(res.statusCode));
      },
    );
    req.end(body);
  });
/** Open loop: each publish leaves at its time, whatever the answers do. */
async function publishFor(secs) {
  const count = RATE * secs;
  const start = performance.now();
  const answers = [];
  for (let i = 0; i < count; i++) {
    const wait = start + (i * 1000) / RATE - performance.now();
    if (wait > 1) await sleep(wait);
    answers.push(publish());
  }
  return Promise.all(answers);
}

await publishFor(WARMUP_SECS);
const cpuBefore = replicas.map(({ child }) => cpuSeconds(child.pid));
const redisCpuBefore = cpuSeconds(stack.redisPid);
if (sampling) for (const { child } of replicas) child.kill('SIGUSR1');
counting = true;
const statuses = await publishFor(SECS);
await sleep(200); // the last deliveries
counting = false;
const cpuAfter = replicas.map(({ child }) => cpuSeconds(child.pid));
const redisCpuAfter = cpuSeconds(stack.redisPid);
if (sampling) {
  for (const { child, sample } of replicas) {
    rmSync(sample, { force: true });
    child.kill('SIGUSR2');
  }
  for (const { sample } of replicas) while (!existsSync(sample)) await sleep(50);
}
const events = statuses.length;
const accepted = statuses.filter((s) => s === 202).length;
const sorted = sortNumbers(latenciesMs);
console.log(
  `${events} publishes at ${RATE}/s, ${accepted} accepted, ${latenciesMs.length} received; publish → receive p50 ${quantile(sorted, 0.5).toFixed(2)} ms, p99 ${quantile(sorted, 0.99).toFixed(2)} ms`,
);
for (const [i, { name }] of replicas.entries()) console.log(`replica ${name}: ${(((cpuAfter[i] - cpuBefore[i]) * 1e6) / events).toFixed(0)} µs CPU per event`);
console.log(`redis: ${(((redisCpuAfter - redisCpuBefore) * 1e6) / events).toFixed(0)} µs CPU per event`);

if (sampling) {
  for (const { name, sample } of replicas) {
    const profile = JSON.parse(readFileSync(sample, 'utf8'));
    const bySite = new Map();
    const walk = (node) => {
      const f = node.callFrame;
      const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`;
      if (node.selfSize > 0) bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    const total = [...bySite.values()].reduce((a, b) => a + b, 0);
    console.log(
      `\nreplica ${name} (${name === 'A' ? 'holds the streams' : 'takes the publishes'}): ${(total / events / 1024).toFixed(1)} KiB ${args.promoted ? 'promoted' : 'allocated'} per event`,
    );
    for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${(bytes / events).toFixed(0).padStart(7)} B  ${site}`);
  }
}
await stack.stop();
process.exit(0);
