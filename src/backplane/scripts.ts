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
/** ARGV per event in a publish call, after the call's own three (see PUBLISH_SCRIPT). */
export const ARGS_PER_EVENT = 5;

/**
 * Append + publish, atomically, for one event or a batch of them (in order): dedupe check, epoch
 * (created on first use), XADD with trimming, idempotency record, then PUBLISH (standalone,
 * Sentinel) or SPUBLISH (Cluster: a PUBLISH inside a script reaches no sharded subscriber there;
 * the channel shares the keys' slot, and a Cluster call holds one slot's events only).
 *
 * A live-only event (`durable` '0') is published, never appended: its position is the channel's
 * last durable position plus a counter (`<ms>-<seq>-<n>`), so it sorts after the event before it
 * and before the next durable one, and a resume from it reads history from that durable position.
 *
 * Each channel's meta hash is read once per call and written once at its end (a batch of many
 * events on one channel costs one HMGET and one HSET). The history and meta keys are given
 * 1.25 × the history TTL, renewed only once less than the TTL is left (the meta field `x` holds
 * the expiry last set, ms) and on a history's first append (XADD made the stream with no TTL):
 * an idle channel's history still lives at least HISTORY_TTL_SECONDS, and an active channel
 * pays two PEXPIREs once per quarter TTL instead of on every publish.
 *
 * KEYS: per event, history stream, meta hash (epoch, last, n, x), idempotency key (unused
 *       without one)
 * ARGV: max length, history TTL s, candidate epoch; then per event: channel, header JSON,
 *       data JSON, durable ('1'|'0'), idempotency TTL s ('' = no idempotency key)
 * Returns, flat, per event: position, epoch, receivers — receivers is -1 for a duplicate.
 */
const publishScript = (publish: 'PUBLISH' | 'SPUBLISH'): string => `
local maxLen = ARGV[1]
local ttlMs = tonumber(ARGV[2]) * 1000
local keepMs = ttlMs + math.floor(ttlMs / 4)
local trim = '~'
if maxLen == '0' then trim = '=' end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local metas = {}
local order = {}
local out = {}
for i = 0, #KEYS / ${KEYS_PER_EVENT} - 1 do
  local k = i * ${KEYS_PER_EVENT}
  local a = 3 + i * ${ARGS_PER_EVENT}
  local m = metas[KEYS[k + 2]]
  if not m then
    local f = redis.call('HMGET', KEYS[k + 2], 'epoch', 'last', 'n', 'x')
    m = { hist = KEYS[k + 1], meta = KEYS[k + 2], epoch = f[1], last = f[2] or '0-0', n = tonumber(f[3]) or 0, x = tonumber(f[4]) }
    if not m.epoch then
      m.epoch = ARGV[3]
      m.x = nil
    end
    metas[m.meta] = m
    order[#order + 1] = m
  end
  local prior = false
  if ARGV[a + 5] ~= '' then
    -- The first event's id and epoch: the history (and its epoch) may have expired since.
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
      if m.last == '0-0' then m.x = nil end
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
    local renew = m.x == nil or m.x - now < ttlMs
    if renew then m.x = now + keepMs end
    redis.call('HSET', m.meta, 'epoch', m.epoch, 'last', m.last, 'n', m.n, 'x', m.x)
    if renew then
      redis.call('PEXPIRE', m.hist, keepMs)
      redis.call('PEXPIRE', m.meta, keepMs)
    end
  end
end
return out
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
