import { parseArgs } from 'node:util';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { StreamTokens } from '../auth/stream-tokens.js';
import { isValidTopic, isValidUserId } from '../identifiers.js';
import { CliError } from './cli-error.js';
import { fleetConfig, list, serviceUrl } from './cli-env.js';

/** Each connection gets a token of its own this long-lived; an `auth-expired` end reconnects with a new one. */
const TOKEN_TTL_SECONDS = 3600;
/** Until the server's `retry:` says otherwise. */
const DEFAULT_RECONNECT_MS = 1000;
/** Statuses a reconnect cannot fix (bad name, refused token or topic): tail stops with the reason. */
const FINAL_STATUSES = new Set([400, 401, 403]);

/**
 * `switchboard tail <user> [--topics a,b]`: the user's live stream, one line per event — time,
 * event id, type, data — on stdout; connections and resets on stderr. It reconnects like a
 * browser (after the server's `retry:`, with Last-Event-ID and a fresh token), so a replica that
 * drains or dies shows as a reconnect, not a gap. The token is sent in a header, never in the URL.
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { topics: { type: 'string' }, url: { type: 'string' }, 'last-event-id': { type: 'string' }, count: { type: 'string' } },
  });
  const [userId, ...extra] = positionals;
  if (userId === undefined || extra.length > 0)
    throw new CliError('usage: switchboard tail <user> [--topics a,b] [--last-event-id id] [--count n] [--url u]', 2);
  if (!isValidUserId(userId)) throw new CliError(`"${userId}" is not a user id`, 2);
  const topics = list(values.topics);
  if (topics.some((topic) => !isValidTopic(topic))) throw new CliError('--topics: each topic is 1-128 characters of [A-Za-z0-9._~:@-]', 2);
  const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
  if (!(count >= 1)) throw new CliError('--count must be a positive number of events', 2);

  const config = fleetConfig(['STREAM_TOKEN_SECRET']);
  const tokens = new StreamTokens(config.streamTokenSecret, config.streamTokenAudience);
  const url = `${serviceUrl(values.url)}/stream/${encodeURIComponent(userId)}${topics.length > 0 ? `?topics=${topics.join(',')}` : ''}`;
  let lastEventId = values['last-event-id'];
  let reconnectMs = DEFAULT_RECONNECT_MS;
  let printed = 0;

  for (;;) {
    const { token } = tokens.mint(userId, topics, TOKEN_TTL_SECONDS);
    const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${token}` };
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    let response: Response | undefined;
    try {
      response = await fetch(url, { headers });
    } catch (err) {
      process.stderr.write(`# ${url}: no answer (${(err as { cause?: Error }).cause?.message ?? (err as Error).message}); retrying\n`);
    }
    if (response !== undefined && response.status !== 200) {
      const problem = (await response.json().catch(() => ({}))) as { code?: string; detail?: string };
      const reason = `${response.status} ${problem.code ?? ''}${problem.detail === undefined ? '' : `: ${problem.detail}`}`;
      if (FINAL_STATUSES.has(response.status)) throw new CliError(`stream refused: ${reason}`);
      process.stderr.write(`# stream answered ${reason}; retrying\n`);
    }
    if (response?.status === 200 && response.body !== null) {
      process.stderr.write(
        `# connected to replica ${response.headers.get('x-replica-id') ?? '?'}${lastEventId === undefined ? '' : `, resuming after ${lastEventId}`}\n`,
      );
      const onEvent = (event: EventSourceMessage): void => {
        if (printed >= count) return;
        if (event.id !== undefined) lastEventId = event.id;
        const type = event.event ?? 'message';
        if (type === 'reset') process.stderr.write(`# reset: events may be missing (${event.data})\n`);
        process.stdout.write(`${new Date().toISOString().slice(11, 23)}  ${event.id ?? '-'}  ${type}  ${event.data}\n`);
        printed++;
      };
      const parser = createParser({ onEvent, onRetry: (ms) => (reconnectMs = ms) });
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
          if (printed >= count) {
            await reader.cancel();
            return 0;
          }
        }
      } catch (err) {
        process.stderr.write(`# stream broke (${(err as Error).message})\n`);
      }
    }
    process.stderr.write(`# reconnecting in ${reconnectMs} ms\n`);
    await new Promise((resolve) => setTimeout(resolve, reconnectMs));
  }
}
