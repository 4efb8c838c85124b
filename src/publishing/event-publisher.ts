import type { Backplane } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/channels.js';
import { channelTag, formatSegment } from '../history/cursor.js';
import type { AcceptRoute, Metrics } from '../telemetry/metrics.js';
import { endWithError, startPublishSpan, traceContextOf, withSpan } from '../telemetry/tracing.js';

export interface EventToPublish {
  type: string;
  /** Any JSON value; serialised here, once, to the one line every stream will carry. */
  data: unknown;
  idempotencyKey?: string;
  idempotencyTtlSeconds?: number;
}

export interface PublishOrigin {
  route: AcceptRoute;
  correlationId?: string;
}

export interface Published {
  /** The event's id as a stream of this channel alone sees it (a resumable cursor). */
  id: string;
  receivers: number;
  duplicate: boolean;
}

/**
 * The one path from an accepted request to the backplane, for publish routes and callbacks alike.
 * It opens the PRODUCER span whose context travels with the event, so each replica's delivery
 * joins the same trace.
 */
export class EventPublisher {
  constructor(
    private readonly backplane: Backplane,
    private readonly metrics: Metrics,
    private readonly replicaId: string,
  ) {}

  async publish(channel: ChannelName, event: EventToPublish, origin: PublishOrigin): Promise<Published> {
    const span = startPublishSpan({
      'messaging.destination.name': channel,
      'switchboard.replica_id': this.replicaId,
      'switchboard.route': origin.route,
      'switchboard.event_type': event.type,
      ...(origin.correlationId === undefined ? {} : { 'switchboard.correlation_id': origin.correlationId }),
    });
    const tc = traceContextOf(span);
    let published: Published;
    try {
      const result = await withSpan(span, () =>
        this.backplane.publish({
          channel,
          header: tc === undefined ? { t: event.type, a: Date.now() } : { t: event.type, a: Date.now(), tc },
          dataJson: JSON.stringify(event.data),
          ...(event.idempotencyKey === undefined
            ? {}
            : { idempotencyKey: event.idempotencyKey, idempotencyTtlSeconds: event.idempotencyTtlSeconds }),
        }),
      );
      published = {
        id: formatSegment(channelTag(channel), result.epoch, result.position),
        receivers: result.receivers,
        duplicate: result.duplicate,
      };
    } catch (err) {
      endWithError(span, err);
      throw err;
    }
    span.setAttributes({
      'messaging.message.id': published.id,
      'switchboard.receivers': published.receivers,
      'switchboard.duplicate': published.duplicate,
    });
    span.end();
    if (published.duplicate) {
      this.metrics.duplicates.inc({ route: origin.route });
    } else {
      this.metrics.eventsAccepted.inc({ route: origin.route });
      if (published.receivers === 0) this.metrics.zeroReceivers.inc({ route: origin.route });
    }
    return published;
  }
}
