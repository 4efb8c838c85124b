// The existing history-memory benchmark (Redis memory per channel by HISTORY_MAX_LEN), run as
// its own scenario: it starts and stops its own redis-server.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { trackIpcChild } from '../lib/procs.mjs';

const SCRIPT = fileURLToPath(new URL('../history-memory.mjs', import.meta.url));

export function historyMemory() {
  return new Promise((resolve) => {
    const child = trackIpcChild(spawn(process.execPath, [SCRIPT, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 120000);
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve({ rows: JSON.parse(out.trim().split('\n').at(-1)) });
      } catch {
        resolve({ error: `history-memory.mjs exited ${code} without JSON` });
      }
    });
  });
}
