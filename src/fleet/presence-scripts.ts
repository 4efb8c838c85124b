import type { Cluster, Redis } from 'ioredis';

/**
 * The presence scripts. Each touches one key, a channel's presence hash (instance → streams it
 * holds there), so each runs unchanged on Redis Cluster, routed to that key's slot. Every
 * instance writes only its own field; fields of instances known dead (ARGV after the fixed ones)
 * are deleted on the way, so a dead replica's streams stop counting against the user's cap.
 */

/**
 * The fleet-wide per-user cap, atomically: count every field (a replica that died but is not yet
 * known dead still counts: the cap errs on the safe side for at most one presence TTL), and take a
 * slot for this instance only below the limit.
 *
 * KEYS: presence hash. ARGV: limit, instance, key TTL ms, dead instances…
 * Returns the user's streams after the reserve, or -1 when the limit was reached (nothing written).
 */
const RESERVE = `
for i = 4, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
local total = 0
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(n) end
if total >= tonumber(ARGV[1]) then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return total + 1
`;

/** KEYS: presence hash. ARGV: instance. Gives back one slot; a field at zero is removed. */
const RELEASE = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`;

/**
 * Writes this instance's count as it is (0 removes the field): the topic flush, and the repair of
 * a user's count after a failed write or a Redis that came back empty.
 * KEYS: presence hash. ARGV: instance, count, key TTL ms, dead instances…
 */
const SET = `
for i = 4, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) else redis.call('HDEL', KEYS[1], ARGV[1]) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`;

export interface PresenceCommands {
  sbPresenceReserve(key: string, limit: number, instance: string, keyTtlMs: number, ...dead: string[]): Promise<number>;
  sbPresenceRelease(key: string, instance: string): Promise<number>;
  sbPresenceSet(key: string, instance: string, count: number, keyTtlMs: number, ...dead: string[]): Promise<number>;
}

/** Adds the presence scripts to the replica's command connection (idempotent: defineCommand replaces). */
export function definePresenceScripts<C extends Redis | Cluster>(connection: C): C & PresenceCommands {
  connection.defineCommand('sbPresenceReserve', { numberOfKeys: 1, lua: RESERVE });
  connection.defineCommand('sbPresenceRelease', { numberOfKeys: 1, lua: RELEASE });
  connection.defineCommand('sbPresenceSet', { numberOfKeys: 1, lua: SET });
  return connection as C & PresenceCommands;
}
