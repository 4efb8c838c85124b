// Real Redis Clusters for tests: masters and their replicas, each node its own
// redis-server process (own dir, free port, free bus port), built with raw
// CLUSTER commands (no redis-cli needed) and driven through failovers and slot
// migrations. Every wait is on the state the nodes themselves report.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { trackDir, untrackDir } from './reaper.js';
import {
  RedisReplyError,
  redisCommand,
  redisPipeline,
  startRedis,
  type Persistence,
  type RedisServer,
  type RespValue,
  type TeardownHost,
} from './redis-server.js';
import type { RedisSettings } from '../../src/config.js';
import { waitFor } from './wait-for.js';

export const SLOTS = 16384;

// ---------------------------------------------------------------------------
// Key → slot, as Redis computes it: CRC16-XMODEM of the key (or of its hash
// tag: the bytes between the first '{' and the first '}' after it, if any)
// modulo 16384.

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ b) & 0xff] as number);
  return crc;
}

/** The cluster slot of `key` (same answer as CLUSTER KEYSLOT; strings are hashed as UTF-8). */
export function slotOf(key: string | Buffer): number {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const open = bytes.indexOf(0x7b); // '{'
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(bytes) % SLOTS;
}

// ---------------------------------------------------------------------------
// CLUSTER NODES, parsed.

export interface ClusterNodesEntry {
  id: string;
  host: string;
  port: number;
  busPort: number;
  /** e.g. ['myself', 'master'], ['slave'], ['master', 'fail'], ['slave', 'fail?'] */
  flags: string[];
  /** The master's id, for a replica. */
  masterId: string | undefined;
  configEpoch: number;
  linkState: string;
  /** Inclusive slot ranges served. */
  slots: Array<[number, number]>;
  /** Slots this node is migrating out (`[slot->-id]`, listed only for `myself`). */
  migrating: number[];
  /** Slots this node is importing (`[slot-<-id]`, listed only for `myself`). */
  importing: number[];
}

export function parseClusterNodes(text: string): ClusterNodesEntry[] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0)
    .map((line) => {
      const [id = '', addr = '', flags = '', master = '-', , , epoch = '0', link = '', ...slotTokens] = line.trim().split(' ');
      const a = /^([^:]*):(\d+)@(\d+)/.exec(addr);
      const entry: ClusterNodesEntry = {
        id,
        host: a?.[1] ?? '',
        port: Number(a?.[2] ?? 0),
        busPort: Number(a?.[3] ?? 0),
        flags: flags.split(','),
        masterId: master === '-' ? undefined : master,
        configEpoch: Number(epoch),
        linkState: link,
        slots: [],
        migrating: [],
        importing: [],
      };
      for (const tok of slotTokens) {
        const mig = /^\[(\d+)-([<>])-/.exec(tok);
        if (mig) {
          (mig[2] === '>' ? entry.migrating : entry.importing).push(Number(mig[1]));
          continue;
        }
        const [lo, hi = lo] = tok.split('-').map(Number);
        if (lo !== undefined && hi !== undefined) entry.slots.push([lo, hi]);
      }
      return entry;
    });
}

const UNHEALTHY_FLAGS = ['fail', 'fail?', 'handshake', 'noaddr'];
const isMaster = (e: ClusterNodesEntry): boolean => e.flags.includes('master');
const isHealthy = (e: ClusterNodesEntry): boolean => !e.flags.some((f) => UNHEALTHY_FLAGS.includes(f));
const slotCount = (e: ClusterNodesEntry): number => e.slots.reduce((n, [lo, hi]) => n + hi - lo + 1, 0);
const serves = (e: ClusterNodesEntry, slot: number): boolean => e.slots.some(([lo, hi]) => slot >= lo && slot <= hi);
const myself = (view: ClusterNodesEntry[]): ClusterNodesEntry | undefined => view.find((e) => e.flags.includes('myself'));

// ---------------------------------------------------------------------------
// Handles.

export interface ClusterNode extends RedisServer {
  /** The node ID (kept across restarts: nodes.conf lives in the node's dir). */
  readonly id: string;
  readonly busPort: number;
  /** `127.0.0.1:<port>` */
  readonly addr: string;
  /** Running and not paused: it answers. */
  readonly alive: boolean;
}

export interface StartRedisClusterOptions {
  /** Default 3. */
  masters?: number;
  /** Default 1. */
  replicasPerMaster?: number;
  /** `cluster-node-timeout` (default 2000 ms): a dead master is replaced about 2 of these later. */
  nodeTimeoutMs?: number;
  /** Per node, as for startRedis (default 'none'). */
  persistence?: Persistence;
  /** `requirepass` and `masterauth` on every node; the handles and the helpers authenticate with it. */
  password?: string;
  /** More redis-server arguments for every node. */
  extraArgs?: string[];
  /** Bound on building the cluster (default 30000 ms). */
  timeoutMs?: number;
}

export interface WaitOptions {
  /** Default: 20000 ms, or 10 node timeouts if that is longer. */
  timeoutMs?: number;
}

export interface RedisCluster {
  /** Every node, in creation order: masters first, then replicas (roles change with failovers). */
  readonly nodes: readonly ClusterNode[];
  /** `127.0.0.1:<port>` of every node, for REDIS_CLUSTER_NODES. */
  readonly seeds: string[];
  readonly password: string | undefined;
  readonly nodeTimeoutMs: number;
  /** The temp dir holding every node's dir (every node's command line names it). */
  readonly dir: string;
  /** The node with this id or `host:port`. Throws if there is none. */
  node(idOrAddr: string): ClusterNode;
  /** CLUSTER NODES as `from` (default: the first live node) sees it. */
  view(from?: ClusterNode): Promise<ClusterNodesEntry[]>;
  /** Live masters (not failed, not paused), read from CLUSTER NODES, ordered by their first slot. */
  masters(): Promise<ClusterNode[]>;
  /** Live replicas of `master`, read from CLUSTER NODES. */
  replicasOf(master: ClusterNode): Promise<ClusterNode[]>;
  /** The node serving `slot`, read from CLUSTER NODES. */
  masterOfSlot(slot: number): Promise<ClusterNode>;
  slotOf(key: string | Buffer): number;
  /**
   * Runs a command on the master serving `key`'s slot, following MOVED and ASK
   * redirections. Resolves with the reply; rejects with RedisReplyError.
   * E.g. `call(ch, 'SPUBLISH', ch, 'hi')`.
   */
  call(key: string, ...args: (string | number | Buffer)[]): Promise<RespValue>;
  /**
   * CLUSTER FAILOVER [FORCE] on `replica`; resolves once it serves its old
   * master's slots, the old master (if alive) replicates it, and the cluster
   * has settled (waitForState('ok')). `ms` is from the command to settled.
   */
  failover(replica: ClusterNode, opts?: { force?: boolean } & WaitOptions): Promise<{ ms: number }>;
  /** kill -9 of `master` (which must be a live master); waitForFailover() then measures from this moment. */
  killMaster(master: ClusterNode): Promise<ClusterNode>;
  /**
   * Waits until the cluster has settled without the killed (or paused) master:
   * every slot served by a live master, the same view everywhere, cluster_state:ok.
   * `ms` counts from the last killMaster() (or from this call), `promoted` are
   * the masters now serving the killed master's slots.
   */
  waitForFailover(opts?: WaitOptions): Promise<{ ms: number; promoted: ClusterNode[] }>;
  /**
   * Moves `slot` and its keys to `to` (a live master): SETSLOT IMPORTING /
   * MIGRATING, MIGRATE in batches, SETSLOT NODE on every live master; resolves
   * once every live node says `to` serves it and the cluster has settled.
   * Keys travel as UTF-8 strings (binary key names are not supported).
   */
  migrateSlot(slot: number, to: ClusterNode, opts?: { batchSize?: number } & WaitOptions): Promise<{ keys: number; ms: number }>;
  /**
   * 'ok': every live node reports cluster_state:ok, all of them show the same
   * topology with every slot served by a live master, and every live replica's
   * link to its master is up. 'fail': every live node reports cluster_state:fail.
   */
  waitForState(state?: 'ok' | 'fail', opts?: WaitOptions): Promise<void>;
}

class ClusterNodeImpl implements ClusterNode {
  constructor(
    private readonly server: RedisServer,
    readonly id: string,
    readonly busPort: number,
  ) {}

  get port(): number {
    return this.server.port;
  }
  get url(): string {
    return this.server.url;
  }
  get host(): '127.0.0.1' {
    return this.server.host;
  }
  get dir(): string {
    return this.server.dir;
  }
  get persistence(): Persistence {
    return this.server.persistence;
  }
  get password(): string | undefined {
    return this.server.password;
  }
  get pid(): number | undefined {
    return this.server.pid;
  }
  get running(): boolean {
    return this.server.running;
  }
  get paused(): boolean {
    return this.server.paused;
  }
  get output(): string[] {
    return this.server.output;
  }
  get addr(): string {
    return `127.0.0.1:${this.server.port}`;
  }
  get alive(): boolean {
    return this.server.running && !this.server.paused;
  }
  kill(signal?: NodeJS.Signals): Promise<void> {
    return this.server.kill(signal);
  }
  stop(): Promise<void> {
    return this.server.stop();
  }
  restart(): Promise<void> {
    return this.server.restart();
  }
  pause(): void {
    this.server.pause();
  }
  resume(): void {
    this.server.resume();
  }
  command(...args: (string | number | Buffer)[]): Promise<RespValue> {
    return this.server.command(...args);
  }
  cli(...args: (string | number)[]): Promise<string> {
    return this.server.cli(...args);
  }
  cliLines(...args: (string | number)[]): Promise<string[]> {
    return this.server.cliLines(...args);
  }
  clientList(): Promise<Array<Record<string, string>>> {
    return this.server.clientList();
  }
}

/** Slot ranges for `n` masters, split as `redis-cli --cluster create` splits them. */
function slotRanges(n: number): Array<[number, number]> {
  const per = SLOTS / n;
  const ranges: Array<[number, number]> = [];
  let first = 0;
  for (let i = 0; i < n; i++) {
    const last = i === n - 1 ? SLOTS - 1 : Math.round(first + per - 1);
    ranges.push([first, last]);
    first = last + 1;
  }
  return ranges;
}

const inUse = (err: unknown): boolean => /Address already in use/i.test(String((err as Error).message));

/** A free port not in `taken` (two freePort() calls in a row may return the same port). */
async function distinctFreePort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (!taken.has(p)) {
      taken.add(p);
      return p;
    }
  }
  throw new Error('distinctFreePort: no new free port in 50 tries');
}

class RedisClusterImpl implements RedisCluster {
  private lastKill: { node: ClusterNode; at: number; slots: Array<[number, number]> } | undefined;

  constructor(
    readonly nodes: ClusterNodeImpl[],
    readonly dir: string,
    readonly nodeTimeoutMs: number,
    readonly password: string | undefined,
  ) {}

  get seeds(): string[] {
    return this.nodes.map((n) => n.addr);
  }

  private get defaultWaitMs(): number {
    return Math.max(20000, this.nodeTimeoutMs * 10);
  }

  slotOf(key: string | Buffer): number {
    return slotOf(key);
  }

  node(idOrAddr: string): ClusterNode {
    const n = this.nodes.find((x) => x.id === idOrAddr || x.addr === idOrAddr);
    if (!n) throw new Error(`no cluster node ${idOrAddr} (nodes: ${this.seeds.join(' ')})`);
    return n;
  }

  private nodeById(id: string): ClusterNodeImpl | undefined {
    return this.nodes.find((n) => n.id === id);
  }

  async view(from?: ClusterNode): Promise<ClusterNodesEntry[]> {
    if (from) return parseClusterNodes(await from.cli('CLUSTER', 'NODES'));
    let lastErr: unknown = new Error('no cluster node is alive');
    for (const n of this.nodes.filter((x) => x.alive)) {
      try {
        return parseClusterNodes(await n.cli('CLUSTER', 'NODES'));
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** Entries of `view` that are live handles, healthy in that view. */
  private liveEntries(view: ClusterNodesEntry[]): ClusterNodesEntry[] {
    return view.filter((e) => isHealthy(e) && this.nodeById(e.id)?.alive === true);
  }

  async masters(): Promise<ClusterNode[]> {
    const firstSlot = (e: ClusterNodesEntry): number => e.slots[0]?.[0] ?? SLOTS;
    return this.liveEntries(await this.view())
      .filter(isMaster)
      .sort((a, b) => firstSlot(a) - firstSlot(b))
      .map((e) => this.node(e.id));
  }

  async replicasOf(master: ClusterNode): Promise<ClusterNode[]> {
    return this.liveEntries(await this.view())
      .filter((e) => !isMaster(e) && e.masterId === master.id)
      .map((e) => this.node(e.id));
  }

  async masterOfSlot(slot: number): Promise<ClusterNode> {
    checkSlot(slot);
    const owner = (await this.view()).find((e) => serves(e, slot));
    if (!owner) throw new Error(`no node serves slot ${slot}`);
    return this.node(owner.id);
  }

  async call(key: string, ...args: (string | number | Buffer)[]): Promise<RespValue> {
    let port = (await this.masterOfSlot(slotOf(key))).port;
    let asking = false;
    for (let hop = 0; hop < 5; hop++) {
      const replies = await redisPipeline(port, asking ? [['ASKING'], args] : [args], { password: this.password });
      const reply = replies[replies.length - 1] as RespValue;
      if (!(reply instanceof RedisReplyError)) return reply;
      const redirect = /^(MOVED|ASK) \d+ [^ ]*:(\d+)/.exec(reply.message);
      if (!redirect) throw reply;
      port = Number(redirect[2]);
      asking = redirect[1] === 'ASK';
    }
    throw new Error(`call(${key}): more than 5 redirections`);
  }

  /** Throws, saying why, unless the cluster is settled in `state` (see waitForState). */
  private async checkState(state: 'ok' | 'fail'): Promise<true> {
    const alive = this.nodes.filter((n) => n.alive);
    if (alive.length === 0) throw new Error('no cluster node is alive');
    let reference: { addr: string; topology: string } | undefined;
    for (const n of alive) {
      const info = await n.cli('CLUSTER', 'INFO');
      const reported = /cluster_state:(\w+)/.exec(info)?.[1];
      if (reported !== state) throw new Error(`${n.addr} reports cluster_state:${reported}`);
      if (state === 'fail') continue;
      const view = await this.view(n);
      const live = this.liveEntries(view);
      if (live.length !== alive.length) {
        throw new Error(
          `${n.addr} sees ${live.length} healthy live nodes, not ${alive.length}: ${JSON.stringify(view.map((e) => [e.port, e.flags.join(',')]))}`,
        );
      }
      const served = live.filter(isMaster).reduce((sum, e) => sum + slotCount(e), 0);
      if (served !== SLOTS) throw new Error(`${n.addr} sees ${served} of ${SLOTS} slots served by live masters`);
      const topology = live
        .map((e) => `${e.id} ${isMaster(e) ? 'master' : `replica-of ${e.masterId}`} ${e.slots.map(([lo, hi]) => `${lo}-${hi}`).join(',')}`)
        .sort()
        .join('\n');
      if (!reference) reference = { addr: n.addr, topology };
      else if (topology !== reference.topology) throw new Error(`${n.addr} and ${reference.addr} disagree on the topology`);
      const me = myself(view);
      if (me && !isMaster(me)) {
        const repl = await n.cli('INFO', 'replication');
        if (!/master_link_status:up/.test(repl)) throw new Error(`replica ${n.addr}: link to its master is not up`);
      }
    }
    return true;
  }

  async waitForState(state: 'ok' | 'fail' = 'ok', opts: WaitOptions = {}): Promise<void> {
    await waitFor(() => this.checkState(state), {
      timeoutMs: opts.timeoutMs ?? this.defaultWaitMs,
      intervalMs: 50,
      label: `cluster state ${state}`,
    });
  }

  async failover(replica: ClusterNode, opts: { force?: boolean } & WaitOptions = {}): Promise<{ ms: number }> {
    const me = myself(await this.view(replica));
    if (!me || isMaster(me) || !me.masterId) throw new Error(`failover: ${replica.addr} is not a replica`);
    const oldMaster = this.node(me.masterId);
    const started = Date.now();
    await replica.command('CLUSTER', 'FAILOVER', ...(opts.force ? ['FORCE'] : []));
    await waitFor(
      async () => {
        const now = myself(await this.view(replica));
        if (!now || !isMaster(now) || slotCount(now) === 0) throw new Error(`${replica.addr} is not serving slots yet`);
        if (oldMaster.alive && myself(await this.view(oldMaster))?.masterId !== replica.id) {
          throw new Error(`old master ${oldMaster.addr} does not replicate ${replica.addr} yet`);
        }
        return this.checkState('ok');
      },
      { timeoutMs: opts.timeoutMs ?? this.defaultWaitMs, intervalMs: 50, label: `failover to ${replica.addr}` },
    );
    return { ms: Date.now() - started };
  }

  async killMaster(master: ClusterNode): Promise<ClusterNode> {
    const me = master.alive ? myself(await this.view(master)) : undefined;
    if (!me || !isMaster(me)) throw new Error(`killMaster: ${master.addr} is not a live master`);
    this.lastKill = { node: master, at: Date.now(), slots: me.slots };
    await master.kill('SIGKILL');
    return master;
  }

  async waitForFailover(opts: WaitOptions = {}): Promise<{ ms: number; promoted: ClusterNode[] }> {
    const from = this.lastKill?.at ?? Date.now();
    await this.waitForState('ok', opts);
    const ms = Date.now() - from;
    const view = await this.view();
    const promoted = new Set<ClusterNode>();
    for (const [lo] of this.lastKill?.slots ?? []) {
      const owner = view.find((e) => serves(e, lo));
      if (owner) promoted.add(this.node(owner.id));
    }
    return { ms, promoted: [...promoted] };
  }

  async migrateSlot(slot: number, to: ClusterNode, opts: { batchSize?: number } & WaitOptions = {}): Promise<{ keys: number; ms: number }> {
    checkSlot(slot);
    const batchSize = opts.batchSize ?? 100;
    const timeoutMs = opts.timeoutMs ?? this.defaultWaitMs;
    const started = Date.now();
    const deadline = started + timeoutMs;
    const target = myself(await this.view(to));
    if (!target || !isMaster(target)) throw new Error(`migrateSlot: ${to.addr} is not a master`);
    const from = await this.masterOfSlot(slot);
    if (from === to) return { keys: 0, ms: 0 };

    await to.command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
    await from.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
    let moved = 0;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`migrateSlot(${slot}): keys still moving after ${timeoutMs} ms (${moved} moved)`);
      const keys = (await from.command('CLUSTER', 'GETKEYSINSLOT', slot, batchSize)) as string[];
      if (keys.length === 0) break;
      const auth = this.password === undefined ? [] : ['AUTH', this.password];
      await redisCommand(from.port, ['MIGRATE', '127.0.0.1', to.port, '', 0, 5000, ...auth, 'KEYS', ...keys], {
        password: this.password,
        timeoutMs: 10000,
      });
      moved += keys.length;
    }
    // The target first, so that it answers for the slot before the source stops doing so.
    await to.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
    await from.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
    for (const m of await this.masters()) {
      if (m !== to && m !== from) await m.command('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
    }
    await waitFor(
      async () => {
        for (const n of this.nodes.filter((x) => x.alive)) {
          const view = await this.view(n);
          const owner = view.find((e) => serves(e, slot));
          if (owner?.id !== to.id) throw new Error(`${n.addr} says slot ${slot} is served by ${owner?.port}`);
          const me = myself(view);
          if (me?.migrating.includes(slot) || me?.importing.includes(slot)) throw new Error(`${n.addr} still marks slot ${slot} as moving`);
        }
        const left = await from.command('CLUSTER', 'COUNTKEYSINSLOT', slot);
        if (left !== 0) throw new Error(`${from.addr} still holds ${String(left)} keys of slot ${slot}`);
        return this.checkState('ok');
      },
      { timeoutMs: Math.max(deadline - Date.now(), 1), intervalMs: 50, label: `slot ${slot} settled on ${to.addr}` },
    );
    return { keys: moved, ms: Date.now() - started };
  }
}

function checkSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) throw new Error(`not a slot: ${slot}`);
}

/**
 * Starts a Redis Cluster of real redis-server processes on 127.0.0.1 (default
 * 3 masters with 1 replica each, cluster-node-timeout 2000 ms) and resolves
 * once it is settled (waitForState('ok')). Teardown kills every node and
 * removes the temp dir; no node outlives the test process (reaper.ts).
 */
export async function startRedisCluster(t: TeardownHost, opts: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const masterCount = opts.masters ?? 3;
  const replicasPerMaster = opts.replicasPerMaster ?? 1;
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 2000;
  if (!Number.isInteger(masterCount) || masterCount < 1) throw new Error(`startRedisCluster: masters must be an integer ≥ 1, got ${masterCount}`);
  if (!Number.isInteger(replicasPerMaster) || replicasPerMaster < 0) {
    throw new Error(`startRedisCluster: replicasPerMaster must be an integer ≥ 0, got ${replicasPerMaster}`);
  }
  const total = masterCount * (1 + replicasPerMaster);
  const deadline = Date.now() + (opts.timeoutMs ?? 30000);

  const dir = await mkdtemp(join(tmpdir(), 'switchboard-cluster-'));
  trackDir(dir);
  const servers: RedisServer[] = [];
  t.teardown(async () => {
    await Promise.all(servers.map((s) => s.kill('SIGKILL')));
    await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  });

  const ports = new Set<number>();
  const startNode = async (index: number): Promise<ClusterNodeImpl> => {
    const nodeDir = join(dir, `node-${index}`);
    // Another process may take a free port before redis binds it: try new ones.
    for (let attempt = 1; ; attempt++) {
      const port = await distinctFreePort(ports);
      const busPort = await distinctFreePort(ports);
      await rm(nodeDir, { recursive: true, force: true });
      await mkdir(nodeDir);
      let server: RedisServer;
      try {
        server = await startRedis(undefined, {
          port,
          dir: nodeDir,
          persistence: opts.persistence ?? 'none',
          password: opts.password,
          extraArgs: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            String(nodeTimeoutMs),
            '--cluster-port',
            String(busPort),
            // A master waits this long (5 s by default) for more replicas before a full sync.
            '--repl-diskless-sync-delay',
            '0',
            ...(opts.password === undefined ? [] : ['--masterauth', opts.password]),
            ...(opts.extraArgs ?? []),
          ],
        });
      } catch (err) {
        if (inUse(err) && attempt < 5) continue;
        throw err;
      }
      servers.push(server);
      return new ClusterNodeImpl(server, String(await server.command('CLUSTER', 'MYID')), busPort);
    }
  };
  const started = await Promise.allSettled(Array.from({ length: total }, (_, i) => startNode(i)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  const nodes = started.map((r) => (r as PromiseFulfilledResult<ClusterNodeImpl>).value);
  const cluster = new RedisClusterImpl(nodes, dir, nodeTimeoutMs, opts.password);
  const masters = nodes.slice(0, masterCount);
  const replicas = nodes.slice(masterCount);
  const left = (): number => Math.max(deadline - Date.now(), 1);

  // Distinct config epochs up front, as redis-cli does: no epoch collisions to resolve later.
  await Promise.all(nodes.map((n, i) => n.command('CLUSTER', 'SET-CONFIG-EPOCH', i + 1)));
  const ranges = slotRanges(masterCount);
  await Promise.all(masters.map((m, i) => m.command('CLUSTER', 'ADDSLOTSRANGE', ...(ranges[i] as [number, number]))));
  const [first] = nodes as [ClusterNodeImpl];
  for (const n of nodes.slice(1)) await first.command('CLUSTER', 'MEET', '127.0.0.1', n.port, n.busPort);
  await waitFor(
    async () => {
      for (const n of nodes) {
        const view = await cluster.view(n);
        const known = view.filter((e) => isHealthy(e) && (e.flags.includes('myself') || e.linkState === 'connected'));
        if (known.length !== total) throw new Error(`${n.addr} knows ${known.length} of ${total} nodes`);
      }
      return true;
    },
    { timeoutMs: left(), intervalMs: 50, label: 'cluster nodes meeting each other' },
  );
  await Promise.all(replicas.map((r, i) => r.command('CLUSTER', 'REPLICATE', (masters[i % masterCount] as ClusterNodeImpl).id)));
  await cluster.waitForState('ok', { timeoutMs: left() });
  return cluster;
}

/** The replica's settings for `cluster` (what REDIS_CLUSTER_NODES=cluster.seeds would give). */
export function clusterSettings(cluster: RedisCluster): Extract<RedisSettings, { mode: 'cluster' }> {
  return {
    mode: 'cluster',
    nodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
    username: undefined,
    password: cluster.password,
    tls: undefined,
    waitReplicas: 0,
  };
}
