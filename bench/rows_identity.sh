# bench/rows_identity.sh — issue 5, the token endpoint (SPEC §6): sourced by bench/run.sh, which calls the hooks below.
#
#   hegate token endpoint (client_credentials)        h2load, POST /oauth2/token, client_secret_basic, fixed body
#   hegate token endpoint (client_credentials)  h1    bench/token_load.c, the same requests over HTTP/1.1: checks
#                                                     the load client against h2load on a row both can measure
#   hegate token endpoint (refresh_token rotation) h1 bench/token_load.c: every request redeems a distinct, unused
#                                                     refresh token once (see below); scope "bench"
#   hegate token endpoint (refresh + ID token)    h1  the same with scope "openid bench": each answer also
#                                                     carries an ID token (one more ES256 signature; issue 12)
#   hegate token endpoint (code + ID token)       h1  bench/token_load.c -k: every request redeems a distinct,
#                                                     fresh authorization code (PKCE checked) for an access, a
#                                                     refresh and an ID token; scope "openid bench". Codes live
#                                                     60 s, so each round makes its own, BENCH_CODE_N of them
#                                                     (default 3000) plus a fifth for the warm-up
#   hegate device authorizations                  h2load, POST /oauth2/device_authorization as a public kiosk
#                                                     client: every answer a new device and user code (issue 13)
#   hegate device polls                           h2load, the device grant polled flat out on one pending code:
#                                                     every answer is 400 slow_down by design — the whole cost
#                                                     of a poll (client check, one script that reads and
#                                                     stamps the code), which is what a hall of kiosks costs
# A refresh token rotates on every use and a used one revokes its family and session, so h2load's fixed body
# cannot measure the refresh grant. bench/token_chains.py signs a resident in once through the HTML form and runs
# the code + PKCE flow BENCH_C × BENCH_M times in that session: one refresh chain per in-flight request. The load
# client redeems each chain's token and redeems the token the answer carries next (what an app does), so each
# request is a fresh token's first and only use; the live tokens are written back for the next run (warm-up,
# measured run, later rounds). HTTP/1.1 keep-alive, BENCH_C × BENCH_M connections with one request in flight each
# (as many in flight as h2load's -c × -m: h2o serves a pipelined HTTP/1.1 connection one request at a time).
# Knobs: BENCH_TOKEN_N (default BENCH_N), BENCH_TOKEN_CONNS (BENCH_C × BENCH_M), BENCH_CODE_N (3000).

ID_OK=0; ID_WHY="not set up"
ID_LOAD=$T/token_load
ID_CC_SECRET="bench-cc-secret-0123456789abcdef"
ID_CC="hegate token endpoint (client_credentials)"
ID_RT="hegate token endpoint (refresh_token rotation)"
ID_RT_OIDC="hegate token endpoint (refresh + ID token)"
ID_CODE_OIDC="hegate token endpoint (code + ID token)"
ID_DEV_AUTH="hegate device authorizations"
ID_DEV_POLL="hegate device polls"

identity_setup() {
  if [ "$HEGATE_OK" != 1 ]; then ID_WHY=$HEGATE_WHY; return 0; fi
  if ! cc -std=gnu11 -O2 -Wall -o "$ID_LOAD" bench/token_load.c 2> "$T/token_load.cc.log"; then
    ID_WHY="bench/token_load.c not built: $(head -1 "$T/token_load.cc.log")"; return 0
  fi
  local h
  h=$(printf %s "$ID_CC_SECRET" | "$HEGATE" client hash-secret 2> /dev/null) || { ID_WHY="hegate client hash-secret failed"; return 0; }
  # appended (rows_qr.sh adds clients too), one "  - { ... }" per line: a confidential client for
  # client_credentials, and a first-party public client (grants default: code + refresh) for the refresh row
  BENCH_HEGATE_CLIENTS+="${BENCH_HEGATE_CLIENTS:+$'\n'}  - { id: bench-cc, secret_hash: \"$h\", grants: [client_credentials], scopes: [bench] }"
  BENCH_HEGATE_CLIENTS+=$'\n'"  - { id: bench-app, redirect_uris: [\"https://bench.example/app\"], scopes: [openid, bench], first_party: true }"
  BENCH_HEGATE_CLIENTS+=$'\n'"  - { id: bench-kiosk, grants: [device_code], name: bench kiosk, scopes: [openid, bench] }"
  export BENCH_HEGATE_CLIENTS
  printf 'client_id=bench-kiosk&scope=bench' > "$T/devauth.form"
  printf 'grant_type=client_credentials&scope=bench' > "$T/cc.form"
  ID_BASIC="authorization: Basic $(printf %s "bench-cc:$ID_CC_SECRET" | base64 -w0)"
  ID_OK=1; ID_WHY=""
}

# Once the servers run: a resident (in Redis) and enough refresh chains (MODE codes: unused codes) of SCOPE in
# FILE (topped up each round). identity_fixtures WANT FILE SCOPE [codes]
identity_fixtures() {
  local want=$1 file=$2 scope=$3 mode=${4:-} have
  [ "$ID_OK" = 1 ] || return 0
  if [ "$REDIS_OK" != 1 ]; then ID_OK=0; ID_WHY="redis-server did not start"; return 0; fi
  if [ -z "${ID_PHONE:-}" ]; then
    ID_PHONE=13900000005
    if ! printf 'bench-identity-password\n' | "$HEGATE" user add -c "$T/hegate.yaml" --phone "$ID_PHONE" --name "测试" \
           --id-number 230204199001011235 --password-stdin > /dev/null 2> "$T/id-user.log"; then
      ID_OK=0; ID_WHY="hegate user add failed: $(head -1 "$T/id-user.log")"; return 0
    fi
  fi
  have=$(grep -c . "$file" 2> /dev/null); have=${have:-0}
  [ "$have" -ge "$want" ] && return 0
  if ! printf 'bench-identity-password\n' | $BENCH_PY bench/token_chains.py "$HG" bench-app https://bench.example/app \
         "$scope" "$ID_PHONE" $(( want - have )) "$T/chains.new" $mode 2> "$T/chains.log"; then
    ID_OK=0; ID_WHY="$(tail -1 "$T/chains.log")"; return 0
  fi
  cat "$T/chains.new" >> "$file"
}

# One line of the table from bench/token_load.c, measured as bench_row measures h2load (warm-up run, then the
# server's CPU per request and the cores' load over the measured run). identity_load_row NAME N CONNS DEPTH ARGS...
identity_load_row() {
  local name=$1 n=$2 c=$3 m=$4 proto=h1; shift 4
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ "$name $proto" =~ $BENCH_ONLY ]]; then return 0; fi
  if [ "$ID_OK" != 1 ]; then bench_skip "$name" "$proto" "$ID_WHY"; return 0; fi
  bench_server_pid hegate
  local id=$(( ++BENCH_SEQ )) d=$BENCH_TMP rc url=$HG/oauth2/token
  taskset -c "$BENCH_CLIENT_CPU" timeout --foreground -k 5 "$BENCH_TIMEOUT" \
    "$ID_LOAD" -u "$url" -n "$BENCH_WARM" -c "$c" -m "$m" "$@" > "$d/tl-warm.$id.out" 2>&1
  bench_check_interrupt $?
  bench_profile_start "$name" "$proto" "$id"
  $BENCH_TOOLS snap $$ "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU" "${BENCH_CURRENT_PID:-0}" > "$d/snap0.$id"
  /usr/bin/time -f '%U %S' -o "$d/time.$id" taskset -c "$BENCH_CLIENT_CPU" timeout --foreground -k 5 "$BENCH_TIMEOUT" \
    "$ID_LOAD" -u "$url" -n "$n" -c "$c" -m "$m" -l "$d/lat.$id" "$@" > "$d/tl.$id.out" 2>&1
  rc=$?
  bench_check_interrupt "$rc"
  $BENCH_TOOLS snap $$ "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU" "${BENCH_CURRENT_PID:-0}" > "$d/snap1.$id"
  bench_profile_stop "$name" "$proto"
  local rps ok cpu p50 p99 cnt srv cli other steal us note
  rps=$(awk '/^finished in/ {print $4}' "$d/tl.$id.out")
  ok=$(awk '/^status codes:/ {print $3}' "$d/tl.$id.out")
  cpu=$(awk '{print $1 + $2}' "$d/time.$id" 2>/dev/null | tail -1)
  read -r p50 p99 cnt < <($BENCH_TOOLS pct "$d/lat.$id")
  read -r srv cli other steal us < <($BENCH_TOOLS cpu "$d/snap0.$id" "$d/snap1.$id" "${cpu:-0}" "${cnt:-0}")
  note="HTTP/1.1, $c connections × $m in flight (bench/token_load.c)"
  [ -n "$BENCH_PROFILE_NOTE" ] && note="$note; $BENCH_PROFILE_NOTE"
  [ "$rc" = 124 ] && note="$note; timed out after ${BENCH_TIMEOUT}s"
  if [ -z "$rps" ]; then
    rps=nan; p50=nan; p99=nan; us=nan
    note="$note; token_load failed (exit $rc): $(grep -m1 . "$d/tl.$id.out" | cut -c1-80)"
  fi
  [ -n "$ok" ] && [ "$ok" != "$n" ] && note="$note; only $ok of $n answers were 2xx ($(awk '/^status codes:/ {print $7 " 4xx, " $9 " 5xx"}' "$d/tl.$id.out"))"
  [ "${steal:-0}" -ge 5 ] && note="$note; steal ${steal}%"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_ROUND" "$name" "$proto" "$rps" "$p50" "$p99" \
    "${ok:-0}" "$n" "$srv" "$cli" "$other" "$steal" "$us" "$note" >> "$d/rows.tsv"
  printf '  %-42s %-3s %10s req/s  p50 %6s ms  p99 %7s ms  2xx %s/%s  server %s us/req  core0 %s%% core1 %s%% other %s%%\n' \
    "$name" "$proto" "$rps" "$p50" "$p99" "${ok:-0}" "$n" "$us" "$srv" "$cli" "$other" >&2
  rm -f "$d/lat.$id"
}

identity_rows() {
  local n=${BENCH_TOKEN_N:-$BENCH_N} conns=${BENCH_TOKEN_CONNS:-$(( BENCH_C * BENCH_M ))}
  if [ "$ID_OK" != 1 ]; then
    bench_skip "$ID_CC" h2c "$ID_WHY"; bench_skip "$ID_CC" h1 "$ID_WHY"; bench_skip "$ID_RT" h1 "$ID_WHY"
    bench_skip "$ID_RT_OIDC" h1 "$ID_WHY"; bench_skip "$ID_CODE_OIDC" h1 "$ID_WHY"
    bench_skip "$ID_DEV_AUTH" h2c "$ID_WHY"; bench_skip "$ID_DEV_POLL" h2c "$ID_WHY"
    return 0
  fi
  # client_credentials: the KDF checks the secret once, then the per-thread cache of verified secrets answers
  row hegate "$ID_CC" "$HG/oauth2/token" -d "$T/cc.form" -H 'content-type: application/x-www-form-urlencoded' -H "$ID_BASIC"
  identity_load_row "$ID_CC" "$n" "$conns" 1 -b "$T/cc.form" -H "$ID_BASIC"
  local name file scope
  for name in "$ID_RT" "$ID_RT_OIDC"; do
    if [ "$name" = "$ID_RT" ]; then file=$T/chains.txt scope=bench; else file=$T/chains-oidc.txt scope="openid bench"; fi
    if [ -z "${BENCH_ONLY:-}" ] || [[ "$name h1" =~ $BENCH_ONLY ]]; then
      identity_fixtures "$conns" "$file" "$scope"
      [ "$ID_OK" = 1 ] || { bench_skip "$name" h1 "$ID_WHY"; return 0; }
    fi
    identity_load_row "$name" "$n" "$conns" 1 -r "$file" -i bench-app
  done
  # the code grant: fresh codes for this round (warm-up + measured run), each redeemed once
  local cn=${BENCH_CODE_N:-3000} cw
  cw=$(( cn / 5 ))
  if [ -z "${BENCH_ONLY:-}" ] || [[ "$ID_CODE_OIDC h1" =~ $BENCH_ONLY ]]; then
    rm -f "$T/codes.txt"
    identity_fixtures $(( cn + cw )) "$T/codes.txt" "openid bench" codes
    [ "$ID_OK" = 1 ] || { bench_skip "$ID_CODE_OIDC" h1 "$ID_WHY"; return 0; }
  fi
  BENCH_WARM=$cw identity_load_row "$ID_CODE_OIDC" "$cn" "$conns" 1 -k "$T/codes.txt"
  # the device grant: authorizations, then polls of one pending code
  local dc
  row hegate "$ID_DEV_AUTH" "$HG/oauth2/device_authorization" -d "$T/devauth.form" -H 'content-type: application/x-www-form-urlencoded'
  dc=$(curl -s --max-time 5 -d @"$T/devauth.form" "$HG/oauth2/device_authorization" | $BENCH_PY -c 'import json,sys; print(json.load(sys.stdin)["device_code"])' 2>/dev/null)
  if [ -z "$dc" ]; then bench_skip "$ID_DEV_POLL" h2c "no device code (device_authorization failed)"; return 0; fi
  printf 'grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Adevice_code&client_id=bench-kiosk&device_code=%s' "$dc" > "$T/devpoll.form"
  row hegate "$ID_DEV_POLL" "$HG/oauth2/token" -d "$T/devpoll.form" -H 'content-type: application/x-www-form-urlencoded'
}

identity_targets() {
  bench_target "issue 5: token endpoint, client_credentials, one core" rps "$ID_CC" h2c - - ">=" 2000
  bench_target "issue 5: token endpoint, refresh_token rotation (distinct tokens), one core" rps "$ID_RT" h1 - - ">=" 2000
  bench_target "issue 12: token endpoint, refresh with an ID token, one core" rps "$ID_RT_OIDC" h1 - - ">=" 10000
  bench_target "issue 12: token endpoint, code with an ID token, one core" rps "$ID_CODE_OIDC" h1 - - ">=" 10000
  bench_target "issue 13: device polls (slow_down answers: the full cost of a poll), one core" rps "$ID_DEV_POLL" h2c - - ">=" 20000
}
