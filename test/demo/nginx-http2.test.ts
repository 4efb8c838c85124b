// The shipped HTTP/2 edge config (deploy/nginx/nginx-http2.conf.template): it passes `nginx -t`,
// keeps every directive SSE needs from the plain template, and, run for real in front of a
// replica with a certificate made for the test, serves the stream to a node:http2 client over
// h2 (ALPN) with events as they are published, logs no token, and redirects plain HTTP to HTTPS.
import { existsSync, readFileSync } from 'node:fs';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PUBLISH_API_KEY } from '../helpers/fleet.js';
import { freePort } from '../helpers/free-port.js';
import { rawRequest } from '../helpers/http.js';
import { inProcessFleet, type InProcessReplica } from '../helpers/in-process-replica.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { parseSseStream } from '../helpers/sse-parser.js';
import { makeTestCertificate } from '../helpers/tls-cert.js';
import { once, waitFor } from '../helpers/wait-for.js';
import { checkNginxConfig, NGINX, startNginx } from './topology.js';

const WAIT_MS = 15_000;
const withoutComments = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8').replace(/#.*$/gm, '');
const PLAIN = withoutComments('deploy/nginx/nginx.conf.template');
const HTTP2 = withoutComments('deploy/nginx/nginx-http2.conf.template');

t.test('the HTTP/2 template keeps what SSE needs from the plain one, and adds TLS with h2', async (t) => {
  const shared = [
    /proxy_buffering\s+off;/,
    /proxy_cache\s+off;/,
    /proxy_http_version\s+1\.1;/,
    /proxy_set_header\s+Connection\s+"";/,
    /proxy_read_timeout\s+60s;/,
    /worker_shutdown_timeout\s+\d+s;/,
    /location\s+=\s+\/metrics\s*\{\s*return\s+404;\s*\}/,
    /log_format\s+switchboard\s+'\$remote_addr \[\$time_local\] "\$request_method \$uri \$server_protocol" '/,
    /access_log\s+\$\{ACCESS_LOG\}\s+switchboard;/,
    /worker_connections\s+102400;/,
  ];
  for (const directive of shared) {
    t.match(PLAIN, directive, `the plain template has ${directive.source}`);
    t.match(HTTP2, directive, `and so does the HTTP/2 one`);
  }
  const format = /log_format\s+switchboard\s+((?:'[^']*'\s*)+);/.exec(HTTP2)?.[1] ?? '';
  t.match(format, /\$uri\b/, 'the log format has $uri');
  t.notMatch(format, /\$(request|request_uri|args|query_string|arg_\w+|http_referer)\b/, 'and no query (a stream URL may carry ?token=)');
  t.match(HTTP2, /listen\s+\$\{LISTEN_TLS\}\s+ssl\s+http2;/, 'a TLS listener with HTTP/2');
  t.match(HTTP2, /ssl_certificate\s+\$\{TLS_CERT_FILE\};/, 'its certificate');
  t.match(HTTP2, /ssl_certificate_key\s+\$\{TLS_KEY_FILE\};/, 'and key');
  t.match(HTTP2, /return\s+308\s+https:\/\/\$host\$request_uri;/, 'plain HTTP redirects to HTTPS');
});

t.test('filled in with a certificate, the HTTP/2 template passes nginx -t', async (t) => {
  if (!existsSync(NGINX)) {
    t.fail(`nginx is not installed at ${NGINX}: run \`apt-get install -y nginx\` (.ci/run installs it when missing)`);
    return;
  }
  const cert = await makeTestCertificate(t);
  const { status, output } = await checkNginxConfig(t, {
    port: await freePort(),
    replicas: ['127.0.0.1:3001', '127.0.0.1:3002'],
    worker: '127.0.0.1:3100',
    tls: { port: await freePort(), certFile: cert.certFile, keyFile: cert.keyFile },
  });
  t.equal(status, 0, 'nginx -t exits 0');
  t.match(output, /test is successful/, 'nginx: test is successful');
});

/** A request through the h2 session: its headers, and its body as it arrives. */
async function h2Request(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ headers: IncomingHttpHeaders; text: () => string }> {
  const stream = session.request(headers);
  stream.end(body === undefined ? undefined : JSON.stringify(body));
  let text = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const [answer] = (await once(stream, 'response', WAIT_MS, `${headers[':method'] ?? 'GET'} ${headers[':path']}`)) as [IncomingHttpHeaders];
  return { headers: answer, text: () => text };
}

async function postJson(session: ClientHttp2Session, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const answer = await h2Request(
    session,
    { ':method': 'POST', ':path': path, authorization: `Bearer ${PUBLISH_API_KEY}`, 'content-type': 'application/json' },
    body,
  );
  await waitFor(() => answer.text().endsWith('}'), { timeoutMs: WAIT_MS, label: `${path} body` });
  return { status: Number(answer.headers[':status']), json: JSON.parse(answer.text()) };
}

t.test('through nginx over HTTP/2: the stream, its events, no token in the log, HTTP redirected', async (t: Test) => {
  if (!existsSync(NGINX)) {
    t.fail(`nginx is not installed at ${NGINX}`);
    return;
  }
  const cert = await makeTestCertificate(t);
  const fleet = await inProcessFleet(t);
  const replica = fleet.replicas[0] as InProcessReplica;
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-h2-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const accessLog = join(dir, 'access.log');
  const tlsPort = await freePort();
  const nginx = await startNginx(t, {
    port: await freePort(),
    replicas: [`127.0.0.1:${replica.port}`],
    worker: '127.0.0.1:9',
    accessLog,
    tls: { port: tlsPort, certFile: cert.certFile, keyFile: cert.keyFile },
  });

  const session = connect(`https://127.0.0.1:${tlsPort}`, { ca: cert.certPem });
  t.teardown(() => session.destroy());
  await once(session, 'connect', WAIT_MS, 'HTTP/2 session to nginx');
  t.equal(session.alpnProtocol, 'h2', 'nginx speaks h2 (ALPN)');

  const minted = await postJson(session, '/v1/tokens', { userId: 'edge-ada' });
  t.equal(minted.status, 201, 'a token minted through nginx over h2');
  const token = minted.json.token as string;
  const stream = await h2Request(session, { ':path': `/stream/edge-ada?token=${token}`, accept: 'text/event-stream' });
  t.equal(stream.headers[':status'], 200, 'the stream: 200');
  t.match(String(stream.headers['content-type']), /^text\/event-stream\b/, 'text/event-stream');
  t.equal(stream.headers['x-replica-id'], replica.replicaId, 'from the replica');
  await waitFor(() => /^retry: \d+\n/.test(stream.text()), { timeoutMs: WAIT_MS, label: 'the retry line, unbuffered' });
  for (const seq of [1, 2]) {
    const published = await postJson(session, '/v1/users/edge-ada/events', { data: { seq } });
    t.equal(published.status, 202, `event ${seq} published through nginx`);
    await waitFor(() => parseSseStream(stream.text()).events.length >= seq, { timeoutMs: WAIT_MS, label: `event ${seq} on the stream` });
  }
  t.same(
    parseSseStream(stream.text()).events.map((event) => JSON.parse(event.data)),
    [{ seq: 1 }, { seq: 2 }],
    'each event arrived as it was published (no buffering)',
  );

  const logged = await waitFor(
    () => {
      const text = existsSync(accessLog) ? readFileSync(accessLog, 'utf8') : '';
      return text.includes('/v1/users/edge-ada/events') ? text : undefined;
    },
    { timeoutMs: WAIT_MS, label: 'access log lines' },
  );
  t.match(logged, /"POST \/v1\/tokens HTTP\/2\.0"/, 'requests are logged as HTTP/2');
  t.notOk(logged.includes(token), 'the access log holds no token');

  const redirect = await rawRequest({ url: `${nginx.url}/stream/edge-ada?x=1`, headers: { host: 'push.example.test' } });
  t.equal(redirect.status, 308, 'plain HTTP: 308');
  t.equal(redirect.headers.location, 'https://push.example.test/stream/edge-ada?x=1', 'to the same URL on HTTPS');
});
