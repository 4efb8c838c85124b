import type { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { createClusterConnections, createRedisConnections } from '../backplane/redis-connections.js';
import type { RedisSettings } from '../config.js';
import { clockFinding, fail, type Finding, pass, skewMs } from './findings.js';

/** Redis that has not answered by then is reported unreachable. */
const CONNECT_TIMEOUT_MS = 3000;

/**
 * Redis as the replicas would reach it (the same connection code, the same settings): reachable,
 * in the mode the configuration says, and with a clock close to this machine's.
 */
export async function checkRedis(settings: RedisSettings): Promise<Finding[]> {
  const logger = pino({ level: 'silent' });
  const commands: Redis | Cluster =
    settings.mode === 'cluster'
      ? createClusterConnections(settings, 'doctor', logger).commands
      : // The subscriber connection it also makes is lazy and never connected here.
        createRedisConnections(settings, 'doctor', logger).commands;
  try {
    await within(commands.connect(), CONNECT_TIMEOUT_MS);
  } catch (err) {
    commands.disconnect();
    return [fail('redis', `${where(settings)} unreachable: ${(err as Error).message}`)];
  }
  try {
    const findings = [await modeFinding(settings, commands)];
    const sentMs = Date.now();
    const [seconds, micros] = (await commands.time()) as [number | string, number | string];
    findings.push(clockFinding('clock', skewMs(Number(seconds) * 1000 + Math.floor(Number(micros) / 1000), sentMs, Date.now()), 'Redis TIME'));
    return findings;
  } catch (err) {
    return [fail('redis', `${where(settings)}: ${(err as Error).message}`)];
  } finally {
    commands.disconnect();
  }
}

/** What the server says it is, against what the configuration says it should be. */
async function modeFinding(settings: RedisSettings, commands: Redis | Cluster): Promise<Finding> {
  const server = infoField(await commands.info('server'));
  const version = `Redis ${server('redis_version') ?? '?'}`;
  if (settings.mode === 'cluster') {
    const state = infoField(String(await (commands as Cluster).cluster('INFO')))('cluster_state');
    const masters = (commands as Cluster).nodes('master').length;
    if (state !== 'ok') return fail('redis', `cluster at ${where(settings)}: cluster_state is ${state ?? 'unknown'}`);
    return pass('redis', `cluster, ${masters} masters, state ok (${version})`);
  }
  const mode = server('redis_mode');
  if (mode === 'cluster') return fail('redis', `${where(settings)} is a Redis Cluster node: set REDIS_CLUSTER_NODES instead`);
  const [role] = (await (commands as Redis).call('ROLE')) as [string];
  if (role !== 'master') return fail('redis', `${where(settings)} is a ${role}, not a master: publishes would be refused`);
  return pass('redis', `${settings.mode === 'sentinel' ? `sentinel, master "${settings.name}"` : 'single'} at ${where(settings)}, role master (${version})`);
}

/** Where Redis is, without credentials (a REDIS_URL may carry a password). */
function where(settings: RedisSettings): string {
  if (settings.mode === 'standalone') return new URL(settings.url).host;
  const nodes = settings.mode === 'cluster' ? settings.nodes : settings.sentinels;
  return nodes.map(({ host, port }) => `${host}:${port}`).join(',');
}

function infoField(info: string): (name: string) => string | undefined {
  return (name) => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1];
}

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
