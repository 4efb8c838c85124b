// Header and newline injection (CWE-93) into the SSE wire format, against a replica built in this
// process on a real redis-server, over real sockets: event types that could start a new field
// are refused, data that contains SSE syntax arrives as exactly one event that parses back to
// what was sent, and junk Last-Event-IDs give a `reset`, never a 5xx and never an echo of the junk.
import t, { type Test } from 'tap';
import { PUBLISH_API_KEY, waitOpen } from '../helpers/fleet.js';
import { postJson, rawRequest, rawSocketRequest, type JsonResponse, type RawResponse, type RawSocketResponse } from '../helpers/http.js';
import { inProcessFleet, type InProcessReplica } from '../helpers/in-process-replica.js';
import { openSse, type SseConnection } from '../helpers/sse-client.js';

const fleet = await inProcessFleet(t);
const replica = fleet.replicas[0] as InProcessReplica;
const key = { bearer: PUBLISH_API_KEY };

/** Every line an SSE response of ours may carry: the fields we write, comments and blank lines. */
const ALLOWED_LINE = /^(?:|:[^\n]*|retry: \d+|id: [^\r\n\0]+|event: [A-Za-z0-9._:-]{1,64}|data: [^\n]*)$/;

/** JSON with every non-ASCII character escaped: U+2028 in an assertion name would break the TAP stream. */
const show = (value: unknown): string => JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function assertWireClean(t: Test, body: string, label: string): void {
  t.notOk(body.includes('\r'), `${label}: no CR anywhere on the wire`);
  t.notOk(body.includes('\0'), `${label}: no NUL anywhere on the wire`);
  const bad = body
    .split('\n')
    .filter((line) => !ALLOWED_LINE.test(line))
    .map(show);
  t.same(bad, [], `${label}: every line is a field we write`);
  t.notMatch(body, /^event: (?:injected|x)$/m, `${label}: no injected event line`);
  t.notMatch(body, /^id: 1$/m, `${label}: no injected id line`);
}

async function openStream(t: Test, userId: string, headers: Record<string, string> = {}, query = ''): Promise<SseConnection> {
  const token = await fleet.token(userId);
  const connection = await openSse(`${replica.url}/stream/${encodeURIComponent(userId)}?token=${token}${query}`, { headers });
  t.teardown(() => connection.close());
  return connection;
}

function assertProblem(t: Test, answer: JsonResponse | RawResponse | RawSocketResponse, status: number, code: string, label: string): void {
  t.equal(answer.status, status, `${label}: status ${status}`);
  t.match(String(answer.headers['content-type']), /^application\/problem\+json\b/, `${label}: application/problem+json`);
  const json = 'json' in answer ? answer.json : safeParse(answer.body);
  t.equal(json?.code, code, `${label}: code ${code}`);
}

function safeParse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

t.test('publish: an event type carrying CR/LF/NUL or SSE syntax is refused, and nothing is delivered', async (t) => {
  const stream = await waitOpen(await openStream(t, 'inj-type'), 'inj-type');
  const types = ['a\nevent: x', 'a\r\nid: 1', 'a\rid: 1', 'a\n\ndata: x\n\n', 'a\u0000', 'a\u2028b', 'message\n', ' message', 'a b'];
  for (const type of types) {
    assertProblem(t, await postJson(`${replica.url}/v1/users/inj-type/events`, { type, data: 1 }, key), 400, 'invalid_event_type', `user type ${show(type)}`);
    assertProblem(
      t,
      await postJson(`${replica.url}/v1/topics/inj-topic/events`, { type, data: 1 }, key),
      400,
      'invalid_event_type',
      `topic type ${show(type)}`,
    );
  }
  // Idempotency keys become part of a Redis key; control characters in them are refused as well.
  assertProblem(
    t,
    await postJson(`${replica.url}/v1/users/inj-type/events`, { data: 1, id: 'a\r\nid: 1' }, key),
    400,
    'invalid_request',
    'idempotency id with CRLF',
  );

  const sentinel = await postJson(`${replica.url}/v1/users/inj-type/events`, { type: 'sentinel', data: 'after' }, key);
  t.equal(sentinel.status, 202);
  await stream.waitForEvents(1);
  t.same(
    stream.events.map((e) => [e.type, e.data]),
    [['sentinel', '"after"']],
    'only the sentinel reached the stream',
  );
  assertWireClean(t, stream.body, 'type stream');
});

t.test('callback: an X-Event-Type outside [A-Za-z0-9._:-] is 400, including bytes fetch refuses', async (t) => {
  const created = await postJson(`${replica.url}/v1/jobs`, { userId: 'inj-cb' }, key);
  t.equal(created.status, 201);
  const { correlationId } = created.json;
  const stream = await waitOpen(await openStream(t, 'inj-cb'), 'inj-cb');
  const path = `/v1/callbacks/${correlationId}`;
  const body = '{"ok":true}';
  const raw = (typeHeaderLines: string): Buffer =>
    Buffer.concat([
      Buffer.from(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n`,
        'latin1',
      ),
      Buffer.from(typeHeaderLines, 'latin1'),
      Buffer.from(`\r\n${body}`, 'latin1'),
    ]);

  // Values that reach the route: printable but outside the allowed set.
  const printable: Record<string, string> = {
    space: 'X-Event-Type: job done\r\n',
    slash: 'X-Event-Type: a/b\r\n',
    markup: 'X-Event-Type: <script>\r\n',
    quote: 'X-Event-Type: a"b\r\n',
    tab: 'X-Event-Type: a\tb\r\n',
    'utf-8 bytes': `X-Event-Type: ${Buffer.from('café', 'utf8').toString('latin1')}\r\n`,
    'latin-1 byte': 'X-Event-Type: caf\xe9\r\n',
    'too long': `X-Event-Type: ${'x'.repeat(65)}\r\n`,
    'two headers (joined with a comma)': 'X-Event-Type: a\r\nX-Event-Type: b\r\n',
  };
  for (const [label, lines] of Object.entries(printable)) {
    const answer = await rawSocketRequest(replica.url, raw(lines));
    assertProblem(t, answer, 400, 'invalid_event_type', `X-Event-Type ${label}`);
  }
  // Control bytes inside a header value: the HTTP parser itself refuses the request, before any
  // route. It is still a non-2xx answer of the service, so the contract's problem+json applies.
  const control: Record<string, string> = {
    'bare CR': 'X-Event-Type: a\rid: 1\r\n',
    NUL: 'X-Event-Type: a\x00b\r\n',
    'bare LF + field': 'X-Event-Type: a\nevent: injected\r\n',
    'obs-fold continuation': 'X-Event-Type: a\r\n event: injected\r\n',
    'other control byte': 'X-Event-Type: a\x01b\r\n',
  };
  for (const [label, lines] of Object.entries(control)) {
    const answer = await rawSocketRequest(replica.url, raw(lines));
    t.equal(answer.status, 400, `X-Event-Type with ${label}: 400`);
    t.match(answer.headers['content-type'] ?? '', /^application\/problem\+json\b/, `X-Event-Type with ${label}: application/problem+json`);
    t.ok(['invalid_request', 'invalid_event_type'].includes(safeParse(answer.body)?.code), `X-Event-Type with ${label}: a registry code`);
    t.notMatch(answer.raw, /\n\s+at |node_modules/, `X-Event-Type with ${label}: no internals`);
  }
  // The same framing with an allowed type is accepted, so the 400s above are about the type alone.
  const accepted = await rawSocketRequest(replica.url, raw('X-Event-Type: job.done:v1-ok\r\n'));
  t.equal(accepted.status, 202, `a valid X-Event-Type is accepted: ${accepted.body}`);
  await stream.waitForEvents(1);
  t.same(
    stream.events.map((e) => e.type),
    ['job.done:v1-ok'],
    'only the valid callback was delivered',
  );
  assertWireClean(t, stream.body, 'callback stream');
});

t.test('data carrying SSE syntax arrives as exactly one event and parses back to the original', async (t) => {
  const stream = await waitOpen(await openStream(t, 'inj-data'), 'inj-data');
  const payloads: unknown[] = [
    '\n\nevent: injected\ndata: x\n\n',
    '\r',
    '\r\n\r\nid: 1\r\n\r\n',
    '\u2028',
    '\u2029\u0085',
    '\u0000',
    'nul\u0000inside\u0000',
    '\ud800',
    ': comment\n\n',
    'retry: 1\n\n',
    { '\n\nevent: injected\n': '\r\ndata: x\r\n\r\n', nested: ['\n', '\r', '\u0000', { k: 'id: 1\n' }] },
  ];
  const ids: string[] = [];
  for (const data of payloads) {
    const answer = await postJson(`${replica.url}/v1/users/inj-data/events`, { data }, key);
    t.equal(answer.status, 202, `accepted ${show(data)}`);
    ids.push(answer.json.id);
  }
  await stream.waitForEvents(payloads.length);
  // A final sentinel: anything injected before it would show up as an extra event.
  const sentinel = await postJson(`${replica.url}/v1/users/inj-data/events`, { type: 'sentinel', data: 'end' }, key);
  await stream.waitFor((c) => c.events.some((e) => e.type === 'sentinel'), 5000, 'sentinel');
  t.equal(stream.events.length, payloads.length + 1, 'one event per publish, nothing extra');
  payloads.forEach((data, i) => {
    const event = stream.events[i]!;
    t.equal(event.type, 'message', `event ${i}: type untouched`);
    t.equal(event.lastEventId, ids[i], `event ${i}: the answered id`);
    t.notOk(event.data.includes('\n'), `event ${i}: data is one line`);
    t.same(JSON.parse(event.data), data, `event ${i}: data parses back to ${show(data)}`);
  });
  t.equal(stream.events.at(-1)!.lastEventId, sentinel.json.id);
  const eventLines = stream.body.split('\n').filter((line) => line.startsWith('event: '));
  t.equal(eventLines.length, payloads.length + 1, 'one event: line per event in the raw body');
  const dataLines = stream.body.split('\n').filter((line) => line.startsWith('data: '));
  t.equal(dataLines.length, payloads.length + 1, 'one data: line per event in the raw body');
  assertWireClean(t, stream.body, 'data stream');
});

t.test('a callback payload carrying SSE syntax arrives as one event', async (t) => {
  const created = await postJson(`${replica.url}/v1/jobs`, { userId: 'inj-cb-data' }, key);
  const stream = await waitOpen(await openStream(t, 'inj-cb-data'), 'inj-cb-data');
  const payload = { note: '\n\nevent: injected\ndata: x\n\n', cr: '\r', ls: '\u2028', nul: '\u0000' };
  const answer = await postJson(`${replica.url}/v1/callbacks/${created.json.correlationId}`, payload);
  t.equal(answer.status, 202);
  await stream.waitForEvents(1);
  const sentinel = await postJson(`${replica.url}/v1/users/inj-cb-data/events`, { type: 'sentinel', data: 'end' }, key);
  t.equal(sentinel.status, 202);
  await stream.waitForEvents(2);
  t.equal(stream.events.length, 2, 'the callback and the sentinel, nothing else');
  t.equal(stream.events[0]!.type, 'callback');
  t.same(JSON.parse(stream.events[0]!.data).payload, payload, 'the payload parses back to the original');
  assertWireClean(t, stream.body, 'callback data stream');
});

t.test('prototype-poisoning bodies are refused', async (t) => {
  const url = `${replica.url}/v1/users/inj-proto/events`;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${PUBLISH_API_KEY}` };
  for (const body of ['{"data":{"__proto__":{"polluted":true}}}', '{"data":{"constructor":{"prototype":{"polluted":true}}}}']) {
    const answer = await rawRequest({ url, method: 'POST', headers, body });
    t.equal(answer.status, 400, `${body}: 400`);
    t.match(String(answer.headers['content-type']), /^application\/problem\+json\b/, `${body}: problem+json`);
  }
});

t.test('junk Last-Event-IDs: a reset, never a 5xx, never an echo', async (t) => {
  const other = await waitOpen(await openStream(t, 'inj-other'), 'inj-other');
  const otherEvent = await postJson(`${replica.url}/v1/users/inj-other/events`, { data: 'other-secret' }, key);
  await other.waitForEvents(1);
  const marker = 'JUNKMARKER';
  const cases: Record<string, string> = {
    garbage: `${marker}-not-an-id`,
    'very long (10 kB)': `${marker}${'Z'.repeat(10 * 1024)}`,
    'markup and latin-1': `<script>${marker}</script> \t caf\xe9 ${'\xff'.repeat(8)}`,
    'path and template junk': `../../${marker}/\${jndi:ldap://x}/%00/'; DROP TABLE x;--`,
    'cursor-shaped, unknown channel': 'abcdefg.0123456789ab.1-0',
    'cursor-shaped, huge numbers': 'abcdefg.0123456789ab.999999999999999-999999999999999',
    'too many segments': Array.from({ length: 40 }, () => 'abcdefg.0123456789ab.1-0').join('_'),
    "another user's id": otherEvent.json.id,
  };
  let n = 0;
  for (const [label, junk] of Object.entries(cases)) {
    for (const via of ['header', 'query'] as const) {
      if (via === 'query' && /[^\x20-\x7e]/.test(junk)) continue; // the query form is for ASCII ids
      const user = `inj-resume-${n++}`;
      const stream =
        via === 'header' ? await openStream(t, user, { 'last-event-id': junk }) : await openStream(t, user, {}, `&lastEventId=${encodeURIComponent(junk)}`);
      t.equal(stream.status, 200, `${label} (${via}): 200, never refused`);
      await stream.waitForEvents(1);
      const first = stream.events[0]!;
      t.equal(first.type, 'reset', `${label} (${via}): a reset first`);
      t.match(safeParse(first.data), { reason: 'history_gap' }, `${label} (${via}): reset data`);
      t.ok(first.lastEventId.length > 0 && first.lastEventId !== junk, `${label} (${via}): the reset carries a fresh cursor`);
      const live = await postJson(`${replica.url}/v1/users/${user}/events`, { data: 'live' }, key);
      t.equal(live.status, 202);
      await stream.waitForEvents(2);
      t.same(
        stream.events.map((e) => e.type),
        ['reset', 'message'],
        `${label} (${via}): then live events`,
      );
      t.notOk(stream.body.includes(marker), `${label} (${via}): the junk is not echoed`);
      t.notOk(stream.body.includes('other-secret'), `${label} (${via}): no other user's event`);
      if (junk.length > 64) t.notOk(stream.body.includes(junk.slice(0, 64)), `${label} (${via}): no part of the junk echoed`);
      assertWireClean(t, stream.body, `${label} (${via})`);
    }
  }
  const ready = await rawRequest({ url: `${replica.url}/readyz` });
  t.equal(ready.status, 200, 'the replica is still ready');
});
