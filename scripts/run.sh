#!/usr/bin/env bash
# scripts/run.sh — what `make run` executes once deps are installed and build/hegate is built.
# Starts a complete development stack in the foreground, all on 127.0.0.1:
#   var/tls/        dev TLS certificate (scripts/devcert.sh) if absent or expiring
#   var/keys/       dev signing keys (`hegate keys generate`) if absent
#   redis-server    private, port 6390, no persistence, files in var/redis/
#   demo back ends  scripts/demo_backend.py on ports 9101-9108 (four service families, two each)
#   hegate          build/hegate -c conf/hegate.yaml  (8443 TLS, 8080 cleartext, 9090 admin)
# Ctrl-C (or SIGTERM) stops everything this script started, and only that.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3
HEGATE=${HEGATE_BIN:-$ROOT/build/hegate}
CONF=${HEGATE_CONF:-$ROOT/conf/hegate.yaml}
REDIS_PORT=6390
ADMIN=127.0.0.1:9090

say() { printf '\033[1mrun:\033[0m %s\n' "$*"; }
warn() { printf '\033[33mrun: warning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31mrun: error:\033[0m %s\n' "$*" >&2; exit 1; }

PIDS=()        # everything we started, in start order
NAMES=()
CLEANED=0
cleanup() {
  [ "$CLEANED" = 1 ] && return
  CLEANED=1
  trap - INT TERM EXIT
  [ ${#PIDS[@]} -eq 0 ] && return
  echo
  say "stopping: ${NAMES[*]}"
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do       # gateway first, redis last
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for _ in $(seq 1 60); do                           # up to 12 s (gateway shutdown_timeout is 10 s)
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for ((i = 0; i < ${#PIDS[@]}; i++)); do
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      warn "${NAMES[$i]} (pid ${PIDS[$i]}) did not stop: SIGKILL"
      kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  say "stopped"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup' EXIT

started() { PIDS+=("$1"); NAMES+=("$2"); }

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

[ -x "$HEGATE" ] || die "$HEGATE is missing: run 'make' first"
for p in 8443 8080 9090 $REDIS_PORT 9101 9102 9103 9104 9105 9106 9107 9108; do
  port_busy "$p" && die "port $p is already in use (another 'make run'?): stop that first"
done

mkdir -p var/tls var/keys var/redis var/log

# 1. dev TLS certificate
./scripts/devcert.sh var/tls

# 2. dev signing keys
if [ -z "$(find var/keys -name '*.pem' -print -quit 2>/dev/null)" ]; then
  if "$HEGATE" keys generate --dir var/keys; then
    say "generated dev keys in var/keys"
  else
    warn "'hegate keys generate' failed (not implemented yet?): going on without keys"
  fi
fi

# 3. private redis-server
if command -v redis-server >/dev/null; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$ROOT/var/redis" --logfile "$ROOT/var/log/redis.log" --daemonize no --protected-mode yes &
  started $! redis-server
  for _ in $(seq 1 50); do
    if command -v redis-cli >/dev/null; then
      redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    else
      port_busy "$REDIS_PORT" && break
    fi
    sleep 0.1
  done
  say "redis-server on 127.0.0.1:$REDIS_PORT (log var/log/redis.log)"
else
  warn "redis-server not installed (run 'make deps'): the gateway runs without its store"
fi

# 4. demo back ends: four families, two instances each
"$PY" scripts/demo_backend.py \
  --listen appointment-1=9101 --listen appointment-2=9102 \
  --listen query-1=9103 --listen query-2=9104 \
  --listen service-1=9105 --listen service-2=9106 \
  --listen payment-1=9107 --listen payment-2=9108 >var/log/backends.log 2>&1 &
started $! demo-backends

# 5. the gateway (stdout: access log, stderr: its log — both to this terminal)
"$HEGATE" -c "$CONF" &
GW=$!
started $GW hegate

ok=0
for _ in $(seq 1 100); do                            # up to 10 s
  kill -0 "$GW" 2>/dev/null || break
  if curl -fsS -o /dev/null --max-time 1 "http://$ADMIN/healthz" 2>/dev/null; then ok=1; break; fi
  sleep 0.1
done
if [ $ok != 1 ]; then
  kill -0 "$GW" 2>/dev/null && die "hegate did not answer http://$ADMIN/healthz within 10 s"
  set +e; wait "$GW"; rc=$?; set -e
  die "hegate exited (status $rc) before it was healthy: see its messages above"
fi

# 6. the demo resident (Redis starts empty every time): DEV ONLY, fixed public values; made-up numbers
DEMO_PHONE=13800000000 DEMO_PASSWORD=hecheng-demo-only
if printf '%s' "$DEMO_PASSWORD" | "$HEGATE" user add -c "$CONF" --phone "$DEMO_PHONE" --name 演示居民 \
     --id-number 230204199001011234 --card social:2302041990 --card bus:88880001 --card bank:6222000000000001 \
     --password-stdin >/dev/null; then
  say "demo resident: phone $DEMO_PHONE, password $DEMO_PASSWORD (dev only)"
else
  warn "could not create the demo resident: scripts/demo_token.py resident will fail"
fi

cat <<EOF

  hegate is up (pid $GW) — config $CONF
    https://127.0.0.1:8443   TLS, HTTP/2 (ALPN h2) and HTTP/1.1   (self-signed: use -k)
    http://127.0.0.1:8080    cleartext HTTP/1.1, h2c
    http://$ADMIN    admin: /healthz /readyz /metrics
  routes: /api/v1/appointments (public, per-ip limit)  /api/v1/query (scope query, per-user + per-client)
          /api/v1/services (scope service)  /api/v1/payments (scope payment)

  try:
    curl --http2-prior-knowledge http://127.0.0.1:8080/api/v1/appointments/today     # public, h2c
    curl -k -i https://127.0.0.1:8443/api/v1/query/fund                               # 401: needs a token
    TOKEN=\$(scripts/demo_token.py resident)          # the demo resident signs in (code + PKCE)
    curl -k -H "authorization: Bearer \$TOKEN" https://127.0.0.1:8443/api/v1/query/fund
    curl -k -H "authorization: Bearer \$TOKEN" https://127.0.0.1:8443/oauth2/userinfo   # masked
    curl -k -H "authorization: Bearer \$TOKEN" https://127.0.0.1:8443/qr/v1/codes/transit.png -o code.png && zbarimg --raw -q code.png 2>/dev/null
    GATE=\$(scripts/demo_token.py gate)                # a transit gate's client (client_credentials)
    curl -k -H "authorization: Bearer \$GATE" --json "{\"code\":\"\$(zbarimg --raw -q code.png 2>/dev/null)\"}" https://127.0.0.1:8443/qr/v1/verify
    curl -k https://127.0.0.1:8443/.well-known/openid-configuration
  scan to sign in (a kiosk; in a second terminal, approve the code it shows as the city app would):
    scripts/demo_kiosk.py                             # prints the QR code, the URL and the code, then polls
    scripts/demo_token.py approve XXXX-XXXX           # or open https://127.0.0.1:8443/oauth2/device
  in a browser (sign in as the demo resident, consent, then read the code in the address bar):
    https://127.0.0.1:8443/oauth2/authorize?response_type=code&client_id=mp-partner&redirect_uri=https%3A%2F%2Fmp.partner.example%2Fcb&scope=openid%20query&state=demo&code_challenge=DbmVOJHDcDaHL5MQszlyVlGK8MyaEBPT_-mS0kynl9o&code_challenge_method=S256
    (its PKCE verifier: hegate-demo-verifier-0123456789-abcdefghijklmnop)
    curl -s http://$ADMIN/metrics | grep ^hegate_
    h2load -n 10000 -c 10 -m 10 http://127.0.0.1:8080/api/v1/appointments/today

  Ctrl-C stops everything (logs: var/log/).
EOF

# Foreground until the gateway stops or Ctrl-C.
set +e
wait "$GW"
rc=$?
set -e
[ "$CLEANED" = 1 ] || warn "hegate exited on its own (status $rc)"
exit "$rc"
