#!/usr/bin/env bash
# bench/instructions.sh — user-space instructions per request (valgrind --tool=callgrind), the figure
# that does not move with this shared host's load: the same binary, request mix and environment give
# the same count. For each hegate binary given (default build/hegate), started under callgrind with
# bench/conf/hegate.yaml.tmpl (threads: 1) and the bench back end (nginx) and Redis: per row, a warm-up,
# a dump (which resets the counters), N requests by h2load (h2c), a dump; instructions / N of the whole
# process (every thread) from the second. Prints a table, and the ratio to the first binary's row.
#
#   bench/instructions.sh [BIN...]          e.g. bench/instructions.sh build/hegate /tmp/hegate-base
#   INSTR_N=20000 INSTR_C=10 INSTR_M=10     h2load parameters
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_init
T=$BENCH_TMP; export T
BINS=("$@"); [ ${#BINS[@]} -gt 0 ] || BINS=(build/hegate)
N=${INSTR_N:-20000}; C=${INSTR_C:-10}; M=${INSTR_M:-10}
command -v valgrind > /dev/null && command -v callgrind_control > /dev/null || { bench_log "valgrind is not installed"; exit 1; }

"${BINS[0]}" keys generate --dir "$T/keys" > "$T/keys.log" 2>&1 || { bench_log "keys generate failed"; exit 1; }
TOKEN_KEY=$(ls "$T"/keys/token/*.pem | head -1); TOKEN_KID=$(basename "$TOKEN_KEY" .pem); TOKEN_KID=${TOKEN_KID#*-}
AUTH="authorization: Bearer $(bench_token "$TOKEN_KEY" "$TOKEN_KID")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" \
  -days 2 -subj /CN=localhost 2> /dev/null
export BENCH_HEGATE_CLIENTS="" BENCH_HEGATE_TOPLEVEL=""
bench_port BACKEND_PORT BACKEND_H2C_PORT BACKEND_TLS_PORT REDIS_PORT
mkdir -p "$T/nginx"
bench_render bench/conf/nginx.conf.tmpl "$T/nginx.conf" || exit 1
bench_start nginx "$BENCH_CLIENT_CPU" nginx -c "$T/nginx.conf" -p "$T/nginx" -g 'daemon off;'
bench_start redis "$BENCH_CLIENT_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
bench_wait_port nginx "$BACKEND_PORT" && bench_wait_port redis "$REDIS_PORT" || exit 1

ROWS=("public route|/bench|" "authenticated route (cached token)|/auth/bench|$AUTH"
      "rate-limited route (per-ip + per-client)|/limited/bench|$AUTH")
printf '| binary | row | requests | instructions / request | ÷ first binary |\n|---|---|---:|---:|---:|\n' > "$T/table.md"
declare -A FIRST=()
for bi in "${!BINS[@]}"; do
  bin=${BINS[$bi]}
  bench_port HEGATE_PORT HEGATE_TLS_PORT HEGATE_ADMIN_PORT
  bench_render bench/conf/hegate.yaml.tmpl "$T/hegate-$bi.yaml"
  bench_start "hegate$bi" "$BENCH_SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$T/cg-$bi.out" \
    --dump-line=no "$bin" -c "$T/hegate-$bi.yaml"
  for i in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$HEGATE_PORT") 2>/dev/null && break; sleep 0.1; done
  pid=${BENCH_PID[hegate$bi]}
  # settle first: under valgrind the threads' start (store connections, the revocation resync, lazy
  # caches) runs for seconds after the port opens; one pass over every row, then a pause
  for row in "${ROWS[@]}"; do
    IFS='|' read -r name path hdr <<< "$row"
    args=(); [ -n "$hdr" ] && args=(-H "$hdr")
    taskset -c "$BENCH_CLIENT_CPU" h2load -n 2000 -c "$C" -m "$M" "${args[@]}" "http://127.0.0.1:$HEGATE_PORT$path" > /dev/null 2>&1
  done
  sleep 2
  for row in "${ROWS[@]}"; do
    IFS='|' read -r name path hdr <<< "$row"
    args=(); [ -n "$hdr" ] && args=(-H "$hdr")
    taskset -c "$BENCH_CLIENT_CPU" h2load -n 2000 -c "$C" -m "$M" "${args[@]}" "http://127.0.0.1:$HEGATE_PORT$path" > /dev/null 2>&1
    # a dump resets the counters: one after the warm-up, one after the measured run (which holds only it)
    rm -f "$T"/cg-$bi.out.*
    callgrind_control --dump "$pid" > /dev/null 2>&1
    for i in $(seq 1 100); do ls "$T"/cg-$bi.out.* > /dev/null 2>&1 && break; sleep 0.1; done
    out=$(taskset -c "$BENCH_CLIENT_CPU" h2load -n "$N" -c "$C" -m "$M" "${args[@]}" "http://127.0.0.1:$HEGATE_PORT$path" 2>&1)
    ok=$(sed -n 's/.*status codes: \([0-9]*\) 2xx.*/\1/p' <<< "$out")
    rm -f "$T"/cg-$bi.out.*
    callgrind_control --dump "$pid" > /dev/null 2>&1
    for i in $(seq 1 100); do ls "$T"/cg-$bi.out.* > /dev/null 2>&1 && break; sleep 0.1; done
    sleep 0.2
    ir=$(cat "$T"/cg-$bi.out.* 2>/dev/null | awk '/^(summary|totals):/ {s += $2} END {print s + 0}')
    per=$(( ir / N ))
    ratio="—"
    if [ "$bi" = 0 ]; then FIRST[$name]=$per
    elif [ "${FIRST[$name]:-0}" -gt 0 ]; then ratio=$(awk -v a="$per" -v b="${FIRST[$name]}" 'BEGIN {printf "%.3f", a / b}'); fi
    printf '| %s | %s | %s 2xx of %s | %s | %s |\n' "$bin" "$name" "${ok:-?}" "$N" "$per" "$ratio" >> "$T/table.md"
    bench_log "$bin $name: $per instructions per request"
  done
  bench_stop "hegate$bi"
done
cat "$T/table.md" | tee "$BENCH_OUT/instructions.md"
