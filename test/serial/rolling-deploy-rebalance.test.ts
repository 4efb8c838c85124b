// The rolling deploy of rolling-deploy.test.ts (harness: test/helpers/rolling-deploy.ts) with
// REBALANCE=true on every replica, and the settings' defaults otherwise (REBALANCE_SETTLE_MS
// 10 s, ε 0.1, 50 a second). Without rebalancing the replica restarted last ends the deploy
// holding nearly nothing, since every stream it held moved to the others while it restarted. With
// it, the fleet holds still while the deploy goes on (every step changes the fleet, and the next
// begins right after the last one's /readyz), then evens out: within BALANCED_WITHIN_MS of the
// last /readyz, every replica holds within ±15% of the mean and the rebalancer has stopped, while
// every guarantee of the deploy holds (every accepted event once and in order after dedupe by id,
// no EventSource gives up, the 3 Chromium pages included, every client open at the end). The time
// to balance, the streams shed during and after the deploy, and each client's reconnects are
// printed.
import t from 'tap';
import { getJson } from '../helpers/http.js';
import type { Replica } from '../helpers/replica.js';
import { CLIENTS, PAGES, ROLLING_DEPLOY_TIMEOUT_MS, rollingDeploy } from '../helpers/rolling-deploy.js';
import { waitFor } from '../helpers/wait-for.js';

/** Every replica within ±15% of the mean. */
const BALANCE = 0.15;
/**
 * The bound on balancing after the last /readyz: the settle time (10 s from the last change the
 * fleet saw, which is up to two heartbeats after the /readyz), then a few rounds of shedding (a
 * shed stream lands on the cold replica once in three), with room for a loaded 2-core machine.
 */
const BALANCED_WITHIN_MS = 60_000;
/**
 * The rebalancer has stopped once nothing was shed for this long: a shed stream lands within
 * RETRY_MS × 1.5 (1.5 s), is counted at the next heartbeat (2 s), and acted on at the next tick (1 s).
 */
const QUIET_MS = 5000;
const STREAMS = CLIENTS + PAGES;
const SHED_MESSAGE = 'rebalancing: ended streams to move elsewhere';

t.setTimeout(ROLLING_DEPLOY_TIMEOUT_MS + BALANCED_WITHIN_MS);

const streamsPerReplica = (replicas: readonly Replica[]): Promise<number[]> =>
  Promise.all(replicas.map(async (r) => (await getJson(`${r.url}/readyz`, { timeoutMs: 5000 })).json?.streams as number));

const balanced = (counts: readonly number[]): boolean => {
  const mean = STREAMS / counts.length;
  return counts.reduce((a, b) => a + b, 0) === STREAMS && counts.every((n) => Math.abs(n - mean) <= BALANCE * mean);
};

/** When any replica last shed streams, by its log (0: never). */
const lastShedAt = (replicas: readonly Replica[]): number =>
  Math.max(
    0,
    ...replicas.flatMap((r) =>
      r
        .parsedLogs()
        .filter((entry) => entry.msg === SHED_MESSAGE)
        .map((entry) => entry.time as number),
    ),
  );

/** Streams each replica shed, from its log (every process it ran), before and after `at`. */
function shedBy(replica: Replica, at: number): { during: number; after: number } {
  let during = 0;
  let after = 0;
  for (const entry of replica.parsedLogs()) {
    if (entry.msg !== SHED_MESSAGE) continue;
    if ((entry.time as number) < at) during += entry.shed as number;
    else after += entry.shed as number;
  }
  return { during, after };
}

t.test('rolling restart with REBALANCE=true: the replica restarted last ends holding its share, and no client notices', async (t) => {
  /** Each change in the streams per replica, with its time since the last /readyz. */
  const timeline: string[] = [];
  let previous = '';
  let balancedAfterMs = Number.NaN;
  let quietAfterMs = Number.NaN;
  const report = await rollingDeploy(t, {
    env: { REBALANCE: 'true' },
    async afterDeploy({ replicas, lastReadyAt }) {
      t.comment(`streams per replica at the last /readyz: ${(await streamsPerReplica(replicas)).join(', ')}`);
      const counts = await waitFor(
        async () => {
          const counts = await streamsPerReplica(replicas);
          const now = Date.now();
          if (counts.join('/') !== previous) timeline.push(`${((now - lastReadyAt) / 1000).toFixed(1)} s: ${counts.join('/')}`);
          previous = counts.join('/');
          if (!balanced(counts)) return undefined;
          if (Number.isNaN(balancedAfterMs)) balancedAfterMs = now - lastReadyAt;
          return now - lastShedAt(replicas) >= QUIET_MS ? counts : undefined;
        },
        {
          timeoutMs: BALANCED_WITHIN_MS,
          intervalMs: 500,
          label: `every replica within ${BALANCE * 100}% of the mean, all ${STREAMS} streams open, and nothing shed for ${QUIET_MS} ms`,
        },
      );
      quietAfterMs = lastShedAt(replicas) - lastReadyAt;
      t.pass(`within ${BALANCE * 100}% of the mean ${(balancedAfterMs / 1000).toFixed(1)} s after the last /readyz: ${counts.join(', ')}`);
    },
  });

  // Once every event was delivered the fleet still holds its share everywhere: nothing kept moving.
  const after = await streamsPerReplica(report.replicas);
  t.ok(balanced(after), `still within ${BALANCE * 100}% of the mean at the end: ${after.join(', ')}`);

  const shed = report.replicas.map((r) => ({ replicaId: r.replicaId, ...shedBy(r, report.lastReadyAt) }));
  t.comment(
    `balanced ${(balancedAfterMs / 1000).toFixed(1)} s after the last /readyz; ` +
      `${quietAfterMs < 0 ? 'nothing shed after it' : `the last stream shed ${(quietAfterMs / 1000).toFixed(1)} s after it`}; ` +
      `streams per replica over time: ${timeline.join(', ')}`,
  );
  t.comment(
    `streams shed by the rebalancer, during the deploy / after the last /readyz: ${shed.map((s) => `${s.replicaId} ${s.during}/${s.after}`).join(', ')}`,
  );
  const reconnects = report.reconnects;
  t.comment(`mean reconnects per client ${(reconnects.reduce((a, b) => a + b, 0) / reconnects.length).toFixed(2)}, max ${Math.max(...reconnects)}`);
});
