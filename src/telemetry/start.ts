// Loaded before the app: `node --import ./dist/telemetry/start.js dist/main.js` (npm start does).
// Without an exporter configured it loads no SDK and returns: every span call in the app is then
// the API's no-op, and log lines carry no trace fields.
import { register } from 'node:module';
import { telemetrySettings } from '../config.js';
import { handOver } from './handoff.js';

const settings = telemetrySettings();
if (settings.tracing) {
  // Without this loader hook, modules imported from ESM (fastify, ioredis) are not instrumented.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const { startSdk } = await import('./sdk.js');
  handOver(startSdk(settings));
}
