// Proves the test harness itself works: real redis-server processes, the HTTP
// helpers, the replica launcher (against a tiny fake service) and the waits.
import t from 'tap';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { getJson, postJson, rawRequest, rawSocketRequest } from './http.js';
import { redisCommand, startRedis } from './redis-server.js';
import { startReplica, startReplicas } from './replica.js';
import { once, waitFor, withTimeout } from './wait-for.js';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('waitFor / withTimeout / once', async (t) => {
  let n = 0;
  t.equal(await waitFor(() => (++n >= 3 ? n : 0), { intervalMs: 5 }), 3, 'resolves with the first truthy value');

  let m = 0;
  const v = await waitFor(
    async () => {
      if (++m < 3) throw new Error('not yet');
      return 'ok';
    },
    { intervalMs: 5 },
  );
  t.equal(v, 'ok', 'resolves once fn stops throwing');

  const started = Date.now();
  const err = await waitFor(
    () => {
      throw new Error('still broken: xyz');
    },
    { timeoutMs: 150, intervalMs: 10, label: 'the-special-label' },
  ).catch((e: Error) => e);
  const elapsed = Date.now() - started;
  t.type(err, Error);
  t.match((err as Error).message, /waitFor\(the-special-label\) timed out/, 'error names the label');
  t.match((err as Error).message, /still broken: xyz/, 'error carries the last error');
  t.ok(elapsed >= 140 && elapsed < 1500, `timed out near the deadline (${elapsed} ms)`);

  const falsy = await waitFor(() => 0, { timeoutMs: 60, label: 'falsy' }).catch((e: Error) => e);
  t.match((falsy as Error).message, /waitFor\(falsy\).*last value: 0/);

  const hung = await waitFor(() => new Promise<boolean>(() => {}), { timeoutMs: 80, label: 'hung' }).catch((e: Error) => e);
  t.match((hung as Error).message, /waitFor\(hung\) timed out.*still pending/);

  const wt = await withTimeout(new Promise(() => {}), 50, 'never-settles').catch((e: Error) => e);
  t.match((wt as Error).message, /never-settles timed out after 50 ms/);
  t.equal(await withTimeout(Promise.resolve(7), 50, 'fast'), 7);

  const ee = new EventEmitter();
  setImmediate(() => ee.emit('ping', 1, 2));
  t.same(await once(ee, 'ping', 1000, 'ping event'), [1, 2]);
  const oe = await once(ee, 'nothing', 50, 'quiet emitter').catch((e: Error) => e);
  t.match((oe as Error).message, /quiet emitter timed out after 50 ms/);
  const et = new EventTarget();
  setImmediate(() => et.dispatchEvent(new Event('open')));
  const [ev] = await once(et, 'open', 1000, 'EventTarget open');
  t.equal((ev as Event).type, 'open', 'works with EventTarget (EventSource)');
});

t.test('freePort', async (t) => {
  const p = await freePort();
  t.ok(Number.isInteger(p) && p > 1024 && p < 65536 && p !== 6379, `port ${p}`);
});

t.test('redis: commands, kill -9, restart without persistence', async (t) => {
  const redis = await startRedis(t);
  t.ok(redis.running);
  t.not(redis.port, 6379);
  t.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
  t.equal(await redis.cli('SET', 'k', 'v1'), 'OK');
  t.equal(await redis.cli('GET', 'k'), 'v1');
  t.equal(await redis.cli('GET', 'missing'), '', 'nil prints as empty');
  t.equal(await redis.command('GET', 'missing'), null);
  t.equal(await redis.command('INCR', 'n'), 1);
  t.equal(await redis.cli('INCR', 'n'), '2');
  await redis.cli('RPUSH', 'l', 'a', 'b');
  t.same(await redis.cliLines('LRANGE', 'l', 0, -1), ['a', 'b']);
  t.equal(await redis.cli('LRANGE', 'l', 0, -1), 'a\nb');
  await t.rejects(redis.cli('NOSUCHCOMMAND'), { name: 'RedisReplyError', message: /unknown command/ });

  // A subscriber connection shows up in PUBSUB CHANNELS / CLIENT LIST and can be killed.
  const sub = connect({ port: redis.port, host: '127.0.0.1' });
  t.teardown(() => {
    sub.destroy();
  });
  sub.resume(); // keep reading, or the FIN is never seen and 'close' never fires
  await once(sub, 'connect', 2000, 'subscriber connect');
  sub.write('*4\r\n$9\r\nSUBSCRIBE\r\n$5\r\nchan1\r\n$5\r\nchan2\r\n$5\r\nchan3\r\n');
  const channels = await waitFor(
    async () => {
      const c = await redis.cliLines('PUBSUB', 'CHANNELS');
      return c.length === 3 ? c.sort() : false;
    },
    { label: 'three pubsub channels' },
  );
  t.same(channels, ['chan1', 'chan2', 'chan3']);
  const clients = await redis.clientList();
  t.ok(
    clients.some((c) => c.sub === '3'),
    'CLIENT LIST parsed; subscriber has sub=3',
  );
  t.ok((await redis.cliLines('CLIENT', 'LIST')).length >= 2, 'CLIENT LIST as lines');
  const closed = once(sub, 'close', 2000, 'subscriber closed by CLIENT KILL');
  t.equal(await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub'), '1');
  await closed;

  const pid = redis.pid as number;
  await redis.kill();
  t.notOk(redis.running, 'not running after kill');
  t.notOk(pidAlive(pid), 'process is gone');
  await t.rejects(redis.cli('PING'), { code: 'ECONNREFUSED' }, 'connection refused after kill -9');

  const port = redis.port;
  await redis.restart();
  t.ok(redis.running);
  t.equal(redis.port, port, 'same port after restart');
  t.not(redis.pid, pid, 'new process');
  t.equal(await redis.cli('GET', 'k'), '', "persistence 'none': data gone after restart");
  t.equal(await redis.cli('DBSIZE'), '0');
});

t.test('redis: aof survives kill -9', async (t) => {
  const redis = await startRedis(t, { persistence: 'aof' });
  await redis.cli('SET', 'durable', 'yes');
  await redis.cli('HSET', 'h', 'f', '1');
  await redis.kill('SIGKILL');
  await redis.restart();
  t.equal(await redis.cli('GET', 'durable'), 'yes', 'key survives kill -9 + restart');
  t.equal(await redis.cli('HGET', 'h', 'f'), '1');
  // A graceful stop + restart keeps it too.
  await redis.stop();
  t.notOk(redis.running);
  await redis.restart();
  t.equal(await redis.cli('GET', 'durable'), 'yes', 'key survives stop + restart');
});

t.test('redis: pause / resume', async (t) => {
  const redis = await startRedis(t);
  redis.pause();
  t.ok(redis.paused);
  await t.rejects(redisCommand(redis.port, ['PING'], { timeoutMs: 200 }), /timed out after 200 ms/, 'paused server answers nothing');
  redis.resume();
  t.notOk(redis.paused);
  t.equal(await redis.cli('PING'), 'PONG', 'answers again after resume');
  // kill while paused still works
  redis.pause();
  await withTimeout(redis.kill(), 2000, 'kill paused redis');
  t.notOk(redis.running);
});

t.test('redis: fixed port, 6379 refused, teardown kills the process', async (t) => {
  await t.rejects(startRedis(undefined, { port: 6379 }), /6379/);
  const port = await freePort();
  let pid = 0;
  let dir = '';
  await t.test('inner', async (t) => {
    const r = await startRedis(t, { port });
    t.equal(r.port, port);
    pid = r.pid as number;
    dir = r.dir;
  });
  t.notOk(pidAlive(pid), 'subtest teardown killed redis-server');
  t.notOk(existsSync(dir), 'temp dir removed');
  // A second server on a taken port fails with redis' own message.
  const a = await startRedis(t, { port });
  const err = await startRedis(t, { port }).catch((e: Error) => e);
  t.match((err as Error).message, /exited during startup[\s\S]*Address already in use/);
  await a.kill();
});

t.test('no redis-server outlives a test process killed with SIGKILL', async (t) => {
  const helper = new URL('./redis-server.ts', import.meta.url).href;
  const code = `
    const { startRedis } = await import(${JSON.stringify(helper)});
    const r = await startRedis();
    process.stdout.write(JSON.stringify({ pid: r.pid, port: r.port, dir: r.dir }) + '\\n');
    process.kill(process.pid, 'SIGKILL');
  `;
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let errOut = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (errOut += d));
  const [, signal] = await once(child, 'exit', 20000, 'helper child exit');
  t.equal(signal, 'SIGKILL', 'the test process died by SIGKILL');
  const line = out.split('\n').find((l) => l.startsWith('{'));
  t.ok(line, `child reported its redis (stderr: ${errOut.slice(0, 500)})`);
  if (!line) return;
  const { pid, port, dir } = JSON.parse(line) as { pid: number; port: number; dir: string };
  await waitFor(() => !pidAlive(pid), { timeoutMs: 5000, label: `orphaned redis-server ${pid} reaped` });
  await waitFor(() => !existsSync(dir), { timeoutMs: 5000, label: `orphaned temp dir ${dir} removed` });
  await t.rejects(redisCommand(port, ['PING'], { timeoutMs: 500 }), { code: 'ECONNREFUSED' });
});

const FAKE_SERVICE = `
import http from 'node:http'
const log = (o) => process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), replicaId: process.env.REPLICA_ID, ...o }) + '\\n')
if (process.env.FAIL_AT_START) { console.error('boom: ' + process.env.FAIL_AT_START); process.exit(3) }
const srv = http.createServer((req, res) => {
  let body = ''
  req.on('data', (c) => (body += c))
  req.on('end', () => {
    log({ msg: 'request', method: req.method, url: req.url })
    if (req.url === '/text') { res.end('plain text'); return }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ method: req.method, url: req.url, auth: req.headers.authorization ?? null, ct: req.headers['content-type'] ?? null, x: req.headers['x-dup'] ?? null, body }))
  })
})
srv.listen(Number(process.env.PORT), process.env.HOST, () => {
  console.log('a line that is not JSON')
  log({ msg: 'listening', port: srv.address().port, host: process.env.HOST, npmVars: Object.keys(process.env).filter((k) => k.startsWith('npm_')).length, logLevel: process.env.LOG_LEVEL, extra: process.env.EXTRA ?? null })
})
`;

t.test('replica launcher + http helpers (against a fake service)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-fake-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const entry = join(dir, 'fake-main.mjs');
  await writeFile(entry, FAKE_SERVICE);

  const [r1, r2] = await startReplicas(t, 2, (i) => ({ EXTRA: `e${i}` }), { entry });
  if (!r1 || !r2) throw new Error('expected two replicas');
  t.equal(r1.replicaId, 'r1');
  t.equal(r2.replicaId, 'r2');
  t.not(r1.port, r2.port);
  t.equal(r1.url, `http://127.0.0.1:${r1.port}`);
  const listening = r1.parsedLogs().find((e) => e.msg === 'listening');
  t.match(listening, { host: '127.0.0.1', npmVars: 0, logLevel: 'info', extra: 'e1' }, 'env defaults applied, npm_* stripped');
  t.ok(r1.logs.includes('a line that is not JSON'), 'non-JSON lines kept in logs');
  t.notOk(
    r1.parsedLogs().some((e) => typeof e !== 'object'),
    'parsedLogs skips non-JSON',
  );

  // http helpers
  const mark = r1.logMark();
  const p = await postJson(`${r1.url}/echo`, { a: 1 }, { bearer: 'tok', headers: { 'x-dup': 'h' } });
  t.equal(p.status, 200);
  t.match(p.headers, { 'content-type': 'application/json' });
  t.match(p.json, { method: 'POST', url: '/echo', auth: 'Bearer tok', ct: 'application/json', x: 'h', body: '{"a":1}' });
  const seen = await r1.waitForLog((e) => e.msg === 'request' && e.url === '/echo', 2000, { since: mark });
  t.equal(seen.method, 'POST', 'waitForLog finds the request log');
  const g = await getJson(`${r2.url}/text`);
  t.equal(g.json, undefined, 'json undefined for non-JSON body');
  t.equal(g.text, 'plain text');
  const futureLog = r2.waitForLog((e) => e.url === '/later', 2000, { since: r2.logMark() });
  await getJson(`${r2.url}/later`);
  t.equal((await futureLog).url, '/later', 'waitForLog sees lines logged after the call');
  const wl = await r1.waitForLog((e) => e.msg === 'never', 100, { label: 'never-logged' }).catch((e: Error) => e);
  t.match((wl as Error).message, /waitForLog\(never-logged\) timed out after 100 ms[\s\S]*listening/);
  t.match(await r1.waitForLine(/not JSON/), /not JSON/);

  const raw = await rawRequest({
    url: `${r1.url}/raw?q=1`,
    method: 'POST',
    headers: [
      ['content-type', 'text/plain'],
      ['x-dup', 'a'],
      ['x-dup', 'b'],
    ],
    body: '{not json',
  });
  t.equal(raw.status, 200);
  t.match(raw.json, { url: '/raw?q=1', ct: 'text/plain', x: 'a, b', body: '{not json' });
  const sock = await rawSocketRequest(r1.url, 'GET /sock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.equal(sock.status, 200);
  t.match(JSON.parse(sock.body), { url: '/sock' });
  await t.rejects(getJson(`http://127.0.0.1:${await freePort()}/`, { timeoutMs: 1000 }), /GET .* failed/);

  // kill / restart
  const oldPid = r1.pid;
  const port = r1.port;
  const exit = await r1.kill();
  t.same(exit, { code: null, signal: 'SIGKILL' });
  t.notOk(r1.running);
  t.same(await r1.kill(), exit, 'kill after exit resolves with the last exit');
  await r1.restart();
  t.ok(r1.running);
  t.equal(r1.port, port, 'same port after restart');
  t.not(r1.pid, oldPid);
  t.equal((await getJson(`${r1.url}/again`)).status, 200);
  t.equal(r1.parsedLogs().filter((e) => e.msg === 'listening').length, 2, 'logs accumulate across restarts');

  const term = await r2.kill('SIGTERM');
  t.same(term, { code: null, signal: 'SIGTERM' });

  // startup failure carries the process output
  const failed = await startReplica(t, { FAIL_AT_START: 'bad config' }, { entry }).catch((e: Error) => e);
  t.match((failed as Error).message, /exited before listening \(code=3[\s\S]*boom: bad config/);
  const missing = await startReplica(t, {}, { entry: join(dir, 'nope.js') }).catch((e: Error) => e);
  t.match((missing as Error).message, /does not exist/);
});
