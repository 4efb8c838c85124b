// Proves the Redis Cluster and Sentinel helpers on real redis-server processes:
// the cluster forms, routes by slot, fails over (kill -9 and manual), migrates
// a slot with its keys; the sentinels replace a killed master; nothing is left
// running afterwards. Measured times are printed as comments (t.comment).
import t from 'tap';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { startRedisCluster, slotOf, type RedisCluster } from './redis-cluster.js';
import { isPush, openRespConnection, redisCommand, redisPipeline, startRedis } from './redis-server.js';
import { startRedisSentinel } from './redis-sentinel.js';
import { waitFor } from './wait-for.js';

/** Pids of processes whose command line mentions `text` (Linux /proc). */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(text)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Keys for the slot test: random ones, hash tags, and the edge cases of the hash-tag rule. */
function sampleKeys(): string[] {
  const keys = [
    'sb:{u:alice}:ch',
    'sb:{u:alice}:hist',
    'sb:{u:bob}:ch',
    'foo',
    'somekey',
    'foo{hash_tag}',
    '123456789',
    '',
    '{}',
    '{}x',
    'x{}',
    '{',
    '}',
    '}{',
    '{a',
    'a}',
    '{a}',
    '{{a}}',
    'x{a}y{b}z',
    'x{}{a}',
    '{a}{b}',
    'a{b{c}d}',
    'é',
    'sb:{ü:ω}:ch',
    '🙂{🙂}',
    'k'.repeat(1000),
  ];
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = 'abcxyz019:{}-_é';
  for (let i = 0; i < 250; i++) {
    let k = '';
    for (let len = 1 + rand(24); len > 0; len--) k += alphabet[rand(alphabet.length)];
    keys.push(k);
  }
  return keys;
}

t.test('redis cluster helper', async (t) => {
  let dir = '';
  let pids: number[] = [];
  await t.test('on a 3-master, 3-replica cluster', async (t) => {
    const upStarted = Date.now();
    const cluster: RedisCluster = await startRedisCluster(t);
    t.comment(`cluster up (6 nodes, state ok, replicas linked): ${Date.now() - upStarted} ms`);
    dir = cluster.dir;
    pids = cluster.nodes.map((n) => n.pid as number);

    t.equal(cluster.nodes.length, 6);
    t.same(
      cluster.seeds,
      cluster.nodes.map((n) => `127.0.0.1:${n.port}`),
    );
    const ports = cluster.nodes.flatMap((n) => [n.port, n.busPort]);
    t.equal(new Set(ports).size, 12, 'every node has its own port and bus port');
    t.notOk(ports.includes(6379));
    const masters = await cluster.masters();
    t.equal(masters.length, 3, '3 masters');
    for (const m of masters) t.equal((await cluster.replicasOf(m)).length, 1, `master ${m.addr} has one replica`);
    for (const n of cluster.nodes) t.match(await n.cli('CLUSTER', 'INFO'), /cluster_state:ok/, `${n.addr} reports ok`);
    t.equal(await cluster.masterOfSlot(0), masters[0]);
    t.equal(await cluster.masterOfSlot(16383), masters[2]);

    await t.test('slotOf agrees with CLUSTER KEYSLOT', async (t) => {
      const keys = sampleKeys();
      const live = await redisPipeline(
        cluster.nodes[0]!.port,
        keys.map((k) => ['CLUSTER', 'KEYSLOT', k]),
      );
      const wrong = keys.filter((k, i) => slotOf(k) !== live[i]);
      t.same(wrong, [], `all ${keys.length} keys agree`);
      t.equal(cluster.slotOf('sb:{u:alice}:ch'), cluster.slotOf('sb:{u:alice}:hist'), 'a hash tag decides the slot');
      t.equal(slotOf(Buffer.from('foo')), slotOf('foo'), 'Buffer keys too');
    });

    await t.test('SSUBSCRIBE on the owner hears an SPUBLISH sent through the harness', async (t) => {
      const ch = 'sb:{u:alice}:ch';
      const owner = await cluster.masterOfSlot(slotOf(ch));
      const sub = await openRespConnection(t, owner.port);
      sub.send('SSUBSCRIBE', ch);
      await sub.next((v) => isPush(v, 'ssubscribe') && v[1] === ch, 2000, 'ssubscribe confirmation');
      t.equal(await cluster.call(ch, 'SPUBLISH', ch, 'hello'), 1, 'one subscriber heard it');
      t.same(await sub.next((v) => isPush(v, 'smessage'), 2000, 'smessage'), ['smessage', ch, 'hello']);
      const other = cluster.nodes.find((n) => n !== owner && cluster.nodes.indexOf(n) < 3)!;
      await t.rejects(redisCommand(other.port, ['SPUBLISH', ch, 'x']), /MOVED/, 'another master redirects');
    });

    await t.test('migrateSlot moves the keys and the ownership', async (t) => {
      const slot = slotOf('sb:{mig}:k');
      const from = await cluster.masterOfSlot(slot);
      const to = (await cluster.masters()).find((m) => m !== from)!;
      const keys = Array.from({ length: 250 }, (_, i) => `sb:{mig}:k${i}`);
      await redisPipeline(
        from.port,
        keys.map((k, i) => ['SET', k, `v${i}`]),
      );
      const sub = await openRespConnection(t, from.port);
      sub.send('SSUBSCRIBE', 'sb:{mig}:ch');
      await sub.next((v) => isPush(v, 'ssubscribe'), 2000, 'ssubscribe on the source');

      const res = await cluster.migrateSlot(slot, to, { batchSize: 100 });
      t.comment(`migrateSlot of ${res.keys} keys: ${res.ms} ms`);
      t.equal(res.keys, 250, 'all keys moved');
      t.equal(await cluster.masterOfSlot(slot), to, 'the target serves the slot');
      t.equal(await to.command('CLUSTER', 'COUNTKEYSINSLOT', slot), 250);
      t.equal(await from.command('CLUSTER', 'COUNTKEYSINSLOT', slot), 0);
      t.equal(await cluster.call('sb:{mig}:k7', 'GET', 'sb:{mig}:k7'), 'v7', 'a moved key reads back');
      await t.rejects(from.command('GET', 'sb:{mig}:k7'), /MOVED/, 'the source redirects');
      await sub.next((v) => isPush(v, 'sunsubscribe'), 2000, 'sunsubscribe pushed to the source subscriber');
      t.pass('the source told its sharded subscriber to go away');
    });

    await t.test('a paused replica is not live; resumed, it is again', async (t) => {
      const master = (await cluster.masters())[1]!;
      const [replica] = await cluster.replicasOf(master);
      replica!.pause();
      t.notOk(replica!.alive);
      t.same(await cluster.replicasOf(master), [], 'replicasOf lists live replicas only');
      await t.rejects(redisCommand(replica!.port, ['PING'], { timeoutMs: 200 }), /timed out/);
      replica!.resume();
      await cluster.waitForState('ok');
      t.same(await cluster.replicasOf(master), [replica], 'back once resumed');
    });

    await t.test('manual failover', async (t) => {
      const master = (await cluster.masters())[1]!;
      const [replica] = await cluster.replicasOf(master);
      const res = await cluster.failover(replica!);
      t.comment(`manual CLUSTER FAILOVER: ${res.ms} ms`);
      t.ok((await cluster.masters()).includes(replica!), 'the replica is a master');
      t.same(await cluster.replicasOf(replica!), [master], 'the old master replicates it');
    });

    await t.test('kill -9 of a master', async (t) => {
      const master = (await cluster.masters())[0]!;
      const [replica] = await cluster.replicasOf(master);
      const slot = 0;
      await cluster.killMaster(master);
      t.notOk(master.running);
      const res = await cluster.waitForFailover();
      t.comment(`failover after kill -9 (node timeout ${cluster.nodeTimeoutMs} ms): ${res.ms} ms`);
      t.same(res.promoted, [replica], 'its replica took over');
      t.equal(await cluster.masterOfSlot(slot), replica);
      t.equal((await cluster.masters()).length, 3);
      const key = 'sb:{after}:k';
      t.equal(await cluster.call(key, 'SET', key, 'x'), 'OK', 'writes work');

      const restarted = Date.now();
      await master.restart();
      await cluster.waitForState('ok');
      t.comment(`killed master restarted and settled as a replica: ${Date.now() - restarted} ms`);
      t.same(await cluster.replicasOf(replica!), [master], 'the old master rejoined as a replica of its successor');
    });
  });
  t.notOk(existsSync(dir), 'temp dir removed');
  t.same(await processesMentioning(dir), [], 'no process mentions the temp dir');
  t.same(pids.filter(pidAlive), [], 'every node process is gone');
});

t.test('openRespConnection: replies in order, next() matches each once, a close rejects waiters', async (t) => {
  const redis = await startRedis(t);
  const conn = await openRespConnection(t, redis.port);
  conn.send('SUBSCRIBE', 'a');
  conn.send('SUBSCRIBE', 'b');
  t.same(await conn.next((v) => isPush(v, 'subscribe'), 2000, 'first'), ['subscribe', 'a', 1]);
  t.same(await conn.next((v) => isPush(v, 'subscribe'), 2000, 'second'), ['subscribe', 'b', 2]);
  const rejected = t.rejects(
    conn.next((v) => isPush(v, 'message'), 2000, 'a message that never comes'),
    /a message that never comes: connection to port \d+ closed first/,
  );
  await redis.kill();
  await rejected;
  t.ok(conn.closed);
});

t.test('redis cluster helper with a password', async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3, replicasPerMaster: 0, password: 'cluster-pw' });
  const [a, b] = await cluster.masters();
  await t.rejects(redisCommand(a!.port, ['PING']), /NOAUTH/, 'nodes require the password');
  await t.rejects(redisCommand(a!.port, ['PING'], { password: 'wrong' }), { name: 'RedisReplyError', message: /WRONGPASS/ });
  await t.rejects(openRespConnection(t, a!.port, { password: 'wrong' }), /WRONGPASS/);
  const key = 'sb:{pw}:k';
  t.equal(await cluster.call(key, 'SET', key, 'v'), 'OK', 'call authenticates');
  const slot = slotOf(key);
  const to = (await cluster.masterOfSlot(slot)) === a ? b! : a!;
  t.equal((await cluster.migrateSlot(slot, to)).keys, 1, 'MIGRATE authenticates to the target');
  t.equal(await to.command('GET', key), 'v');
});

t.test('redis sentinel helper', async (t) => {
  let dir = '';
  let pids: number[] = [];
  await t.test('master + replica + 3 sentinels, with passwords', async (t) => {
    const upStarted = Date.now();
    const set = await startRedisSentinel(t, { password: 'data-pw', sentinelPassword: 'sentinel-pw' });
    t.comment(`sentinel set up (settled, sentinels know each other): ${Date.now() - upStarted} ms`);
    dir = set.dir;
    pids = [...set.nodes, ...set.sentinelNodes].map((n) => n.pid as number);

    t.equal(set.name, 'switchboard');
    t.same(
      set.sentinels,
      set.sentinelNodes.map((s) => `127.0.0.1:${s.port}`),
    );
    t.equal(set.sentinels.length, 3);
    const [first, second] = set.nodes;
    t.equal(await set.master(), first, 'the sentinels name the first data node');
    await t.rejects(redisCommand(first!.port, ['PING']), /NOAUTH/, 'data nodes require the password');
    await t.rejects(redisCommand(set.sentinelNodes[0]!.port, ['PING']), /NOAUTH/, 'sentinels require theirs');
    t.equal(await first!.command('SET', 'k', 'v'), 'OK', 'the handles authenticate');
    await waitFor(async () => (await second!.command('GET', 'k')) === 'v', { label: 'replicated write' });

    const killed = await set.killMaster();
    t.equal(killed, first);
    const res = await set.waitForFailover();
    t.comment(`sentinel failover after kill -9 (down-after 2000 ms): ${res.ms} ms`);
    t.equal(res.master, second, 'the replica was promoted');
    for (const s of set.sentinelNodes) {
      t.same(await s.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', set.name), ['127.0.0.1', String(second!.port)], `sentinel ${s.port} names it`);
    }
    t.equal(await second!.command('SET', 'k2', 'v2'), 'OK', 'it takes writes');
    t.equal(await second!.command('GET', 'k'), 'v', 'with the data written before the kill');

    const restarted = Date.now();
    await set.restartAsReplica(first!);
    t.comment(`killed master restarted as a replica, settled: ${Date.now() - restarted} ms`);
    t.equal(await set.master(), second);
    t.equal(await first!.command('GET', 'k2'), 'v2', 'it replicates the new master');
  });
  t.notOk(existsSync(dir), 'temp dir removed');
  t.same(await processesMentioning(dir), [], 'no process mentions the temp dir');
  t.same(pids.filter(pidAlive), [], 'every process is gone');
});
