# bench/lib.sh — the machinery of `make bench`, sourced by bench/run.sh (bash).
#
#   bench_init                       temp dir, knobs from the environment, cleanup trap
#   bench_header                     machine, load, versions (top of the report)
#   bench_port VAR...                a distinct free 127.0.0.1 port into each VAR (exported)
#   bench_render TMPL OUT            copy a bench/conf/*.tmpl, replacing every @VAR@ by $VAR (unset: error)
#   bench_token KEY_PEM KID          an access token for the bench routes (PyJWT, SPEC §6)
#   bench_start NAME CPU CMD...      start a server in the background pinned to CPU (log: $BENCH_TMP/NAME.log)
#   bench_wait_port NAME PORT...     wait until the ports accept (fails early if NAME died)
#   bench_stop NAME                  stop it (TERM, then KILL after 5 s), children included
#   bench_row NAME URL [ARGS...]     one h2load measurement = one line of the table (h2c or TLS from
#                                    the URL's scheme; ARGS go to h2load, e.g. -H 'authorization: ...',
#                                    -d body.json, -H 'content-type: ...')
#   bench_skip NAME PROTO REASON     a line of the table that could not be measured
#   bench_target LABEL KIND A_NAME A_PROTO B_NAME B_PROTO OP VALUE
#                                    a PASS/MISS line: KIND rps_ratio | p99_ratio | p99_added_ms | rps | ok_rps
#                                    (rps: absolute, B_NAME/B_PROTO are "-"; ok_rps: the same counting only
#                                    2xx answers); OP >= or <=
#   bench_expect NAME PROTO REQ_S    NOTES.md's quiet-machine number for a reference row
#   bench_note TEXT                  a paragraph under the table
#   bench_micro TITLE CMD...         run a micro-benchmark (pinned to the server core) and put its output
#                                    under the table in a code block
#   bench_report                     the table: printed and written to build/bench/results.md
#
# Environment:
#   BENCH_N (200000) BENCH_C (50) BENCH_M (10)   h2load -n/-c/-m of every measured run
#   BENCH_QUICK=1                                -n 20000 (smoke run)
#   BENCH_WARM (min(N/10, 20000), at least 1000) requests of the warm-up run before each row
#   BENCH_TIMEOUT (300)                          seconds allowed to one h2load run
#   BENCH_ROUNDS (1)                             > 1: every server again, the median per row
#   BENCH_ONLY                                   regex on "NAME proto": only those rows
#   BENCH_PROFILE                                regex on "NAME proto": perf record (DWARF call graphs) on
#                                                the server under test (bench_server_pid) during that row
#   BENCH_PERF_FREQ                              perf record sampling rate (default 499 Hz)
#   BENCH_SYSCALLS=1                             perf stat on the server under test: syscalls, epoll_ctl and
#                                                context switches per request in the note (costs it a little)
#   BENCH_H2LOAD_ARGS                            added to every h2load run, e.g.
#                                                --tls13-ciphers=TLS_AES_128_GCM_SHA256 (one cipher for all)
#   BENCH_KEEP=1                                 keep the temp dir (configs, logs, h2load outputs)

BENCH_PY=/usr/bin/python3

bench_init() {
  BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  BENCH_TOOLS="$BENCH_PY $BENCH_ROOT/bench/tools.py"
  BENCH_N=${BENCH_N:-200000}; BENCH_C=${BENCH_C:-50}; BENCH_M=${BENCH_M:-10}
  [ "${BENCH_QUICK:-0}" = 1 ] && BENCH_N=20000
  local w=$(( BENCH_N / 10 )); [ "$w" -gt 20000 ] && w=20000; [ "$w" -lt 1000 ] && w=1000
  BENCH_WARM=${BENCH_WARM:-$w}
  BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
  BENCH_ROUNDS=${BENCH_ROUNDS:-1}
  BENCH_SERVER_CPU=0; BENCH_CLIENT_CPU=1
  [ "$(nproc)" -lt 2 ] && BENCH_CLIENT_CPU=0
  BENCH_TMP=$(mktemp -d /tmp/hegate-bench.XXXXXX)
  BENCH_OUT=$BENCH_ROOT/build/bench
  mkdir -p "$BENCH_OUT"
  : > "$BENCH_TMP/rows.tsv"; : > "$BENCH_TMP/targets.tsv"; : > "$BENCH_TMP/expect.tsv"; : > "$BENCH_TMP/notes.md"
  BENCH_PORTS=(); BENCH_ROUND=1; BENCH_SEQ=0; BENCH_CURRENT_PID=
  declare -gA BENCH_PID=()
  export BENCH_TMP
  trap bench_cleanup EXIT
  trap 'echo "bench: interrupted" >&2; exit 130' INT TERM
}

bench_log() { echo "bench: $*" >&2; }

# every process we started, and what they forked (nginx workers), by pid
bench_descendants() {
  local p c
  for p in "$@"; do
    for c in $(pgrep -P "$p" 2>/dev/null); do echo "$c"; bench_descendants "$c"; done
  done
}
bench_kill_tree() {  # PID: TERM it and its descendants, KILL what is left after 5 s
  local pid=$1 all i
  all="$pid $(bench_descendants "$pid")"
  kill -TERM $all 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 $all 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL $all 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
bench_cleanup() {
  local rc=$? name
  trap - EXIT INT TERM
  [ -n "${BENCH_PERF_PID:-}" ] && kill -INT "$BENCH_PERF_PID" 2>/dev/null
  for name in "${!BENCH_PID[@]}"; do bench_kill_tree "${BENCH_PID[$name]}"; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then bench_log "kept $BENCH_TMP"; else rm -rf "$BENCH_TMP"; fi
  exit "$rc"
}

bench_port() {
  local v p
  for v in "$@"; do
    p=$($BENCH_TOOLS port "${BENCH_PORTS[@]}") || { bench_log "no free port"; return 1; }
    BENCH_PORTS+=("$p")
    printf -v "$v" %s "$p"; export "${v?}"
  done
}

bench_render() {
  perl -pe 's/@([A-Z][A-Z0-9_]*)@/defined $ENV{$1} ? $ENV{$1} : die "bench: $ARGV: \@$1\@ is not set\n"/ge' "$1" > "$2"
}

# bench_token KEY_PEM KID: an access token as SPEC §6 (typ at+jwt, ES256, kid), minted independently with
# PyJWT: issuer https://bench.hegate.test, scope bench, an hour long
bench_token() {
  $BENCH_PY - "$1" "$2" <<'PYEOF'
import sys, time, jwt
from cryptography.hazmat.primitives import serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
now = int(time.time())
print(jwt.encode({"iss": "https://bench.hegate.test", "sub": "bench-user", "aud": "hegate", "client_id": "bench",
                  "scope": "bench", "iat": now, "exp": now + 3600, "jti": "bench-1", "sid": "bench-s"},
                 key, algorithm="ES256", headers={"typ": "at+jwt", "kid": sys.argv[2]}))
PYEOF
}

bench_start() {
  local name=$1 cpu=$2; shift 2
  taskset -c "$cpu" "$@" > "$BENCH_TMP/$name.log" 2>&1 &
  BENCH_PID[$name]=$!
}
bench_server_pid() { BENCH_CURRENT_PID=${BENCH_PID[$1]:-}; }   # the process the rows measure (for perf)

bench_wait_port() {
  local name=$1 port i; shift
  for port in "$@"; do
    for i in $(seq 1 100); do
      if ! kill -0 "${BENCH_PID[$name]}" 2>/dev/null; then
        bench_log "$name exited during start-up:"; tail -n 20 "$BENCH_TMP/$name.log" >&2; unset "BENCH_PID[$name]"; return 1
      fi
      (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && continue 2
      sleep 0.1
    done
    bench_log "$name: port $port did not open in 10 s:"; tail -n 20 "$BENCH_TMP/$name.log" >&2; return 1
  done
}

bench_stop() {
  local name=$1
  [ -n "${BENCH_PID[$name]:-}" ] || return 0
  bench_kill_tree "${BENCH_PID[$name]}"
  unset "BENCH_PID[$name]"
  BENCH_CURRENT_PID=
}

bench_header() {
  local h=$BENCH_TMP/header.md cpu load idle
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  # machine idle over one second before we start anything
  idle=$(awk '/^cpu /{print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; sleep 1; awk '/^cpu /{print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  idle=$(echo $idle | awk '{printf "%.0f", 100*($3-$1)/($4-$2)}')
  {
    echo "## hegate benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) cores, $cpu, $(uname -sr); load average $load, idle ${idle}% just before the run"
    echo "- h2load -n $BENCH_N -c $BENCH_C -m $BENCH_M (warm-up -n $BENCH_WARM) per row, ${BENCH_ROUNDS} round(s); server under test on core $BENCH_SERVER_CPU, h2load + back end (+ Redis) on core $BENCH_CLIENT_CPU; all on 127.0.0.1"
    echo "- $(h2load --version 2>&1 | head -1) · nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') · h2o $(h2o --version 2>/dev/null | awk 'NR==1{print $3}') · HAProxy $(haproxy -v 2>/dev/null | awk 'NR==1{print $3}') · $(redis-server --version 2>/dev/null | awk '{print "Redis " substr($3,3)}') · $(openssl version | awk '{print $1, $2}')"
    echo "- hegate: $("$HEGATE" --version 2>/dev/null || echo 'not built') · git $(git -C "$BENCH_ROOT" describe --always --dirty 2>/dev/null || echo '?')"
    local knobs
    knobs=$(env | grep -E '^(BENCH_[A-Z0-9_]+|HEGATE_BIN)=' | grep -v '^BENCH_TMP=' | sort | tr '\n' ' ' | sed 's/ $//')
    [ -n "$knobs" ] && echo "- settings: \`$knobs\`"
  } > "$h"
  cat "$h" >&2
  if [ "$idle" -lt 90 ]; then
    bench_log "WARNING: the machine is only ${idle}% idle before the run (other work on it); expect low and noisy numbers"
  fi
}

# Ctrl-C during a load run: h2load dies of SIGINT but /usr/bin/time (which ignores it) exits 130
# normally, so bash would carry on; stop here instead (the EXIT trap cleans up).
bench_check_interrupt() {
  case $1 in 130|143) echo "bench: interrupted" >&2; exit 130 ;; esac
}

bench_skip() {
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ "$1 $2" =~ $BENCH_ONLY ]]; then return 0; fi
  printf '%s\t%s\t%s\tnan\tnan\tnan\t\t\t\t\t\t\tnan\tnot measured: %s\n' "$BENCH_ROUND" "$1" "$2" "$3" >> "$BENCH_TMP/rows.tsv"
  bench_log "skip $1 ($2): $3"
}

# perf record on the server under test (BENCH_CURRENT_PID) while a row NAME PROTO (sequence ID) is
# measured, when BENCH_PROFILE matches "NAME PROTO": sets BENCH_PROFILING (the output prefix, or "").
bench_profile_start() {
  local slug
  BENCH_PROFILING=""
  if [ -n "${BENCH_PROFILE:-}" ] && [[ "$1 $2" =~ $BENCH_PROFILE ]] && [ -n "$BENCH_CURRENT_PID" ]; then
    slug=$(printf '%s-%s' "$1" "$2" | tr -c 'A-Za-z0-9' '-' | tr -s '-' | tr 'A-Z' 'a-z')
    BENCH_PROFILING=$BENCH_OUT/profile-$slug
    perf record -F "${BENCH_PERF_FREQ:-499}" --call-graph dwarf,16384 -p "$BENCH_CURRENT_PID" -o "$BENCH_PROFILING.data" \
      > "$BENCH_TMP/perf.$3.log" 2>&1 &
    BENCH_PERF_PID=$!
    sleep 0.5
  fi
}

# ends what bench_profile_start began and writes the reports; BENCH_PROFILE_NOTE: the table note, or ""
bench_profile_stop() {
  local p=$BENCH_PROFILING
  BENCH_PROFILE_NOTE=""
  [ -n "$p" ] || return 0
  kill -INT "$BENCH_PERF_PID" 2>/dev/null; wait "$BENCH_PERF_PID" 2>/dev/null; BENCH_PERF_PID=
  { echo "# $1 ($2): where the server's CPU goes, by library"
    perf report -i "$p.data" --stdio --no-children --sort dso -g none 2> /dev/null | grep -v '^#' | grep -v '^$'
    echo; echo "# by function (self time, >= 0.5%)"
    perf report -i "$p.data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.5 2> /dev/null \
      | grep -v '^#' | grep -v '^$'
  } > "$p.txt"
  perf report -i "$p.data" --stdio --children --sort sym --percent-limit 2 -g caller,0.5,callee,function,percent \
    > "$p.callers.txt" 2> /dev/null
  BENCH_PROFILE_NOTE="profiled (perf) → ${p#$BENCH_ROOT/}.txt"
  bench_log "profile of $1 ($2): $p.txt (+ .callers.txt, perf report -i $p.data)"
  BENCH_PROFILING=""
}

bench_row() {
  local name=$1 url=$2 proto; shift 2
  case $url in https://*) proto=tls ;; http://*) proto=h2c ;; *) bench_log "bench_row: bad URL $url"; return 1 ;; esac
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ "$name $proto" =~ $BENCH_ONLY ]]; then return 0; fi
  local id=$(( ++BENCH_SEQ )) d=$BENCH_TMP
  local lat=$d/lat.$id out=$d/h2load.$id.out note="" rc
  # timeout --foreground: its child is h2load itself, and Ctrl-C reaches h2load at once
  taskset -c "$BENCH_CLIENT_CPU" timeout --foreground -k 5 "$BENCH_TIMEOUT" \
    h2load -n "$BENCH_WARM" -c "$BENCH_C" -m "$BENCH_M" ${BENCH_H2LOAD_ARGS:-} "$@" "$url" > "$d/warm.$id.out" 2>&1
  bench_check_interrupt $?
  local counting=""
  bench_profile_start "$name" "$proto" "$id"
  if [ -z "$BENCH_PROFILING" ] && [ "${BENCH_SYSCALLS:-0}" = 1 ] && [ -n "$BENCH_CURRENT_PID" ]; then
    counting=$d/perfstat.$id
    perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_ctl,context-switches -p "$BENCH_CURRENT_PID" \
      -o "$counting" > /dev/null 2>&1 &
    BENCH_PERF_PID=$!
    sleep 0.3
  fi
  $BENCH_TOOLS snap $$ "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU" "${BENCH_CURRENT_PID:-0}" > "$d/snap0.$id"
  /usr/bin/time -f '%U %S' -o "$d/time.$id" taskset -c "$BENCH_CLIENT_CPU" timeout --foreground -k 5 "$BENCH_TIMEOUT" \
    h2load -n "$BENCH_N" -c "$BENCH_C" -m "$BENCH_M" --log-file="$lat" ${BENCH_H2LOAD_ARGS:-} "$@" "$url" > "$out" 2>&1
  rc=$?
  bench_check_interrupt "$rc"
  $BENCH_TOOLS snap $$ "$BENCH_SERVER_CPU" "$BENCH_CLIENT_CPU" "${BENCH_CURRENT_PID:-0}" > "$d/snap1.$id"
  if [ -n "$counting" ]; then
    kill -INT "$BENCH_PERF_PID" 2>/dev/null; wait "$BENCH_PERF_PID" 2>/dev/null; BENCH_PERF_PID=
  fi
  bench_profile_stop "$name" "$proto"
  note=$BENCH_PROFILE_NOTE
  local rps ok h2cpu
  rps=$(awk '/^finished in/ {print $4}' "$out")
  ok=$(awk '/^status codes:/ {print $3}' "$out")
  h2cpu=$(awk '{print $1 + $2}' "$d/time.$id" 2>/dev/null | tail -1)
  read -r p50 p99 cnt < <($BENCH_TOOLS pct "$lat")
  read -r srv cli other steal us < <($BENCH_TOOLS cpu "$d/snap0.$id" "$d/snap1.$id" "${h2cpu:-0}" "${cnt:-0}")
  if [ -n "$counting" ] && [ "${cnt:-0}" -gt 0 ]; then
    note="${note:+$note; }$(awk -F, -v n="$cnt" '$3 == "raw_syscalls:sys_enter" {s=$1} $3 == "syscalls:sys_enter_epoll_ctl" {e=$1}
      $3 == "context-switches" {c=$1} END {printf "%.2f syscalls/req (%.2f epoll_ctl), %.3f ctx switches/req", s/n, e/n, c/n}' "$counting")"
  fi
  [ "$rc" = 124 ] && note="${note:+$note; }timed out after ${BENCH_TIMEOUT}s"
  if [ -z "$rps" ]; then   # no result: no percentiles either
    rps=nan; p50=nan; p99=nan; us=nan
    [ "$rc" != 124 ] && note="${note:+$note; }h2load failed (exit $rc): $(grep -m1 -iE 'error|fail|refused|abort' "$out" | cut -c1-80)"
  fi
  [ -n "$ok" ] && [ "$ok" != "$BENCH_N" ] && note="${note:+$note; }only $ok of $BENCH_N answers were 2xx"
  if [ "$proto" = tls ]; then
    local tls
    tls=$(awk -F': ' '/^TLS Protocol/{p=$2} /^Cipher/{c=$2} END{if (p) print p " " c}' "$out")
    [ -n "$tls" ] && [ "$tls" != "TLSv1.3 TLS_AES_128_GCM_SHA256" ] && note="${note:+$note; }$tls"
  fi
  if [ "${cli:-0}" -ge 95 ] && [ "${srv:-0}" -lt 90 ] && [ "$BENCH_CURRENT_PID" != "${BENCH_PID[nginx]:-none}" ]; then
    note="${note:+$note; }client core saturated (h2load + back end + Redis): the server was not the limit"
  fi
  [ "${steal:-0}" -ge 5 ] && note="${note:+$note; }steal ${steal}%"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_ROUND" "$name" "$proto" "$rps" "$p50" "$p99" \
    "${ok:-0}" "$BENCH_N" "$srv" "$cli" "$other" "$steal" "$us" "$note" >> "$d/rows.tsv"
  printf '  %-42s %-3s %10s req/s  p50 %6s ms  p99 %7s ms  2xx %s/%s  server %s us/req  core0 %s%% core1 %s%% other %s%%%s\n' \
    "$name" "$proto" "$rps" "$p50" "$p99" "${ok:-0}" "$BENCH_N" "$us" "$srv" "$cli" "$other" "${note:+  ($note)}" >&2
  rm -f "$lat"
}

bench_target() {
  [ $# = 8 ] || { bench_log "bench_target needs 8 arguments: $*"; return 1; }
  local IFS=$'\t'; echo "$*" >> "$BENCH_TMP/targets.tsv"
}
bench_expect() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$BENCH_TMP/expect.tsv"; }
bench_note() { printf '%s\n\n' "$*" >> "$BENCH_TMP/notes.md"; }

bench_micro() {
  local title=$1; shift
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ "$title" =~ $BENCH_ONLY ]]; then return 0; fi
  bench_log "micro: $title"
  {
    echo "$title"
    echo '```'
    timeout --foreground -k 5 "$BENCH_TIMEOUT" taskset -c "$BENCH_SERVER_CPU" "$@" 2>&1 || echo "(failed: exit $?)"
    echo '```'
    echo
  } >> "$BENCH_TMP/notes.md"
}

bench_report() {
  BENCH_REF=${BENCH_REF:-h2o 2.2.5 reverse proxy} $BENCH_TOOLS table "$BENCH_TMP" > "$BENCH_OUT/results.md"
  echo
  cat "$BENCH_OUT/results.md"
  bench_log "table written to ${BENCH_OUT#$BENCH_ROOT/}/results.md"
}
