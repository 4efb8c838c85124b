// The demo's parts beside the replicas, for tests: nginx with the shipped config and the demo
// worker. Both are real processes, tracked by the reaper so they never outlive the test process,
// and killed at teardown.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareNginx } from '../../deploy/nginx/local.mjs';
import { getJson } from '../helpers/http.js';
import { trackChild, trackDir, untrackDir } from '../helpers/reaper.js';
import type { TeardownHost } from '../helpers/redis-server.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { waitFor, withTimeout } from '../helpers/wait-for.js';

export const NGINX = '/usr/sbin/nginx';

export interface NginxSettings {
  /** Port to listen on, on 127.0.0.1. */
  port: number;
  /** Switchboard replicas as host:port. */
  replicas: string[];
  /** The demo worker as host:port. */
  worker: string;
  /** Where nginx writes its access log (default `off`). */
  accessLog?: string;
  /** nginx-http2.conf.template instead: HTTP/2 over TLS on this port, with these PEM files. */
  tls?: { port: number; certFile: string; keyFile: string };
}

export interface RunningProcess {
  readonly pid: number;
  /** Every stdout and stderr line so far. */
  readonly output: string[];
  /** Rejects when the process exits, with its output: race it against a wait for readiness. */
  readonly exited: Promise<never>;
}

/** A directory of its own for one nginx (config, pid, logs, temp files), removed at teardown. */
async function nginxDir(t: TeardownHost): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-nginx-'));
  trackDir(dir);
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  });
  return dir;
}

/** `nginx -t` on the shipped template filled in with these settings: status and output. */
export async function checkNginxConfig(t: TeardownHost, settings: NginxSettings): Promise<{ status: number | null; output: string }> {
  const args = prepareNginx(await nginxDir(t), nginxSettings(settings));
  const result = spawnSync(NGINX, ['-t', ...args], { encoding: 'utf8', timeout: 10_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/**
 * nginx in the foreground with the shipped config; resolves once it proxies GET /healthz.
 * It runs as one process (`master_process off`): a master killed with SIGKILL leaves its workers
 * running, and the reaper that cleans up after a crashed test kills only the pids it knows.
 */
export async function startNginx(
  t: TeardownHost,
  settings: NginxSettings,
  /** `replicasUp: false`: no replica listens yet, so nginx is ready once it accepts connections. */
  { replicasUp = true }: { replicasUp?: boolean } = {},
): Promise<RunningProcess & { url: string; errorLog(): string }> {
  const dir = await nginxDir(t);
  const args = prepareNginx(dir, nginxSettings(settings));
  args[args.indexOf('-g') + 1] += ' master_process off;';
  const url = `http://127.0.0.1:${settings.port}`;
  const nginx = launch(t, NGINX, args, process.env);
  // With TLS the plain port only redirects; the TLS port accepting connections is readiness.
  if (settings.tls !== undefined) await untilListening(nginx, settings.tls.port);
  else if (replicasUp) await untilReady(nginx, `${url}/healthz`);
  else await untilListening(nginx, settings.port);
  return { ...nginx, url, errorLog: () => readFileSync(join(dir, 'error.log'), 'utf8') };
}

/**
 * nginx with the shipped config under a master process, so that `reload` works as in production:
 * it rewrites the config with other replicas and sends SIGHUP; the master starts new workers and
 * the old one finishes its open connections (at most `worker_shutdown_timeout`). Stopped with
 * SIGTERM, which the master passes on to its workers, at teardown.
 */
export async function startReloadableNginx(
  t: TeardownHost,
  settings: NginxSettings & {
    /**
     * Let an old worker keep its open connections for 10 minutes after a reload instead of the
     * shipped 10 s, like a load balancer that never cuts a long-lived connection.
     */
    keepConnectionsOnReload?: boolean;
  },
): Promise<RunningProcess & { url: string; reload(replicas: string[]): Promise<void> }> {
  const dir = await nginxDir(t);
  const configure = (replicas: string[]): string[] => {
    const args = prepareNginx(dir, nginxSettings({ ...settings, replicas }));
    if (settings.keepConnectionsOnReload) {
      const conf = args[args.indexOf('-c') + 1] as string;
      const text = readFileSync(conf, 'utf8');
      if (!text.includes('worker_shutdown_timeout 10s;')) throw new Error('nginx.conf.template no longer says worker_shutdown_timeout 10s');
      writeFileSync(conf, text.replace('worker_shutdown_timeout 10s;', 'worker_shutdown_timeout 600s;'));
    }
    return args;
  };
  const args = configure(settings.replicas);
  const child = spawn(NGINX, args, { cwd: REPO_ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (text: string) => output.push(...text.split('\n').filter(Boolean)));
  }
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`nginx exited (${signal ?? `code ${code}`}): ${output.join('\n')}`)));
  });
  exited.catch(() => {});
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    // Its exit, or 5 s: whichever comes first (then it is killed).
    await withTimeout(exited, 5000, 'nginx exit after SIGTERM').catch(() => {});
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  if (child.pid === undefined) throw new Error('nginx did not start');
  const url = `http://127.0.0.1:${settings.port}`;
  const running = { pid: child.pid, output, exited };
  await untilReady(running, `${url}/healthz`);
  return {
    ...running,
    url,
    async reload(replicas) {
      configure(replicas);
      child.kill('SIGHUP');
    },
  };
}

/**
 * The demo worker (deploy/worker/worker.mjs) on a port it picks itself; resolves with that port
 * once the worker answers /healthz. Its Switchboard URL need not answer yet.
 */
export async function startWorker(t: TeardownHost, env: Record<string, string>): Promise<RunningProcess & { port: number }> {
  const worker = launch(t, process.execPath, ['deploy/worker/worker.mjs'], { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env });
  const listening = waitFor(() => worker.output.map((line) => /^worker listening on [\d.]+:(\d+)$/.exec(line)?.[1]).find(Boolean), {
    timeoutMs: 30_000,
    label: 'the worker says where it listens',
  });
  listening.catch(() => {});
  const port = Number(await Promise.race([listening, worker.exited]));
  await untilReady(worker, `http://127.0.0.1:${port}/healthz`);
  return { ...worker, port };
}

/** Waits for `url` to answer 200; fails at once, with the output, if the process exits first. */
async function untilReady(running: RunningProcess, url: string): Promise<void> {
  const ready = waitFor(async () => (await getJson(url, { timeoutMs: 2000 })).status === 200, { timeoutMs: 30_000, label: `GET ${url}` });
  ready.catch(() => {}); // when the exit wins the race, the wait's own failure comes later and says less
  await Promise.race([ready, running.exited]);
}

/** Waits for 127.0.0.1:`port` to accept a TCP connection; fails at once if the process exits first. */
async function untilListening(running: RunningProcess, port: number): Promise<void> {
  const accepts = (): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  const ready = waitFor(accepts, { timeoutMs: 30_000, label: `127.0.0.1:${port} accepts connections` });
  ready.catch(() => {});
  await Promise.race([ready, running.exited]);
}

function nginxSettings({ port, replicas, worker, accessLog = 'off', tls }: NginxSettings) {
  return {
    listen: `127.0.0.1:${port}`,
    replicas,
    worker,
    accessLog,
    ...(tls === undefined ? {} : { tls: { listen: `127.0.0.1:${tls.port}`, certFile: tls.certFile, keyFile: tls.keyFile } }),
  };
}

function launch(t: TeardownHost, command: string, args: string[], env: NodeJS.ProcessEnv): RunningProcess {
  const child: ChildProcess = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (text: string) => output.push(...text.split('\n').filter(Boolean)));
  }
  const exit = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`${command} exited (${signal ?? `code ${code}`}): ${output.join('\n')}`)));
    child.once('error', (err) => reject(new Error(`${command} could not run: ${err.message}`)));
  });
  exit.catch(() => {});
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exit.catch(() => {});
  });
  if (child.pid === undefined) throw new Error(`${command} did not start`);
  return { pid: child.pid, output, exited: exit };
}
