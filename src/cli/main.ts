#!/usr/bin/env node
import { CliError, USAGE } from './cli-error.js';

/**
 * The `switchboard` command: operator tools beside the server, one module per command, each
 * loaded only when asked for (`doctor` pulls in ioredis; `gen-secrets` needs nothing).
 */
const COMMANDS: Record<string, () => Promise<{ run(args: string[]): Promise<number> }>> = {
  'gen-secrets': () => import('./gen-secrets.js'),
  token: () => import('./token.js'),
  publish: () => import('./publish.js'),
  tail: () => import('./tail.js'),
  doctor: () => import('./doctor.js'),
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (load === undefined) throw new CliError(`unknown command "${name}"\n\n${USAGE}`, 2);
  return (await load()).run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    // node:util parseArgs' own errors (an unknown option, a missing value) are usage errors too.
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`switchboard: ${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`switchboard: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
