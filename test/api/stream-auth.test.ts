// The subscriber-token matrix of GET /stream/:userId against a replica built in this process on a
// real redis-server, over real sockets: every refusal is a 4xx problem+json with its stable code,
// the accepted stream has the contract's headers and first bytes, the per-user stream limit is
// enforced, and an expiring token ends the stream with `event: auth-expired`.
import t, { type Test } from 'tap';
import { createSigner } from 'fast-jwt';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../helpers/fleet.js';
import { postJson, rawRequest, type RawResponse } from '../helpers/http.js';
import { inProcessFleet, type InProcessReplica } from '../helpers/in-process-replica.js';
import { openSse, type SseConnection } from '../helpers/sse-client.js';
import { waitFor, withTimeout } from '../helpers/wait-for.js';

const MAX_CONNECTIONS_PER_USER = 2;

const fleet = await inProcessFleet(t, { MAX_CONNECTIONS_PER_USER: String(MAX_CONNECTIONS_PER_USER) });
const replica = fleet.replicas[0] as InProcessReplica;

const sign = createSigner({ key: STREAM_TOKEN_SECRET, algorithm: 'HS256' });
const signWrongSecret = createSigner({ key: 'not-the-stream-secret-0123456789', algorithm: 'HS256' });
const signHs512 = createSigner({ key: STREAM_TOKEN_SECRET, algorithm: 'HS512' });
const nowSeconds = (): number => Math.floor(Date.now() / 1000);
/** STREAM_TOKEN_AUDIENCE's default: hand-signed tokens must carry it as `aud`. */
const AUDIENCE = 'switchboard';
const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

const streamUrl = (userId: string, query = ''): string => `${replica.url}/stream/${encodeURIComponent(userId)}${query}`;

/** GET the stream the way a browser's EventSource does, and read the whole (refusal) answer. */
function getStream(userId: string, query = '', headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest({ url: streamUrl(userId, query), headers: { accept: 'text/event-stream', ...headers } });
}

/** Opens a stream and registers its close; the caller decides whether it must be 200. */
async function open(t: Test, userId: string, query = '', headers: Record<string, string> = {}): Promise<SseConnection> {
  const connection = await openSse(streamUrl(userId, query), { headers });
  t.teardown(() => connection.close());
  return connection;
}

function assertProblem(t: Test, answer: RawResponse, status: number, code: string, label: string): void {
  t.equal(answer.status, status, `${label}: status ${status}`);
  t.match(String(answer.headers['content-type']), /^application\/problem\+json\b/, `${label}: application/problem+json`);
  t.equal(answer.json?.code, code, `${label}: code ${code}`);
  t.equal(answer.json?.status, status, `${label}: status member`);
  t.ok(
    ['type', 'title', 'detail'].every((k) => typeof answer.json?.[k] === 'string'),
    `${label}: type, title, detail members`,
  );
  t.notMatch(answer.body, /\n\s+at |node_modules|TokenError|FAST_JWT/i, `${label}: no internals`);
}

t.test('an accepted stream: headers and first bytes, by query token or by Authorization header', async (t) => {
  for (const [how, userId, byHeader] of [
    ['?token=', 'alice-query', false],
    ['Authorization: Bearer', 'alice-header', true],
  ] as const) {
    const token = await fleet.token(userId);
    const stream = byHeader ? await open(t, userId, '', { authorization: `Bearer ${token}` }) : await open(t, userId, `?token=${token}`);
    t.equal(stream.status, 200, `${how}: 200`);
    t.match(String(stream.headers['content-type']), /^text\/event-stream\b/, `${how}: content-type`);
    t.equal(stream.headers['cache-control'], 'no-cache', `${how}: cache-control`);
    t.equal(stream.headers['x-accel-buffering'], 'no', `${how}: x-accel-buffering`);
    t.equal(stream.headers['x-replica-id'], replica.replicaId, `${how}: x-replica-id`);
    await stream.waitFor((c) => /^retry: \d+\n(?:[^\n]*\n)*?:[^\n]*\n/.test(c.body), 5000, `${how}: retry line and a comment`);
    t.match(stream.body, /^retry: \d+\n/, `${how}: the very first line is retry:`);
    t.ok(stream.comments.length >= 1, `${how}: a comment line arrived at once`);
    t.equal(stream.events.length, 0, `${how}: no event before anything was published`);

    const published = await fleet.publish(replica, userId, { hello: how });
    t.equal(published.status, 202);
    const [event] = await stream.waitForEvents(1);
    t.equal(event!.data, JSON.stringify({ hello: how }), `${how}: the stream receives events`);
    t.equal(event!.lastEventId, published.json.id, `${how}: with the answered id`);
  }
});

t.test('401: missing, garbage, forged and expired tokens', async (t) => {
  assertProblem(t, await getStream('alice'), 401, 'missing_token', 'no token');
  assertProblem(t, await getStream('alice', '?token='), 401, 'missing_token', 'empty ?token=');
  assertProblem(t, await getStream('alice', '', { authorization: 'Bearer ' }), 401, 'missing_token', 'empty bearer');
  assertProblem(t, await getStream('alice', '?token=garbage'), 401, 'invalid_token', 'garbage ?token=');
  assertProblem(t, await getStream('alice', '', { authorization: 'Bearer garbage.garbage.garbage' }), 401, 'invalid_token', 'garbage bearer');

  const claims = { sub: 'alice', aud: AUDIENCE, exp: nowSeconds() + 600 };
  const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
  assertProblem(t, await getStream('alice', `?token=${unsigned}`), 401, 'invalid_token', 'alg: none');
  const noneWithSig = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.${sign(claims).split('.')[2]}`;
  assertProblem(t, await getStream('alice', `?token=${noneWithSig}`), 401, 'invalid_token', 'alg: none with a borrowed signature');
  const strippedSignature = sign(claims).split('.').slice(0, 2).join('.') + '.';
  assertProblem(t, await getStream('alice', `?token=${strippedSignature}`), 401, 'invalid_token', 'HS256 header, signature stripped');
  assertProblem(t, await getStream('alice', `?token=${signWrongSecret(claims)}`), 401, 'invalid_token', 'HS256 with the wrong secret');
  assertProblem(t, await getStream('alice', `?token=${signHs512(claims)}`), 401, 'invalid_token', 'HS512 (only HS256 is accepted)');
  const good = sign(claims);
  const [header, , signature] = good.split('.');
  const tamperedClaims = `${header}.${b64url({ ...claims, sub: 'mallory' })}.${signature}`;
  assertProblem(t, await getStream('mallory', `?token=${tamperedClaims}`), 401, 'invalid_token', 'claims changed after signing');
  assertProblem(t, await getStream('alice', `?token=${sign({ sub: 'alice', aud: AUDIENCE })}`), 401, 'invalid_token', 'no exp claim');
  assertProblem(t, await getStream('alice', `?token=${sign({ aud: AUDIENCE, exp: nowSeconds() + 600 })}`), 401, 'invalid_token', 'no sub claim');
  assertProblem(t, await getStream('alice', `?token=${sign({ ...claims, topics: 'news' })}`), 401, 'invalid_token', 'topics claim not a list');

  assertProblem(
    t,
    await getStream('alice', `?token=${sign({ sub: 'alice', aud: AUDIENCE, exp: nowSeconds() - 60 })}`),
    401,
    'token_expired',
    'expired a minute ago',
  );
  assertProblem(
    t,
    await getStream('alice', '', { authorization: `Bearer ${sign({ sub: 'alice', aud: AUDIENCE, exp: nowSeconds() - 1 })}` }),
    401,
    'token_expired',
    'expired bearer',
  );

  // The audience: required, and exactly STREAM_TOKEN_AUDIENCE (one of a list of audiences will do).
  const { aud: _aud, ...withoutAud } = claims;
  assertProblem(t, await getStream('alice', `?token=${sign(withoutAud)}`), 401, 'invalid_token', 'no aud claim');
  assertProblem(t, await getStream('alice', `?token=${sign({ ...claims, aud: 'another-service' })}`), 401, 'invalid_token', 'another audience');
  assertProblem(
    t,
    await getStream('alice', `?token=${sign({ ...claims, aud: `${AUDIENCE}x` })}`),
    401,
    'invalid_token',
    'an audience that only starts like ours',
  );
  assertProblem(t, await getStream('alice', `?token=${sign({ ...claims, aud: ['another-service'] })}`), 401, 'invalid_token', 'a list without our audience');
  t.equal(
    (await open(t, 'aud-list', `?token=${sign({ ...claims, sub: 'aud-list', aud: ['another-service', AUDIENCE] })}`)).status,
    200,
    'a list with our audience is accepted',
  );

  // The lifetime: at most 86,400 s, counted from iat, or from now without one.
  const now = nowSeconds();
  assertProblem(t, await getStream('alice', `?token=${sign({ ...claims, iat: now, exp: now + 86_401 })}`), 401, 'invalid_token', 'exp - iat = 86401 s');
  assertProblem(
    t,
    await getStream('alice', `?token=${sign({ ...claims, iat: now - 600, exp: now + 86_000 })}`),
    401,
    'invalid_token',
    'exp - iat = 86600 s, issued 10 min ago',
  );
  assertProblem(t, await getStream('alice', `?token=${sign({ ...claims, exp: now + 86_400 + 120 })}`), 401, 'invalid_token', 'no iat, exp 86520 s away');
  assertProblem(t, await getStream('alice', `?token=${sign({ ...claims, exp: now + 10 * 365 * 86_400 })}`), 401, 'invalid_token', 'no iat, exp ten years away');
  assertProblem(
    t,
    await getStream('alice', `?token=${sign({ ...claims, iat: now + 86_400, exp: now + 2 * 86_400 })}`),
    401,
    'invalid_token',
    'iat a day ahead, exp two days away',
  );
  assertProblem(t, await getStream('alice', `?token=${sign({ ...claims, iat: 'yesterday' })}`), 401, 'invalid_token', 'iat not a number');
  t.equal(
    (await open(t, 'longest-lived', `?token=${sign({ ...claims, sub: 'longest-lived', iat: now, exp: now + 86_400 })}`)).status,
    200,
    'exp - iat = 86400 s is accepted',
  );
  t.equal(
    (await open(t, 'no-iat', `?token=${sign({ ...claims, sub: 'no-iat', exp: now + 86_000 })}`)).status,
    200,
    'no iat and exp within 86400 s is accepted',
  );

  // The same claims, correctly signed, are accepted: the refusals above are about the token alone.
  const accepted = await open(t, 'alice', `?token=${good}`);
  t.equal(accepted.status, 200, 'a hand-signed valid token is accepted');
});

t.test('403: token for another user, topic not granted', async (t) => {
  const bobToken = await fleet.token('bob');
  assertProblem(t, await getStream('alice', `?token=${bobToken}`), 403, 'token_user_mismatch', "bob's token on alice's stream");
  assertProblem(t, await getStream('alice', '', { authorization: `Bearer ${bobToken}` }), 403, 'token_user_mismatch', "bob's bearer on alice's stream");
  assertProblem(t, await getStream('Bob', `?token=${bobToken}`), 403, 'token_user_mismatch', 'user ids are case-sensitive');

  const newsToken = await fleet.token('carol', { topics: ['news'] });
  const plainToken = await fleet.token('carol');
  assertProblem(t, await getStream('carol', `?token=${newsToken}&topics=sports`), 403, 'topic_not_granted', 'a topic the token does not list');
  assertProblem(t, await getStream('carol', `?token=${newsToken}&topics=news,sports`), 403, 'topic_not_granted', 'one granted, one not');
  assertProblem(t, await getStream('carol', `?token=${plainToken}&topics=news`), 403, 'topic_not_granted', 'a token without topics');
  assertProblem(t, await getStream('carol', `?token=${newsToken}&topics=NEWS`), 403, 'topic_not_granted', 'topics are case-sensitive');

  const granted = await open(t, 'carol', `?token=${newsToken}&topics=news`);
  t.equal(granted.status, 200, 'a granted topic is joined');
  await waitOpen(granted, 'carol with news');
  const topicPublish = await postJson(`${replica.url}/v1/topics/news/events`, { data: 'headline' }, { bearer: PUBLISH_API_KEY });
  t.equal(topicPublish.status, 202);
  const [event] = await granted.waitForEvents(1);
  t.equal(event!.data, '"headline"', "the joined topic's events arrive");
});

t.test('400: bad userId, bad topic', async (t) => {
  const token = await fleet.token('dave');
  for (const bad of ['bad user', 'slash%2Fuser', 'x'.repeat(129), 'caf%C3%A9', 'semi;colon']) {
    assertProblem(t, await getStream(decodeURIComponent(bad), `?token=${token}`), 400, 'invalid_user_id', `userId ${JSON.stringify(bad.slice(0, 20))}`);
  }
  assertProblem(t, await getStream('bad user'), 400, 'invalid_user_id', 'bad userId, no token');
  const longUser = 'u'.repeat(128);
  const longToken = await fleet.token(longUser);
  const longStream = await open(t, longUser, `?token=${longToken}`);
  t.equal(longStream.status, 200, 'a 128-character userId is a valid stream');

  const topicToken = await fleet.token('dave', { topics: ['news'] });
  for (const topics of ['bad%20topic', 'news,,news2', 'news,', 'a/b', 'x'.repeat(129), Array.from({ length: 33 }, (_, i) => `t${i}`).join(',')]) {
    assertProblem(t, await getStream('dave', `?token=${topicToken}&topics=${topics}`), 400, 'invalid_topic', `topics ${JSON.stringify(topics.slice(0, 20))}`);
  }
});

t.test(`429 once ${MAX_CONNECTIONS_PER_USER} streams of the user are open on the replica`, async (t) => {
  const token = await fleet.token('erin');
  const first = await waitOpen(await open(t, 'erin', `?token=${token}`), 'erin 1');
  await waitOpen(await open(t, 'erin', `?token=${token}`), 'erin 2');
  assertProblem(t, await getStream('erin', `?token=${token}`), 429, 'too_many_streams', 'a third stream');
  assertProblem(t, await getStream('erin', '', { authorization: `Bearer ${token}` }), 429, 'too_many_streams', 'a third stream by header');

  const other = await open(t, 'frank', `?token=${await fleet.token('frank')}`);
  t.equal(other.status, 200, "another user is not limited by erin's streams");

  // When one of erin's streams goes away, a new one is admitted again.
  first.close();
  const third = await waitFor(
    async () => {
      const attempt = await openSse(streamUrl('erin', `?token=${token}`));
      if (attempt.status === 200) return attempt;
      attempt.close();
      return undefined;
    },
    { timeoutMs: 5000, label: 'a slot freed after a close' },
  );
  t.teardown(() => third.close());
  t.equal(third.status, 200, 'admitted after one closed');
  assertProblem(t, await getStream('erin', `?token=${token}`), 429, 'too_many_streams', 'full again');
});

t.test('event: auth-expired arrives when the token expires, and the stream ends', async (t) => {
  const minted = await postJson(`${replica.url}/v1/tokens`, { userId: 'grace', ttlSeconds: 2 }, { bearer: PUBLISH_API_KEY });
  t.equal(minted.status, 201);
  const expiresAt = Date.parse(minted.json.expiresAt);
  const stream = await waitOpen(await open(t, 'grace', `?token=${minted.json.token}`), 'grace');

  const published = await fleet.publish(replica, 'grace', 'before expiry');
  t.equal(published.status, 202);
  await stream.waitFor((c) => c.events.some((e) => e.type === 'auth-expired'), 6000, 'auth-expired');
  const receivedAt = Date.now();
  t.ok(receivedAt >= expiresAt - 50, `not before the token's exp (${receivedAt - expiresAt} ms after it)`);
  await withTimeout(stream.ended, 2000, 'the stream ends right after auth-expired');
  t.ok(stream.isEnded(), 'the server ended the response');

  t.same(
    stream.events.map((e) => e.type),
    ['message', 'auth-expired'],
    'the live event, then auth-expired, nothing after',
  );
  const expired = stream.events.at(-1)!;
  t.doesNotThrow(() => JSON.parse(expired.data), 'auth-expired data is JSON');
  t.match(stream.body, /\nevent: auth-expired\ndata: [^\n]*\n\n$/, 'auth-expired is the last thing written');

  assertProblem(t, await getStream('grace', `?token=${minted.json.token}`), 401, 'token_expired', 'reconnecting with the expired token');
  const fresh = await open(t, 'grace', `?token=${await fleet.token('grace')}`);
  t.equal(fresh.status, 200, 'a fresh token reconnects');
});
