import t from 'tap';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { SseEncodingError, encodeComment, encodeEventBody, encodeIdLine, encodeRetry, frameChunk } from '../../src/sse/encoder.js';
import { SseParser, parseSseStream } from '../helpers/sse-parser.js';
import type { ParsedSseEvent } from '../helpers/sse-parser.js';

// Run budget: the main round-trip property gets the full 100_000 runs (~6.5 s
// under tap's coverage on the 2-core box); the secondary properties get fewer
// so the whole file stays under ~15 s (measured ≈11 s file time, ≈14.5 s
// wall-clock for `npx tap` including ts-node startup).

/** A whole event, as the registry writes one: its id line, then its type and data. */
const encodeEvent = ({ id, type, dataJson }: { id: string; type: string; dataJson: string }): string => encodeIdLine(id) + encodeEventBody(type, dataJson);

const MAIN_RUNS = 100_000;
const SECONDARY_RUNS = 20_000;
const MIXED_STREAM_RUNS = 5_000; // each run encodes/parses up to 8 items

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

/** Independent of the encoder's own check, so a broken safety check cannot hide in the generators. */
const noCrLfNul = (s: string): boolean => !s.includes('\r') && !s.includes('\n') && !s.includes('\0');

const codePoint = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 });

/** Characters that are interesting to an SSE parser, mixed with arbitrary code points. */
const trickyUnit = fc.oneof(
  { weight: 3, arbitrary: codePoint },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      ' ',
      '  ',
      ':',
      ': ',
      '\t',
      '\uFEFF',
      'é',
      '€',
      '😀',
      '\u2028',
      '\u0085',
      'data: x',
      'id: y',
      'event: z',
      'retry: 1',
      'data',
      'a',
      '0',
    ),
  },
  { weight: 2, arbitrary: fc.constantFrom('\r', '\n', '\r\n', '\n\n', '\r\r', '\0') },
);
const trickyString = fc.string({ unit: trickyUnit, maxLength: 40 });

/** Valid ids: non-empty, no CR/LF/NUL; unicode, spaces (incl. leading) and colons welcome. */
const validId = fc
  .string({
    unit: fc.oneof(codePoint, fc.constantFrom(' ', ':', '\uFEFF', '😀', 'é', '\t')),
    minLength: 1,
    maxLength: 40,
  })
  .filter(noCrLfNul);

const TYPE_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-'.split('');
const validType = fc.string({ unit: fc.constantFrom(...TYPE_CHARS), minLength: 1, maxLength: 64 });

/** How the stream is delivered to the parser: line endings, chunk boundaries, text vs bytes. */
const delivery = fc.record({
  lineEnding: fc.constantFrom('\n', '\r\n', '\r'),
  asBuffer: fc.boolean(),
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
});
type Delivery = { lineEnding: string; asBuffer: boolean; cuts: number[] };

/** Split `whole` at the given (modulo length) offsets; Buffers are cut at byte offsets, i.e. inside UTF-8 sequences too. */
function chunk<T extends string | Buffer>(whole: T, cuts: number[]): T[] {
  const len = whole.length;
  if (len === 0) return [whole];
  const points = [...new Set(cuts.map((c) => c % (len + 1)))].sort((a, b) => a - b);
  const out: T[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(whole.slice(prev, p) as T);
    prev = p;
  }
  out.push(whole.slice(prev) as T);
  return out;
}

/**
 * Feed an encoder-produced stream to the parser. Re-terminating lines is only
 * sound because encoder output contains no CR and only LF line terminators;
 * it exercises CRLF/CR handling, including a CRLF split across chunks.
 */
function deliver(wire: string, d: Delivery) {
  const text = d.lineEnding === '\n' ? wire : wire.replaceAll('\n', d.lineEnding);
  return d.asBuffer ? parseSseStream(chunk(Buffer.from(text, 'utf8'), d.cuts)) : parseSseStream(chunk(text, d.cuts));
}

/** What UTF-8 transport does to a string (lone surrogates → U+FFFD); identity for well-formed strings. */
const viaUtf8 = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

const tap = t;
function assertThrowsEncodingError(t: Pick<typeof tap, 'throws' | 'equal'>, fn: () => unknown, msg: string): void {
  t.throws(fn, SseEncodingError, msg);
  try {
    fn();
  } catch (err) {
    t.equal((err as SseEncodingError).code, 'sse_encoding', `${msg}: code`);
  }
}

// ---------------------------------------------------------------------------
// Unit cases
// ---------------------------------------------------------------------------

t.test('exact wire bytes', async (t) => {
  t.equal(encodeEvent({ id: '1700000000000-0', type: 'order.updated', dataJson: '{"a":1}' }), 'id: 1700000000000-0\nevent: order.updated\ndata: {"a":1}\n\n');
  t.equal(encodeIdLine('abc'), 'id: abc\n');
  t.equal(encodeIdLine(' lead'), 'id:  lead\n', 'leading space preserved after the separator space');
  t.equal(encodeEventBody('x', '"s"'), 'event: x\ndata: "s"\n\n');
  t.equal(encodeEventBody('x', ''), 'event: x\ndata: \n\n', 'empty data still produces a data line');
  t.equal(encodeComment('keep-alive'), ': keep-alive\n\n');
  t.equal(encodeComment(''), ': \n\n');
  t.equal(encodeRetry(0), 'retry: 0\n');
  t.equal(encodeRetry(3000), 'retry: 3000\n');
  t.equal(encodeRetry(-0), 'retry: 0\n');
});

t.test('an HTTP/1.1 chunk: the size in hex is the UTF-8 byte count, not the string length', async (t) => {
  t.equal(frameChunk(':\n\n', 3), '3\r\n:\n\n\r\n');
  const text = 'data: "é€😀"\n\n';
  t.equal(frameChunk(text, Buffer.byteLength(text)), `13\r\n${text}\r\n`, '0x13 = 19 bytes, for 14 UTF-16 units');
  t.equal(frameChunk('x'.repeat(4096), 4096).slice(0, 6), '1000\r\n');
});

t.test('SseEncodingError', async (t) => {
  const err = new SseEncodingError('x');
  t.ok(err instanceof Error);
  t.equal(err.code, 'sse_encoding');
  t.equal(err.name, 'SseEncodingError');
  t.equal(err.message, 'x');
});

t.test('only CR, LF and NUL make a field value unsafe', async (t) => {
  t.equal(encodeComment('a b:c 😀'), ': a b:c 😀\n\n');
  for (const bad of ['\r', '\n', '\r\n', '\0', 'a\rb', 'a\nb', 'a\0b', 'x\r\n']) {
    t.throws(() => encodeComment(bad), SseEncodingError, JSON.stringify(bad));
  }
  t.equal(encodeIdLine('\u2028\u2029\u0085\t\v\f'), 'id: \u2028\u2029\u0085\t\v\f\n', 'other separators are plain characters to SSE');
});

t.test('CR, LF, CRLF and NUL are rejected in id, type and comment', async (t) => {
  for (const bad of ['\r', '\n', '\r\n', '\0']) {
    for (const s of [bad, `a${bad}`, `${bad}a`, `a${bad}b`]) {
      const label = JSON.stringify(s);
      assertThrowsEncodingError(t, () => encodeIdLine(s), `encodeIdLine(${label})`);
      assertThrowsEncodingError(t, () => encodeEventBody(s, '1'), `encodeEventBody type ${label}`);
      assertThrowsEncodingError(t, () => encodeComment(s), `encodeComment(${label})`);
      assertThrowsEncodingError(t, () => encodeEvent({ id: s, type: 'ok', dataJson: '1' }), `encodeEvent id ${label}`);
      assertThrowsEncodingError(t, () => encodeEvent({ id: '1', type: s, dataJson: '1' }), `encodeEvent type ${label}`);
    }
  }
  assertThrowsEncodingError(t, () => encodeIdLine(''), 'empty id would reset lastEventId');
  t.equal(encodeIdLine('a:b: c'), 'id: a:b: c\n', 'colons are fine in ids');
});

t.test('event type charset and length', async (t) => {
  for (const ok of ['a', 'Z', '0', '.', '_', ':', '-', 'order.updated', 'ns:type-v1_2', 'x'.repeat(64)]) {
    t.equal(encodeEventBody(ok, '1'), `event: ${ok}\ndata: 1\n\n`, ok);
  }
  for (const bad of ['', 'x'.repeat(65), 'a b', ' a', 'a/b', 'é', '😀', 'a\tb', 'a;b', 'a,b', 'a"b']) {
    assertThrowsEncodingError(t, () => encodeEventBody(bad, '1'), `type ${JSON.stringify(bad)}`);
  }
});

t.test('retry formatting', async (t) => {
  t.equal(encodeRetry(1), 'retry: 1\n');
  t.equal(encodeRetry(Number.MAX_SAFE_INTEGER), `retry: ${Number.MAX_SAFE_INTEGER}\n`);
  for (const bad of [-1, 1.5, Number.NaN, Infinity, -Infinity, Number.MAX_SAFE_INTEGER + 1, 1e21]) {
    assertThrowsEncodingError(t, () => encodeRetry(bad), `retry ${bad}`);
  }
  t.same(parseSseStream(encodeRetry(2500)).retries, [2500]);
});

t.test('defensive data path: raw line breaks become extra data lines', async (t) => {
  t.equal(encodeEventBody('t', 'a\nb'), 'event: t\ndata: a\ndata: b\n\n');
  t.equal(encodeEventBody('t', 'a\r\nb\rc'), 'event: t\ndata: a\ndata: b\ndata: c\n\n');
  t.equal(encodeEventBody('t', '\n'), 'event: t\ndata: \ndata: \n\n');
  t.equal(encodeEventBody('t', 'x\n\nid: evil\n\nevent: evil'), 'event: t\ndata: x\ndata: \ndata: id: evil\ndata: \ndata: event: evil\n\n');
  const { events } = parseSseStream(encodeEvent({ id: '7', type: 't', dataJson: 'x\n\nid: evil\r\n\r\nevent: evil\rretry: 1' }));
  t.same(events, [{ type: 't', data: 'x\n\nid: evil\n\nevent: evil\nretry: 1', lastEventId: '7', id: '7' }]);
  // JSON.stringify never produces a raw CR/LF/NUL, so real callers always take the fast path.
  t.equal(JSON.stringify('a\r\n\0\u2028'), '"a\\r\\n\\u0000\u2028"');
});

// ---------------------------------------------------------------------------
// The parser itself, on hand-written tricky input (WHATWG event stream interpretation)
// ---------------------------------------------------------------------------

t.test('parser follows the WHATWG algorithm', async (t) => {
  const p = (s: string | Array<string | Buffer>) => parseSseStream(s);

  t.same(p('data: a\n\n').events, [{ type: 'message', data: 'a', lastEventId: '' }], 'defaults');
  t.same(p('data:x\n\n').events[0]?.data, 'x', 'no space after colon');
  t.same(p('data:  x\n\n').events[0]?.data, ' x', 'only one leading space removed');
  t.same(p('data\n\n').events, [{ type: 'message', data: '', lastEventId: '' }], 'field without colon = empty value, still dispatched');
  t.same(p('data\ndata\n\n').events[0]?.data, '\n', 'two empty data lines');
  t.same(p('data: a\ndata: b\n\n').events[0]?.data, 'a\nb', 'data lines joined with LF');
  t.same(p('data: a\rdata: b\r\r').events[0]?.data, 'a\nb', 'CR-only line endings');
  t.same(p('data: a\r\ndata: b\r\n\r\n').events[0]?.data, 'a\nb', 'CRLF line endings');
  t.same(
    p('data: a\n\r\n\rdata: b\r\n').events.map((e) => e.data),
    ['a'],
    'mixed endings; trailing event without blank line not dispatched',
  );
  t.same(p(['data: a\r', '\ndata: b\r', '\n\r', '\n']).events[0]?.data, 'a\nb', 'CRLF split across chunks');
  t.same(p(['data: a\r', '\r']).events[0]?.data, 'a', 'CR then CR across chunks = blank line');
  t.same(p(['data: a\r', '', '\n', '\n']).events[0]?.data, 'a', 'empty chunk between CR and LF');
  t.same(p('\uFEFFdata: a\n\n').events[0]?.data, 'a', 'BOM at stream start dropped');
  t.same(p(['\uFEFF', 'data: a\n\n']).events[0]?.data, 'a', 'BOM in its own chunk');
  t.same(p([Buffer.from([0xef]), Buffer.from([0xbb, 0xbf]), 'data: a\n\n']).events[0]?.data, 'a', 'BOM split across Buffers');
  t.same(p('\uFEFF\uFEFFdata: a\n\n').events, [], 'only one BOM dropped; second makes an unknown field');
  t.same(
    p('data: a\n\n\uFEFFdata: b\n\n').events.map((e) => e.data),
    ['a'],
    'BOM mid-stream is not dropped',
  );
  t.same(p([Buffer.from('data: '), Buffer.from([0xe2, 0x82]), Buffer.from([0xac, 0x0a, 0x0a])]).events[0]?.data, '€', 'multi-byte char split across Buffers');
  t.same(p([Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a])]).events[0]?.data, '\uFFFD', 'invalid UTF-8 → U+FFFD');

  const c = p(': hello\n:world\n:\n\n');
  t.same(c.comments, ['hello', 'world', ''], 'comments');
  t.same(c.events, [], 'comments alone dispatch nothing');

  t.same(p('event: x\n\n').events, [], 'event with no data is not dispatched');
  t.same(p('event: x\n\ndata: a\n\n').events, [{ type: 'message', data: 'a', lastEventId: '' }], 'type buffer reset after a non-dispatch');
  t.same(
    p('event: x\ndata: a\n\ndata: b\n\n').events.map((e) => e.type),
    ['x', 'message'],
    'type resets after dispatch',
  );
  t.same(p('event\ndata: a\n\n').events[0]?.type, 'message', 'empty event type → message');
  t.same(p('Data: a\n\nDATA: b\n\n data: c\n\n').events, [], 'field names are case- and space-sensitive');
  t.same(p('foo: bar\ndata: a\n\n').events[0]?.data, 'a', 'unknown fields ignored');

  t.same(
    p('id: 1\ndata: a\n\ndata: b\n\n').events,
    [
      { type: 'message', data: 'a', lastEventId: '1', id: '1' },
      { type: 'message', data: 'b', lastEventId: '1' },
    ],
    'lastEventId persists; id only on the event that set it',
  );
  t.same(
    p('id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n').events.map((e) => [e.lastEventId, e.id]),
    [
      ['1', '1'],
      ['1', undefined],
    ],
    'id containing NUL ignored',
  );
  t.same(
    p('id: 1\ndata: a\n\nid\ndata: b\n\n').events.map((e) => [e.lastEventId, e.id]),
    [
      ['1', '1'],
      ['', ''],
    ],
    'empty id resets lastEventId',
  );
  t.same(p('id: 5\n\ndata: a\n\n').events, [{ type: 'message', data: 'a', lastEventId: '5' }], 'id-only block updates lastEventId without dispatching');
  t.same(p('id:  sp\ndata: a\n\n').events[0]?.lastEventId, ' sp', 'id keeps second leading space');

  t.same(p('retry: 1000\nretry: 10a\nretry: -1\nretry:\nretry: 1.5\nretry:  20\nretry:0\n').retries, [1000, 0], 'retry only when all ASCII digits');
  t.same(
    p('data: a\n\ndata: b').events.map((e) => e.data),
    ['a'],
    'incomplete final event discarded at end',
  );
});

t.test('parser: lastEventId getter and push after end', async (t) => {
  const events: ParsedSseEvent[] = [];
  const parser = new SseParser((e) => events.push(e));
  parser.push('id: 9\n');
  t.equal(parser.lastEventId, '9');
  parser.push('data: x\n\n');
  parser.end();
  t.equal(events.length, 1);
  t.throws(() => parser.push('data: y\n\n'));
});

// ---------------------------------------------------------------------------
// Properties: encoder output parsed by the independent WHATWG parser
// ---------------------------------------------------------------------------

t.test('property: valid event round-trips exactly', async (t) => {
  fc.assert(
    fc.property(validId, validType, fc.jsonValue({ stringUnit: 'binary' }), delivery, (id, type, value, d) => {
      const dataJson = JSON.stringify(value);
      const { events, comments, retries } = deliver(encodeEvent({ id, type, dataJson }), d);
      return (
        events.length === 1 &&
        events[0]!.type === type &&
        events[0]!.data === dataJson &&
        events[0]!.lastEventId === id &&
        events[0]!.id === id &&
        comments.length === 0 &&
        retries.length === 0
      );
    }),
    { numRuns: MAIN_RUNS },
  );
  t.pass(`${MAIN_RUNS} runs`);
});

t.test('property: arbitrary dataJson cannot inject fields or split the event', async (t) => {
  fc.assert(
    fc.property(validId, validType, trickyString, delivery, (id, type, dataJson, d) => {
      const { events, comments, retries } = deliver(encodeEvent({ id, type, dataJson }), d);
      // Raw line breaks come back as LF (one data line each); everything else is preserved.
      const expected = viaUtf8(dataJson.replace(/\r\n|\r/g, '\n'));
      return (
        events.length === 1 &&
        events[0]!.type === type &&
        events[0]!.lastEventId === id &&
        events[0]!.id === id &&
        events[0]!.data === expected &&
        comments.length === 0 &&
        retries.length === 0
      );
    }),
    { numRuns: SECONDARY_RUNS },
  );
  t.pass();
});

t.test('property: arbitrary id/type either throw or round-trip exactly', async (t) => {
  const idArb = fc.oneof(trickyString, validId);
  const typeArb = fc.oneof(trickyString, validType, fc.string({ unit: fc.constantFrom(...TYPE_CHARS), maxLength: 70 }));
  fc.assert(
    fc.property(idArb, typeArb, fc.jsonValue(), delivery, (id, type, value, d) => {
      const dataJson = JSON.stringify(value);
      // Independent statement of the contract (no regex shared with the encoder).
      const idOk = id.length > 0 && noCrLfNul(id);
      const typeOk = type.length >= 1 && type.length <= 64 && [...type].every((ch) => TYPE_CHARS.includes(ch));
      let wire: string;
      try {
        wire = encodeEvent({ id, type, dataJson });
      } catch (err) {
        return err instanceof SseEncodingError && !(idOk && typeOk);
      }
      if (!(idOk && typeOk)) return false;
      const { events, comments, retries } = deliver(wire, d);
      return (
        events.length === 1 &&
        events[0]!.type === type &&
        events[0]!.data === dataJson &&
        events[0]!.lastEventId === viaUtf8(id) &&
        comments.length === 0 &&
        retries.length === 0
      );
    }),
    { numRuns: SECONDARY_RUNS },
  );
  t.pass();
});

t.test('property: comments and retry never produce events', async (t) => {
  fc.assert(
    fc.property(trickyString, fc.nat(), delivery, (text, ms, d) => {
      let wire: string;
      try {
        wire = encodeComment(text);
      } catch (err) {
        return err instanceof SseEncodingError && !noCrLfNul(text);
      }
      if (!noCrLfNul(text)) return false;
      const { events, comments, retries } = deliver(wire + encodeRetry(ms), d);
      return events.length === 0 && comments.length === 1 && comments[0] === viaUtf8(text) && retries.length === 1 && retries[0] === ms;
    }),
    { numRuns: SECONDARY_RUNS },
  );
  t.pass();
});

t.test('property: a mixed stream parses back to the same sequence', async (t) => {
  const item = fc.oneof(
    fc.record({ kind: fc.constant('event' as const), id: validId, type: validType, value: fc.jsonValue({ maxDepth: 2 }) }),
    fc.record({ kind: fc.constant('comment' as const), text: fc.string({ maxLength: 10 }).filter(noCrLfNul) }),
    fc.record({ kind: fc.constant('retry' as const), ms: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(item, { maxLength: 8 }), delivery, (items, d) => {
      let wire = '';
      const expected: ParsedSseEvent[] = [];
      const expectedComments: string[] = [];
      const expectedRetries: number[] = [];
      for (const it of items) {
        if (it.kind === 'event') {
          const dataJson = JSON.stringify(it.value);
          wire += encodeEvent({ id: it.id, type: it.type, dataJson });
          expected.push({ type: it.type, data: dataJson, lastEventId: it.id, id: it.id });
        } else if (it.kind === 'comment') {
          wire += encodeComment(it.text);
          expectedComments.push(it.text);
        } else {
          wire += encodeRetry(it.ms);
          expectedRetries.push(it.ms);
        }
      }
      const got = deliver(wire, d);
      return isDeepStrictEqual(got.events, expected) && isDeepStrictEqual(got.comments, expectedComments) && isDeepStrictEqual(got.retries, expectedRetries);
    }),
    { numRuns: MIXED_STREAM_RUNS },
  );
  t.pass();
});
