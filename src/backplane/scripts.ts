/**
 * Lua scripts run by the Redis backplanes. On Redis Cluster every call's keys share one slot (one
 * channel's keys share a hash tag, see redis-keys.ts, and a batch is split per slot), so the
 * scripts run there unchanged.
 *
 * Redis does not undo a write when a later command in the same script fails, so everything that
 * can be validated is validated in TypeScript before the script runs.
 *
 * Each history entry stores the id of the entry before it (`p`). Trimming removes entries from
 * the head only, so a resume from position P is complete exactly when the first entry after P
 * names P as its predecessor. (Redis 7.0's `max-deleted-entry-id` is not moved by trimming, so it
 * cannot tell this.)
 */

/** KEYS per event in a publish call: history stream, meta hash, idempotency key. */
export const KEYS_PER_EVENT = 3;
/** ARGV per event in a batch call, after the call's own three (see the batch script). */
export const ARGS_PER_EVENT = 5;

/**
 * Append + publish, atomically, for one event: dedupe check, epoch (created on first use), XADD
 * with trimming, expiry, idempotency record, then PUBLISH (standalone, Sentinel) or SPUBLISH
 * (Cluster: a PUBLISH inside a script reaches no sharded subscriber there; the channel shares the
 * keys' slot).
 *
 * A live-only event (`durable` '0') is published, never appended: its position is the channel's
 * last durable position plus a per-channel counter (meta field `n`), `<ms>-<seq>-<n>`, so it
 * sorts after the durable event before it and before the next one, and a resume from it reads
 * history after that durable position.
 *
 * (Measured, docs/BENCHMARKS.md: renewing the TTLs only once per quarter TTL, instead of two
 * EXPIREs per publish, did not make this script measurably cheaper for Redis; it is not done.)
 *
 * KEYS: history stream, meta hash (epoch, last, n), idempotency key (unused without one)
 * ARGV: max length, history TTL s, candidate epoch, channel, header JSON, data JSON,
 *       durable ('1'|'0'), idempotency TTL s ('' = no idempotency key)
 * Returns { position, epoch, receivers } — receivers is -1 for a duplicate.
 */
const publishScript = (publish: 'PUBLISH' | 'SPUBLISH'): string => `
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last', 'n')
local epoch = meta[1]
local last = meta[2]
if not epoch then
  epoch = ARGV[3]
  last = '0-0'
end
if ARGV[8] ~= '' then
  -- The first event's id and epoch: the history (and its epoch) may have expired since.
  local prior = redis.call('GET', KEYS[3])
  if prior then
    local space = string.find(prior, ' ', 1, true)
    return { string.sub(prior, 1, space - 1), string.sub(prior, space + 1), -1 }
  end
end
local id
if ARGV[7] == '1' then
  local trim = '~'
  if ARGV[1] == '0' then trim = '=' end
  id = redis.call('XADD', KEYS[1], 'MAXLEN', trim, ARGV[1], '*', 'h', ARGV[5], 'd', ARGV[6], 'p', last)
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', id)
else
  local n = (tonumber(meta[3]) or 0) + 1
  id = last .. '-' .. n
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', last, 'n', n)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[3], id .. ' ' .. epoch, 'EX', ARGV[8])
end
local receivers = redis.call('${publish}', ARGV[4], id .. ' ' .. epoch .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[6])
return { id, epoch, receivers }
`;

/**
 * The same for a batch of events, in order, in one call (one round trip): the single-event
 * script's steps per event, except that each channel's meta hash is read once per call and
 * written, with the two EXPIREs, once at its end — a batch of many events on few channels costs
 * Redis far less per event than as many single calls. On Cluster a call holds one slot's events.
 *
 * KEYS: per event, history stream, meta hash, idempotency key
 * ARGV: max length, history TTL s, candidate epoch; then per event: channel, header JSON,
 *       data JSON, durable ('1'|'0'), idempotency TTL s ('' = none)
 * Returns, flat, per event: position, epoch, receivers — receivers is -1 for a duplicate.
 */
const publishBatchScript = (publish: 'PUBLISH' | 'SPUBLISH'): string => `
local maxLen = ARGV[1]
local trim = '~'
if maxLen == '0' then trim = '=' end
local metas = {}
local order = {}
local out = {}
for i = 0, #KEYS / ${KEYS_PER_EVENT} - 1 do
  local k = i * ${KEYS_PER_EVENT}
  local a = 3 + i * ${ARGS_PER_EVENT}
  local m = metas[KEYS[k + 2]]
  if not m then
    local f = redis.call('HMGET', KEYS[k + 2], 'epoch', 'last', 'n')
    m = { hist = KEYS[k + 1], meta = KEYS[k + 2], epoch = f[1], last = f[2], n = tonumber(f[3]) or 0 }
    if not m.epoch then
      m.epoch = ARGV[3]
      m.last = '0-0'
    end
    metas[m.meta] = m
    order[#order + 1] = m
  end
  local prior = false
  if ARGV[a + 5] ~= '' then
    prior = redis.call('GET', KEYS[k + 3])
  end
  if prior then
    local space = string.find(prior, ' ', 1, true)
    out[#out + 1] = string.sub(prior, 1, space - 1)
    out[#out + 1] = string.sub(prior, space + 1)
    out[#out + 1] = -1
  else
    local id
    if ARGV[a + 4] == '1' then
      id = redis.call('XADD', m.hist, 'MAXLEN', trim, maxLen, '*', 'h', ARGV[a + 2], 'd', ARGV[a + 3], 'p', m.last)
      m.last = id
    else
      m.n = m.n + 1
      id = m.last .. '-' .. m.n
    end
    m.dirty = true
    if ARGV[a + 5] ~= '' then
      redis.call('SET', KEYS[k + 3], id .. ' ' .. m.epoch, 'EX', ARGV[a + 5])
    end
    out[#out + 1] = id
    out[#out + 1] = m.epoch
    out[#out + 1] = redis.call('${publish}', ARGV[a + 1], id .. ' ' .. m.epoch .. '\\n' .. ARGV[a + 2] .. '\\n' .. ARGV[a + 3])
  end
end
for _, m in ipairs(order) do
  if m.dirty then
    redis.call('HSET', m.meta, 'epoch', m.epoch, 'last', m.last, 'n', m.n)
    redis.call('EXPIRE', m.hist, ARGV[2])
    redis.call('EXPIRE', m.meta, ARGV[2])
  end
end
return out
`;

export const PUBLISH_SCRIPT = publishScript('PUBLISH');
export const SHARDED_PUBLISH_SCRIPT = publishScript('SPUBLISH');
export const PUBLISH_BATCH_SCRIPT = publishBatchScript('PUBLISH');
export const SHARDED_PUBLISH_BATCH_SCRIPT = publishBatchScript('SPUBLISH');

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
