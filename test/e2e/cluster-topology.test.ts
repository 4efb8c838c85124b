// Redis Cluster topology changes under a live ClusterBackplane: a manual CLUSTER FAILOVER and a
// slot migration. Only the channels whose owner changed are reported lost and then resubscribed
// (confirmed on the new owner), soon after the change; channels on other shards are untouched.
import t from 'tap';
import { pino } from 'pino';
import type { ChannelMessage } from '../../src/backplane/backplane.js';
import { ClusterBackplane } from '../../src/backplane/cluster-backplane.js';
import { createClusterConnections } from '../../src/backplane/redis-connections.js';
import { userChannel, type ChannelName } from '../../src/backplane/redis-keys.js';
import { ZERO_POSITION } from '../../src/history/cursor.js';
import { clusterSettings, startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import type { TeardownHost } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait-for.js';

const silent = pino({ level: 'silent' });

async function backplaneOn(t: TeardownHost, cluster: RedisCluster) {
  const connections = createClusterConnections(clusterSettings(cluster), 'topology-test', silent);
  const backplane = new ClusterBackplane(connections, { historyMaxLen: 1000, historyTtlSeconds: 60, replicaId: 'topology-test', probeIntervalMs: 500, logger: silent });
  t.teardown(async () => {
    await backplane.close();
    connections.commands.disconnect();
  });
  await backplane.start();
  const lost: { at: number; channels: readonly ChannelName[] }[] = [];
  const back: { at: number; channels: readonly ChannelName[] }[] = [];
  const received: ChannelMessage[] = [];
  backplane.onSubscriberLost((channels) => lost.push({ at: performance.now(), channels: channels ?? [] }));
  backplane.onResubscribed((channels) => back.push({ at: performance.now(), channels: channels ?? [] }));
  backplane.onMessage((message) => received.push(message));
  return { backplane, lost, back, received };
}

const publish = (backplane: ClusterBackplane, channel: ChannelName, data: unknown) =>
  backplane.publish({ channel, header: { t: 'message', a: Date.now() }, dataJson: JSON.stringify(data) });

t.test('manual CLUSTER FAILOVER: only that shard\'s channels are lost and resubscribed, within about a second', async (t) => {
  const cluster = await startRedisCluster(t);
  const { backplane, lost, back, received } = await backplaneOn(t, cluster);
  const channels = Array.from({ length: 30 }, (_, i) => userChannel(`fo-${i}`));
  await backplane.subscribe(channels);
  const [master] = await cluster.masters();
  const [replica] = await cluster.replicasOf(master!);
  const owned = new Set<ChannelName>();
  for (const channel of channels) if ((await cluster.masterOfSlot(cluster.slotOf(channel))) === master) owned.add(channel);
  t.ok(owned.size > 0 && owned.size < channels.length, `${owned.size} of ${channels.length} channels on the failed-over shard`);

  const started = performance.now();
  const { ms } = await cluster.failover(replica!);
  await waitFor(() => [...owned].every((c) => back.some((b) => b.channels.includes(c))), { timeoutMs: 5000, label: 'the shard\'s channels resubscribed' });
  const lostChannels = new Set(lost.flatMap((l) => l.channels));
  t.same([...lostChannels].sort(), [...owned].sort(), 'exactly the failed-over shard\'s channels were reported lost');
  const backAt = Math.max(...back.map((b) => b.at)) - started;
  t.comment(`CLUSTER FAILOVER settled in ${ms} ms; channels back ${backAt.toFixed(0)} ms after the command`);
  t.ok(backAt < ms + 1500, 'resubscribed within about a second of the failover settling');

  for (const [i, channel] of channels.entries()) t.equal((await publish(backplane, channel, i)).receivers, 1, `${channel}: heard on its owner after the failover`);
  await waitFor(() => received.length >= channels.length, { label: 'every channel heard' });
  t.ok(backplane.isReady(), 'ready');
});

t.test('slot migration: only the moved slot\'s channel is lost and resubscribed on its new master', async (t) => {
  const cluster = await startRedisCluster(t);
  const { backplane, lost, back, received } = await backplaneOn(t, cluster);
  const channels = Array.from({ length: 12 }, (_, i) => userChannel(`mig-${i}`));
  await backplane.subscribe(channels);
  const moving = channels[0]!;
  const slot = cluster.slotOf(moving);
  const from = await cluster.masterOfSlot(slot);
  const to = (await cluster.masters()).find((m) => m !== from)!;
  const sameSlot = channels.filter((c) => cluster.slotOf(c) === slot);
  await publish(backplane, moving, 'before');
  await cluster.migrateSlot(slot, to);
  await waitFor(() => back.some((b) => b.channels.includes(moving)), { timeoutMs: 5000, label: 'the moved channel resubscribed' });
  t.same([...new Set(lost.flatMap((l) => l.channels))].sort(), sameSlot.sort(), 'only the moved slot\'s channels were reported lost');
  const after = await publish(backplane, moving, 'after');
  t.equal(after.receivers, 1, 'heard on the new master');
  await waitFor(() => received.some((m) => m.dataJson === '"after"'), { label: 'the message after the move' });
  const history = await backplane.readHistory(moving, ZERO_POSITION, 10);
  t.same(history.entries.map((m) => m.dataJson), ['"before"', '"after"'], 'history moved with the slot');
});
