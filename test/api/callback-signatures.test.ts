// Signed callbacks, on an app built in this process: each job has its own signing secret
// (returned by POST /v1/jobs), so a signature captured for one job is refused on every other; the
// signature covers the body's exact bytes; webhook-timestamp is digits only; X-Event-Type, which
// no signature covers, is refused; several master secrets are accepted for rotation, with or
// without the whsec_ prefix. Signatures are made by the `standardwebhooks` reference signer,
// except where a body's raw bytes cannot be given to it.
import { createHmac, randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Webhook } from 'standardwebhooks';
import type { App } from '../../src/context.js';
import { inProcessApp } from '../helpers/in-process-app.js';

const PUBLISH_API_KEY = 'signatures-publish-key-0123456789';
const authorization = `Bearer ${PUBLISH_API_KEY}`;
const MASTER = randomBytes(32).toString('base64');
const OLD_MASTER = randomBytes(32).toString('base64');

interface Job {
  correlationId: string;
  callbackSecret: string;
}

async function createJob(t: Test, app: App, userId: string): Promise<Job> {
  const created = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization }, payload: { userId } });
  t.equal(created.statusCode, 201, `job for ${userId}`);
  return created.json();
}

/** The documented derivation of a job's secret, done independently of the service. */
const derive = (masterBase64: string, correlationId: string): string =>
  `whsec_${createHmac('sha256', Buffer.from(masterBase64, 'base64')).update(`switchboard-callback:${correlationId}`).digest('base64')}`;

/** Standard Webhooks headers for `body`, signed by the reference signer with `secret`. */
function signed(secret: string, msgId: string, body: string, at = new Date()): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': msgId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(msgId, at, body),
  };
}

const post = (app: App, correlationId: string, headers: Record<string, string>, payload: string | Buffer) =>
  app.inject({ method: 'POST', url: `/v1/callbacks/${correlationId}`, headers, payload });

async function jobState(app: App, correlationId: string): Promise<{ status: string; callbacks: unknown[] }> {
  return (await app.inject({ method: 'GET', url: `/v1/jobs/${correlationId}`, headers: { authorization } })).json();
}

t.test("a job's callbackSecret signs its callbacks, and no other job's", async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY, CALLBACK_SECRET: `whsec_${MASTER}` });
  const alice = await createJob(t, app, 'alice');
  const carol = await createJob(t, app, 'carol');
  t.match(alice.callbackSecret, /^whsec_[A-Za-z0-9+/]{43}=$/, 'a Standard Webhooks secret (32 bytes)');
  t.not(alice.callbackSecret, carol.callbackSecret, 'each job has its own secret');
  t.not(alice.callbackSecret, `whsec_${MASTER}`, 'not the master secret');
  t.equal(
    alice.callbackSecret,
    derive(MASTER, alice.correlationId),
    'HMAC-SHA256(master, "switchboard-callback:" + correlationId), as the Security section of docs/operations.md says',
  );

  const body = JSON.stringify({ status: 'done', rows: 1 });
  const headers = signed(alice.callbackSecret, 'msg_alice_1', body);
  const accepted = await post(app, alice.correlationId, headers, body);
  t.equal(accepted.statusCode, 202, `alice's callback, signed with alice's secret: ${accepted.body}`);
  t.equal(accepted.json().duplicate, false);

  // The captured request, byte for byte, replayed to carol's job within the tolerance.
  const replayed = await post(app, carol.correlationId, headers, body);
  t.equal(replayed.statusCode, 401, "replayed to carol's job: 401");
  t.equal(replayed.json().code, 'invalid_signature');
  const carolState = await jobState(app, carol.correlationId);
  t.same([carolState.status, carolState.callbacks], ['pending', []], "carol's job is untouched");

  const withMaster = await post(app, alice.correlationId, signed(`whsec_${MASTER}`, 'msg_master', body), body);
  t.same([withMaster.statusCode, withMaster.json().code], [401, 'invalid_signature'], 'the master secret itself signs nothing');
  t.equal((await jobState(app, alice.correlationId)).status, 'done', "alice's job took her callback");
});

t.test('rotation: every master secret verifies, the first mints; whsec_ is optional', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY, CALLBACK_SECRET: `whsec_${MASTER}, ${OLD_MASTER}` });
  const job = await createJob(t, app, 'dave');
  t.equal(job.callbackSecret, derive(MASTER, job.correlationId), 'minted from the first master secret');
  const body = JSON.stringify({ step: 1 });
  const viaOld = await post(app, job.correlationId, signed(derive(OLD_MASTER, job.correlationId), 'msg_old', body), body);
  t.equal(viaOld.statusCode, 202, `a runner still holding the secret the old master gave this job: accepted (${viaOld.body})`);
  const viaNew = await post(app, job.correlationId, signed(job.callbackSecret, 'msg_new', body), body);
  t.equal(viaNew.statusCode, 202, 'the secret POST /v1/jobs returned: accepted');
  const retired = await post(app, job.correlationId, signed(derive(randomBytes(32).toString('base64'), job.correlationId), 'msg_retired', body), body);
  t.same([retired.statusCode, retired.json().code], [401, 'invalid_signature'], 'a master secret no longer listed: refused');

  const { app: bare } = await inProcessApp(t, { PUBLISH_API_KEY, CALLBACK_SECRET: OLD_MASTER });
  const bareJob = await createJob(t, bare, 'dave');
  t.equal(bareJob.callbackSecret, derive(OLD_MASTER, bareJob.correlationId), 'a bare base64 master secret works as its whsec_ form does');
});

t.test('webhook-timestamp is digits only: what parseInt would read is refused before verifying', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY, CALLBACK_SECRET: MASTER });
  const job = await createJob(t, app, 'erin');
  const body = JSON.stringify({ step: 1 });
  const at = new Date();
  const seconds = String(Math.floor(at.getTime() / 1000));
  // The reference signer signs the number; each header below parses (parseInt) to that number.
  for (const timestamp of [`${seconds}abc`, `${seconds}.5`, ` ${seconds}`, `+${seconds}`, `${seconds}e0`]) {
    const headers = { ...signed(job.callbackSecret, `msg_${timestamp.trim()}`, body, at), 'webhook-timestamp': timestamp };
    const answer = await post(app, job.correlationId, headers, body);
    t.same([answer.statusCode, answer.json().code], [401, 'invalid_signature'], `webhook-timestamp ${JSON.stringify(timestamp)}: 401`);
    t.match(answer.json().detail, /webhook-timestamp/, `webhook-timestamp ${JSON.stringify(timestamp)}: refused for its timestamp`);
  }
  t.same((await jobState(app, job.correlationId)).callbacks, [], 'nothing was delivered');
  const good = await post(app, job.correlationId, signed(job.callbackSecret, 'msg_digits', body, at), body);
  t.equal(good.statusCode, 202, 'the same callback with a digits-only timestamp is accepted');
});

t.test('the signature covers the exact body bytes; bytes that are not UTF-8 are 400, not 401', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY, CALLBACK_SECRET: MASTER });
  const job = await createJob(t, app, 'frank');
  /** Standard Webhooks v1 over raw bytes, which the reference signer cannot take (it signs strings). */
  const signBytes = (msgId: string, bytes: Buffer): Record<string, string> => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const key = Buffer.from(job.callbackSecret.slice('whsec_'.length), 'base64');
    const mac = createHmac('sha256', key)
      .update(Buffer.concat([Buffer.from(`${msgId}.${timestamp}.`), bytes]))
      .digest('base64');
    return { 'content-type': 'application/json', 'webhook-id': msgId, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${mac}` };
  };
  // {"name":"<0xff>"}: not UTF-8. Decoded leniently it would read as U+FFFD.
  const invalid = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff]), Buffer.from('"}')]);
  const rightlySigned = await post(app, job.correlationId, signBytes('msg_bytes', invalid), invalid);
  t.same([rightlySigned.statusCode, rightlySigned.json().code], [400, 'invalid_json'], 'signed over its exact bytes: 400 invalid_json');
  const lenient = invalid.toString('utf8');
  t.equal(lenient, '{"name":"\ufffd"}', 'the lenient decoding');
  const signedLeniently = await post(app, job.correlationId, signed(job.callbackSecret, 'msg_lenient', lenient), invalid);
  t.same([signedLeniently.statusCode, signedLeniently.json().code], [401, 'invalid_signature'], 'signed over the leniently decoded text instead: 401');

  // Valid UTF-8 beyond ASCII, signed by the reference signer over the text: accepted as sent.
  const text = JSON.stringify({ name: 'Zoë 🚀' });
  const accepted = await post(app, job.correlationId, signed(job.callbackSecret, 'msg_utf8', text), Buffer.from(text));
  t.equal(accepted.statusCode, 202, `non-ASCII UTF-8: accepted (${accepted.body})`);
  t.same((await jobState(app, job.correlationId)).callbacks.length, 1, 'only the valid callback was delivered');

  // Without signing, bytes that are not UTF-8 are still not JSON.
  const { app: unsigned } = await inProcessApp(t, { PUBLISH_API_KEY });
  const other = await createJob(t, unsigned, 'frank');
  const refused = await post(unsigned, other.correlationId, { 'content-type': 'application/json' }, invalid);
  t.same([refused.statusCode, refused.json().code], [400, 'invalid_json'], 'unsigned: 400 invalid_json');
});

t.test('X-Event-Type, which no signature covers, is refused on signed callbacks', async (t) => {
  const { app } = await inProcessApp(t, { PUBLISH_API_KEY, CALLBACK_SECRET: MASTER });
  const job = await createJob(t, app, 'gina');
  const body = JSON.stringify({ status: 'done' });
  const headers = signed(job.callbackSecret, 'msg_typed', body);
  const typed = await post(app, job.correlationId, { ...headers, 'x-event-type': 'job.done' }, body);
  t.same([typed.statusCode, typed.json().code], [400, 'invalid_event_type'], 'a validly signed callback with X-Event-Type: 400');
  t.same((await jobState(app, job.correlationId)).callbacks, [], 'nothing delivered');
  const plain = await post(app, job.correlationId, headers, body);
  t.equal(plain.statusCode, 202, 'the same callback without the header: accepted');
  t.same(
    (await jobState(app, job.correlationId)).callbacks.map((c) => (c as { type: string }).type),
    ['callback'],
    'as a "callback" event',
  );
});
