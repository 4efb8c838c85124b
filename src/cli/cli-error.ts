/** A failure the CLI explains in one sentence and exits with: 1 for a failed check or call, 2 for a usage error. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const USAGE = `usage: switchboard <command> [options]

  gen-secrets                            print new STREAM_TOKEN_SECRET, PUBLISH_API_KEY, CALLBACK_SECRET lines
  token <user> [--topics a,b] [--ttl s]  mint a subscriber token (STREAM_TOKEN_SECRET, STREAM_TOKEN_AUDIENCE)
  publish <user> <json> [--type t] [--id key] [--url u]
  publish --topic <t> <json> [...]       publish an event (PUBLISH_API_KEY, SWITCHBOARD_URL)
  tail <user> [--topics a,b] [--url u]   print a user's live stream: time, event id, type, data
  doctor [--replica url ...]             check env, Redis, clocks, readiness and shared secrets

The environment is the server's (docs/configuration.md), plus SWITCHBOARD_URL (default
http://localhost:3000) for publish and tail.
`;
