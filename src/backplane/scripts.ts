/**
 * Lua scripts run by RedisBackplane. All keys a script touches share one hash tag (see
 * channels.ts), so they run unchanged on Redis Cluster.
 *
 * Redis does not undo a write when a later command in the same script fails, so everything that
 * can be validated is validated in TypeScript before the script runs.
 *
 * Each history entry stores the id of the entry before it (`p`). Trimming removes entries from
 * the head only, so a resume from position P is complete exactly when the first entry after P
 * names P as its predecessor. (Redis 7.0's `max-deleted-entry-id` is not moved by trimming, so it
 * cannot tell this.)
 */

/**
 * Append + publish, atomically: dedupe check, epoch (created on first use), XADD with trimming,
 * expiry, idempotency record, then PUBLISH (standalone, Sentinel) or SPUBLISH (Cluster: a PUBLISH
 * inside a script reaches no sharded subscriber there; the channel shares the keys' slot).
 *
 * KEYS: history stream, meta hash (epoch, last), idempotency key (unused unless ARGV[7] == '1')
 * ARGV: channel, header JSON, data JSON, max length, history TTL s, candidate epoch,
 *       use idempotency ('0'|'1'), idempotency TTL s
 * Returns { position, epoch, receivers } — receivers is -1 for a duplicate.
 */
const publishScript = (publish: 'PUBLISH' | 'SPUBLISH'): string => `
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last')
local epoch = meta[1]
local last = meta[2]
if not epoch then
  epoch = ARGV[6]
  last = '0-0'
end
if ARGV[7] == '1' then
  -- The first event's id and epoch: the history (and its epoch) may have expired since.
  local prior = redis.call('GET', KEYS[3])
  if prior then
    local space = string.find(prior, ' ', 1, true)
    return { string.sub(prior, 1, space - 1), string.sub(prior, space + 1), -1 }
  end
end
local trim = '~'
if ARGV[4] == '0' then trim = '=' end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', trim, ARGV[4], '*', 'h', ARGV[2], 'd', ARGV[3], 'p', last)
redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', id)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[3], id .. ' ' .. epoch, 'EX', ARGV[8])
end
local receivers = redis.call('${publish}', ARGV[1], id .. ' ' .. epoch .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return { id, epoch, receivers }
`;

export const PUBLISH_SCRIPT = publishScript('PUBLISH');
export const SHARDED_PUBLISH_SCRIPT = publishScript('SPUBLISH');

/**
 * What a resume needs, read atomically: the epoch (created when missing, so a fresh stream's ids
 * already carry it), the newest id, and up to `limit` entries after a position.
 *
 * KEYS: history stream, meta hash
 * ARGV: candidate epoch, history TTL s, after position ('' = none), limit
 * Returns { epoch, last, entries } with entries as XRANGE gives them.
 */
export const HISTORY_SCRIPT = `
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last')
local epoch = meta[1]
local last = meta[2] or '0-0'
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', last)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
local entries = {}
if ARGV[3] ~= '' then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[3], '+', 'COUNT', ARGV[4])
end
return { epoch, last, entries }
`;
