// REDIS_WAIT_REPLICAS=1: a publish is answered 202 only once a Redis replica holds it. With the
// replica gone, publishes are answered 503 (with Retry-After) within the WAIT bound, never 2xx;
// with it back and in sync, 202 again.
import t from 'tap';
import { REPLICATION_WAIT_TIMEOUT_MS } from '../../src/backplane/replication-wait.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { postJson } from '../helpers/http.js';
import { redisCommand, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { startReplica } from '../helpers/replica.js';
import { waitFor } from '../helpers/wait-for.js';

/** The replication WAIT bound (src/backplane/replication-wait.ts) plus the request's own time. */
const REFUSED_WITHIN_MS = REPLICATION_WAIT_TIMEOUT_MS + 750;

async function inSync(replica: RedisServer): Promise<void> {
  await waitFor(async () => /master_link_status:up/.test(String(await redisCommand(replica.port, ['INFO', 'replication']))), {
    timeoutMs: 10_000,
    label: 'the Redis replica in sync',
  });
}

t.test('with REDIS_WAIT_REPLICAS=1, 202 means a replica holds the event; without one, 503', async (t) => {
  const master = await startRedis(t);
  const standby = await startRedis(t, { extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
  await inSync(standby);
  const replica = await startReplica(t, {
    REDIS_URL: master.url,
    REDIS_WAIT_REPLICAS: '1',
    STREAM_TOKEN_SECRET,
    PUBLISH_API_KEY,
    ALLOW_UNSIGNED_CALLBACKS: 'true',
  });
  const publish = (n: number) => postJson(`${replica.url}/v1/users/durable/events`, { data: { n }, id: `n-${n}` }, { bearer: PUBLISH_API_KEY });

  const first = await publish(1);
  t.equal(first.status, 202, 'acknowledged by the replica');
  const held = String(await redisCommand(standby.port, ['XLEN', 'sb:{u:durable}:hist']));
  t.equal(held, '1', 'and the Redis replica holds it');

  await standby.kill('SIGKILL');
  const started = performance.now();
  const refused = await publish(2);
  const tookMs = performance.now() - started;
  t.equal(refused.status, 503, 'no replica to acknowledge: 503, never a 2xx');
  t.equal(refused.json?.code, 'backplane_unavailable');
  t.ok(refused.headers['retry-after'], 'with Retry-After');
  t.ok(tookMs < REFUSED_WITHIN_MS, `answered within the WAIT bound (${tookMs.toFixed(0)} ms)`);

  await standby.restart();
  await inSync(standby);
  await waitFor(async () => (await publish(3)).status === 202, { timeoutMs: 10_000, label: 'a publish acknowledged again' });
  t.pass('acknowledged again once a replica is back in sync');
});
