// A job created on one replica, its stream on a second, its callback on a third.
import t from 'tap';
import { PUBLISH_API_KEY, startFleet, waitOpen } from '../helpers/fleet.js';
import { getJson, postJson } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

// One fleet for the file; each test makes its own jobs. HISTORY_TTL_SECONDS is 60 (not the
// default 3600) for the dedupe test below; nothing else here keeps history that long.
const fleet = await startFleet(t, 3, { HISTORY_TTL_SECONDS: '60' });

t.test("a callback posted to any replica reaches the job user's stream on another, once per idempotency key", async (t) => {
  const [r1, r2, r3] = fleet.replicas as [(typeof fleet.replicas)[0], (typeof fleet.replicas)[0], (typeof fleet.replicas)[0]];

  const created = await postJson(`${r1.url}/v1/jobs`, { userId: 'carol', metadata: { kind: 'report' } }, { bearer: PUBLISH_API_KEY });
  t.equal(created.status, 201);
  const { correlationId, callbackUrl } = created.json;
  t.match(correlationId, /^[A-Za-z0-9_-]{24}$/, '144-bit URL-safe correlation id');
  t.equal(new URL(callbackUrl).pathname, `/v1/callbacks/${correlationId}`);

  const stream = await waitOpen(await fleet.stream(r2, 'carol'), 'carol on r2');
  t.teardown(() => stream.close());

  const callback = await postJson(
    `${r3.url}/v1/callbacks/${correlationId}`,
    { status: 'done', rows: 42 },
    {
      headers: { 'idempotency-key': 'attempt-1', 'x-event-type': 'job.done' },
    },
  );
  t.equal(callback.status, 202);
  t.same({ receivers: callback.json.receivers, duplicate: callback.json.duplicate }, { receivers: 1, duplicate: false });

  const [event] = await stream.waitForEvents(1);
  t.equal(event!.type, 'job.done', 'X-Event-Type sets the event type');
  t.equal(event!.lastEventId, callback.json.eventId, 'the stream sees the id the callback was answered with');
  const data = JSON.parse(event!.data);
  t.same(data.payload, { status: 'done', rows: 42 });
  t.equal(data.correlationId, correlationId);
  t.ok(Number.isFinite(Date.parse(data.receivedAt)), 'receivedAt is a timestamp');

  // The job system retries the same callback three times, each to a different replica.
  for (const replica of [r1, r2, r3]) {
    const retry = await postJson(
      `${replica.url}/v1/callbacks/${correlationId}`,
      { status: 'done', rows: 42 },
      {
        headers: { 'idempotency-key': 'attempt-1', 'x-event-type': 'job.done' },
      },
    );
    t.equal(retry.status, 202, `retry via ${replica.replicaId} accepted`);
    t.equal(retry.json.duplicate, true, `retry via ${replica.replicaId} flagged duplicate`);
    t.equal(retry.json.eventId, callback.json.eventId, 'a duplicate answers the original event id');
  }
  // A later, distinct callback proves the stream is live, and that nothing was delivered in between.
  const later = await postJson(`${r1.url}/v1/callbacks/${correlationId}`, { step: 2 }, { headers: { 'webhook-id': 'msg-2' } });
  t.equal(later.status, 202);
  await stream.waitForEvents(2);
  t.equal(stream.events.length, 2, 'the retried callback was delivered once');
  t.equal(stream.events[1]!.type, 'callback', 'default event type');

  const job = await getJson(`${r2.url}/v1/jobs/${correlationId}`, { bearer: PUBLISH_API_KEY });
  t.equal(job.status, 200);
  t.equal(job.json.userId, 'carol');
  t.equal(job.json.status, 'callback_received', 'the latest callback named no status');
  t.same(job.json.metadata, { kind: 'report' });
  t.same(
    job.json.callbacks.map((c: { eventId: string }) => c.eventId),
    [later.json.eventId, callback.json.eventId],
    'newest first, duplicates not recorded',
  );
  t.same(
    job.json.callbacks.map((c: { payload: unknown }) => c.payload),
    [{ step: 2 }, { status: 'done', rows: 42 }],
    'each with its payload',
  );

  const userToken = await fleet.token('carol');
  const asUser = await getJson(`${r3.url}/v1/jobs/${correlationId}`, { bearer: userToken });
  t.equal(asUser.status, 200, "the job's user may read it with a stream token");
});

t.test('callbacks for unknown or expired jobs are 404 on every replica', async (t) => {
  const created = await postJson(`${fleet.replicas[0]!.url}/v1/jobs`, { userId: 'dave', ttlSeconds: 1 }, { bearer: PUBLISH_API_KEY });
  const unknown = await postJson(`${fleet.replicas[1]!.url}/v1/callbacks/AAAAAAAAAAAAAAAAAAAAAAAA`, { x: 1 });
  t.equal(unknown.status, 404);
  t.equal(unknown.json.code, 'job_not_found');
  // Expire the job now rather than waiting out its TTL.
  await fleet.redis.command('PEXPIRE', `sb:job:{${created.json.correlationId}}`, 1);
  await waitFor(async () => (await fleet.redis.command('EXISTS', `sb:job:{${created.json.correlationId}}`)) === 0, { label: 'job expired' });
  const expired = await postJson(`${fleet.replicas[1]!.url}/v1/callbacks/${created.json.correlationId}`, { x: 1 });
  t.equal(expired.status, 404);
  t.equal(expired.json.code, 'job_not_found');
});

t.test('callback dedupe lives as long as the job, and never less than 600 s', async (t) => {
  // HISTORY_TTL_SECONDS (3600 by default, 60 on this fleet) has nothing to do with how long a
  // job's runner retries.
  const replica = fleet.replicas[0]!;
  const dedupeTtl = async (userId: string, ttlSeconds: number): Promise<number> => {
    const created = await postJson(`${replica.url}/v1/jobs`, { userId, ttlSeconds }, { bearer: PUBLISH_API_KEY });
    t.equal(created.status, 201);
    const { correlationId } = created.json;
    const first = await postJson(`${replica.url}/v1/callbacks/${correlationId}`, { n: 1 }, { headers: { 'idempotency-key': 'k1' } });
    t.same([first.status, first.json.duplicate], [202, false]);
    return Number(await fleet.redis.command('TTL', `sb:{u:${userId}}:idem:cb:${correlationId}:k1`));
  };
  const week = 7 * 86_400;
  const long = await dedupeTtl('dedupe-long', week);
  t.ok(long > week - 60 && long <= week, `a week-long job: the dedupe key lives a week (TTL ${long} s)`);
  const short = await dedupeTtl('dedupe-short', 5);
  t.ok(short > 600 - 60 && short <= 600, `a 5-second job: the dedupe key still lives 600 s (TTL ${short} s)`);
});

t.test('at Redis maxmemory (noeviction) a job is still read, and a callback to an unknown id is still 404', async (t) => {
  const replica = fleet.replicas[0]!;
  // The fleet's Redis gets its memory back for whatever runs after this test.
  t.teardown(() => fleet.redis.command('CONFIG', 'SET', 'maxmemory', '0'));
  const created = await postJson(`${replica.url}/v1/jobs`, { userId: 'oom-user' }, { bearer: PUBLISH_API_KEY });
  t.equal(created.status, 201);
  const { correlationId } = created.json;

  // Fill past 1 MB, then cap memory below what is used: every write, and every MULTI, is refused.
  await fleet.redis.command('EVAL', "for i = 1, 20000 do redis.call('SET', 'fill:' .. i, string.rep('x', 100)) end return 1", 0);
  await fleet.redis.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
  await fleet.redis.command('CONFIG', 'SET', 'maxmemory', '1mb');
  await t.rejects(fleet.redis.command('SET', 'one-more', 'x'), /OOM/, 'Redis is out of memory');

  const job = await getJson(`${replica.url}/v1/jobs/${correlationId}`, { bearer: PUBLISH_API_KEY });
  t.same([job.status, job.json.userId], [200, 'oom-user'], 'GET /v1/jobs/:id answers');
  const unknown = await postJson(`${replica.url}/v1/callbacks/AAAAAAAAAAAAAAAAAAAAAAAA`, { x: 1 });
  t.same([unknown.status, unknown.json.code], [404, 'job_not_found'], 'a callback to an unknown id: 404, not 503');
  const known = await postJson(`${replica.url}/v1/callbacks/${correlationId}`, { x: 1 });
  t.same([known.status, known.json.code], [503, 'backplane_unavailable'], 'a callback to a known job: found, then 503 since the event cannot be stored');
});
