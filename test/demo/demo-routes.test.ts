// The demo page is served only with DEMO_MODE=true; without it `/` is a small status page. The
// page's helper endpoints exist only in demo mode too, because each gives away what production
// must not (a token without a key, where a user's streams are).
import t from 'tap';
import { StreamTokens } from '../../src/auth/stream-tokens.js';
import { inProcessApp } from '../helpers/in-process-app.js';

const replica = (t: Parameters<typeof inProcessApp>[0], env: Record<string, string>) => inProcessApp(t, { REPLICA_ID: 'demo-test', ...env });

t.test('with demo mode on, the page and its files are served behind a strict CSP', async (t) => {
  const { app: on } = await replica(t, { DEMO_MODE: 'true' });
  for (const [url, type] of [
    ['/', /^text\/html/],
    ['/demo.js', /^text\/javascript/],
    ['/demo.css', /^text\/css/],
  ] as const) {
    const response = await on.inject({ method: 'GET', url });
    t.equal(response.statusCode, 200, `GET ${url}`);
    t.match(response.headers['content-type'], type, `${url} content type`);
    t.match(response.headers['content-security-policy'], /default-src 'none'; script-src 'self'/, `${url} CSP`);
  }
  const page = (await on.inject({ method: 'GET', url: '/' })).body;
  t.match(page, /<title>Switchboard demo<\/title>/, 'the demo page');
  t.match(page, /same origin[^<]*<code>CORS_ORIGINS<\/code>/, "its banner says a page must be on the API's origin unless CORS_ORIGINS lists it");
});

t.test("with demo mode off, / is a status page and the demo's files are absent", async (t) => {
  const { app: off } = await replica(t, {});
  const response = await off.inject({ method: 'GET', url: '/' });
  t.equal(response.statusCode, 200, 'GET /');
  t.match(response.headers['content-type'], /^text\/html/, 'HTML');
  t.match(response.headers['content-security-policy'], /default-src 'none'/, 'behind the same CSP');
  t.match(response.body, /<title>Switchboard<\/title>/, 'named');
  t.match(response.body, /This replica is running/, 'says the replica runs');
  t.notMatch(response.body, /demo\.js|<script/, 'loads no demo script');
  const links = [...response.body.matchAll(/href="([^"]+)"/g)].map((match) => match[1] as string);
  t.same(links, ['/openapi.yaml', '/healthz', '/readyz'], 'links to the API description and the health checks');
  for (const link of links) t.equal((await off.inject({ method: 'GET', url: link })).statusCode, 200, `${link} answers 200`);

  for (const url of ['/demo.js', '/demo.css']) {
    const absent = await off.inject({ method: 'GET', url });
    t.equal(absent.statusCode, 404, `GET ${url}: 404`);
    t.equal(absent.json().code, 'not_found', `${url}: problem+json not_found`);
  }
});

t.test('with demo mode off the helper endpoints do not exist', async (t) => {
  const { app: off } = await replica(t, {});
  const token = await off.inject({ method: 'POST', url: '/demo/token', payload: { userId: 'alice' } });
  t.equal(token.statusCode, 404, 'POST /demo/token: 404');
  t.equal(token.json().code, 'not_found', 'as an unknown route');
  t.equal((await off.inject({ method: 'GET', url: '/demo/streams/alice' })).statusCode, 404, 'GET /demo/streams/:userId: 404');
});

t.test("with demo mode on: a token for any user, and this replica's stream count", async (t) => {
  const { app: on, config } = await replica(t, { DEMO_MODE: 'true' });
  const minted = await on.inject({ method: 'POST', url: '/demo/token', payload: { userId: 'alice' } });
  t.equal(minted.statusCode, 201, 'POST /demo/token without a key: 201');
  t.equal(
    new StreamTokens(config.streamTokenSecret, config.streamTokenAudience).check(minted.json().token).userId,
    'alice',
    'a valid subscriber token for the user',
  );

  const refused = await on.inject({ method: 'POST', url: '/demo/token', payload: { userId: 'not valid!' } });
  t.equal(refused.statusCode, 400, 'a bad user id is refused');
  t.equal(refused.json().code, 'invalid_user_id', 'with the registry code');

  const streams = await on.inject({ method: 'GET', url: '/demo/streams/alice' });
  t.same(streams.json(), { replicaId: 'demo-test', streams: 0 }, 'which replica answered, and how many streams of the user it holds');
  t.equal((await on.inject({ method: 'GET', url: '/demo/streams/not%20valid' })).json().code, 'invalid_user_id', 'a bad user id is refused');
});
