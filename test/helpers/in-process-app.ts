// An app built in this process on the in-process backplane, for tests of routes that need no
// Redis and no replica process (route lists, page serving). Closed at teardown.
import { buildApp, type App } from '../../src/app.js';
import { MemoryBackplane } from '../../src/backplane/memory-backplane.js';
import { loadConfig, type Config } from '../../src/config.js';
import { MemoryJobStore } from '../../src/jobs/memory-job-store.js';
import type { TeardownHost } from './redis-server.js';

export async function inProcessApp(t: TeardownHost, env: Record<string, string> = {}): Promise<{ app: App; config: Config }> {
  const { config } = loadConfig({ LOG_LEVEL: 'silent', ...env });
  const jobs = new MemoryJobStore();
  const { app } = buildApp(config, {
    backplane: new MemoryBackplane({ historyMaxLen: 100, historyTtlSeconds: 60 }),
    jobs,
    closeJobs: () => jobs.close(),
  });
  t.teardown(() => app.close());
  await app.ready();
  return { app, config };
}
