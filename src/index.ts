/**
 * The package entry (`import 'switchboard'`): the pieces that build a replica, and nothing that
 * runs. Importing it starts no server, opens no connection and reads no environment: that is
 * src/main.ts, the executable, which only `npm start`, the Dockerfile and the demo run.
 */
export { buildApp, type Switchboard } from './app.js';
export { type Config, ConfigError, type LoadedConfig, loadConfig } from './config.js';
export { connectParts, memoryParts, type ReplicaParts } from './connect.js';
