// `switchboard tail`, spawned as a user runs it, against a real replica on a real redis-server.
import t from 'tap';
import { CLI_FILE_TIMEOUT_MS, runCli, startCli } from '../helpers/cli.js';
import { fleetEnv, PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { inProcessReplica } from '../helpers/in-process-replica.js';
import { startRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait-for.js';

t.setTimeout(CLI_FILE_TIMEOUT_MS);

const CALLBACK_SECRET = Buffer.from('cli-test-callback-secret-0123456789').toString('base64');
const redis = await startRedis(t);
const shared = { REDIS_URL: redis.url, STREAM_TOKEN_SECRET, PUBLISH_API_KEY, CALLBACK_SECRET };
const replica = await inProcessReplica(t, fleetEnv(redis, { ...shared, REPLICA_ID: 'r1', ALLOW_UNSIGNED_CALLBACKS: undefined }));
const env = { ...shared, SWITCHBOARD_URL: replica.url };

t.test('tail prints each live event with its id and type, and resumes after a reconnect', async (t) => {
  const tail = startCli(['tail', 'cy', '--count', '3'], env);
  t.teardown(() => tail.child.kill('SIGKILL'));
  await waitFor(() => tail.stderr.includes('# connected to replica r1'), { label: 'tail connected', timeoutMs: 60_000 });
  const published = [];
  for (const [type, data] of [
    ['order', '{"order":1}'],
    ['note', '"hi"'],
  ] as const) {
    const run = await runCli(['publish', 'cy', data, '--type', type], env);
    published.push(JSON.parse(run.stdout) as { id: string });
  }
  await waitFor(() => tail.stdout.split('\n').length > 2, { label: 'two events printed', timeoutMs: 60_000 });
  // The replica ends every stream, as a drain does: tail comes back and resumes after its last id.
  replica.app.server.closeAllConnections();
  await waitFor(() => tail.stderr.includes('resuming after'), { label: 'tail reconnected', timeoutMs: 60_000 });
  const third = JSON.parse((await runCli(['publish', 'cy', 'null', '--type', 'late'], env)).stdout) as { id: string };
  const run = await tail.done;
  t.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  t.equal(lines.length, 3);
  t.match(lines[0], new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ${published[0]!.id}  order  \\{"order":1\\}$`));
  t.match(lines[1], new RegExp(`  ${published[1]!.id}  note  "hi"$`));
  t.match(lines[2], new RegExp(`  ${third.id}  late  null$`));
});
