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

static const char lua_code_redeem[] = LUA_EXPIRED LUA_SESS_LIVE LUA_HASH
    "local now = tonumber(ARGV[10])\n"
    "if h['used'] == '1' then return {'used', h['fam'] or '', h['jti'] or '', h['sid'] or ''} end\n"
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
    "return {'ok', h['sub'], h['sid'], h['scope'], h['acr'], h['nonce'] or '', "
    "redis.call('HGET', ARGV[7] .. 'sess:' .. h['sid'], 'at') or ''}\n";

static const char lua_rt_rotate[] = LUA_EXPIRED LUA_SESS_LIVE LUA_HASH
    "local now = tonumber(ARGV[9])\n"
    "if h['cid'] ~= ARGV[1] or expired(h['exp'], now) then return {'invalid'} end\n"
    "if h['used'] == '1' then\n"
    "  redis.call('SET', ARGV[2] .. 'famrev:' .. h['fam'], '1', 'EX', ARGV[3])\n"
    "  if h['sid'] ~= '' then\n"
    "    redis.call('DEL', ARGV[2] .. 'sess:' .. h['sid'])\n"
    "    redis.call('SREM', ARGV[2] .. 'usess:' .. h['sub'], h['sid'])\n"
    "    redis.call('ZADD', ARGV[2] .. 'revocations', ARGV[6], 'sid:' .. h['sid'])\n"
    "    redis.call('PUBLISH', ARGV[7], 'sid:' .. h['sid'] .. ' ' .. ARGV[6])\n"
    "  end\n"
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
    "return {'ok', h['sub'], h['sid'], scope, h['acr'], '', redis.call('HGET', ARGV[2] .. 'sess:' .. h['sid'], 'at') or ''}\n";

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

static const char lua_logout[] = "local sub = redis.call('HGET', KEYS[1], 'sub')\n"
                                 "redis.call('DEL', KEYS[1])\n"
                                 "if sub then redis.call('SREM', ARGV[1] .. 'usess:' .. sub, ARGV[2]) end\n"
                                 "redis.call('ZADD', ARGV[1] .. 'revocations', ARGV[3], 'sid:' .. ARGV[2])\n"
                                 "redis.call('PUBLISH', ARGV[4], 'sid:' .. ARGV[2] .. ' ' .. ARGV[3])\n"
                                 "return sub or ''\n";

static const char lua_logout_all[] = "local sids = redis.call('SMEMBERS', KEYS[1])\n"
                                     "if ARGV[4] ~= '' then table.insert(sids, ARGV[4]) end\n"
                                     "for _, sid in ipairs(sids) do\n"
                                     "  redis.call('DEL', ARGV[1] .. 'sess:' .. sid)\n"
                                     "  redis.call('ZADD', ARGV[1] .. 'revocations', ARGV[2], 'sid:' .. sid)\n"
                                     "  redis.call('PUBLISH', ARGV[3], 'sid:' .. sid .. ' ' .. ARGV[2])\n"
                                     "end\n"
                                     "redis.call('DEL', KEYS[1])\n"
                                     "return sids\n";

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
    gw_store_script_init(&scripts.consent_save, "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                                                "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
                                                "return 1\n");
}

const auth_scripts_t *auth_scripts(void)
{
    pthread_once(&scripts_once, scripts_init);
    return &scripts;
}
