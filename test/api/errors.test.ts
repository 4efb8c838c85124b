// Every error row of the contract, answered as RFC 9457 problem+json with a stable `code`, plus
// the success shapes of the publisher API that the error rows are the other side of. Runs against
// two replicas built in this process on a real redis-server, over real sockets: r1 without a
// callback secret (unsigned callbacks allowed, and two publisher keys, for rotation), r2 with
// CALLBACK_SECRET so callbacks must be signed, each with its job's own callbackSecret.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Webhook } from 'standardwebhooks';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../helpers/fleet.js';
import { getJson, postJson, rawRequest, requestJson, type JsonResponse, type RawResponse } from '../helpers/http.js';
import { inProcessFleet, inProcessReplica, type InProcessReplica } from '../helpers/in-process-replica.js';

const MAX_BODY_BYTES = 1024;
/** The rotated-in key; the fleet's PUBLISH_API_KEY stays valid next to it. */
const NEW_API_KEY = 'rotated-publish-key-fedcba9876543210';
const CALLBACK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const OTHER_CALLBACK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;

const fleet = await inProcessFleet(t, {
  PUBLISH_API_KEY: `${NEW_API_KEY},${PUBLISH_API_KEY}`,
  MAX_BODY_BYTES: String(MAX_BODY_BYTES),
});
const r1 = fleet.replicas[0] as InProcessReplica;
const r2 = await inProcessReplica(t, {
  REPLICA_ID: 'r2-signed',
  REDIS_URL: fleet.redis.url,
  STREAM_TOKEN_SECRET,
  PUBLISH_API_KEY,
  MAX_BODY_BYTES: String(MAX_BODY_BYTES),
  CALLBACK_SECRET,
});

type Answer = JsonResponse | RawResponse;

const headerOf = (answer: Answer, name: string): string => {
  const value = (answer.headers as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
};
const textOf = (answer: Answer): string => ('text' in answer ? answer.text : answer.body);

/** Asserts an RFC 9457 answer with the stable code, and nothing internal in it. */
function assertProblem(t: Test, answer: Answer, status: number, code: string, label = code): void {
  t.equal(answer.status, status, `${label}: status ${status}`);
  t.match(headerOf(answer, 'content-type'), /^application\/problem\+json\b/, `${label}: application/problem+json`);
  const body = answer.json as Record<string, unknown> | undefined;
  if (body === undefined || typeof body !== 'object') {
    t.fail(`${label}: body is a JSON object`, { body: textOf(answer) });
    return;
  }
  t.equal(body.code, code, `${label}: code ${code}`);
  t.equal(body.status, status, `${label}: status member`);
  t.ok(typeof body.type === 'string' && body.type.length > 0, `${label}: type member`);
  t.ok(typeof body.title === 'string' && body.title.length > 0, `${label}: title member`);
  t.ok(typeof body.detail === 'string' && body.detail.length > 0, `${label}: detail member`);
  t.notOk('stack' in body || 'cause' in body, `${label}: no stack or cause member`);
  t.notMatch(textOf(answer), /\n\s+at |node_modules|\/src\/|\/dist\/|\.(?:ts|js):\d+|FST_ERR|ioredis|Redis(?:Error)?:/i, `${label}: no internals in the body`);
}

const userEvents = (user: string, replica: InProcessReplica = r1): string => `${replica.url}/v1/users/${encodeURIComponent(user)}/events`;
const topicEvents = (topic: string, replica: InProcessReplica = r1): string => `${replica.url}/v1/topics/${encodeURIComponent(topic)}/events`;

async function createJob(
  userId: string,
  replica: InProcessReplica = r1,
): Promise<{ correlationId: string; callbackUrl: string; expiresAt: string; callbackSecret?: string }> {
  const created = await postJson(`${replica.url}/v1/jobs`, { userId }, { bearer: PUBLISH_API_KEY });
  if (created.status !== 201) throw new Error(`job for ${userId}: ${created.status} ${created.text}`);
  return created.json;
}

/** A callback signed the Standard Webhooks way over exactly `payload`, with the job's (or another) secret. */
function signedCallback(
  url: string,
  payload: string,
  opts: { msgId: string; secret: string; at?: Date; headers?: Record<string, string> },
): Promise<RawResponse> {
  const at = opts.at ?? new Date();
  const signature = new Webhook(opts.secret).sign(opts.msgId, at, payload);
  return rawRequest({
    url,
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': opts.msgId,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signature,
      ...opts.headers,
    },
    body: payload,
  });
}

t.test('publisher auth: missing key, wrong key, rotated keys', async (t) => {
  for (const url of [userEvents('alice'), topicEvents('news')]) {
    const route = new URL(url).pathname;
    assertProblem(t, await postJson(url, { data: 1 }), 401, 'missing_api_key', `${route} without Authorization`);
    assertProblem(
      t,
      await postJson(url, { data: 1 }, { headers: { authorization: 'Basic dXNlcjpwYXNz' } }),
      401,
      'missing_api_key',
      `${route} with a non-bearer scheme`,
    );
    assertProblem(t, await postJson(url, { data: 1 }, { bearer: 'not-the-key-0123456789abcdef' }), 401, 'invalid_api_key', `${route} with a wrong key`);
    assertProblem(
      t,
      await postJson(url, { data: 1 }, { bearer: `${NEW_API_KEY},${PUBLISH_API_KEY}` }),
      401,
      'invalid_api_key',
      `${route} with the whole comma list as a key`,
    );
    t.equal((await postJson(url, { data: 1 }, { bearer: NEW_API_KEY })).status, 202, `${route}: the new key is accepted`);
    t.equal((await postJson(url, { data: 1 }, { bearer: PUBLISH_API_KEY })).status, 202, `${route}: the old key is still accepted`);
  }
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, { userId: 'alice' }), 401, 'missing_api_key', 'tokens without a key');
  assertProblem(
    t,
    await postJson(`${r1.url}/v1/tokens`, { userId: 'alice' }, { bearer: 'nope-nope-nope-nope-nope' }),
    401,
    'invalid_api_key',
    'tokens with a wrong key',
  );
  t.equal((await postJson(`${r1.url}/v1/tokens`, { userId: 'alice' }, { bearer: NEW_API_KEY })).status, 201, 'tokens with the new key');
  assertProblem(t, await postJson(`${r1.url}/v1/jobs`, { userId: 'alice' }), 401, 'missing_api_key', 'jobs without a key');
  assertProblem(
    t,
    await postJson(`${r1.url}/v1/jobs`, { userId: 'alice' }, { bearer: 'nope-nope-nope-nope-nope' }),
    401,
    'invalid_api_key',
    'jobs with a wrong key',
  );
  t.equal((await postJson(`${r1.url}/v1/jobs`, { userId: 'alice' }, { bearer: NEW_API_KEY })).status, 201, 'jobs with the new key');
});

t.test('publish: 400 for bad names, types, data and idempotency ids', async (t) => {
  const key = { bearer: PUBLISH_API_KEY };
  for (const bad of ['has space', 'slash/inside', 'x'.repeat(129), 'é', 'semi;colon']) {
    assertProblem(t, await postJson(userEvents(bad), { data: 1 }, key), 400, 'invalid_user_id', `userId ${JSON.stringify(bad.slice(0, 20))}`);
    assertProblem(t, await postJson(topicEvents(bad), { data: 1 }, key), 400, 'invalid_topic', `topic ${JSON.stringify(bad.slice(0, 20))}`);
  }
  t.equal((await postJson(userEvents('x'.repeat(128)), { data: 1 }, key)).status, 202, 'a 128-character userId is fine');
  t.equal((await postJson(userEvents('A-z0.9_~:@-'), { data: 1 }, key)).status, 202, 'every allowed userId character is fine');

  for (const type of ['', 'has space', 'x'.repeat(65), 'a/b', 'tab\there', 'naïve']) {
    for (const url of [userEvents('alice'), topicEvents('news')]) {
      assertProblem(
        t,
        await postJson(url, { type, data: 1 }, key),
        400,
        'invalid_event_type',
        `type ${JSON.stringify(type.slice(0, 20))} on ${new URL(url).pathname}`,
      );
    }
  }
  t.equal((await postJson(userEvents('alice'), { type: 'a.B:c-d_9'.padEnd(64, 'x'), data: 1 }, key)).status, 202, 'a 64-character type is fine');

  assertProblem(t, await postJson(userEvents('alice'), { type: 'x' }, key), 400, 'invalid_request', 'missing data (user)');
  assertProblem(t, await postJson(topicEvents('news'), {}, key), 400, 'invalid_request', 'missing data (topic)');
  t.equal((await postJson(userEvents('alice'), { data: null }, key)).status, 202, '"data": null is data');

  for (const id of ['', 'with space', 'x'.repeat(201), 'é', 'nul\u0000', 'line\nbreak']) {
    assertProblem(t, await postJson(userEvents('alice'), { data: 1, id }, key), 400, 'invalid_request', `idempotency id ${JSON.stringify(id.slice(0, 20))}`);
  }
});

t.test('publish: body limits, media type, malformed JSON', async (t) => {
  const auth = { authorization: `Bearer ${PUBLISH_API_KEY}` };
  const big = JSON.stringify({ data: 'x'.repeat(MAX_BODY_BYTES) });
  for (const url of [userEvents('alice'), topicEvents('news')]) {
    const route = new URL(url).pathname;
    const tooLarge = await rawRequest({ url, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: big });
    assertProblem(t, tooLarge, 413, 'payload_too_large', `${route}: body over MAX_BODY_BYTES`);
    const chunked = await rawRequest({ url, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: big, chunked: true });
    assertProblem(t, chunked, 413, 'payload_too_large', `${route}: chunked body over MAX_BODY_BYTES`);
    const justFits = JSON.stringify({ data: 'x'.repeat(MAX_BODY_BYTES - 20) });
    t.ok(Buffer.byteLength(justFits) <= MAX_BODY_BYTES);
    const fits = await rawRequest({ url, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: justFits });
    t.equal(fits.status, 202, `${route}: a body within the limit is accepted`);

    const text = await rawRequest({ url, method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: '{"data":1}' });
    assertProblem(t, text, 415, 'unsupported_media_type', `${route}: text/plain`);
    const form = await rawRequest({ url, method: 'POST', headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, body: 'data=1' });
    assertProblem(t, form, 415, 'unsupported_media_type', `${route}: a form`);

    for (const body of ['{"data":', '{data: 1}', '{"data":1}}', '\u0000']) {
      const malformed = await rawRequest({ url, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
      assertProblem(t, malformed, 400, 'invalid_json', `${route}: malformed JSON ${JSON.stringify(body)}`);
    }
    const empty = await rawRequest({ url, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '' });
    assertProblem(t, empty, 400, 'invalid_json', `${route}: empty JSON body`);
  }
});

t.test('publish: 202 shape and idempotency', async (t) => {
  const key = { bearer: PUBLISH_API_KEY };
  const stream = await waitOpen(await fleet.stream(r1, 'idem-user'), 'idem-user');
  t.teardown(() => stream.close());

  const first = await postJson(userEvents('idem-user'), { type: 'note', data: { n: 1 }, id: 'order-17' }, key);
  t.equal(first.status, 202);
  t.match(first.headers['content-type'], /^application\/json/);
  t.same(Object.keys(first.json).sort(), ['duplicate', 'id', 'receivers']);
  t.ok(typeof first.json.id === 'string' && first.json.id.length > 0 && !/[\r\n\0]/.test(first.json.id), 'id is a non-empty string without CR/LF/NUL');
  t.equal(first.json.receivers, 1, 'the replica holding the stream received it');
  t.equal(first.json.duplicate, false);

  const again = await postJson(userEvents('idem-user'), { type: 'note', data: { n: 1 }, id: 'order-17' }, key);
  t.equal(again.status, 202, 'the retry is accepted');
  t.equal(again.json.duplicate, true, 'and flagged duplicate');
  t.equal(again.json.id, first.json.id, 'with the original event id');

  const next = await postJson(userEvents('idem-user'), { type: 'note', data: { n: 2 } }, key);
  t.equal(next.json.duplicate, false);
  t.not(next.json.id, first.json.id, 'a new event gets a new id');
  await stream.waitForEvents(2);
  t.same(
    stream.events.map((e) => e.data),
    ['{"n":1}', '{"n":2}'],
    'the duplicate was delivered once',
  );
  t.equal(stream.events[0]!.lastEventId, first.json.id, 'the stream sees the answered id');

  const nobody = await postJson(topicEvents('nobody-listens'), { data: 'x' }, key);
  t.equal(nobody.status, 202);
  t.equal(nobody.json.receivers, 0, 'no stream anywhere: zero receivers');
  t.equal(nobody.json.duplicate, false);
  const topicOnce = await postJson(topicEvents('nobody-listens'), { data: 'x', id: 'k1' }, key);
  const topicTwice = await postJson(topicEvents('nobody-listens'), { data: 'x', id: 'k1' }, key);
  t.same([topicOnce.json.duplicate, topicTwice.json.duplicate], [false, true], 'topic publishes dedupe too');
  t.equal(topicTwice.json.id, topicOnce.json.id);
  const otherTopic = await postJson(topicEvents('another-topic'), { data: 'x', id: 'k1' }, key);
  t.equal(otherTopic.json.duplicate, false, 'an idempotency key is per channel');
});

t.test('tokens: 201 shape, ttl bounds, bad names', async (t) => {
  const key = { bearer: PUBLISH_API_KEY };
  const before = Date.now();
  const minted = await postJson(`${r1.url}/v1/tokens`, { userId: 'alice', topics: ['news'], ttlSeconds: 600 }, key);
  t.equal(minted.status, 201);
  t.same(Object.keys(minted.json).sort(), ['expiresAt', 'token']);
  t.match(minted.json.token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'a JWT');
  const expiresAt = Date.parse(minted.json.expiresAt);
  t.match(minted.json.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'expiresAt is ISO 8601 UTC');
  t.ok(expiresAt >= before + 598_000 && expiresAt <= Date.now() + 601_000, `expiresAt is ttlSeconds ahead (${minted.json.expiresAt})`);

  const defaults = await postJson(`${r1.url}/v1/tokens`, { userId: 'alice' }, key);
  t.equal(defaults.status, 201);
  const defaultTtl = Date.parse(defaults.json.expiresAt) - Date.now();
  t.ok(defaultTtl > 3590_000 && defaultTtl <= 3601_000, 'default ttl is 3600 s');

  t.equal((await postJson(`${r1.url}/v1/tokens`, { userId: 'alice', ttlSeconds: 86_400 }, key)).status, 201, 'ttlSeconds 86400 is the maximum');
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, { userId: 'alice', ttlSeconds: 86_401 }, key), 400, 'invalid_request', 'ttlSeconds 86401');
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, { userId: 'alice', ttlSeconds: 0 }, key), 400, 'invalid_request', 'ttlSeconds 0');
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, { userId: 'alice', ttlSeconds: 1.5 }, key), 400, 'invalid_request', 'fractional ttlSeconds');
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, {}, key), 400, 'invalid_request', 'no userId');
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, { userId: 'bad user' }, key), 400, 'invalid_user_id', 'bad userId');
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, { userId: 'alice', topics: ['ok', 'bad topic'] }, key), 400, 'invalid_topic', 'bad topic');
  assertProblem(t, await postJson(`${r1.url}/v1/tokens`, { userId: 'alice', topics: [{ name: 'news' }] }, key), 400, 'invalid_request', 'topics not strings');
});

t.test('jobs: 201 shape, reading a job, 403 and 404', async (t) => {
  const key = { bearer: PUBLISH_API_KEY };
  const created = await postJson(`${r1.url}/v1/jobs`, { userId: 'job-owner', metadata: { kind: 'export' } }, key);
  t.equal(created.status, 201);
  t.same(Object.keys(created.json).sort(), ['callbackUrl', 'correlationId', 'expiresAt']);
  const { correlationId, callbackUrl, expiresAt } = created.json;
  t.match(correlationId, /^[A-Za-z0-9_-]+$/, 'correlationId is URL-safe (base64url alphabet)');
  t.ok(correlationId.length >= 22, `correlationId carries at least 128 bits (${correlationId.length} base64url chars)`);
  t.equal(correlationId.length, 24, '24 base64url characters (144 bits) as documented');
  t.ok(callbackUrl.endsWith(`/v1/callbacks/${correlationId}`), `callbackUrl ends with /v1/callbacks/<correlationId> (${callbackUrl})`);
  t.equal(new URL(callbackUrl).pathname, `/v1/callbacks/${correlationId}`);
  t.ok(Date.parse(expiresAt) > Date.now() + 3500_000, 'expires after the default JOB_TTL_SECONDS');
  const ids = new Set([correlationId]);
  for (let i = 0; i < 20; i++) ids.add((await createJob('job-owner')).correlationId);
  t.equal(ids.size, 21, 'correlation ids do not repeat');

  assertProblem(t, await postJson(`${r1.url}/v1/jobs`, { userId: 'bad user' }, key), 400, 'invalid_user_id', 'job for a bad userId');
  assertProblem(t, await postJson(`${r1.url}/v1/jobs`, {}, key), 400, 'invalid_request', 'job without userId');
  assertProblem(t, await postJson(`${r1.url}/v1/jobs`, { userId: 'a', metadata: 'nope' }, key), 400, 'invalid_request', 'metadata not an object');

  const jobUrl = `${r1.url}/v1/jobs/${correlationId}`;
  const withKey = await getJson(jobUrl, key);
  t.equal(withKey.status, 200, 'GET with the publisher key');
  t.match(withKey.json, { correlationId, userId: 'job-owner', status: String, createdAt: String, expiresAt: String });
  t.ok(Array.isArray(withKey.json.callbacks), 'callbacks is a list');

  const ownerToken = await fleet.token('job-owner');
  const asOwner = await getJson(jobUrl, { bearer: ownerToken });
  t.equal(asOwner.status, 200, "GET with the job user's stream token");
  t.equal(asOwner.json.correlationId, correlationId);

  const strangerToken = await fleet.token('someone-else');
  assertProblem(t, await getJson(jobUrl, { bearer: strangerToken }), 403, 'token_user_mismatch', "GET with another user's token");
  assertProblem(t, await getJson(jobUrl), 401, 'missing_token', 'GET without a credential');
  assertProblem(t, await getJson(jobUrl, { bearer: 'garbage' }), 401, 'invalid_token', 'GET with a garbage credential');

  assertProblem(t, await getJson(`${r1.url}/v1/jobs/AAAAAAAAAAAAAAAAAAAAAAAA`, key), 404, 'job_not_found', 'unknown correlation id');
  assertProblem(t, await getJson(`${r1.url}/v1/jobs/not-one-of-ours`, key), 404, 'job_not_found', 'malformed correlation id');
  assertProblem(t, await getJson(`${r1.url}/v1/jobs/AAAAAAAAAAAAAAAAAAAAAAAA`, { bearer: ownerToken }), 404, 'job_not_found', 'unknown id with a stream token');
});

t.test('callbacks without CALLBACK_SECRET: 404, 413, 415, 400', async (t) => {
  const { correlationId } = await createJob('cb-user');
  const url = `${r1.url}/v1/callbacks/${correlationId}`;
  const json = { 'content-type': 'application/json' };

  assertProblem(t, await postJson(`${r1.url}/v1/callbacks/AAAAAAAAAAAAAAAAAAAAAAAA`, { x: 1 }), 404, 'job_not_found', 'unknown correlation id');
  // 404 comes first: an unknown job's body is never read, whatever is wrong with it.
  const unknownBadBody = await rawRequest({ url: `${r1.url}/v1/callbacks/AAAAAAAAAAAAAAAAAAAAAAAA`, method: 'POST', headers: json, body: '{"status":' });
  assertProblem(t, unknownBadBody, 404, 'job_not_found', 'unknown correlation id with malformed JSON');
  for (const bad of ['short', 'A'.repeat(25), `${correlationId.slice(0, 23)}.`, 'x'.repeat(300), `${correlationId}%2Fx`]) {
    assertProblem(t, await postJson(`${r1.url}/v1/callbacks/${bad}`, { x: 1 }), 404, 'job_not_found', `malformed correlation id ${bad.slice(0, 30)}`);
  }

  const tooLarge = await rawRequest({ url, method: 'POST', headers: json, body: JSON.stringify({ blob: 'x'.repeat(MAX_BODY_BYTES) }) });
  assertProblem(t, tooLarge, 413, 'payload_too_large', 'callback over MAX_BODY_BYTES');
  const tooLargeChunked = await rawRequest({ url, method: 'POST', headers: json, body: JSON.stringify({ blob: 'x'.repeat(MAX_BODY_BYTES) }), chunked: true });
  assertProblem(t, tooLargeChunked, 413, 'payload_too_large', 'chunked callback over MAX_BODY_BYTES');
  assertProblem(
    t,
    await rawRequest({ url, method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'done' }),
    415,
    'unsupported_media_type',
    'text/plain callback',
  );
  assertProblem(t, await rawRequest({ url, method: 'POST', headers: json, body: '{"status":' }), 400, 'invalid_json', 'malformed JSON callback');
  assertProblem(t, await rawRequest({ url, method: 'POST', headers: json, body: '{"a":1,}' }), 400, 'invalid_json', 'trailing comma');

  const ok = await postJson(url, { status: 'done' }, { headers: { 'idempotency-key': 'first' } });
  t.equal(ok.status, 202, 'a well-formed callback is accepted');
  t.same(Object.keys(ok.json).sort(), ['duplicate', 'eventId', 'receivers']);
  t.equal(ok.json.duplicate, false);
  const retried = await postJson(url, { status: 'done' }, { headers: { 'idempotency-key': 'first' } });
  t.same([retried.status, retried.json.duplicate, retried.json.eventId], [202, true, ok.json.eventId], 'retry: 202, duplicate, same event id');
});

t.test('callbacks with CALLBACK_SECRET: signatures, tolerance, replay', async (t) => {
  const { correlationId, callbackSecret } = await createJob('signed-user', r2);
  t.match(callbackSecret, /^whsec_[A-Za-z0-9+/]+=*$/, "POST /v1/jobs answers the job's signing secret");
  const secret = callbackSecret as string;
  const url = `${r2.url}/v1/callbacks/${correlationId}`;
  const payload = JSON.stringify({ status: 'done', rows: 3 });

  const unsigned = await rawRequest({ url, method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
  assertProblem(t, unsigned, 401, 'invalid_signature', 'no signature headers');
  const noSignature = await rawRequest({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) },
    body: payload,
  });
  assertProblem(t, noSignature, 401, 'invalid_signature', 'webhook-signature missing');
  assertProblem(
    t,
    await signedCallback(url, payload, { msgId: 'msg_1', secret: OTHER_CALLBACK_SECRET }),
    401,
    'invalid_signature',
    'signed with another secret',
  );
  assertProblem(
    t,
    await signedCallback(url, payload, { msgId: 'msg_1', secret: CALLBACK_SECRET }),
    401,
    'invalid_signature',
    "signed with the master secret rather than the job's",
  );
  assertProblem(
    t,
    await signedCallback(url, payload, { msgId: 'msg_1', secret, headers: { 'webhook-id': 'msg_other' } }),
    401,
    'invalid_signature',
    'signature for another webhook-id',
  );
  const tampered = new Webhook(secret).sign('msg_1', new Date(), payload);
  const tamperedAnswer = await rawRequest({
    url,
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': 'msg_1',
      'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
      'webhook-signature': tampered,
    },
    body: JSON.stringify({ status: 'done', rows: 4 }),
  });
  assertProblem(t, tamperedAnswer, 401, 'invalid_signature', 'body changed after signing');
  const sixMinutesAgo = new Date(Date.now() - 6 * 60_000);
  assertProblem(
    t,
    await signedCallback(url, payload, { msgId: 'msg_old', secret, at: sixMinutesAgo }),
    401,
    'invalid_signature',
    'timestamp older than 5 minutes',
  );
  const sixMinutesAhead = new Date(Date.now() + 6 * 60_000);
  assertProblem(
    t,
    await signedCallback(url, payload, { msgId: 'msg_future', secret, at: sixMinutesAhead }),
    401,
    'invalid_signature',
    'timestamp more than 5 minutes ahead',
  );
  assertProblem(
    t,
    await signedCallback(`${r2.url}/v1/callbacks/AAAAAAAAAAAAAAAAAAAAAAAA`, payload, { msgId: 'msg_unknown', secret }),
    404,
    'job_not_found',
    'validly signed callback for an unknown job',
  );

  const stream = await waitOpen(await fleet.stream(r2, 'signed-user'), 'signed-user on r2');
  t.teardown(() => stream.close());
  const fourMinutesAgo = new Date(Date.now() - 4 * 60_000);
  const accepted = await signedCallback(url, payload, { msgId: 'msg_good', secret, at: fourMinutesAgo });
  t.equal(accepted.status, 202, `a valid signature within tolerance is accepted: ${accepted.body}`);
  t.equal(accepted.json?.duplicate, false);
  t.equal(accepted.json?.receivers, 1);

  // An attacker (or the job system) replays the captured request byte for byte.
  const replayed = await signedCallback(url, payload, { msgId: 'msg_good', secret, at: fourMinutesAgo });
  t.equal(replayed.status, 202, 'the replay is answered 202');
  t.equal(replayed.json?.duplicate, true, 'flagged duplicate');
  t.equal(replayed.json?.eventId, accepted.json?.eventId, 'with the original event id');
  // The same capture with an unsigned Idempotency-Key added: still the same signed webhook-id.
  for (const key of ['x1', 'x2']) {
    const disguised = await signedCallback(url, payload, { msgId: 'msg_good', secret, at: fourMinutesAgo, headers: { 'idempotency-key': key } });
    t.same([disguised.status, disguised.json?.duplicate], [202, true], `a replay with Idempotency-Key ${key} added is still a duplicate`);
  }
  // The same capture replayed to another user's job: the signature was made with this job's secret.
  const other = await createJob('other-user', r2);
  const crossJob = await signedCallback(`${r2.url}/v1/callbacks/${other.correlationId}`, payload, { msgId: 'msg_good', secret, at: fourMinutesAgo });
  assertProblem(t, crossJob, 401, 'invalid_signature', 'replayed to another job');
  const otherJob = await getJson(`${r2.url}/v1/jobs/${other.correlationId}`, { bearer: PUBLISH_API_KEY });
  t.same([otherJob.json.status, otherJob.json.callbacks], ['pending', []], 'the other job is untouched');

  // A later, distinct callback proves the stream is live and that nothing came in between.
  const later = await signedCallback(url, JSON.stringify({ step: 2 }), { msgId: 'msg_later', secret });
  t.equal(later.status, 202);
  await stream.waitForEvents(2);
  t.equal(stream.events.length, 2, 'the replayed callback was delivered exactly once');
  t.same(JSON.parse(stream.events[0]!.data).payload, { status: 'done', rows: 3 });
  t.same(JSON.parse(stream.events[1]!.data).payload, { step: 2 });
  t.same(
    stream.events.map((e) => e.type),
    ['callback', 'callback'],
  );

  const job = await getJson(`${r2.url}/v1/jobs/${correlationId}`, { bearer: PUBLISH_API_KEY });
  t.equal(job.status, 200);
  t.same(
    job.json.callbacks.map((c: { eventId: string }) => c.eventId).sort(),
    [accepted.json?.eventId, later.json?.eventId].sort(),
    'the job recorded each callback once',
  );
});

t.test('unknown routes are 404 not_found', async (t) => {
  assertProblem(t, await getJson(`${r1.url}/nope`), 404, 'not_found', 'GET /nope');
  assertProblem(t, await postJson(`${r1.url}/v1/nope`, { x: 1 }, { bearer: PUBLISH_API_KEY }), 404, 'not_found', 'POST /v1/nope');
  assertProblem(t, await requestJson('DELETE', `${r1.url}/v1/tokens`, undefined, { bearer: PUBLISH_API_KEY }), 404, 'not_found', 'DELETE /v1/tokens');
  assertProblem(t, await getJson(`${r1.url}/v1/users/alice/events`, { bearer: PUBLISH_API_KEY }), 404, 'not_found', 'GET on a POST route');
  // A path that is not valid percent-encoding never reaches a route; it is still a problem+json 400.
  for (const path of ['/v1/users/%zz/events', '/stream/%E0%A4%A']) {
    const badUrl = await rawRequest({
      url: `${r1.url}${path}`,
      method: path.startsWith('/v1') ? 'POST' : 'GET',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${PUBLISH_API_KEY}` },
      body: path.startsWith('/v1') ? '{"data":1}' : undefined,
    });
    t.equal(badUrl.status, 400, `${path}: 400`);
    t.match(String(badUrl.headers['content-type']), /^application\/problem\+json\b/, `${path}: application/problem+json`);
    t.ok(['invalid_request', 'invalid_user_id'].includes(badUrl.json?.code), `${path}: a registry code (${badUrl.json?.code})`);
  }
  const notFound = await getJson(`${r1.url}/nope?secret=abc`);
  t.notMatch(notFound.text, /secret=abc/, 'the query string is not echoed');
});
