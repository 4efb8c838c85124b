// `switchboard doctor`, spawned against real replicas and real redis-servers: a healthy fleet
// passes; each kind of misconfiguration fails, exits 1 and names the reason; no secret is printed.
import t, { type Test } from 'tap';
import { CLI_FILE_TIMEOUT_MS, runCli } from '../helpers/cli.js';
import { fleetEnv, PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { inProcessReplica } from '../helpers/in-process-replica.js';
import { startRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait-for.js';

t.setTimeout(CLI_FILE_TIMEOUT_MS);

const CALLBACK_SECRET = Buffer.from('doctor-test-callback-secret-0123456789').toString('base64');
const OTHER = 'another-secret-value-0123456789abcdef';
const redis = await startRedis(t);
const shared = { REDIS_URL: redis.url, STREAM_TOKEN_SECRET, PUBLISH_API_KEY, CALLBACK_SECRET };
const replicaWith = (id: string, env: Record<string, string> = {}) =>
  inProcessReplica(t, fleetEnv(redis, { ...shared, REPLICA_ID: id, ALLOW_UNSIGNED_CALLBACKS: undefined, LOG_LEVEL: 'warn', ...env }));
const [r1, r2] = await Promise.all([replicaWith('r1'), replicaWith('r2')]);

/** No line of the report may carry a secret. */
function noSecrets(t: Test, output: string): void {
  for (const secret of [STREAM_TOKEN_SECRET, PUBLISH_API_KEY, CALLBACK_SECRET, OTHER]) t.notOk(output.includes(secret), 'no secret is printed');
}

t.test('a healthy fleet passes every check', async (t) => {
  const run = await runCli(['doctor', '--replica', r1.url, '--replica', r2.url], shared);
  t.equal(run.code, 0, run.stdout + run.stderr);
  const lines = run.stdout.trim().split('\n');
  t.ok(
    lines.every((line) => line.startsWith('ok  ')),
    'every line is ok',
  );
  t.match(run.stdout, /ok {4}env +valid; Redis standalone; callbacks signed/);
  t.match(run.stdout, new RegExp(`ok {4}redis +single at 127\\.0\\.0\\.1:${redis.port}, role master \\(Redis \\d`));
  t.match(run.stdout, /ok {4}clock +clock \d+ ms (behind|ahead of) this machine \(Redis TIME\)/);
  for (const replica of [r1, r2]) {
    t.match(run.stdout, new RegExp(`replica ${replica.url} +ready \\(replica ${replica.replicaId}\\)`));
    t.match(run.stdout, new RegExp(`replica ${replica.url} +PUBLISH_API_KEY accepted; STREAM_TOKEN_SECRET and STREAM_TOKEN_AUDIENCE match`));
    t.match(run.stdout, new RegExp(`replica ${replica.url} +CALLBACK_SECRET matches`));
  }
  noSecrets(t, run.stdout + run.stderr);
});

t.test('replicas whose secrets differ are named, each with the secret that differs', async (t) => {
  const [tokens, callbacks, keys, audience] = await Promise.all([
    replicaWith('r3', { STREAM_TOKEN_SECRET: OTHER }),
    replicaWith('r4', { CALLBACK_SECRET: Buffer.from(OTHER).toString('base64') }),
    replicaWith('r5', { PUBLISH_API_KEY: OTHER }),
    replicaWith('r6', { STREAM_TOKEN_AUDIENCE: 'elsewhere' }),
  ]);
  const run = await runCli(['doctor', ...[r1, tokens, callbacks, keys, audience].flatMap((r) => ['--replica', r.url])], shared);
  t.equal(run.code, 1);
  t.match(
    run.stdout,
    new RegExp(
      `FAIL  replica ${tokens.url} +PUBLISH_API_KEY accepted, but its tokens do not verify here: its STREAM_TOKEN_SECRET or STREAM_TOKEN_AUDIENCE differs`,
    ),
  );
  t.match(run.stdout, new RegExp(`FAIL  replica ${audience.url} +PUBLISH_API_KEY accepted, but its tokens do not verify here`));
  t.match(run.stdout, new RegExp(`FAIL  replica ${callbacks.url} +its CALLBACK_SECRET differs`));
  t.match(run.stdout, new RegExp(`FAIL  replica ${keys.url} +does not accept this PUBLISH_API_KEY`));
  t.notMatch(run.stdout, new RegExp(`FAIL  replica ${r1.url}`), 'the replica that matches passes');
  t.match(run.stderr, /^switchboard doctor: 4 checks failed: replica /);
  noSecrets(t, run.stdout + run.stderr);
});

t.test('a replica that is not ready, or not there, fails', async (t) => {
  const ownRedis = await startRedis(t);
  const stranded = await inProcessReplica(t, fleetEnv(ownRedis, { ...shared, REDIS_URL: ownRedis.url, REPLICA_ID: 'r7', LOG_LEVEL: 'silent' }));
  await ownRedis.stop();
  await waitFor(async () => (await fetch(`${stranded.url}/readyz`)).status === 503, { label: 'r7 not ready', timeoutMs: 60_000 });
  const nobody = `http://127.0.0.1:${await freePort()}`;
  const run = await runCli(['doctor', '--replica', stranded.url, '--replica', nobody], shared);
  t.equal(run.code, 1);
  t.match(run.stdout, new RegExp(`FAIL  replica ${stranded.url} +not ready \\(replica r7\\): 503 backplane_unavailable`));
  t.match(run.stdout, new RegExp(`FAIL  replica ${nobody} +unreachable: .*ECONNREFUSED`));
});
