// The SDK against a real replica (built in this process) on a real redis-server: what it sends
// is what the server accepts, what the server refuses comes back as a typed error, and the tokens
// it signs locally open streams.
import { isSwitchboardError, Publisher, type SwitchboardError, ERROR_CODES } from '@switchboard/publisher';
import t from 'tap';
import { ERRORS } from '../../../src/errors.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../../../test/helpers/fleet.js';
import { inProcessFleet } from '../../../test/helpers/in-process-replica.js';
import { openSse } from '../../../test/helpers/sse-client.js';

const fleet = await inProcessFleet(t);
const replica = fleet.replicas[0]!;
const switchboard = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY, streamTokenSecret: STREAM_TOKEN_SECRET });

const streamWith = async (userId: string, token: string, topics = '') => {
  const stream = await openSse(`${replica.url}/stream/${userId}?token=${token}${topics}`);
  t.teardown(() => stream.close());
  return stream;
};

t.test('the SDK lists exactly the error codes of the server registry', async (t) => {
  t.same([...ERROR_CODES].sort(), Object.keys(ERRORS).sort());
});

t.test('publish reaches the user, with an idempotency key the SDK filled in; the same key is delivered once', async (t) => {
  const { token } = await switchboard.mintToken('ada');
  const stream = await waitOpen(await streamWith('ada', token), 'ada');
  const first = await switchboard.publish('ada', { type: 'order', data: { order: 42 } });
  t.match(first, { receivers: 1, duplicate: false, idempotencyKey: /^[0-9a-f-]{36}$/ });
  const again = await switchboard.publish('ada', { type: 'order', data: { order: 42 }, id: first.idempotencyKey });
  t.match(
    again,
    { id: first.id, duplicate: true, idempotencyKey: first.idempotencyKey },
    'a repeat of the key is answered with the first event id, as a duplicate',
  );
  await switchboard.publish('ada', { type: 'order', data: { order: 43 } });
  const events = await stream.waitForEvents(2);
  t.same(
    events.map((e) => [e.type, e.id, JSON.parse(e.data)]),
    [
      ['order', first.id, { order: 42 }],
      ['order', events[1]!.id, { order: 43 }],
    ],
  );
});

t.test('publishTopic reaches streams that joined the topic; a locally minted token grants its topics', async (t) => {
  const { token, expiresAt } = await switchboard.mintToken('bea', { topics: ['news'], ttlSeconds: 60 });
  t.ok(Math.abs(Date.parse(expiresAt) - (Date.now() + 60_000)) < 5000, 'expiresAt is ttlSeconds ahead');
  const stream = await waitOpen(await streamWith('bea', token, '&topics=news'), 'bea on news');
  const published = await switchboard.publishTopic('news', { data: 'extra!' });
  const [event] = await stream.waitForEvents(1);
  t.same([event!.type, JSON.parse(event!.data)], ['message', 'extra!']);
  // A stream on several channels carries one cursor over all of them: it holds the topic's id.
  t.ok(event!.id?.includes(published.id), `${event!.id} holds ${published.id}`);
});

t.test('a token signed locally for another audience or with another secret is refused by the replica', async (t) => {
  const otherAudience = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY, streamTokenSecret: STREAM_TOKEN_SECRET, audience: 'elsewhere' });
  const otherSecret = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY, streamTokenSecret: 'another-secret-0123456789abcdef' });
  for (const [label, publisher] of [
    ['audience', otherAudience],
    ['secret', otherSecret],
  ] as const) {
    const { token } = await publisher.mintToken('cy');
    const stream = await streamWith('cy', token);
    await stream.ended;
    t.equal(stream.status, 401, `another ${label}: 401`);
    t.match(JSON.parse(stream.body), { code: 'invalid_token' });
  }
});

t.test('without the secret, mintToken asks POST /v1/tokens', async (t) => {
  const remote = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY });
  const { token } = await remote.mintToken('dan', { topics: ['a'] });
  const stream = await waitOpen(await streamWith('dan', token, '&topics=a'), 'dan');
  t.equal(stream.status, 200);
});

t.test('createJob and getJob: the job is registered and read back', async (t) => {
  const job = await switchboard.createJob({ userId: 'eve', ttlSeconds: 120, metadata: { report: 7 } });
  t.match(job, { correlationId: /^[A-Za-z0-9_-]{24}$/, callbackUrl: `${replica.url}/v1/callbacks/${job.correlationId}` });
  const state = await switchboard.getJob(job.correlationId);
  t.match(state, { correlationId: job.correlationId, userId: 'eve', metadata: { report: 7 }, callbacks: [] });
});

t.test('problem+json answers become SwitchboardErrors keyed by code, not retried', async (t) => {
  const forged = new Publisher({ url: replica.url, apiKey: 'a-forged-key-0123456789abcdef' });
  const refused = await forged.publish('ada', { data: 1 }).catch((err: unknown) => err);
  t.ok(isSwitchboardError(refused, 'invalid_api_key'), 'a forged key: invalid_api_key');
  t.match(refused, { status: 401, attempts: 1, type: 'urn:switchboard:problem:invalid_api_key' });

  const missing = await switchboard.getJob('AAAAAAAAAAAAAAAAAAAAAAAA').catch((err: unknown) => err);
  t.ok(isSwitchboardError(missing, 'job_not_found'), 'an unknown job: job_not_found');
  t.equal((missing as SwitchboardError).status, 404);

  const tooBig = await switchboard.publish('ada', { data: 'x'.repeat(70_000) }).catch((err: unknown) => err);
  t.ok(isSwitchboardError(tooBig, 'payload_too_large'), 'a body over MAX_BODY_BYTES: payload_too_large');
});

t.test('arguments the server would refuse are refused before anything is sent', async (t) => {
  let sent = 0;
  const counting = new Publisher({
    url: replica.url,
    apiKey: PUBLISH_API_KEY,
    streamTokenSecret: STREAM_TOKEN_SECRET,
    fetch: (input, init) => {
      sent++;
      return fetch(input, init);
    },
  });
  const refusals: [string, () => Promise<unknown>][] = [
    ['a user id with a slash', () => counting.publish('a/b', { data: 1 })],
    ['a reserved type', () => counting.publish('ada', { type: 'reset', data: 1 })],
    ['no data', () => counting.publishTopic('news', {} as { data: unknown })],
    ['a token over 24 h', () => counting.mintToken('ada', { ttlSeconds: 86_401 })],
    ['a batch event naming both user and topic', () => counting.publishBatch([{ user: 'a', topic: 'b', data: 1 } as never])],
  ];
  for (const [label, call] of refusals) {
    const err = await call().catch((e: unknown) => e);
    t.ok(isSwitchboardError(err, 'invalid_argument'), label);
  }
  t.equal(sent, 0, 'no request was sent');
});

t.test('a replica that is not there is a network_error after the retries', async (t) => {
  const closed = new Publisher({ url: 'http://127.0.0.1:9', apiKey: PUBLISH_API_KEY, retry: { attempts: 2, baseDelayMs: 1 } });
  const err = await closed.publish('ada', { data: 1 }).catch((e: unknown) => e);
  t.ok(isSwitchboardError(err, 'network_error'));
  t.equal((err as SwitchboardError).attempts, 2, 'an idempotent publish is sent again');
  const job = await closed.createJob({ userId: 'ada' }).catch((e: unknown) => e);
  t.equal((job as SwitchboardError).attempts, 1, 'a job is not: a lost answer may have made one');
});
