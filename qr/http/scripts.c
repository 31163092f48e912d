/*
 * qr/http/scripts.c — the Lua scripts of the /qr/v1 endpoints: every state change or read of the city
 * code's keys (internal.h has their layout) is one script, one round trip, one cluster slot. Loaded once
 * by the family's init hook (at qr_http_register); the handlers send them with gw_task_eval. A script
 * must never change the name or the form of a key: Redis holds what earlier builds wrote (the deny
 * list's prelude below still reads its earlier form).
 */
#include "qr/http/internal.h"

/* KEYS: user, cred, serial counter. ARGV: min exp of a reusable credential, "new" to always make one,
 * the tail of the seal the caller has cached ("" for none).
 * → {"nouser"} | {"same", counter} | {"ok", cred, dev, counter} | {"new", serial, fare_class, concessions}
 *   | {"busy"}: another request (any node) is making this online credential right now — the first one
 *   claims the making with a "creating" field (the hash lives 2 s unless the credential is stored,
 *   which replaces the hash), so a burst of first requests makes one credential, not one each. */
static const char lua_code_next[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return {'nouser'} end\n"
                                    "if ARGV[2] ~= 'new' then\n"
                                    "  local c = redis.call('HMGET', KEYS[2], 'cred', 'dev', 'exp', 'ctr')\n"
                                    "  if c[1] and c[2] and tonumber(c[3]) and tonumber(c[3]) >= tonumber(ARGV[1]) and\n"
                                    "     tonumber(c[4] or '0') < 16777215 then\n"
                                    "    local n = tostring(redis.call('HINCRBY', KEYS[2], 'ctr', 1))\n"
                                    "    if ARGV[3] ~= '' and #c[2] >= #ARGV[3] and string.sub(c[2], -#ARGV[3]) == ARGV[3] then\n"
                                    "      return {'same', n}\n"
                                    "    end\n"
                                    "    return {'ok', c[1], c[2], n}\n"
                                    "  end\n"
                                    "  if redis.call('HSETNX', KEYS[2], 'creating', '1') == 0 then return {'busy'} end\n"
                                    "  redis.call('PEXPIRE', KEYS[2], 2000)\n"
                                    "end\n"
                                    "local s = redis.call('INCR', KEYS[3])\n"
                                    "local u = redis.call('HMGET', KEYS[1], 'fare_class', 'concessions')\n"
                                    "return {'new', tostring(s), u[1] or '', u[2] or ''}\n";

/* KEYS: cred (or the serial key again when offline), serial map, the resident's serials.
 * ARGV: cred, dev ("" offline), exp, sub, scene, map expiry, serial */
static const char lua_cred_store[] = "if ARGV[2] ~= '' then\n"
                                     "  redis.call('DEL', KEYS[1])\n"
                                     "  redis.call('HSET', KEYS[1], 'cred', ARGV[1], 'dev', ARGV[2], 'exp', ARGV[3], 'ctr', 1)\n"
                                     "  redis.call('EXPIREAT', KEYS[1], ARGV[3])\n"
                                     "end\n"
                                     "redis.call('HSET', KEYS[2], 'sub', ARGV[4], 'scene', ARGV[5], 'exp', ARGV[3])\n"
                                     "redis.call('EXPIREAT', KEYS[2], ARGV[6])\n"
                                     "redis.call('SADD', KEYS[3], ARGV[7])\n"
                                     "redis.call('EXPIREAT', KEYS[3], ARGV[6])\n"
                                     "return 1\n";

/* KEYS: deny (the sorted set; its earlier plain-set form, named without the final "z", is still consulted),
 * seen, serial map, payment token. ARGV: serial, result, check deny (1/0), seen ttl, time,
 * client, role, scene, scan id, scans prefix, user prefix, make payment token (1/0), cap, token ttl
 * → {result, sub, name_masked, name, id_number, card:transit, card:bus, card:metro, card:social, insurance_status} */
static const char lua_verify[] =
    "local r = ARGV[2]\n"
    "if ARGV[3] == '1' and (redis.call('ZSCORE', KEYS[1], ARGV[1]) or\n"
    "    redis.call('SISMEMBER', string.sub(KEYS[1], 1, -2), ARGV[1]) == 1) then r = 'revoked' end\n"
    "if r == 'valid' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then r = 'replayed' end\n"
    "local sub = redis.call('HGET', KEYS[3], 'sub')\n"
    "if not sub then return {r, ''} end\n"
    "local lk = ARGV[10] .. sub\n"
    "redis.call('LPUSH', lk, cjson.encode({at = tonumber(ARGV[5]), client = ARGV[6], role = ARGV[7], scene = ARGV[8],\n"
    "  scan_id = ARGV[9], result = r}))\n"
    "redis.call('LTRIM', lk, 0, tonumber(ARGV[13]) - 1)\n"
    "if r ~= 'valid' then return {r, sub} end\n"
    "if ARGV[12] == '1' then redis.call('SET', KEYS[4], sub, 'EX', ARGV[14]) end\n"
    "local u = redis.call('HMGET', ARGV[11] .. sub, 'name_masked', 'name', 'id_number', 'card:transit', 'card:bus',\n"
    "  'card:metro', 'card:social', 'insurance_status')\n"
    "return {r, sub, u[1] or '', u[2] or '', u[3] or '', u[4] or '', u[5] or '', u[6] or '', u[7] or '', u[8] or ''}\n";

/* Every script that touches the deny list starts with this: KEYS[1] the deny list (sorted set), ARGV[1]
 * now, ARGV[2] the credential ttl, ARGV[3] QR_DENY_KEEP. A deny list of the earlier form (a plain set
 * under the old name) is moved over first, each serial scored now + credential ttl (no credential
 * outlives that); then serials whose credentials expired more than QR_DENY_KEEP ago are dropped. */
#define LUA_DENY_PRELUDE                                                                                                           \
    "local old = string.sub(KEYS[1], 1, -2)\n"                                                                                     \
    "if redis.call('EXISTS', old) == 1 then\n"                                                                                     \
    "  for _, v in ipairs(redis.call('SMEMBERS', old)) do\n"                                                                       \
    "    redis.call('ZADD', KEYS[1], 'NX', tonumber(ARGV[1]) + tonumber(ARGV[2]), v)\n"                                            \
    "  end\n"                                                                                                                      \
    "  redis.call('DEL', old)\n"                                                                                                   \
    "end\n"                                                                                                                        \
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[3])))\n"

/* KEYS: deny, the resident's serials, then the resident's online credentials (one per scene). ARGV: now,
 * credential ttl, keep, serial map prefix. Each serial goes on the deny list scored by its credential's
 * expiry (a serial whose map is gone expired over a day ago: nothing to deny).
 * → the number of serials on the deny list for the resident */
static const char lua_revoke[] =
    LUA_DENY_PRELUDE "local n = 0\n"
                     "for _, v in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
                     "  local m = ARGV[4] .. v\n"
                     "  if redis.call('EXISTS', m) == 1 then\n"
                     "    local exp = tonumber(redis.call('HGET', m, 'exp') or '') or (tonumber(ARGV[1]) + tonumber(ARGV[2]))\n"
                     "    if exp >= tonumber(ARGV[1]) - tonumber(ARGV[3]) then\n"
                     "      redis.call('ZADD', KEYS[1], 'GT', exp, v)\n"
                     "      n = n + 1\n"
                     "    end\n"
                     "  end\n"
                     "end\n"
                     "for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end\n"
                     "return n\n";

/* KEYS: deny. ARGV: now, credential ttl, keep → the serials on the deny list */
static const char lua_deny_list[] = LUA_DENY_PRELUDE "return redis.call('ZRANGE', KEYS[1], 0, -1)\n";

/* KEYS: payment token. ARGV: user prefix → {sub, cards, card:bank, card:pay} or {} (once) */
static const char lua_redeem[] = "local sub = redis.call('GET', KEYS[1])\n"
                                 "if not sub then return {} end\n"
                                 "redis.call('DEL', KEYS[1])\n"
                                 "local u = redis.call('HMGET', ARGV[1] .. sub, 'cards')\n"
                                 "return {sub, u[1] or ''}\n";

static qr_scripts_t scripts;

void qr_http_scripts_init(void)
{
    gw_store_script_init(&scripts.code_next, lua_code_next);
    gw_store_script_init(&scripts.cred_store, lua_cred_store);
    gw_store_script_init(&scripts.verify, lua_verify);
    gw_store_script_init(&scripts.revoke, lua_revoke);
    gw_store_script_init(&scripts.deny_list, lua_deny_list);
    gw_store_script_init(&scripts.redeem, lua_redeem);
}

const qr_scripts_t *qr_http_scripts(void)
{
    return &scripts;
}
