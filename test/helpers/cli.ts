// Runs the built `switchboard` bin (dist/cli/main.js) as a user would, with only the env given.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { trackChild } from './reaper.js';
import { withTimeout } from './wait-for.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/**
 * The bound for a test file that runs the bin several times (the tap default is 120 s): each run
 * loads the config schema, under a second of CPU, but on a shared 2-core machine under load (load
 * average 35) single runs took 12-30 s of wall time. A bound for a hang, not a speed check.
 */
export const CLI_FILE_TIMEOUT_MS = 300_000;

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when the process exits. */
  done: Promise<CliRun>;
}

/** Starts the bin; `env` is all of its environment, with PATH added. */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const out = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out.stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (out.stderr += chunk));
  const done = new Promise<CliRun>((resolve) => child.once('close', (code) => resolve({ code, ...out })));
  return {
    child,
    get stdout() {
      return out.stdout;
    },
    get stderr() {
      return out.stderr;
    },
    done,
  };
}

/**
 * Runs the bin to its end, within `timeoutMs`: a bound for a hung command, not a speed check. A
 * run takes under a second of CPU (most of it loading the config schema), but on a shared 2-core
 * machine under load its wall time has reached 12 s.
 */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  const cli = startCli(args, env);
  return withTimeout(cli.done, timeoutMs, `switchboard ${args.join(' ')}`).catch((err: unknown) => {
    cli.child.kill('SIGKILL');
    throw err;
  });
}
