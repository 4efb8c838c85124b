// The `switchboard` bin, spawned as a user runs it, against real replicas on a real redis-server.
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { runCli, startCli } from '../helpers/cli.js';
import { fleetEnv, PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../helpers/fleet.js';
import { inProcessReplica } from '../helpers/in-process-replica.js';
import { startRedis } from '../helpers/redis-server.js';
import { openSse } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait-for.js';

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
  const refused = await runCli(['token', 'ada', '--ttl', '86401'], env);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /--ttl must be whole seconds from 1 to 86400/);
  const noSecret = await runCli(['token', 'ada'], { REDIS_URL: redis.url, PUBLISH_API_KEY, ALLOW_UNSIGNED_CALLBACKS: 'true' });
  t.equal(noSecret.code, 1);
  t.match(noSecret.stderr, /STREAM_TOKEN_SECRET is required/);
});

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

  const forged = await runCli(['publish', 'bea', '1'], { ...env, PUBLISH_API_KEY: 'a-forged-key-0123456789abcdef' });
  t.equal(forged.code, 1);
  t.match(forged.stderr, /401 invalid_api_key/);
  const notJson = await runCli(['publish', 'bea', '{oops'], env);
  t.equal(notJson.code, 2);
  t.match(notJson.stderr, /must be JSON/);
});

t.test('tail prints each live event with its id and type, and resumes after a reconnect', async (t) => {
  const tail = startCli(['tail', 'cy', '--count', '3'], env);
  t.teardown(() => tail.child.kill('SIGKILL'));
  await waitFor(() => tail.stderr.includes('# connected to replica r1'), { label: 'tail connected', timeoutMs: 10_000 });
  const published = [];
  for (const [type, data] of [
    ['order', '{"order":1}'],
    ['note', '"hi"'],
  ] as const) {
    const run = await runCli(['publish', 'cy', data, '--type', type], env);
    published.push(JSON.parse(run.stdout) as { id: string });
  }
  await waitFor(() => tail.stdout.split('\n').length > 2, { label: 'two events printed', timeoutMs: 10_000 });
  // The replica ends every stream, as a drain does: tail comes back and resumes after its last id.
  replica.app.server.closeAllConnections();
  await waitFor(() => tail.stderr.includes('resuming after'), { label: 'tail reconnected', timeoutMs: 10_000 });
  const third = JSON.parse((await runCli(['publish', 'cy', 'null', '--type', 'late'], env)).stdout) as { id: string };
  const run = await tail.done;
  t.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  t.equal(lines.length, 3);
  t.match(lines[0], new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ${published[0]!.id}  order  \\{"order":1\\}$`));
  t.match(lines[1], new RegExp(`  ${published[1]!.id}  note  "hi"$`));
  t.match(lines[2], new RegExp(`  ${third.id}  late  null$`));
});
