import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { SwitchboardError } from '../errors.js';
import { isValidTopic, isValidUserId } from '../identifiers.js';
import { requirePublisherKey } from './publisher-key.js';

const UserPresenceAnswer = Type.Object({
  userId: Type.String(),
  streams: Type.Integer(),
  replicas: Type.Record(Type.String(), Type.Integer()),
});
const TopicPresenceAnswer = Type.Object({ topic: Type.String(), streams: Type.Integer() });

/**
 * GET /v1/users/:userId/presence and /v1/topics/:topic/presence — streams open across the fleet
 * (src/fleet/). A replica that died stops counting within PRESENCE_TTL_MS.
 */
export function presenceRoutes(app: App, { apiKeys, fleet }: RouteContext): void {
  const onRequest = requirePublisherKey(apiKeys);
  const unavailable = (cause: unknown) => new SwitchboardError('backplane_unavailable', 'Presence could not be read; retry shortly.', { cause });

  app.get(
    '/v1/users/:userId/presence',
    { onRequest, schema: { params: Type.Object({ userId: Type.String() }), response: { 200: UserPresenceAnswer } } },
    async (request) => {
      const { userId } = request.params;
      if (!isValidUserId(userId)) throw new SwitchboardError('invalid_user_id');
      const presence = await fleet.userPresence(userId).catch((err: unknown) => {
        throw unavailable(err);
      });
      return { userId, ...presence };
    },
  );

  app.get(
    '/v1/topics/:topic/presence',
    { onRequest, schema: { params: Type.Object({ topic: Type.String() }), response: { 200: TopicPresenceAnswer } } },
    async (request) => {
      const { topic } = request.params;
      if (!isValidTopic(topic)) throw new SwitchboardError('invalid_topic');
      const streams = await fleet.topicPresence(topic).catch((err: unknown) => {
        throw unavailable(err);
      });
      return { topic, streams };
    },
  );
}
