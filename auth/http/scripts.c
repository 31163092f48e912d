/*
 * auth/http/scripts.c — the Lua scripts of the identity service: every state change of a sign-in,
 * session, code or refresh token is one of these (atomic, one round trip, one cluster slot: the
 * keys they touch are laid out in internal.h), plus the read-only refresh-token lookup of
 * /oauth2/introspect. auth_scripts() hands them out, hashed once.
 *
 * Called by authorize.c, token.c, introspect.c, session.c and oauth.c (revocations). It never talks
 * to Redis itself; a script's text is its contract with records already in Redis, so it changes
 * only together with the key layout.
 */
#include <pthread.h>
#include "auth/http/internal.h"

static const char lua_login_lookup[] = "local f = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
                                       "local ttl = redis.call('TTL', KEYS[1])\n"
                                       "local sub = redis.call('GET', KEYS[2])\n"
                                       "local pw = false\n"
                                       "if sub then pw = redis.call('HGET', ARGV[1] .. sub, 'pw') end\n"
                                       "return {f, ttl, sub or '', pw or ''}\n";

static const char lua_login_fail[] = "local n = redis.call('INCR', KEYS[1])\n"
                                     "if n == 1 or n == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
                                     "return n\n";

static const char lua_session_create[] =
    "redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'ck', ARGV[2], 'acr', ARGV[3], 'at', ARGV[4], "
    "'exp', tonumber(ARGV[4]) + tonumber(ARGV[5]))\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
    "redis.call('SADD', KEYS[2], ARGV[6])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[5])\n"
    "redis.call('DEL', KEYS[3])\n"
    "return 1\n";

static const char lua_code_create[] =
    "redis.call('HSET', KEYS[1], 'cid', ARGV[1], 'ru', ARGV[2], 'cc', ARGV[3], 'sub', ARGV[4], 'sid', ARGV[5], 'scope', "
    "ARGV[6], 'acr', ARGV[7], 'used', '0', 'exp', ARGV[9], 'nonce', ARGV[10])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[8])\n"
    "return 1\n";

#define LUA_HASH                                                                                                                   \
    "local v = redis.call('HGETALL', KEYS[1])\n if #v == 0 then return {'invalid'} end\n local h = {}\n for i = 1, #v, 2 do "      \
    "h[v[i]] = v[i + 1] end\n"
/* Expiry: every code, refresh token and session carries 'exp' (unix seconds on the issuing gateway's
 * clock) beside its Redis TTL, and the scripts compare it with the calling gateway's NOW: whichever
 * comes first ends it, so the limits of SPEC §6 hold on the gateway's clock too (and can be tested by
 * moving that clock). Records without 'exp' (made by an older version) live by their TTL alone. */
#define LUA_EXPIRED                                                                                                                \
    "local function expired(e, now)\n"                                                                                             \
    "  return e ~= nil and e ~= false and tonumber(e) ~= nil and tonumber(e) <= now\n"                                             \
    "end\n"
#define LUA_SESS_LIVE                                                                                                              \
    "local function sess_live(k, now)\n"                                                                                           \
    "  local e = redis.call('HGET', k, 'exp')\n"                                                                                   \
    "  if not e then return redis.call('EXISTS', k) == 1 end\n"                                                                    \
    "  return not expired(e, now)\n"                                                                                               \
    "end\n"

/* Back-channel logout (backchannel.c): a session's hash holds 'c:<client_id>' for every client with a
 * backchannel_logout_uri that was issued tokens in it. Ending the session (every script below that
 * deletes one calls sess_end) queues one job per such client: the hash bcl:<sid> <cid> (sub, n
 * attempts so far, t0 = when the session ended, ms) and its due time (ms) in the sorted set bclq.
 * A job already queued is not queued again: one delivery per session and client. */
#define LUA_SESS_END                                                                                                               \
    "local function sess_end(rk, sid, now, revexp, channel)\n"                                                                     \
    "  local f = redis.call('HGETALL', rk .. 'sess:' .. sid)\n"                                                                    \
    "  local sub = false\n"                                                                                                        \
    "  for i = 1, #f, 2 do if f[i] == 'sub' then sub = f[i + 1] end end\n"                                                         \
    "  for i = 1, #f, 2 do\n"                                                                                                      \
    "    if sub and string.sub(f[i], 1, 2) == 'c:' then\n"                                                                         \
    "      local j = sid .. ' ' .. string.sub(f[i], 3)\n"                                                                          \
    "      if redis.call('EXISTS', rk .. 'bcl:' .. j) == 0 then\n"                                                                 \
    "        redis.call('HSET', rk .. 'bcl:' .. j, 'sub', sub, 'n', 0, 't0', now * 1000)\n"                                        \
    "        redis.call('EXPIRE', rk .. 'bcl:' .. j, " AUTH_BCL_JOB_TTL_S ")\n"                                                    \
    "        redis.call('ZADD', rk .. 'bclq', now * 1000, j)\n"                                                                    \
    "      end\n"                                                                                                                  \
    "    end\n"                                                                                                                    \
    "  end\n"                                                                                                                      \
    "  redis.call('DEL', rk .. 'sess:' .. sid)\n"                                                                                  \
    "  if sub then redis.call('SREM', rk .. 'usess:' .. sub, sid) end\n"                                                           \
    "  redis.call('ZADD', rk .. 'revocations', revexp, 'sid:' .. sid)\n"                                                           \
    "  redis.call('PUBLISH', channel, 'sid:' .. sid .. ' ' .. revexp)\n"                                                           \
    "  return sub\n"                                                                                                               \
    "end\n"

/* the resident's masked name when SCOPE holds profile (the ID token's `name`, SPEC §6.2), else '' */
#define LUA_MASKED_NAME                                                                                                            \
    "local function masked_name(rk, sub, scope)\n"                                                                                 \
    "  for w in string.gmatch(scope, '%S+') do\n"                                                                                  \
    "    if w == 'profile' then return redis.call('HGET', rk .. 'user:' .. sub, 'name_masked') or '' end\n"                        \
    "  end\n"                                                                                                                      \
    "  return ''\n"                                                                                                                \
    "end\n"

static const char lua_code_redeem[] = LUA_EXPIRED LUA_SESS_LIVE LUA_SESS_END LUA_MASKED_NAME LUA_HASH
    "local now = tonumber(ARGV[10])\n"
    "if h['used'] == '1' then\n" /* a replayed code: the session it was issued in ends */
    "  if h['sid'] and h['sid'] ~= '' then sess_end(ARGV[7], h['sid'], now, ARGV[11], ARGV[12]) end\n"
    "  return {'used', h['fam'] or '', h['jti'] or '', h['sid'] or ''}\n"
    "end\n"
    "if expired(h['exp'], now) then return {'invalid'} end\n"
    "if h['cid'] ~= ARGV[1] or h['ru'] ~= ARGV[2] then return {'invalid'} end\n"
    "if h['cc'] ~= ARGV[3] then return {'pkce'} end\n"
    "if not sess_live(ARGV[7] .. 'sess:' .. h['sid'], now) then return {'invalid'} end\n"
    "redis.call('HSET', KEYS[1], 'used', '1', 'fam', ARGV[4], 'jti', ARGV[5])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[8])\n"
    "if ARGV[9] == '1' then\n"
    "  redis.call('HSET', KEYS[2], 'fam', ARGV[4], 'sub', h['sub'], 'sid', h['sid'], 'cid', h['cid'], 'scope', "
    "h['scope'], 'acr', h['acr'], 'used', '0', 'exp', now + tonumber(ARGV[6]))\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[6])\n"
    "end\n"
    "if ARGV[13] == '1' then redis.call('HSET', ARGV[7] .. 'sess:' .. h['sid'], 'c:' .. h['cid'], '1') end\n"
    "return {'ok', h['sub'], h['sid'], h['scope'], h['acr'], h['nonce'] or '', "
    "redis.call('HGET', ARGV[7] .. 'sess:' .. h['sid'], 'at') or '', masked_name(ARGV[7], h['sub'], h['scope'])}\n";

static const char lua_rt_rotate[] = LUA_EXPIRED LUA_SESS_LIVE LUA_SESS_END LUA_MASKED_NAME LUA_HASH
    "local now = tonumber(ARGV[9])\n"
    "if h['cid'] ~= ARGV[1] or expired(h['exp'], now) then return {'invalid'} end\n"
    "if h['used'] == '1' then\n"
    "  redis.call('SET', ARGV[2] .. 'famrev:' .. h['fam'], '1', 'EX', ARGV[3])\n"
    "  if h['sid'] ~= '' then sess_end(ARGV[2], h['sid'], now, ARGV[6], ARGV[7]) end\n"
    "  return {'reused', h['sid']}\n"
    "end\n"
    "if redis.call('EXISTS', ARGV[2] .. 'famrev:' .. h['fam']) == 1 then return {'invalid'} end\n"
    "if not sess_live(ARGV[2] .. 'sess:' .. h['sid'], now) then return {'invalid'} end\n"
    "local scope = h['scope']\n"
    "if ARGV[8] ~= '' then\n"
    "  local have = {}\n"
    "  for w in string.gmatch(h['scope'], '%S+') do have[w] = true end\n"
    "  for w in string.gmatch(ARGV[8], '%S+') do if not have[w] then return {'scope'} end end\n"
    "  scope = ARGV[8]\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'used', '1')\n"
    "redis.call('HSET', KEYS[2], 'fam', h['fam'], 'sub', h['sub'], 'sid', h['sid'], 'cid', h['cid'], 'scope', h['scope'], "
    "'acr', h['acr'], 'used', '0', 'exp', now + tonumber(ARGV[4]))\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "if ARGV[10] == '1' then redis.call('HSET', ARGV[2] .. 'sess:' .. h['sid'], 'c:' .. h['cid'], '1') end\n"
    "return {'ok', h['sub'], h['sid'], scope, h['acr'], '', redis.call('HGET', ARGV[2] .. 'sess:' .. h['sid'], 'at') or '', "
    "masked_name(ARGV[2], h['sub'], scope)}\n";

static const char lua_rt_revoke[] = "local f = redis.call('HMGET', KEYS[1], 'cid', 'fam')\n"
                                    "if not f[1] then return 0 end\n"
                                    "if f[1] ~= ARGV[1] then return -1 end\n"
                                    "redis.call('SET', ARGV[2] .. 'famrev:' .. f[2], '1', 'EX', ARGV[3])\n"
                                    "redis.call('DEL', KEYS[1])\n"
                                    "return 1\n";

static const char lua_revoke[] = "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])\n"
                                 "for i = 3, #ARGV, 2 do\n"
                                 "  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])\n"
                                 "  redis.call('PUBLISH', ARGV[2], ARGV[i] .. ' ' .. ARGV[i + 1])\n"
                                 "end\n"
                                 "return 1\n";

static const char lua_logout[] = LUA_SESS_END "return sess_end(ARGV[1], ARGV[2], tonumber(ARGV[5]), ARGV[3], ARGV[4]) or ''\n";

static const char lua_logout_all[] = LUA_SESS_END "local sids = redis.call('SMEMBERS', KEYS[1])\n"
                                                  "if ARGV[4] ~= '' then table.insert(sids, ARGV[4]) end\n"
                                                  "for _, sid in ipairs(sids) do sess_end(ARGV[1], sid, tonumber(ARGV[5]), ARGV[2], ARGV[3]) end\n"
                                                  "redis.call('DEL', KEYS[1])\n"
                                                  "return sids\n";

/* the back-channel queue (KEYS[1] bclq): up to ARGV[4] jobs due at ARGV[2] (ms), each leased to the
 * caller until ARGV[2] + ARGV[3] (a node that dies mid-delivery leaves it to another after that) and
 * its attempt counted; {job, sub, n, t0, ...}. Jobs whose record expired leave the queue. */
static const char lua_bcl_claim[] = "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))\n"
                                    "local out = {}\n"
                                    "for _, j in ipairs(due) do\n"
                                    "  local k = ARGV[1] .. 'bcl:' .. j\n"
                                    "  local v = redis.call('HMGET', k, 'sub', 't0')\n"
                                    "  if not v[1] then redis.call('ZREM', KEYS[1], j) else\n"
                                    "    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), j)\n"
                                    "    local n = redis.call('HINCRBY', k, 'n', 1)\n"
                                    "    out[#out + 1] = j; out[#out + 1] = v[1]; out[#out + 1] = tostring(n); out[#out + 1] = v[2]\n"
                                    "  end\n"
                                    "end\n"
                                    "return out\n";

/* an attempt's outcome for job ARGV[2]: ARGV[3] "" done (it leaves the queue), else due again then (ms) */
static const char lua_bcl_report[] = "if ARGV[3] == '' then\n"
                                     "  redis.call('ZREM', KEYS[1], ARGV[2])\n"
                                     "  redis.call('DEL', ARGV[1] .. 'bcl:' .. ARGV[2])\n"
                                     "elseif redis.call('EXISTS', ARGV[1] .. 'bcl:' .. ARGV[2]) == 1 then\n"
                                     "  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])\n"
                                     "end\n"
                                     "return 1\n";

/* ---- the device grant (device.c, token.c; SPEC §6.1) ---- */

/* a new device authorization: KEYS dev:<h>, uc:<user code>, the asking address's counter; ARGV cid, scope,
 * user code, ttl, exp, interval, h, the address's limit a minute, 1 on a retry (already counted). 1; 0 when
 * the user code is taken (the caller draws another); -ms when the address asked too often (a minute's
 * fixed window: each pending code is Redis memory an unauthenticated caller could otherwise pile up) */
static const char lua_device_create[] =
    "if ARGV[9] ~= '1' then\n"
    "  local n = redis.call('INCR', KEYS[3])\n"
    "  if n == 1 then redis.call('PEXPIRE', KEYS[3], 60000) end\n"
    "  if n > tonumber(ARGV[8]) then return -math.max(redis.call('PTTL', KEYS[3]), 1) end\n"
    "end\n"
    "if not redis.call('SET', KEYS[2], ARGV[7], 'NX', 'EX', ARGV[4]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'cid', ARGV[1], 'scope', ARGV[2], 'uc', ARGV[3], 'st', 'pending', 'exp', ARGV[5], 'iv', ARGV[6], "
    "'last', '0')\n"
    "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]) + 60)\n" /* a little longer than its life: expired_token, not invalid */
    "return 1\n";

/* Guessing limits of user-code lookups: counters per address and per resident (GK1, GK2) over a fixed
 * window; a lookup that finds nothing counts. */
#define LUA_GUESS                                                                                                                  \
    "local function guess_limited(k1, k2, limit)\n"                                                                                \
    "  local t = false\n"                                                                                                          \
    "  for _, k in ipairs({k1, k2}) do\n"                                                                                          \
    "    if k ~= '' and tonumber(redis.call('GET', k) or '0') >= limit then\n"                                                     \
    "      local ttl = redis.call('PTTL', k)\n"                                                                                    \
    "      if not t or ttl > t then t = ttl end\n"                                                                                 \
    "    end\n"                                                                                                                    \
    "  end\n"                                                                                                                      \
    "  return t\n"                                                                                                                 \
    "end\n"                                                                                                                        \
    "local function guess_missed(k1, k2, window)\n"                                                                                \
    "  for _, k in ipairs({k1, k2}) do\n"                                                                                          \
    "    if k ~= '' and redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, window) end\n"                                     \
    "  end\n"                                                                                                                      \
    "end\n"

/* A resident's lookup of a user code (KEYS uc:<code>): ARGV rk, decision ('' for a look, approve or deny),
 * sub, now, GK1, GK2, limit, window (ms). {'limited', ms} | {'unknown'} | {'decided'} | {'ok', cid, scope, exp} */
static const char lua_device_lookup[] = LUA_EXPIRED LUA_GUESS
    "local now = tonumber(ARGV[4])\n"
    "local w = guess_limited(ARGV[5], ARGV[6], tonumber(ARGV[7]))\n"
    "if w then return {'limited', tostring(w)} end\n"
    "local d = redis.call('GET', KEYS[1])\n"
    "local h = d and redis.call('HMGET', ARGV[1] .. 'dev:' .. d, 'st', 'exp', 'cid', 'scope') or {}\n"
    "if not h[1] or expired(h[2], now) or h[1] == 'denied' then\n" /* unknown, expired and finished look alike */
    "  guess_missed(ARGV[5], ARGV[6], ARGV[8])\n"
    "  return {'unknown'}\n"
    "end\n"
    "if h[1] ~= 'pending' then return {'decided'} end\n"
    "if ARGV[2] == 'approve' then\n"
    "  redis.call('HSET', ARGV[1] .. 'dev:' .. d, 'st', 'approved', 'sub', ARGV[3], 'at', ARGV[4])\n"
    "elseif ARGV[2] == 'deny' then\n"
    "  redis.call('HSET', ARGV[1] .. 'dev:' .. d, 'st', 'denied')\n"
    "  redis.call('DEL', KEYS[1])\n" /* a denied code is forgotten at once */
    "end\n"
    "return {'ok', h[3], h[4], h[2]}\n";

/* The device's poll (KEYS dev:<h>, rt:<new>): ARGV cid, now (ms), rk, rt ttl, with refresh, fam, new sid,
 * session ttl, back-channel, now (s). {'invalid'} | {'expired'} | {'denied'} | {'pending'} |
 * {'slow_down', interval} | {'ok', sub, sid, scope, acr, '', auth_time, name}: approved, exchanged once, the
 * resident's new session made */
static const char lua_device_poll[] = LUA_EXPIRED LUA_MASKED_NAME LUA_HASH
    "local now = tonumber(ARGV[10])\n"
    "if h['cid'] ~= ARGV[1] then return {'invalid'} end\n"
    "if expired(h['exp'], now) then\n"
    "  redis.call('DEL', KEYS[1], ARGV[3] .. 'uc:' .. h['uc'])\n"
    "  return {'expired'}\n"
    "end\n"
    "if h['st'] == 'denied' then redis.call('DEL', KEYS[1]) return {'denied'} end\n"
    "local nowms = tonumber(ARGV[2])\n"
    "if h['st'] == 'pending' then\n"
    "  local iv = tonumber(h['iv'])\n"
    "  if nowms - tonumber(h['last']) < iv * 1000 then\n"
    "    iv = iv + 5\n"
    "    redis.call('HSET', KEYS[1], 'iv', iv, 'last', nowms)\n"
    "    return {'slow_down', tostring(iv)}\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], 'last', nowms)\n"
    "  return {'pending'}\n"
    "end\n"
    "redis.call('DEL', KEYS[1], ARGV[3] .. 'uc:' .. h['uc'])\n"
    "local sid = ARGV[7]\n"
    "local sk = ARGV[3] .. 'sess:' .. sid\n"
    "redis.call('HSET', sk, 'sub', h['sub'], 'acr', 'cross-device', 'at', h['at'], 'exp', now + tonumber(ARGV[8]))\n"
    "if ARGV[9] == '1' then redis.call('HSET', sk, 'c:' .. h['cid'], '1') end\n"
    "redis.call('EXPIRE', sk, ARGV[8])\n"
    "local u = ARGV[3] .. 'usess:' .. h['sub']\n"
    "redis.call('SADD', u, sid)\n"
    "if redis.call('TTL', u) < tonumber(ARGV[8]) then redis.call('EXPIRE', u, ARGV[8]) end\n" /* never a set without a TTL */
    "if ARGV[5] == '1' then\n"
    "  redis.call('HSET', KEYS[2], 'fam', ARGV[6], 'sub', h['sub'], 'sid', sid, 'cid', h['cid'], 'scope', h['scope'], "
    "'acr', 'cross-device', 'used', '0', 'exp', now + tonumber(ARGV[4]))\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "end\n"
    "return {'ok', h['sub'], sid, h['scope'], 'cross-device', '', h['at'], masked_name(ARGV[3], h['sub'], h['scope'])}\n";

/* /oauth2/introspect of a refresh token (read only): its fields, whether it is dead, its TTL */
static const char lua_rt_info[] = LUA_EXPIRED LUA_SESS_LIVE
    "local now = tonumber(ARGV[2])\n"
    "local v = redis.call('HMGET', KEYS[1], 'cid', 'sub', 'sid', 'scope', 'used', 'fam')\n"
    "if not v[1] then return {} end\n"
    "local dead = redis.call('EXISTS', ARGV[1] .. 'famrev:' .. v[6])\n"
    "if not sess_live(ARGV[1] .. 'sess:' .. v[3], now) or expired(redis.call('HGET', KEYS[1], 'exp'), now) then dead = 1 end\n"
    "return {v, dead, redis.call('TTL', KEYS[1])}\n";

static auth_scripts_t scripts;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    gw_store_script_init(&scripts.login_lookup, lua_login_lookup);
    gw_store_script_init(&scripts.login_fail, lua_login_fail);
    gw_store_script_init(&scripts.session_create, lua_session_create);
    gw_store_script_init(&scripts.code_create, lua_code_create);
    gw_store_script_init(&scripts.code_redeem, lua_code_redeem);
    gw_store_script_init(&scripts.rt_rotate, lua_rt_rotate);
    gw_store_script_init(&scripts.rt_revoke, lua_rt_revoke);
    gw_store_script_init(&scripts.revoke, lua_revoke);
    gw_store_script_init(&scripts.logout, lua_logout);
    gw_store_script_init(&scripts.logout_all, lua_logout_all);
    gw_store_script_init(&scripts.rt_info, lua_rt_info);
    gw_store_script_init(&scripts.bcl_claim, lua_bcl_claim);
    gw_store_script_init(&scripts.bcl_report, lua_bcl_report);
    gw_store_script_init(&scripts.device_create, lua_device_create);
    gw_store_script_init(&scripts.device_lookup, lua_device_lookup);
    gw_store_script_init(&scripts.device_poll, lua_device_poll);
    gw_store_script_init(&scripts.consent_save, "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                                                "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
                                                "return 1\n");
}

const auth_scripts_t *auth_scripts(void)
{
    pthread_once(&scripts_once, scripts_init);
    return &scripts;
}
