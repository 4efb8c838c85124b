// The rebalancer's rule on its own: when it sheds, how many, never below the mean, never while any
// replica is draining or unready, never before the fleet has stood still, and only on counts taken
// together. Real processes behind nginx: test/e2e/rebalance.test.ts (scale-out) and
// test/serial/rolling-deploy-rebalance.test.ts (rolling deploy).
import pino from 'pino';
import t, { type Test } from 'tap';
import type { ReplicaState, ReplicaStatus } from '../../src/fleet/fleet.js';
import { Rebalancer } from '../../src/fleet/rebalancer.js';
import type { SseStream } from '../../src/sse/sse-stream.js';

const SETTLE_MS = 10_000;
const HEARTBEAT_MS = 2000;
const RETRY_MS = 1000;

interface Local {
  streams: number;
  state: ReplicaState;
  ended: { reason: string; retryMs: number | undefined }[];
}

/** Replicas r0 (this one), r1, … holding these counts, all counted at `atMs`. */
function statuses(counts: readonly number[], atMs: number, states: readonly ReplicaState[] = []): ReplicaStatus[] {
  return counts.map((streams, i) => ({ instance: `r${i}#x`, replicaId: `r${i}`, streams, state: states[i] ?? 'ready', countedAtMs: atMs, self: i === 0 }));
}

/**
 * This replica (r0) holding `mine` streams, each of which ends by leaving the count, among
 * `others`, on a clock the test moves. `settle()` shows it the fleet, then lets the settle time pass.
 */
function setUp(t: Test, mine: number, others: number[], options: { tolerance?: number; rate?: number; settleMs?: number; drainMs?: number } = {}) {
  const clock = { now: 1_000_000 };
  const local: Local = { streams: mine, state: 'ready', ended: [] };
  let view: ReplicaStatus[] | undefined = statuses([mine, ...others], clock.now);
  const stream = {
    end(reason: string, retryMs?: number) {
      local.streams--;
      local.ended.push({ reason, retryMs });
    },
  } as unknown as SseStream;
  const settleMs = options.settleMs ?? SETTLE_MS;
  const rebalancer = new Rebalancer(
    { replicas: () => view },
    { streamCount: () => local.streams, state: () => local.state, oldest: (count) => Array.from({ length: Math.min(count, local.streams) }, () => stream) },
    {
      tolerance: options.tolerance ?? 0.1,
      ratePerSecond: options.rate ?? 50,
      retryMs: RETRY_MS,
      drainMs: options.drainMs ?? 4000,
      settleMs,
      heartbeatMs: HEARTBEAT_MS,
      now: () => clock.now,
    },
    pino({ level: 'silent' }),
  );
  t.teardown(() => rebalancer.close());
  /** Time passes, and the fleet counts again: the same counts (or `counts`), taken now. */
  const advance = (ms: number, counts?: readonly number[]) => {
    clock.now += ms;
    if (view !== undefined) view = view.map((r, i) => ({ ...r, streams: counts?.[i] ?? r.streams, countedAtMs: clock.now }));
  };
  const settle = () => {
    t.equal(rebalancer.tick(), 0, 'nothing shed at first sight of the fleet');
    advance(Math.max(settleMs, RETRY_MS * 1.5));
  };
  return {
    local,
    rebalancer,
    clock,
    advance,
    settle,
    setView: (next: ReplicaStatus[] | undefined) => (view = next),
    view: () => view,
  };
}

t.test('a replica far above the mean sheds at the rate, down to the mean and not below, with a jittered retry', async (t) => {
  // 300, 300, 300, 0, 0, 0: the mean is 150.
  const { local, rebalancer, settle } = setUp(t, 300, [300, 300, 0, 0, 0], { rate: 50 });
  settle();
  const shed: number[] = [];
  for (let i = 0; i < 5; i++) shed.push(rebalancer.tick());
  t.same(shed, [50, 50, 50, 0, 0], 'at most 50 a tick, and none once at the mean');
  t.equal(local.streams, 150, 'it stops at the mean');
  t.ok(
    local.ended.every((e) => e.reason === 'rebalanced' && e.retryMs !== undefined && e.retryMs >= 500 && e.retryMs <= 1500),
    'each ended as rebalanced, told to retry within RETRY_MS × [0.5, 1.5]',
  );
});

t.test('within the tolerance, or below the mean, nothing is shed', async (t) => {
  const settled = (mine: number, others: number[], options: { tolerance?: number } = {}) => {
    const replica = setUp(t, mine, others, options);
    replica.settle();
    return replica.rebalancer;
  };
  t.equal(settled(109, [100, 100, 91]).tick(), 0, '109 against a mean of 100 is within 10%, and so is 91');
  t.equal(settled(50, [300, 300, 0]).tick(), 0, 'below the mean');
  t.equal(settled(500, []).tick(), 0, 'alone: no fleet to balance with');
  t.equal(settled(120, [100, 100, 80], { tolerance: 0.25 }).tick(), 0, 'a larger ε tolerates more');
  t.equal(settled(120, [100, 100, 80], { tolerance: 0.1 }).tick(), 20, 'above 1.1 × 100: shed down to 100');
});

t.test('while one replica is below (1 − ε) × the mean, every replica above the mean sheds, down to the mean', async (t) => {
  // After a rolling deploy: two warm replicas within ε above the mean leave the third short by their sum.
  const warm = setUp(t, 23, [22, 18]);
  warm.settle();
  t.equal(warm.rebalancer.tick(), 2, '23 is within 10% of 21, but 18 is below 18.9: shed down to 21');
  const atMean = setUp(t, 21, [24, 18]);
  atMean.settle();
  t.equal(atMean.rebalancer.tick(), 0, 'at the mean: never below it');
  const closeEnough = setUp(t, 22, [22, 19]);
  closeEnough.settle();
  t.equal(closeEnough.rebalancer.tick(), 0, '19 is within 10% of 21: nothing to do');
  // A replica filling up (a scale-out's new one) has passed the mean by now, but when the fleet
  // counted, it and the cold one were both below it: it was not above the mean then, so it keeps its streams.
  const filling = setUp(t, 10, [30, 30, 10, 10]);
  filling.settle();
  filling.local.streams = 19;
  t.equal(filling.rebalancer.tick(), 0, '19 now, above the mean of 18 (within 10%), but counted at 10');
  filling.advance(HEARTBEAT_MS, [19, 30, 21, 10, 10]);
  t.equal(filling.rebalancer.tick(), 1, 'counted at 19 while two replicas are at 10: shed down to the mean');
});

t.test('nothing is shed while any replica is draining or unready, or while the view is out of date', async (t) => {
  for (const state of ['draining', 'unready'] as const) {
    const other = setUp(t, 300, [300, 0, 0]);
    other.settle();
    const view = other.view() ?? [];
    other.setView(view.map((r, i) => (i === 2 ? { ...r, state } : r)));
    t.equal(other.rebalancer.tick(), 0, `another replica ${state}`);

    const self = setUp(t, 300, [300, 0, 0]);
    self.settle();
    self.local.state = state;
    t.equal(self.rebalancer.tick(), 0, `this replica ${state}`);
  }
  const stale = setUp(t, 300, [300, 0, 0]);
  stale.settle();
  stale.setView(undefined);
  t.equal(stale.rebalancer.tick(), 0, 'no fresh view of the fleet');
});

t.test('after the fleet changes, nothing is shed until it has stood still for the settle time', async (t) => {
  const { rebalancer, settle, setView, advance, clock } = setUp(t, 300, [300, 300]);
  settle();
  t.equal(rebalancer.tick(), 0, 'three replicas of 300: balanced');

  // A fourth replica joins (a scale-out, or a rolling deploy's new replica), unready, then ready.
  setView(statuses([300, 300, 300, 0], clock.now, ['ready', 'ready', 'ready', 'unready']));
  t.equal(rebalancer.tick(), 0, 'a replica joined, unready');
  advance(SETTLE_MS);
  setView(statuses([300, 300, 300, 0], clock.now));
  t.equal(rebalancer.tick(), 0, 'it became ready: the fleet changed again');
  advance(SETTLE_MS - 1);
  t.equal(rebalancer.tick(), 0, 'not yet: the fleet has not stood still for the settle time');
  advance(1);
  t.equal(rebalancer.tick(), 50, 'now: 300 against a mean of 225');

  // Another replica starts draining (the rolling deploy's next step): everything stops at once.
  setView(statuses([250, 300, 300, 50], clock.now, ['ready', 'draining', 'ready', 'ready']));
  t.equal(rebalancer.tick(), 0, 'a replica is draining');
});

t.test('after a replica left, the hold lasts until its drained streams have come back, whatever the settle time', async (t) => {
  // RETRY_MS × 1.5 + DRAIN_MS / 2 = 1.5 s + 10 s, against a settle time of 1 s.
  const { rebalancer, settle, setView, advance, clock } = setUp(t, 300, [100, 100, 0], { settleMs: 1000, drainMs: 20_000 });
  settle();
  t.equal(rebalancer.tick(), 50, 'settled: 300 against a mean of 125 sheds');

  setView(statuses([250, 100, 100, 0], clock.now).filter((r) => r.replicaId !== 'r2'));
  t.equal(rebalancer.tick(), 0, 'r2 left');
  advance(11_499);
  t.equal(rebalancer.tick(), 0, 'its drained streams may still be on their way');
  advance(1);
  t.ok(rebalancer.tick() > 0, 'all back by now: shedding again');

  // A replica joining waits the settle time, but no less than RETRY_MS × 1.5 (streams shed before it still in flight).
  setView(statuses([200, 100, 0, 0], clock.now));
  t.equal(rebalancer.tick(), 0, 'a replica joined');
  advance(1499);
  t.equal(rebalancer.tick(), 0, 'streams shed just before may still be on their way');
  advance(1);
  t.ok(rebalancer.tick() > 0, 'after RETRY_MS × 1.5: shedding again');
});

t.test('counts not taken together, or too old, or without a time, are not acted on', async (t) => {
  const apart = setUp(t, 300, [300, 0, 0]);
  apart.settle();
  const at = apart.clock.now;
  apart.setView(statuses([300, 300, 0, 0], at).map((r, i) => (i === 3 ? { ...r, countedAtMs: at - RETRY_MS / 2 - 1 } : r)));
  t.equal(apart.rebalancer.tick(), 0, 'one count taken more than RETRY_MS / 2 before the others: a moving stream could be in two');
  apart.setView(statuses([300, 300, 0, 0], at).map((r, i) => (i === 3 ? { ...r, countedAtMs: at - RETRY_MS / 2 } : r)));
  t.equal(apart.rebalancer.tick(), 50, 'within RETRY_MS / 2 of each other: acted on');

  const old = setUp(t, 300, [300, 0, 0]);
  old.settle();
  old.setView(statuses([300, 300, 0, 0], old.clock.now - 2 * HEARTBEAT_MS - 1));
  t.equal(old.rebalancer.tick(), 0, 'counted more than two heartbeats ago');

  const unknown = setUp(t, 300, [300, 0, 0]);
  unknown.settle();
  unknown.setView(statuses([300, 300, 0, 0], unknown.clock.now).map((r, i) => (i === 1 ? { ...r, countedAtMs: undefined } : r)));
  t.equal(unknown.rebalancer.tick(), 0, 'a replica that does not say when it counted (an older version)');
});

t.test('streams in flight between replicas do not lower the mean: the total is the recent peak', async (t) => {
  const { local, rebalancer, setView, settle, clock } = setUp(t, 300, [300, 300, 0, 0, 0], { rate: 1000 });
  settle();
  t.equal(rebalancer.tick(), 150, 'down to the mean of 150');
  // 450 streams are reconnecting: the counts read 150, 300, 300, 0, 0, 0 now, and some come back here.
  local.streams = 200;
  setView(statuses([200, 150, 150, 0, 0, 0], clock.now));
  t.equal(rebalancer.tick(), 50, 'the mean is still 900 / 6, not 500 / 6');
  t.equal(local.streams, 150);
});

t.test('after the fleet changes, the peak starts again from the counts taken since', async (t) => {
  // Four replicas of 100; r3 leaves and its 100 clients do not come back: 300 streams on three.
  const { local, rebalancer, setView, settle, advance, clock } = setUp(t, 100, [100, 100, 100], { rate: 1000 });
  settle();
  t.equal(rebalancer.tick(), 0, 'balanced');
  local.streams = 160;
  setView(statuses([160, 40, 100], clock.now));
  t.equal(rebalancer.tick(), 0, 'r3 left: hold');
  advance(SETTLE_MS);
  t.equal(rebalancer.tick(), 60, 'the mean is 300 / 3, not the 400 / 3 seen before r3 left');
});
