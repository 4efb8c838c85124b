// A load balancer probes /readyz every few seconds. While Redis is away or the replica drains,
// those 503s are expected: the replica logs one warning when readiness changes, not one line
// (with a stack trace) per probe.
import t from 'tap';
import { startFleet, waitOpen } from '../helpers/fleet.js';
import { getJson } from '../helpers/http.js';
import type { Replica } from '../helpers/replica.js';
import type { SseConnection } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait-for.js';

/** Probes answered 503 in each unready period, after the first. */
const EXTRA_PROBES = 4;

t.test('unready probes: one warning per change of state, no per-probe error lines', async (t) => {
  const fleet = await startFleet(t, 1, { PROBE_INTERVAL_MS: '500', DRAIN_MS: '10000' });
  const replica = fleet.replicas[0] as Replica;
  const mark = replica.logMark();
  const probe = async (): Promise<number> => (await getJson(`${replica.url}/readyz`, { timeoutMs: 2000 })).status;
  const probes503 = async (label: string): Promise<number> => {
    await waitFor(async () => (await probe()) === 503, { timeoutMs: 5000, label });
    let answered = 1;
    for (let i = 0; i < EXTRA_PROBES; i++) if ((await probe()) === 503) answered++;
    return answered;
  };

  // Redis away, then back.
  await fleet.redis.kill('SIGKILL');
  const whileDown = await probes503('unready while Redis is down');
  t.equal(whileDown, 1 + EXTRA_PROBES, `${whileDown} probes answered 503 while Redis was down`);
  await fleet.redis.restart();
  await waitFor(async () => (await probe()) === 200, { timeoutMs: 10_000, label: 'ready again' });
  t.equal(await probe(), 200, 'and stays ready');

  // Draining: streams end in batches over half of DRAIN_MS, and /readyz is 503 throughout.
  const streams: SseConnection[] = await Promise.all(Array.from({ length: 10 }, (_, i) => fleet.stream(replica, `ready-${i}`)));
  t.teardown(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s, i) => waitOpen(s, `ready-${i}`)));
  const exited = replica.kill('SIGTERM');
  const whileDraining = await probes503('unready while draining');
  t.ok(whileDraining >= 3, `${whileDraining} probes answered 503 while draining`);
  t.same(await exited, { code: 0, signal: null }, 'the replica drained and exited');

  const logged = replica.logs.slice(mark).flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, any>];
    } catch {
      return [];
    }
  });
  const probeIds = new Set(logged.filter((e) => e.req?.url === '/readyz').map((e) => e.reqId));
  t.ok(probeIds.size >= whileDown + whileDraining, `${probeIds.size} probes were logged as requests`);
  const perProbe = logged.filter((e) => probeIds.has(e.reqId) && (e.level >= 40 || e.err !== undefined));
  t.same(
    perProbe.map((e) => e.msg),
    [],
    'no probe logged a warning, an error or a stack of its own',
  );
  const changes = logged.filter((e) => e.msg === 'not ready' || e.msg === 'ready again').map((e) => [e.level, e.msg, e.reason ?? e.was]);
  t.same(
    changes,
    [
      [40, 'not ready', 'backplane_unavailable'],
      [30, 'ready again', 'backplane_unavailable'],
      [40, 'not ready', 'draining'],
    ],
    'one warning when readiness was lost (per cause), one line when it came back',
  );
});
