import { ConfigError, loadConfig, type Config } from '../config.js';
import { CliError } from './cli-error.js';

/** Where publish and tail send their requests when --url is not given. */
const DEFAULT_URL = 'http://localhost:3000';

/**
 * The server's configuration, read and validated the way a replica reads it, so the CLI signs and
 * authenticates exactly as the replicas do. Secrets a replica would make up (none set, no Redis)
 * are no use here: the CLI must share the fleet's, so it refuses to run without them.
 */
export function fleetConfig(needs: readonly ('STREAM_TOKEN_SECRET' | 'PUBLISH_API_KEY')[]): Config {
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message);
    throw err;
  }
  const missing = needs.filter((name) =>
    name === 'STREAM_TOKEN_SECRET' ? loaded.generated.streamTokenSecret !== undefined : loaded.generated.publishApiKey !== undefined,
  );
  if (missing.length > 0) throw new CliError(`${missing.join(' and ')} must be set (the same value as the replicas')`);
  return loaded.config;
}

/** --url, else SWITCHBOARD_URL, else localhost:3000; without a trailing slash. */
export function serviceUrl(option: string | undefined): string {
  const url = option ?? process.env.SWITCHBOARD_URL ?? DEFAULT_URL;
  if (!/^https?:\/\//.test(url)) throw new CliError(`"${url}" is not an http:// or https:// URL (--url or SWITCHBOARD_URL)`, 2);
  return url.replace(/\/+$/, '');
}

/** `a,b` → ['a', 'b']; an unset option → []. */
export function list(option: string | undefined): string[] {
  return (option ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}
