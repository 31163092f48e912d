"""
tests/integration/test_soak.py — the long run (issue 17): a mixed load for SOAK_SECONDS (45 in
`make test`, 600 by `make soak`) with a SIGHUP reload and a Redis restart in the middle.

The load: worker threads, each with its own resident (signed in by the code flow) and one keep-alive
connection (HTTP/1.1 on the cleartext port; one worker HTTP/2 over TLS), each going round the same mix:
the public route, a route needing the resident's token, a rate-limited route, the token endpoint
(client_credentials), a city code issued and then verified by a gate. At 35 % of the run the
configuration is reloaded (a route added: it must answer once the reload is complete); at 50 % Redis is
killed (SIGKILL), stays down SOAK_REDIS_DOWN seconds and comes back with its data (appendonly).

It holds when:
- no request fails beyond the expected ones: 429 (problem+json, Retry-After) on the rate-limited route;
  503 `unavailable` from the routes and endpoints that need the store, only from the kill until
  STORE_BACK_S after Redis answers again; the public route never fails; no connection error;
- the gateway's RSS and open descriptors are flat after warm-up: the median of the last 10 % of the run
  is within 5 % (descriptors: 5 % or 2) of the median of the 10 % after warm-up (the first 20 %), and
  no sample after warm-up is over that by more than 64 MiB (the attacks' budget: the outage); under
  ASan the RSS is printed, not judged (its allocator keeps freed memory; LSan checks for leaks at exit);
- every request is accounted for in /metrics: hegate_requests_total grew by exactly what the workers
  received, route by route and code by code.
A sample a second (RSS, descriptors, requests a second) goes to soak.csv, the plot to soak.png (gnuplot),
in SOAK_OUT (make soak: docs/) or the test's tmp dir; the summary line is printed.
"""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import threading
import time

import httpx
import pytest

from hegatetest import route, sanitized
from oauthtest import GATE_SECRET, add_user, clients, code_flow
from redis_fixtures import fast_backend, redis_server  # noqa: F401

SECONDS = float(os.environ.get("SOAK_SECONDS", "45"))
REDIS_DOWN = float(os.environ.get("SOAK_REDIS_DOWN", "2"))
OUT = os.environ.get("SOAK_OUT")
WORKERS = int(os.environ.get("SOAK_WORKERS", "4"))
STORE_BACK_S = 3.0  # after Redis answers PING again, the gateway's store must be back within this
WARMUP, WINDOW = 0.20, 0.10
# the mix, one round of a worker: (kind, weight)
MIX = [("public", 4), ("query", 3), ("limited", 2), ("token", 1), ("code", 1), ("verify", 1)]
ROUTE_OF = {"public": "public", "query": "query", "limited": "limited", "token": "oauth2.token",
            "code": "qr.codes", "verify": "qr.verify", "extra": "extra"}
STORE_KINDS = {"query", "token", "code", "verify"}  # answers that need the store (503 while it is down)


class Tally:
    """What the workers received: counts by (route, code), failures with their times, a total."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_route = {}
        self.unavailable = []  # (time, kind) of each 503
        self.failures = []     # (time, kind, what)
        self.total = 0

    def add(self, kind, status, t):
        with self.lock:
            k = (ROUTE_OF[kind], status)
            self.by_route[k] = self.by_route.get(k, 0) + 1
            self.total += 1
            if status == 503:
                self.unavailable.append((t, kind))

    def fail(self, kind, what):
        with self.lock:
            self.failures.append((time.time(), kind, what))


class Worker(threading.Thread):
    def __init__(self, soak, token, tls):
        super().__init__(daemon=True)
        self.soak, self.token, self.tls = soak, token, tls
        self.code = None
        self.kind = None

    def connect(self):
        g = self.soak.g
        if self.tls:
            return httpx.Client(http1=False, http2=True, verify=False, trust_env=False, timeout=10,
                                base_url=g.https)
        return http.client.HTTPConnection("127.0.0.1", g.plain_port, timeout=10)

    def send(self, conn, method, path, headers, body=None):
        if self.tls:
            r = conn.request(method, path, headers=headers, content=body)
            return r.status_code, r.headers, r.content
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.will_close:  # http.client would reconnect by itself: a closed connection is a failure here
            self.soak.tally.fail(self.kind, "%s %d closed the connection" % (path, r.status))
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def request(self, kind):
        s = self.soak
        bearer = {"authorization": "Bearer " + self.token}
        if kind == "public":
            return "GET", "/api/v1/public/x", {}, None
        if kind == "extra":
            return "GET", "/api/v1/extra/x", {}, None
        if kind == "query":
            return "GET", "/api/v1/query/balance", bearer, None
        if kind == "limited":
            return "GET", "/api/v1/limited/x", {}, None
        if kind == "token":
            return "POST", "/oauth2/token", {"authorization": s.gate_basic,
                                            "content-type": "application/x-www-form-urlencoded"}, \
                b"grant_type=client_credentials"
        if kind == "code":
            return "POST", "/qr/v1/codes", dict(bearer, **{"content-type": "application/json"}), b'{"scene":"transit"}'
        return "POST", "/qr/v1/verify", {"authorization": "Bearer " + s.gate_token,
                                         "content-type": "application/json"}, json.dumps({"code": self.code}).encode()

    def check(self, kind, status, headers, body):
        """None if the answer is one this kind may get, else what is wrong with it."""
        if status == 503 and kind in STORE_KINDS:
            ok = headers.get("content-type", "").startswith("application/problem+json") and \
                json.loads(body).get("type", "").endswith("/unavailable")
            return None if ok else "503 not problem+json unavailable: %r" % body[:200]
        if kind == "limited" and status == 429:
            ok = headers.get("content-type", "").startswith("application/problem+json") and "retry-after" in headers
            return None if ok else "429 without problem+json and Retry-After"
        if status != 200:
            return "status %d: %r" % (status, body[:200])
        if kind == "token" and "access_token" not in json.loads(body):
            return "no access_token"
        if kind == "code":
            self.code = json.loads(body)["code"]
            if not self.code.startswith("HMT1:"):
                return "not a city code"
        if kind == "verify" and json.loads(body).get("valid") is not True:
            return "a fresh code not valid: %r" % body[:200]
        return None

    def run(self):
        s = self.soak
        conn = self.connect()
        while not s.stop.is_set():
            for kind, weight in MIX + ([("extra", 1)] if s.extra_route.is_set() else []):
                for _ in range(weight):
                    if s.stop.is_set():
                        break
                    if kind == "verify" and self.code is None:
                        continue  # the code was not issued (store down): nothing to verify
                    self.kind = kind
                    method, path, headers, body = self.request(kind)
                    try:
                        status, hdrs, data = self.send(conn, method, path, headers, body)
                    except (OSError, http.client.HTTPException, httpx.HTTPError) as e:
                        s.tally.fail(kind, "connection: %r" % e)
                        conn.close()
                        conn = self.connect()
                        continue
                    s.tally.add(kind, status, time.time())
                    what = self.check(kind, status, hdrs, data)
                    if what:
                        s.tally.fail(kind, what)
                    if kind == "verify":
                        self.code = None
        conn.close()


class Soak:
    def __init__(self, g, redis, gate_basic, gate_token):
        self.g, self.redis = g, redis
        self.gate_basic, self.gate_token = gate_basic, gate_token
        self.tally = Tally()
        self.stop = threading.Event()
        self.extra_route = threading.Event()
        self.samples = []  # (t, rss KiB, fds, requests in the last second)
        self.events = []   # (t, what)

    def sample(self, t0):
        pid = self.g.proc.pid
        last = 0
        while not self.stop.wait(1.0):
            with open("/proc/%d/status" % pid) as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            fds = len(os.listdir("/proc/%d/fd" % pid))
            total = self.tally.total
            self.samples.append((time.time() - t0, rss, fds, total - last))
            last = total


def median_between(samples, col, lo, hi):
    vals = [s[col] for s in samples if lo <= s[0] < hi]
    assert vals, "no samples between %.0f and %.0f s" % (lo, hi)
    return statistics.median(vals)


def plot(out_dir, samples, events):
    csv = os.path.join(out_dir, "soak.csv")
    with open(csv, "w") as f:
        f.write("# seconds rss_mib fds requests_per_second\n")
        for t, rss, fds, n in samples:
            f.write("%.1f %.2f %d %d\n" % (t, rss / 1024.0, fds, n))
    marks = "".join('set arrow from %.1f, graph 0 to %.1f, graph 1 nohead dt 2 lc "gray"\n'
                    'set label "%s" at %.1f, graph %.2f offset 0.5,0 font ",8"\n' % (t, t, what, t, 0.96 - 0.05 * i)
                    for i, (t, what) in enumerate(events))
    png = os.path.join(out_dir, "soak.png")
    script = """set terminal pngcairo size 900,420 font ",9"
set output "%s"
set title "hegate soak: %d s of mixed load (reload and Redis restart marked)"
set xlabel "seconds"
set ylabel "RSS MiB, open descriptors"
set y2label "requests a second"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set key bottom right
%s
plot "%s" using 1:2 with lines lw 2 title "RSS (MiB)", "" using 1:3 with lines lw 2 title "descriptors", \\
     "" using 1:4 axes x1y2 with lines title "requests/s"
""" % (png, round(samples[-1][0]), marks, csv)
    subprocess.run(["gnuplot"], input=script.encode(), check=True, capture_output=True, timeout=60)
    assert os.path.getsize(png) > 1000
    return png


def requests_by_route(g):
    m = g.metrics()
    return {(labels["route"], int(labels["code"])): int(v) for _, labels, v in m.find("hegate_requests_total")}


@pytest.mark.watchdog(SECONDS + 150)
def test_soak_mixed_load_reload_and_redis_restart(gateway, fast_backend, redis_server, hegate_bin, tmp_path,
                                                  monkeypatch):
    assert shutil.which("gnuplot"), "gnuplot is not installed (scripts/deps.sh)"
    if sanitized(hegate_bin):  # ASan keeps 256 MiB of freed memory resident by default (its quarantine)
        monkeypatch.setenv("ASAN_OPTIONS", ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                                  "quarantine_size_mb=4"])))
    r = redis_server(extra=("--appendonly", "yes"))  # it comes back with its data, as a city's would
    b = fast_backend()
    routes = [route("public", "/api/v1/public", [b.url]),
              route("query", "/api/v1/query", [b.url], scopes=["query"]),
              route("limited", "/api/v1/limited", [b.url], rate_limit=["per-ip"])]
    extra = {"redis": {"url": r.url, "timeout": "500ms"}, "clients": clients(hegate_bin),
             "tokens": {"access_ttl": "30m"}, "rate_limits": {"per-ip": {"key": "ip", "limit": 200, "window": "1s"}},
             "on_store_down": "local", "nodes": 1, "qr": {"code_ttl": "60s", "credential_ttl": "72h", "skew": "20s"}}
    g = gateway(routes, extra=extra, threads=2, start=False)
    users = [add_user(hegate_bin, g.cfg_path) for _ in range(WORKERS)]
    g.start()
    tokens = []
    with g.client(http2=True) as c:
        for phone, password, _ in users:
            tok, _, _ = code_flow(c, g.https, phone, password, scope="openid query qr")
            tokens.append(tok["access_token"])
        basic = "Basic " + __import__("base64").b64encode(("gate-line1:" + GATE_SECRET).encode()).decode()
        t = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials"},
                   headers={"authorization": basic})
        assert t.status_code == 200, t.text
    soak = Soak(g, r, basic, t.json()["access_token"])
    before = requests_by_route(g)

    t0 = time.time()
    sampler = threading.Thread(target=soak.sample, args=(t0,), daemon=True)
    workers = [Worker(soak, tok, tls=(i == 0)) for i, tok in enumerate(tokens)]
    for w in workers + [sampler]:
        w.start()
    redis_down = redis_back = None
    try:
        time.sleep(SECONDS * 0.35)
        cfg = dict(g.cfg, routes=g.cfg["routes"] + [route("extra", "/api/v1/extra", [b.url])])
        g.write_config(cfg)
        soak.events.append((time.time() - t0, "reload"))
        g.reload(wait=True)
        soak.extra_route.set()
        time.sleep(max(0.0, t0 + SECONDS * 0.5 - time.time()))
        soak.events.append((time.time() - t0, "redis killed"))
        redis_down = time.time()
        r.kill()
        time.sleep(REDIS_DOWN)
        r.start()
        redis_back = time.time()
        soak.events.append((redis_back - t0, "redis back"))
        time.sleep(max(0.0, t0 + SECONDS - time.time()))
    finally:
        soak.stop.set()
        for w in workers + [sampler]:
            w.join(20)
    assert g.alive(), "the gateway died: %s" % g.stderr()[-3000:]
    after = requests_by_route(g)

    # 1. no failure beyond the expected ones, and 503 only while the store was away
    tally = soak.tally
    assert not tally.failures, "%d failures, first: %r" % (len(tally.failures), tally.failures[:5])
    late = [(t - redis_back, kind) for t, kind in tally.unavailable
            if not redis_down <= t <= redis_back + STORE_BACK_S]
    assert not late, "503 outside the store's absence (s after Redis was back, kind): %r" % late[:10]
    assert tally.by_route.get(("extra", 200), 0) > 0, "the route added by the reload never answered"
    for kind in ("public", "query", "limited", "token", "code", "verify"):
        assert tally.by_route.get((ROUTE_OF[kind], 200), 0) > 0, "no %s request succeeded" % kind

    # 2. every request accounted for, route by route, code by code
    grew = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert grew == tally.by_route, "metrics %r != received %r" % (grew, tally.by_route)

    # 3. flat after warm-up
    s = soak.samples
    end = s[-1][0]
    rss0 = median_between(s, 1, WARMUP * end, (WARMUP + WINDOW) * end)
    rss1 = median_between(s, 1, (1 - WINDOW) * end, end + 1)
    fd0 = median_between(s, 2, WARMUP * end, (WARMUP + WINDOW) * end)
    fd1 = median_between(s, 2, (1 - WINDOW) * end, end + 1)
    out_dir = OUT or str(tmp_path)
    os.makedirs(out_dir, exist_ok=True)
    png = plot(out_dir, s, soak.events)
    rates = [x[3] for x in s[1:]]
    unavailable_s = (max(t for t, _ in tally.unavailable) - redis_down) if tally.unavailable else 0.0
    peak = max(x[1] for x in s if x[0] >= WARMUP * end)
    print("\nsoak: %.0f s, %d requests (%.0f/s, min %d/s), RSS %.1f -> %.1f MiB (%+.1f %%, peak %.1f), descriptors "
          "%.0f -> %.0f, 503 for %.1f s from the Redis kill (%d answers), %s%s" % (
              end, tally.total, tally.total / end, min(rates), rss0 / 1024, rss1 / 1024,
              100.0 * (rss1 - rss0) / rss0, peak / 1024, fd0, fd1, unavailable_s, len(tally.unavailable), png,
              " (ASan)" if sanitized(hegate_bin) else ""))
    if not sanitized(hegate_bin):  # ASan's allocator keeps freed memory (quarantine, metadata): LSan judges leaks there
        assert rss1 <= rss0 * 1.05, "RSS grew %.1f -> %.1f MiB after warm-up" % (rss0 / 1024, rss1 / 1024)
        # nor in between: the reload and the Redis outage stay within the attacks' memory budget (a stop
        # once saw +35 MiB for the 2 s of an outage, gone when Redis was back; not seen since)
        assert peak <= rss0 + 64 * 1024, "RSS peaked at %.1f MiB (%.1f after warm-up)" % (peak / 1024, rss0 / 1024)
    assert abs(fd1 - fd0) <= max(2, 0.05 * fd0), "descriptors %.0f -> %.0f after warm-up" % (fd0, fd1)
