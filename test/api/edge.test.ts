// What the edge takes from a request, on the in-process app: bodies as sent (no type coercion),
// no JSON nested deeper than the service can serialise, forwarded headers only from a trusted
// proxy and never a callbackUrl that is not http(s).
import t, { type Test } from 'tap';
import type { App } from '../../src/context.js';
import { MAX_JSON_DEPTH } from '../../src/json-depth.js';
import { inProcessApp } from '../helpers/in-process-app.js';

const KEY = 'edge-test-publish-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };

async function post(app: App, url: string, payload: unknown, headers: Record<string, string> = auth) {
  const response = await app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers });
  return { status: response.statusCode, json: response.json() as Record<string, any>, headers: response.headers };
}

/** JSON text nesting `depth` arrays (the outermost is depth 1) inside `{"data": …}` when wrapped. */
const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;

function assertCode(t: Test, answer: { status: number; json: Record<string, any> }, status: number, code: string, label: string): void {
  t.equal(answer.status, status, `${label}: ${status}`);
  t.equal(answer.json.code, code, `${label}: ${code}`);
}

t.test('bodies are validated as sent: no type coercion on any route', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY: KEY, DEMO_MODE: 'true' });
  const refused: Array<[string, unknown]> = [
    ['/v1/users/alice/events', { type: 5, data: 1 }],
    ['/v1/users/alice/events', { type: true, data: 1 }],
    ['/v1/users/alice/events', { data: 1, id: 17 }],
    ['/v1/topics/news/events', { type: 5, data: 1 }],
    ['/v1/tokens', { userId: 42 }],
    ['/v1/tokens', { userId: 'alice', ttlSeconds: '60' }],
    ['/v1/tokens', { userId: 'alice', topics: [5] }],
    ['/v1/tokens', { userId: 'alice', topics: 'news' }],
    ['/v1/jobs', { userId: 42 }],
    ['/v1/jobs', { userId: 'alice', ttlSeconds: '60' }],
    ['/demo/token', { userId: 42 }],
  ];
  for (const [url, body] of refused) assertCode(t, await post(app, url, body), 400, 'invalid_request', `${url} ${JSON.stringify(body)}`);
  // The same bodies with the right types are accepted, so the 400s are about the types alone.
  t.equal((await post(app, '/v1/users/alice/events', { type: 'five', data: 1, id: '17' })).status, 202);
  t.equal((await post(app, '/v1/tokens', { userId: 'alice', ttlSeconds: 60, topics: ['news'] })).status, 201);
  t.equal((await post(app, '/v1/jobs', { userId: 'alice', ttlSeconds: 60 })).status, 201);
  t.equal((await post(app, '/demo/token', { userId: 'alice' })).status, 201);
});

t.test(`JSON nested deeper than ${MAX_JSON_DEPTH} levels is a 400 on every route that takes a body`, async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY: KEY });
  const raw = async (url: string, body: string, headers: Record<string, string> = auth) => {
    const response = await app.inject({ method: 'POST', url, payload: body, headers: { 'content-type': 'application/json', ...headers } });
    return { status: response.statusCode, json: response.json() as Record<string, any> };
  };
  const job = await post(app, '/v1/jobs', { userId: 'alice' });
  const callbackPath = new URL(job.json.callbackUrl).pathname;

  for (const depth of [5000, MAX_JSON_DEPTH]) {
    // `{"data": …}` is one level; the array inside it makes the rest.
    const label = `${depth + 1} levels`;
    assertCode(t, await raw('/v1/users/alice/events', `{"data":${nested(depth)}}`), 400, 'invalid_request', `publish to a user, ${label}`);
    assertCode(t, await raw('/v1/topics/news/events', `{"data":${nested(depth)}}`), 400, 'invalid_request', `publish to a topic, ${label}`);
    assertCode(t, await raw('/v1/jobs', `{"userId":"alice","metadata":{"m":${nested(depth - 1)}}}`), 400, 'invalid_request', `job metadata, ${label}`);
    assertCode(t, await raw('/v1/tokens', `{"userId":"alice","extra":${nested(depth)}}`), 400, 'invalid_request', `token body, ${label}`);
    assertCode(t, await raw(callbackPath, nested(depth + 1), {}), 400, 'invalid_request', `callback, ${label}`);
  }
  // Exactly the limit is fine everywhere.
  const deepest = MAX_JSON_DEPTH - 1;
  t.equal((await raw('/v1/users/alice/events', `{"data":${nested(deepest)}}`)).status, 202, `publish at ${MAX_JSON_DEPTH} levels`);
  t.equal((await raw('/v1/jobs', `{"userId":"alice","metadata":{"m":${nested(deepest - 1)}}}`)).status, 201, `job metadata at ${MAX_JSON_DEPTH} levels`);
  t.equal((await raw(callbackPath, nested(MAX_JSON_DEPTH), {})).status, 202, `callback at ${MAX_JSON_DEPTH} levels`);
});

t.test('forwarded headers count only from a trusted proxy, and callbackUrl is only ever http(s)', async (t) => {
  const forwarded = (proto: string) => ({ ...auth, host: 'replica.internal:3000', 'x-forwarded-proto': proto, 'x-forwarded-host': 'push.example.com' });
  const callbackBase = async (app: App, headers: Record<string, string>, remoteAddress = '127.0.0.1') => {
    const response = await app.inject({ method: 'POST', url: '/v1/jobs', payload: { userId: 'alice' }, headers, remoteAddress });
    t.equal(response.statusCode, 201);
    const url = response.json().callbackUrl as string;
    return url.slice(0, url.indexOf('/v1/callbacks/'));
  };

  const { app: untrusting } = await inProcessApp(t, { PUBLISH_API_KEY: KEY });
  t.equal(await callbackBase(untrusting, forwarded('https')), 'http://replica.internal:3000', 'by default X-Forwarded-* is ignored');
  t.equal(await callbackBase(untrusting, forwarded('javascript')), 'http://replica.internal:3000', 'including a hostile X-Forwarded-Proto');

  const { app: trusting } = await inProcessApp(t, { PUBLISH_API_KEY: KEY, TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' });
  t.equal(await callbackBase(trusting, forwarded('https')), 'https://push.example.com', 'from a listed proxy, X-Forwarded-Proto and -Host are believed');
  t.equal(await callbackBase(trusting, forwarded('http')), 'http://push.example.com');
  t.equal(await callbackBase(trusting, forwarded('HTTPS')), 'https://push.example.com', 'the scheme in any case');
  for (const proto of ['javascript', 'ftp', 'data', 'https:', 'https, javascript']) {
    t.match(
      await callbackBase(trusting, forwarded(proto)),
      /^http:\/\/push\.example\.com$/,
      `X-Forwarded-Proto ${JSON.stringify(proto)} gives http, never another scheme`,
    );
  }
  t.equal(
    await callbackBase(trusting, forwarded('https'), '192.0.2.7'),
    'http://replica.internal:3000',
    'from an address not listed, X-Forwarded-* is ignored',
  );

  const { app: published } = await inProcessApp(t, { PUBLISH_API_KEY: KEY, TRUST_PROXY: 'true', PUBLIC_URL: 'https://push.example.org/' });
  t.equal(await callbackBase(published, forwarded('javascript')), 'https://push.example.org', 'PUBLIC_URL wins over any header');
});
