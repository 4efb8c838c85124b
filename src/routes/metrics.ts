import type { App, RouteContext } from '../context.js';

/** GET /metrics — Prometheus text exposition of the replica's one metrics registry. */
export function metricsRoutes(app: App, { metrics }: RouteContext): void {
  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });
}
