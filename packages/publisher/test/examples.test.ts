// The examples in examples/ run as shipped: the Express app and the Next.js route handler (called
// with a Request, as Next calls it) against a real replica on real Redis.
import type { AddressInfo } from 'node:net';
import { Publisher } from '@switchboard/publisher';
import t from 'tap';
import { createApp } from '../examples/express.js';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../../../test/helpers/fleet.js';
import { inProcessFleet } from '../../../test/helpers/in-process-replica.js';
import { openSse } from '../../../test/helpers/sse-client.js';

const CALLBACK_SECRET = Buffer.from('example-callback-secret-0123456789').toString('base64');
const fleet = await inProcessFleet(t, { CALLBACK_SECRET, ALLOW_UNSIGNED_CALLBACKS: undefined });
const replica = fleet.replicas[0]!;
const switchboard = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY, streamTokenSecret: STREAM_TOKEN_SECRET });

t.test('Express: the token route opens the user stream, and the ship route publishes to it once', async (t) => {
  const app = createApp({ switchboard, userOf: (req) => req.header('x-demo-user') });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  t.equal((await fetch(`${base}/switchboard/token`)).status, 401, 'no user, no token');
  const { token } = (await (await fetch(`${base}/switchboard/token`, { headers: { 'x-demo-user': 'ada' } })).json()) as { token: string };
  const stream = await waitOpen(await openSse(`${replica.url}/stream/ada?token=${token}`), 'ada');
  t.teardown(() => stream.close());

  const ship = () => fetch(`${base}/orders/42/ship`, { method: 'POST', headers: { 'x-demo-user': 'ada' } });
  const first = await ship();
  t.equal(first.status, 202);
  const { eventId } = (await first.json()) as { eventId: string };
  t.equal((await ship()).status, 202, 'shipping twice is answered');
  await switchboard.publish('ada', { type: 'marker', data: null });
  const events = await stream.waitForEvents(2);
  t.same(
    events.map((event) => [event.type, event.id, JSON.parse(event.data)]),
    [
      ['order', eventId, { orderId: '42', state: 'shipped' }],
      ['marker', events[1]!.id, null],
    ],
    'and delivered once',
  );

  const broken = createApp({ switchboard: new Publisher({ url: replica.url, apiKey: 'a-forged-key-0123456789abcdef' }), userOf: () => 'ada' });
  const brokenServer = broken.listen(0, '127.0.0.1');
  await new Promise((resolve) => brokenServer.once('listening', resolve));
  t.teardown(() => new Promise((resolve) => brokenServer.close(resolve)));
  const refused = await fetch(`http://127.0.0.1:${(brokenServer.address() as AddressInfo).port}/orders/1/ship`, { method: 'POST' });
  t.equal(refused.status, 502);
  t.same(await refused.json(), { error: 'notification not sent', code: 'invalid_api_key' }, 'a refusal is reported with its code');
});

t.test('Next.js: POST starts a job; its runner signs the callback; the user stream gets the result', async (t) => {
  process.env.SWITCHBOARD_URL = replica.url;
  process.env.PUBLISH_API_KEY = PUBLISH_API_KEY;
  const { POST } = await import('../examples/next-route.js');
  t.equal((await POST(new Request('http://app.test/api/reports', { method: 'POST' }))).status, 401, 'no user: 401');

  const { token } = await switchboard.mintToken('bea');
  const stream = await waitOpen(await openSse(`${replica.url}/stream/bea?token=${token}`), 'bea');
  t.teardown(() => stream.close());
  const answer = await POST(new Request('http://app.test/api/reports', { method: 'POST', headers: { 'x-demo-user': 'bea' } }));
  t.equal(answer.status, 202);
  const body = (await answer.json()) as Record<string, unknown>;
  t.same(Object.keys(body), ['correlationId'], 'the browser gets the correlation id, never the callback secret');

  const [event] = await stream.waitForEvents(1);
  t.equal(event!.type, 'callback');
  t.match(JSON.parse(event!.data), { correlationId: body.correlationId, payload: { status: 'done', rows: 3 } });
  t.match(await switchboard.getJob(body.correlationId as string), { userId: 'bea', status: 'done' });
});
