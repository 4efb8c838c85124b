// Real, throw-away redis-server processes for e2e / fault tests: kill -9 them,
// restart them on the same port, SIGSTOP them, talk to them with raw RESP.
//
// Never touches the system Redis on 6379.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { trackChild, trackDir, untrackDir } from './reaper.js';
import { waitFor, withTimeout } from './wait-for.js';

/** The part of a tap Test the helpers use (tap's `t` and any subtest fit). */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export type Persistence = 'none' | 'aof';

export interface StartRedisOptions {
  /** Fixed port (default: a free one). 6379 is refused: the system Redis lives there. */
  port?: number;
  /** 'none' (default): nothing survives a restart. 'aof': appendonly + fsync always, everything survives. */
  persistence?: Persistence;
  /** Data directory (default: a fresh temp dir per instance, removed at teardown; a given dir is left alone). */
  dir?: string;
  /** More redis-server arguments, e.g. ['--maxclients', '20']. */
  extraArgs?: string[];
  /** Bound on waiting for the server to answer PING (default 5000 ms). */
  startTimeoutMs?: number;
  /** `--requirepass`; the handle's commands then authenticate with it. */
  password?: string;
  /**
   * A config file, passed as redis-server's first argument (the options above
   * still apply after it). Sentinel needs one: `extraArgs: ['--sentinel']`.
   */
  configFile?: string;
}

/** A RESP2 reply. Error replies nested in arrays (e.g. EXEC) appear as RedisReplyError values. */
export type RespValue = string | number | null | RedisReplyError | RespValue[];

/** An error reply from Redis (`-ERR ...`). */
export class RedisReplyError extends Error {
  override name = 'RedisReplyError';
}

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly host: '127.0.0.1';
  readonly dir: string;
  readonly persistence: Persistence;
  /** The `--requirepass` password, if any (command()/cli() use it). */
  readonly password: string | undefined;
  /** Pid of the current process (undefined before the first start). */
  readonly pid: number | undefined;
  /** True from a successful start until the process exits (also while paused). */
  readonly running: boolean;
  /** True between pause() and resume(). */
  readonly paused: boolean;
  /** redis-server's own stdout/stderr lines (all incarnations, most recent 1000). */
  readonly output: string[];
  /** Sends `signal` (default SIGKILL) and resolves when the process has exited. No-op if not running. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Graceful stop: SIGTERM (after SIGCONT if paused), SIGKILL if still alive after 5 s. Resolves on exit. */
  stop(): Promise<void>;
  /**
   * Starts again on the SAME port and dir (stopping it gracefully first if it is
   * still running). With 'aof' the data survives; with 'none' it comes back empty.
   */
  restart(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but answers nothing. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Runs one command on a short-lived connection; resolves with the raw RESP reply, rejects on an error reply. */
  command(...args: (string | number | Buffer)[]): Promise<RespValue>;
  /**
   * Like `redis-cli -p P args...` without a tty: the reply as text. Strings as
   * is, integers in decimal, nil as '', arrays one element per line (nested
   * arrays flattened). Rejects with RedisReplyError on an error reply.
   */
  cli(...args: (string | number)[]): Promise<string>;
  /**
   * The reply as lines: an array reply gives its (flattened) elements; a bulk
   * string (e.g. CLIENT LIST, INFO) is split on newlines with empty lines
   * dropped; nil gives [].
   */
  cliLines(...args: (string | number)[]): Promise<string[]>;
  /** CLIENT LIST parsed: one object per connection, e.g. { id, addr, name, cmd, sub, psub, ... }. */
  clientList(): Promise<Array<Record<string, string>>>;
}

// ---------------------------------------------------------------------------
// Minimal RESP2 client (one command per connection; no retries, no queues).

function encodeCommand(args: (string | number | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

type Parsed = { value: RespValue; pos: number } | undefined;

function parseReply(buf: Buffer, pos: number): Parsed {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos] as number);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, pos: next };
    case '-':
      return { value: new RedisReplyError(line), pos: next };
    case ':':
      return { value: Number(line), pos: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, pos: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString('utf8', next, next + len), pos: next + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, pos: next };
      const items: RespValue[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (!r) return undefined;
        items.push(r.value);
        p = r.pos;
      }
      return { value: items, pos: p };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)} in ${JSON.stringify(buf.toString('utf8', pos, Math.min(buf.length, pos + 80)))}`);
  }
}

export interface RedisCommandOptions {
  host?: string;
  /** Default 2000 ms. A paused server makes commands time out. */
  timeoutMs?: number;
  /** Sent as `AUTH password` ahead of the command(s), on the same connection. */
  password?: string;
}

/**
 * Sends one command to redis on `port` over a fresh TCP connection and resolves
 * with the reply. Rejects with the socket error (e.g. code ECONNREFUSED), with
 * RedisReplyError for an error reply, or on timeout.
 */
export async function redisCommand(port: number, args: (string | number | Buffer)[], opts: RedisCommandOptions = {}): Promise<RespValue> {
  const [reply] = await redisPipeline(port, [args], opts);
  if (reply instanceof RedisReplyError) throw reply;
  return reply as RespValue;
}

/**
 * Sends several commands, pipelined, over one fresh TCP connection (e.g.
 * ASKING + the command it applies to) and resolves with one reply per command;
 * an error reply is a RedisReplyError VALUE in the array. Rejects on socket
 * errors, on timeout, and with RedisReplyError if `opts.password` is refused.
 */
export function redisPipeline(port: number, commands: (string | number | Buffer)[][], opts: RedisCommandOptions = {}): Promise<RespValue[]> {
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 2000;
  const name = commands.length === 1 ? (commands[0] ?? []).slice(0, 2).map(String).join(' ') : commands.map((c) => String(c[0])).join(', ');
  const sent = opts.password === undefined ? commands : [['AUTH', opts.password], ...commands];
  return new Promise<RespValue[]>((resolve, reject) => {
    let settled = false;
    let buf: Buffer = Buffer.alloc(0);
    let pos = 0;
    const replies: RespValue[] = [];
    const socket = connect({ port, host });
    const finish = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(opts.password === undefined ? replies : replies.slice(1));
    };
    const timer = setTimeout(() => {
      finish(new Error(`redis command '${name}' on ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(Buffer.concat(sent.map(encodeCommand))));
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      try {
        for (let r = parseReply(buf, pos); r; r = parseReply(buf, pos)) {
          pos = r.pos;
          if (opts.password !== undefined && replies.length === 0 && r.value instanceof RedisReplyError) {
            finish(r.value);
            return;
          }
          replies.push(r.value);
          if (replies.length === sent.length) {
            finish(undefined);
            return;
          }
        }
      } catch (e) {
        finish(e as Error);
      }
    });
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new Error(`redis connection to ${host}:${port} closed before a reply to '${name}'`)));
  });
}

/**
 * A long-lived RESP connection that records everything the server sends, for
 * subscribers (SUBSCRIBE, SSUBSCRIBE): pushes such as `smessage` or an
 * unsolicited `sunsubscribe` land in `received` in arrival order.
 */
export interface RespConnection {
  readonly port: number;
  /** Every reply and push received so far, in order. */
  readonly received: readonly RespValue[];
  /** True once the server or close() ended the connection. */
  readonly closed: boolean;
  send(...args: (string | number | Buffer)[]): void;
  /**
   * Resolves with the first value in `received` that matches `pred` and comes
   * after the one the previous next() matched (so a reply is matched once).
   * Rejects after `timeoutMs`, or when the connection closes first.
   */
  next(pred: (value: RespValue) => boolean, timeoutMs: number, label: string): Promise<RespValue>;
  close(): void;
}

/** True when `v` is an array reply or push whose first element is `kind` (e.g. 'smessage'). */
export function isPush(v: RespValue, kind: string): v is RespValue[] {
  return Array.isArray(v) && typeof v[0] === 'string' && v[0].toLowerCase() === kind.toLowerCase();
}

class RespConnectionImpl implements RespConnection {
  readonly received: RespValue[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private cursor = 0;
  private _closed = false;
  private readonly changed = new Set<() => void>();

  constructor(
    readonly port: number,
    private readonly socket: Socket,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      let pos = 0;
      try {
        for (let r = parseReply(this.buf, pos); r; r = parseReply(this.buf, pos)) {
          this.received.push(r.value);
          pos = r.pos;
        }
      } catch {
        // Not RESP2: nothing after this point can be trusted; 'close' tells the waiters.
        socket.destroy();
      }
      this.buf = this.buf.subarray(pos);
      this.notify();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this._closed = true;
      this.notify();
    });
  }

  get closed(): boolean {
    return this._closed;
  }

  private notify(): void {
    for (const fn of [...this.changed]) fn();
  }

  send(...args: (string | number | Buffer)[]): void {
    this.socket.write(encodeCommand(args));
  }

  next(pred: (value: RespValue) => boolean, timeoutMs: number, label: string): Promise<RespValue> {
    return new Promise<RespValue>((resolve, reject) => {
      const check = (): void => {
        for (let i = this.cursor; i < this.received.length; i++) {
          const v = this.received[i] as RespValue;
          if (pred(v)) {
            this.cursor = i + 1;
            done();
            resolve(v);
            return;
          }
        }
        if (this._closed) {
          done();
          reject(
            new Error(`${label}: connection to port ${this.port} closed first (received: ${JSON.stringify(this.received.slice(this.cursor)).slice(0, 500)})`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${label} timed out after ${timeoutMs} ms (received: ${JSON.stringify(this.received.slice(this.cursor)).slice(0, 500)})`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.changed.delete(check);
      };
      this.changed.add(check);
      check();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Opens a RespConnection to redis on 127.0.0.1:`port` (AUTH first when
 * `opts.password` is given). With `t`, teardown closes it.
 */
export async function openRespConnection(
  t: TeardownHost | undefined,
  port: number,
  opts: { password?: string; timeoutMs?: number } = {},
): Promise<RespConnection> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const socket = connect({ port, host: '127.0.0.1' });
  const conn = new RespConnectionImpl(port, socket);
  t?.teardown(() => conn.close());
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('error', reject);
      }),
      timeoutMs,
      `connecting to redis on port ${port}`,
    );
    if (opts.password !== undefined) {
      conn.send('AUTH', opts.password);
      const reply = await conn.next(() => true, timeoutMs, 'AUTH');
      if (reply instanceof RedisReplyError) throw reply;
    }
  } catch (err) {
    conn.close();
    throw err;
  }
  return conn;
}

function flatten(v: RespValue): string[] {
  if (v === null) return [];
  if (Array.isArray(v)) return v.flatMap(flatten);
  if (v instanceof RedisReplyError) return [`(error) ${v.message}`];
  return [String(v)];
}

export function replyToText(v: RespValue): string {
  return flatten(v).join('\n');
}

export function replyToLines(v: RespValue): string[] {
  if (typeof v === 'string') return v.split(/\r?\n/).filter((l) => l.length > 0);
  return flatten(v);
}

export function parseClientList(text: string): Array<Record<string, string>> {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0)
    .map((line) => {
      const entry: Record<string, string> = {};
      for (const field of line.trim().split(' ')) {
        const eq = field.indexOf('=');
        if (eq < 0) continue;
        entry[field.slice(0, eq)] = field.slice(eq + 1);
      }
      return entry;
    });
}

// ---------------------------------------------------------------------------
// Process management.

const SYSTEM_REDIS_PORT = 6379;
const OUTPUT_LIMIT = 1000;

// Temp dirs we created, removed on process exit if teardown didn't get to them.
const createdDirs = new Set<string>();
const DIRS_KEY = Symbol.for('switchboard.test.redisDirs');
const g = globalThis as typeof globalThis & { [DIRS_KEY]?: Set<string> };
if (!g[DIRS_KEY]) {
  g[DIRS_KEY] = createdDirs;
  process.on('exit', () => {
    for (const d of createdDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {}
    }
  });
}
const dirsToClean = g[DIRS_KEY];

class RedisServerImpl implements RedisServer {
  readonly host = '127.0.0.1' as const;
  readonly output: string[] = [];
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  private _running = false;
  private _paused = false;

  constructor(
    public port: number,
    readonly dir: string,
    readonly persistence: Persistence,
    private readonly extraArgs: string[],
    private readonly startTimeoutMs: number,
    readonly password: string | undefined = undefined,
    private readonly configFile: string | undefined = undefined,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this._running;
  }
  get paused(): boolean {
    return this._paused;
  }

  private record(line: string): void {
    this.output.push(line);
    if (this.output.length > OUTPUT_LIMIT) this.output.splice(0, this.output.length - OUTPUT_LIMIT);
  }

  private args(): string[] {
    const a = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      this.persistence === 'aof' ? 'yes' : 'no',
      '--dir',
      this.dir,
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
    ];
    if (this.persistence === 'aof') a.push('--appendfsync', 'always');
    if (this.password !== undefined) a.push('--requirepass', this.password);
    return [...(this.configFile === undefined ? [] : [this.configFile]), ...a, ...this.extraArgs];
  }

  /** Spawns redis-server on this.port and waits for PONG. Throws (with output) on failure. */
  async spawnOnce(): Promise<void> {
    if (this.port === SYSTEM_REDIS_PORT) throw new Error('startRedis: refusing to use port 6379 (the system Redis)');
    const mark = this.output.length;
    const child = spawn('redis-server', this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    let spawnError: Error | undefined;
    let exitInfo: string | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (err) => {
        spawnError = err;
        resolve();
      });
      child.once('exit', (code, signal) => {
        exitInfo = `code=${code} signal=${signal}`;
        if (this.child === child) {
          this._running = false;
          this._paused = false;
        }
        resolve();
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (d: string) => {
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) this.record(l);
      });
      stream?.on('end', () => {
        if (partial) this.record(partial);
        partial = '';
      });
    }
    trackChild(child);
    this.child = child;
    this.exitPromise = exited;
    this._paused = false;

    let hasExited = false;
    void exited.then(() => {
      hasExited = true;
    });
    try {
      const r = await waitFor(
        async () => {
          if (hasExited) return 'exited';
          try {
            const opts = { timeoutMs: 500, password: this.password };
            if ((await redisCommand(this.port, ['PING'], opts)) !== 'PONG') return false;
            // Make sure the answer came from OUR process, not another server on this port.
            const info = await redisCommand(this.port, ['INFO', 'server'], opts);
            const m = /process_id:(\d+)/.exec(typeof info === 'string' ? info : '');
            if (m && Number(m[1]) !== child.pid) {
              throw new Error(`port ${this.port} is answered by another redis-server (pid ${m[1]})`);
            }
            return 'ready';
          } catch (err) {
            if (hasExited) return 'exited';
            throw err;
          }
        },
        { timeoutMs: this.startTimeoutMs, intervalMs: 20, label: `redis-server on port ${this.port} answering PING` },
      );
      if (r === 'exited') {
        // Let the pipes drain so the error carries redis's own explanation.
        await withTimeout(new Promise<void>((res) => (child.stdout?.readableEnded ? res() : child.stdout?.once('close', () => res()))), 500, 'drain').catch(
          () => {},
        );
        throw new Error(
          spawnError
            ? `could not spawn redis-server (is it on PATH?): ${spawnError.message}`
            : `redis-server on port ${this.port} exited during startup (${exitInfo})`,
        );
      }
      this._running = true;
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      const out = this.output.slice(mark).join('\n');
      const e = new Error(`${(err as Error).message}\n--- redis-server output ---\n${out}`);
      (e as Error & { cause?: unknown }).cause = err;
      throw e;
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    if (this._paused && signal !== 'SIGKILL' && signal !== 'SIGSTOP') {
      child.kill('SIGCONT');
      this._paused = false;
    }
    child.kill(signal);
    await this.exitPromise;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    if (this._paused) {
      child.kill('SIGCONT');
      this._paused = false;
    }
    child.kill('SIGTERM');
    try {
      await withTimeout(this.exitPromise, 5000, `redis-server on port ${this.port} stopping after SIGTERM`);
    } catch {
      child.kill('SIGKILL');
      await this.exitPromise;
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    // The port is ours, but retry briefly in case the kernel is slow to release it.
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        await this.spawnOnce();
        return;
      } catch (err) {
        if (!/Address already in use/i.test(String((err as Error).message)) || Date.now() > deadline) throw err;
      }
    }
  }

  pause(): void {
    if (!this._running || !this.child) throw new Error(`redis-server on port ${this.port} is not running`);
    this.child.kill('SIGSTOP');
    this._paused = true;
  }

  resume(): void {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) {
      throw new Error(`redis-server on port ${this.port} is not running`);
    }
    this.child.kill('SIGCONT');
    this._paused = false;
  }

  command(...args: (string | number | Buffer)[]): Promise<RespValue> {
    return redisCommand(this.port, args, { password: this.password });
  }

  async cli(...args: (string | number)[]): Promise<string> {
    return replyToText(await this.command(...args));
  }

  async cliLines(...args: (string | number)[]): Promise<string[]> {
    return replyToLines(await this.command(...args));
  }

  async clientList(): Promise<Array<Record<string, string>>> {
    return parseClientList(await this.cli('CLIENT', 'LIST'));
  }
}

/**
 * Starts a real redis-server (from PATH) bound to 127.0.0.1 and resolves once
 * it answers PING. With `t`, teardown kills it and removes its temp dir.
 * Whatever happens, no redis-server started here outlives the test process.
 */
export async function startRedis(t?: TeardownHost, opts: StartRedisOptions = {}): Promise<RedisServer> {
  const persistence = opts.persistence ?? 'none';
  let dir = opts.dir;
  let ownDir = false;
  if (!dir) {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-redis-'));
    ownDir = true;
    dirsToClean.add(dir);
    trackDir(dir);
  }
  const server = new RedisServerImpl(
    opts.port ?? (await freePort()),
    dir,
    persistence,
    opts.extraArgs ?? [],
    opts.startTimeoutMs ?? 5000,
    opts.password,
    opts.configFile,
  );
  const cleanup = async (): Promise<void> => {
    await server.kill('SIGKILL');
    if (ownDir && dir) {
      await rm(dir, { recursive: true, force: true });
      dirsToClean.delete(dir);
      untrackDir(dir);
    }
  };
  t?.teardown(cleanup);

  // A port from freePort() can be taken by someone else before redis binds it:
  // pick another one and try again (only when the caller didn't fix the port).
  for (let attempt = 1; ; attempt++) {
    try {
      await server.spawnOnce();
      return server;
    } catch (err) {
      const inUse = /Address already in use/i.test(String((err as Error).message));
      if (opts.port === undefined && inUse && attempt < 5) {
        server.port = await freePort();
        continue;
      }
      if (!t) await cleanup();
      throw err;
    }
  }
}
