import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { checkedEvent, targetChannel } from '../publishing/event-checks.js';
import { requirePublisherKey } from './publisher-key.js';

const PublishBody = Type.Object({
  type: Type.Optional(Type.String()),
  data: Type.Unknown(),
  /** Idempotency key: the same key within the history TTL is accepted once. */
  id: Type.Optional(Type.String()),
  /** False: live-only, delivered to open streams and never stored or replayed. */
  durable: Type.Optional(Type.Boolean()),
});

export const PublishAnswer = Type.Object({ id: Type.String(), receivers: Type.Integer(), duplicate: Type.Boolean() });

/** POST /v1/users/:userId/events and /v1/topics/:topic/events — publish to any replica. */
export function publishRoutes(app: App, { apiKeys, publisher, config }: RouteContext): void {
  const checkKey = requirePublisherKey(apiKeys);
  const route = (path: string, param: 'userId' | 'topic', kind: 'user' | 'topic') => {
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
        const channel = targetChannel(kind, (request.params as Record<string, string>)[param] as string);
        const published = await publisher.publish(channel, checkedEvent(request.body, config.historyTtlSeconds), { route: kind });
        return reply.code(202).send(published);
      },
    );
  };
  route('/v1/users/:userId/events', 'userId', 'user');
  route('/v1/topics/:topic/events', 'topic', 'topic');
}
