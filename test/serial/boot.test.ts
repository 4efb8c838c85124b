// Configuration is validated once, at boot (CONTRACT.md, Running it): with Redis the secrets are
// required (CALLBACK_SECRET unless unsigned callbacks are allowed on purpose, with a warning); bad values stop the process with a message naming the variable; with nothing set it
// runs alone on the in-process backplane and prints a quickstart that works as printed.
import { execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import t, { type Test } from 'tap';
import { freePort } from '../helpers/free-port.js';
import { getJson, postJson } from '../helpers/http.js';
import { startRedis } from '../helpers/redis-server.js';
import { trackChild } from '../helpers/reaper.js';
import { MAIN_JS, REPO_ROOT, startReplica, type TeardownHost } from '../helpers/replica.js';
import { openSse } from '../helpers/sse-client.js';

const SECRET = 'boot-test-secret-0123456789abcdef';
const KEY = 'boot-test-key-0123456789abcdef';
/** A replica that refuses its config must say so well within this. */
const EXIT_BOUND_MS = 5000;

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * `node dist/main.js` with exactly `env` (plus PATH, and HOST/PORT on loopback): nothing is
 * inherited, so a REDIS_URL or secret in the test's own environment cannot leak in. Resolves when
 * it exits; if it is still running after `boundMs` it is killed and the run says so (signal).
 */
function runMain(t: TeardownHost, env: Record<string, string>, boundMs = EXIT_BOUND_MS): Promise<Run> {
  const started = performance.now();
  const child = spawn(process.execPath, [MAIN_JS], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), boundMs);
  return new Promise<Run>((resolve, reject) => {
    child.once('error', reject);
    // 'close': the process exited and its pipes are drained.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

function assertRefused(t: Test, run: Run, variable: RegExp, what: string): void {
  t.equal(run.signal, null, `${what}: exited by itself (not killed at the ${EXIT_BOUND_MS} ms bound)`);
  t.ok(run.code !== null && run.code !== 0, `${what}: exit code ${run.code} (non-zero)`);
  t.match(run.stderr, variable, `${what}: stderr names the variable: ${JSON.stringify(run.stderr.trim())}`);
  t.notMatch(run.stderr, /\n\s+at /, `${what}: no stack trace`);
  t.notMatch(run.stdout, /"msg":"listening"/, `${what}: never listened`);
  t.ok(run.ms < EXIT_BOUND_MS, `${what}: stopped after ${run.ms.toFixed(0)} ms`);
}

t.test('with REDIS_URL set, a missing STREAM_TOKEN_SECRET, PUBLISH_API_KEY or CALLBACK_SECRET stops the process at boot', async (t) => {
  const redisUrl = `redis://127.0.0.1:${await freePort()}`;
  const cases: [string, Record<string, string>, RegExp][] = [
    ['no STREAM_TOKEN_SECRET', { REDIS_URL: redisUrl, PUBLISH_API_KEY: KEY }, /STREAM_TOKEN_SECRET/],
    ['no PUBLISH_API_KEY', { REDIS_URL: redisUrl, STREAM_TOKEN_SECRET: SECRET }, /PUBLISH_API_KEY/],
    ['neither secret', { REDIS_URL: redisUrl }, /STREAM_TOKEN_SECRET|PUBLISH_API_KEY/],
    ['no CALLBACK_SECRET', { REDIS_URL: redisUrl, STREAM_TOKEN_SECRET: SECRET, PUBLISH_API_KEY: KEY }, /CALLBACK_SECRET.*ALLOW_UNSIGNED_CALLBACKS/],
  ];
  const runs: Run[] = [];
  for (const [, env] of cases) runs.push(await runMain(t, env));
  cases.forEach(([what, , variable], i) => assertRefused(t, runs[i]!, variable, what));
  t.comment(`refused at boot after ${runs.map((r) => r.ms.toFixed(0)).join(', ')} ms`);
});

t.test('with REDIS_URL and ALLOW_UNSIGNED_CALLBACKS=true instead of CALLBACK_SECRET, it starts and warns', async (t) => {
  const redis = await startRedis(t);
  const base = { REDIS_URL: redis.url, STREAM_TOKEN_SECRET: SECRET, PUBLISH_API_KEY: KEY };
  const unsigned = await startReplica(t, { ...base, CALLBACK_SECRET: undefined, ALLOW_UNSIGNED_CALLBACKS: 'true' });
  const signed = await startReplica(t, { ...base, CALLBACK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}`, ALLOW_UNSIGNED_CALLBACKS: undefined });
  const isWarning = (e: { level?: unknown; msg?: unknown }): boolean =>
    (e.level === 40 || e.level === 'warn') && /ALLOW_UNSIGNED_CALLBACKS/.test(String(e.msg));
  const warning = await unsigned.waitForLog(isWarning, 5000, { label: 'the unsigned-callbacks warning' });
  t.match(warning.msg, /unsigned/, `it warns: ${warning.msg}`);
  // A line logged after boot: any boot warning is already in the log before it.
  await getJson(`${signed.url}/healthz`);
  await signed.waitForLog((e) => e.msg === 'request completed', 5000, { label: 'a line logged after boot' });
  t.notOk(signed.parsedLogs().some(isWarning), 'a replica with CALLBACK_SECRET does not warn');
});

t.test('an invalid value stops the process with a message naming the variable', async (t) => {
  const base = { STREAM_TOKEN_SECRET: SECRET, PUBLISH_API_KEY: KEY };
  const cases: [string, Record<string, string>, RegExp][] = [
    ['HEARTBEAT_MS=abc', { ...base, HEARTBEAT_MS: 'abc' }, /HEARTBEAT_MS/],
    ['REDIS_URL=http://x', { ...base, REDIS_URL: 'http://x' }, /REDIS_URL/],
    ['PORT=99999', { ...base, PORT: '99999' }, /PORT/],
    // Past 2^31-1 ms a Node timer fires after 1 ms: refused, not run as a 1 ms heartbeat.
    ['HEARTBEAT_MS=2^31', { ...base, HEARTBEAT_MS: String(2 ** 31) }, /HEARTBEAT_MS must be <= 2147483647/],
    ['TRUST_PROXY=a hop count', { ...base, TRUST_PROXY: '2' }, /TRUST_PROXY/],
    ['PUBLISH_API_KEY too short', { STREAM_TOKEN_SECRET: SECRET, PUBLISH_API_KEY: 'short' }, /PUBLISH_API_KEY/],
  ];
  const runs: Run[] = [];
  for (const [, env] of cases) runs.push(await runMain(t, env));
  cases.forEach(([what, , variable], i) => assertRefused(t, runs[i]!, variable, what));
});

/** An HS256 JWT made here, with nothing but the printed secret. */
function jwt(secret: string, claims: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

function bash(script: string, timeoutMs = 5000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', script], { timeout: timeoutMs, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** The shell lines of one numbered step of the printed quickstart, continuation lines included. */
function step(block: string[], n: number): string {
  const start = block.findIndex((l) => l.trim().startsWith(`# ${n}.`));
  if (start < 0) throw new Error(`quickstart has no step ${n}:\n${block.join('\n')}`);
  const lines: string[] = [];
  for (const line of block.slice(start + 1)) {
    if (line.trim() === '' || line.trim().startsWith('#')) break;
    lines.push(line.trim());
  }
  return lines.join('\n');
}

t.test('without REDIS_URL or secrets it runs on the in-process backplane and its printed quickstart works', async (t) => {
  const replica = await startReplica(t, {
    REDIS_URL: undefined,
    REDIS_CLUSTER_NODES: undefined,
    STREAM_TOKEN_SECRET: undefined,
    PUBLISH_API_KEY: undefined,
    CALLBACK_SECRET: undefined,
  });
  for (const name of ['REDIS_URL', 'STREAM_TOKEN_SECRET', 'PUBLISH_API_KEY']) t.notOk(name in replica.env, `${name} is not in the replica's env`);

  const listening = await replica.waitForLog((e) => e.msg === 'listening', 1000);
  t.equal(listening.backplane, 'memory', 'it listens on the in-process (memory) backplane');
  const warning = await replica.waitForLog((e) => /in-process backplane/.test(e.msg), 2000, { label: 'in-process backplane warning' });
  t.match(warning.msg, /ONE replica|one replica|single replica/i, `it says the in-process backplane serves one replica: "${warning.msg}"`);

  const keyLine = await replica.waitForLine(/^\s*PUBLISH_API_KEY=\S+/, 2000);
  const secretLine = await replica.waitForLine(/^\s*STREAM_TOKEN_SECRET=\S+/, 2000);
  const key = keyLine.trim().slice('PUBLISH_API_KEY='.length);
  const secret = secretLine.trim().slice('STREAM_TOKEN_SECRET='.length);
  t.ok(key.length >= 16 && secret.length >= 16, `generated a ${key.length}-char key and a ${secret.length}-char secret`);
  t.not(key, secret, 'key and secret differ');
  // The example is printed after the secrets; wait for its last command.
  await replica.waitForLine(/\/v1\/users\/alice\/events/, 2000, { label: 'quickstart publish example' });
  const first = replica.logs.indexOf(keyLine);
  const block = replica.logs.slice(first);
  const text = block.join('\n');
  t.match(text, `http://localhost:${replica.port}/v1/tokens`, "the example targets this replica's port");
  t.match(text, `authorization: Bearer ${key}`, 'the example carries the generated key');

  // The quickstart over HTTP: printed key → token → stream; printed key → publish → event.
  const status = await getJson(`${replica.url}/readyz`);
  t.equal(status.status, 200, 'ready');
  t.equal(status.json?.backplane, 'memory');
  const refused = await postJson(`${replica.url}/v1/tokens`, { userId: 'alice' }, { bearer: `${key}x` });
  t.equal(refused.status, 401, 'another key is refused');
  const minted = await postJson(`${replica.url}/v1/tokens`, { userId: 'alice' }, { bearer: key });
  t.equal(minted.status, 201, 'the printed key mints a token');
  const stream = await openSse(`${replica.url}/stream/alice?token=${minted.json?.token}`);
  t.teardown(() => stream.close());
  t.equal(stream.status, 200, 'the token opens a stream');
  await stream.waitFor((c) => c.comments.length > 0, 5000, 'stream open');
  const published = await postJson(`${replica.url}/v1/users/alice/events`, { data: { hello: 'world' } }, { bearer: key });
  t.equal(published.status, 202, 'the printed key publishes');
  t.equal(published.json?.receivers, 1);
  await stream.waitForEvents(1, 2000);
  t.same(JSON.parse(stream.events[0]!.data), { hello: 'world' }, 'the event reaches the stream');

  // The printed secret is the one in use: a token made here with it opens a stream.
  const own = jwt(secret, { sub: 'bob', aud: 'switchboard', exp: Math.floor(Date.now() / 1000) + 600 });
  const bob = await openSse(`${replica.url}/stream/bob?token=${own}`);
  t.teardown(() => bob.close());
  t.equal(bob.status, 200, 'a token signed with the printed STREAM_TOKEN_SECRET is accepted');
  const forged = await openSse(
    `${replica.url}/stream/bob?token=${jwt(`${secret}x`, { sub: 'bob', aud: 'switchboard', exp: Math.floor(Date.now() / 1000) + 600 })}`,
  );
  t.teardown(() => forged.close());
  t.equal(forged.status, 401, 'one signed with another secret is not');

  // Paste-ready: run steps 1 and 3 exactly as printed (curl + sed), with the stream of step 2 here.
  const curl = await bash('command -v curl').catch(() => undefined);
  if (!t.ok(curl, 'curl is installed (the quickstart prints curl commands; .ci/run installs it)')) return;
  const step1 = step(block, 1);
  const { stdout: pastedToken } = await bash(`${step1}\nprintf '%s' "$TOKEN"`);
  t.match(pastedToken, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'step 1 as printed yields a token');
  const pasted = await openSse(`${replica.url}/stream/alice?token=${pastedToken}`);
  t.teardown(() => pasted.close());
  t.equal(pasted.status, 200, "that token opens alice's stream");
  await pasted.waitFor((c) => c.comments.length > 0, 5000, 'pasted stream open');
  const { stdout: step3Answer } = await bash(step(block, 3));
  t.match(step3Answer, /"receivers":1/, `step 3 as printed publishes: ${step3Answer.trim()}`);
  await pasted.waitForEvents(1, 2000);
  t.same(JSON.parse(pasted.events[0]!.data), { hello: 'world' }, 'and its event arrives on the stream');
});

t.test('with REDIS_URL pointing where nothing listens, the replica never reports ready: it exits non-zero', async (t) => {
  // What the code does (connect.ts connectParts → RedisBackplane.start()): the first connect
  // fails, start() rejects, and main() exits 1 before listening. Were it to listen instead,
  // /readyz would have to stay 503; this test pins the exit.
  const port = await freePort();
  const run = await runMain(
    t,
    { REDIS_URL: `redis://127.0.0.1:${port}`, STREAM_TOKEN_SECRET: SECRET, PUBLISH_API_KEY: KEY, ALLOW_UNSIGNED_CALLBACKS: 'true' },
    15_000,
  );
  t.equal(run.signal, null, 'it exited by itself');
  t.ok(run.code !== null && run.code !== 0, `exit code ${run.code} (non-zero)`);
  t.notMatch(run.stdout, /"msg":"listening"/, 'it never listened, so it never answered /readyz 200');
  t.match(run.stderr, /switchboard: failed to start/, `stderr says it failed to start: ${JSON.stringify(run.stderr.trim())}`);
  const output = run.stdout + run.stderr;
  t.match(output, /redis/i, 'the output names Redis');
  t.match(output, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`), 'and the refused address');
  t.ok(run.ms < EXIT_BOUND_MS, `it gave up after ${run.ms.toFixed(0)} ms`);
  t.comment(`unreachable Redis: exit ${run.code} after ${run.ms.toFixed(0)} ms; stderr: ${run.stderr.trim()}`);
});

t.test('with REDIS_CLUSTER_NODES pointing at a Redis without cluster mode, the boot stops and says why', async (t) => {
  const redis = await startRedis(t);
  const run = await runMain(
    t,
    { REDIS_CLUSTER_NODES: `127.0.0.1:${redis.port}`, STREAM_TOKEN_SECRET: SECRET, PUBLISH_API_KEY: KEY, ALLOW_UNSIGNED_CALLBACKS: 'true' },
    20_000,
  );
  t.equal(run.signal, null, 'it exited by itself');
  t.ok(run.code !== null && run.code !== 0, `exit code ${run.code} (non-zero)`);
  t.notMatch(run.stdout, /"msg":"listening"/, 'it never listened');
  const output = run.stdout + run.stderr;
  t.match(output, /REDIS_CLUSTER_NODES/, 'the output names the variable');
  t.match(output, /cluster support disabled/i, `and says the server is not in cluster mode: ${JSON.stringify(run.stderr.trim())}`);
  t.comment(`non-cluster Redis as REDIS_CLUSTER_NODES: exit ${run.code} after ${run.ms.toFixed(0)} ms; stderr: ${run.stderr.trim()}`);
});
