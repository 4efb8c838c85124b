// One event, one trace, across replicas: a callback accepted by replica A for a stream held by
// replica B (and C) is traced as A's HTTP server span → A's PRODUCER span → each delivering
// replica's CONSUMER span, with the W3C context carried inside the Redis envelope. Replays from
// history (a resume, a catch-up after the subscriber reconnects) are traced too, and spans
// still batched when SIGTERM arrives are flushed before the replica exits.
import t from 'tap';
import { PUBLISH_API_KEY, waitOpen } from '../helpers/fleet.js';
import { postJson } from '../helpers/http.js';
import type { Replica } from '../helpers/replica.js';
import { SpanKind, startOtlpReceiver, tracingEnv, type ReceivedSpan } from './otlp-receiver.js';
import { startTelemetryFleet } from './telemetry-fleet.js';

const SPAN_WAIT_MS = 15_000;
const USER = 'tracy';
const CHANNEL = `sb:{u:${USER}}:ch`;

const receiver = await startOtlpReceiver(t);
// C batches its spans for ten minutes: they can only arrive through the flush on SIGTERM.
const fleet = await startTelemetryFleet(t, 3, (index) => ({
  ...tracingEnv(receiver),
  ...(index === 3 ? { OTEL_BSP_SCHEDULE_DELAY: '600000' } : {}),
}));
const [a, b, c] = fleet.replicas as [Replica, Replica, Replica];

const created = await postJson(`${a.url}/v1/jobs`, { userId: USER }, { bearer: PUBLISH_API_KEY });
const correlationId = created.json.correlationId as string;
const onB = await waitOpen(await fleet.stream(b, USER), 'stream on B');
t.teardown(() => onB.close());
const onC = await waitOpen(await fleet.stream(c, USER), 'stream on C');
t.teardown(() => onC.close());

const markA = a.logMark();
const callback = await postJson(`${a.url}/v1/callbacks/${correlationId}`, { status: 'done' }, { headers: { 'idempotency-key': 'run-1' } });
const eventId = callback.json.eventId as string;

const isProducer = (span: ReceivedSpan): boolean => span.name === 'switchboard.publish' && span.attributes['messaging.message.id'] === eventId;
const deliverOn =
  (instance: string) =>
  (span: ReceivedSpan): boolean =>
    span.name === 'switchboard.deliver' && span.instance === instance && span.attributes['messaging.message.id'] === eventId;

t.test('a callback to A for a stream on B is one trace: A server span → A producer → B consumer', async (t) => {
  t.equal(callback.status, 202);
  t.equal(callback.json.receivers, 2, 'B and C hold the stream');
  await onB.waitForEvents(1);

  // A's request span ends after its handler returned, so it may come in a later batch.
  const spans = await receiver.waitForSpans(
    (all) => all.some(deliverOn('r2')) && all.some((span) => isProducer(span) && ancestorsOf(all, span).at(-1)?.parentSpanId === ''),
    SPAN_WAIT_MS,
    'producer span, its ancestors up to the root, and B consumer span',
  );
  const producer = spans.find(isProducer)!;
  const consumer = spans.find(deliverOn('r2'))!;
  const inTrace = spans.filter((span) => span.traceId === producer.traceId);
  const byId = new Map(inTrace.map((span) => [span.spanId, span]));

  t.equal(producer.instance, 'r1', 'the producer span comes from A (service.instance.id)');
  t.equal(producer.kind, SpanKind.PRODUCER);
  t.match(producer.attributes, {
    'messaging.system': 'redis',
    'messaging.destination.name': CHANNEL,
    'messaging.message.id': eventId,
    'switchboard.correlation_id': correlationId,
    'switchboard.receivers': 2,
    'switchboard.replica_id': 'r1',
  });

  // Up from the producer, on A, to the root: the HTTP server span of the callback request.
  const ancestors = ancestorsOf(spans, producer);
  const server = ancestors.at(-1);
  t.ok(server !== undefined && server.parentSpanId === '', `the producer's parent chain reaches a root (${ancestors.map((s) => s.name).join(' → ')})`);
  t.equal(server?.kind, SpanKind.SERVER, 'the root is a SERVER span');
  t.equal(server?.scope, '@fastify/otel');
  t.equal(server?.attributes['http.route'], '/v1/callbacks/:correlationId');
  t.equal(server?.attributes['http.response.status_code'], 202);
  t.ok(
    ancestors.every((span) => span.instance === 'r1'),
    "every span between them is A's",
  );

  t.equal(consumer.kind, SpanKind.CONSUMER);
  t.equal(consumer.traceId, producer.traceId, "B's consumer span is in the same trace");
  t.equal(consumer.parentSpanId, producer.spanId, "B's consumer span is a child of A's producer span");
  t.match(consumer.attributes, { 'messaging.destination.name': CHANNEL, 'switchboard.streams_written': 1 });
  t.ok((consumer.attributes['switchboard.bytes_written'] as number) > 0, 'it records the bytes written');

  const script = inTrace.find((span) => span.kind === SpanKind.CLIENT && span.parentSpanId === producer.spanId);
  t.equal(script?.attributes['db.query.text'], 'evalsha', 'the Redis publish script is a child of the producer, recorded by command name only');
  t.same(
    spans.filter((span) => span.name === 'switchboard.publish' && span.attributes['switchboard.correlation_id'] === correlationId).length,
    1,
    'one producer span',
  );
  t.ok(
    inTrace.every((span) => span.parentSpanId === '' || byId.has(span.parentSpanId)),
    "every span's parent is in the trace",
  );
  t.same(receiver.otherPaths, [], 'nothing but traces is exported (metrics are Prometheus, logs are stdout)');
});

t.test('the log line about the event carries its trace and span ids, correlation id and replica id', async (t) => {
  const producer = receiver.spans.find(isProducer)!;
  const line = await a.waitForLog((entry) => entry.msg === 'callback accepted' && entry.correlationId === correlationId, 5000, { since: markA });
  t.equal(line.trace_id, producer.traceId);
  t.ok(
    receiver.spans.some((span) => span.spanId === line.span_id && span.traceId === producer.traceId),
    'span_id names a span of that trace',
  );
  t.equal(line.replicaId, 'r1');
  t.equal(line.eventId, eventId);
});

t.test('spans still batched at SIGTERM are flushed before the replica exits', async (t) => {
  await onC.waitForEvents(1);
  t.notOk(receiver.spans.some(deliverOn('r3')), 'C has not exported its consumer span yet (10-minute batch delay)');
  t.same(await c.kill('SIGTERM'), { code: 0, signal: null }, 'C exits 0 on SIGTERM');
  const spans = await receiver.waitForSpans((all) => all.some(deliverOn('r3')), SPAN_WAIT_MS, 'C consumer span after SIGTERM');
  const producer = spans.find(isProducer)!;
  const consumer = spans.find(deliverOn('r3'))!;
  t.equal(consumer.traceId, producer.traceId, "C's consumer span is in the same trace");
  t.equal(consumer.parentSpanId, producer.spanId, 'and a child of the producer span');
});

t.test("a resume replays from history inside a replay span linked to the events' producers", async (t) => {
  const second = await fleet.publish(a, USER, { n: 2 });
  t.equal(second.status, 202);
  await onB.waitForEvents(2);
  const resumed = await waitOpen(await fleet.stream(b, USER, { query: `&lastEventId=${encodeURIComponent(eventId)}` }), 'resumed stream on B');
  t.teardown(() => resumed.close());
  await resumed.waitForEvents(1);

  const spans = await receiver.waitForSpans(
    (all) =>
      all.some((span) => span.name === 'switchboard.publish' && span.attributes['messaging.message.id'] === second.json.id) &&
      all.some(isReplay('r2', 'resume')),
    SPAN_WAIT_MS,
    'resume replay span',
  );
  const producer = spans.find((span) => span.name === 'switchboard.publish' && span.attributes['messaging.message.id'] === second.json.id)!;
  const replay = spans.find(isReplay('r2', 'resume'))!;
  t.equal(replay.kind, SpanKind.CONSUMER);
  t.match(replay.attributes, { 'switchboard.replayed_events': 1, 'messaging.destination.name': CHANNEL });
  t.ok((replay.attributes['switchboard.bytes_written'] as number) > 0);
  t.ok(
    replay.links.some((link) => link.spanId === producer.spanId && link.traceId === producer.traceId),
    "linked to the replayed event's producer span",
  );
});

t.test('a catch-up after the subscriber reconnects is traced as a replay span', async (t) => {
  // Kill every subscriber connection and publish at once: B's reconnect waits 100 ms, so the
  // event is published while B is away (receivers 0) and reaches B only through catch-up.
  let missed: { id: string; receivers: number } | undefined;
  for (let attempt = 0; attempt < 10 && missed === undefined; attempt++) {
    const mark = b.logMark();
    await fleet.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const answer = await fleet.publish(a, USER, { n: `catch-up-${attempt}` });
    if (answer.json.receivers === 0) missed = answer.json;
    await b.waitForLog((entry) => entry.msg === 'subscriber back; catching up from history', 10_000, { since: mark });
  }
  if (missed === undefined) {
    t.fail('no publish landed while B was away in 10 attempts');
    return;
  }
  const spans = await receiver.waitForSpans(
    (all) => all.some((span) => isReplay('r2', 'catch_up')(span) && span.links.length > 0),
    SPAN_WAIT_MS,
    'catch-up replay span with links',
  );
  const producer = spans.find((span) => span.name === 'switchboard.publish' && span.attributes['messaging.message.id'] === missed.id);
  const replay = spans.find((span) => isReplay('r2', 'catch_up')(span) && span.links.some((link) => link.spanId === producer?.spanId));
  t.ok(replay, "B's catch-up replay span links to the missed event's producer span");
  t.match(replay?.attributes, { 'messaging.destination.name': CHANNEL });
  t.ok((replay?.attributes['switchboard.replayed_events'] as number) >= 1);
  await onB.waitFor((stream) => stream.events.some((event) => event.lastEventId === missed.id), 5000, 'the missed event on B');
});

/** The span's parent, grandparent, … as far as they were received. */
function ancestorsOf(spans: readonly ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] {
  const ancestors: ReceivedSpan[] = [];
  for (let parent = find(span.parentSpanId); parent !== undefined; parent = find(parent.parentSpanId)) ancestors.push(parent);
  return ancestors;

  function find(spanId: string): ReceivedSpan | undefined {
    return spanId === '' ? undefined : spans.find((candidate) => candidate.spanId === spanId && candidate.traceId === span.traceId);
  }
}

function isReplay(instance: string, trigger: string) {
  return (span: ReceivedSpan): boolean =>
    span.name === 'switchboard.replay' && span.instance === instance && span.attributes['switchboard.replay.trigger'] === trigger;
}
