# bench/rows_qr.sh — issue 6, the city code (SPEC §7): sourced by bench/run.sh, which calls the hooks below.
#
#   hegate QR code issuance (text)          h2load, POST /qr/v1/codes {"scene":"transit"} (a resident's token)
#   hegate QR code issuance (PNG)           h2load, GET /qr/v1/codes/transit.png (fewer requests: BENCH_N / 5)
#   hegate QR online verification (…)       bench/qr_verify_load.c: a distinct code per request (single use),
#                                           HTTP/1.1 pipelined on the cleartext port, client on the client core
#   QR offline verification (qr/ library)   bench/qr_bench.c on the server core: the library alone
# Fixtures: a resident (`hegate user add`, once Redis runs), a first-party client holding scope qr, a scanner
# client (role transit, scope qr.verify); their tokens are minted with PyJWT like run.sh's bench token.
# Knobs: BENCH_QR_VERIFY_N (default BENCH_N / 2), BENCH_QR_VERIFY_C (50), BENCH_QR_VERIFY_M (4).

QR_OK=0; QR_WHY="not set up"
QR_LIBS="-lh2o-evloop -lhiredis -ljwt -lqrencode -lyaml -ljansson -lssl -lcrypto -lz -lpthread -lm"
QR_LOAD=$T/qr_verify_load
QR_BENCH=$T/qr_bench

qr_setup() {
  if [ "$HEGATE_OK" != 1 ]; then QR_WHY=$HEGATE_WHY; return 0; fi
  if [ ! -f build/libhegate.a ] ||
     ! cc -std=gnu11 -O2 -I. -DH2O_USE_EPOLL=1 -o "$QR_LOAD" bench/qr_verify_load.c build/libhegate.a $QR_LIBS 2> "$T/qr_load.cc.log" ||
     ! cc -std=gnu11 -O2 -I. -DH2O_USE_EPOLL=1 -o "$QR_BENCH" bench/qr_bench.c build/libhegate.a $QR_LIBS 2> "$T/qr_bench.cc.log"; then
    QR_WHY="bench/qr_*.c not built: $(cat "$T"/qr_*.cc.log 2>/dev/null | head -1)"; return 0
  fi
  local h
  h=$(printf 'bench-qr-gate-secret-0123456789' | "$HEGATE" client hash-secret 2> /dev/null) || { QR_WHY="hegate client hash-secret failed"; return 0; }
  # appended (rows_identity.sh adds clients too), one "  - { ... }" per line
  BENCH_HEGATE_CLIENTS+="${BENCH_HEGATE_CLIENTS:+$'\n'}  - { id: bench-qr-app, redirect_uris: [\"https://bench.example/qr\"], scopes: [qr] }"
  BENCH_HEGATE_CLIENTS+=$'\n'"  - { id: bench-qr-gate, secret_hash: \"$h\", grants: [client_credentials], roles: [transit], scopes: [qr.verify] }"
  export BENCH_HEGATE_CLIENTS
  printf '{"scene":"transit"}' > "$T/qr-code-req.json"
  QR_OK=1; QR_WHY=""
}

# Once the servers run (the resident lives in Redis): the resident and both tokens.
qr_fixtures() {
  [ "$QR_OK" = 1 ] && [ -z "${QR_RESIDENT_AUTH:-}" ] || return 0
  if [ "$HEGATE_OK" != 1 ] || [ "$REDIS_OK" != 1 ]; then QR_OK=0; QR_WHY=${HEGATE_WHY:-redis-server did not start}; return 0; fi
  local sub
  sub=$(printf 'bench-qr-password\n' | "$HEGATE" user add -c "$T/hegate.yaml" --phone 13900000000 --name "测试" \
          --id-number 230204199001011234 --card bus:88880001 --password-stdin 2> "$T/qr-user.log") ||
    { QR_OK=0; QR_WHY="hegate user add failed: $(head -1 "$T/qr-user.log")"; return 0; }
  local toks
  toks=$($BENCH_PY - "$TOKEN_KEY" "$TOKEN_KID" "$sub" <<'PYEOF'
import sys, time, jwt
from cryptography.hazmat.primitives import serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
now = int(time.time())
def tok(sub, client, scope, jti):
    return jwt.encode({"iss": "https://bench.hegate.test", "sub": sub, "aud": "hegate", "client_id": client, "scope": scope,
                       "iat": now, "exp": now + 7200, "jti": jti, "sid": "bench-qr-" + jti},
                      key, algorithm="ES256", headers={"typ": "at+jwt", "kid": sys.argv[2]})
print(tok(sys.argv[3], "bench-qr-app", "qr", "qr-1"))
print(tok("bench-qr-gate", "bench-qr-gate", "qr.verify", "qr-2"))
PYEOF
  ) || { QR_OK=0; QR_WHY="cannot mint the QR tokens"; return 0; }
  QR_RESIDENT_TOKEN=$(sed -n 1p <<< "$toks"); QR_SCANNER_TOKEN=$(sed -n 2p <<< "$toks")
  QR_RESIDENT_AUTH="authorization: Bearer $QR_RESIDENT_TOKEN"
}

# One line of the table from bench/qr_verify_load.c, measured as bench_row measures h2load: the server's
# CPU per request and the cores' load over the measured run only (codes are minted before it).
qr_verify_row() {
  local name=$1 proto=h1 n=${BENCH_QR_VERIFY_N:-$(( BENCH_N / 2 ))} c=${BENCH_QR_VERIFY_C:-50} m=${BENCH_QR_VERIFY_M:-4}
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ "$name $proto" =~ $BENCH_ONLY ]]; then return 0; fi
  if [ "$QR_OK" != 1 ]; then bench_skip "$name" "$proto" "$QR_WHY"; return 0; fi
  bench_server_pid hegate
  local id=$(( ++BENCH_SEQ )) d=$BENCH_TMP warm=$(( BENCH_WARM < n ? BENCH_WARM : n )) rc
  if ! "$QR_LOAD" mint "$HEGATE_PORT" "$QR_RESIDENT_TOKEN" "$warm" "$d/qr-warm.$id" 2> "$d/qr-mint.$id.log" ||
     ! "$QR_LOAD" mint "$HEGATE_PORT" "$QR_RESIDENT_TOKEN" "$n" "$d/qr-codes.$id" 2>> "$d/qr-mint.$id.log"; then
    bench_skip "$name" "$proto" "qr_verify_load mint failed: $(head -1 "$d/qr-mint.$id.log")"; return 0
  fi
  taskset -c "$BENCH_CLIENT_CPU" timeout --foreground -k 5 "$BENCH_TIMEOUT" \
    "$QR_LOAD" run "$HEGATE_PORT" "$QR_SCANNER_TOKEN" "$d/qr-warm.$id" "$c" "$m" > "$d/qr-warm.$id.out" 2>&1
  bench_check_interrupt $?
  $BENCH_TOOLS snap $$ "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU" "${BENCH_CURRENT_PID:-0}" > "$d/snap0.$id"
  /usr/bin/time -f '%U %S' -o "$d/time.$id" taskset -c "$BENCH_CLIENT_CPU" timeout --foreground -k 5 "$BENCH_TIMEOUT" \
    "$QR_LOAD" run "$HEGATE_PORT" "$QR_SCANNER_TOKEN" "$d/qr-codes.$id" "$c" "$m" "$d/lat.$id" > "$d/qr-load.$id.out" 2>&1
  rc=$?
  bench_check_interrupt "$rc"
  $BENCH_TOOLS snap $$ "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU" "${BENCH_CURRENT_PID:-0}" > "$d/snap1.$id"
  local rps ok valid note="" h2cpu p50 p99 cnt srv cli other steal us
  rps=$(sed -n 's/.*rps=\([0-9]*\).*/\1/p' "$d/qr-load.$id.out")
  ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' "$d/qr-load.$id.out")
  valid=$(sed -n 's/.* valid=\([0-9]*\).*/\1/p' "$d/qr-load.$id.out")
  h2cpu=$(awk '{print $1 + $2}' "$d/time.$id" 2>/dev/null | tail -1)
  read -r p50 p99 cnt < <($BENCH_TOOLS pct "$d/lat.$id")
  read -r srv cli other steal us < <($BENCH_TOOLS cpu "$d/snap0.$id" "$d/snap1.$id" "${h2cpu:-0}" "${cnt:-0}")
  note="HTTP/1.1, $c connections × $m pipelined; a fresh code per request (bench/qr_verify_load.c)"
  [ -n "$valid" ] && [ "$valid" != "$n" ] && note="$note; only $valid of $n answers were valid"
  if [ -z "$rps" ]; then
    rps=nan; p50=nan; p99=nan; us=nan
    note="$note; qr_verify_load failed (exit $rc): $(head -1 "$d/qr-load.$id.out" | cut -c1-80)"
  fi
  [ "$rc" = 124 ] && note="$note; timed out after ${BENCH_TIMEOUT}s"
  [ "${steal:-0}" -ge 5 ] && note="$note; steal ${steal}%"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_ROUND" "$name" "$proto" "$rps" "$p50" "$p99" \
    "${ok:-0}" "$n" "$srv" "$cli" "$other" "$steal" "$us" "$note" >> "$d/rows.tsv"
  printf '  %-42s %-3s %10s req/s  p50 %6s ms  p99 %7s ms  2xx %s/%s  server %s us/req  core0 %s%% core1 %s%% other %s%%\n' \
    "$name" "$proto" "$rps" "$p50" "$p99" "${ok:-0}" "$n" "$us" "$srv" "$cli" "$other" >&2
  rm -f "$d/lat.$id" "$d/qr-codes.$id" "$d/qr-warm.$id"
}

QR_TEXT="hegate QR code issuance (text)"; QR_PNG="hegate QR code issuance (PNG)"
QR_VERIFY="hegate QR online verification (distinct codes)"; QR_OFFLINE="QR offline verification (qr/ library, 1 core)"

qr_rows() {
  qr_fixtures
  local pn=$(( BENCH_N / 5 )); [ "$pn" -lt 1000 ] && pn=1000
  if [ "$QR_OK" != 1 ]; then
    bench_skip "$QR_TEXT" h2c "$QR_WHY"; bench_skip "$QR_PNG" h2c "$QR_WHY"; bench_skip "$QR_VERIFY" h1 "$QR_WHY"
    return 0
  fi
  # issuance: one online credential per resident and scene, a fresh device-signed code per request
  row hegate "$QR_TEXT" "$HG/qr/v1/codes" -d "$T/qr-code-req.json" -H "$QR_RESIDENT_AUTH" -H 'content-type: application/json'
  BENCH_N=$pn BENCH_WARM=$(( pn / 4 )) row hegate "$QR_PNG" "$HG/qr/v1/codes/transit.png" -H "$QR_RESIDENT_AUTH"
  qr_verify_row "$QR_VERIFY"
}

qr_targets() {
  bench_target "issue 6: online codes as text, one core" ok_rps "$QR_TEXT" h2c - - ">=" 10000
  bench_target "issue 6: online codes as PNG, one core" ok_rps "$QR_PNG" h2c - - ">=" 2000
  bench_target "issue 6: online verifications, one core (distinct codes)" ok_rps "$QR_VERIFY" h1 - - ">=" 5000
  bench_target "issue 6: offline verifications, qr/ library on one core" rps "$QR_OFFLINE" lib - - ">=" 7000
}

# The library alone, pinned to the server core; its offline rate also becomes a row (for the target line).
qr_micro() {
  local title="QR library (issue 6 target: offline ≥ 7,000 verifications/s on one core; \`bench/qr_bench.c\`, two ECDSA verifies per code, OpenSSL's own verify rate is the ceiling):"
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ "$title" =~ $BENCH_ONLY ]] && ! [[ "$QR_OFFLINE lib" =~ $BENCH_ONLY ]]; then return 0; fi
  if [ ! -x "$QR_BENCH" ]; then bench_note "QR library micro-benchmark: not built (${QR_WHY:-no build/libhegate.a})."; return 0; fi
  BENCH_ONLY='' bench_micro "$title" "$QR_BENCH" 20000
  local rate
  rate=$(tail -n 8 "$BENCH_TMP/notes.md" | sed -n 's/^offline verifications[^:]*: *\([0-9]*\) .*/\1/p' | tail -1)
  printf '%s\t%s\t%s\t%s\tnan\tnan\t\t\t\t\t\t\tnan\t%s\n' "$BENCH_ROUND" "$QR_OFFLINE" lib "${rate:-nan}" \
    "per CPU-second of one thread, best of 3 (bench/qr_bench.c, output below the table)" >> "$BENCH_TMP/rows.tsv"
}
