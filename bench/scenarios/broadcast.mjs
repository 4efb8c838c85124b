// Scenario C — broadcast: one event to the topic every open stream joined (streams spread over
// the replicas), repeated; for each event, the time from the publisher's stamp until the LAST
// stream has parsed it. Events are sent one at a time, each after the previous one has reached
// every stream (or stopped arriving), so they never overlap.
import { setTimeout as sleep } from 'node:timers/promises';
import { summary, nsToMs } from '../lib/stats.mjs';
import { TOPIC } from '../lib/wire.mjs';
import { waitForEvents } from './util.mjs';

export async function broadcast(stack, fleet, { streams, events, gapMs }) {
  await fleet.record(true);
  const seqs = [];
  let accepted = 0;
  for (let k = 0; k < events; k++) {
    const before = await fleet.counts();
    const port = stack.publishPorts[k % stack.publishPorts.length];
    const r = await fleet.publisher.call('topic', { name: TOPIC, port });
    if (r.status >= 200 && r.status < 300) accepted++;
    seqs.push(r.seq);
    await waitForEvents(fleet, before.events + streams, { pollMs: 10, quietMs: 2000 });
    await sleep(gapMs);
  }
  const { perSeq } = await fleet.take();
  await fleet.record(false);
  const perEvent = seqs.map((s) => {
    const e = perSeq.get(s);
    return { seq: s, delivered: e?.n ?? 0, timeToLastMs: e ? nsToMs(e.max) : null };
  });
  const delivered = perEvent.reduce((a, e) => a + e.delivered, 0);
  return {
    streams,
    events,
    accepted,
    deliveryRatio: delivered / (events * streams),
    timeToLastMs: summary(perEvent.map((e) => e.timeToLastMs)),
    perEvent,
  };
}
