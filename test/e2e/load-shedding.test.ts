// Load shedding: a replica with more publishes waiting than SHED_MAX_IN_FLIGHT_PUBLISHES answers
// the next ones 503 `overloaded` with Retry-After at once, instead of queueing them. The wait is
// made real (Redis frozen), the limit set low: no timing is asserted, only what the replica
// answers and counts.
import t from 'tap';
import type { JsonResponse } from '../helpers/http.js';
import { inProcessFleet } from '../helpers/in-process-replica.js';
import { waitFor } from '../helpers/wait-for.js';
import { scrape } from '../telemetry/prometheus-text.js';

const isOverloaded = (answer: JsonResponse): boolean => answer.status === 503 && answer.json?.code === 'overloaded';

t.test('past SHED_MAX_IN_FLIGHT_PUBLISHES publishes waiting for Redis, more get 503 overloaded at once', async (t) => {
  const fleet = await inProcessFleet(t, { SHED_EVENT_LOOP_DELAY_MS: '0', SHED_MAX_IN_FLIGHT_PUBLISHES: '2', SHED_RETRY_AFTER_SECONDS: '7' });
  const replica = fleet.replicas[0];
  if (replica === undefined) throw new Error('no replica');
  t.equal((await fleet.publish(replica, 'u1', { before: true })).status, 202, 'publishes are accepted while Redis answers');

  // Redis frozen: admitted publishes wait (up to the command timeout); two of them fill the limit.
  fleet.redis.pause();
  let resumed = false;
  t.teardown(() => {
    if (!resumed) fleet.redis.resume();
  });
  const answers = await Promise.all(Array.from({ length: 8 }, (_, n) => fleet.publish(replica, 'u1', { n })));
  fleet.redis.resume();
  resumed = true;

  const shed = answers.filter(isOverloaded);
  t.ok(shed.length >= 1, `${shed.length} of 8 publishes were shed`);
  for (const answer of shed) {
    t.equal(answer.headers['retry-after'], '7', 'Retry-After is SHED_RETRY_AFTER_SECONDS');
    t.match(answer.headers['content-type'], /^application\/problem\+json/);
    t.match(answer.json, { status: 503, code: 'overloaded', type: 'urn:switchboard:problem:overloaded' });
  }
  for (const answer of answers.filter((a) => !isOverloaded(a))) {
    t.match(answer.json, { code: 'backplane_unavailable' }, 'an admitted publish waited for the frozen Redis and was refused by its timeout');
  }

  const metrics = await waitFor(
    async () => {
      const m = await scrape(replica);
      return m.value('switchboard_publishes_in_flight') === 0 ? m : undefined;
    },
    { timeoutMs: 10_000, label: 'no publish in flight' },
  );
  t.equal(metrics.count('switchboard_publishes_shed_total', { reason: 'in_flight' }), shed.length, 'each shed publish is counted');
  t.equal(metrics.count('switchboard_publishes_shed_total', { reason: 'event_loop_delay' }), 0, 'the event-loop check is off (0)');
  t.match(metrics.text, /^# TYPE switchboard_process_nodejs_eventloop_lag_p99_seconds gauge$/m, 'event-loop delay is exported');
  await waitFor(async () => ((await fleet.publish(replica, 'u1', { after: true })).status === 202 ? true : undefined), {
    timeoutMs: 10_000,
    label: 'publishes accepted again',
  });
});
