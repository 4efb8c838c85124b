// GET /v1/jobs/:correlationId through the routes, on an app built in this process: each recent
// callback carries its payload, at most MAX_CALLBACKS_KEPT of them, each payload at most
// MAX_CALLBACK_PAYLOAD_BYTES (a larger one is null, marked payloadTruncated), so the answer stays
// bounded in bytes whatever MAX_BODY_BYTES lets a callback carry. Read with the publisher key or
// the job user's stream token alike.
import t from 'tap';
import { MAX_CALLBACK_PAYLOAD_BYTES, MAX_CALLBACKS_KEPT } from '../../src/jobs/job-store.js';
import { inProcessApp } from '../helpers/in-process-app.js';

const PUBLISH_API_KEY = 'job-payloads-publish-key-0123456789';
const authorization = `Bearer ${PUBLISH_API_KEY}`;
/** Room for a callback's other members (id, type, time, receivers) and the job's own fields. */
const RECORD_OVERHEAD_BYTES = 512;

t.test('GET /v1/jobs/:id carries each recent callback payload, bounded in count and bytes', async (t) => {
  const { app, config } = await inProcessApp(t, { PUBLISH_API_KEY, STREAM_TOKEN_SECRET: 'job-payloads-stream-secret-0123456789' });
  const created = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization }, payload: { userId: 'paula' } });
  t.equal(created.statusCode, 201);
  const { correlationId } = created.json();

  // Every callback as large as the body limit allows: over the payload bound, so kept as null.
  const large = { status: 'running', blob: 'x'.repeat(config.maxBodyBytes - 100) };
  t.ok(JSON.stringify(large).length > MAX_CALLBACK_PAYLOAD_BYTES, 'the large payload is over the bound');
  const total = MAX_CALLBACKS_KEPT + 5;
  for (let n = 1; n <= total; n++) {
    const payload = n === total ? { status: 'done', rows: 42, note: 'Zoë' } : n === total - 1 ? large : { status: 'running', step: n };
    const answer = await app.inject({ method: 'POST', url: `/v1/callbacks/${correlationId}`, headers: { 'idempotency-key': `cb-${n}` }, payload });
    t.equal(answer.statusCode, 202, `callback ${n} accepted`);
  }

  const minted = await app.inject({ method: 'POST', url: '/v1/tokens', headers: { authorization }, payload: { userId: 'paula' } });
  for (const [who, bearer] of [
    ['the publisher key', PUBLISH_API_KEY],
    ["the user's stream token", minted.json().token],
  ]) {
    const answer = await app.inject({ method: 'GET', url: `/v1/jobs/${correlationId}`, headers: { authorization: `Bearer ${bearer}` } });
    t.equal(answer.statusCode, 200, `read with ${who}`);
    const job = answer.json();
    t.equal(job.status, 'done');
    t.equal(job.callbacks.length, MAX_CALLBACKS_KEPT, `${MAX_CALLBACKS_KEPT} newest callbacks of ${total}`);
    t.same(job.callbacks[0].payload, { status: 'done', rows: 42, note: 'Zoë' }, 'the newest, with its payload');
    t.notOk('payloadTruncated' in job.callbacks[0], 'not truncated');
    t.same([job.callbacks[1].payload, job.callbacks[1].payloadTruncated], [null, true], 'the one over the bound: null, payloadTruncated');
    t.same(
      job.callbacks.slice(2).map((c: { payload: { step: number } }) => c.payload.step),
      Array.from({ length: MAX_CALLBACKS_KEPT - 2 }, (_, i) => total - 2 - i),
      'the rest newest first, each with its own payload',
    );
    const bound = MAX_CALLBACKS_KEPT * (MAX_CALLBACK_PAYLOAD_BYTES + RECORD_OVERHEAD_BYTES);
    t.ok(answer.rawPayload.length <= bound, `the answer is ${answer.rawPayload.length} bytes, within ${bound}`);
  }
});

t.test('a job whose every callback is at the payload bound still answers within the bound', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY, STREAM_TOKEN_SECRET: 'job-payloads-stream-secret-0123456789' });
  const { correlationId } = (await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization }, payload: { userId: 'quinn' } })).json();
  // JSON.stringify of a string adds its two quotes: exactly MAX_CALLBACK_PAYLOAD_BYTES, so kept.
  const atBound = 'y'.repeat(MAX_CALLBACK_PAYLOAD_BYTES - 2);
  for (let n = 1; n <= MAX_CALLBACKS_KEPT + 3; n++) {
    const answer = await app.inject({
      method: 'POST',
      url: `/v1/callbacks/${correlationId}`,
      headers: { 'idempotency-key': `cb-${n}`, 'content-type': 'application/json' },
      payload: JSON.stringify(atBound),
    });
    t.equal(answer.statusCode, 202);
  }
  const answer = await app.inject({ method: 'GET', url: `/v1/jobs/${correlationId}`, headers: { authorization } });
  const job = answer.json();
  t.equal(job.callbacks.length, MAX_CALLBACKS_KEPT);
  t.ok(
    job.callbacks.every((c: { payload: unknown }) => c.payload === atBound),
    'every kept payload whole',
  );
  const bound = MAX_CALLBACKS_KEPT * (MAX_CALLBACK_PAYLOAD_BYTES + RECORD_OVERHEAD_BYTES);
  t.ok(answer.rawPayload.length <= bound, `the answer is ${answer.rawPayload.length} bytes, within ${bound}`);
  t.ok(answer.rawPayload.length >= MAX_CALLBACKS_KEPT * MAX_CALLBACK_PAYLOAD_BYTES, 'and holds all of it');
});
