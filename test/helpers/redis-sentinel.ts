// Real Redis Sentinel set-ups for tests: a master, its replica and (default) 3
// sentinels, each its own redis-server process on a free port (sentinels run
// as `redis-server CONF --sentinel`; no redis-sentinel package needed). Every
// wait is on what the sentinels and the data nodes themselves report.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackDir, untrackDir } from './reaper.js';
import { startRedis, type Persistence, type RedisServer, type RespValue, type TeardownHost } from './redis-server.js';
import { waitFor } from './wait-for.js';
import type { RedisSettings } from '../../src/config.js';

export interface StartRedisSentinelOptions {
  /** The monitored master's name (default 'switchboard'), for REDIS_SENTINEL_NAME-style settings. */
  name?: string;
  /** Default 3. */
  sentinels?: number;
  /** Sentinels that must agree the master is down (default 2). */
  quorum?: number;
  /** `down-after-milliseconds` (default 2000). */
  downAfterMs?: number;
  /** `failover-timeout` (default 5000 ms; Redis' own default is 3 minutes). */
  failoverTimeoutMs?: number;
  /** Data nodes: `requirepass` and `masterauth`; the sentinels get it as `auth-pass`. */
  password?: string;
  /** The sentinels' own `requirepass` (they also use it with each other). */
  sentinelPassword?: string;
  /** Data nodes, as for startRedis (default 'none'). */
  persistence?: Persistence;
  /** More redis-server arguments for the data nodes. */
  extraArgs?: string[];
  /** Bound on the whole start-up (default 30000 ms). */
  timeoutMs?: number;
}

export interface RedisSentinelSet {
  readonly name: string;
  /** Data nodes: [0] starts as the master, [1] as its replica. Failovers change roles: ask master(). */
  readonly nodes: readonly RedisServer[];
  /** The sentinel processes. */
  readonly sentinelNodes: readonly RedisServer[];
  /** `127.0.0.1:<port>` of every sentinel, for REDIS_SENTINELS. */
  readonly sentinels: string[];
  readonly password: string | undefined;
  readonly sentinelPassword: string | undefined;
  /** The temp dir holding every node's dir and the sentinel conf files. */
  readonly dir: string;
  /** The data node the first answering sentinel names (SENTINEL get-master-addr-by-name). */
  master(): Promise<RedisServer>;
  /** kill -9 of the current master; waitForFailover() then measures from this moment. */
  killMaster(): Promise<RedisServer>;
  /**
   * Waits until every live sentinel names the same new master, other than the
   * killed one, and that node answers ROLE as master. `ms` counts from the last
   * killMaster() (or from this call).
   */
  waitForFailover(opts?: { timeoutMs?: number }): Promise<{ ms: number; master: RedisServer }>;
  /**
   * Waits until every live sentinel names the same master, sees it up, knows
   * every other live sentinel and every live replica, the master answers ROLE
   * as master and every other live data node replicates it with its link up.
   * Resolves with the master.
   */
  waitForSettled(opts?: { timeoutMs?: number }): Promise<RedisServer>;
  /**
   * Restarts a stopped or killed data node and makes it a replica of the
   * current master at once, then waits until settled. Left alone, a restarted
   * old master comes back as an (empty) master, and the sentinels demote it
   * only after their 10 s INFO period plus an 8 s grace: 21 s measured.
   */
  restartAsReplica(node: RedisServer, opts?: { timeoutMs?: number }): Promise<void>;
}

const alive = (s: RedisServer): boolean => s.running && !s.paused;

/** A flat [field, value, field, value, ...] reply (SENTINEL MASTER, REPLICAS entries) as an object. */
function fields(reply: RespValue): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

class RedisSentinelSetImpl implements RedisSentinelSet {
  private lastKill: { node: RedisServer; at: number } | undefined;

  constructor(
    readonly name: string,
    readonly nodes: RedisServer[],
    readonly sentinelNodes: RedisServer[],
    readonly dir: string,
    readonly password: string | undefined,
    readonly sentinelPassword: string | undefined,
  ) {}

  get sentinels(): string[] {
    return this.sentinelNodes.map((s) => `127.0.0.1:${s.port}`);
  }

  /** The data node listening on `port` (as a sentinel reports it). */
  private nodeAt(port: number): RedisServer {
    const n = this.nodes.find((x) => x.port === port);
    if (!n) throw new Error(`the sentinels name 127.0.0.1:${port}, which is not one of this set's data nodes`);
    return n;
  }

  private async masterPortFrom(sentinel: RedisServer): Promise<number> {
    const reply = await sentinel.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name);
    if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`sentinel ${sentinel.port} knows no master ${this.name}`);
    return Number(reply[1]);
  }

  async master(): Promise<RedisServer> {
    let lastErr: unknown = new Error('no sentinel is alive');
    for (const s of this.sentinelNodes.filter(alive)) {
      try {
        return this.nodeAt(await this.masterPortFrom(s));
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** The master every live sentinel names; throws unless they all name the same one. */
  private async agreedMaster(): Promise<RedisServer> {
    const live = this.sentinelNodes.filter(alive);
    if (live.length === 0) throw new Error('no sentinel is alive');
    const ports = await Promise.all(live.map((s) => this.masterPortFrom(s)));
    if (new Set(ports).size !== 1) throw new Error(`the sentinels name different masters: ${ports.join(', ')}`);
    return this.nodeAt(ports[0] as number);
  }

  private async answersAsMaster(node: RedisServer): Promise<void> {
    if (!alive(node)) throw new Error(`master ${node.port} is not running`);
    const role = await node.command('ROLE');
    if (!Array.isArray(role) || role[0] !== 'master') throw new Error(`${node.port} answers ROLE ${JSON.stringify(role)}`);
  }

  async killMaster(): Promise<RedisServer> {
    const master = await this.master();
    this.lastKill = { node: master, at: Date.now() };
    await master.kill('SIGKILL');
    return master;
  }

  async waitForFailover(opts: { timeoutMs?: number } = {}): Promise<{ ms: number; master: RedisServer }> {
    const from = this.lastKill?.at ?? Date.now();
    const killed = this.lastKill?.node;
    const master = await waitFor(
      async () => {
        const m = await this.agreedMaster();
        if (m === killed) throw new Error(`the sentinels still name the killed master ${m.port}`);
        await this.answersAsMaster(m);
        return m;
      },
      { timeoutMs: opts.timeoutMs ?? 30000, intervalMs: 50, label: `sentinel failover of ${this.name}` },
    );
    return { ms: Date.now() - from, master };
  }

  async waitForSettled(opts: { timeoutMs?: number } = {}): Promise<RedisServer> {
    return waitFor(
      async () => {
        const master = await this.agreedMaster();
        await this.answersAsMaster(master);
        const replicas = this.nodes.filter((n) => n !== master && alive(n));
        for (const r of replicas) {
          const role = await r.command('ROLE');
          if (!Array.isArray(role) || role[0] !== 'slave' || Number(role[2]) !== master.port || role[3] !== 'connected') {
            throw new Error(`${r.port} answers ROLE ${JSON.stringify(role)}, not a connected replica of ${master.port}`);
          }
        }
        const liveSentinels = this.sentinelNodes.filter(alive);
        for (const s of liveSentinels) {
          const m = fields(await s.command('SENTINEL', 'MASTER', this.name));
          if (m.flags !== 'master') throw new Error(`sentinel ${s.port} flags the master ${m.flags}`);
          if (Number(m['num-other-sentinels']) < liveSentinels.length - 1) {
            throw new Error(`sentinel ${s.port} knows ${m['num-other-sentinels']} other sentinels`);
          }
          const seen = ((await s.command('SENTINEL', 'REPLICAS', this.name)) as RespValue[]).map(fields);
          for (const r of replicas) {
            const entry = seen.find((e) => Number(e.port) === r.port);
            // Not master-link-status: sentinels refresh that from INFO only every 10 s.
            if (entry?.flags !== 'slave') {
              throw new Error(`sentinel ${s.port} sees replica ${r.port} as ${JSON.stringify(entry?.flags)}`);
            }
          }
        }
        return master;
      },
      { timeoutMs: opts.timeoutMs ?? 30000, intervalMs: 50, label: `sentinel set ${this.name} settled` },
    );
  }

  async restartAsReplica(node: RedisServer, opts: { timeoutMs?: number } = {}): Promise<void> {
    const master = await this.master();
    if (master === node) throw new Error(`restartAsReplica: ${node.port} is the current master`);
    await node.restart();
    await node.command('REPLICAOF', '127.0.0.1', master.port);
    await this.waitForSettled(opts);
  }
}

/**
 * Starts a master, its replica and sentinels monitoring them, all on
 * 127.0.0.1, and resolves once settled (waitForSettled). Teardown kills every
 * process and removes the temp dir; none outlives the test process (reaper.ts).
 */
export async function startRedisSentinel(t: TeardownHost, opts: StartRedisSentinelOptions = {}): Promise<RedisSentinelSet> {
  const name = opts.name ?? 'switchboard';
  const sentinelCount = opts.sentinels ?? 3;
  const quorum = opts.quorum ?? 2;
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`startRedisSentinel: name must be [A-Za-z0-9._-]+, got ${JSON.stringify(name)}`);
  if (!Number.isInteger(sentinelCount) || sentinelCount < 1) throw new Error(`startRedisSentinel: sentinels must be an integer ≥ 1, got ${sentinelCount}`);
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > sentinelCount) {
    throw new Error(`startRedisSentinel: quorum must be an integer in 1..${sentinelCount}, got ${quorum}`);
  }
  for (const [key, pw] of [
    ['password', opts.password],
    ['sentinelPassword', opts.sentinelPassword],
  ] as const) {
    if (pw !== undefined && !/^[A-Za-z0-9._-]+$/.test(pw)) throw new Error(`startRedisSentinel: ${key} must be [A-Za-z0-9._-]+ (it goes into a conf file)`);
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 30000);
  const left = (): number => Math.max(deadline - Date.now(), 1);

  const dir = await mkdtemp(join(tmpdir(), 'switchboard-sentinel-'));
  trackDir(dir);
  const servers: RedisServer[] = [];
  t.teardown(async () => {
    await Promise.all(servers.map((s) => s.kill('SIGKILL')));
    await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  });

  const startDataNode = async (index: number, replicaOf?: RedisServer): Promise<RedisServer> => {
    const nodeDir = join(dir, `node-${index}`);
    await mkdir(nodeDir);
    const server = await startRedis(undefined, {
      dir: nodeDir,
      persistence: opts.persistence ?? 'none',
      password: opts.password,
      extraArgs: [
        // A master waits this long (5 s by default) for more replicas before a full sync.
        '--repl-diskless-sync-delay',
        '0',
        ...(opts.password === undefined ? [] : ['--masterauth', opts.password]),
        ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf.port)] : []),
        ...(opts.extraArgs ?? []),
      ],
    });
    servers.push(server);
    return server;
  };
  const master = await startDataNode(0);
  const replica = await startDataNode(1, master);

  const conf = [
    'sentinel resolve-hostnames no',
    `sentinel monitor ${name} 127.0.0.1 ${master.port} ${quorum}`,
    `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 2000}`,
    `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs ?? 5000}`,
    `sentinel parallel-syncs ${name} 1`,
    ...(opts.password === undefined ? [] : [`sentinel auth-pass ${name} ${opts.password}`]),
    '',
  ].join('\n');
  const sentinelNodes = await Promise.all(
    Array.from({ length: sentinelCount }, async (_, i) => {
      const sentinelDir = join(dir, `sentinel-${i}`);
      await mkdir(sentinelDir);
      // Sentinel rewrites its conf file (known sentinels, epochs): one writable file each.
      const configFile = join(sentinelDir, 'sentinel.conf');
      await writeFile(configFile, conf);
      const s = await startRedis(undefined, {
        dir: sentinelDir,
        configFile,
        password: opts.sentinelPassword,
        extraArgs: ['--sentinel'],
      });
      servers.push(s);
      return s;
    }),
  );
  const set = new RedisSentinelSetImpl(name, [master, replica], sentinelNodes, dir, opts.password, opts.sentinelPassword);
  await set.waitForSettled({ timeoutMs: left() });
  return set;
}

/** How a replica reaches this set (REDIS_SENTINELS + REDIS_SENTINEL_NAME), as config.ts would read it. */
export function sentinelSettings(set: RedisSentinelSet): RedisSettings {
  return {
    mode: 'sentinel',
    sentinels: set.sentinels.map((address) => ({
      host: address.slice(0, address.lastIndexOf(':')),
      port: Number(address.slice(address.lastIndexOf(':') + 1)),
    })),
    name: set.name,
    sentinelPassword: undefined,
    username: undefined,
    password: undefined,
    tls: undefined,
    waitReplicas: 0,
  };
}
