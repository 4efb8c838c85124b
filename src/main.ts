import { pino } from 'pino';
import { ConfigError, loadConfig, type LoadedConfig } from './config.js';
import { loggerOptions } from './logging.js';
import { shutdownTelemetry } from './telemetry/handoff.js';

/** The executable: load config, build the app, listen, drain on SIGTERM. Nothing else. */
async function main(): Promise<void> {
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`switchboard: ${err.message}\n`);
    process.exit(1);
  }
  const { config } = loaded;
  const logger = pino(loggerOptions(config));
  // Loaded only once the config is valid: a bad one is reported before the app's dependencies load.
  const { buildApp } = await import('./app.js');
  const { connectParts } = await import('./connect.js');
  const { printQuickstart } = await import('./quickstart.js');

  const parts = await connectParts(config, logger);
  const { backplane } = parts;
  const { app, shutdown } = buildApp(config, { ...parts, logger });
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  app.log.info({ port, backplane: backplane.kind, http: config.tls === undefined ? '1.1' : '2+1.1 over TLS' }, 'listening');
  if (backplane.kind === 'memory') {
    app.log.warn('no REDIS_URL: running on the in-process backplane, which serves ONE replica only');
  }
  if (config.allowUnsignedCallbacks && config.callbackSecrets.length === 0) {
    app.log.warn(
      "ALLOW_UNSIGNED_CALLBACKS=true and no CALLBACK_SECRET: callbacks are unsigned, anyone who knows a correlation id (the job's user too) can post to its job",
    );
  }
  printQuickstart(loaded, port);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal, drainMs: config.drainMs }, 'shutting down');
    // The bound: whatever has not finished by DRAIN_MS is cut, and the process exits anyway.
    setTimeout(() => {
      app.log.warn('drain window over; exiting');
      process.exit(0);
    }, config.drainMs).unref();
    shutdown()
      .then(
        () => 0,
        (err: unknown) => {
          app.log.error({ err }, 'shutdown failed');
          return 1;
        },
      )
      // Spans still in the exporter's batch are sent before exit, or lost.
      .then(async (code) => {
        await shutdownTelemetry();
        process.exit(code);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`switchboard: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
