import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { durablePart, formatPosition, newEpoch, parsePosition, ZERO_POSITION, type Position } from '../history/cursor.js';
import type { ChannelMessage, HistoryRead, PublishRequest, PublishResult } from './backplane.js';
import { buildMessage, encodeHeader } from './envelope.js';
import type { HistoryOptions } from './memory-backplane.js';
import { channelKeys, type ChannelName } from './redis-keys.js';
import { HISTORY_SCRIPT, KEYS_PER_EVENT, PUBLISH_BATCH_SCRIPT, PUBLISH_SCRIPT, SHARDED_PUBLISH_BATCH_SCRIPT, SHARDED_PUBLISH_SCRIPT } from './scripts.js';

/**
 * A Lua script run as EVALSHA through the connection's plain command path, and as EVAL when the
 * server does not hold it yet (a new or restarted Redis answers NOSCRIPT; EVAL caches it there).
 * ioredis' `defineCommand` does the same through a second command class, a reject closure per
 * call and two more promise chains; its frames were the largest allocation sites of a publish in
 * the allocation profile (docs/BENCHMARKS.md). Cluster routes a call, and its auto-pipelining
 * groups it, by the call's first key (EVALSHA's key positions are in ioredis' command table).
 */
class LuaScript {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /**
   * Runs the script with `numberOfKeysAndArgs`: the number of keys, its keys, then its
   * arguments. Rejects as Redis did.
   */
  async run(connection: Redis | Cluster, numberOfKeysAndArgs: readonly (string | number)[]): Promise<unknown> {
    try {
      return await connection.call('evalsha', [this.sha, ...numberOfKeysAndArgs]);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return connection.call('eval', [this.lua, ...numberOfKeysAndArgs]);
    }
  }
}

const publishScripts = { plain: new LuaScript(PUBLISH_SCRIPT), sharded: new LuaScript(SHARDED_PUBLISH_SCRIPT) };
const publishBatchScript = new LuaScript(PUBLISH_BATCH_SCRIPT);
const historyScript = new LuaScript(HISTORY_SCRIPT);

/**
 * The batch script on a Cluster connection (with SPUBLISH), as an ioredis command: it runs inside
 * explicit pipelines, one per master, which load a defined script before they run. Not for the
 * Cluster connection's auto-pipelining, which would place the call by its first argument, the
 * number of keys.
 */
export interface BatchScriptCommand {
  sbPublishMany(...args: (string | number)[]): Promise<(string | number)[]>;
}

export function defineBatchScript(connection: Cluster): Cluster & BatchScriptCommand {
  connection.defineCommand('sbPublishMany', { lua: SHARDED_PUBLISH_BATCH_SCRIPT });
  return connection as Cluster & BatchScriptCommand;
}

/** One event's outcome from the publish script. `receivers` is -1 for a duplicate (nothing was written or published). */
export interface ScriptPublished {
  position: string;
  epoch: string;
  receivers: number;
}

/**
 * The arguments of one `sbPublishMany` call for these events, in order (the number of keys
 * first): one call appends and publishes them all, atomically, in one round trip.
 */
export function publishManyArguments(requests: readonly PublishRequest[], history: HistoryOptions): (string | number)[] {
  const keys: string[] = [];
  const args: (string | number)[] = [history.historyMaxLen, history.historyTtlSeconds, newEpoch()];
  for (const request of requests) {
    const keysOf = channelKeys(request.channel);
    keys.push(keysOf.history, keysOf.meta, keysOf.idempotencyPrefix + (request.idempotencyKey ?? ''));
    pushEventArguments(args, request, history);
  }
  return [keys.length, ...keys, ...args];
}

function pushEventArguments(args: (string | number)[], request: PublishRequest, history: HistoryOptions): void {
  args.push(
    request.channel,
    encodeHeader(request.header),
    request.dataJson,
    request.durable === false ? '0' : '1',
    request.idempotencyKey === undefined ? '' : (request.idempotencyTtlSeconds ?? history.historyTtlSeconds),
  );
}

/** Reads the publish script's flat reply: position, epoch, receivers per event. */
export function publishReplies(reply: readonly (string | number)[]): ScriptPublished[] {
  const out: ScriptPublished[] = [];
  for (let i = 0; i + 2 < reply.length; i += 3) {
    out.push({ position: String(reply[i]), epoch: String(reply[i + 1]), receivers: Number(reply[i + 2]) });
  }
  return out;
}

/** A script outcome as the Backplane answers it. */
export function toResult({ position, epoch, receivers }: ScriptPublished): PublishResult {
  return { epoch, position, receivers: Math.max(receivers, 0), duplicate: receivers < 0 };
}

/** Runs the publish script for one event: with PUBLISH, or (`sharded`, Cluster) SPUBLISH. Rejects as Redis did. */
export async function runPublish(connection: Redis | Cluster, sharded: boolean, request: PublishRequest, history: HistoryOptions): Promise<ScriptPublished> {
  const keys = channelKeys(request.channel);
  const args: (string | number)[] = [
    KEYS_PER_EVENT,
    keys.history,
    keys.meta,
    keys.idempotencyPrefix + (request.idempotencyKey ?? ''),
    history.historyMaxLen,
    history.historyTtlSeconds,
    newEpoch(),
  ];
  pushEventArguments(args, request, history);
  const [position, epoch, receivers] = (await (sharded ? publishScripts.sharded : publishScripts.plain).run(connection, args)) as (string | number)[];
  return { position: String(position), epoch: String(epoch), receivers: Number(receivers) };
}

/** Runs the publish script for many events in one call (one round trip; one server, not Cluster). */
export async function runPublishMany(connection: Redis, requests: readonly PublishRequest[], history: HistoryOptions): Promise<ScriptPublished[]> {
  return publishReplies((await publishBatchScript.run(connection, publishManyArguments(requests, history))) as (string | number)[]);
}

/** Runs the history script and reads its reply (see Backplane.readHistory). Rejects as Redis did. */
export async function runHistoryRead(
  connection: Redis | Cluster,
  channel: ChannelName,
  after: Position | undefined,
  limit: number,
  historyTtlSeconds: number,
  logger: Logger,
): Promise<HistoryRead> {
  const keys = channelKeys(channel);
  // A live-only event's position names the durable one before it: history is read after that.
  const afterText = after === undefined ? undefined : formatPosition(durablePart(after));
  const [epoch, lastText, rawEntries] = (await historyScript.run(connection, [
    2, // keys: history, meta
    keys.history,
    keys.meta,
    newEpoch(),
    historyTtlSeconds,
    afterText ?? '',
    limit,
  ])) as [string, string, [string, string[]][]];
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
