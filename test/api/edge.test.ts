// What the edge takes from a request, on the in-process app: bodies as sent (no type coercion),
// no JSON nested deeper than the service can serialise, forwarded headers only from a trusted
// proxy and never a callbackUrl that is not http(s).
import t, { type Test } from 'tap';
import type { App } from '../../src/app.js';
import { inProcessApp } from '../helpers/in-process-app.js';

const KEY = 'edge-test-publish-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };

async function post(app: App, url: string, payload: unknown, headers: Record<string, string> = auth) {
  const response = await app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers });
  return { status: response.statusCode, json: response.json() as Record<string, any>, headers: response.headers };
}

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
