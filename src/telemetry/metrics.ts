import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Which route accepted an event, as a metric label. */
export type AcceptRoute = 'user' | 'topic' | 'callback';

/**
 * The replica's one metrics stack (Prometheus, via prom-client), served at GET /metrics.
 * Gauges that mirror live state are read when scraped (`collect`), never kept in step by hand.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly eventsAccepted: Counter<'route'>;
  readonly zeroReceivers: Counter<'route'>;
  readonly duplicates: Counter<'route'>;
  readonly eventsDelivered: Counter;
  readonly deliveryLatency: Histogram;
  readonly replayedEvents: Counter;
  readonly resets: Counter<'cause'>;
  readonly streamsEnded: Counter<'reason'>;
  readonly streamsDeferred: Counter<'reason'>;
  readonly backplaneReconnects: Counter;
  readonly authFailures: Counter<'reason'>;
  readonly droppedMessages: Counter;
  readonly publishesShed: Counter<'reason'>;

  constructor(live: {
    openStreams: () => number;
    subscribedChannels: () => number;
    probeAgeSeconds: () => number;
    /** Per subscriber path (a Redis Cluster master, `host:port`; `redis` for one Redis). */
    probeAgesSeconds: () => ReadonlyMap<string, number>;
    /** What /readyz would answer now: true for 200. */
    ready: () => boolean;
    /** Publishes admitted by the load shedder and not answered yet. */
    inFlightPublishes: () => number;
    /** Per replica id, its streams as the fleet's presence registry last saw them. */
    fleetStreams: () => ReadonlyMap<string, number>;
  }) {
    const registers = [this.registry];
    // Among the defaults: the event loop's delay, as switchboard_process_nodejs_eventloop_lag_*
    // (p50, p90, p99, max, mean… since the last scrape). The load shedder reads its own window of
    // the same measure; it is not exported twice.
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_process_' });
    new Gauge({
      name: 'switchboard_open_streams',
      help: 'SSE streams open on this replica.',
      registers,
      collect() {
        this.set(live.openStreams());
      },
    });
    new Gauge({
      name: 'switchboard_ready',
      help: '1 while this replica is ready (GET /readyz answers 200), 0 while it drains or its backplane is not ready.',
      registers,
      collect() {
        this.set(live.ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'switchboard_subscribed_channels',
      help: 'Channels this replica holds (subscribed, or within the unsubscribe debounce).',
      registers,
      collect() {
        this.set(live.subscribedChannels());
      },
    });
    new Gauge({
      name: 'switchboard_probe_age_seconds',
      help: 'Seconds since this replica last heard its own probe through the backplane (+Inf before the first).',
      registers,
      collect() {
        this.set(live.probeAgeSeconds());
      },
    });
    new Gauge({
      name: 'switchboard_shard_probe_age_seconds',
      help: 'Seconds since this replica last heard its probe on each subscriber path: one per Redis Cluster master (shard="host:port"), one for a single Redis (shard="redis").',
      labelNames: ['shard'],
      registers,
      collect() {
        this.reset();
        for (const [shard, seconds] of live.probeAgesSeconds()) this.set({ shard }, seconds);
      },
    });
    new Gauge({
      name: 'switchboard_publishes_in_flight',
      help: 'Publishes (single, batch, callbacks) admitted and not answered yet; past SHED_MAX_IN_FLIGHT_PUBLISHES new ones are shed.',
      registers,
      collect() {
        this.set(live.inFlightPublishes());
      },
    });
    new Gauge({
      name: 'switchboard_fleet_streams',
      help: 'Streams open on each replica of the fleet (replica="<REPLICA_ID>"), as this replica\'s last presence heartbeat saw them: every replica reports the whole fleet.',
      labelNames: ['replica'],
      registers,
      collect() {
        this.reset();
        for (const [replica, streams] of live.fleetStreams()) this.set({ replica }, streams);
      },
    });
    this.eventsAccepted = new Counter({
      name: 'switchboard_events_accepted_total',
      help: 'Events accepted (2xx) and published, by route.',
      labelNames: ['route'],
      registers,
    });
    this.zeroReceivers = new Counter({
      name: 'switchboard_events_zero_receivers_total',
      help: 'Accepted events no replica was subscribed to (no open stream anywhere).',
      labelNames: ['route'],
      registers,
    });
    this.duplicates = new Counter({
      name: 'switchboard_duplicates_total',
      help: 'Publishes and callbacks answered as duplicates of an earlier idempotency key.',
      labelNames: ['route'],
      registers,
    });
    this.eventsDelivered = new Counter({
      name: 'switchboard_events_delivered_total',
      help: 'Events written to streams on this replica, one per stream: live, and caught up after a subscriber reconnect (resume replays are counted in switchboard_replayed_events_total).',
      registers,
    });
    this.deliveryLatency = new Histogram({
      name: 'switchboard_delivery_latency_seconds',
      help: 'Seconds from an event being accepted (on any replica) to it being written to the sockets of this replica, once per event that reached a stream here.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.replayedEvents = new Counter({ name: 'switchboard_replayed_events_total', help: 'Events written from history (resumes and catch-ups).', registers });
    this.resets = new Counter({ name: 'switchboard_resets_total', help: 'reset events sent to streams, by cause.', labelNames: ['cause'], registers });
    this.streamsEnded = new Counter({
      name: 'switchboard_streams_ended_total',
      help: 'Streams ended, by reason (slow_client = cut for not reading).',
      labelNames: ['reason'],
      registers,
    });
    this.streamsDeferred = new Counter({
      name: 'switchboard_streams_deferred_total',
      help: 'Stream opens told to retry (200 + retry: + end) instead of opening, by reason (draining, full, backplane_not_ready, resume_limit).',
      labelNames: ['reason'],
      registers,
    });
    this.backplaneReconnects = new Counter({
      name: 'switchboard_backplane_reconnects_total',
      help: 'Times the subscriber path came back and caught up from history.',
      registers,
    });
    this.authFailures = new Counter({
      name: 'switchboard_auth_failures_total',
      help: 'Refused credentials, by reason (error code).',
      labelNames: ['reason'],
      registers,
    });
    this.droppedMessages = new Counter({
      name: 'switchboard_malformed_messages_total',
      help: 'Events from the backplane dropped because they could not be encoded for a stream (each is logged).',
      registers,
    });
    this.publishesShed = new Counter({
      name: 'switchboard_publishes_shed_total',
      help: 'Publishes answered 503 overloaded by load shedding, by reason (event_loop_delay, in_flight).',
      labelNames: ['reason'],
      registers,
    });
  }
}
