// Real replica processes of the built service (dist/main.js) for e2e / fault tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { trackChild } from './reaper.js';
import type { TeardownHost } from './redis-server.js';

export type { TeardownHost } from './redis-server.js';

/** Repository root, resolved from this file's location (test/helpers/ -> ../../). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The service entry point every replica runs by default. */
export const MAIN_JS = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/** Env for a replica. A value of `undefined` removes an inherited variable. */
export type ReplicaEnv = Record<string, string | undefined>;

export interface StartReplicaOptions {
  /** Port to listen on (default 0: the service picks one and logs it). */
  port?: number;
  /** Extra node arguments placed before the script, e.g. ['--max-old-space-size=64']. */
  nodeArgs?: string[];
  /** Bound on waiting for the "listening" log line (default 30000 ms: a replica starts in about a second, but a shared 2-core host under load has taken over 10 s). */
  timeoutMs?: number;
  /** Script to run instead of dist/main.js (for testing the harness itself). */
  entry?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export interface WaitForLogOptions {
  /** Only consider lines with index >= since in `logs` (default 0: the whole history). Use logMark(). */
  since?: number;
  /** Named in the timeout error. */
  label?: string;
}

export interface Replica {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Pid of the current process. */
  readonly pid: number;
  /** `replicaId` from the "listening" line (falls back to env REPLICA_ID). */
  readonly replicaId: string;
  /** The env the process was started with (after the defaults were applied). */
  readonly env: Record<string, string>;
  /** Every stdout+stderr line, of every incarnation (restart appends). Live array. */
  readonly logs: string[];
  /** True from a successful start until the process exits. */
  readonly running: boolean;
  /** Resolves when the current process has exited (and its output is drained). */
  readonly exited: Promise<ExitInfo>;
  /** The log lines that are JSON objects, parsed, in order. */
  parsedLogs(): any[];
  /** Current number of log lines: pass as `since` to wait only for lines logged after this point. */
  logMark(): number;
  /**
   * Resolves with the first parsed JSON log entry (index >= since, default 0,
   * i.e. already-logged lines count) for which `predicate(entry, line)` is
   * truthy; a throwing predicate counts as false. Event-driven on new lines.
   * Rejects after timeoutMs (default 5000) with the label and recent lines.
   */
  waitForLog(predicate: (entry: any, line: string) => unknown, timeoutMs?: number, opts?: WaitForLogOptions): Promise<any>;
  /** Like waitForLog but on raw lines (JSON or not); resolves with the line. */
  waitForLine(test: RegExp | ((line: string) => unknown), timeoutMs?: number, opts?: WaitForLogOptions): Promise<string>;
  /** Sends `signal` (default SIGKILL); resolves on exit. If already exited, resolves with the last exit. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Starts again with the same env on the same port (SIGKILLing the current process if still running). */
  restart(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but does nothing (a hung replica). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
}

function buildEnv(env: ReplicaEnv, port: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('npm_')) out[k] = v;
  }
  out.HOST = '127.0.0.1';
  out.PORT = String(port);
  out.LOG_LEVEL = 'info';
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

type LineListener = (line: string, json: any, index: number) => void;

const RECENT_LINES = 30;

class ReplicaImpl implements Replica {
  readonly logs: string[] = [];
  private readonly parsed: any[] = [];
  private readonly listeners = new Set<LineListener>();
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private _running = false;
  private _port: number;
  private _replicaId = '';
  readonly env: Record<string, string>;

  constructor(
    readonly envInput: ReplicaEnv,
    private readonly opts: StartReplicaOptions,
  ) {
    this._port = opts.port ?? 0;
    this.env = buildEnv(envInput, this._port);
  }

  get url(): string {
    return `http://127.0.0.1:${this._port}`;
  }
  get port(): number {
    return this._port;
  }
  get pid(): number {
    return this.child?.pid ?? -1;
  }
  get replicaId(): string {
    return this._replicaId;
  }
  get running(): boolean {
    return this._running;
  }
  get exited(): Promise<ExitInfo> {
    return this.exitPromise;
  }

  parsedLogs(): any[] {
    return this.parsed.filter((p) => p !== undefined);
  }

  logMark(): number {
    return this.logs.length;
  }

  private recent(since = 0): string {
    return this.logs.slice(Math.max(since, this.logs.length - RECENT_LINES)).join('\n');
  }

  private onLine(line: string): void {
    let json: any;
    const trimmed = line.trim();
    if (trimmed.startsWith('{')) {
      try {
        const v = JSON.parse(trimmed);
        if (v && typeof v === 'object' && !Array.isArray(v)) json = v;
      } catch {}
    }
    const index = this.logs.length;
    this.logs.push(line);
    this.parsed.push(json);
    for (const l of [...this.listeners]) l(line, json, index);
  }

  private waitForIndex(match: (line: string, json: any) => boolean, timeoutMs: number, since: number, label: string): Promise<number> {
    for (let i = since; i < this.logs.length; i++) {
      if (match(this.logs[i] as string, this.parsed[i])) return Promise.resolve(i);
    }
    return new Promise<number>((resolve, reject) => {
      const listener: LineListener = (line, json, index) => {
        if (index < since || !match(line, json)) return;
        this.listeners.delete(listener);
        clearTimeout(timer);
        resolve(index);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(
          new Error(
            `${label} timed out after ${timeoutMs} ms (replica ${this._replicaId || '?'} pid ${this.pid}, ` +
              `${this._running ? 'running' : 'not running'}); recent lines:\n${this.recent(since)}`,
          ),
        );
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }

  async waitForLog(predicate: (entry: any, line: string) => unknown, timeoutMs = 5000, opts: WaitForLogOptions = {}): Promise<any> {
    const match = (line: string, json: any): boolean => {
      if (json === undefined) return false;
      try {
        return Boolean(predicate(json, line));
      } catch {
        return false;
      }
    };
    const i = await this.waitForIndex(match, timeoutMs, opts.since ?? 0, `waitForLog(${opts.label ?? predicate.toString()})`);
    return this.parsed[i];
  }

  async waitForLine(test: RegExp | ((line: string) => unknown), timeoutMs = 5000, opts: WaitForLogOptions = {}): Promise<string> {
    const match = (line: string): boolean => {
      try {
        return test instanceof RegExp ? test.test(line) : Boolean(test(line));
      } catch {
        return false;
      }
    };
    const i = await this.waitForIndex(match, timeoutMs, opts.since ?? 0, `waitForLine(${opts.label ?? String(test)})`);
    return this.logs[i] as string;
  }

  /** Spawns the process and waits for its "listening" line. */
  async spawnOnce(): Promise<void> {
    const entry = this.opts.entry ?? MAIN_JS;
    if (!existsSync(entry)) {
      throw new Error(`startReplica: ${entry} does not exist; build first (npm run build, or npm test which runs pretest)`);
    }
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    this.env.PORT = String(this._port);
    const mark = this.logs.length;
    const child = spawn(process.execPath, [...(this.opts.nodeArgs ?? []), entry], {
      cwd: REPO_ROOT,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this._running = false;

    let openStreams = 0;
    let exitInfo: ExitInfo | undefined;
    let resolveExit!: (e: ExitInfo) => void;
    const exitPromise = new Promise<ExitInfo>((res) => (resolveExit = res));
    this.exitPromise = exitPromise;
    let exitDone = false;
    const finishExit = (): void => {
      if (exitDone || !exitInfo) return;
      exitDone = true;
      if (this.child === child) this._running = false;
      resolveExit(exitInfo);
    };

    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      openStreams++;
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) this.onLine(l);
      });
      stream.on('close', () => {
        if (partial) this.onLine(partial);
        partial = '';
        if (--openStreams === 0) finishExit();
      });
    }
    child.once('error', (err) => {
      this.onLine(`[harness] spawn error: ${err.message}`);
      exitInfo ??= { code: null, signal: null };
      finishExit();
    });
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      if (this.child === child) this._running = false;
      // Normally the pipes close right after; don't wait forever if a grandchild holds them.
      if (openStreams === 0) finishExit();
      else setTimeout(finishExit, 2000).unref();
    });
    trackChild(child);

    try {
      const listening = await new Promise<any>((resolve, reject) => {
        let settled = false;
        const done = (err: Error | undefined, v?: any): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.listeners.delete(listener);
          if (err) reject(err);
          else resolve(v);
        };
        const listener: LineListener = (_line, json, index) => {
          if (index >= mark && json && json.msg === 'listening' && typeof json.port === 'number') done(undefined, json);
        };
        const timer = setTimeout(() => {
          done(new Error(`replica did not log "listening" within ${timeoutMs} ms`));
        }, timeoutMs);
        this.listeners.add(listener);
        void exitPromise.then((e) => {
          done(new Error(`replica exited before listening (code=${e.code} signal=${e.signal})`));
        });
      });
      this._port = listening.port;
      this.env.PORT = String(this._port);
      this._replicaId = typeof listening.replicaId === 'string' ? listening.replicaId : (this.env.REPLICA_ID ?? '');
      this._running = true;
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGKILL');
        await exitPromise;
      }
      const out = this.logs.slice(mark).join('\n');
      const e = new Error(`startReplica(${entry}): ${(err as Error).message}\n--- replica output ---\n${out}`);
      (e as Error & { cause?: unknown }).cause = err;
      throw e;
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      if (signal !== 'SIGKILL') child.kill('SIGCONT');
      child.kill(signal);
    }
    return this.exitPromise;
  }

  pause(): void {
    if (!this._running || !this.child) throw new Error('replica is not running');
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    if (!this._running || !this.child) throw new Error('replica is not running');
    this.child.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.kill('SIGKILL');
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        await this.spawnOnce();
        return;
      } catch (err) {
        if (!/EADDRINUSE/.test(String((err as Error).message)) || Date.now() > deadline) throw err;
      }
    }
  }
}

/**
 * Spawns `node [...nodeArgs] dist/main.js` with env = process.env (minus npm_*)
 * + HOST=127.0.0.1, PORT=opts.port ?? 0, LOG_LEVEL=info + `env`, and resolves
 * when it logs {"msg":"listening","port":N}. Teardown SIGKILLs it.
 */
export async function startReplica(t: TeardownHost, env: ReplicaEnv = {}, opts: StartReplicaOptions = {}): Promise<Replica> {
  const replica = new ReplicaImpl(env, opts);
  t.teardown(async () => {
    await replica.kill('SIGKILL');
  });
  await replica.spawnOnce();
  return replica;
}

/**
 * Starts n replicas concurrently. Each gets REPLICA_ID r1, r2, ... unless its
 * env sets one. `env` may be a function of the 1-based index.
 */
export async function startReplicas(
  t: TeardownHost,
  n: number,
  env: ReplicaEnv | ((index: number) => ReplicaEnv) = {},
  opts: StartReplicaOptions = {},
): Promise<Replica[]> {
  if (n > 1 && opts.port !== undefined && opts.port !== 0) {
    throw new Error('startReplicas: a fixed opts.port cannot be shared by several replicas');
  }
  return Promise.all(
    Array.from({ length: n }, (_, i) => {
      const index = i + 1;
      const e = typeof env === 'function' ? env(index) : env;
      return startReplica(t, { REPLICA_ID: `r${index}`, ...e }, opts);
    }),
  );
}
