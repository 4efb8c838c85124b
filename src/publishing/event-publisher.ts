import type { Backplane } from '../backplane/backplane.js';
import type { ChannelName } from '../backplane/channels.js';
import { channelTag, formatSegment } from '../history/cursor.js';

export interface EventToPublish {
  type: string;
  /** Any JSON value; serialised here, once, to the one line every stream will carry. */
  data: unknown;
  idempotencyKey?: string;
  idempotencyTtlSeconds?: number;
}

export interface Published {
  /** The event's id as a stream of this channel alone sees it (a resumable cursor). */
  id: string;
  receivers: number;
  duplicate: boolean;
}

/** The one path from an accepted request to the backplane, for publish routes and callbacks alike. */
export class EventPublisher {
  constructor(private readonly backplane: Backplane) {}

  async publish(channel: ChannelName, event: EventToPublish): Promise<Published> {
    const result = await this.backplane.publish({
      channel,
      header: { t: event.type, a: Date.now() },
      dataJson: JSON.stringify(event.data),
      ...(event.idempotencyKey === undefined
        ? {}
        : { idempotencyKey: event.idempotencyKey, idempotencyTtlSeconds: event.idempotencyTtlSeconds }),
    });
    return {
      id: formatSegment(channelTag(channel), result.epoch, result.position),
      receivers: result.receivers,
      duplicate: result.duplicate,
    };
  }
}
