// Internal: makes sure child processes started by the test helpers (redis-server,
// replicas) never outlive the test process, however it ends.
//
//  * normal end / process.exit(): a synchronous 'exit' handler SIGKILLs them;
//  * killed by a signal (tap's timeout sends SIGTERM, or SIGKILL): a tiny
//    watchdog process holds the read end of a pipe from us; when the pipe hits
//    EOF (our process is gone, for whatever reason) it SIGKILLs every pid we
//    registered. Event-driven, no polling.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

const WATCHDOG_SRC = `
const pids = new Set();
const dirs = new Set();
let buf = '';
let done = false;
const reap = () => {
  if (done) return; done = true;
  for (const pid of pids) { try { process.kill(pid, 'SIGCONT'); } catch {} try { process.kill(pid, 'SIGKILL'); } catch {} }
  if (dirs.size === 0) process.exit(0);
  // Give the killed processes a moment to let go of their files, then remove the dirs.
  setTimeout(() => {
    for (const d of dirs) { try { require('node:fs').rmSync(d, { recursive: true, force: true }); } catch {} }
    process.exit(0);
  }, 200);
};
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    if (line.startsWith('+dir:')) { dirs.add(line.slice(5)); continue; }
    if (line.startsWith('-dir:')) { dirs.delete(line.slice(5)); continue; }
    const pid = Number(line.slice(1));
    if (!Number.isInteger(pid) || pid <= 1) continue;
    if (line[0] === '+') pids.add(pid); else pids.delete(pid);
  }
});
process.stdin.on('end', reap);
process.stdin.on('close', reap);
process.stdin.on('error', reap);
`;

interface ReaperState {
  live: Set<ChildProcess>;
  watchdog: ChildProcess | undefined;
  watchdogFailed: boolean;
}

// Shared across module instances (the same file may be imported via different URLs).
const KEY = Symbol.for('switchboard.test.reaper');
const g = globalThis as typeof globalThis & { [KEY]?: ReaperState };
const state: ReaperState = (g[KEY] ??= (() => {
  const s: ReaperState = { live: new Set(), watchdog: undefined, watchdogFailed: false };
  process.on('exit', () => {
    for (const child of s.live) {
      if (child.pid === undefined) continue;
      try {
        process.kill(child.pid, 'SIGCONT');
      } catch {}
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
    }
  });
  return s;
})());

function watchdog(): ChildProcess | undefined {
  if (state.watchdog || state.watchdogFailed) return state.watchdog;
  try {
    const wd = spawn(process.execPath, ['-e', WATCHDOG_SRC], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      detached: true,
    });
    wd.on('error', () => {
      state.watchdogFailed = true;
      state.watchdog = undefined;
    });
    wd.on('exit', () => {
      if (state.watchdog === wd) state.watchdog = undefined;
    });
    wd.stdin?.on('error', () => {});
    // Neither the process nor the pipe may keep the test process alive.
    wd.unref();
    (wd.stdin as unknown as Socket | null)?.unref?.();
    state.watchdog = wd;
    return wd;
  } catch {
    state.watchdogFailed = true;
    return undefined;
  }
}

function tell(line: string): void {
  const wd = watchdog();
  if (wd?.stdin && !wd.stdin.destroyed) {
    try {
      wd.stdin.write(line + '\n');
    } catch {}
  }
}

/** Registers a child so it is SIGKILLed if the test process goes away. */
export function trackChild(child: ChildProcess): void {
  if (child.pid === undefined) return;
  const pid = child.pid;
  state.live.add(child);
  tell(`+${pid}`);
  child.once('exit', () => {
    state.live.delete(child);
    tell(`-${pid}`);
  });
}

/** Pids of tracked children still running (for diagnostics / tests). */
export function trackedPids(): number[] {
  return [...state.live].map((c) => c.pid).filter((p): p is number => p !== undefined);
}

/** Registers a temp dir to be removed if the test process dies without cleaning up. */
export function trackDir(dir: string): void {
  if (!dir.includes('\n')) tell(`+dir:${dir}`);
}

/** The dir was removed (or handed over): forget it. */
export function untrackDir(dir: string): void {
  if (!dir.includes('\n')) tell(`-dir:${dir}`);
}
