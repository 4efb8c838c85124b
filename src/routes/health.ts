import type { App, RouteContext } from '../app.js';
import { SwitchboardError } from '../errors.js';

export function healthRoutes(app: App, { config, backplane, lifecycle, registry }: RouteContext): void {
  /** Liveness: the process runs and answers. */
  app.get('/healthz', async () => ({ status: 'ok', replicaId: config.replicaId }));

  /** Readiness: send traffic here only while the backplane publishes and this replica hears it. */
  app.get('/readyz', async () => {
    if (lifecycle.draining) throw new SwitchboardError('shutting_down', 'This replica is draining.', { retryAfterSeconds: 5 });
    if (!backplane.isReady()) {
      throw new SwitchboardError('backplane_unavailable', 'The backplane is not connected or this replica does not hear it.');
    }
    return { status: 'ready', replicaId: config.replicaId, backplane: backplane.kind, streams: registry.streamCount };
  });
}
