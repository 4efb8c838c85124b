// Child processes of the bench: spawn, wait until they listen, read their CPU and memory from
// /proc, and kill every one of them however the bench ends (normal exit, error, Ctrl-C).
// Servers are spawned in their own process group so that killing the group also ends what they
// forked (nginx workers, Pushpin's condure/zurl/proxy/handler) — by id, never by name.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const groups = new Set(); // pids of process-group leaders we started
const ipcChildren = new Set(); // load clients / publishers (same group as us)

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function killAll(signal = 'SIGKILL') {
  for (const pid of groups) {
    try {
      process.kill(-pid, signal);
    } catch {
      /* already gone */
    }
  }
  for (const child of ipcChildren) {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => killAll());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    console.error(err);
    killAll();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    console.error(err);
    killAll();
    process.exit(1);
  });
}

/**
 * Starts a server process in its own group. stdout/stderr go to `logFile` when given (so a
 * failing peer can be diagnosed from bench/results/logs) and are otherwise dropped.
 */
export function spawnServer(command, args, { env, cwd, log } = {}) {
  hookExit();
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', log ?? 'ignore', log ?? 'ignore'],
  });
  groups.add(child.pid);
  child.exitedPromise = new Promise((resolve) => child.once('exit', (code, sig) => resolve({ code, sig })));
  child.on('exit', () => groups.delete(child.pid));
  return child;
}

/** Ends a server's whole group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopServer(child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    // The leader is gone; its group may not be (daemons that forked).
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    groups.delete(child.pid);
    return;
  }
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  const done = await Promise.race([child.exitedPromise.then(() => true), sleep(graceMs).then(() => false)]);
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  if (!done) await child.exitedPromise;
  groups.delete(child.pid);
}

/** Tracks an IPC child (load client, publisher) so it is killed with the rest. */
export function trackIpcChild(child) {
  hookExit();
  ipcChildren.add(child);
  child.on('exit', () => ipcChildren.delete(child));
  return child;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port (or rejects after timeoutMs). */
export async function waitForPort(port, timeoutMs = 15000, child) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`process exited (code ${child.exitCode}) before listening on ${port}`);
    const ok = await new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** All live descendants of pid, pid included (from /proc/<pid>/stat's ppid field). */
export function processTree(rootPid) {
  const parentOf = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const out = [rootPid];
  for (let i = 0; i < out.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === out[i]) out.push(pid);
  }
  return out.filter((pid) => parentOf.has(pid));
}

/** utime + stime of one process, in seconds (0 once it is gone). */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the comm field: state(0) ppid(1) ... utime(11) stime(12)
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/**
 * RSS and PSS in KiB. PSS splits shared pages between the processes mapping them, so summing it
 * over a multi-process server (nginx master + worker, Pushpin's four daemons) does not count a
 * shared-memory zone twice; for a single Node process the two grow by the same amount.
 */
export function memoryKiB(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1');
    const rss = Number(/^Rss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    const pss = Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    return { rss, pss };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

export function sumMemory(pids) {
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    const m = memoryKiB(pid);
    rss += m.rss;
    pss += m.pss;
  }
  return { rss, pss };
}

export function sumCpu(pids) {
  let s = 0;
  for (const pid of pids) s += cpuSeconds(pid);
  return s;
}

/** Polls GET http://127.0.0.1:port/path until it answers 200 (readiness, not just a listen). */
export async function waitHttpOk(port, path, timeoutMs = 20000, child) {
  const { get } = await import('node:http');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`process exited (code ${child.exitCode}) before ${path} was ready`);
    const status = await new Promise((resolve) => {
      const req = get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(0));
      req.setTimeout(1000, () => {
        req.destroy();
        resolve(0);
      });
    });
    if (status === 200) return;
    await sleep(100);
  }
  throw new Error(`GET 127.0.0.1:${port}${path} not 200 after ${timeoutMs} ms`);
}
