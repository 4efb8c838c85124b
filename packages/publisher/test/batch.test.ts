// publishBatch against a real replica (POST /v1/events): each event reaches its user or topic in
// order, every event carries a key, and the same batch sent again is delivered once.
import { Publisher } from '@switchboard/publisher';
import t from 'tap';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../../../test/helpers/fleet.js';
import { inProcessFleet } from '../../../test/helpers/in-process-replica.js';
import { openSse } from '../../../test/helpers/sse-client.js';

t.test('a batch reaches users and topics in order, and a resent batch is delivered once', async (t) => {
  const fleet = await inProcessFleet(t);
  const replica = fleet.replicas[0]!;
  const switchboard = new Publisher({ url: replica.url, apiKey: PUBLISH_API_KEY, streamTokenSecret: STREAM_TOKEN_SECRET });
  const { token } = await switchboard.mintToken('ada', { topics: ['news'] });
  const stream = await waitOpen(await openSse(`${replica.url}/stream/ada?topics=news&token=${token}`), 'ada');
  t.teardown(() => stream.close());

  const batch = [
    { user: 'ada', type: 'order', data: 1 },
    { topic: 'news', data: 2 },
    { user: 'ada', type: 'order', data: 3 },
  ] as const;
  const outcomes = await switchboard.publishBatch(batch);
  t.equal(outcomes.length, 3);
  t.ok(
    outcomes.every((outcome) => outcome.ok && !outcome.duplicate),
    'each accepted',
  );
  const keys = outcomes.map((outcome) => outcome.idempotencyKey);
  t.equal(new Set(keys).size, 3, 'each event got its own key');

  const again = await switchboard.publishBatch(batch.map((event, i) => ({ ...event, id: keys[i]! })));
  t.ok(
    again.every((outcome) => outcome.ok && outcome.duplicate),
    'the same keys again: duplicates',
  );
  await switchboard.publish('ada', { type: 'marker', data: null });
  const events = await stream.waitForEvents(4);
  t.same(
    events.map((event) => [event.type, JSON.parse(event.data)]),
    [
      ['order', 1],
      ['message', 2],
      ['order', 3],
      ['marker', null],
    ],
  );
});
