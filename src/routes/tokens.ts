import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { MAX_TOKEN_TTL_SECONDS } from '../auth/stream-tokens.js';
import { SwitchboardError } from '../errors.js';
import { isValidTopic, isValidUserId } from '../identifiers.js';
import { requirePublisherKey } from './publisher-key.js';

const TokenBody = Type.Object({
  userId: Type.String(),
  /** Topics the holder may join; a stream joins at most 32 of them at once. */
  topics: Type.Optional(Type.Array(Type.String(), { maxItems: 256 })),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TOKEN_TTL_SECONDS })),
});

/** POST /v1/tokens — a backend mints a subscriber token for one of its users. */
export function tokenRoutes(app: App, { apiKeys, tokens }: RouteContext): void {
  app.post('/v1/tokens', { onRequest: requirePublisherKey(apiKeys), schema: { body: TokenBody } }, async (request, reply) => {
    const { userId, topics = [], ttlSeconds = 3600 } = request.body;
    if (!isValidUserId(userId)) throw new SwitchboardError('invalid_user_id');
    if (topics.some((topic) => !isValidTopic(topic))) throw new SwitchboardError('invalid_topic');
    const { token, expiresAtMs } = tokens.mint(userId, [...new Set(topics)], ttlSeconds);
    return reply.code(201).send({ token, expiresAt: new Date(expiresAtMs).toISOString() });
  });
}
