// What the edge takes from a request, on the in-process app: bodies as sent (no type coercion),
// no JSON nested deeper than the service can serialise, forwarded headers only from a trusted
// proxy and never a callbackUrl that is not http(s).
import t, { type Test } from 'tap';
import type { App } from '../../src/app.js';
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
