# bench/attacks.sh — sourced by bench/run.sh: the long version of the attack harness (issue 17), once,
# after the rounds, against the servers run.sh started (all pinned to the server core): hegate's public
# route, h2o 2.2.5 and HAProxy 2.6 as reverse proxies to the same nginx, each attacked over cleartext
# HTTP/2 in turn. The attacker and the legitimate client (tests/attack/attack.c, built here) run on the
# client core. tests/attack/harness.py measures each run; its table and the PASS/MISS lines for hegate
# (success >= 95 %, p99 <= 250 ms, RSS growth <= 64 MiB, alive, prompt again within 1 s) go to the
# notes under the main table.
#   BENCH_ATTACKS=0                 skip them
#   BENCH_ATTACK_SECONDS=10         each attack's length (each run adds 1 s before and 3 s after)
#   BENCH_ATTACK_ONLY=a,b           only these attacks (names: tests/attack/harness.py ATTACKS)
bench_attacks() {
  [ "${BENCH_ATTACKS:-1}" = 1 ] || { bench_note "Attacks (issue 17): skipped (BENCH_ATTACKS=0)."; return 0; }
  local bin=$T/attack servers=() s
  if ! cc -std=gnu11 -O2 -Wall -o "$bin" tests/attack/attack.c 2> "$T/attack.cc.log"; then
    bench_note "Attacks (issue 17): the attacker did not build: $(head -1 "$T/attack.cc.log")"; return 0
  fi
  [ "${HEGATE_OK:-0}" = 1 ] && servers+=(--server "hegate=$HEGATE_PORT:${BENCH_PID[hegate]}")
  [ "${H2O_OK:-0}" = 1 ] && servers+=(--server "h2o 2.2.5=$H2O_PORT:${BENCH_PID[h2o]}")
  [ "${HAPROXY_OK:-0}" = 1 ] && servers+=(--server "HAProxy 2.6=$HAPROXY_PORT:${BENCH_PID[haproxy]}")
  [ ${#servers[@]} -gt 0 ] || { bench_note "Attacks (issue 17): no server to attack."; return 0; }
  local only=()
  [ -n "${BENCH_ATTACK_ONLY:-}" ] && only=(--attacks "$BENCH_ATTACK_ONLY")
  bench_log "attacks: ${BENCH_ATTACK_SECONDS:-10} s each, against $(( ${#servers[@]} / 2 )) servers (about $(( (${BENCH_ATTACK_SECONDS:-10} + 7) * 11 * ${#servers[@]} / 120 )) minutes)"
  if $BENCH_PY tests/attack/harness.py --bin "$bin" "${servers[@]}" "${only[@]}" --seconds "${BENCH_ATTACK_SECONDS:-10}" \
       --path /bench --big-path /bench/big --cpu "$BENCH_CLIENT_CPU" --judge hegate \
       --markdown "$T/attacks.md" > "$T/attacks.out"; then
    bench_note "Attacks (issue 17): one attacking process from 127.0.0.1 for ${BENCH_ATTACK_SECONDS:-10} s, a legitimate client on 127.0.0.2 opening a fresh HTTP/2 connection every 20 ms (tests/attack/). Success and p99: the legitimate requests started during the attack (no answer in 2 s counts as a failure, at 2 s); RSS: the server's peak during and after the attack less its median before; recovery: from the attack's end to the first of the unbroken run of answers within 100 ms that lasts to the end. Attack streams written: what the attacker wrote into its sockets, not what the server read."
    bench_note "$(cat "$T/attacks.md")"
  else
    bench_note "Attacks (issue 17): the harness failed: $(tail -3 "$T/attacks.out")"
  fi
}
