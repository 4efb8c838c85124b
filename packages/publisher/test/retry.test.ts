// A 503 is retried, after the server's Retry-After, with the same idempotency key: Redis is
// stopped, the SDK's publish meets 503s, Redis comes back while it retries, and the event is
// delivered once.
import { isSwitchboardError, Publisher, type SwitchboardError } from '@switchboard/publisher';
import t from 'tap';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET } from '../../../test/helpers/fleet.js';
import { inProcessFleet } from '../../../test/helpers/in-process-replica.js';
import { openSse } from '../../../test/helpers/sse-client.js';
import { waitFor } from '../../../test/helpers/wait-for.js';

/** Every request the SDK sent and the status it got: a window on the real fetch, not a stand-in. */
function observedFetch() {
  const sent: { body: string; status: number; retryAfter: string | null; at: number }[] = [];
  const observed: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    sent.push({ body: String(init?.body), status: response.status, retryAfter: response.headers.get('retry-after'), at: Date.now() });
    return response;
  };
  return { sent, fetch: observed };
}

t.test('a publish that meets 503s while Redis is down is delivered once, with one key, once Redis is back', async (t) => {
  // With an append-only file, Redis comes back with its history: the stream below replays it.
  const fleet = await inProcessFleet(t, {}, { persistence: 'aof' });
  const replica = fleet.replicas[0]!;
  const { sent, fetch } = observedFetch();
  const switchboard = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY, streamTokenSecret: STREAM_TOKEN_SECRET, fetch, retry: { attempts: 10 } });

  const before = await switchboard.publish('ada', { type: 'order', data: { order: 41 } });
  sent.length = 0;
  await fleet.redis.stop();
  const publishing = switchboard.publish('ada', { type: 'order', data: { order: 42 } });
  await waitFor(() => sent.some((request) => request.status === 503), { label: 'a 503 answer', timeoutMs: 10_000 });
  await fleet.redis.restart();
  const published = await publishing;

  const statuses = sent.map((request) => request.status);
  t.equal(statuses.at(-1), 202, 'the last attempt was accepted');
  t.ok(statuses.slice(0, -1).every((status) => status === 503) && statuses.length >= 2, `503s first: ${statuses}`);
  t.equal(sent[0]!.retryAfter, '1', 'the 503 said when to come back');
  const gaps = sent.slice(1).map((request, i) => request.at - sent[i]!.at);
  t.ok(
    gaps.every((gap) => gap >= 950),
    `each retry waited for Retry-After (1 s): ${gaps} ms`,
  );
  const keys = new Set(sent.map((request) => (JSON.parse(request.body) as { id: string }).id));
  t.same([...keys], [published.idempotencyKey], 'every attempt carried the one key the SDK made');

  // Delivered once: a repeat of the key is a duplicate, and a stream resuming after the event
  // before the outage gets the retried event once, then the next one.
  const again = await switchboard.publish('ada', { type: 'order', data: { order: 42 }, id: published.idempotencyKey });
  t.match(again, { id: published.id, duplicate: true });
  const next = await switchboard.publish('ada', { type: 'order', data: { order: 43 } });
  const { token } = await switchboard.mintToken('ada');
  const stream = await openSse(`${replica.url}/stream/ada?token=${token}&lastEventId=${encodeURIComponent(before.id)}`);
  t.teardown(() => stream.close());
  const events = await stream.waitForEvents(2);
  t.same(
    events.map((event) => [event.id, JSON.parse(event.data)]),
    [
      [published.id, { order: 42 }],
      [next.id, { order: 43 }],
    ],
  );
});

t.test('a 503 that outlasts the retries is a backplane_unavailable error with Retry-After', async (t) => {
  const fleet = await inProcessFleet(t);
  const { sent, fetch } = observedFetch();
  const switchboard = new Publisher({ url: fleet.replicas[0]!.url, apiKey: PUBLISH_API_KEY, fetch, retry: { attempts: 2 } });
  await fleet.redis.stop();
  const err = await switchboard.publish('ada', { data: 1 }).catch((e: unknown) => e);
  t.ok(isSwitchboardError(err, 'backplane_unavailable'));
  t.match(err as SwitchboardError, { status: 503, attempts: 2, retryAfterSeconds: 1 });
  t.equal(sent.length, 2);
});

t.test('a 503 without Retry-After (a proxy that drops the header) is retried after the jittered backoff, with the same key', async (t) => {
  const fleet = await inProcessFleet(t);
  // The real replica's answers, with Retry-After removed on the way, as a proxy might; each
  // attempt's send and answer times, so a gap is exactly the wait the SDK chose.
  const attempts: { body: string; status: number; sentAt: number; answeredAt: number }[] = [];
  const dropsRetryAfter: typeof fetch = async (input, init) => {
    const sentAt = Date.now();
    const response = await fetch(input, init);
    const headers = new Headers(response.headers);
    headers.delete('retry-after');
    attempts.push({ body: String(init?.body), status: response.status, sentAt, answeredAt: Date.now() });
    return new Response(await response.arrayBuffer(), { status: response.status, headers });
  };
  const maxDelayMs = 200;
  const switchboard = new Publisher({
    url: fleet.replicas[0]!.url,
    apiKey: PUBLISH_API_KEY,
    fetch: dropsRetryAfter,
    retry: { attempts: 20, baseDelayMs: 100, maxDelayMs },
  });
  await fleet.redis.stop();
  const publishing = switchboard.publish('ada', { data: { order: 7 } });
  await waitFor(() => attempts.filter((attempt) => attempt.status === 503).length >= 3, { label: 'three 503 answers', timeoutMs: 10_000 });
  await fleet.redis.restart();
  const published = await publishing;

  t.equal(attempts.at(-1)!.status, 202, 'accepted once Redis was back');
  const waits = attempts.slice(1).map((attempt, i) => attempt.sentAt - attempts[i]!.answeredAt);
  // From one answer to the next send: the SDK's own wait, at most maxDelayMs plus the event loop's
  // slack (this process also runs the replica), which stays well under the 1 s the server's
  // Retry-After would have said.
  t.ok(
    waits.every((wait) => wait < 900),
    `each retry waited the backoff (cap ${maxDelayMs} ms), not a second: ${waits} ms`,
  );
  const keys = new Set(attempts.map((attempt) => (JSON.parse(attempt.body) as { id: string }).id));
  t.same([...keys], [published.idempotencyKey], 'every attempt carried the one key the SDK made');
});
