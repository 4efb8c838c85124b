// A job runner's callbacks through CallbackSender, against a replica that requires signatures
// (CALLBACK_SECRET): signed ones are delivered, once even when resent; tampered ones are refused.
import { CallbackSender, isSwitchboardError, jobCallbackSecret, Publisher, type SwitchboardError } from '@switchboard/publisher';
import t, { type Test } from 'tap';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../../../test/helpers/fleet.js';
import { inProcessFleet } from '../../../test/helpers/in-process-replica.js';
import { openSse } from '../../../test/helpers/sse-client.js';

const CALLBACK_SECRET = Buffer.from('callback-master-secret-0123456789').toString('base64');
const fleet = await inProcessFleet(t, { CALLBACK_SECRET, ALLOW_UNSIGNED_CALLBACKS: undefined });
const replica = fleet.replicas[0]!;
const switchboard = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY, streamTokenSecret: STREAM_TOKEN_SECRET });

async function jobWithStream(userId: string) {
  const job = await switchboard.createJob({ userId });
  const { token } = await switchboard.mintToken(userId);
  const stream = await waitOpen(await openSse(`${replica.url}/stream/${userId}?token=${token}`), userId);
  t.teardown(() => stream.close());
  return { job, stream };
}

/** The user's stream got the callback once: a marker published after it is the stream's second event. */
async function deliveredOnce(t: Test, userId: string, stream: Awaited<ReturnType<typeof jobWithStream>>['stream']): Promise<void> {
  await switchboard.publish(userId, { type: 'marker', data: 'after' });
  const events = await stream.waitForEvents(2);
  t.same(
    events.map((event) => event.type),
    ['callback', 'marker'],
    'one callback event, then the marker',
  );
}

t.test("the job's secret can be derived from CALLBACK_SECRET, as the server derives it", async (t) => {
  const job = await switchboard.createJob({ userId: 'ada' });
  t.equal(await jobCallbackSecret(CALLBACK_SECRET, job.correlationId), job.callbackSecret);
  t.equal(await jobCallbackSecret(`whsec_${CALLBACK_SECRET}`, job.correlationId), job.callbackSecret, 'with the whsec_ prefix too');
});

t.test('a signed callback is delivered to the job user and updates the job', async (t) => {
  const { job, stream } = await jobWithStream('bea');
  const sent = await new CallbackSender().send({ callbackUrl: job.callbackUrl, secret: job.callbackSecret!, payload: { status: 'done', rows: 3 } });
  t.match(sent, { receivers: 1, duplicate: false, attempts: 1, webhookId: /^msg_/ });
  const [event] = await stream.waitForEvents(1);
  t.equal(event!.type, 'callback');
  t.match(JSON.parse(event!.data), { correlationId: job.correlationId, payload: { status: 'done', rows: 3 } });
  t.match(await switchboard.getJob(job.correlationId), { status: 'done', callbacks: [{ eventId: sent.eventId, payload: { status: 'done', rows: 3 } }] });
});

t.test('an attempt whose answer is lost is resent with the same webhook-id and delivered once', async (t) => {
  const { job, stream } = await jobWithStream('cy');
  const ids: string[] = [];
  let dropped = false;
  const losesFirstAnswer: typeof fetch = async (input, init) => {
    ids.push(new Headers(init?.headers).get('webhook-id') ?? '');
    const response = await fetch(input, init);
    if (!dropped) {
      dropped = true;
      throw new TypeError('fetch failed (the answer was lost on the way back)');
    }
    return response;
  };
  const sender = new CallbackSender({ fetch: losesFirstAnswer, retry: { baseDelayMs: 1 } });
  const sent = await sender.send({ callbackUrl: job.callbackUrl, secret: job.callbackSecret!, payload: { status: 'done' } });
  t.match(sent, { duplicate: true, attempts: 2 }, 'the resend is answered as a duplicate');
  t.equal(ids.length, 2);
  t.equal(ids[0], ids[1], 'both attempts carried one webhook-id');
  await deliveredOnce(t, 'cy', stream);
});

t.test('a 5xx from a proxy in front (its upstream restarting) is resent with the same webhook-id and delivered once', async (t) => {
  const { job, stream } = await jobWithStream('eli');
  const ids: string[] = [];
  // The first attempt never reaches the replica: the proxy answers it 502 itself.
  const proxy: typeof fetch = async (input, init) => {
    ids.push(new Headers(init?.headers).get('webhook-id') ?? '');
    if (ids.length === 1) return new Response('<html>502 Bad Gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } });
    return fetch(input, init);
  };
  const sent = await new CallbackSender({ fetch: proxy, retry: { baseDelayMs: 1 } }).send({
    callbackUrl: job.callbackUrl,
    secret: job.callbackSecret!,
    payload: { status: 'done' },
  });
  t.match(sent, { duplicate: false, attempts: 2 }, 'delivered on the second attempt');
  t.same(ids, [sent.webhookId, sent.webhookId], 'both attempts carried the one webhook-id');
  await deliveredOnce(t, 'eli', stream);
});

t.test('tampered callbacks are refused as invalid_signature, and not resent', async (t) => {
  const { job } = await jobWithStream('dan');
  const other = await switchboard.createJob({ userId: 'dan' });
  let attempts = 0;
  const alterBody: typeof fetch = (input, init) => {
    attempts++;
    return fetch(input, { ...init, body: JSON.stringify({ status: 'forged' }) });
  };
  const tampered = await new CallbackSender({ fetch: alterBody })
    .send({ callbackUrl: job.callbackUrl, secret: job.callbackSecret!, payload: { status: 'done' } })
    .catch((err: unknown) => err);
  t.ok(isSwitchboardError(tampered, 'invalid_signature'), 'a body changed after signing');
  t.equal(attempts, 1, 'a 401 is not resent');

  const wrongJob = await new CallbackSender()
    .send({ callbackUrl: job.callbackUrl, secret: other.callbackSecret!, payload: { status: 'done' } })
    .catch((err: unknown) => err);
  t.ok(isSwitchboardError(wrongJob, 'invalid_signature'), "signed with another job's secret");

  const unsigned = await new CallbackSender().send({ callbackUrl: job.callbackUrl, payload: { status: 'done' } }).catch((err: unknown) => err);
  t.ok(isSwitchboardError(unsigned, 'invalid_signature'), 'unsigned');
  t.equal((unsigned as SwitchboardError).status, 401);
  t.match(await switchboard.getJob(job.correlationId), { callbacks: [] }, 'none reached the job');
});
