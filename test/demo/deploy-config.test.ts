// The shipped deployment files are valid without a Docker engine (none runs here): the nginx
// template passes `nginx -t`, docker-compose.yml passes the Compose validator of Debian's
// `docker-compose` (v1, which checks the file against its schema without an engine), and the
// Dockerfile has the shape the README promises.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { TEMPLATE_VARIABLES } from '../../deploy/nginx/local.mjs';
import { freePort } from '../helpers/free-port.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { checkNginxConfig, NGINX } from './topology.js';

const DOCKER_COMPOSE = '/usr/bin/docker-compose';
const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');

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
  const template = readFileSync(join(REPO_ROOT, 'deploy/nginx/nginx.conf.template'), 'utf8');
  const directives = template.replace(/#.*$/gm, '');
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
  t.same(services, ['jaeger', 'nginx', 'redis', 'switchboard-1', 'switchboard-2', 'switchboard-3', 'worker'], 'redis, three replicas, nginx, the worker, jaeger');

  const text = readFileSync(COMPOSE_FILE, 'utf8');
  for (const name of TEMPLATE_VARIABLES) t.match(text, new RegExp(`^\\s+${name}:`, 'm'), `the nginx service sets the template's ${name}`);
  t.match(text, /--appendonly", "yes"/, 'Redis keeps an append-only file');
  t.match(text, /OTEL_EXPORTER_OTLP_ENDPOINT: http:\/\/jaeger:4318/, 'replicas export traces to Jaeger over OTLP/HTTP');
});

t.test('the Dockerfile is multi-stage, runs as a non-root user and checks /healthz', async (t) => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile.split('\n').filter((line) => !line.trimStart().startsWith('#'));
  t.ok(instructions.filter((line) => /^FROM\s/.test(line)).length >= 2, 'more than one stage');
  t.ok(instructions.some((line) => /^RUN npm ci --omit=dev\b/.test(line)), 'production dependencies only in the image');
  const users = instructions.filter((line) => /^USER\s/.test(line));
  t.ok(users.length > 0 && !/^USER\s+(root|0)\b/.test(users.at(-1) as string), `the last USER is not root (${users.at(-1)})`);
  t.ok(instructions.some((line) => /^HEALTHCHECK\s/.test(line)) && /\/healthz/.test(dockerfile), 'a HEALTHCHECK on /healthz');
  t.match(dockerfile, /^CMD \["node", "--import", "\.\/dist\/telemetry\/start\.js", "dist\/main\.js"\]$/m, 'starts as npm start does');
  const scripts = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
  t.equal(scripts.start, 'node --import ./dist/telemetry/start.js dist/main.js', 'the same command as npm start');
});
