#!/usr/bin/env bash
# bench/run.sh — `make bench`: hegate beside reference servers, measured in ONE run with h2load.
#
#   back end   nginx (one worker, small JSON), on core 1, shared by every row
#   h2o        Debian's h2o 2.2.5 as a reverse proxy (1 thread)      } each pinned to core 0,
#   haproxy    HAProxy 2.6 as a reverse proxy (nbthread 1)           } one at a time
#   hegate     build/hegate (threads: 1) on a public route, a rate-limited route (2 policies, Redis),
#              an authenticated route (the same ES256 token every time: the verified-token cache path)
#   haproxy+jwt  HAProxy doing ES256 jwt_verify on every request (the reference for the auth row)
# h2load (client) and the back end run on core 1. Each row: a short warm-up, then BENCH_N requests
# with BENCH_C connections x BENCH_M streams; p50/p99 from h2load's per-request log.
# Prints a markdown table (also written to build/bench/results.md) with ratios to h2o on the same
# protocol. A benchmark is not a test: it always exits 0 when it could measure.
# Env: BENCH_N (200000), BENCH_C (50), BENCH_M (10), BENCH_QUICK=1 (20000 requests),
#      BENCH_REDIS_CPU (the core redis-server is pinned to; default the client core).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HEGATE=${HEGATE_BIN:-$ROOT/build/hegate}
PY=/usr/bin/python3
N=${BENCH_N:-200000}; C=${BENCH_C:-50}; M=${BENCH_M:-10}
[ "${BENCH_QUICK:-0}" = 1 ] && N=20000
WARM=$(( N / 10 > 20000 ? 20000 : N / 10 ))
SERVER_CPU=0; CLIENT_CPU=1
[ "$(nproc)" -lt 2 ] && CLIENT_CPU=0

T=$(mktemp -d /tmp/hegate-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT INT TERM

port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: port $1 did not open; logs:" >&2
  tail -n 5 "$T"/*.log "$T"/*.out "$T"/*.err 2>/dev/null >&2 || true
  return 1
}
start() { "$@" & PIDS+=($!); }   # background, remembered for cleanup
stop_last() { local p=${PIDS[-1]}; kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; unset 'PIDS[-1]'; }

# ---- fixtures: TLS certificate, keys, token ----------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" \
  -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
cat "$T/cert.pem" "$T/key.pem" > "$T/combined.pem"
"$HEGATE" keys generate --dir "$T/keys" > /dev/null
TOKEN_KEY=$(ls "$T"/keys/token/*.pem)
openssl ec -in "$TOKEN_KEY" -pubout -out "$T/token-pub.pem" 2>/dev/null
TOKEN=$($PY - "$TOKEN_KEY" <<'PYEOF'
import sys, time, hashlib, base64, jwt
from cryptography.hazmat.primitives import serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
kid = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()[:8]).rstrip(b"=").decode()
now = int(time.time())
print(jwt.encode({"iss": "https://bench.hegate.test", "sub": "bench-user", "aud": "hegate", "client_id": "bench",
                  "scope": "bench", "iat": now, "exp": now + 3600, "jti": "bench-1", "sid": "bench-s"},
                 key, algorithm="ES256", headers={"typ": "at+jwt", "kid": kid}))
PYEOF
)

# ---- the back end --------------------------------------------------------------------------------------
BE=$(port); BE2=$(port)
mkdir -p "$T/nginx"
cat > "$T/nginx.conf" <<NGX
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:$BE;
    listen 127.0.0.1:$BE2 http2;
    location / { default_type application/json; return 200 '{"ok":true,"service":"bench","items":[1,2,3]}'; }
  }
}
NGX
start taskset -c $CLIENT_CPU nginx -c "$T/nginx.conf" -p "$T/nginx" -g 'daemon off;'
wait_port "$BE"
REDIS=$(port)
REDIS_CPU=${BENCH_REDIS_CPU:-$CLIENT_CPU}   # where the shared store runs (default: beside client and back end)
start taskset -c $REDIS_CPU redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --loglevel warning > "$T/redis.log"
wait_port "$REDIS"

# ---- measuring -----------------------------------------------------------------------------------------
RESULTS="$T/results.tsv"; : > "$RESULTS"
# bench_row NAME PROTO URL [h2load args...]: one row of the table
bench_row() {
  local name=$1 proto=$2 url=$3; shift 3
  taskset -c $CLIENT_CPU h2load -n "$WARM" -c "$C" -m "$M" "$@" "$url" > /dev/null 2>&1 || true
  local log="$T/lat.log" out
  rm -f "$log"
  out=$(timeout 300 taskset -c $CLIENT_CPU h2load -n "$N" -c "$C" -m "$M" --log-file="$log" "$@" "$url" 2>&1) || true
  local rps ok
  rps=$(printf '%s\n' "$out" | awk '/^finished in/ {print $4}')
  ok=$(printf '%s\n' "$out" | awk '/^status codes:/ {gsub(",","",$3); print $3}')
  read -r p50 p99 < <($PY -c '
import sys
v = sorted(int(l.split()[2]) for l in open(sys.argv[1]) if l.strip())
print("%.2f %.2f" % (v[len(v)//2]/1000, v[min(len(v)-1, int(len(v)*0.99))]/1000)) if v else print("nan nan")' "$log" 2>/dev/null || echo "nan nan")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$proto" "${rps:-0}" "$p50" "$p99" "${ok:-0}" >> "$RESULTS"
  printf '  %-34s %-5s %10s req/s  p50 %6s ms  p99 %7s ms  (2xx %s/%s)\n' "$name" "$proto" "${rps:-0}" "$p50" "$p99" "${ok:-0}" "$N" >&2
}

echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "bench: h2load -n $N -c $C -m $M; servers under test on core $SERVER_CPU, client and back end on core $CLIENT_CPU" >&2

bench_row "back end (nginx) direct" h2c "http://127.0.0.1:$BE2/bench"

# h2o 2.2.5 standalone
H2O_P=$(port); H2O_S=$(port)
cat > "$T/h2o.conf" <<H2O
num-threads: 1
user: $(id -un)
listen: { host: 127.0.0.1, port: $H2O_P }
listen:
  host: 127.0.0.1
  port: $H2O_S
  ssl: { certificate-file: $T/cert.pem, key-file: $T/key.pem, ocsp-update-interval: 0 }
hosts:
  default:
    paths:
      /: { proxy.reverse.url: "http://127.0.0.1:$BE/" }
access-log: /dev/null
error-log: $T/h2o-error.log
H2O
start taskset -c $SERVER_CPU h2o -c "$T/h2o.conf" 2> "$T/h2o.out"
wait_port "$H2O_P"; wait_port "$H2O_S"
bench_row "h2o 2.2.5 reverse proxy" h2c "http://127.0.0.1:$H2O_P/bench"
bench_row "h2o 2.2.5 reverse proxy" tls "https://127.0.0.1:$H2O_S/bench"
stop_last

# HAProxy 2.6
HA_P=$(port); HA_S=$(port); HA_J=$(port)
cat > "$T/haproxy.cfg" <<HA
global
  nbthread 1
  maxconn 4000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend plain
  bind 127.0.0.1:$HA_P proto h2
  default_backend be
frontend tls
  bind 127.0.0.1:$HA_S ssl crt $T/combined.pem alpn h2,http/1.1
  default_backend be
frontend jwt
  bind 127.0.0.1:$HA_J proto h2
  http-request set-var(txn.bearer) http_auth_bearer
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("ES256","$T/token-pub.pem") -m int 1 }
  default_backend be
backend be
  server nginx 127.0.0.1:$BE
HA
start taskset -c $SERVER_CPU haproxy -f "$T/haproxy.cfg" -db 2> "$T/haproxy.log"
wait_port "$HA_P"; wait_port "$HA_S"
bench_row "HAProxy 2.6 reverse proxy" h2c "http://127.0.0.1:$HA_P/bench"
bench_row "HAProxy 2.6 reverse proxy" tls "https://127.0.0.1:$HA_S/bench"
bench_row "HAProxy 2.6 + ES256 jwt_verify" h2c "http://127.0.0.1:$HA_J/bench" -H "authorization: Bearer $TOKEN"
stop_last

# hegate
HG_P=$(port); HG_S=$(port); HG_A=$(port)
cat > "$T/hegate.yaml" <<HG
issuer: https://bench.hegate.test
threads: 1
listen:
  - { host: 127.0.0.1, port: $HG_P }
  - { host: 127.0.0.1, port: $HG_S, tls: { cert: $T/cert.pem, key: $T/key.pem } }
admin: { listen: 127.0.0.1:$HG_A }
redis: { url: redis://127.0.0.1:$REDIS/0, timeout: 50ms }
keys: { dir: $T/keys }
access_log: "off"
clients:
  - { id: bench, redirect_uris: [https://bench.example/cb], scopes: [bench] }
rate_limits:
  per-ip:     { key: ip, limit: 100000000, window: 1s }
  per-ip-min: { key: ip, limit: 6000000000, window: 1m }
routes:
  - { name: public,  prefix: /bench,   upstreams: [http://127.0.0.1:$BE], scopes: [] }
  - { name: limited, prefix: /limited, upstreams: [http://127.0.0.1:$BE], scopes: [], rate_limit: [per-ip, per-ip-min] }
  - { name: auth,    prefix: /auth,    upstreams: [http://127.0.0.1:$BE], scopes: [bench] }
HG
start taskset -c $SERVER_CPU "$HEGATE" -c "$T/hegate.yaml" 2> "$T/hegate.err"
wait_port "$HG_P"; wait_port "$HG_S"
bench_row "hegate public route" h2c "http://127.0.0.1:$HG_P/bench"
bench_row "hegate public route" tls "https://127.0.0.1:$HG_S/bench"
bench_row "hegate rate-limited route (2 policies)" h2c "http://127.0.0.1:$HG_P/limited"
bench_row "hegate authenticated route (cached)" h2c "http://127.0.0.1:$HG_P/auth" -H "authorization: Bearer $TOKEN"
stop_last

# ---- the table -------------------------------------------------------------------------------------------
mkdir -p "$ROOT/build/bench"
$PY - "$RESULTS" > "$ROOT/build/bench/results.md" <<'PYEOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ref = {r[1]: r for r in rows if r[0].startswith("h2o")}
def f(x):
    try: return float(x)
    except ValueError: return float("nan")
print("| server | proto | req/s | p50 ms | p99 ms | 2xx | req/s ÷ h2o | p99 ÷ h2o |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name, proto, rps, p50, p99, ok in rows:
    r = ref.get(proto)
    rr = "%.2f" % (f(rps) / f(r[2])) if r and f(r[2]) else "—"
    pr = "%.2f" % (f(p99) / f(r[4])) if r and f(r[4]) else "—"
    print("| %s | %s | %.0f | %s | %s | %s | %s | %s |" % (name, proto, f(rps), p50, p99, ok, rr, pr))
d = {(r[0], r[1]): r for r in rows}
def line(label, num, den, target, kind="rps"):
    a, b = d.get(num), d.get(den)
    if not a or not b: return
    if kind == "rps":
        v = f(a[2]) / f(b[2]); ok = v >= target
        print("- %s: %.2fx (target >= %.2fx) %s" % (label, v, target, "PASS" if ok else "MISS"))
    else:
        v = f(a[4]) / f(b[4]); ok = v <= target
        print("- %s: %.2fx (target <= %.2fx) %s" % (label, v, target, "PASS" if ok else "MISS"))
print()
print("Targets:")
for p in ("h2c", "tls"):
    line("hegate %s throughput vs h2o" % p, ("hegate public route", p), ("h2o 2.2.5 reverse proxy", p), 0.95)
    line("hegate %s p99 vs h2o" % p, ("hegate public route", p), ("h2o 2.2.5 reverse proxy", p), 1.10, "p99")
line("rate-limited route vs public route (h2c)", ("hegate rate-limited route (2 policies)", "h2c"), ("hegate public route", "h2c"), 0.85)
line("authenticated route vs public route (h2c)", ("hegate authenticated route (cached)", "h2c"), ("hegate public route", "h2c"), 0.90)
line("authenticated route vs HAProxy ES256 jwt_verify", ("hegate authenticated route (cached)", "h2c"), ("HAProxy 2.6 + ES256 jwt_verify", "h2c"), 5.0)
a, b = d.get(("hegate rate-limited route (2 policies)", "h2c")), d.get(("hegate public route", "h2c"))
if a and b:
    print("- p99 added by the two rate-limit policies: %.2f ms (target <= 1 ms) %s" % (f(a[4]) - f(b[4]), "PASS" if f(a[4]) - f(b[4]) <= 1 else "MISS"))
PYEOF
# ---- the verifier alone: ES256 cache-miss verification per core (issue 5 target: >= 12,000/s) ----------
cc -std=gnu11 -O2 -I. -DH2O_USE_EPOLL=1 -o "$T/auth_bench" bench/auth_bench.c "$ROOT/build/libhegate.a" \
   -lh2o-evloop -lhiredis -lqrencode -lpng16 -lyaml -ljansson -lssl -lcrypto -lz -lpthread -lm
{
  echo
  echo "Token verifier (library, \`bench/auth_bench.c\`, pinned to core $SERVER_CPU; OpenSSL's own ECDSA verify rate is the reference):"
  echo '```'
  taskset -c $SERVER_CPU "$T/auth_bench" 20000 1 2>&1 | grep -v '^token size'
  echo '```'
} >> "$ROOT/build/bench/results.md"

echo
cat "$ROOT/build/bench/results.md"
