import t from 'tap';
import fc from 'fast-check';
import {
  channelTag,
  comparePositions,
  formatPosition,
  formatSegment,
  SEGMENT_SEPARATOR,
  MAX_CURSOR_LENGTH,
  newEpoch,
  parseCursor,
  parsePosition,
  parseEventPosition,
  durablePart,
} from '../../src/history/cursor.js';

t.test('positions parse, format and order like Redis stream ids', async (t) => {
  t.same(parsePosition('1700000000000-3'), { ms: 1700000000000, seq: 3 });
  t.equal(formatPosition({ ms: 5, seq: 0 }), '5-0');
  for (const bad of ['', '1', '1-', '-1', 'a-1', '1-1-1', '1 -1', `${'9'.repeat(16)}-0`]) {
    t.equal(parsePosition(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }
  t.ok(comparePositions({ ms: 2, seq: 0 }, { ms: 1, seq: 9 }) > 0);
  t.ok(comparePositions({ ms: 1, seq: 2 }, { ms: 1, seq: 1 }) > 0);
  t.equal(comparePositions({ ms: 1, seq: 1 }, { ms: 1, seq: 1 }), 0);
});

t.test("a live-only event's position sorts between the durable one it names and the next", async (t) => {
  const live = parseEventPosition('1700000000000-3-7');
  t.same(live, { ms: 1700000000000, seq: 3, live: 7 });
  t.same(parseEventPosition('1700000000000-3'), { ms: 1700000000000, seq: 3 }, 'a durable position is an event position too');
  t.equal(formatPosition(live!), '1700000000000-3-7', 'formats back as it came');
  for (const bad of ['', '1-1-', '1-1-a', '1-1-1-1', `1-1-${'9'.repeat(16)}`]) {
    t.equal(parseEventPosition(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }
  t.ok(comparePositions(live!, { ms: 1700000000000, seq: 3 }) > 0, 'after the durable event it names');
  t.ok(comparePositions(live!, { ms: 1700000000000, seq: 3, live: 6 }) > 0, 'after the live-only event before it');
  t.ok(comparePositions(live!, { ms: 1700000000000, seq: 4 }) < 0, 'before the next durable event');
  t.same(durablePart(live!), { ms: 1700000000000, seq: 3 }, 'history is read after the durable part');
  const cursor = parseCursor(formatSegment(channelTag('sb:{u:a}:ch'), newEpoch(), '5-0-2'));
  t.same(
    [...(cursor?.values() ?? [])].map((entry) => entry.position),
    [{ ms: 5, seq: 0, live: 2 }],
    'an id of a live-only event is a cursor',
  );
});

t.test('a cursor round-trips every segment it was built from', async (_t) => {
  const segment = fc.record({
    channel: fc.string({ minLength: 1, maxLength: 140 }),
    ms: fc.integer({ min: 0, max: 2 ** 47 }),
    seq: fc.integer({ min: 0, max: 2 ** 30 }),
  });
  fc.assert(
    fc.property(fc.uniqueArray(segment, { minLength: 1, maxLength: 33, selector: (s) => channelTag(s.channel) }), (segments) => {
      const epoch = newEpoch();
      const text = segments.map((s) => formatSegment(channelTag(s.channel), epoch, `${s.ms}-${s.seq}`)).join(SEGMENT_SEPARATOR);
      const parsed = parseCursor(text);
      if (parsed === undefined) return false;
      return segments.every((s) => {
        const entry = parsed.get(channelTag(s.channel));
        return entry !== undefined && entry.epoch === epoch && entry.position.ms === s.ms && entry.position.seq === s.seq;
      });
    }),
    { numRuns: 2000 },
  );
});

t.test('ids are safe on the wire and in a query string', async (t) => {
  const id = [formatSegment(channelTag('sb:{u:a}:ch'), newEpoch(), '1-0'), formatSegment(channelTag('sb:{t:b}:ch'), newEpoch(), '2-5')].join(SEGMENT_SEPARATOR);
  t.match(id, /^[0-9a-z._-]+$/);
  t.equal(encodeURIComponent(id), id);
});

t.test('anything that is not one of our ids is refused, not half-read', async (t) => {
  const good = formatSegment(channelTag('x'), newEpoch(), '1-0');
  for (const bad of ['', 'garbage', `${good}_`, `${good}_junk`, good.toUpperCase(), `${good}\n`, 'a'.repeat(MAX_CURSOR_LENGTH + 1)]) {
    t.equal(parseCursor(bad), undefined, `refuses ${JSON.stringify(bad.slice(0, 40))}`);
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (text) => {
      const parsed = parseCursor(text);
      return parsed === undefined || [...parsed].map(([tag, e]) => formatSegment(tag, e.epoch, formatPosition(e.position))).join(SEGMENT_SEPARATOR) === text;
    }),
    { numRuns: 5000 },
  );
});

t.test('channel tags are stable and spread', async (t) => {
  t.equal(channelTag('sb:{u:alice}:ch'), channelTag('sb:{u:alice}:ch'));
  const tags = new Set(Array.from({ length: 10_000 }, (_, i) => channelTag(`sb:{u:user-${i}}:ch`)));
  t.equal(tags.size, 10_000, 'no collisions among 10k user channels');
});
