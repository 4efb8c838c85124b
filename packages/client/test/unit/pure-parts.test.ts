// The client's pure parts: duplicate ids, stream URLs, the tab messages' guard, and the job merge.
import t from 'tap';
import { isCallbackOf, statusOf, withCallback, type Job } from '../../src/job-state.js';
import { RecentIds } from '../../src/recent-ids.js';
import { jobUrl, streamUrl } from '../../src/stream-url.js';
import { isTabMessage } from '../../src/tab-messages.js';

t.test('RecentIds drops a repeated id, and forgets the oldest past its capacity', async (t) => {
  const ids = new RecentIds(3);
  t.same(
    ['a', 'b', 'a', 'c'].map((id) => ids.add(id)),
    [true, true, false, true],
  );
  t.equal(ids.add('d'), true, 'a fourth id pushes out the oldest (a)');
  t.same(
    ['b', 'c', 'd', 'a'].map((id) => ids.add(id)),
    [false, false, false, true],
    'b, c, d remembered; a forgotten',
  );
});

t.test('streamUrl carries the token, sorted topics and the id to resume after; nothing when there is none', async (t) => {
  const target = { baseUrl: 'https://push.example/', userId: 'al ice', topics: ['a', 'b'] };
  const url = new URL(streamUrl(target, 'tok.en', '0-1:abc'));
  t.equal(url.origin + url.pathname, 'https://push.example/stream/al%20ice');
  t.same(Object.fromEntries(url.searchParams), { token: 'tok.en', topics: 'a,b', lastEventId: '0-1:abc' });
  const fresh = new URL(streamUrl({ ...target, topics: [] }, 't', undefined), 'http://page.example');
  t.same([...fresh.searchParams.keys()], ['token'], 'no topics, no lastEventId');
  t.equal(streamUrl({ baseUrl: '', userId: 'u', topics: [] }, 't', ''), '/stream/u?token=t', "'' is this page's origin");
  t.equal(jobUrl('http://x/', 'abc_-'), 'http://x/v1/jobs/abc_-');
});

t.test("isTabMessage accepts the client's messages and drops anything else", async (t) => {
  const good = [
    { kind: 'hello', types: ['callback'] },
    { kind: 'state', types: [], lastEventId: undefined, leader: false },
    { kind: 'state', types: ['a'], lastEventId: '1-0', leader: true },
    { kind: 'types', types: ['a', 'b'] },
    { kind: 'event', event: { id: '1', type: 'message', data: null } },
    { kind: 'reset', id: '2', info: { reason: 'history_gap' } },
  ];
  const bad = [
    null,
    'event',
    { kind: 'shout' },
    { kind: 'hello', types: [1] },
    { kind: 'state', types: [], lastEventId: 5, leader: true },
    { kind: 'event', event: { id: 1, type: 'message' } },
    { kind: 'event', event: null },
    { kind: 'reset', id: '2', info: null },
  ];
  t.same(
    good.map(isTabMessage),
    good.map(() => true),
  );
  t.same(
    bad.map(isTabMessage),
    bad.map(() => false),
  );
});

t.test('the job merge: a callback event goes first with its status, once; other jobs are not its', async (t) => {
  const job: Job = {
    correlationId: 'job1',
    userId: 'u',
    status: 'pending',
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
    callbacks: [{ eventId: 'e1', type: 'callback', receivedAt: 'r1', receivers: 1, payload: { status: 'running' } }],
  };
  const event = { id: 'e2', type: 'callback', data: { correlationId: 'job1', payload: { status: 'done', rows: 3 }, receivedAt: 'r2' } };
  t.ok(isCallbackOf('job1', event));
  t.notOk(isCallbackOf('job2', event), "another job's callback");
  t.notOk(isCallbackOf('job1', { id: 'x', type: 'message', data: 'text' }), 'not a callback at all');
  const merged = withCallback(job, event);
  t.equal(merged.status, 'done');
  t.same(
    merged.callbacks.map((c) => [c.eventId, c.payload]),
    [
      ['e2', { status: 'done', rows: 3 }],
      ['e1', { status: 'running' }],
    ],
  );
  t.equal(withCallback(merged, event), merged, 'the same event again changes nothing');
  t.equal(job.callbacks.length, 1, 'the job given is not changed');
  t.same(
    [statusOf({ status: 'ok' }), statusOf({ status: 'bad status' }), statusOf('done'), statusOf(null)],
    ['ok', 'callback_received', 'callback_received', 'callback_received'],
  );
});
