// Live-only events (`"durable": false`) across two replicas on one real Redis: delivered live,
// never replayed, and their ids resume exactly — a client that reconnects, to the other replica,
// with the id of a live-only event gets the durable events after it: no reset, no gap, no duplicate.
import t from 'tap';
import { fleetEnv, waitOpen, withFleet } from '../helpers/fleet.js';
import { inProcessFleet, inProcessReplica } from '../helpers/in-process-replica.js';

const first = await inProcessFleet(t);
const second = await inProcessReplica(t, fleetEnv(first.redis, { REPLICA_ID: 'r2' }));
const fleet = withFleet(first.redis, [first.replicas[0]!, second]);
const [r1, r2] = fleet.replicas as [typeof second, typeof second];
const live = (user: string, data: unknown) => fleet.publish(r2, user, data, { durable: false });

t.test('resuming from a live-only id on another replica replays the durable events after it, and only those', async (t) => {
  const stream = await waitOpen(await fleet.stream(r1, 'gil'), 'gil');
  t.equal((await fleet.publish(r2, 'gil', 'd1')).status, 202);
  const tick = await live('gil', 'tick-1');
  t.equal(tick.status, 202);
  t.equal(tick.json.receivers, 1, 'the live-only event reached the replica holding the stream');
  await stream.waitForEvents(2);
  stream.close();
  const tickId = stream.events[1]!.lastEventId;
  t.equal(tickId, tick.json.id, "the stream's id for it is the one the publish answered");
  t.match(tickId, /\.\d+-\d+-\d+$/, 'a live-only position: the durable one before it, and a counter');
  // Away: two durable events and a live-only one.
  await fleet.publish(r1, 'gil', 'd2');
  await live('gil', 'tick-2');
  await fleet.publish(r2, 'gil', 'd3');
  const resumed = await waitOpen(await fleet.stream(r2, 'gil', { headers: { 'last-event-id': tickId } }), 'gil resumed');
  t.teardown(() => resumed.close());
  await resumed.waitForEvents(2);
  await live('gil', 'tick-3');
  await resumed.waitFor((c) => c.events.some((e) => e.data === '"tick-3"'), 5000, 'the next live-only event');
  t.same(
    resumed.events.map((e) => [e.type, JSON.parse(e.data)]),
    [
      ['message', 'd2'],
      ['message', 'd3'],
      ['message', 'tick-3'],
    ],
    'no reset, the durable events missed (not the live-only one), then live again',
  );
});

t.test('resuming from the newest event, a live-only one, replays nothing and resets nothing', async (t) => {
  const stream = await waitOpen(await fleet.stream(r1, 'hal'), 'hal');
  await fleet.publish(r2, 'hal', 'd1');
  await live('hal', 'tick');
  await stream.waitForEvents(2);
  stream.close();
  const resumed = await waitOpen(await fleet.stream(r2, 'hal', { headers: { 'last-event-id': stream.events[1]!.lastEventId } }), 'hal resumed');
  t.teardown(() => resumed.close());
  await fleet.publish(r1, 'hal', 'd2');
  await resumed.waitForEvents(1);
  t.same(
    resumed.events.map((e) => [e.type, JSON.parse(e.data)]),
    [['message', 'd2']],
    'only what came after',
  );
});

t.test('a live-only event on a user with no history yet: its id resumes without a reset', async (t) => {
  const stream = await waitOpen(await fleet.stream(r1, 'ida'), 'ida');
  await live('ida', 'first-tick');
  await stream.waitForEvents(1);
  stream.close();
  await fleet.publish(r2, 'ida', 'd1');
  const resumed = await waitOpen(await fleet.stream(r2, 'ida', { headers: { 'last-event-id': stream.events[0]!.lastEventId } }), 'ida resumed');
  t.teardown(() => resumed.close());
  await resumed.waitForEvents(1);
  t.same(
    resumed.events.map((e) => [e.type, JSON.parse(e.data)]),
    [['message', 'd1']],
  );
});
