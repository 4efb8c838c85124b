// The rebalancer's rule on its own: when it sheds, how many, never below the mean, and never while
// any replica is draining or unready. Real processes behind nginx: test/e2e/rebalance.test.ts.
import pino from 'pino';
import t, { type Test } from 'tap';
import type { ReplicaState, ReplicaStatus } from '../../src/fleet/fleet.js';
import { Rebalancer } from '../../src/fleet/rebalancer.js';
import type { SseStream } from '../../src/sse/sse-stream.js';

interface Local {
  streams: number;
  state: ReplicaState;
  ended: { reason: string; retryMs: number | undefined }[];
}

/** A replica holding `streams` streams, each of which ends by leaving the count, among `others`. */
function setUp(t: Test, mine: number, others: number[], options: { tolerance?: number; rate?: number } = {}) {
  const local: Local = { streams: mine, state: 'ready', ended: [] };
  let view: ReplicaStatus[] | undefined = [mine, ...others].map((streams, i) => ({ instance: `r${i}#x`, replicaId: `r${i}`, streams, state: 'ready' }));
  const stream = {
    end(reason: string, retryMs?: number) {
      local.streams--;
      local.ended.push({ reason, retryMs });
    },
  } as unknown as SseStream;
  const rebalancer = new Rebalancer(
    { replicas: () => view },
    { streamCount: () => local.streams, state: () => local.state, oldest: (count) => Array.from({ length: Math.min(count, local.streams) }, () => stream) },
    { tolerance: options.tolerance ?? 0.1, ratePerSecond: options.rate ?? 50, retryMs: 1000 },
    pino({ level: 'silent' }),
  );
  t.teardown(() => rebalancer.close());
  return { local, rebalancer, setView: (next: ReplicaStatus[] | undefined) => (view = next), view: () => view };
}

t.test('a replica far above the mean sheds at the rate, down to the mean and not below, with a jittered retry', async (t) => {
  // 300, 300, 300, 0, 0, 0: the mean is 150.
  const { local, rebalancer } = setUp(t, 300, [300, 300, 0, 0, 0], { rate: 50 });
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
  t.equal(setUp(t, 109, [100, 100, 91]).rebalancer.tick(), 0, '109 against a mean of 100 is within 10%');
  t.equal(setUp(t, 50, [300, 300, 0]).rebalancer.tick(), 0, 'below the mean');
  t.equal(setUp(t, 500, []).rebalancer.tick(), 0, 'alone: no fleet to balance with');
  t.equal(setUp(t, 120, [100, 100, 80], { tolerance: 0.25 }).rebalancer.tick(), 0, 'a larger ε tolerates more');
  t.equal(setUp(t, 120, [100, 100, 80], { tolerance: 0.1 }).rebalancer.tick(), 20, 'above 1.1 × 100: shed down to 100');
});

t.test('nothing is shed while any replica is draining or unready, or while the view is out of date', async (t) => {
  for (const state of ['draining', 'unready'] as const) {
    const other = setUp(t, 300, [300, 0, 0]);
    const view = other.view() ?? [];
    other.setView(view.map((r, i) => (i === 2 ? { ...r, state } : r)));
    t.equal(other.rebalancer.tick(), 0, `another replica ${state}`);

    const self = setUp(t, 300, [300, 0, 0]);
    self.local.state = state;
    t.equal(self.rebalancer.tick(), 0, `this replica ${state}`);
  }
  const stale = setUp(t, 300, [300, 0, 0]);
  stale.setView(undefined);
  t.equal(stale.rebalancer.tick(), 0, 'no fresh view of the fleet');
});

t.test('streams in flight between replicas do not lower the mean: the total is the recent peak', async (t) => {
  const { local, rebalancer, setView } = setUp(t, 300, [300, 300, 0, 0, 0], { rate: 1000 });
  t.equal(rebalancer.tick(), 150, 'down to the mean of 150');
  // 450 streams are reconnecting: the counts read 150, 300, 300, 0, 0, 0 now, and some come back here.
  local.streams = 200;
  setView([200, 150, 150, 0, 0, 0].map((streams, i) => ({ instance: `r${i}#x`, replicaId: `r${i}`, streams, state: 'ready' as const })));
  t.equal(rebalancer.tick(), 50, 'the mean is still 900 / 6, not 500 / 6');
  t.equal(local.streams, 150);
});
