// A rolling deploy that users do not notice (issue 15): three replicas behind nginx with the
// shipped config and a real redis-server; 60 clients (the `eventsource` package) and 3 pages of
// the demo in Debian's chromium stream while events are published steadily, each to one client's
// user, through nginx (idempotency keys, retried on 502/503/504). Then r1, r2 and r3 are
// restarted in turn as an orchestrator does: SIGTERM, wait for the drain to end and the process
// to exit 0, start the new process on the same port, wait for its /readyz. Every accepted event
// reaches every client once after dedupe by id, in order; no EventSource gives up; every client
// was moved at least once. The deploy's time and each client's reconnects are printed. The
// harness is test/helpers/rolling-deploy.ts; the same deploy with REBALANCE=true, ending with the
// replica restarted last holding its share: rolling-deploy-rebalance.test.ts.
import t from 'tap';
import { ROLLING_DEPLOY_TIMEOUT_MS, rollingDeploy } from '../helpers/rolling-deploy.js';

t.setTimeout(ROLLING_DEPLOY_TIMEOUT_MS);

t.test('rolling restart of 3 replicas behind nginx: 60 EventSource clients and 3 browser pages lose nothing and never give up', async (t) => {
  await rollingDeploy(t);
});
