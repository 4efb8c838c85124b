// The event types the service emits itself (and the presence types the contract keeps) are
// refused wherever a sender names a type: publish to a user, publish to a topic, and a callback's
// X-Event-Type. A refused event is not stored: a later publish with the same idempotency id is
// no duplicate, and a refused callback leaves the job's state as it was.
import t from 'tap';
import { RESERVED_EVENT_TYPES } from '../../src/identifiers.js';
import { inProcessApp } from '../helpers/in-process-app.js';

const PUBLISH_API_KEY = 'event-types-publish-key-0123456789';
const authorization = `Bearer ${PUBLISH_API_KEY}`;
const RESERVED = ['reset', 'auth-expired', 'error', 'open', 'join', 'leave'];

t.test("the reserved list is the contract's", async (t) => {
  t.same([...RESERVED_EVENT_TYPES].sort(), [...RESERVED].sort());
});

t.test('publishers cannot send a reserved type to a user or a topic', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY });
  for (const url of ['/v1/users/alice/events', '/v1/topics/news/events']) {
    for (const type of RESERVED) {
      const refused = await app.inject({ method: 'POST', url, headers: { authorization }, payload: { type, data: { forged: true }, id: `forged-${type}` } });
      t.equal(refused.statusCode, 400, `${url} type ${type}: 400`);
      t.equal(refused.json().code, 'invalid_event_type', `${url} type ${type}: invalid_event_type`);
      // The same idempotency id is fresh: the refused event was never stored.
      const fresh = await app.inject({ method: 'POST', url, headers: { authorization }, payload: { type: 'note', data: 1, id: `forged-${type}` } });
      t.same([fresh.statusCode, fresh.json().duplicate], [202, false], `${url} type ${type}: nothing was stored`);
    }
    // Near misses are ordinary types: only the exact names are the service's.
    for (const type of ['Reset', 'reset.v2', 'my-error', 'opened']) {
      const accepted = await app.inject({ method: 'POST', url, headers: { authorization }, payload: { type, data: 1 } });
      t.equal(accepted.statusCode, 202, `${url} type ${type}: accepted`);
    }
  }
});

t.test('a callback cannot name a reserved type in X-Event-Type', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY });
  const created = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization }, payload: { userId: 'alice' } });
  t.equal(created.statusCode, 201);
  const { correlationId } = created.json();
  for (const type of RESERVED) {
    const refused = await app.inject({
      method: 'POST',
      url: `/v1/callbacks/${correlationId}`,
      headers: { 'x-event-type': type, 'idempotency-key': `forged-${type}` },
      payload: { status: 'forged' },
    });
    t.equal(refused.statusCode, 400, `X-Event-Type ${type}: 400`);
    t.equal(refused.json().code, 'invalid_event_type', `X-Event-Type ${type}: invalid_event_type`);
  }
  const job = await app.inject({ method: 'GET', url: `/v1/jobs/${correlationId}`, headers: { authorization } });
  t.same([job.json().status, job.json().callbacks], ['pending', []], 'the refused callbacks changed nothing');
  const accepted = await app.inject({
    method: 'POST',
    url: `/v1/callbacks/${correlationId}`,
    headers: { 'x-event-type': 'job.done', 'idempotency-key': 'forged-reset' },
    payload: {},
  });
  t.same([accepted.statusCode, accepted.json().duplicate], [202, false], 'an ordinary type is accepted, and the refused key was never recorded');
});
