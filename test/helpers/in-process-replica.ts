// One replica built in this process the way main.ts builds it (config, connectParts: Redis when
// REDIS_URL is set, buildApp), listening on a loopback port: real sockets, real Redis, no
// process. For tests that need one replica and nothing done to a process (no signals, no kill
// -9, no process RSS, no boot refusal); they run from src, without a build. Cost, measured on a
// 2-core machine: the first use in a test file loads src and its dependencies through tap's
// TypeScript loader, about 2.3 s of CPU, about what one or two replica processes cost to start;
// each replica after that starts in milliseconds. Its log lines are kept in `logs`, out of the
// TAP stream.
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { connectParts } from '../../src/connect.js';
import type { App } from '../../src/context.js';
import { loggerOptions } from '../../src/logging.js';
import { fleetEnv, withFleet, type Endpoint, type Fleet } from './fleet.js';
import { startRedis, type StartRedisOptions, type TeardownHost } from './redis-server.js';
import type { ReplicaEnv } from './replica.js';

export interface InProcessReplica extends Endpoint {
  readonly port: number;
  readonly app: App;
  readonly config: Config;
  /** Every log line, as written (JSON). */
  readonly logs: string[];
}

/**
 * Builds and starts a replica from `env` alone (process.env is not read), with a replica
 * process's defaults: 127.0.0.1, a free port, LOG_LEVEL info, but no event-loop shedding. Closed at teardown, after
 * whatever connections are still open (a stream left by a failed test) are cut.
 */
export async function inProcessReplica(t: TeardownHost, env: ReplicaEnv = {}): Promise<InProcessReplica> {
  // SHED_EVENT_LOOP_DELAY_MS=0: the load shedder reads the delay and utilization of the whole
  // process, and here that process is also the test's client (and tap's TypeScript loader): its
  // own busy moments would shed the replica's publishes. A test of that check uses a process.
  const { config } = loadConfig({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', SHED_EVENT_LOOP_DELAY_MS: '0', ...env });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((line) => line !== ''),
      );
      done();
    },
  });
  const logger = pino(loggerOptions(config), sink);
  const parts = await connectParts(config, logger);
  const { app } = buildApp(config, { ...parts, logger });
  t.teardown(async () => {
    const closed = app.close();
    // An HTTP/2 server (TLS_CERT_FILE) has no closeAllConnections: Fastify closes its sessions.
    (app.server as { closeAllConnections?: () => void }).closeAllConnections?.();
    await closed;
  });
  await app.listen({ port: config.port, host: config.host });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, replicaId: config.replicaId, app, config, logs };
}

/**
 * A fleet of one in-process replica on its own redis-server, with the secrets and defaults of
 * startFleet (REPLICA_ID r1, unsigned callbacks allowed) plus `env`.
 */
export async function inProcessFleet(t: TeardownHost, env: ReplicaEnv = {}, redisOptions: StartRedisOptions = {}): Promise<Fleet<InProcessReplica>> {
  const redis = await startRedis(t, redisOptions);
  const replica = await inProcessReplica(t, fleetEnv(redis, { REPLICA_ID: 'r1', ...env }));
  return withFleet(redis, [replica]);
}
