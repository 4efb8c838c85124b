// `switchboard doctor` in the other two Redis modes, on real servers: through Sentinel it finds
// the master; on a Cluster it reports the masters and the cluster state; a REDIS_URL that points
// at a Cluster node is named as the mistake it is.
import t from 'tap';
import { CLI_FILE_TIMEOUT_MS, runCli } from '../helpers/cli.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import { startRedisSentinel } from '../helpers/redis-sentinel.js';

t.setTimeout(CLI_FILE_TIMEOUT_MS);

const secrets = { STREAM_TOKEN_SECRET, PUBLISH_API_KEY, ALLOW_UNSIGNED_CALLBACKS: 'true' };

t.test('behind Sentinel: the master the sentinels name', async (t) => {
  const sentinel = await startRedisSentinel(t, { sentinels: 1, quorum: 1 });
  const run = await runCli(['doctor'], { ...secrets, REDIS_SENTINELS: sentinel.sentinels.join(','), REDIS_SENTINEL_NAME: sentinel.name });
  t.equal(run.code, 0, run.stdout + run.stderr);
  t.match(run.stdout, /ok {4}env +valid; Redis sentinel; callbacks UNSIGNED/);
  t.match(run.stdout, new RegExp(`ok {4}redis +sentinel, master "${sentinel.name}" at ${sentinel.sentinels[0]}, role master`));
});

t.test('a Cluster: its masters and state; a REDIS_URL at one of its nodes fails', async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3, replicasPerMaster: 0 });
  const [run, wrongMode] = await Promise.all([
    runCli(['doctor'], { ...secrets, REDIS_CLUSTER_NODES: cluster.seeds.join(',') }),
    runCli(['doctor'], { ...secrets, REDIS_URL: `redis://${cluster.seeds[0]}` }),
  ]);
  t.equal(run.code, 0, run.stdout + run.stderr);
  t.match(run.stdout, /ok {4}redis +cluster, 3 masters, state ok/);
  t.match(run.stdout, /ok {4}clock +clock \d+ ms/);

  t.equal(wrongMode.code, 1);
  t.match(wrongMode.stdout, new RegExp(`FAIL  redis +${cluster.seeds[0]} is a Redis Cluster node: set REDIS_CLUSTER_NODES instead`));
});
