import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify';
import { SwitchboardError } from '../errors.js';
import { sendProblem } from '../problem-details.js';
import type { Metrics } from '../telemetry/metrics.js';

/**
 * The routes that take an event in (single publishes, batches, job callbacks): the ones shed. A
 * stream, a health probe or a metrics scrape is never shed — a stream answered 503 would make
 * EventSource give up for good, and streams are what the shedding protects.
 */
const SHED_ROUTES: ReadonlySet<string> = new Set(['/v1/users/:userId/events', '/v1/topics/:topic/events', '/v1/events', '/v1/callbacks/:correlationId']);

/** The delay monitor's timer period. Its samples include the period, so it is subtracted. */
const MONITOR_RESOLUTION_MS = 10;
/**
 * How often the event-loop verdict is renewed, from the delay seen since the last renewal: short
 * enough that shedding starts and stops within a fraction of a second, long enough that one GC
 * pause among ~25 samples does not flip it.
 */
const SAMPLE_MS = 250;
/**
 * Windows in a row the loop must be saturated before shedding starts (one below stops it): a
 * single slow window — a major GC, a burst of stream opens — is not saturation.
 */
const SATURATED_WINDOWS = 2;
/**
 * Share of a window the loop must have spent working (event-loop utilization) for its delay to
 * count. Delay alone also grows when the process merely waits for a CPU (a machine shared with
 * other work): such a process is mostly idle in the poll phase, and shedding would refuse
 * publishes it has the time to take. A saturated replica works nearly all the time.
 */
const SATURATED_UTILIZATION = 0.9;
/**
 * Publishes that must be waiting before a busy loop sheds them. Below it, publishes are not what
 * keeps the loop busy (one sequential sender, a replica just booted, a machine short of CPU),
 * and refusing them would relieve nothing. A replica saturated by publishes holds many: each
 * waits at least one slow loop turn for its Redis answer.
 */
const MIN_IN_FLIGHT_TO_SHED = 8;

export type ShedReason = 'event_loop_delay' | 'in_flight';

export interface LoadSheddingLimits {
  /** Mean event-loop delay over a sample window past which (while the loop is busy) publishes are shed; 0 = never. */
  maxEventLoopDelayMs: number;
  /** Publishes admitted and not yet answered past which new ones are shed; 0 = no limit. */
  maxInFlightPublishes: number;
  retryAfterSeconds: number;
}

/**
 * Load shedding for the publish routes. When the replica is saturated, a publish is answered 503
 * `overloaded` with `Retry-After` at once, instead of joining a queue (in the event loop, in
 * ioredis, in Redis) that grows without bound while every stream's latency grows with it.
 *
 * Two signals: the event loop's delay while the loop works nearly all the time, for two windows
 * in a row, with publishes waiting (the replica's CPU is saturated by publishes: everything,
 * streams included, waits that long), and the publishes admitted but not answered yet (Redis or the
 * network is slow: each waiting publish holds memory, and the publisher learns nothing until its
 * timeout). The check runs once the body is read (preValidation): refusing earlier would have to
 * close the connection with the body unread (see sendProblem), and a reconnect per refusal costs
 * more under overload than reading a small body does.
 *
 * Readiness (/readyz) does not follow saturation on purpose: it would take a busy replica out of
 * the load balancer, pile its traffic onto the others, saturate them in turn, and flap the fleet.
 * A saturated replica still serves its streams; only the excess publishes are refused, and the
 * publisher retries them (another replica, most likely) after Retry-After.
 */
export class LoadShedder {
  private inFlight = 0;
  private saturatedWindows = 0;
  private utilization: EventLoopUtilization = performance.eventLoopUtilization();
  private readonly histogram: IntervalHistogram | undefined;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limits: LoadSheddingLimits,
    private readonly metrics: Metrics,
  ) {
    if (limits.maxEventLoopDelayMs > 0) {
      const histogram = monitorEventLoopDelay({ resolution: MONITOR_RESOLUTION_MS });
      histogram.enable();
      this.histogram = histogram;
      this.timer = setInterval(() => this.sample(histogram), SAMPLE_MS).unref();
    }
  }

  /** Publishes admitted and not answered yet. */
  get inFlightPublishes(): number {
    return this.inFlight;
  }

  /** Adds the shedding check to a publish route as it is declared (an `onRoute` hook). */
  readonly onRoute = (route: RouteOptions): void => {
    if (route.method !== 'POST' || !SHED_ROUTES.has(route.url)) return;
    const existing = route.preValidation;
    route.preValidation = existing === undefined ? [this.admit] : [...(Array.isArray(existing) ? existing : [existing]), this.admit];
  };

  stop(): void {
    clearInterval(this.timer);
    this.histogram?.disable();
  }

  /** Callback style, not async: it runs on every publish, and a promise per request showed in profiles. */
  private readonly admit = (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const reason = this.refusal();
    if (reason === undefined) {
      this.inFlight++;
      // 'close' comes once per response, answered or abandoned by the client.
      reply.raw.once('close', this.release);
      done();
      return;
    }
    this.metrics.publishesShed.inc({ reason });
    // Sent here, not passed to `done`: the error handler logs every 503, and under overload a log
    // line per refusal is load the replica cannot afford.
    sendProblem(
      reply,
      new SwitchboardError('overloaded', 'This replica is saturated; the event was not accepted. Retry after the time in Retry-After.', {
        retryAfterSeconds: this.limits.retryAfterSeconds,
      }),
    );
  };

  private readonly release = (): void => {
    this.inFlight--;
  };

  private refusal(): ShedReason | undefined {
    if (this.saturatedWindows >= SATURATED_WINDOWS && this.inFlight >= MIN_IN_FLIGHT_TO_SHED) return 'event_loop_delay';
    if (this.limits.maxInFlightPublishes > 0 && this.inFlight >= this.limits.maxInFlightPublishes) return 'in_flight';
    return undefined;
  }

  private sample(histogram: IntervalHistogram): void {
    // No tick in a whole window (count 0, mean NaN): the loop was held the whole time.
    const delayMs = histogram.count === 0 ? Number.POSITIVE_INFINITY : histogram.mean / 1e6 - MONITOR_RESOLUTION_MS;
    histogram.reset();
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.utilization).utilization;
    this.utilization = now;
    const saturated = delayMs > this.limits.maxEventLoopDelayMs && busy >= SATURATED_UTILIZATION;
    this.saturatedWindows = saturated ? this.saturatedWindows + 1 : 0;
  }
}
