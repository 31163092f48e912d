#!/usr/bin/env bash
# bench/run.sh — `make bench`: hegate beside reference servers, measured in ONE run with h2load.
#
#   back end      nginx (one worker, ~100-byte JSON, keep-alive) and Redis on core 1, shared by every
#                 row; nginx is also measured directly (h2c and TLS)
#   h2o           Debian's h2o 2.2.5 standalone as a reverse proxy (num-threads 1)   } all pinned to
#   haproxy       HAProxy 2.6 as a reverse proxy (nbthread 1), + ES256 jwt_verify    } core 0; started
#   hegate        build/hegate (threads: 1): public route, authenticated route, the   } together, loaded
#                 same rate-limited, public route rate-limited                        } one at a time
# h2load (one thread) runs on core 1. Each row: a warm-up run, then BENCH_N requests over BENCH_C
# connections x BENCH_M streams; req/s from h2load, p50/p99 from its per-request log (--log-file), the
# server's CPU time per request, and how busy both cores and the rest of the machine were meanwhile.
# Rows that are compared are measured one after the other (this machine is shared: its load moves).
# The table has ratios to h2o on the same protocol and PASS/MISS lines for the issues' targets; it is
# printed and written to build/bench/results.md. A benchmark is not a test: exit 0 whenever the back
# end could be started, whatever the numbers (rows that could not be measured say why).
#
#   make bench                                 full run (a few minutes)
#   BENCH_QUICK=1 ./bench/run.sh               smoke run (-n 20000)
#   BENCH_N=… BENCH_C=… BENCH_M=…              h2load parameters (defaults 200000, 50, 10)
#   BENCH_ROUNDS=3 ./bench/run.sh              every row three times: median row, median of the
#                                              within-round comparisons (use it on a busy machine)
#   BENCH_PAIRS=3                              the issue-4 pair (authenticated route, and it rate-limited) this many
#                                              times per round, alternating which goes first
#   BENCH_ONLY='h2o|hegate public' …           only the rows whose "NAME proto" matches
#   BENCH_PROFILE='hegate public route h2c' …  perf record (DWARF call graphs) on the server during that
#                                              row: build/bench/profile-*.txt (+ .callers.txt, .data)
#   BENCH_SYSCALLS=1 …                         syscalls, epoll_ctl, context switches per request
#   BENCH_REDIS_CPU=0 …                        the core redis-server is pinned to (default: the client core)
#   BENCH_REDIS_NICE=0 …                       its nice value (default -10: ahead of h2load and nginx)
#   BENCH_ATTACKS=0, BENCH_ATTACK_SECONDS=10,  the attacks of issue 17 against hegate, h2o and HAProxy, after
#   BENCH_ATTACK_ONLY=rapid-reset,…            the rounds (bench/attacks.sh)
#   HEGATE_BIN=path                            another hegate binary
#   HEGATE_BASE_BIN=path                       an earlier build measured beside it ("@base" rows: public,
#                                              authenticated, rate-limited; CPU per request compared)
# More knobs: bench/lib.sh.
#
# Layout: bench/lib.sh (machinery: bench_row, bench_target, bench_micro …), bench/tools.py
# (percentiles, CPU accounting, the markdown table), bench/conf/*.tmpl (server configurations; @NAME@
# = exported variables below), bench/auth_bench.c (token verifier micro-benchmark).
# To add a row: configure what it needs (a route in conf/hegate.yaml.tmpl, a fixture below), add
# `row SERVER NAME URL [h2load args...]` next to the row it is compared with, and a bench_target line.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_init
HEGATE=${HEGATE_BIN:-$BENCH_ROOT/build/hegate}
T=$BENCH_TMP; export T
bench_header

# ---- fixtures: TLS certificate (EC P-256, self-signed), token keys, one access token --------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" \
  -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2> "$T/openssl.log" \
  || { bench_log "cannot make the TLS certificate"; cat "$T/openssl.log" >&2; exit 1; }
cat "$T/cert.pem" "$T/key.pem" > "$T/combined.pem"
head -c $((16 << 20)) /dev/zero > "$T/big.bin"   # nginx's /bench/big: the slow reader's large answer

HEGATE_OK=1; HEGATE_WHY=""
if [ ! -x "$HEGATE" ]; then HEGATE_OK=0; HEGATE_WHY="$HEGATE is not built"
elif ! "$HEGATE" keys generate --dir "$T/keys" > "$T/keys.log" 2>&1; then
  HEGATE_OK=0; HEGATE_WHY="hegate keys generate failed: $(head -1 "$T/keys.log")"
fi
TOKEN_KEY=$(ls "$T"/keys/token/*.pem 2>/dev/null | head -1)
if [ -z "$TOKEN_KEY" ]; then   # no hegate: a key of our own, for HAProxy's jwt_verify row only
  mkdir -p "$T/keys-own"; TOKEN_KEY=$T/keys-own/0-bench.pem
  openssl ecparam -name prime256v1 -genkey -noout -out "$TOKEN_KEY" 2>/dev/null
fi
TOKEN_KID=$(basename "$TOKEN_KEY" .pem); TOKEN_KID=${TOKEN_KID#*-}   # keys are <unix-time>-<kid>.pem
openssl ec -in "$TOKEN_KEY" -pubout -out "$T/token-pub.pem" 2>/dev/null
TOKEN=$(bench_token "$TOKEN_KEY" "$TOKEN_KID") || { bench_log "cannot mint the bench token"; TOKEN=none; }
AUTH="authorization: Bearer $TOKEN"

# ---- per-issue row files: bench/rows_*.sh each define, for their own rows (all optional):
#   NAME_setup    before the servers start: fixtures, and exports for the templates (see below)
#   NAME_rows     inside the round loop (after the core rows)
#   NAME_targets  bench_target lines
#   NAME_micro    bench_micro lines (library micro-benchmarks)
# Template variables they may set (default empty): BENCH_HEGATE_CLIENTS (more `clients:` entries, each line
# "  - { ... }"), BENCH_HEGATE_TOPLEVEL (more top-level keys of hegate.yaml, e.g. qr:).
export BENCH_HEGATE_CLIENTS="" BENCH_HEGATE_TOPLEVEL=""
BENCH_ROWFILES=()
for f in bench/rows_*.sh; do
  [ -f "$f" ] || continue
  . "$f"; n=$(basename "$f" .sh); BENCH_ROWFILES+=("${n#rows_}")
done
rowfile_call() { local n fn; for n in "${BENCH_ROWFILES[@]}"; do fn=${n}_$1; if declare -F "$fn" > /dev/null; then "$fn"; fi; done; }
rowfile_call setup

# ---- the back end (and Redis for the rate-limited rows), on the client core --------------------------------
bench_port BACKEND_PORT BACKEND_H2C_PORT BACKEND_TLS_PORT REDIS_PORT
mkdir -p "$T/nginx"
bench_render bench/conf/nginx.conf.tmpl "$T/nginx.conf" || exit 1
bench_start nginx "$BENCH_CLIENT_CPU" nginx -c "$T/nginx.conf" -p "$T/nginx" -g 'daemon off;'
bench_wait_port nginx "$BACKEND_PORT" "$BACKEND_H2C_PORT" "$BACKEND_TLS_PORT" || { bench_log "no back end, no benchmark"; exit 1; }
NGINX_OK=1
REDIS_CPU=${BENCH_REDIS_CPU:-$BENCH_CLIENT_CPU}   # where the shared store runs (default: beside client and back end)
bench_start redis "$REDIS_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$T" --loglevel warning
if bench_wait_port redis "$REDIS_PORT"; then REDIS_OK=1; else REDIS_OK=0; fi
# Redis runs at a higher priority than its neighbours on the client core: in a deployment the store has
# a CPU of its own; here, at the default priority, a batch waits behind h2load and nginx for the core
# (measured: most round trips 1-8 ms instead of 0.1-2 ms), which times the load generator, not the
# gateway. Its CPU time is still spent on the client core. BENCH_REDIS_NICE=0: the default priority.
REDIS_NICE=${BENCH_REDIS_NICE:--10}
if [ "$REDIS_OK" = 1 ] && [ "$REDIS_NICE" != 0 ] && ! renice -n "$REDIS_NICE" -p "${BENCH_PID[redis]}" > /dev/null 2>&1; then
  bench_log "cannot renice redis-server to $REDIS_NICE (needs root or CAP_SYS_NICE): it runs at the default priority"
  REDIS_NICE=0
fi
[ "$REDIS_OK" = 1 ] && bench_note "Redis (the rate-limited rows' store) ran on core $REDIS_CPU at nice $REDIS_NICE."

# ---- the servers under test: all started now, pinned to the server core -----------------------------------
# An idle server costs nothing, so they all run for the whole bench and the rows can alternate between
# them: rows that are compared are measured seconds apart, not minutes (this machine is shared, and its
# load changes from minute to minute). Each start_* sets NAME_OK=1, or NAME_OK=0 and NAME_WHY="reason".
start_h2o() {
  bench_port H2O_PORT H2O_TLS_PORT
  if [ "$(id -u)" = 0 ]; then H2O_USER_LINE="user: root"; else H2O_USER_LINE="# (not root: no user directive)"; fi
  export H2O_USER_LINE
  bench_render bench/conf/h2o.conf.tmpl "$T/h2o.conf"
  bench_start h2o "$BENCH_SERVER_CPU" h2o -c "$T/h2o.conf"
  if bench_wait_port h2o "$H2O_PORT" "$H2O_TLS_PORT"; then H2O_OK=1; else H2O_OK=0; H2O_WHY="h2o did not start"; fi
}
start_haproxy() {
  bench_port HAPROXY_PORT HAPROXY_TLS_PORT HAPROXY_JWT_PORT
  bench_render bench/conf/haproxy.cfg.tmpl "$T/haproxy.cfg"
  bench_start haproxy "$BENCH_SERVER_CPU" haproxy -f "$T/haproxy.cfg" -db
  if bench_wait_port haproxy "$HAPROXY_PORT" "$HAPROXY_TLS_PORT" "$HAPROXY_JWT_PORT"; then HAPROXY_OK=1
  else HAPROXY_OK=0; HAPROXY_WHY="haproxy did not start"; fi
}
start_hegate() {
  bench_port HEGATE_PORT HEGATE_TLS_PORT HEGATE_ADMIN_PORT
  bench_render bench/conf/hegate.yaml.tmpl "$T/hegate.yaml"
  [ "$HEGATE_OK" = 1 ] || return 0   # HEGATE_WHY says why (not built, keys failed)
  if ! "$HEGATE" check -c "$T/hegate.yaml" > "$T/hegate-check.log" 2>&1; then
    HEGATE_OK=0; HEGATE_WHY="hegate check refused the bench configuration: $(grep -m1 . "$T/hegate-check.log")"
    cat "$T/hegate-check.log" >&2
    return 0
  fi
  bench_start hegate "$BENCH_SERVER_CPU" "$HEGATE" -c "$T/hegate.yaml"
  bench_wait_port hegate "$HEGATE_PORT" "$HEGATE_TLS_PORT" || { HEGATE_OK=0; HEGATE_WHY="hegate did not start (see above)"; }
}
# Another build of hegate beside this one (HEGATE_BASE_BIN=path, e.g. the commit a refactoring started
# from): the same configuration on ports of its own; the "... @base" rows alternate with this build's.
start_hegatebase() {
  HEGATEBASE_OK=0; HEGATEBASE_WHY="HEGATE_BASE_BIN is not set"
  [ -n "${HEGATE_BASE_BIN:-}" ] || return 0
  [ "$HEGATE_OK" = 1 ] || { HEGATEBASE_WHY="the build under test did not start"; return 0; }
  local p=$HEGATE_PORT tp=$HEGATE_TLS_PORT ap=$HEGATE_ADMIN_PORT
  bench_port HEGATE_PORT HEGATE_TLS_PORT HEGATE_ADMIN_PORT
  bench_render bench/conf/hegate.yaml.tmpl "$T/hegate-base.yaml"
  HEGATEBASE_PORT=$HEGATE_PORT; HEGATE_PORT=$p; HEGATE_TLS_PORT=$tp; HEGATE_ADMIN_PORT=$ap
  bench_start hegatebase "$BENCH_SERVER_CPU" "$HEGATE_BASE_BIN" -c "$T/hegate-base.yaml"
  if bench_wait_port hegatebase "$HEGATEBASE_PORT"; then HEGATEBASE_OK=1
    bench_note "The @base rows: $HEGATE_BASE_BIN ($("$HEGATE_BASE_BIN" --version 2>&1 | head -1)), same configuration."
  else HEGATEBASE_WHY="$HEGATE_BASE_BIN did not start"; fi
}
# The same build with its revocation subscription down while the store answers (issue 16: token checks
# then ask the store, once a second per token and thread): a Redis user that may not SUBSCRIBE.
start_hegatenosub() {
  HEGATENOSUB_OK=0; HEGATENOSUB_WHY="the build under test or Redis did not start"
  [ "$HEGATE_OK" = 1 ] && [ "$REDIS_OK" = 1 ] || return 0
  if ! redis-cli -p "$REDIS_PORT" ACL SETUSER nosub on '>bench-nosub' '~*' '&*' '+@all' -subscribe -psubscribe > /dev/null 2>&1; then
    HEGATENOSUB_WHY="redis-cli ACL SETUSER failed"; return 0
  fi
  local p=$HEGATE_PORT tp=$HEGATE_TLS_PORT ap=$HEGATE_ADMIN_PORT
  bench_port HEGATE_PORT HEGATE_TLS_PORT HEGATE_ADMIN_PORT
  bench_render bench/conf/hegate.yaml.tmpl "$T/hegate-nosub.yaml"
  sed -i "s|redis://127.0.0.1:$REDIS_PORT/0|redis://nosub:bench-nosub@127.0.0.1:$REDIS_PORT/0|" "$T/hegate-nosub.yaml"
  HEGATENOSUB_PORT=$HEGATE_PORT; HEGATE_PORT=$p; HEGATE_TLS_PORT=$tp; HEGATE_ADMIN_PORT=$ap
  bench_start hegatenosub "$BENCH_SERVER_CPU" "$HEGATE" -c "$T/hegate-nosub.yaml"
  if bench_wait_port hegatenosub "$HEGATENOSUB_PORT"; then HEGATENOSUB_OK=1
  else HEGATENOSUB_WHY="hegate (subscription down) did not start"; fi
}
start_h2o
start_haproxy
start_hegate
start_hegatebase
start_hegatenosub
# HOOK: another server under test (a reference, another gateway build): start_NAME here, rows below.

# row SERVER NAME URL [h2load args...]: bench_row measured on SERVER (its CPU per request, its profile),
# or a "not measured" line when SERVER did not start
row() {
  local server=$1 okv=${1^^}_OK whyv=${1^^}_WHY ok why proto; shift
  ok=${!okv:-0}; why=${!whyv:-not started}
  case $2 in https://*) proto=tls ;; *) proto=h2c ;; esac
  if [ "$ok" != 1 ]; then bench_skip "$1" "$proto" "$why"; return; fi
  bench_server_pid "$server"
  bench_row "$@"
}

H2O="h2o 2.2.5 reverse proxy"; HAP="HAProxy 2.6 reverse proxy"; PUB="hegate public route"
AUTHR="hegate authenticated route (cached token)"; LIM="hegate rate-limited route (per-ip + per-client)"
LIMPUB="hegate public route + 2 per-ip policies"; BENCH_PAIRS=${BENCH_PAIRS:-3}
AUTHNOSUB="hegate authenticated route, revocation subscription down"
HG=http://127.0.0.1:${HEGATE_PORT:-0}; HGS=https://127.0.0.1:${HEGATE_TLS_PORT:-0}
HGB=http://127.0.0.1:${HEGATEBASE_PORT:-0}
# this build's row NAME URL ARGS, and (with HEGATE_BASE_BIN) the base build's "NAME @base" beside it,
# which one goes first alternating by round
pair_row() {
  local name=$1 path=$2; shift 2
  if [ -z "${HEGATE_BASE_BIN:-}" ]; then row hegate "$name" "$HG$path" "$@"; return; fi
  if [ $(( ${BENCH_ROUND%%.*} % 2 )) = 1 ]; then
    row hegate "$name" "$HG$path" "$@"; row hegatebase "$name @base" "$HGB$path" "$@"
  else
    row hegatebase "$name @base" "$HGB$path" "$@"; row hegate "$name" "$HG$path" "$@"
  fi
}
for BENCH_ROUND in $(seq 1 "$BENCH_ROUNDS"); do
  [ "$BENCH_ROUNDS" -gt 1 ] && bench_log "round $BENCH_ROUND of $BENCH_ROUNDS"
  # h2c: back end direct, h2o, hegate's public route (no token, no limit: issue 3), then the hegate
  # routes compared with it (issues 4 and 5) and their references, HAProxy last
  # (the direct rows' server CPU is the back end's: nginx runs on the client core)
  row nginx   "back end (nginx) direct" "http://127.0.0.1:$BACKEND_H2C_PORT/bench"
  row h2o     "$H2O" "http://127.0.0.1:${H2O_PORT:-0}/bench"
  pair_row "$PUB" /bench
  # issue 5: the same token on every request (the verified-token cache path); its reference, HAProxy
  # verifying the token (ES256) on every request, comes below. h2load (nghttp2) never indexes
  # `authorization` in HPACK: every request carries the whole token, as many real clients do.
  pair_row "$AUTHR" /auth/bench -H "$AUTH"
  # issue 16: the same while the revocation subscription is down (the store asked instead)
  row hegatenosub "$AUTHNOSUB" "http://127.0.0.1:${HEGATENOSUB_PORT:-0}/auth/bench" -H "$AUTH"
  # issue 4: the same authenticated route with two policies, per-ip + per-client, over Redis (one
  # script call per batch of requests), right after it; then BENCH_PAIRS - 1 more pairs in alternating
  # order (limited first, then unlimited first …), each pair its own comparison ("round" R.P): the
  # targets are medians of ROUNDS x PAIRS comparisons. And, for reference, the public route with two
  # per-ip policies (what this row measured before tokens existed), beside the public route.
  if [ "$REDIS_OK" = 1 ]; then
    pair_row "$LIM" /limited/bench -H "$AUTH"
    for BENCH_PAIR in $(seq 2 "$BENCH_PAIRS"); do
      if [ $(( BENCH_PAIR % 2 )) = 0 ]; then
        BENCH_ROUND=$BENCH_ROUND.$BENCH_PAIR row hegate "$LIM" "$HG/limited/bench" -H "$AUTH"
        BENCH_ROUND=$BENCH_ROUND.$BENCH_PAIR row hegate "$AUTHR" "$HG/auth/bench" -H "$AUTH"
      else
        BENCH_ROUND=$BENCH_ROUND.$BENCH_PAIR row hegate "$AUTHR" "$HG/auth/bench" -H "$AUTH"
        BENCH_ROUND=$BENCH_ROUND.$BENCH_PAIR row hegate "$LIM" "$HG/limited/bench" -H "$AUTH"
      fi
    done
    row hegate "$LIMPUB" "$HG/iplimited/bench"
  else
    bench_skip "$LIM" h2c "redis-server did not start"; bench_skip "$LIMPUB" h2c "redis-server did not start"
  fi
  row haproxy "HAProxy 2.6 + ES256 jwt_verify" "http://127.0.0.1:${HAPROXY_JWT_PORT:-0}/bench" -H "$AUTH"
  row haproxy "$HAP" "http://127.0.0.1:${HAPROXY_PORT:-0}/bench"
  # TLS (h2 by ALPN)
  row nginx   "back end (nginx) direct" "https://127.0.0.1:$BACKEND_TLS_PORT/bench"
  row h2o     "$H2O" "https://127.0.0.1:${H2O_TLS_PORT:-0}/bench"
  row hegate  "$PUB" "$HGS/bench"
  row haproxy "$HAP" "https://127.0.0.1:${HAPROXY_TLS_PORT:-0}/bench"
  rowfile_call rows
  # HOOK: new rows go here, next to the row they are compared with; give each its bench_target below.
  # HOOK (issue 5): the cache-miss path needs a distinct token per request, which h2load cannot send
  #   (its headers are fixed for a run): measure it with a small client of our own as a bench_micro,
  #   or as several short h2load runs over a token list. The library rate is the bench_micro below.
  # HOOK (issue 5): token endpoint, client_credentials (a confidential client in hegate.yaml.tmpl):
  #   printf 'grant_type=client_credentials&scope=bench' > "$T/cc.form"
  #   row hegate "hegate token endpoint (client_credentials)" "$HG/oauth2/token" -d "$T/cc.form" \
  #     -H 'content-type: application/x-www-form-urlencoded' -H "authorization: Basic $(printf bench-cc:SECRET | base64)"
  #   Refresh tokens rotate on every use, so the refresh grant needs its own client (bench_micro).
  # HOOK (issue 6): QR endpoints (SPEC §7.3), e.g. with a resident token holding scope qr:
  #   printf '{"scene":"transit"}' > "$T/code-req.json"
  #   row hegate "hegate QR code issuance (text)" "$HG/qr/v1/codes" -d "$T/code-req.json" -H "$RESIDENT_AUTH" -H 'content-type: application/json'
  #   row hegate "hegate QR code issuance (PNG)"  "$HG/qr/v1/codes/transit.png" -H "$RESIDENT_AUTH"
  #   Online verification is single use per code (replay set): a distinct code per request, so a
  #   client of our own (bench_micro); offline verification through qr/ alone is a bench_micro too.
done
# issue 17: the attacks, once, against the servers still running (bench/attacks.sh)
. bench/attacks.sh
bench_attacks
bench_stop hegate; bench_stop haproxy; bench_stop h2o
[ "${HEGATENOSUB_OK:-0}" = 1 ] && bench_stop hegatenosub
[ "${HEGATEBASE_OK:-0}" = 1 ] && bench_stop hegatebase

# ---- targets (from the issues) and the quiet-machine references (NOTES.md) -------------------------------
for p in h2c tls; do
  bench_target "issue 3: hegate $p throughput vs h2o"  rps_ratio "$PUB" $p "$H2O" $p ">=" 0.95
  bench_target "issue 3: hegate $p p99 vs h2o"         p99_ratio "$PUB" $p "$H2O" $p "<=" 1.10
done
bench_target "issue 4: rate-limited route (per-ip + per-client) vs the same route unlimited, throughput" rps_ratio \
  "$LIM" h2c "$AUTHR" h2c ">=" 0.85
bench_target "issue 4: p99 added by the two policies" p99_added_ms "$LIM" h2c "$AUTHR" h2c "<=" 1
bench_target "issue 4 (for reference): public route + 2 per-ip policies vs public route, throughput" rps_ratio \
  "$LIMPUB" h2c "$PUB" h2c info -
bench_target "issue 4 (for reference): p99 added by 2 per-ip policies on the public route" p99_added_ms \
  "$LIMPUB" h2c "$PUB" h2c info -
if [ -n "${HEGATE_BASE_BIN:-}" ]; then
  for r in "$PUB" "$AUTHR" "$LIM"; do
    bench_target "issue 11: $r, server CPU per request vs the base build" cpu_ratio "$r" h2c "$r @base" h2c "<=" 1.03
    bench_target "issue 11: $r, throughput vs the base build" rps_ratio "$r" h2c "$r @base" h2c info -
  done
fi
bench_target "issue 16: authenticated route with the revocation subscription down vs subscribed, server CPU per request" \
  cpu_ratio "$AUTHNOSUB" h2c "$AUTHR" h2c info -
bench_target "issue 16: the same, throughput" rps_ratio "$AUTHNOSUB" h2c "$AUTHR" h2c info -
bench_target "issue 5: authenticated route (cached) vs public route" rps_ratio "$AUTHR" h2c "$PUB" h2c ">=" 0.90
bench_target "issue 5: authenticated route vs HAProxy ES256 jwt_verify (expect ≥ 5×)" rps_ratio \
  "$AUTHR" h2c "HAProxy 2.6 + ES256 jwt_verify" h2c ">=" 5
# HOOK (issue 5): bench_target "issue 5: token endpoint" rps "hegate token endpoint (client_credentials)" h2c - - ">=" 2000
# HOOK (issue 6): bench_target "issue 6: codes (text)" rps "hegate QR code issuance (text)" h2c - - ">=" 10000  (PNG 2000)
rowfile_call targets
bench_expect "back end (nginx) direct" h2c 156000
bench_expect "$H2O" h2c 108000
bench_expect "$H2O" tls 101000
bench_expect "$HAP" h2c 92000
bench_expect "$HAP" tls 87000

# ---- micro-benchmarks (libraries alone, pinned to the server core) ------------------------------------------
if [ -f build/libhegate.a ] && cc -std=gnu11 -O2 -I. -DH2O_USE_EPOLL=1 -o "$T/auth_bench" bench/auth_bench.c \
     build/libhegate.a -lh2o-evloop -lhiredis -ljwt -lqrencode -lyaml -ljansson -lssl -lcrypto -lz \
     -lpthread -lm 2> "$T/auth_bench.cc.log"; then
  bench_micro "Token verifier (issue 5 target: cache miss ≥ 12,000/s on one core; \`bench/auth_bench.c\`, OpenSSL's own ECDSA verify rate is the ceiling):" \
    "$T/auth_bench" 20000 1
else
  bench_note "Token verifier micro-benchmark: not built ($(head -1 "$T/auth_bench.cc.log" 2>/dev/null || echo 'no build/libhegate.a'))."
fi
rowfile_call micro

bench_report
exit 0
