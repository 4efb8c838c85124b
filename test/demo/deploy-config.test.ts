// The shipped deployment files are valid without a Docker engine (none runs here): the nginx
// template passes `nginx -t`, docker-compose.yml passes the Compose validator of Debian's
// `docker-compose` (v1, which checks the file against its schema without an engine), and the
// Dockerfile has the shape the README promises. They are also safe to run as shipped: nginx logs
// no token and does not proxy /metrics, tells a stream it cannot place to retry (never a 502,
// which makes an EventSource give up), and is sized for a replica's streams; the demo listens
// on 127.0.0.1 only, on pinned images; the production env example cannot boot until every
// secret is generated, and has no demo mode.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { EventSource } from 'eventsource';
import t from 'tap';
import { TEMPLATE_VARIABLES, upstreamServer } from '../../deploy/nginx/local.mjs';
import { StreamTokens } from '../../src/auth/stream-tokens.js';
import { loadConfig } from '../../src/config.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { getJson, postJson, rawRequest } from '../helpers/http.js';
import { REPO_ROOT, startReplica } from '../helpers/replica.js';
import { waitFor } from '../helpers/wait-for.js';
import { checkNginxConfig, NGINX, startNginx } from './topology.js';

const DOCKER_COMPOSE = '/usr/bin/docker-compose';
const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');
const TEMPLATE = readFileSync(join(REPO_ROOT, 'deploy/nginx/nginx.conf.template'), 'utf8');
/** The template's directives, comments removed. */
const DIRECTIVES = TEMPLATE.replace(/#.*$/gm, '');
const SECRETS = ['STREAM_TOKEN_SECRET', 'PUBLISH_API_KEY', 'CALLBACK_SECRET'] as const;

/** `KEY=value` lines of an env file (as scripts/demo.mjs and Compose read them); comments skipped. */
function readEnvFile(path: string): Record<string, string> {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim());
  return Object.fromEntries(
    lines.filter((line) => line !== '' && !line.startsWith('#')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** The entries of every `ports:` list in a Compose file's text. */
function publishedPorts(compose: string): string[] {
  const ports: string[] = [];
  let inPorts = false;
  for (const line of compose.split('\n')) {
    if (/^\s+ports:\s*$/.test(line)) inPorts = true;
    else if (inPorts && /^\s+-\s/.test(line))
      ports.push(
        line
          .replace(/^\s+-\s+/, '')
          .replace(/["']/g, '')
          .trim(),
      );
    else inPorts = false;
  }
  return ports;
}

t.test('the nginx template, filled in, passes nginx -t', async (t) => {
  if (!existsSync(NGINX)) {
    t.fail(`nginx is not installed at ${NGINX}: run \`apt-get install -y nginx\` (.ci/run installs it when missing)`);
    return;
  }
  const settings = { port: await freePort(), replicas: ['127.0.0.1:3001', '127.0.0.1:3002', '127.0.0.1:3003'], worker: '127.0.0.1:3100' };
  const { status, output } = await checkNginxConfig(t, settings);
  t.equal(status, 0, 'nginx -t exits 0');
  t.match(output, /syntax is ok/, 'nginx: syntax is ok');
  t.match(output, /test is successful/, 'nginx: test is successful');
});

t.test('the nginx template has what SSE needs behind a round-robin balancer', async (t) => {
  const directives = DIRECTIVES;
  t.match(directives, /proxy_buffering\s+off;/, 'responses are not buffered');
  t.match(directives, /proxy_http_version\s+1\.1;/, 'HTTP/1.1 to the upstream');
  t.match(directives, /proxy_set_header\s+Connection\s+"";/, 'upstream connections are kept alive, not closed');
  const readTimeout = /proxy_read_timeout\s+(\d+)s;/.exec(directives);
  t.ok(readTimeout && Number(readTimeout[1]) >= 4 * 15, 'the read timeout is well above the 15 s heartbeat');
  t.match(directives, /worker_shutdown_timeout\s+\d+s;/, 'a reload or stop is bounded despite open streams');
  t.notMatch(directives, /\b(ip_hash|hash|sticky|least_conn)\b/, 'plain round-robin: no stickiness');
});

t.test('docker-compose.yml passes the Compose validator and has the demo topology', async (t) => {
  if (!existsSync(DOCKER_COMPOSE)) {
    t.fail(`docker-compose is not installed at ${DOCKER_COMPOSE}: run \`apt-get install -y docker-compose\` (.ci/run installs it when missing)`);
    return;
  }
  const compose = (...args: string[]) => spawnSync(DOCKER_COMPOSE, ['-f', COMPOSE_FILE, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  const check = compose('config', '-q');
  t.equal(check.status, 0, `docker-compose config -q accepts the file ${check.stderr}`);
  // The validator is not a rubber stamp: the same file with an unknown service key fails.
  const broken = join(await mkdtemp(join(tmpdir(), 'switchboard-compose-')), 'docker-compose.yml');
  t.teardown(() => rm(dirname(broken), { recursive: true, force: true }));
  writeFileSync(broken, readFileSync(COMPOSE_FILE, 'utf8').replace(/^ {2}redis:\n/m, '  redis:\n    no_such_option: 1\n'));
  const rejected = spawnSync(DOCKER_COMPOSE, ['-f', broken, 'config', '-q'], { encoding: 'utf8', timeout: 60_000 });
  t.not(rejected.status, 0, 'an unknown option is rejected');
  t.match(rejected.stderr, /no_such_option/, 'and named');
  const services = compose('config', '--services').stdout.trim().split('\n').sort();
  const cluster = [
    'nginx-cluster',
    ...[1, 2, 3, 4, 5, 6].map((n) => `redis-cluster-${n}`),
    'redis-cluster-init',
    ...[1, 2, 3].map((n) => `switchboard-cluster-${n}`),
    'worker-cluster',
  ];
  t.same(
    services,
    ['jaeger', 'nginx', 'redis', 'switchboard-1', 'switchboard-2', 'switchboard-3', 'worker', ...cluster].sort(),
    'redis, three replicas, nginx, the worker, jaeger; and the cluster variant',
  );
  // Each service as the validator resolved it (anchors merged): its block of `config` output.
  const resolved = compose('--profile', 'cluster', 'config').stdout;
  const block = (name: string): string => new RegExp(`^ {2}${name}:\n((?: {4}.*\n| *\n)*)`, 'm').exec(resolved)?.[1] ?? '';
  for (const name of ['redis', 'switchboard-1', 'nginx', 'worker']) t.notMatch(block(name), /profiles:/, `${name}: in the default demo`);
  for (const name of cluster) t.match(block(name), /profiles:\n\s+- cluster\n/, `${name}: only with --profile cluster`);
  const seeds = [1, 2, 3, 4, 5, 6].map((n) => `redis-cluster-${n}:6379`).join(',');
  for (const n of [1, 2, 3]) {
    const replica = block(`switchboard-cluster-${n}`);
    t.match(replica, new RegExp(`REDIS_CLUSTER_NODES: ${seeds}\n`), `switchboard-cluster-${n}: REDIS_CLUSTER_NODES names the six nodes`);
    t.notMatch(replica, /REDIS_URL/, 'and no REDIS_URL (one mode at a time)');
    t.match(replica, /redis-cluster-init:\n\s+condition: service_completed_successfully/, 'it starts once the cluster is made');
  }
  t.match(block('switchboard-1'), /REDIS_URL: redis:\/\/redis:6379/, 'the default replicas keep REDIS_URL');
  const node = block('redis-cluster-1');
  t.match(node, /--cluster-enabled\n\s+- ["']yes["']\n/, 'cluster nodes run in cluster mode');
  t.match(node, /--cluster-node-timeout\n\s+- ["']2000["']\n/, 'with cluster-node-timeout 2000');
  t.match(node, /--cluster-require-full-coverage\n\s+- ["']no["']\n/, 'and full coverage not required');
  t.match(node, /--repl-diskless-sync-delay\n\s+- ["']0["']\n/, "and no wait before a replica's first sync (a replica without its data refuses to take over)");
  t.match(block('redis-cluster-init'), /--cluster create [^\n]*--cluster-replicas 1 --cluster-yes/, 'the one-shot init makes 3 masters with a replica each');
  // Each replica with the upstream parameters the template relies on (local.mjs writes the same).
  // The validator folds long values over lines: compare with whitespace collapsed.
  const servers = (prefix: string) => [1, 2, 3].map((n) => upstreamServer(`${prefix}-${n}:3000`)).join(' ');
  const collapsed = (name: string) => block(name).replace(/\s+/g, ' ');
  t.ok(
    collapsed('nginx').includes(` SWITCHBOARD_SERVERS: ${servers('switchboard')} WORKER_SERVER:`),
    'its nginx balances the three replicas, as local.mjs writes them',
  );
  t.ok(
    collapsed('nginx-cluster').includes(` SWITCHBOARD_SERVERS: ${servers('switchboard-cluster')} WORKER_SERVER:`),
    "the cluster's nginx balances the cluster's replicas",
  );

  const text = readFileSync(COMPOSE_FILE, 'utf8');
  for (const name of TEMPLATE_VARIABLES) t.match(text, new RegExp(`^\\s+${name}:`, 'm'), `the nginx service sets the template's ${name}`);
  t.match(text, /--appendonly", "yes"/, 'Redis keeps an append-only file');
  t.match(text, /OTEL_EXPORTER_OTLP_ENDPOINT: http:\/\/jaeger:4318/, 'replicas export traces to Jaeger over OTLP/HTTP');
});

t.test('the Dockerfile is multi-stage, runs as a non-root user and checks /healthz', async (t) => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile.split('\n').filter((line) => !line.trimStart().startsWith('#'));
  t.ok(instructions.filter((line) => /^FROM\s/.test(line)).length >= 2, 'more than one stage');
  t.ok(
    instructions.some((line) => /^RUN npm ci --omit=dev\b/.test(line)),
    'production dependencies only in the image',
  );
  const users = instructions.filter((line) => /^USER\s/.test(line));
  t.ok(users.length > 0 && !/^USER\s+(root|0)\b/.test(users.at(-1) as string), `the last USER is not root (${users.at(-1)})`);
  t.ok(instructions.some((line) => /^HEALTHCHECK\s/.test(line)) && /\/healthz/.test(dockerfile), 'a HEALTHCHECK on /healthz');
  t.match(dockerfile, /^CMD \["node", "--import", "\.\/dist\/telemetry\/start\.js", "dist\/main\.js"\]$/m, 'starts as npm start does');
  const scripts = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
  t.equal(scripts.start, 'node --import ./dist/telemetry/start.js dist/main.js', 'the same command as npm start');
});

t.test('nginx logs the path, never the query (a stream URL carries ?token=)', async (t) => {
  const format = /log_format\s+(\w+)\s+((?:'[^']*'\s*)+);/.exec(DIRECTIVES);
  t.ok(format, 'a log_format is defined');
  const [, name, text] = format ?? ['', '', ''];
  t.match(text, /\$uri\b/, 'it logs $uri');
  t.notMatch(
    text,
    /\$(request|request_uri|args|query_string|arg_\w+|http_referer)\b/,
    'not $request, $request_uri, $args, $query_string, $arg_*, $http_referer',
  );
  const accessLogs = [...DIRECTIVES.matchAll(/access_log\s+([^;]+);/g)].map((match) => match[1]?.trim().split(/\s+/) ?? []);
  t.ok(accessLogs.length > 0 && accessLogs.every((args) => args[0] === 'off' || args[1] === name), `every access_log uses it (${JSON.stringify(accessLogs)})`);
});

t.test('through the shipped nginx: no token in the access log, no /metrics', async (t) => {
  if (!existsSync(NGINX)) {
    t.fail(`nginx is not installed at ${NGINX}: run \`apt-get install -y nginx\``);
    return;
  }
  const replica = await startReplica(t, {});
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const accessLog = join(dir, 'access.log');
  // The worker upstream is never asked here: any address will do.
  const nginx = await startNginx(t, { port: await freePort(), replicas: [`127.0.0.1:${replica.port}`], worker: '127.0.0.1:9', accessLog });

  const token = 'eyJ.secret-token-in-the-query.sig';
  const refused = await rawRequest({ url: `${nginx.url}/stream/alice?token=${token}`, headers: { accept: 'text/event-stream' } });
  t.equal(refused.status, 401, 'the stream request reached a replica (401 for a bad token)');
  const logged = await waitFor(
    () => {
      const text = existsSync(accessLog) ? readFileSync(accessLog, 'utf8') : '';
      return text.includes('/stream/alice') ? text : undefined;
    },
    { timeoutMs: 10_000, label: 'the access log line for the stream request' },
  );
  t.notOk(logged.includes(token) || logged.includes('token='), `the access log holds no token: ${logged.trim()}`);

  t.equal((await getJson(`${replica.url}/metrics`)).status, 200, 'the replica serves /metrics on its own address');
  for (const path of ['/metrics', '/metrics?x=1', '//metrics', '/%6Detrics']) {
    const answer = await rawRequest({ url: `${nginx.url}${path}` });
    t.equal(answer.status, 404, `${path} through nginx: 404`);
    t.notMatch(answer.body, /^# (HELP|TYPE) /m, `${path}: no metrics in the body`);
  }
  t.equal((await getJson(`${nginx.url}/healthz`)).status, 200, 'while everything else is proxied');
});

t.test('through the shipped nginx, a stream no replica can take is told to retry, not refused', async (t) => {
  if (!existsSync(NGINX)) {
    t.fail(`nginx is not installed at ${NGINX}: run \`apt-get install -y nginx\``);
    return;
  }
  // The only upstream is a port nothing listens on yet: every request finds no replica.
  const replicaPort = await freePort();
  const nginx = await startNginx(t, { port: await freePort(), replicas: [`127.0.0.1:${replicaPort}`], worker: '127.0.0.1:9' }, { replicasUp: false });

  const answer = await rawRequest({ url: `${nginx.url}/stream/alice`, headers: { accept: 'text/event-stream' } });
  t.equal(answer.status, 200, 'a stream request is answered 200, as a replica answers a stream it cannot open');
  t.match(answer.headers['content-type'], /^text\/event-stream/, 'as an event stream');
  t.equal(answer.headers['cache-control'], 'no-store', 'never cached');
  t.match(answer.body, /^retry: (1000|1500|2000|2500)\n\n$/, `with only a retry: in the jittered range (${JSON.stringify(answer.body)})`);
  const publish = await postJson(`${nginx.url}/v1/users/alice/events`, { data: {} }, { bearer: PUBLISH_API_KEY });
  t.equal(publish.status, 502, 'a publish still gets the 502, which a sender retries');

  // A real EventSource keeps trying through that answer, and opens once a replica is up.
  const { token } = new StreamTokens(STREAM_TOKEN_SECRET, 'switchboard').mint('alice', [], 300);
  const source = new EventSource(`${nginx.url}/stream/alice?token=${token}`);
  t.teardown(() => source.close());
  let errors = 0;
  let gaveUp = false;
  source.addEventListener('error', () => {
    errors++;
    if (source.readyState === EventSource.CLOSED) gaveUp = true;
  });
  await waitFor(() => errors >= 2 || gaveUp, { timeoutMs: 15_000, label: 'two failed attempts' });
  t.notOk(gaveUp, `the EventSource did not give up (${errors} attempts so far)`);
  await startReplica(t, { STREAM_TOKEN_SECRET, PUBLISH_API_KEY }, { port: replicaPort });
  await waitFor(() => source.readyState === EventSource.OPEN || gaveUp, { timeoutMs: 15_000, label: 'the stream open once a replica listens' });
  t.equal(source.readyState, EventSource.OPEN, 'it opened through nginx once a replica listened');
  t.match(nginx.errorLog(), /connect\(\) failed \(111: Connection refused\)/, "nginx's error log names the refused upstream");
});

t.test('nginx is sized for the streams one replica may hold, and the README says why', async (t) => {
  const maxConnections = loadConfig({}).config.maxConnections;
  const workers = Number(/worker_processes\s+(\d+);/.exec(DIRECTIVES)?.[1]);
  const connections = Number(/worker_connections\s+(\d+);/.exec(DIRECTIVES)?.[1]);
  const files = Number(/worker_rlimit_nofile\s+(\d+);/.exec(DIRECTIVES)?.[1]);
  t.equal(workers, 1, 'one worker process (the limits below are per worker)');
  t.ok(
    connections >= 2 * maxConnections,
    `worker_connections ${connections} >= 2 × MAX_CONNECTIONS (${maxConnections}): each stream is a browser and an upstream connection`,
  );
  t.ok(files > connections, `worker_rlimit_nofile ${files} > worker_connections ${connections}: one descriptor per connection, plus logs and listeners`);
  const compose = readFileSync(COMPOSE_FILE, 'utf8');
  t.match(compose, new RegExp(`nofile: ${files}\\b`), 'the nginx container may raise its fd limit that far');
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  t.match(readme, /two connections in nginx/, 'the README says each stream costs nginx two connections');
  t.match(readme, /worker_connections/, 'and names the setting');
});

t.test('the demo listens on 127.0.0.1 only, checks readiness, and runs pinned images', async (t) => {
  const compose = readFileSync(COMPOSE_FILE, 'utf8');
  const ports = publishedPorts(compose);
  t.ok(ports.length >= 2, `ports are published (${ports.join(', ')})`);
  for (const port of ports) t.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${port} is bound to 127.0.0.1`);

  const healthchecks = [...compose.matchAll(/healthcheck:\s*\n\s+test:\s*(.+)/g)].map((match) => match[1] as string);
  t.ok(
    healthchecks.some((test) => /\/readyz\b/.test(test)),
    "the replicas' healthcheck asks /readyz",
  );
  t.notOk(
    healthchecks.some((test) => /\/healthz\b/.test(test)),
    'not /healthz (which says nothing about Redis)',
  );

  const images = [...compose.matchAll(/^\s+image:\s*(\S+)\s*$/gm)].map((match) => match[1] as string).filter((image) => image !== 'switchboard:demo');
  t.ok(images.length >= 4, `the outside images: ${images.join(', ')}`);
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  t.ok(base, 'the Dockerfile names its base image');
  t.ok(
    dockerfile
      .split('\n')
      .filter((line) => /^FROM\s/.test(line))
      .every((line) => /^FROM \$\{NODE_IMAGE\}( AS \w+)?$/.test(line)),
    'every stage is built on it',
  );
  for (const image of [...images, base ?? '']) {
    t.match(image, /:\d+\.\d+\.\d+(-[\w.-]+)?$/, `${image} is pinned to a full version`);
    t.notMatch(image, /:latest$/, `${image} is not latest`);
  }
});

t.test('the demo env and the production example are apart', async (t) => {
  const demo = readEnvFile(join(REPO_ROOT, 'deploy/demo.env'));
  t.equal(demo.DEMO_MODE, 'true', 'deploy/demo.env turns demo mode on');
  const compose = readFileSync(COMPOSE_FILE, 'utf8');
  const envFiles = [...compose.matchAll(/env_file:\s*(\S+)/g)].map((match) => match[1]);
  t.ok(envFiles.length >= 2 && envFiles.every((file) => file === 'deploy/demo.env'), `compose reads deploy/demo.env (${envFiles.join(', ')})`);
  t.match(readFileSync(join(REPO_ROOT, 'scripts/demo.mjs'), 'utf8'), /readEnvFile\(join\(ROOT, 'deploy', 'demo\.env'\)\)/, 'npm run demo reads it too');
  const { config } = loadConfig({ ...demo, REDIS_URL: 'redis://127.0.0.1:6390' });
  t.equal(config.demoMode, true, 'and it boots a replica with Redis, in demo mode');

  const exampleText = readFileSync(join(REPO_ROOT, '.env.example'), 'utf8');
  const example = readEnvFile(join(REPO_ROOT, '.env.example'));
  t.notMatch(exampleText, /DEMO_MODE/, '.env.example has no DEMO_MODE, not even commented out');
  t.match(exampleText, /randomBytes\(/, 'it says how to generate a secret');
  for (const name of SECRETS) {
    t.match(example[name], /REPLACE_ME/, `${name} is a placeholder`);
    // Each placeholder on its own stops the boot: nobody runs with a secret from the repository.
    const others = Object.fromEntries(
      SECRETS.filter((other) => other !== name).map((other) => [other, other === 'CALLBACK_SECRET' ? `whsec_${'A'.repeat(40)}` : 'x'.repeat(32)]),
    );
    t.throws(
      () => loadConfig({ ...example, ...others }),
      { code: 'invalid_config', message: new RegExp(name) },
      `a replica refuses to boot with the ${name} placeholder, and names it`,
    );
  }
});
