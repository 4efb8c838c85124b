// An app built in this process on the in-process backplane, for tests of routes that need no
// Redis and no replica process (route lists, page serving). Closed at teardown.
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { memoryParts } from '../../src/connect.js';
import type { App } from '../../src/context.js';
import { loggerOptions } from '../../src/logging.js';
import type { TeardownHost } from './redis-server.js';

export async function inProcessApp(t: TeardownHost, env: Record<string, string> = {}): Promise<{ app: App; config: Config }> {
  const { config } = loadConfig({ LOG_LEVEL: 'silent', ...env });
  const { app } = buildApp(config, { ...memoryParts({ historyMaxLen: 100, historyTtlSeconds: 60 }), logger: pino(loggerOptions(config)) });
  t.teardown(() => app.close());
  await app.ready();
  return { app, config };
}
