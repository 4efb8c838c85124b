// `switchboard doctor` on its own (no replicas): an environment a replica would refuse, Redis that
// cannot be reached or is not a master — each fails, exits 1 and says why. And the clock rule.
import t from 'tap';
import { clockFinding, MAX_CLOCK_SKEW_MS, skewMs } from '../../src/cli/findings.js';
import { CLI_FILE_TIMEOUT_MS, runCli } from '../helpers/cli.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { startRedis } from '../helpers/redis-server.js';

t.setTimeout(CLI_FILE_TIMEOUT_MS);

const CALLBACK_SECRET = Buffer.from('doctor-env-callback-secret-0123456789').toString('base64');
const redis = await startRedis(t);
const shared = { REDIS_URL: redis.url, STREAM_TOKEN_SECRET, PUBLISH_API_KEY, CALLBACK_SECRET };

t.test('Redis that cannot be reached, or is not a master, fails', async (t) => {
  const follower = await startRedis(t, { extraArgs: ['--replicaof', '127.0.0.1', String(redis.port)] });
  const [unreachable, notMaster] = await Promise.all([
    runCli(['doctor'], { ...shared, REDIS_URL: `redis://127.0.0.1:${await freePort()}` }),
    runCli(['doctor'], { ...shared, REDIS_URL: follower.url }),
  ]);
  t.equal(unreachable.code, 1);
  t.match(unreachable.stdout, /FAIL {2}redis +127\.0\.0\.1:\d+ unreachable/);
  t.equal(notMaster.code, 1);
  t.match(notMaster.stdout, new RegExp(`FAIL  redis +127\\.0\\.0\\.1:${follower.port} is a slave, not a master`));
});

t.test('an invalid environment fails the env check with the replica boot message', async (t) => {
  const [run, withoutSecret] = await Promise.all([
    runCli(['doctor'], { ...shared, HEARTBEAT_MS: 'often' }),
    runCli(['doctor'], { REDIS_URL: redis.url, PUBLISH_API_KEY, CALLBACK_SECRET }),
  ]);
  t.equal(run.code, 1);
  t.match(run.stdout, /FAIL {2}env +invalid configuration: .*HEARTBEAT_MS/);
  t.match(withoutSecret.stdout, /FAIL {2}env +STREAM_TOKEN_SECRET is required when Redis is configured/);
});

t.test('clock skew: judged against the round trip and the remote clock resolution', async (t) => {
  t.equal(skewMs(1500, 1000, 2000), 0, 'a remote time within the round trip is no skew');
  t.equal(skewMs(1000, 1500, 1600, 1000), 0, 'a Date header (whole seconds) within the round trip is no skew');
  t.equal(skewMs(5000, 1000, 1200), -3800, 'a remote clock ahead');
  t.equal(skewMs(0, 4000, 4100, 1000), 3000, 'a remote clock behind');
  t.ok(clockFinding('clock', MAX_CLOCK_SKEW_MS, 'x').ok, 'the limit itself passes');
  t.notOk(clockFinding('clock', -MAX_CLOCK_SKEW_MS - 1, 'x').ok, 'past it fails');
});
