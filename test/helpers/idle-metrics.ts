// Metrics for in-process unit tests of the stream machinery: every live reading is zero or empty.
import { Metrics } from '../../src/telemetry/metrics.js';

export function idleMetrics(): Metrics {
  return new Metrics({
    openStreams: () => 0,
    subscribedChannels: () => 0,
    probeAgeSeconds: () => 0,
    probeAgesSeconds: () => new Map(),
    ready: () => true,
    inFlightPublishes: () => 0,
    fleetStreams: () => new Map(),
  });
}
