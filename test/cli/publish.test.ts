// `switchboard publish`, spawned as a user runs it, against a real replica on a real redis-server.
import t from 'tap';
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

t.test('publish sends to a user or a topic; a refusal exits 1 with its code', async (t) => {
  const token = (await runCli(['token', 'bea', '--topics', 'news'], env)).stdout.trim();
  const stream = await waitOpen(await openSse(`${replica.url}/stream/bea?topics=news&token=${token}`), 'bea');
  t.teardown(() => stream.close());
  const toUser = await runCli(['publish', 'bea', '{"order":42}', '--type', 'order', '--id', 'order-42'], env);
  t.equal(toUser.code, 0, toUser.stderr);
  const answer = JSON.parse(toUser.stdout) as { id: string; receivers: number; duplicate: boolean };
  t.match(answer, { receivers: 1, duplicate: false });
  const toTopic = await runCli(['publish', '--topic', 'news', '"extra"'], env);
  t.equal(toTopic.code, 0, toTopic.stderr);
  const events = await stream.waitForEvents(2);
  t.same(
    events.map((event) => [event.type, JSON.parse(event.data)]),
    [
      ['order', { order: 42 }],
      ['message', 'extra'],
    ],
  );

  const [forged, notJson] = await Promise.all([
    runCli(['publish', 'bea', '1'], { ...env, PUBLISH_API_KEY: 'a-forged-key-0123456789abcdef' }),
    runCli(['publish', 'bea', '{oops'], env),
  ]);
  t.equal(forged.code, 1);
  t.match(forged.stderr, /401 invalid_api_key/);
  t.equal(notJson.code, 2);
  t.match(notJson.stderr, /must be JSON/);
});
