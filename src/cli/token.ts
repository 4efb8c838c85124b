import { parseArgs } from 'node:util';
import { MAX_TOKEN_TTL_SECONDS, StreamTokens } from '../auth/stream-tokens.js';
import { isValidTopic, isValidUserId } from '../identifiers.js';
import { CliError } from './cli-error.js';
import { fleetConfig, list } from './cli-env.js';

const DEFAULT_TTL_SECONDS = 3600;

/**
 * `switchboard token <user> [--topics a,b] [--ttl s]`: a subscriber token signed here, by the
 * server's own signer, with STREAM_TOKEN_SECRET and STREAM_TOKEN_AUDIENCE. Only the token goes to
 * stdout (for `TOKEN=$(switchboard token alice)`); its expiry goes to stderr.
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { topics: { type: 'string' }, ttl: { type: 'string' } },
  });
  const [userId, ...extra] = positionals;
  if (userId === undefined || extra.length > 0) throw new CliError('usage: switchboard token <user> [--topics a,b] [--ttl seconds]', 2);
  if (!isValidUserId(userId)) throw new CliError(`"${userId}" is not a user id (1-128 characters of [A-Za-z0-9._~:@-])`, 2);
  const topics = list(values.topics);
  const badTopic = topics.find((topic) => !isValidTopic(topic));
  if (badTopic !== undefined) throw new CliError(`"${badTopic}" is not a topic (1-128 characters of [A-Za-z0-9._~:@-])`, 2);
  const ttlSeconds = values.ttl === undefined ? DEFAULT_TTL_SECONDS : Number(values.ttl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
    throw new CliError(`--ttl must be whole seconds from 1 to ${MAX_TOKEN_TTL_SECONDS}`, 2);
  }
  const config = fleetConfig(['STREAM_TOKEN_SECRET']);
  const { token, expiresAtMs } = new StreamTokens(config.streamTokenSecret, config.streamTokenAudience).mint(userId, [...new Set(topics)], ttlSeconds);
  process.stdout.write(`${token}\n`);
  process.stderr.write(`token for ${userId}${topics.length > 0 ? ` (topics ${topics.join(', ')})` : ''}, expires ${new Date(expiresAtMs).toISOString()}\n`);
  return 0;
}
