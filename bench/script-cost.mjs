#!/usr/bin/env node
// Redis' own cost of the publish script, A/B: `node bench/script-cost.mjs DIR_A DIR_B` runs the
// publish script of each build's dist/ (the same channels, events and concurrency) against one
// redis-server this starts, in alternating rounds, and prints Redis' microseconds per script call
// (INFO commandstats) and its CPU per event (INFO cpu), medians over rounds. Redis' CPU is part
// of the bench's "server CPU-second"; this isolates it from the replicas' on a noisy machine.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';

const [dirA, dirB] = process.argv.slice(2).map((d) => resolve(d));
if (dirA === undefined || dirB === undefined) throw new Error('usage: node bench/script-cost.mjs DIR_A DIR_B');
const ROUNDS = 3;
const EVENTS = 20_000;
const CHANNELS = 1000;
const CONCURRENCY = 64;

const port = await new Promise((done) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    server.close(() => done(port));
  });
});
const redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
process.on('exit', () => redisServer.kill());
const redis = new Redis({ port, host: '127.0.0.1' });
// Refused until redis-server listens; ioredis retries.
redis.on('error', () => {});
await new Promise((done) => redis.once('ready', done));

async function loadScript(dir) {
  const { PUBLISH_SCRIPT } = await import(pathToFileURL(`${dir}/dist/backplane/scripts.js`).href);
  const client = new Redis({ port, host: '127.0.0.1' });
  client.on('error', () => {});
  client.defineCommand('sbPublish', { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
  // Both versions take (hist, meta, idem, channel, header, data, maxLen, ttl, epoch, …): the
  // argument order of each is built here from its own file's comment-free signature.
  const isNew = PUBLISH_SCRIPT.includes("ARGV[8] ~= ''");
  return (i) => {
    const tag = `{u:user-${i % CHANNELS}}`;
    const keys = [`sb:${tag}:hist`, `sb:${tag}:meta`, `sb:${tag}:idem:`];
    const header = JSON.stringify({ t: 'message', a: Date.now() });
    const data = JSON.stringify({ i, pad: 'x'.repeat(64) });
    return isNew
      ? client.sbPublish(...keys, 1000, 3600, 'abcdefabcdef', `sb:${tag}:ch`, header, data, '1', '')
      : client.sbPublish(...keys, `sb:${tag}:ch`, header, data, 1000, 3600, 'abcdefabcdef', '0', 3600);
  };
}

async function round(publish) {
  await redis.flushall();
  // Warm: every channel has history, as in a running service.
  for (let i = 0; i < CHANNELS; i++) await publish(i);
  await redis.config('RESETSTAT');
  const cpu0 = await cpuSeconds();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < EVENTS) await publish(next++);
    }),
  );
  const cpu = (await cpuSeconds()) - cpu0;
  const stats = await redis.info('commandstats');
  const usec = Number(/cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(stats)?.[1]);
  return { usecPerCall: usec, cpuUsecPerEvent: (cpu * 1e6) / EVENTS };
}

async function cpuSeconds() {
  const info = await redis.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const publishers = { A: await loadScript(dirA), B: await loadScript(dirB) };
const results = { A: [], B: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const name of r % 2 === 0 ? ['A', 'B'] : ['B', 'A']) results[name].push(await round(publishers[name]));
}
for (const [name, dir] of [
  ['A', dirA],
  ['B', dirB],
]) {
  const rs = results[name];
  console.log(
    `${name} ${dir}: script ${median(rs.map((x) => x.usecPerCall)).toFixed(2)} µs/call [${rs.map((x) => x.usecPerCall.toFixed(2)).join(', ')}], ` +
      `Redis CPU ${median(rs.map((x) => x.cpuUsecPerEvent)).toFixed(2)} µs/event [${rs.map((x) => x.cpuUsecPerEvent.toFixed(2)).join(', ')}]`,
  );
}
const ratio = median(results.A.map((x) => x.usecPerCall)) / median(results.B.map((x) => x.usecPerCall));
console.log(`A ÷ B, script µs/call: ${ratio.toFixed(2)}`);
process.exit(0);
