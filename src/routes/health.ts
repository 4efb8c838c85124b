import type { Backplane } from '../backplane/backplane.js';
import type { App, Lifecycle, RouteContext } from '../context.js';
import { SwitchboardError } from '../errors.js';
import { sendProblem } from '../problem-details.js';

type Readiness = 'ready' | 'draining' | 'backplane_unavailable';

/** What /readyz answers, and what the switchboard_ready gauge reports (1 for `ready`). */
export function readiness(lifecycle: Lifecycle, backplane: Pick<Backplane, 'isReady'>): Readiness {
  return lifecycle.draining ? 'draining' : backplane.isReady() ? 'ready' : 'backplane_unavailable';
}

export function healthRoutes(app: App, { config, backplane, lifecycle, registry }: RouteContext): void {
  /** Liveness: the process runs and answers. */
  app.get('/healthz', async () => ({ status: 'ok', replicaId: config.replicaId }));

  // Probes come every few seconds: a 503 is logged when readiness changes, not on every probe.
  let last: Readiness = 'ready';
  const observe = (now: Readiness): void => {
    if (now === last) return;
    if (now === 'ready') app.log.info({ was: last }, 'ready again');
    else app.log.warn({ reason: now, was: last }, 'not ready');
    last = now;
  };

  /** Readiness: send traffic here only while the backplane publishes and this replica hears it. */
  app.get('/readyz', async (_request, reply) => {
    const now = readiness(lifecycle, backplane);
    observe(now);
    // An expected answer, sent here rather than thrown: the error handler would log every probe.
    if (now === 'draining') return sendProblem(reply, new SwitchboardError('shutting_down', 'This replica is draining.', { retryAfterSeconds: 5 }));
    if (now === 'backplane_unavailable') {
      return sendProblem(reply, new SwitchboardError('backplane_unavailable', 'The backplane is not connected or this replica does not hear it.'));
    }
    return { status: 'ready', replicaId: config.replicaId, backplane: backplane.kind, streams: registry.streamCount };
  });
}
