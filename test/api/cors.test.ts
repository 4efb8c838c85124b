// CORS_ORIGINS, the header matrix, in-process: unset means no CORS at all (OPTIONS stays a 404);
// `*` allows any origin without credentials; a list echoes each listed origin with credentials and
// `Vary: Origin`, and gives an unlisted origin nothing. Preflights name the methods and headers
// the API takes. The SSE stream writes its own head (the reply is hijacked), so it is checked on
// its own: an open stream, a refused one (4xx problem) and a `retry:` + end answer.
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import type { App } from '../../src/context.js';
import { CORS_ALLOWED_HEADERS, CORS_MAX_AGE_SECONDS } from '../../src/http/cors.js';
import { rawRequest } from '../helpers/http.js';
import { inProcessApp } from '../helpers/in-process-app.js';
import { openSse } from '../helpers/sse-client.js';

const LISTED = 'https://app.example.com';
const ALSO_LISTED = 'http://localhost:5173';
const UNLISTED = 'https://evil.example.net';
const LIST = `${LISTED}, ${ALSO_LISTED}`;

const preflight = (app: App, origin: string, url = '/stream/alice'): Promise<LightMyRequestResponse> =>
  app.inject({
    method: 'OPTIONS',
    url,
    headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id, authorization' },
  });

const corsHeaders = (answer: { headers: Record<string, unknown> }): string[] =>
  Object.keys(answer.headers).filter((name) => name.startsWith('access-control-'));

/** Refused with a 4xx the browser can read: a stream asked for without a token. */
const refusedStream = (app: App, origin: string): Promise<LightMyRequestResponse> =>
  app.inject({ url: '/stream/alice', headers: { origin, accept: 'text/event-stream' } });

function assertAllowedFor(t: Test, answer: { headers: Record<string, unknown> }, origin: string, label: string): void {
  t.equal(answer.headers['access-control-allow-origin'], origin, `${label}: the origin is echoed`);
  t.equal(answer.headers['access-control-allow-credentials'], 'true', `${label}: with credentials`);
  t.match(String(answer.headers.vary), /\bOrigin\b/i, `${label}: Vary: Origin`);
  t.equal(answer.headers['access-control-expose-headers'], 'X-Replica-Id', `${label}: X-Replica-Id is readable`);
}

t.test('CORS_ORIGINS unset: no CORS header anywhere, and OPTIONS is still a 404', async (t) => {
  const { app } = await inProcessApp(t);
  for (const [label, answer] of [
    ['GET /healthz', await app.inject({ url: '/healthz', headers: { origin: LISTED } })],
    ['a refused stream', await refusedStream(app, LISTED)],
  ] as const) {
    t.same(corsHeaders(answer), [], `${label}: no access-control-* header`);
  }
  const answer = await preflight(app, LISTED);
  t.equal(answer.statusCode, 404, 'a preflight is not answered');
  t.equal(answer.json().code, 'not_found', 'with the usual problem');
  t.same(corsHeaders(answer), [], 'and no access-control-* header');
});

t.test('CORS_ORIGINS=*: any origin, never with credentials', async (t) => {
  const { app } = await inProcessApp(t, { CORS_ORIGINS: '*' });
  for (const origin of [LISTED, UNLISTED]) {
    const answer = await app.inject({ url: '/healthz', headers: { origin } });
    t.equal(answer.headers['access-control-allow-origin'], '*', `${origin}: allowed as *`);
    t.equal(answer.headers['access-control-allow-credentials'], undefined, `${origin}: no credentials with *`);
    t.equal(answer.headers['access-control-expose-headers'], 'X-Replica-Id', `${origin}: X-Replica-Id is readable`);
  }
  const answer = await preflight(app, UNLISTED);
  t.equal(answer.statusCode, 204, 'a preflight from any origin is answered');
  t.equal(answer.headers['access-control-allow-origin'], '*');
  t.equal(answer.headers['access-control-allow-credentials'], undefined, 'without credentials');
  const plain = await app.inject({ url: '/healthz' });
  t.same(corsHeaders(plain), [], 'a request without Origin (not a cross-origin browser call) gets no CORS header');
});

t.test('CORS_ORIGINS=<list>: each listed origin echoed with credentials; an unlisted one gets nothing', async (t) => {
  const { app } = await inProcessApp(t, { CORS_ORIGINS: LIST });
  for (const origin of [LISTED, ALSO_LISTED]) {
    assertAllowedFor(t, await app.inject({ url: '/healthz', headers: { origin } }), origin, `GET /healthz from ${origin}`);
  }
  const unlisted = await app.inject({ url: '/healthz', headers: { origin: UNLISTED } });
  t.equal(unlisted.statusCode, 200, 'an unlisted origin is still served (the browser is what refuses it)');
  t.same(corsHeaders(unlisted), [], 'but without any access-control-* header');
  t.match(String(unlisted.headers.vary), /\bOrigin\b/i, "and with Vary: Origin, so no cache hands it a listed origin's answer");
  const nearMiss = await app.inject({ url: '/healthz', headers: { origin: `${LISTED}.evil.example.net` } });
  t.same(corsHeaders(nearMiss), [], 'origins are compared exactly, not by prefix');
  const plain = await app.inject({ url: '/healthz' });
  t.same(corsHeaders(plain), [], 'no Origin, no CORS header');
});

t.test('a preflight names the methods, the request headers, the exposed header and a max-age', async (t) => {
  const { app } = await inProcessApp(t, { CORS_ORIGINS: LIST });
  const answer = await preflight(app, LISTED);
  t.equal(answer.statusCode, 204, '204');
  assertAllowedFor(t, answer, LISTED, 'preflight');
  t.same(String(answer.headers['access-control-allow-methods']).split(/,\s*/).sort(), ['GET', 'HEAD', 'POST'], 'GET, HEAD, POST');
  const allowed = String(answer.headers['access-control-allow-headers'])
    .split(/,\s*/)
    .map((name) => name.toLowerCase())
    .sort();
  t.same(
    allowed,
    ['authorization', 'content-type', 'idempotency-key', 'last-event-id', 'webhook-id', 'webhook-signature', 'webhook-timestamp', 'x-event-type'],
    'every header the API reads',
  );
  t.same(allowed, CORS_ALLOWED_HEADERS.map((name) => name.toLowerCase()).sort());
  t.equal(answer.headers['access-control-max-age'], String(CORS_MAX_AGE_SECONDS), 'a max-age');
  const publish = await preflight(app, ALSO_LISTED, '/v1/users/alice/events');
  t.equal(publish.statusCode, 204, 'any route is preflighted, a publish too');

  const refused = await preflight(app, UNLISTED);
  t.equal(refused.statusCode, 404, "an unlisted origin's preflight is not answered");
  t.same(corsHeaders(refused), [], 'and carries no access-control-* header');
});

t.test('the stream carries the CORS headers: refused, open, and sent to retry', async (t) => {
  // MAX_CONNECTIONS 1: the second stream gets the temporary answer (200 + retry: + end).
  const { app, config } = await inProcessApp(t, { CORS_ORIGINS: LIST, MAX_CONNECTIONS: '1' });

  const refused = await refusedStream(app, LISTED);
  t.equal(refused.statusCode, 401, 'no token: 401');
  t.match(String(refused.headers['content-type']), /^application\/problem\+json/, 'a problem');
  assertAllowedFor(t, refused, LISTED, 'the 401 on the stream');

  const minted = await app.inject({
    method: 'POST',
    url: '/v1/tokens',
    headers: { authorization: `Bearer ${config.publishApiKeys[0]}` },
    payload: { userId: 'alice' },
  });
  t.equal(minted.statusCode, 201, 'a token for alice');
  const token = minted.json().token as string;

  // A real socket: the open stream never ends, so inject could not return it.
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const open = await openSse(`${address}/stream/alice?token=${token}`, { headers: { origin: ALSO_LISTED } });
  t.teardown(() => open.close());
  t.equal(open.status, 200, 'the stream opens');
  t.match(String(open.headers['content-type']), /^text\/event-stream/);
  assertAllowedFor(t, open, ALSO_LISTED, 'the open stream (a hijacked reply)');

  // Over the socket too: inject never settles on a hijacked reply that ends at once.
  const full = await rawRequest({ url: `${address}/stream/alice?token=${token}`, headers: { origin: LISTED, accept: 'text/event-stream' } });
  t.equal(full.status, 200, 'the replica is full: 200 ...');
  t.match(full.body, /^retry: \d+\n/, '... + retry: + end');
  assertAllowedFor(t, full, LISTED, 'the retry answer (a hijacked reply)');

  const unlisted = await openSse(`${address}/stream/alice?token=${token}`, { headers: { origin: UNLISTED } });
  t.teardown(() => unlisted.close());
  t.same(corsHeaders(unlisted), [], "an unlisted origin's stream carries no access-control-* header");
});
