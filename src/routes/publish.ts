import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { topicChannel, userChannel, type ChannelName } from '../backplane/redis-keys.js';
import { SwitchboardError } from '../errors.js';
import { EVENT_TYPE_RULE, isValidEventType, isValidIdempotencyKey, isValidTopic, isValidUserId } from '../identifiers.js';
import type { AcceptRoute } from '../telemetry/metrics.js';
import { requirePublisherKey } from './publisher-key.js';

const DEFAULT_EVENT_TYPE = 'message';

const PublishBody = Type.Object({
  type: Type.Optional(Type.String()),
  data: Type.Unknown(),
  /** Idempotency key: the same key within the history TTL is accepted once. */
  id: Type.Optional(Type.String()),
});

const PublishAnswer = Type.Object({ id: Type.String(), receivers: Type.Integer(), duplicate: Type.Boolean() });

/** POST /v1/users/:userId/events and /v1/topics/:topic/events — publish to any replica. */
export function publishRoutes(app: App, { apiKeys, publisher, config }: RouteContext): void {
  const checkKey = requirePublisherKey(apiKeys);
  const route = (path: string, param: 'userId' | 'topic', toChannel: (name: string) => ChannelName, origin: AcceptRoute) => {
    app.post(
      path,
      {
        onRequest: checkKey,
        schema: {
          params: Type.Object({ [param]: Type.String() }),
          body: PublishBody,
          response: { 202: PublishAnswer },
        },
      },
      async (request, reply) => {
        const name = (request.params as Record<string, string>)[param] as string;
        if (param === 'userId' && !isValidUserId(name)) throw new SwitchboardError('invalid_user_id');
        if (param === 'topic' && !isValidTopic(name)) throw new SwitchboardError('invalid_topic');
        const { type = DEFAULT_EVENT_TYPE, data, id } = request.body;
        if (!isValidEventType(type)) throw new SwitchboardError('invalid_event_type', EVENT_TYPE_RULE);
        if (data === undefined) throw new SwitchboardError('invalid_request', 'The body must have a "data" member.');
        if (id !== undefined && !isValidIdempotencyKey(id)) {
          throw new SwitchboardError('invalid_request', '"id" (the idempotency key) must be 1-200 printable ASCII characters.');
        }
        const published = await publisher.publish(
          toChannel(name),
          {
            type,
            data,
            ...(id === undefined ? {} : { idempotencyKey: `pub:${id}`, idempotencyTtlSeconds: config.historyTtlSeconds }),
          },
          { route: origin },
        );
        return reply.code(202).send(published);
      },
    );
  };
  route('/v1/users/:userId/events', 'userId', userChannel, 'user');
  route('/v1/topics/:topic/events', 'topic', topicChannel, 'topic');
}
