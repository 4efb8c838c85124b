// Presence and the fleet-wide per-user cap (issue #15), checked the same way on every Redis mode:
// one server (test/e2e/fleet-presence.test.ts), Sentinel (test/e2e/sentinel-presence.test.ts) and
// Cluster (test/serial/cluster-presence.test.ts). Each scenario takes a fleet of three real replica
// processes and the names it should use, so a Cluster test can pick users and topics whose keys
// land on the masters it wants.
import type { Test } from 'tap';
import { heartbeatMsFor } from '../../src/fleet/redis-fleet.js';
import { type Endpoint, type Fleet, type FleetRedis, PUBLISH_API_KEY, waitOpen } from './fleet.js';
import { getJson } from './http.js';
import type { Replica } from './replica.js';
import type { SseConnection } from './sse-client.js';
import { waitFor } from './wait-for.js';

/** A replica starts in about a second, but this shared 2-core host under load has taken over 30 s. */
export const REPLICA_START_TIMEOUT_MS = 120_000;

/**
 * How long after Redis is serving again (back, or failed over) the counts must be exact: a
 * replica's connection finds it within its reconnect backoff (at most 1 s), its next heartbeat
 * rewrites the user counts (or rejoins under a new instance id when its key is gone), the next
 * topic flush (every 500 ms) the topic counts; plus 2 s for a loaded 2-core machine.
 */
export const recoveryBoundMs = (presenceTtlMs: number): number => 1000 + heartbeatMsFor(presenceTtlMs) + 500 + 2000;

export interface UserPresence {
  userId: string;
  streams: number;
  replicas: Record<string, number>;
}

export interface PresenceSettings {
  /** PRESENCE_TTL_MS the replicas run with. */
  presenceTtlMs: number;
  /** MAX_CONNECTIONS_PER_USER the replicas run with. */
  cap: number;
}

/**
 * A Redis failover, driven by the test: `kill` kills the master; `failedOver` resolves once a
 * replica serves in its place (Sentinel, Cluster), or once the one server is back (restarted).
 */
export interface RedisFailover {
  /** What is killed, for the report. */
  label: string;
  kill(): Promise<void>;
  failedOver(): Promise<void>;
}

const sorted = (record: Record<string, number>): [string, number][] => Object.entries(record).sort(([a], [b]) => a.localeCompare(b));

/**
 * The presence calls and scenarios for one fleet. The replicas are taken in order: r1, r2, r3;
 * `killReplica` kills r3, so it runs last.
 */
export class PresenceChecks {
  constructor(
    readonly fleet: Fleet<Replica, FleetRedis>,
    readonly settings: PresenceSettings,
  ) {}

  private get replicas(): [Replica, Replica, Replica] {
    const [r1, r2, r3] = this.fleet.replicas;
    if (r1 === undefined || r2 === undefined || r3 === undefined) throw new Error('the presence checks need three replicas');
    return [r1, r2, r3];
  }

  /** Opens a stream and waits for its first comment; closed at the test's teardown. */
  async open(t: Test, replica: Endpoint, userId: string, topics?: string[]): Promise<SseConnection> {
    const stream = await this.fleet.stream(replica, userId, topics ? { topics } : {});
    t.teardown(() => stream.close());
    return waitOpen(stream, `${userId} on ${replica.replicaId}`);
  }

  async userPresence(via: Endpoint, userId: string): Promise<UserPresence> {
    const answer = await getJson(`${via.url}/v1/users/${userId}/presence`, { bearer: PUBLISH_API_KEY });
    if (answer.status !== 200) throw new Error(`presence of ${userId}: ${answer.status} ${answer.text}`);
    return answer.json;
  }

  async topicPresence(t: Test, via: Endpoint, topic: string): Promise<number> {
    const answer = await getJson(`${via.url}/v1/topics/${topic}/presence`, { bearer: PUBLISH_API_KEY });
    if (answer.status !== 200) throw new Error(`presence of topic ${topic}: ${answer.status} ${answer.text}`);
    t.same(Object.keys(answer.json).sort(), ['streams', 'topic']);
    return answer.json.streams;
  }

  /** Waits until every running replica answers `expected` for the user (each within `timeoutMs`). */
  async untilUserPresence(userId: string, expected: { streams: number; replicas: Record<string, number> }, timeoutMs = 5000): Promise<void> {
    for (const via of this.fleet.replicas.filter((r) => r.running)) {
      await waitFor(
        async () => {
          const got = await this.userPresence(via, userId);
          const exact =
            got.userId === userId && got.streams === expected.streams && JSON.stringify(sorted(got.replicas)) === JSON.stringify(sorted(expected.replicas));
          // Thrown, not returned false: a timeout then says what was seen last.
          if (!exact) throw new Error(`presence of ${userId} is ${JSON.stringify(got)}`);
          return true;
        },
        { timeoutMs, label: `presence of ${userId} via ${via.replicaId} is ${JSON.stringify(expected)}` },
      );
    }
  }

  async untilTopicPresence(t: Test, topic: string, streams: number, timeoutMs = 5000): Promise<void> {
    for (const via of this.fleet.replicas.filter((r) => r.running)) {
      await waitFor(
        async () => {
          const got = await this.topicPresence(t, via, topic);
          if (got !== streams) throw new Error(`presence of topic ${topic} is ${got}`);
          return true;
        },
        {
          timeoutMs,
          label: `presence of topic ${topic} via ${via.replicaId} is ${streams}`,
        },
      );
    }
  }

  /** Opens streams on `replica` until one is let in (a slot freed a moment ago); returns it open. */
  async openOnceFree(t: Test, replica: Endpoint, userId: string, timeoutMs: number, label: string): Promise<SseConnection> {
    const stream = await waitFor(
      async () => {
        const attempt = await this.fleet.stream(replica, userId);
        if (attempt.status === 200) return attempt;
        attempt.close();
        return undefined;
      },
      { timeoutMs, label },
    );
    t.teardown(() => stream.close());
    return waitOpen(stream, label);
  }

  /** Every replica refuses one more stream of the user with 429 `too_many_streams`. */
  async refusedEverywhere(t: Test, userId: string, what: string): Promise<void> {
    for (const replica of this.fleet.replicas.filter((r) => r.running)) {
      const refused = await this.fleet.stream(replica, userId);
      t.teardown(() => refused.close());
      t.equal(refused.status, 429, `${what} on ${replica.replicaId} is refused`);
      t.match(refused.body, /too_many_streams/);
    }
  }

  /**
   * Streams of three users (and two topics) over three replicas, then closes: every replica
   * answers the exact counts. `users` are [the one with streams everywhere, one on r3, one on r1].
   */
  async exactCounts(t: Test, names: { users: [string, string, string]; topics: [string, string]; nobody: string }): Promise<void> {
    const [r1, r2, r3] = this.replicas;
    const [alice, bob, carol] = names.users;
    const [news, sport] = names.topics;
    const streams = [
      await this.open(t, r1, alice, [news]),
      await this.open(t, r1, alice),
      await this.open(t, r2, alice, [news]),
      await this.open(t, r2, alice),
      await this.open(t, r2, alice),
      await this.open(t, r3, alice),
    ];
    const others = [await this.open(t, r3, bob, [news]), await this.open(t, r1, carol, [news, sport])];
    await this.untilUserPresence(alice, { streams: 6, replicas: { [r1.replicaId]: 2, [r2.replicaId]: 3, [r3.replicaId]: 1 } });
    await this.untilUserPresence(bob, { streams: 1, replicas: { [r3.replicaId]: 1 } });
    await this.untilUserPresence(names.nobody, { streams: 0, replicas: {} });
    await this.untilTopicPresence(t, news, 4);
    await this.untilTopicPresence(t, sport, 1);

    const metrics = await waitFor(
      async () => {
        const text = (await getJson(`${r1.url}/metrics`)).text;
        const lines = this.fleet.replicas.map((r) => new RegExp(`^switchboard_fleet_streams\\{replica="${r.replicaId}"\\} \\d+$`, 'm').exec(text));
        return lines.every(Boolean) ? text : undefined;
      },
      { label: 'switchboard_fleet_streams names every replica' },
    );
    t.match(metrics, /# TYPE switchboard_fleet_streams gauge/);

    // Close a stream on each replica, one of them on the topic.
    for (const stream of [streams[0], streams[3], streams[5]]) stream?.close();
    await this.untilUserPresence(alice, { streams: 3, replicas: { [r1.replicaId]: 1, [r2.replicaId]: 2 } });
    await this.untilTopicPresence(t, news, 3);

    for (const stream of [...streams, ...others]) stream.close();
    await this.untilUserPresence(alice, { streams: 0, replicas: {} });
    await this.untilTopicPresence(t, news, 0);
    await this.untilTopicPresence(t, sport, 0);
  }

  /** `cap` streams of one user over three replicas: the next gets 429 on any replica, and a close frees a slot. */
  async capAcrossReplicas(t: Test, userId: string): Promise<void> {
    const { cap } = this.settings;
    const [r1, r2, r3] = this.replicas;
    const streams: SseConnection[] = [];
    for (let i = 0; i < cap; i++) streams.push(await this.open(t, this.replicas[i % 3] as Endpoint, userId));
    await this.untilUserPresence(userId, { streams: cap, replicas: spread(cap, [r1, r2, r3]) });
    await this.refusedEverywhere(t, userId, `stream ${cap + 1}`);
    streams[0]?.close();
    // The slot comes back as soon as the close reached the replica: the next open takes it.
    await this.openOnceFree(t, r3, userId, 5000, 'a freed slot is taken by a new stream');
    const refused = await this.fleet.stream(r1, userId);
    t.teardown(() => refused.close());
    t.equal(refused.status, 429, 'and then the cap is full again');
  }

  /**
   * kill -9 of r3 while it holds 10 of the user's streams (on `topic` too), r1 the other 6: its
   * streams leave every count within PRESENCE_TTL_MS, and its slots of the cap come back.
   */
  async killReplica(t: Test, userId: string, topic: string): Promise<void> {
    const { presenceTtlMs } = this.settings;
    const [r1, r2, dying] = this.replicas;
    for (let i = 0; i < 10; i++) await this.open(t, dying, userId, [topic]);
    for (let i = 0; i < 6; i++) await this.open(t, r1, userId, [topic]);
    await this.untilUserPresence(userId, { streams: 16, replicas: { [r1.replicaId]: 6, [dying.replicaId]: 10 } });
    await this.untilTopicPresence(t, topic, 16);
    const refused = await this.fleet.stream(r2, userId);
    t.teardown(() => refused.close());
    t.equal(refused.status, 429, 'the cap is full before the kill');

    await dying.kill('SIGKILL');
    const killedAt = Date.now();
    // The bound: the dead replica's key expires at most PRESENCE_TTL_MS after its last heartbeat;
    // the readers ask Redis directly. Plus the time a request takes on a loaded machine.
    const bound = presenceTtlMs + 2000;
    await this.untilUserPresence(userId, { streams: 6, replicas: { [r1.replicaId]: 6 } }, bound);
    await this.untilTopicPresence(t, topic, 6, bound);
    t.comment(`the killed replica's streams left the counts ${Date.now() - killedAt} ms after the kill`);

    // The cap's slots come back once a surviving heartbeat names the replica dead: within one more beat.
    await this.openOnceFree(t, r2, userId, bound + presenceTtlMs, "the dead replica's slots of the cap are free again");
    t.comment(`its slots of the cap were free ${Date.now() - killedAt} ms after the kill`);
    await this.untilUserPresence(userId, { streams: 7, replicas: { [r1.replicaId]: 6, [r2.replicaId]: 1 } });
  }

  /**
   * The user holds the whole cap over three replicas, all on `topic`; Redis's master is killed,
   * and while no master answers, one stream on each replica closes (each replica's release fails).
   * Once a replica of Redis serves in its place, the counts are exact again within `boundMs` of
   * that moment, and the cap has exactly the three closed slots free: none leaked, none doubled.
   */
  async acrossRedisFailover(t: Test, userId: string, topic: string, failover: RedisFailover, boundMs: number): Promise<void> {
    const { cap } = this.settings;
    const replicas = this.replicas;
    const [r1, r2, r3] = replicas;
    const streams: SseConnection[] = [];
    for (let i = 0; i < cap; i++) streams.push(await this.open(t, replicas[i % 3] as Endpoint, userId, [topic]));
    const before = spread(cap, replicas);
    await this.untilUserPresence(userId, { streams: cap, replicas: before });
    await this.untilTopicPresence(t, topic, cap);
    const marks = replicas.map((r) => r.logMark());

    const killedAt = Date.now();
    await failover.kill();
    for (const stream of streams.slice(0, 3)) stream.close();
    await failover.failedOver();
    const failedOverAt = Date.now();
    const after = {
      [r1.replicaId]: (before[r1.replicaId] ?? 0) - 1,
      [r2.replicaId]: (before[r2.replicaId] ?? 0) - 1,
      [r3.replicaId]: (before[r3.replicaId] ?? 0) - 1,
    };
    await this.untilUserPresence(userId, { streams: cap - 3, replicas: after }, boundMs);
    await this.untilTopicPresence(t, topic, cap - 3, boundMs);
    const exactMs = Date.now() - failedOverAt;
    const rejoined = replicas.filter((r, i) => r.logs.slice(marks[i]).some((line) => line.includes('rejoining under a new instance id')));
    t.comment(
      `${failover.label}: failed over ${failedOverAt - killedAt} ms after the kill; counts exact again ${exactMs} ms after that ` +
        `(${Date.now() - killedAt} ms after the kill); replicas that rejoined under a new instance id: ${rejoined.map((r) => r.replicaId).join(', ') || 'none'}`,
    );
    t.ok(exactMs <= boundMs, `the counts were exact again within ${boundMs} ms of the failover (${exactMs} ms)`);

    // The rebalancer's view (switchboard_fleet_streams, from the heartbeats): every replica once,
    // with the streams it holds; a replica that rejoined under a new id is not counted twice.
    const own = Object.fromEntries(await Promise.all(replicas.map(async (r) => [r.replicaId, await openStreams(r)] as const)));
    for (const via of replicas) {
      await waitFor(async () => JSON.stringify(sorted(await fleetView(via))) === JSON.stringify(sorted(own)), {
        timeoutMs: 5000,
        label: `the fleet as ${via.replicaId} sees it is ${JSON.stringify(own)}`,
      });
    }

    // Every replica takes new streams again once it is ready (its subscriber follows the new master).
    for (const replica of replicas) {
      await waitFor(async () => (await getJson(`${replica.url}/readyz`)).status === 200, { timeoutMs: 15_000, label: `${replica.replicaId} ready` });
    }
    for (const replica of replicas) await this.openOnceFree(t, replica, userId, 5000, `a slot freed during the failover, on ${replica.replicaId}`);
    await this.untilUserPresence(userId, { streams: cap, replicas: before });
    await this.refusedEverywhere(t, userId, `stream ${cap + 1} after the failover`);
  }
}

/** switchboard_fleet_streams as `via` exports it: replica id → streams, as its last heartbeat saw the fleet. */
async function fleetView(via: Endpoint): Promise<Record<string, number>> {
  const text = (await getJson(`${via.url}/metrics`)).text;
  const view: Record<string, number> = {};
  for (const [, replica, streams] of text.matchAll(/^switchboard_fleet_streams\{replica="([^"]+)"\} (\d+)$/gm)) view[replica as string] = Number(streams);
  return view;
}

/** switchboard_open_streams of one replica: the streams it holds itself. */
async function openStreams(replica: Endpoint): Promise<number> {
  const line = /^switchboard_open_streams (\d+)$/m.exec((await getJson(`${replica.url}/metrics`)).text);
  if (line === null) throw new Error(`${replica.replicaId} exports no switchboard_open_streams`);
  return Number(line[1]);
}

/** Per replica id, how many of `count` streams opened round-robin over `replicas` it holds. */
function spread(count: number, replicas: readonly Endpoint[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const id = (replicas[i % replicas.length] as Endpoint).replicaId;
    out[id] = (out[id] ?? 0) + 1;
  }
  return out;
}
