// A replica given TLS_CERT_FILE and TLS_KEY_FILE serves HTTP/2 over TLS and falls back to
// HTTP/1.1 for a client that does not offer h2 (ALPN), with the stream working on both: tested
// with a raw node:http2 client (several streams multiplexed on one connection) and node:https,
// against a replica built in this process on a real redis-server, with a certificate made for
// the test and trusted as a CA. Without the files it is plain HTTP/1.1, and half a pair stops
// the boot.
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { buildApp } from '../../src/app.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { memoryParts } from '../../src/connect.js';
import { PUBLISH_API_KEY } from '../helpers/fleet.js';
import { inProcessFleet, type InProcessReplica } from '../helpers/in-process-replica.js';
import { parseSseStream } from '../helpers/sse-parser.js';
import { makeTestCertificate } from '../helpers/tls-cert.js';
import { once, waitFor } from '../helpers/wait-for.js';

const WAIT_MS = 10_000;
const cert = await makeTestCertificate(t);
const fleet = await inProcessFleet(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile });
const replica = fleet.replicas[0] as InProcessReplica;
const origin = `https://127.0.0.1:${replica.port}`;

/** One HTTP/2 stream request: its response headers and the body text so far. */
interface H2Stream {
  headers: IncomingHttpHeaders;
  body: () => string;
}

async function h2Session(t: Test): Promise<ClientHttp2Session> {
  const session = connect(origin, { ca: cert.certPem });
  t.teardown(() => session.destroy());
  await once(session, 'connect', WAIT_MS, 'HTTP/2 session connects');
  return session;
}

async function h2Get(session: ClientHttp2Session, path: string): Promise<H2Stream> {
  const stream = session.request({ ':path': path, accept: 'text/event-stream' });
  let body = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    body += chunk;
  });
  const [headers] = (await once(stream, 'response', WAIT_MS, `response to ${path}`)) as [IncomingHttpHeaders];
  return { headers, body: () => body };
}

/** A JSON request over HTTP/2 (the fleet helpers use fetch, which cannot be given this CA). */
async function h2Json(session: ClientHttp2Session, method: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const stream = session.request({ ':method': method, ':path': path, authorization: `Bearer ${PUBLISH_API_KEY}`, 'content-type': 'application/json' });
  stream.end(JSON.stringify(body));
  let text = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const [headers] = (await once(stream, 'response', WAIT_MS, `${method} ${path}`)) as [IncomingHttpHeaders];
  await once(stream, 'end', WAIT_MS, `${method} ${path} body`);
  return { status: Number(headers[':status']), json: JSON.parse(text) };
}

async function mintToken(session: ClientHttp2Session, userId: string): Promise<string> {
  const answer = await h2Json(session, 'POST', '/v1/tokens', { userId });
  if (answer.status !== 201) throw new Error(`token: ${answer.status}`);
  return answer.json.token as string;
}

const publish = (session: ClientHttp2Session, userId: string, data: unknown) => h2Json(session, 'POST', `/v1/users/${userId}/events`, { data });

const dataOf = (body: string): string[] => parseSseStream(body).events.map((event) => event.data);

t.test('HTTP/2: the stream opens with its head and first bytes, and events arrive on every multiplexed stream', async (t) => {
  const session = await h2Session(t);
  t.equal(session.alpnProtocol, 'h2', 'ALPN chose h2');
  const token = await mintToken(session, 'ada');
  const streams = [await h2Get(session, `/stream/ada?token=${token}`), await h2Get(session, `/stream/ada?token=${token}`)];
  for (const [i, stream] of streams.entries()) {
    t.equal(stream.headers[':status'], 200, `stream ${i}: 200`);
    t.match(String(stream.headers['content-type']), /^text\/event-stream\b/, `stream ${i}: text/event-stream`);
    t.equal(stream.headers['cache-control'], 'no-cache', `stream ${i}: cache-control`);
    t.equal(stream.headers['x-accel-buffering'], 'no', `stream ${i}: x-accel-buffering`);
    t.equal(stream.headers['x-replica-id'], replica.replicaId, `stream ${i}: x-replica-id`);
    t.equal(stream.headers.connection, undefined, `stream ${i}: no connection-specific header`);
    await waitFor(() => /^retry: \d+\n\n?:[^\n]*\n/.test(stream.body()), { timeoutMs: WAIT_MS, label: `stream ${i}: retry line and comment` });
  }
  const published = await publish(session, 'ada', { over: 'h2' });
  t.equal(published.status, 202, 'published');
  for (const [i, stream] of streams.entries()) {
    await waitFor(() => dataOf(stream.body()).length >= 1, { timeoutMs: WAIT_MS, label: `stream ${i}: the event` });
    t.same(dataOf(stream.body()), [JSON.stringify({ over: 'h2' })], `stream ${i} received the event, on one connection with the other`);
  }
  const refused = await h2Get(session, '/stream/ada');
  await once(session.request({ ':path': '/healthz' }).resume(), 'end', WAIT_MS, 'another request on the same session');
  t.equal(refused.headers[':status'], 401, 'a refusal over HTTP/2 is the usual 401');
  t.match(String(refused.headers['content-type']), /^application\/problem\+json\b/, 'problem+json');
});

t.test('HTTP/1.1 over TLS for a client that does not offer h2', async (t) => {
  const session = await h2Session(t);
  const token = await mintToken(session, 'grace');
  // A keep-alive client (as browsers are) that offers only http/1.1 in ALPN.
  const agent = new Agent({ keepAlive: true, ca: cert.certPem, ALPNProtocols: ['http/1.1'] });
  t.teardown(() => agent.destroy());
  const request = httpsRequest(`${origin}/stream/grace?token=${token}`, { agent, headers: { accept: 'text/event-stream' } });
  request.end();
  const [response] = (await once(request, 'response', WAIT_MS, 'HTTP/1.1 response')) as [IncomingMessage];
  t.teardown(() => response.destroy());
  let body = '';
  response.setEncoding('utf8').on('data', (chunk: string) => {
    body += chunk;
  });
  t.equal((response.socket as TLSSocket).alpnProtocol, 'http/1.1', 'ALPN chose http/1.1');
  t.equal(response.httpVersion, '1.1', 'answered in HTTP/1.1');
  t.equal(response.statusCode, 200, '200');
  t.match(String(response.headers['content-type']), /^text\/event-stream\b/, 'text/event-stream');
  t.equal(response.headers.connection, 'keep-alive', 'Node keeps the HTTP/1.1 connection alive and says so');
  await waitFor(() => /^retry: \d+\n/.test(body), { timeoutMs: WAIT_MS, label: 'retry line' });
  await publish(session, 'grace', { over: 'http/1.1' });
  await waitFor(() => dataOf(body).length >= 1, { timeoutMs: WAIT_MS, label: 'the event' });
  t.same(dataOf(body), [JSON.stringify({ over: 'http/1.1' })], 'the event arrives');
});

t.test('TLS settings: both files or neither; an unreadable file stops the boot by name', async (t) => {
  t.throws(() => loadConfig({ TLS_CERT_FILE: cert.certFile }), /TLS_CERT_FILE and TLS_KEY_FILE go together/, 'the certificate alone');
  t.throws(() => loadConfig({ TLS_KEY_FILE: cert.keyFile }), /TLS_CERT_FILE and TLS_KEY_FILE go together/, 'the key alone');
  const { config } = loadConfig({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: `${cert.keyFile}.missing`, LOG_LEVEL: 'silent' });
  t.throws(
    () => buildApp(config, { ...memoryParts({ historyMaxLen: 10, historyTtlSeconds: 60 }), logger: pino({ level: 'silent' }) }),
    new ConfigError(`TLS_KEY_FILE: cannot read ${cert.keyFile}.missing (ENOENT)`),
    'a missing key file: a ConfigError naming TLS_KEY_FILE',
  );
  t.equal(loadConfig({}).config.tls, undefined, 'neither: plain HTTP/1.1');
});
