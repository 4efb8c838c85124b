// Load shedding: a saturated replica answers publishes 503 `overloaded` with Retry-After instead
// of queueing them, while its streams go on. Saturation is made real, with thresholds set
// artificially low so a bounded load on 127.0.0.1 reaches them: no timing is asserted, only what
// the replica answers and delivers.
import t from 'tap';
import { PUBLISH_API_KEY, startFleet, waitOpen } from '../helpers/fleet.js';
import { getJson, postJson, type JsonResponse } from '../helpers/http.js';
import { inProcessFleet } from '../helpers/in-process-replica.js';
import type { Replica } from '../helpers/replica.js';
import { waitFor } from '../helpers/wait-for.js';
import { scrape } from '../telemetry/prometheus-text.js';

/** Publishes a bounded load sends at most: enough to saturate a replica's loop, never unbounded. */
const MAX_LOAD_PUBLISHES = 20_000;
const LOAD_CONCURRENCY = 64;

const isOverloaded = (answer: JsonResponse): boolean => answer.status === 503 && answer.json?.code === 'overloaded';

t.test('past the event-loop delay threshold, publishes get 503 overloaded with Retry-After; the stream stays live and readiness holds', async (t) => {
  // 1 ms of mean delay: any real load crosses it. Retry-After 7: the setting, not the default.
  const fleet = await startFleet(t, 1, {
    SHED_EVENT_LOOP_DELAY_MS: '1',
    SHED_MAX_IN_FLIGHT_PUBLISHES: '0',
    SHED_RETRY_AFTER_SECONDS: '7',
  });
  const replica = fleet.replicas[0] as Replica;
  const watcher = await waitOpen(await fleet.stream(replica, 'watcher'), 'watcher');

  const url = (user: string): string => `${replica.url}/v1/users/${user}/events`;
  let sent = 0;
  let shed: JsonResponse | undefined;
  let readyWhileShedding: number | undefined;
  const acceptedForWatcher: string[] = [];
  const worker = async (): Promise<void> => {
    while (shed === undefined && sent < MAX_LOAD_PUBLISHES) {
      const n = sent++;
      // One in ten goes to the open stream: each of those accepted must reach it.
      const user = n % 10 === 0 ? 'watcher' : `load-${n % 100}`;
      const answer = await postJson(url(user), { data: { n } }, { bearer: PUBLISH_API_KEY, timeoutMs: 30_000 });
      if (answer.status === 202 && user === 'watcher') acceptedForWatcher.push(answer.json.id as string);
      else if (isOverloaded(answer) && shed === undefined) {
        shed = answer;
        readyWhileShedding = (await getJson(`${replica.url}/readyz`)).status;
      } else if (answer.status !== 202 && !isOverloaded(answer)) throw new Error(`unexpected answer ${answer.status}: ${answer.text}`);
    }
  };
  await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, worker));

  t.ok(shed, `a publish was shed (after ${sent} publishes)`);
  if (shed === undefined) return;
  t.equal(shed.headers['retry-after'], '7', 'Retry-After is SHED_RETRY_AFTER_SECONDS');
  t.match(shed.headers['content-type'], /^application\/problem\+json/);
  t.match(shed.json, { status: 503, code: 'overloaded', type: 'urn:switchboard:problem:overloaded' });
  t.equal(readyWhileShedding, 200, 'saturation does not make the replica unready');

  // The stream was not shed: every event accepted for it arrived, nothing else. (Answers to
  // concurrent publishes come back in any order, so the two lists are compared as sets.)
  await watcher.waitForEvents(acceptedForWatcher.length, 15_000);
  t.same(watcher.events.map((e) => e.id).sort(), [...acceptedForWatcher].sort(), `all ${acceptedForWatcher.length} accepted events reached the stream`);
  t.notOk(watcher.isEnded(), 'the stream is still open');

  const metrics = await scrape(replica);
  t.ok(metrics.count('switchboard_publishes_shed_total', { reason: 'event_loop_delay' }) >= 1, 'the shed publish is counted by reason');
  t.equal(metrics.count('switchboard_publishes_shed_total', { reason: 'in_flight' }), 0, 'the in-flight check is off (0)');
  t.match(metrics.text, /^# TYPE switchboard_process_nodejs_eventloop_lag_p99_seconds gauge$/m, 'event-loop delay is exported');
  t.ok((metrics.value('switchboard_process_nodejs_eventloop_lag_p99_seconds') ?? -1) >= 0, 'with a value');
});

t.test('past SHED_MAX_IN_FLIGHT_PUBLISHES publishes waiting for Redis, more get 503 overloaded at once', async (t) => {
  const fleet = await inProcessFleet(t, { SHED_EVENT_LOOP_DELAY_MS: '0', SHED_MAX_IN_FLIGHT_PUBLISHES: '2' });
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
  for (const answer of shed) t.equal(answer.headers['retry-after'], '1', 'Retry-After defaults to 1 s');
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
  await waitFor(async () => ((await fleet.publish(replica, 'u1', { after: true })).status === 202 ? true : undefined), {
    timeoutMs: 10_000,
    label: 'publishes accepted again',
  });
});
