// STREAM_TOKEN_COOKIE against a replica built in this process on a real redis-server, over real
// sockets: the stream token may come from that cookie alone, a missing, forged or expired one is a
// 401 like any other token, the precedence between header, query and cookie is as documented
// (the first source present decides, never a fallback), the cookie is taken only from a request
// without Origin or from a listed origin, a replica without the setting ignores the cookie, and
// the token never reaches a log line.
import { createSigner } from 'fast-jwt';
import t, { type Test } from 'tap';
import { STREAM_TOKEN_SECRET, fleetEnv, waitOpen } from '../helpers/fleet.js';
import { rawRequest, type RawResponse } from '../helpers/http.js';
import { inProcessFleet, inProcessReplica, type InProcessReplica } from '../helpers/in-process-replica.js';
import { openSse, type SseConnection } from '../helpers/sse-client.js';

const COOKIE = 'sb_token';
const APP_ORIGIN = 'https://app.example.test';
const fleet = await inProcessFleet(t, { STREAM_TOKEN_COOKIE: COOKIE, CORS_ORIGINS: `${APP_ORIGIN},http://localhost:5173` });
const replica = fleet.replicas[0] as InProcessReplica;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const signForged = createSigner({ key: 'not-the-stream-secret-0123456789', algorithm: 'HS256' });
const sign = createSigner({ key: STREAM_TOKEN_SECRET, algorithm: 'HS256' });
const streamUrl = (endpoint: { url: string }, userId: string, query = ''): string => `${endpoint.url}/stream/${userId}${query}`;

function getStream(userId: string, headers: Record<string, string>, query = '', endpoint: { url: string } = replica): Promise<RawResponse> {
  return rawRequest({ url: streamUrl(endpoint, userId, query), headers: { accept: 'text/event-stream', ...headers } });
}

async function open(t: Test, userId: string, headers: Record<string, string>, query = ''): Promise<SseConnection> {
  const connection = await openSse(streamUrl(replica, userId, query), { headers });
  t.teardown(() => connection.close());
  return connection;
}

function assertProblem(t: Test, answer: RawResponse, status: number, code: string, label: string): void {
  t.equal(answer.status, status, `${label}: status ${status}`);
  t.match(String(answer.headers['content-type']), /^application\/problem\+json\b/, `${label}: problem+json`);
  t.equal(answer.json?.code, code, `${label}: code ${code}`);
}

t.test('the cookie alone opens the stream, and the stream receives events', async (t) => {
  const token = await fleet.token('ada');
  // The way a browser sends it: among the page's other cookies.
  const stream = await waitOpen(await open(t, 'ada', { cookie: `theme=dark; ${COOKIE}=${token}; lang=en` }), 'cookie stream');
  t.equal(stream.status, 200, '200');
  t.match(String(stream.headers['content-type']), /^text\/event-stream\b/, 'an SSE stream');
  const published = await fleet.publish(replica, 'ada', { via: 'cookie' });
  const [event] = await stream.waitForEvents(1);
  t.equal(event?.data, JSON.stringify({ via: 'cookie' }), 'the event arrives');
  t.equal(event?.lastEventId, published.json.id, 'with its id');

  const fromApp = await waitOpen(await open(t, 'ada', { cookie: `${COOKIE}=${token}`, origin: APP_ORIGIN }), 'cookie stream from the app');
  t.equal(fromApp.status, 200, 'from an origin CORS_ORIGINS lists: 200');
  t.equal(fromApp.headers['access-control-allow-origin'], APP_ORIGIN, 'with the CORS answer for that origin');
  t.equal(fromApp.headers['access-control-allow-credentials'], 'true', 'credentials allowed (the cookie was one)');

  const logs = replica.logs.join('\n');
  t.ok(logs.includes('/stream/ada'), 'the stream requests were logged');
  t.notOk(logs.includes(token), 'the token is on no log line (not in a URL, the cookie header redacted)');
});

t.test('401: no cookie, an empty one, a forged one, an expired one', async (t) => {
  assertProblem(t, await getStream('ada', {}), 401, 'missing_token', 'no cookie header');
  assertProblem(t, await getStream('ada', { cookie: 'theme=dark; sb_tokens=x; xsb_token=y' }), 401, 'missing_token', 'other cookies only');
  assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=` }), 401, 'missing_token', 'an empty cookie');
  const claims = { sub: 'ada', aud: 'switchboard', exp: nowSeconds() + 600 };
  assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=${signForged(claims)}` }), 401, 'invalid_token', 'signed with another secret');
  assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=garbage` }), 401, 'invalid_token', 'not a JWT');
  assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=${sign({ ...claims, exp: nowSeconds() - 60 })}` }), 401, 'token_expired', 'expired');
  assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=${await fleet.token('grace')}` }), 403, 'token_user_mismatch', "another user's cookie");
});

t.test('precedence: Authorization, then ?token=, then the cookie; the first present decides', async (t) => {
  const good = await fleet.token('ada');
  const forged = signForged({ sub: 'ada', aud: 'switchboard', exp: nowSeconds() + 600 });
  const graceToken = await fleet.token('grace');

  const headerWins = await waitOpen(await open(t, 'ada', { authorization: `Bearer ${good}`, cookie: `${COOKIE}=${forged}` }), 'header + forged cookie');
  t.equal(headerWins.status, 200, 'a valid header with a forged cookie: the header is checked, 200');
  const queryWins = await waitOpen(await open(t, 'ada', { cookie: `${COOKIE}=${forged}` }, `?token=${good}`), 'query + forged cookie');
  t.equal(queryWins.status, 200, 'a valid ?token= with a forged cookie: the query is checked, 200');

  assertProblem(
    t,
    await getStream('ada', { authorization: `Bearer ${forged}`, cookie: `${COOKIE}=${good}` }),
    401,
    'invalid_token',
    'forged header, valid cookie: no fallback',
  );
  assertProblem(
    t,
    await getStream('ada', { cookie: `${COOKIE}=${good}` }, `?token=${forged}`),
    401,
    'invalid_token',
    'forged query, valid cookie: no fallback',
  );
  assertProblem(
    t,
    await getStream('ada', { cookie: `${COOKIE}=${good}` }, `?token=${graceToken}`),
    403,
    'token_user_mismatch',
    "another user's query token wins over the cookie",
  );
  assertProblem(
    t,
    await getStream('ada', { cookie: `${COOKIE}=${good}` }, '?token='),
    401,
    'missing_token',
    'an empty ?token= is a token given (empty), not a fall-through',
  );

  // Two cookies of the name (a parent domain's and a host's): the first the browser sends counts.
  const first = await waitOpen(await open(t, 'ada', { cookie: `${COOKIE}=${good}; ${COOKIE}=${forged}` }), 'two cookies, good first');
  t.equal(first.status, 200, 'two same-named cookies: the first is checked (good first: 200)');
  assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=${forged}; ${COOKIE}=${good}` }), 401, 'invalid_token', 'two same-named cookies, forged first');
});

t.test('a cookie token only from a request without Origin or from a listed origin', async (t) => {
  const good = await fleet.token('ada');
  for (const origin of ['https://evil.example.test', 'null', 'https://app.example.test:8443', 'http://app.example.test']) {
    assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=${good}`, origin }), 403, 'origin_not_allowed', `Origin ${origin}`);
  }
  // An explicit token is not ambient: a page had to be given it. CORS (the browser) decides who reads.
  const explicit = await waitOpen(await open(t, 'ada', { origin: 'https://evil.example.test' }, `?token=${good}`), 'explicit token, unlisted origin');
  t.equal(explicit.status, 200, 'an explicit token from an unlisted origin is checked as before (200, no CORS header)');
  t.equal(explicit.headers['access-control-allow-origin'], undefined, 'with no CORS header, so a browser refuses it');
});

t.test('a replica without STREAM_TOKEN_COOKIE ignores the cookie', async (t) => {
  const plain = await inProcessReplica(t, fleetEnv(fleet.redis, { REPLICA_ID: 'r2' }));
  const good = await fleet.token('ada');
  assertProblem(t, await getStream('ada', { cookie: `${COOKIE}=${good}` }, '', plain), 401, 'missing_token', 'cookie only, feature off');
});
