// What tracing costs. Two replicas on one redis-server: A accepts every publish, B holds the
// streams, so each event crosses Redis. The same run is repeated in three modes:
//   bare  node dist/main.js                                  (no preload at all)
//   off   node --import dist/telemetry/start.js dist/main.js (npm start without OTEL_* set)
//   on    the same, exporting OTLP/HTTP JSON to a sink in this process
// and reports, per mode, the median of 3 rounds (modes interleaved within a round, so a noisy
// neighbour hurts all three alike) of events/s (first publish → last event on the streams) and
// the CPU seconds both replicas spent (from /proc, until the exporter had sent every span).
// Replicas log at the default level (to /dev/null). The sink takes OTLP JSON, the costlier
// encoding (the default, http/protobuf, costs less), so it can count spans and show none dropped.
// The machine's load average is printed too: on a shared machine, read the ratios, not the rates.
// Usage: npm run build && node bench/tracing-cost.mjs [events=3000]   (redis-server on PATH)
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg } from 'node:os';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const EVENTS = Number(process.argv[2] ?? 3000);
const WARMUP_EVENTS = 300;
const ROUNDS = 3;
const STREAMS = 20;
const IN_FLIGHT = 16;
const MODES = ['bare', 'off', 'on'];
const SECRET = 'bench-stream-secret-0123456789abcdef';
const API_KEY = 'bench-publish-key-0123456789abcdef';
const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const START_JS = fileURLToPath(new URL('../dist/telemetry/start.js', import.meta.url));
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

// --- the OTLP sink: counts the spans it is sent ------------------------------------------------
let spansReceived = 0;
const sink = http.createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => (body += chunk));
  request.on('end', () => {
    spansReceived += (body.match(/"spanId"/g) ?? []).length;
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
const sinkUrl = `http://127.0.0.1:${sink.address().port}`;

// --- processes ---------------------------------------------------------------------------------
function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function startRedis() {
  const port = await freePort();
  track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
  for (let i = 0; i < 200; i++) {
    const pong = await new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      socket.once('error', () => resolve(false));
    });
    if (pong) return `redis://127.0.0.1:${port}`;
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}

/** A port picked free may be taken by another process before the replica binds it: try again. */
async function startReplica(mode, redisUrl, replicaId) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startReplicaOnce(mode, redisUrl, replicaId);
    } catch (err) {
      if (attempt === 3 || !/EADDRINUSE/.test(err.message)) throw err;
    }
  }
}

async function startReplicaOnce(mode, redisUrl, replicaId) {
  const env = {
    ...process.env,
    REDIS_URL: redisUrl,
    STREAM_TOKEN_SECRET: SECRET,
    PUBLISH_API_KEY: API_KEY,
    ALLOW_UNSIGNED_CALLBACKS: 'true',
    PORT: '0',
    HOST: '127.0.0.1',
    REPLICA_ID: replicaId,
  };
  for (const key of Object.keys(env)) if (key.startsWith('OTEL_')) delete env[key];
  if (mode === 'on') {
    Object.assign(env, {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
      OTEL_BSP_SCHEDULE_DELAY: '500',
    });
  }
  // Ready once /readyz answers 200; stdout (the logs, at the default level) goes to /dev/null.
  const port = await freePort();
  env.PORT = String(port);
  const args = mode === 'bare' ? [MAIN_JS] : ['--import', START_JS, MAIN_JS];
  const child = track(spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`replica ${replicaId} (${mode}) exited: ${stderr}`);
    const status = await request({ port, path: '/readyz', method: 'GET' }).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return { child, port };
    await sleep(50);
  }
  throw new Error(`replica ${replicaId} (${mode}) not ready in 60 s: ${stderr}`);
}

function cpuSeconds(pid) {
  // Fields after the command name (which may contain spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

// --- HTTP: publishes and streams -----------------------------------------------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });

function request({ port, path, method, body, headers = {} }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function token(userId) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub: userId, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

/** Opens STREAMS streams on `port`; `received()` counts the events they got. */
async function openStreams(port, prefix) {
  let received = 0;
  const sockets = [];
  await Promise.all(
    Array.from(
      { length: STREAMS },
      (_, i) =>
        new Promise((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: `/stream/${prefix}${i}?token=${token(`${prefix}${i}`)}`, agent: false }, (res) => {
            if (res.statusCode !== 200) reject(new Error(`stream ${i}: ${res.statusCode}`));
            res.setEncoding('utf8');
            res.on('data', (chunk) => {
              if (chunk.includes(': connected')) resolve();
              received += chunk.split('\ndata: ').length - 1;
            });
          });
          req.on('error', reject);
          sockets.push(req);
        }),
    ),
  );
  return { received: () => received, close: () => sockets.forEach((req) => req.destroy()) };
}

async function publishAll(port, prefix, count) {
  let next = 0;
  const body = (seq) => JSON.stringify({ data: { s: seq, note: 'a typical small event payload' } });
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let seq = next++; seq < count; seq = next++) {
        const answer = await request({
          port,
          method: 'POST',
          path: `/v1/users/${prefix}${seq % STREAMS}/events`,
          body: body(seq),
          headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
        });
        if (answer.status !== 202) throw new Error(`publish ${seq}: ${answer.status} ${answer.text}`);
      }
    }),
  );
}

async function until(condition, timeoutMs, label) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${label}`);
    await sleep(5);
  }
}

/** Waits until the span count has not moved for `quietMs` (the exporters have sent everything). */
async function spansSettled(quietMs) {
  let last = -1;
  let stableSince = Date.now();
  while (Date.now() - stableSince < quietMs) {
    if (spansReceived !== last) {
      last = spansReceived;
      stableSince = Date.now();
    }
    await sleep(50);
  }
}

// --- one run -------------------------------------------------------------------------------------
async function run(mode, redisUrl, round) {
  const [a, b] = await Promise.all([startReplica(mode, redisUrl, `${mode}-a-${round}`), startReplica(mode, redisUrl, `${mode}-b-${round}`)]);
  const prefix = `${mode}${round}u`;
  const streams = await openStreams(b.port, prefix);
  await publishAll(a.port, prefix, WARMUP_EVENTS);
  await until(() => streams.received() >= WARMUP_EVENTS, 30_000, 'warm-up delivered');
  await spansSettled(mode === 'on' ? 1000 : 0);

  const spansBefore = spansReceived;
  const cpuBefore = cpuSeconds(a.child.pid) + cpuSeconds(b.child.pid);
  const started = performance.now();
  await publishAll(a.port, prefix, EVENTS);
  await until(() => streams.received() >= WARMUP_EVENTS + EVENTS, 60_000, 'events delivered');
  const seconds = (performance.now() - started) / 1000;
  await spansSettled(mode === 'on' ? 1000 : 0);
  const cpu = cpuSeconds(a.child.pid) + cpuSeconds(b.child.pid) - cpuBefore;

  streams.close();
  for (const replica of [a, b]) replica.child.kill('SIGKILL');
  return { eventsPerSecond: EVENTS / seconds, cpuSeconds: cpu, spansPerEvent: (spansReceived - spansBefore) / EVENTS };
}

const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];

const loadBefore = loadavg()[0].toFixed(1);
const redisUrl = await startRedis();
const results = Object.fromEntries(MODES.map((mode) => [mode, []]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const mode of round % 2 === 1 ? MODES : [...MODES].reverse()) {
    const result = await run(mode, redisUrl, round);
    results[mode].push(result);
    console.error(
      `round ${round} ${mode}: ${result.eventsPerSecond.toFixed(0)} events/s, ${result.cpuSeconds.toFixed(2)} CPU s, ${result.spansPerEvent.toFixed(2)} spans/event`,
    );
  }
}

const summary = Object.fromEntries(
  MODES.map((mode) => [
    mode,
    {
      eventsPerSecond: median(results[mode].map((r) => r.eventsPerSecond)),
      cpuSeconds: median(results[mode].map((r) => r.cpuSeconds)),
      spansPerEvent: median(results[mode].map((r) => r.spansPerEvent)),
    },
  ]),
);
console.log(
  `\n${EVENTS} events per run, ${STREAMS} streams on B, ${IN_FLIGHT} publishes in flight to A; median of ${ROUNDS} rounds; load average ${loadBefore} before, ${loadavg()[0].toFixed(1)} after\n`,
);
console.log('| mode | events/s | CPU s (A+B) | CPU ms per 1000 events | spans exported per event |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const mode of MODES) {
  const s = summary[mode];
  console.log(
    `| ${mode} | ${s.eventsPerSecond.toFixed(0)} | ${s.cpuSeconds.toFixed(2)} | ${((s.cpuSeconds / EVENTS) * 1e6).toFixed(0)} | ${s.spansPerEvent.toFixed(2)} |`,
  );
}
const ratio = (x, y) => (x / y).toFixed(3);
console.log(
  `\ntracing on / off:  events/s ×${ratio(summary.on.eventsPerSecond, summary.off.eventsPerSecond)}, CPU s ×${ratio(summary.on.cpuSeconds, summary.off.cpuSeconds)}`,
);
console.log(
  `off / bare (the preload with no exporter):  events/s ×${ratio(summary.off.eventsPerSecond, summary.bare.eventsPerSecond)}, CPU s ×${ratio(summary.off.cpuSeconds, summary.bare.cpuSeconds)}`,
);
process.exit(0);
