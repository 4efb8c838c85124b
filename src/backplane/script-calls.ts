import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { formatPosition, newEpoch, parsePosition, ZERO_POSITION, type Position } from '../history/cursor.js';
import type { ChannelMessage, HistoryRead, PublishRequest } from './backplane.js';
import { buildMessage, encodeHeader } from './envelope.js';
import type { HistoryOptions } from './memory-backplane.js';
import { channelKeys, type ChannelName } from './redis-keys.js';
import { HISTORY_SCRIPT } from './scripts.js';

/**
 * The two scripts' calls and replies, shared by the Redis backplanes (one server or Sentinel, and
 * Cluster): every key of a call shares the channel's hash tag, so on a Cluster connection ioredis
 * routes each call to the master of that one slot.
 */
export interface ScriptCommands {
  sbPublish(...args: (string | number)[]): Promise<[string, string, number]>;
  sbHistory(...args: (string | number)[]): Promise<[string, string, [string, string[]][]]>;
}

/** Adds the scripts to a command connection; `publishScript` is the PUBLISH or the SPUBLISH variant. */
export function defineScripts<C extends Redis | Cluster>(connection: C, publishScript: string): C & ScriptCommands {
  connection.defineCommand('sbPublish', { numberOfKeys: 3, lua: publishScript });
  connection.defineCommand('sbHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT });
  return connection as C & ScriptCommands;
}

/** Runs the publish script. `receivers` is -1 for a duplicate (nothing was written or published). */
export async function runPublish(
  connection: ScriptCommands,
  request: PublishRequest,
  history: HistoryOptions,
): Promise<{ position: string; epoch: string; receivers: number }> {
  const keys = channelKeys(request.channel);
  const idempotent = request.idempotencyKey !== undefined;
  const [position, epoch, receivers] = await connection.sbPublish(
    keys.history,
    keys.meta,
    keys.idempotencyPrefix + (request.idempotencyKey ?? ''),
    request.channel,
    encodeHeader(request.header),
    request.dataJson,
    history.historyMaxLen,
    history.historyTtlSeconds,
    newEpoch(),
    idempotent ? '1' : '0',
    request.idempotencyTtlSeconds ?? history.historyTtlSeconds,
  );
  return { position, epoch, receivers };
}

/** Runs the history script and reads its reply (see Backplane.readHistory). Rejects as Redis did. */
export async function runHistoryRead(
  connection: ScriptCommands,
  channel: ChannelName,
  after: Position | undefined,
  limit: number,
  historyTtlSeconds: number,
  logger: Logger,
): Promise<HistoryRead> {
  const keys = channelKeys(channel);
  const afterText = after === undefined ? undefined : formatPosition(after);
  const [epoch, lastText, rawEntries] = await connection.sbHistory(keys.history, keys.meta, newEpoch(), historyTtlSeconds, afterText ?? '', limit);
  const entries: ChannelMessage[] = [];
  let firstPredecessor: string | undefined;
  for (const [id, fields] of rawEntries) {
    const field = fieldReader(fields);
    firstPredecessor ??= field('p');
    const message = buildMessage(channel, epoch, id, field('h') ?? '', field('d') ?? '');
    if (message === undefined) {
      logger.warn({ channel, id }, 'dropped a malformed history entry');
      continue;
    }
    entries.push(message);
  }
  const last = parsePosition(lastText) ?? ZERO_POSITION;
  const trimmed = afterText !== undefined && afterText !== lastText && (rawEntries.length === 0 ? true : firstPredecessor !== afterText);
  return { epoch, last, lastText, entries, trimmed };
}

/** XRANGE gives an entry's fields as a flat [name, value, …] list. */
function fieldReader(fields: string[]): (name: string) => string | undefined {
  return (name) => {
    for (let i = 0; i < fields.length - 1; i += 2) if (fields[i] === name) return fields[i + 1];
    return undefined;
  };
}
