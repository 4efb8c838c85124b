import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  type ChannelName,
  channelKeys,
  fleetDeadKey,
  fleetIndexKey,
  fleetInstanceKey,
  isTopicChannel,
  topicChannel,
  userChannel,
} from '../backplane/redis-keys.js';
import { type Fleet, type LocalReplica, newInstanceId, type ReplicaState, type ReplicaStatus, replicaOf, type UserPresence } from './fleet.js';
import { definePresenceScripts, type PresenceCommands } from './presence-scripts.js';

/** Heartbeats per presence TTL at least: two may be lost before a live replica drops out. */
const BEATS_PER_TTL = 3;
/** Heartbeats come at least this often, so the rebalancer's view of the fleet is fresh. */
const MAX_HEARTBEAT_MS = 2000;
/** How often this replica's topic counts are compared with what it last wrote, and changes written. */
const TOPIC_FLUSH_MS = 500;
/**
 * Every count this replica holds is written again this often: it renews the presence keys' expiry
 * and prunes fields of replicas that died meanwhile from keys no one else writes.
 */
const REFRESH_MS = 5 * 60_000;
/** A presence key nobody rewrote for this long expires: its replicas are gone. */
const KEY_TTL_MS = 4 * REFRESH_MS;
/** A dead instance is remembered (its fields pruned by every write) for longer than a refresh round. */
const DEAD_MEMORY_MS = 60 * 60_000;
/** Dead instances named in each write at most (the newest): a pruning bound per script call. */
const MAX_DEAD_NAMED = 64;
/** Counts written at once by a refresh, so a large one does not flood the connection. */
const WRITE_CHUNK = 500;
/**
 * A count this replica took to 0 is remembered this long, and written as 0 again by every rewrite
 * and refresh meanwhile: a failover may have undone that write, and the replica holds nothing
 * there any more that would make it write again. One refresh round: however the failover was
 * noticed, or not noticed at all, the next round writes it.
 */
const EMPTIED_MEMORY_MS = REFRESH_MS;
/** Counts taken to 0 remembered at most (the newest): a bound on memory and on one rewrite's writes. */
const MAX_EMPTIED = 100_000;
/** A topic count whose value in Redis is not known (a write failed, or Redis may have lost it): matches no real count, so the next flush writes it. */
const UNKNOWN = -1;

/** How often a replica beats (writes its state and count) and reads the fleet's, for a PRESENCE_TTL_MS. */
export function heartbeatMsFor(presenceTtlMs: number): number {
  return Math.min(MAX_HEARTBEAT_MS, Math.floor(presenceTtlMs / BEATS_PER_TTL));
}

export interface RedisFleetOptions {
  /** A replica that stopped beating drops out of every count within this. */
  presenceTtlMs: number;
  maxStreamsPerUser: number;
}

/**
 * The fleet in Redis. Each replica process (an *instance*) keeps, with a heartbeat, a key of its
 * own that expires after PRESENCE_TTL_MS; every read of presence counts only instances whose key
 * is there, so a replica killed without a word drops out of every count within that bound.
 *
 * Per channel, a hash of instance → streams. A user's is written when a stream opens (the cap's
 * atomic reserve: it has to be, to be a cap) and when it closes; a topic's is written by a flush
 * of what changed, every TOPIC_FLUSH_MS, so a burst of opens costs a few writes, not one each.
 * Each instance writes only its own field; instances found dead have their fields pruned by later
 * writes, and their slots stop counting against the cap.
 *
 * The same on all three Redis modes. On Cluster every command stays in one slot: a channel's
 * presence hash shares its channel's hash tag (one script, one key), and the fleet's own keys share
 * `{fleet}` (the heartbeat's MGET of every instance key). Across a failover (Sentinel, or one
 * Cluster shard) writes that failed are repaired by the next heartbeat, and those Redis may have
 * lost (acknowledged by the old master, never replicated) are written again when the backplane's
 * subscriber comes back for those channels (`rewrite`), with every count taken to 0 lately; an
 * instance whose key expired meanwhile rejoins under a new id and writes everything again.
 */
export class RedisFleet implements Fleet {
  private readonly redis: (Redis | Cluster) & PresenceCommands;
  private instance: string;
  /** Per user, the slots this instance holds: the truth its field in Redis should show. */
  private readonly leases = new Map<string, number>();
  /** Reserves sent and not yet answered, per user: a repair then waits, or it could undo one. */
  private readonly inFlight = new Map<string, number>();
  /** Users whose field in Redis may be wrong (a write failed, or Redis may have lost it): rewritten on the next heartbeat. */
  private readonly dirtyUsers = new Set<string>();
  /** Per topic channel, the count last written (UNKNOWN: to be written again). */
  private readonly flushedTopics = new Map<ChannelName, number>();
  /** Users and topics whose count here went to 0 lately, oldest first, with when (EMPTIED_MEMORY_MS). */
  private readonly emptiedUsers = new Map<string, number>();
  private readonly emptiedTopics = new Map<ChannelName, number>();
  private dead: string[] = [];
  private view: { atMs: number; replicas: ReplicaStatus[] } | undefined;
  /** This instance's key was written once: from then on a heartbeat only renews it, never makes it again. */
  private joined = false;
  /** A heartbeat's renewal is under way: another one now would race it (two rejoins for one expiry). */
  private beating = false;
  /** A heartbeat was asked for meanwhile (a drain began): it runs once the current one ends. */
  private beatAgain = false;
  private failing = false;
  private readonly heartbeatMs: number;
  private readonly timers: NodeJS.Timeout[];
  private beatTimer: NodeJS.Timeout | undefined;
  private lookTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    redis: Redis | Cluster,
    private readonly local: LocalReplica,
    private readonly options: RedisFleetOptions,
    private readonly logger: Logger,
  ) {
    this.redis = definePresenceScripts(redis);
    this.instance = newInstanceId(local.replicaId);
    this.heartbeatMs = heartbeatMsFor(options.presenceTtlMs);
    this.timers = [setInterval(() => void this.flushTopics(), TOPIC_FLUSH_MS).unref(), setInterval(() => this.refreshAll(), REFRESH_MS).unref()];
    // In the fleet at once, then on the fleet's common beat.
    void this.beat().then(() => this.look());
    this.scheduleBeat();
  }

  async reserve(userId: string): Promise<boolean> {
    // Already at the limit here alone: no need to ask Redis.
    if ((this.leases.get(userId) ?? 0) >= this.options.maxStreamsPerUser) return false;
    this.inFlight.set(userId, (this.inFlight.get(userId) ?? 0) + 1);
    let taken: boolean;
    try {
      const total = await this.redis.sbPresenceReserve(
        channelKeys(userChannel(userId)).presence,
        this.options.maxStreamsPerUser,
        this.instance,
        KEY_TTL_MS,
        ...this.dead,
      );
      taken = total >= 0;
      this.succeeded();
    } catch (err) {
      // Redis trouble must not lock users out (a 429 makes a browser give up for good): the slot is
      // taken here and the count repaired once Redis answers again. Behind one Redis or Sentinel
      // the stream is sent to retry anyway meanwhile (the backplane is not ready); on a Cluster
      // with only this user's shard down it may open, beyond the cap, and counts once it is back.
      this.failed(err, 'presence reserve failed; the count is repaired later');
      this.dirtyUsers.add(userId);
      taken = true;
    } finally {
      const left = (this.inFlight.get(userId) ?? 1) - 1;
      if (left > 0) this.inFlight.set(userId, left);
      else this.inFlight.delete(userId);
    }
    if (taken) this.leases.set(userId, (this.leases.get(userId) ?? 0) + 1);
    return taken;
  }

  release(userId: string): void {
    const left = (this.leases.get(userId) ?? 0) - 1;
    if (left > 0) this.leases.set(userId, left);
    else {
      this.leases.delete(userId);
      remember(this.emptiedUsers, userId);
    }
    // A user awaiting repair gets its whole count written then; a -1 now would count twice.
    if (this.dirtyUsers.has(userId) || this.closed) return;
    this.redis.sbPresenceRelease(channelKeys(userChannel(userId)).presence, this.instance).then(
      () => this.succeeded(),
      (err: unknown) => {
        this.failed(err, 'presence release failed; the count is repaired later');
        this.dirtyUsers.add(userId);
      },
    );
  }

  async userPresence(userId: string): Promise<UserPresence> {
    const counts = await this.liveCounts(channelKeys(userChannel(userId)).presence);
    const replicas: Record<string, number> = {};
    let streams = 0;
    for (const [instance, n] of counts) {
      const replicaId = replicaOf(instance);
      replicas[replicaId] = (replicas[replicaId] ?? 0) + n;
      streams += n;
    }
    return { streams, replicas };
  }

  async topicPresence(topic: string): Promise<number> {
    let streams = 0;
    for (const n of (await this.liveCounts(channelKeys(topicChannel(topic)).presence)).values()) streams += n;
    return streams;
  }

  replicas(): readonly ReplicaStatus[] | undefined {
    if (this.view === undefined || Date.now() - this.view.atMs > this.options.presenceTtlMs) return undefined;
    return this.view.replicas;
  }

  /** Written now, off the common beat: while a replica drains nobody rebalances, so its count need not be taken with the others'. */
  announce(): void {
    void this.beat();
  }

  /**
   * Redis may have lost or undone presence writes for these channels (all of them when undefined):
   * the backplane's subscriber came back, after a failover, a restart of Redis, or a rebuilt
   * connection. A promoted replica lacks what its old master acknowledged and had not yet passed
   * on (replication is asynchronous), so every count this replica holds there is written again,
   * whole, on the next heartbeat (users) and flush (topics).
   */
  rewrite(channels?: readonly ChannelName[]): void {
    if (channels === undefined) {
      this.refreshAll();
      return;
    }
    const concerned = new Set(channels);
    for (const userId of this.leases.keys()) if (concerned.has(userChannel(userId))) this.dirtyUsers.add(userId);
    for (const channel of this.flushedTopics.keys()) if (concerned.has(channel)) this.flushedTopics.set(channel, UNKNOWN);
    this.zeroAgain();
  }

  /** Leaves at once: the instance key goes (no reader counts it any more) and it is named dead (its fields are pruned). */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.beatTimer);
    clearTimeout(this.lookTimer);
    await Promise.all([
      this.redis.del(fleetInstanceKey(this.instance)),
      this.redis.srem(fleetIndexKey, this.instance),
      this.redis.zadd(fleetDeadKey, Date.now(), this.instance),
    ]).catch((err: unknown) => this.logger.warn({ err }, 'could not leave the fleet; this replica drops out of presence when its heartbeat expires'));
  }

  /** Instance → streams in one presence hash, for the instances that are alive now. */
  private async liveCounts(key: string): Promise<Map<string, number>> {
    const fields = await this.redis.hgetall(key);
    const instances = Object.keys(fields);
    const live = new Map<string, number>();
    if (instances.length === 0) return live;
    const alive = await this.redis.mget(...instances.map(fleetInstanceKey));
    instances.forEach((instance, i) => {
      const n = Number(fields[instance]);
      if (alive[i] !== null && n > 0) live.set(instance, n);
    });
    return live;
  }

  /**
   * The next heartbeat, at the next multiple of heartbeatMs on the wall clock, so every replica
   * counts its streams at the same instants: the counts in one view were taken together, and a
   * stream moving between replicas (on neither for at least RETRY_MS / 2) is not in two of them.
   * The view is read half a heartbeat later, once every replica's count for that instant is in.
   */
  private scheduleBeat(): void {
    if (this.closed) return;
    const now = Date.now();
    const due = (Math.floor(now / this.heartbeatMs) + 1) * this.heartbeatMs;
    this.beatTimer = setTimeout(() => {
      this.scheduleBeat();
      void this.beat().then(() => {
        if (this.closed) return;
        this.lookTimer = setTimeout(() => void this.look(), Math.max(0, due + this.heartbeatMs / 2 - Date.now()));
        this.lookTimer.unref();
      });
    }, due - now);
    this.beatTimer.unref();
  }

  /** Renews this instance's key with its state, its stream count and when it counted them. */
  private async beat(): Promise<void> {
    if (this.closed) return;
    forgetOld(this.emptiedUsers);
    forgetOld(this.emptiedTopics);
    if (this.beating) {
      this.beatAgain = true;
      return;
    }
    this.beating = true;
    try {
      await this.renewKey(JSON.stringify({ r: this.local.replicaId, s: this.local.streamCount(), st: this.local.state(), t: Date.now() }));
      this.succeeded();
    } catch (err) {
      this.failed(err, 'fleet heartbeat failed');
    } finally {
      this.beating = false;
    }
    if (this.beatAgain) {
      this.beatAgain = false;
      await this.beat();
    }
  }

  /** Reads every instance's key (the view), notes the ones whose key expired as dead, and repairs what failed. */
  private async look(): Promise<void> {
    if (this.closed) return;
    try {
      const now = Date.now();
      const instances = await this.redis.smembers(fleetIndexKey);
      const states = instances.length === 0 ? [] : await this.redis.mget(...instances.map(fleetInstanceKey));
      const replicas: ReplicaStatus[] = [];
      const dead: string[] = [];
      instances.forEach((instance, i) => {
        const status = parseStatus(instance, states[i] ?? null, instance === this.instance);
        if (status === undefined) dead.push(instance);
        else replicas.push(status);
      });
      if (dead.length > 0) {
        await this.redis.srem(fleetIndexKey, ...dead);
        await this.redis.zadd(fleetDeadKey, ...dead.flatMap((instance) => [String(now), instance]));
        this.logger.info({ instances: dead }, 'replicas left the fleet without a word; their streams no longer count');
      }
      await this.redis.zremrangebyscore(fleetDeadKey, '-inf', now - DEAD_MEMORY_MS);
      this.dead = await this.redis.zrange(fleetDeadKey, String(-MAX_DEAD_NAMED), '-1');
      this.view = { atMs: now, replicas };
      this.succeeded();
    } catch (err) {
      this.failed(err, 'fleet view read failed');
      return;
    }
    await this.repairUsers();
  }

  /**
   * Renews this instance's key (`XX`: only while it exists) and its place in the index. A key that
   * is gone (it expired while heartbeats failed: a Redis failover longer than PRESENCE_TTL_MS, a
   * stalled process; or Redis lost it) is not made again under the same id: other replicas may
   * already have named that id dead, and a key made again would bring its stale fields back into
   * every count beside the rewritten ones. The replica rejoins as a new instance instead.
   */
  private async renewKey(state: string): Promise<void> {
    const ttl = this.options.presenceTtlMs;
    const renewed = this.joined && (await this.redis.set(fleetInstanceKey(this.instance), state, 'PX', ttl, 'XX')) !== null;
    // Gone because close() deleted it: this replica is leaving, not rejoining.
    if (this.closed) return;
    if (!renewed) {
      if (this.joined) await this.reincarnate();
      await this.redis.set(fleetInstanceKey(this.instance), state, 'PX', ttl);
      this.joined = true;
    }
    // Every beat, not only the first: an index that Redis lost (a failover) is rebuilt by the next round.
    await this.redis.sadd(fleetIndexKey, this.instance);
  }

  /**
   * This instance's key had expired: others may have named it dead and be pruning its fields. It
   * goes on as a new instance, names the old one dead itself (so its own writes prune the old
   * fields at once, and no reader waits for another heartbeat to stop counting them), and writes
   * all its counts again under the new name.
   */
  private async reincarnate(): Promise<void> {
    const old = this.instance;
    this.instance = newInstanceId(this.local.replicaId);
    this.joined = false;
    this.dead = [...this.dead.filter((instance) => instance !== old).slice(1 - MAX_DEAD_NAMED), old];
    this.refreshAll();
    this.logger.warn({ old, instance: this.instance }, 'this replica had dropped out of the fleet; rejoining under a new instance id');
    await Promise.all([this.redis.zadd(fleetDeadKey, Date.now(), old), this.redis.srem(fleetIndexKey, old)]);
  }

  /**
   * Every count written again on the next rounds (see REFRESH_MS). A topic is marked, not
   * forgotten: one this replica no longer holds may still show its old count (a write of 0 that
   * failed), and must be written as 0.
   */
  private refreshAll(): void {
    for (const userId of this.leases.keys()) this.dirtyUsers.add(userId);
    for (const channel of this.flushedTopics.keys()) this.flushedTopics.set(channel, UNKNOWN);
    this.zeroAgain();
  }

  /**
   * The counts taken to 0 lately (EMPTIED_MEMORY_MS) are written as 0 again. Such a channel is no
   * longer held here, so a rewrite cannot name it (nor, on a Cluster, tell its shard): each is
   * written wherever it lives. Without this, a last release that a failover undid would keep one
   * of the user's slots taken for as long as the presence key lives.
   */
  private zeroAgain(): void {
    forgetOld(this.emptiedUsers);
    forgetOld(this.emptiedTopics);
    for (const userId of this.emptiedUsers.keys()) this.dirtyUsers.add(userId);
    for (const channel of this.emptiedTopics.keys()) this.flushedTopics.set(channel, UNKNOWN);
  }

  /** Writes the whole count of each user whose field may be wrong, unless a reserve of theirs is in flight. */
  private async repairUsers(): Promise<void> {
    const due = [...this.dirtyUsers].filter((userId) => !this.inFlight.has(userId));
    for (let i = 0; i < due.length && !this.closed; i += WRITE_CHUNK) {
      await Promise.all(
        due.slice(i, i + WRITE_CHUNK).map(async (userId) => {
          this.dirtyUsers.delete(userId);
          try {
            await this.writeCount(channelKeys(userChannel(userId)).presence, this.leases.get(userId) ?? 0);
          } catch (err) {
            this.dirtyUsers.add(userId);
            this.failed(err, 'presence repair failed');
          }
        }),
      );
    }
  }

  /** Writes the topic counts that changed since the last flush (a topic this replica no longer holds, as 0). */
  private async flushTopics(): Promise<void> {
    if (this.closed) return;
    const now = new Map<ChannelName, number>();
    for (const [channel, n] of this.local.channelStreams()) if (n > 0 && isTopicChannel(channel)) now.set(channel, n);
    const changed: [ChannelName, number][] = [];
    for (const [channel, n] of now) if (this.flushedTopics.get(channel) !== n) changed.push([channel, n]);
    for (const channel of this.flushedTopics.keys()) if (!now.has(channel)) changed.push([channel, 0]);
    if (changed.length === 0) return;
    const flushed = this.flushedTopics;
    for (const [channel, n] of changed) {
      if (n > 0) flushed.set(channel, n);
      else {
        flushed.delete(channel);
        remember(this.emptiedTopics, channel);
      }
    }
    for (let i = 0; i < changed.length; i += WRITE_CHUNK) {
      await Promise.all(
        changed.slice(i, i + WRITE_CHUNK).map(([channel, n]) =>
          this.writeCount(channelKeys(channel).presence, n).catch((err: unknown) => {
            // Written again on the next flush: it no longer matches what was last written.
            flushed.set(channel, UNKNOWN);
            this.failed(err, 'topic presence flush failed');
          }),
        ),
      );
    }
  }

  private writeCount(key: string, count: number): Promise<number> {
    return this.redis.sbPresenceSet(key, this.instance, count, KEY_TTL_MS, ...this.dead);
  }

  private succeeded(): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.info('fleet presence writes succeed again');
  }

  /** Logged once per run of failures, not once per write. */
  private failed(err: unknown, message: string): void {
    if (this.failing) return;
    this.failing = true;
    this.logger.warn({ err }, message);
  }
}

/** Notes `key` as taken to 0 now (moved to the newest end), within MAX_EMPTIED. */
function remember<K>(emptied: Map<K, number>, key: K): void {
  emptied.delete(key);
  emptied.set(key, Date.now());
  if (emptied.size > MAX_EMPTIED) emptied.delete(emptied.keys().next().value as K);
}

/** Drops what was taken to 0 longer than EMPTIED_MEMORY_MS ago (oldest first, so it stops at the first younger one). */
function forgetOld<K>(emptied: Map<K, number>): void {
  const since = Date.now() - EMPTIED_MEMORY_MS;
  for (const [key, atMs] of emptied) {
    if (atMs > since) return;
    emptied.delete(key);
  }
}

const STATES: readonly ReplicaState[] = ['ready', 'unready', 'draining'];

/** An instance key's value → its status; undefined when the key has expired. Malformed → unready, so it blocks rebalancing. */
function parseStatus(instance: string, value: string | null, self: boolean): ReplicaStatus | undefined {
  if (value === null) return undefined;
  let parsed: { r?: unknown; s?: unknown; st?: unknown; t?: unknown } = {};
  try {
    parsed = JSON.parse(value) as typeof parsed;
  } catch {}
  return {
    instance,
    replicaId: typeof parsed.r === 'string' ? parsed.r : replicaOf(instance),
    streams: typeof parsed.s === 'number' && Number.isFinite(parsed.s) ? parsed.s : 0,
    state: STATES.includes(parsed.st as ReplicaState) ? (parsed.st as ReplicaState) : 'unready',
    countedAtMs: typeof parsed.t === 'number' && Number.isFinite(parsed.t) ? parsed.t : undefined,
    self,
  };
}
