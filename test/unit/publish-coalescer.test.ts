// The coalescer's rule on its own: the publishes of one turn go out as one call, in order, at most
// MAX_EVENTS_PER_CALL to a call; a lone publish as a single-event call; each caller gets its own
// event's outcome, or the call's error. On a real Redis: test/contracts/backplane.test.ts.
import { setImmediate as nextTurn } from 'node:timers/promises';
import t from 'tap';
import type { PublishRequest } from '../../src/backplane/backplane.js';
import { MAX_EVENTS_PER_CALL, PublishCoalescer, type PublishCalls } from '../../src/backplane/publish-coalescer.js';
import { userChannel } from '../../src/backplane/redis-keys.js';
import type { ScriptPublished } from '../../src/backplane/script-calls.js';

const request = (n: number): PublishRequest => ({ channel: userChannel('u'), header: { t: 'message', a: 0 }, dataJson: String(n) });
const published = (r: PublishRequest): ScriptPublished => ({ position: `1-${r.dataJson}`, epoch: 'e', receivers: 1 });

/** Calls that answer each event with a position naming its data, and record what they were given. */
function recording(fail?: Error) {
  const calls: { kind: 'one' | 'many'; data: string[] }[] = [];
  const answer = <T>(value: T): Promise<T> => (fail === undefined ? Promise.resolve(value) : Promise.reject(fail));
  const fake: PublishCalls = {
    one: (r) => {
      calls.push({ kind: 'one', data: [r.dataJson] });
      return answer(published(r));
    },
    many: (rs) => {
      calls.push({ kind: 'many', data: rs.map((r) => r.dataJson) });
      return answer(rs.map(published));
    },
  };
  return { calls, coalescer: new PublishCoalescer(fake) };
}

t.test('the publishes of one turn go out as one call, in arrival order; each gets its own outcome', async (t) => {
  const { calls, coalescer } = recording();
  const outcomes = await Promise.all([1, 2, 3].map((n) => coalescer.publish(request(n))));
  t.same(calls, [{ kind: 'many', data: ['1', '2', '3'] }]);
  t.same(
    outcomes.map((o) => o.position),
    ['1-1', '1-2', '1-3'],
  );
});

t.test('a lone publish is a single-event call; a later turn makes a call of its own', async (t) => {
  const { calls, coalescer } = recording();
  const first = coalescer.publish(request(1));
  await nextTurn();
  const second = coalescer.publish(request(2));
  t.same(
    (await Promise.all([first, second])).map((o) => o.position),
    ['1-1', '1-2'],
  );
  t.same(calls, [
    { kind: 'one', data: ['1'] },
    { kind: 'one', data: ['2'] },
  ]);
});

t.test(`more than ${MAX_EVENTS_PER_CALL} in one turn: calls of at most ${MAX_EVENTS_PER_CALL}, in order`, async (t) => {
  const { calls, coalescer } = recording();
  const count = 2 * MAX_EVENTS_PER_CALL + 1;
  const outcomes = await Promise.all(Array.from({ length: count }, (_, n) => coalescer.publish(request(n))));
  t.same(
    calls.map((call) => [call.kind, call.data.length]),
    [
      ['many', MAX_EVENTS_PER_CALL],
      ['many', MAX_EVENTS_PER_CALL],
      ['one', 1],
    ],
  );
  t.same(
    calls.flatMap((call) => call.data),
    Array.from({ length: count }, (_, n) => String(n)),
    'every event once, in arrival order',
  );
  t.same(
    outcomes.map((o) => o.position),
    Array.from({ length: count }, (_, n) => `1-${n}`),
    'each caller gets its own event',
  );
});

t.test("a call that fails fails each of its events with the call's error", async (t) => {
  const down = new Error('Connection is closed.');
  const { coalescer } = recording(down);
  const outcomes = await Promise.allSettled([coalescer.publish(request(1)), coalescer.publish(request(2))]);
  t.same(
    outcomes.map((o) => (o.status === 'rejected' ? o.reason : o.value)),
    [down, down],
  );
});

t.test('a call that answers fewer events than it was given fails the ones it left out', async (t) => {
  const coalescer = new PublishCoalescer({
    one: (r) => Promise.resolve(published(r)),
    many: (rs) => Promise.resolve(rs.slice(0, -1).map(published)),
  });
  const outcomes = await Promise.allSettled([coalescer.publish(request(1)), coalescer.publish(request(2))]);
  t.equal(outcomes[0]?.status === 'fulfilled' && outcomes[0].value.position, '1-1', 'the first event has its answer');
  t.equal(outcomes[1]?.status, 'rejected', 'the event without an answer is not reported as published');
});
