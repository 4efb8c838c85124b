// Redis Cluster, one deaf shard: the replica's subscriber connection to ONE master stays up but
// hears nothing. That master announces a TCP proxy's address (`cluster-announce-port`, a real NAT
// setup: no src change, every client reaches it through the proxy), so the proxy can deafen just
// that connection. The shard's probe must notice within its few intervals, that one subscriber is
// rebuilt (the other masters keep theirs), the shard's streams catch up every accepted event from
// history, and the other shards' streams are never held meanwhile.
import t from 'tap';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen, withFleet } from '../helpers/fleet.js';
import { postJson, retryPause } from '../helpers/http.js';
import { startRedisCluster, type ClusterNode } from '../helpers/redis-cluster.js';
import { startReplica } from '../helpers/replica.js';
import type { SseConnection } from '../helpers/sse-client.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

const USERS = 30;
const PROBE_INTERVAL_MS = 500;
const RATE_PER_SECOND = 60;
const DEAFEN_AT_MS = 1500;
/** Publishing goes on this long after the deaf shard is heard again. */
const AFTER_RECOVERY_MS = 1000;
const SUBSCRIBER_NAME = 'switchboard:sub:deaf-r1';

interface Stream {
  user: string;
  shard: ClusterNode;
  connection: SseConnection;
  arrivals: number[];
}

/** The longest time without an arrival inside [from, to] (the window's edges count as arrivals). */
function longestGap(arrivals: number[], from: number, to: number): number {
  const inside = [from, ...arrivals.filter((at) => at > from && at < to).sort((a, b) => a - b), to];
  let gap = 0;
  for (let i = 1; i < inside.length; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!);
  return gap;
}

t.test("Cluster: one shard's subscriber goes deaf; only that shard is detected, rebuilt and caught up; other shards are never held", async (t) => {
  const cluster = await startRedisCluster(t, { extraArgs: ['--cluster-require-full-coverage', 'no'] });
  const masters = await cluster.masters();
  const natted = masters[0]!;
  const proxy = await startTcpProxy(t, () => [{ host: '127.0.0.1', port: natted.port }]);
  await natted.command('CONFIG', 'SET', 'cluster-announce-port', String(proxy.port));
  await waitFor(
    async () => {
      for (const node of cluster.nodes) {
        const entry = (await cluster.view(node)).find((e) => e.id === natted.id);
        if (entry?.port !== proxy.port) throw new Error(`${node.addr} still sees ${natted.addr} at port ${entry?.port}`);
      }
      return true;
    },
    { timeoutMs: 10_000, label: "every node announcing the master at the proxy's address" },
  );
  await cluster.waitForState('ok');

  const replica = await startReplica(t, {
    REPLICA_ID: 'deaf-r1',
    REDIS_CLUSTER_NODES: cluster.seeds.join(','),
    STREAM_TOKEN_SECRET,
    PUBLISH_API_KEY,
    ALLOW_UNSIGNED_CALLBACKS: 'true',
    PROBE_INTERVAL_MS: String(PROBE_INTERVAL_MS),
  });
  const fleet = withFleet(natted, [replica]);

  const streams: Stream[] = [];
  for (let i = 0; i < USERS; i++) {
    const user = `deaf-${i}`;
    const shard = await cluster.masterOfSlot(cluster.slotOf(`sb:{u:${user}}:ch`));
    const connection = await waitOpen(await fleet.stream(replica, user), user);
    const stream: Stream = { user, shard, connection, arrivals: [] };
    connection
      .waitFor(() => {
        while (stream.arrivals.length < connection.events.length) stream.arrivals.push(performance.now());
        return false;
      }, 120_000)
      .catch(() => {});
    streams.push(stream);
  }
  t.teardown(() => streams.forEach((s) => s.connection.close()));
  for (const m of masters) t.ok(streams.filter((s) => s.shard === m).length >= 3, `users on the shard of ${m.addr}`);

  const subscriberIds = async (): Promise<Map<ClusterNode, string>> =>
    new Map(
      await Promise.all(masters.map(async (m) => [m, (await m.clientList()).find((c) => c.name === SUBSCRIBER_NAME)?.id ?? 'none'] as [ClusterNode, string])),
    );
  const idsBefore = await subscriberIds();
  t.ok(
    [...idsBefore.values()].every((id) => id !== 'none'),
    'the replica has its own subscriber on every master',
  );

  const accepted = new Map<string, number[]>(streams.map((s) => [s.user, []]));
  let retried = 0;
  const publishUntilAccepted = async (seq: number): Promise<void> => {
    const user = `deaf-${seq % USERS}`;
    for (let attempt = 0; ; attempt++) {
      const answer = await postJson(`${replica.url}/v1/users/${user}/events`, { id: `seq-${seq}`, data: { seq } }, { bearer: PUBLISH_API_KEY }).catch(
        () => undefined,
      );
      if (answer?.status === 202) break;
      retried++;
      if (attempt >= 100) throw new Error(`publish ${seq} kept failing: ${answer?.status} ${answer?.text}`);
      await retryPause(answer);
    }
    accepted.get(user)!.push(seq);
  };

  let deafenedAt = 0;
  let detectedAt = 0;
  let resubscribedAt = 0;
  let detection: { node?: string; unheardMs?: number } = {};
  const chains = new Map<string, Promise<void>>();
  const started = performance.now();
  for (let seq = 0; performance.now() - started < 20_000; seq++) {
    const now = performance.now();
    if (deafenedAt === 0 && now - started >= DEAFEN_AT_MS) {
      const mark = replica.logMark();
      t.equal(proxy.deafen(SUBSCRIBER_NAME), 1, "exactly one connection made deaf: the replica's subscriber to the proxied master");
      deafenedAt = performance.now();
      void replica
        .waitForLog((e) => e.msg === 'shard subscriber stopped hearing its probe; reconnecting', 15_000, { since: mark })
        .then((e) => {
          detectedAt = performance.now();
          detection = e;
          return replica.waitForLog((l) => l.msg === 'channels resubscribed; catching up from history', 15_000, { since: mark });
        })
        .then(() => {
          resubscribedAt = performance.now();
        })
        .catch(() => {});
    }
    if (resubscribedAt > 0 && now - resubscribedAt >= AFTER_RECOVERY_MS) break;
    const user = `deaf-${seq % USERS}`;
    chains.set(
      user,
      (chains.get(user) ?? Promise.resolve()).then(() => publishUntilAccepted(seq)),
    );
    const wait = started + ((seq + 1) * 1000) / RATE_PER_SECOND - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the publisher's pace
  }
  await Promise.all(chains.values());
  t.ok(detectedAt > 0 && resubscribedAt > 0, 'the deaf shard was detected and its channels resubscribed');
  t.equal(detection.node, `127.0.0.1:${proxy.port}`, 'the shard detected as deaf is the proxied master');

  await waitFor(() => streams.every((s) => s.connection.events.length >= accepted.get(s.user)!.length), {
    timeoutMs: 10_000,
    label: 'every stream has every accepted event',
  });
  for (const s of streams) {
    const seqs = s.connection.events.filter((e) => e.type === 'message').map((e) => JSON.parse(e.data).seq as number);
    t.same(seqs, accepted.get(s.user), `${s.user}: every accepted event once, in order, no reset`);
  }

  const idsAfter = await subscriberIds();
  for (const m of masters) {
    if (m === natted) t.not(idsAfter.get(m), idsBefore.get(m), "the deaf shard's subscriber was rebuilt (a new connection)");
    else t.equal(idsAfter.get(m), idsBefore.get(m), `the subscriber to ${m.addr} was left alone`);
  }

  const end = performance.now();
  const gapOf = (shards: ClusterNode[], from: number): number =>
    longestGap(
      streams.filter((s) => shards.includes(s.shard)).flatMap((s) => s.arrivals),
      from,
      end,
    );
  const baselineMs = longestGap(
    streams.flatMap((s) => s.arrivals),
    started + 500,
    deafenedAt,
  );
  const deafGapMs = gapOf([natted], deafenedAt - 500);
  const otherGapMs = gapOf(
    masters.filter((m) => m !== natted),
    deafenedAt - 500,
  );
  const detectedMs = detectedAt - deafenedAt;
  t.comment(
    `deaf shard (probe every ${PROBE_INTERVAL_MS} ms): detected ${detectedMs.toFixed(0)} ms after deafening (probe unheard for ${detection.unheardMs} ms), ` +
      `channels resubscribed after ${(resubscribedAt - deafenedAt).toFixed(0)} ms; deaf shard's longest delivery gap ${deafGapMs.toFixed(0)} ms; ` +
      `other shards' longest gap ${otherGapMs.toFixed(0)} ms (before deafening: ${baselineMs.toFixed(0)} ms); ${retried} publishes retried`,
  );
  // Deaf once a probe Redis took has been unheard for more than 3 intervals, acted on at the next
  // probe tick (ticks are an interval apart); the first probe after the deafening goes out at the
  // next tick. Timers on a loaded 2-core machine run late by up to a few hundred ms.
  const slackMs = 250;
  t.ok(
    detection.unheardMs !== undefined && detection.unheardMs > PROBE_INTERVAL_MS * 3 && detection.unheardMs <= PROBE_INTERVAL_MS * 4 + slackMs,
    'declared deaf after 3 probe intervals unheard, at the next tick',
  );
  t.ok(
    detectedMs <= PROBE_INTERVAL_MS * 5 + slackMs,
    'detected within 5 intervals of the deafening: up to 1 until a probe goes unheard, 3 unheard, up to 1 to the tick',
  );
  t.ok(otherGapMs < 1000, "the other shards' streams were never held");
});
