// `switchboard gen-secrets` and `token`, spawned as a user runs them, against a real replica on a real redis-server.
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { CLI_FILE_TIMEOUT_MS, runCli } from '../helpers/cli.js';
import { fleetEnv, PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../helpers/fleet.js';
import { inProcessReplica } from '../helpers/in-process-replica.js';
import { startRedis } from '../helpers/redis-server.js';
import { openSse } from '../helpers/sse-client.js';

t.setTimeout(CLI_FILE_TIMEOUT_MS);

const CALLBACK_SECRET = Buffer.from('cli-test-callback-secret-0123456789').toString('base64');
const redis = await startRedis(t);
const shared = { REDIS_URL: redis.url, STREAM_TOKEN_SECRET, PUBLISH_API_KEY, CALLBACK_SECRET };
const replica = await inProcessReplica(t, fleetEnv(redis, { ...shared, REPLICA_ID: 'r1', ALLOW_UNSIGNED_CALLBACKS: undefined }));
const env = { ...shared, SWITCHBOARD_URL: replica.url };

t.test('gen-secrets prints env lines a fleet boots with, new each time', async (t) => {
  const [first, second] = await Promise.all([runCli(['gen-secrets']), runCli(['gen-secrets'])]);
  t.equal(first.code, 0);
  const lines = first.stdout.split('\n').filter((line) => /^[A-Z_]+=/.test(line));
  t.same(
    lines.map((line) => line.split('=')[0]),
    ['STREAM_TOKEN_SECRET', 'PUBLISH_API_KEY', 'CALLBACK_SECRET'],
  );
  const pasted = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  const { config } = loadConfig({ ...pasted, REDIS_URL: redis.url });
  t.equal(config.callbackSecrets.length, 1, 'a replica with Redis boots with them, callbacks signed');
  t.not(first.stdout, second.stdout, 'each run makes new ones');
});

t.test('token mints a token that opens the stream, with its topics', async (t) => {
  const run = await runCli(['token', 'ada', '--topics', 'news,sport', '--ttl', '120'], env);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, /token for ada \(topics news, sport\), expires/);
  const stream = await waitOpen(
    await openSse(`${replica.url}/stream/ada?topics=news,sport`, { headers: { authorization: `Bearer ${run.stdout.trim()}` } }),
    'ada',
  );
  stream.close();
  const [refused, noSecret] = await Promise.all([
    runCli(['token', 'ada', '--ttl', '86401'], env),
    runCli(['token', 'ada'], { REDIS_URL: redis.url, PUBLISH_API_KEY, ALLOW_UNSIGNED_CALLBACKS: 'true' }),
  ]);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /--ttl must be whole seconds from 1 to 86400/);
  t.equal(noSecret.code, 1);
  t.match(noSecret.stderr, /STREAM_TOKEN_SECRET is required/);
});
