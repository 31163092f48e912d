"""
tests/integration/redis_fixtures.py — what the rate-limit tests (issue 4) share: real Redis (one
redis-server, or a Redis Cluster of 3 masters + 3 replicas) on free 127.0.0.1 ports in tmp dirs,
a fast back end, a concurrent HTTP/2 load driver, and the exactness check of the shared budget.

Fixtures (import them into a test module: `from redis_fixtures import redis_server  # noqa: F401`):
  redis_server     factory: redis_server() -> RedisServer, started; kill() (SIGKILL), pause()
                   (SIGSTOP), resume() (SIGCONT), start() again on the same port; stopped at teardown
  redis_cluster    factory: redis_cluster() -> RedisCluster: 3 masters, 3 replicas
                   (redis-cli --cluster create ... --cluster-replicas 1), cluster-node-timeout 1000 ms,
                   returned once every node agrees on the slots and every replica is in sync;
                   master_of(slot), replicas_of(node); every node stopped at teardown
  fast_backend     factory: fast_backend() -> a minimal HTTP/1.1 keep-alive back end that writes each
                   answer in one send. (scripts/demo_backend.py writes head and body separately:
                   Nagle + delayed ACK then add ~40 ms to every request on a reused connection,
                   which would hide the latencies these tests measure.)
Helpers:
  limited_gateways(...)    N gateways sharing one store, one route /rl limited by named policies
  Load(gateways, path)     worker threads, each with its own h2c connection to one gateway, sending
                           one request after another; each request is recorded with its send time
                           (time.time(): the clock Redis' TIME reads too), round trip, status,
                           RateLimit field, and x-request-id (to find it in the access log)
  attach_server_durations  each request's duration as the gateway logged it
  ReadyPoller(gateways)    when each gateway's /readyz turns 200, watched from another process
  check_exact / run_exact  the shared budget: accepted == burst + limit x elapsed, within 2 %
  parse_state_field(v)     RateLimit "a";r=7;t=1, ... -> {"a": {"r": 7, "t": 1}} (strict)
Every process is started with PR_SET_PDEATHSIG (conftest.spawn): it dies with pytest.
"""

import json
import os
import random
import re
import socket
import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest
import redis

from conftest import spawn, tail
from hegatetest import H2Conn, free_port, reserve_port, route, wait_port

CLUSTER_NODE_TIMEOUT_MS = 1000


def crc16(data):
    """CRC16-CCITT (XMODEM), as Redis Cluster hashes keys."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def key_slot(key):
    """The cluster slot of KEY (str or bytes), honouring the first non-empty {hash tag}."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s != -1:
        e = k.find(b"}", s + 1)
        if e != -1 and e != s + 1:
            k = k[s + 1:e]
    return crc16(k) & 16383


assert crc16(b"123456789") == 0x31C3 and key_slot("123456789") == 12739


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


_cluster_ports = set()


def cluster_port():
    """A free port P for a cluster node whose bus port P + 10000 is free too. P in 12000-14999 keeps P
    and P + 10000 below the kernel's ephemeral range (32768+) and apart from free_port()'s range; both
    are reserved across processes as free_port() reserves its ports."""
    for _ in range(500):
        p = random.randint(12000, 14999)
        if p not in _cluster_ports and _bindable(p) and _bindable(p + 10000) and reserve_port(p) and reserve_port(p + 10000):
            _cluster_ports.add(p)
            return p
    raise RuntimeError("no free cluster port pair")


class RedisServer:
    def __init__(self, dirpath, port=None, extra=()):
        self.dir = str(dirpath)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.paused = False

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        exe = shutil.which("redis-server")
        if not exe:
            pytest.fail("redis-server is not installed")
        argv = [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--protected-mode", "no"] + self.extra
        log = open(self.log_path, "ab")
        self.proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.paused = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # listening is not enough: wait until it answers PING
            if self.proc.poll() is not None:
                break
            if wait_port(self.port, 0.2, proc=self.proc):
                try:
                    if self.client(timeout=0.5).ping():
                        return self
                except redis.RedisError:
                    pass
            time.sleep(0.02)
        self.proc.kill()
        pytest.fail("redis-server on port %d did not start: %s" % (self.port, tail(self.log_path)))

    def client(self, timeout=2.0):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout, decode_responses=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, and wait until it is gone (its port refuses connections then)."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.paused = False

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self):
        if self.proc is None:
            return
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)  # a stopped process does not act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.paused = False


@pytest.fixture
def redis_server(tmp_path):
    made = []

    def make(extra=()):
        r = RedisServer(tmp_path / ("redis%d" % len(made)), extra=extra)
        made.append(r)
        return r.start()

    yield make
    for r in made:
        r.stop()


class RedisCluster:
    """3 masters + 3 replicas (redis-cli --cluster create ... --cluster-replicas 1)."""

    def __init__(self, dirpath, masters=3, replicas=1):
        self.dir = str(dirpath)
        self.nodes = []
        for i in range(masters * (1 + replicas)):
            d = os.path.join(self.dir, "node%d" % i)
            self.nodes.append(RedisServer(d, port=cluster_port(), extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(d, "nodes.conf"),
                "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0",  # any replica may take over, however stale
                "--repl-diskless-sync-delay", "0",  # replicas sync at once, not after 5 s
                # CLUSTER SLOTS lists a replica only once its replication offset is non-zero, which
                # on an idle master takes the first replication ping (default every 10 s)
                "--repl-ping-replica-period", "1"]))
        self.replicas = replicas

    def start(self, timeout=30.0):
        for n in self.nodes:
            n.start()
        p = subprocess.run(["redis-cli", "--cluster", "create"] + [n.addr for n in self.nodes]
                           + ["--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           capture_output=True, timeout=timeout)
        if p.returncode != 0:
            pytest.fail("redis-cli --cluster create failed: %s %s" % (p.stdout.decode(errors="replace"),
                                                                      p.stderr.decode(errors="replace")))
        self.wait_healthy(timeout)
        return self

    def by_port(self, port):
        return next(n for n in self.nodes if n.port == port)

    def slots(self, via=None):
        """CLUSTER SLOTS as [(start, end, master_port, [replica ports])] asked from VIA (any live node)."""
        for n in ([via] if via else [n for n in self.nodes if n.alive() and not n.paused]):
            try:
                raw = n.client(timeout=1).execute_command("CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            return [(int(r[0]), int(r[1]), int(r[2][1]), [int(x[1]) for x in r[3:]]) for r in raw]
        return []

    def master_of(self, slot, via=None):
        for start, end, master, _ in self.slots(via):
            if start <= slot <= end:
                return self.by_port(master)
        return None

    def replicas_of(self, master):
        for _, _, m, reps in self.slots():
            if m == master.port:
                return [self.by_port(p) for p in reps]
        return []

    def healthy(self):
        """Every live node: cluster_state ok; all slots served by live masters that every node
        agrees on; each master with REPLICAS live replicas whose replication link is up."""
        views = []
        for n in self.nodes:
            if not n.alive() or n.paused:
                continue
            try:
                c = n.client(timeout=1)
                info = c.execute_command("CLUSTER", "INFO")
                if isinstance(info, dict):
                    ok = info.get("cluster_state") == "ok"
                else:
                    ok = "cluster_state:ok" in info
                if not ok:
                    return False
                views.append(sorted((s, e, m) for s, e, m, _ in self.slots(n)))
            except redis.RedisError:
                return False
        if not views or any(v != views[0] for v in views):
            return False
        covered = sum(e - s + 1 for s, e, _ in views[0])
        if covered != 16384 or not all(self.by_port(m).alive() for _, _, m in views[0]):
            return False
        # every master has its replicas attached and in sync (ready to take over)
        for _, _, m, reps in self.slots():
            live = [self.by_port(p) for p in reps if self.by_port(p).alive()]
            if len(live) < self.replicas:
                return False
            for rep in live:
                try:
                    role = rep.client(timeout=1).execute_command("ROLE")
                except redis.RedisError:
                    return False
                if role[0] != "slave" or role[3] != "connected" or int(role[2]) != m:
                    return False
        return True

    def wait_healthy(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            time.sleep(0.05)
        pytest.fail("the Redis Cluster did not become healthy within %.0fs: %s" % (
            timeout, [(n.port, n.alive()) for n in self.nodes]))

    def stop(self):
        for n in self.nodes:
            n.stop()


@pytest.fixture
def redis_cluster(tmp_path):
    made = []

    def make():
        c = RedisCluster(tmp_path / ("cluster%d" % len(made)))
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()


# --------------------------------------------------------------------------------------------
# a fast back end

_FAST_BACKEND = r"""
import asyncio, sys
BODY = b'{"ok":true}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":", 1)[1]))
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


class FastBackend:
    def __init__(self, port, proc):
        self.port, self.proc = port, proc
        self.url = "http://127.0.0.1:%d" % port


@pytest.fixture
def fast_backend(tmp_path):
    made = []

    def start():
        port = free_port()
        log = str(tmp_path / ("fast-backend-%d.log" % port))
        with open(log, "wb") as f:
            p = spawn(["/usr/bin/python3", "-c", _FAST_BACKEND, str(port)], stdout=subprocess.DEVNULL, stderr=f)
        made.append(p)
        if not wait_port(port, 10, proc=p):
            pytest.fail("fast back end did not start: %s" % tail(log))
        return FastBackend(port, p)

    yield start
    for p in made:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --------------------------------------------------------------------------------------------
# load


class Sample:
    __slots__ = ("gw", "worker", "rid", "sent", "latency", "status", "ratelimit", "error", "server")

    def __init__(self, gw, worker, rid, sent, latency, status, ratelimit=None, error=None):
        self.gw, self.worker, self.rid, self.sent, self.latency = gw, worker, rid, sent, latency
        self.status, self.ratelimit, self.error = status, ratelimit, error
        self.server = None  # the gateway's own duration (access log), see attach_server_durations

    def __repr__(self):
        return "Sample(gw=%d, rid=%s, sent=%.4f, latency=%.1fms, server=%s, status=%s, ratelimit=%r, error=%r)" % (
            self.gw, self.rid, self.sent, self.latency * 1000,
            "-" if self.server is None else "%.1fms" % (self.server * 1000), self.status, self.ratelimit, self.error)


class Load:
    """WORKERS threads per gateway in TARGETS (Gateway objects), each on its own h2c connection,
    sending GET PATH back to back from start() to stop(). A request that fails at the connection
    level is recorded with status None and its error; the worker then reconnects (bounded)."""

    def __init__(self, targets, path, workers=4, timeout=5.0):
        self.targets, self.path, self.workers, self.timeout = list(targets), path, workers, timeout
        self.samples = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _run(self, gi, wi):
        g = self.targets[gi]
        conn, local, seq = None, [], 0
        try:
            # every worker connects before any sends: check_exact's arithmetic assumes demand from the
            # first request on (a GCRA slot left unclaimed while the key is fresh is lost for good), and
            # on a busy machine the last connection can be up ~100 ms after the first request went out
            try:
                conn = H2Conn(g.plain_port, tls=False, timeout=self.timeout)
            except Exception as e:
                local.append(Sample(gi, wi, None, time.time(), 0.0, None, error="connect: %r" % e))
            try:
                self._go.wait(self.timeout)
            except threading.BrokenBarrierError:
                pass
            while not self._stop.is_set():
                try:  # connecting is not part of a request's time
                    if conn is None:
                        conn = H2Conn(g.plain_port, tls=False, timeout=self.timeout)
                except Exception as e:
                    local.append(Sample(gi, wi, None, time.time(), 0.0, None, error="connect: %r" % e))
                    self._stop.wait(0.05)
                    continue
                seq += 1
                rid = "load-%d-%d-%d" % (gi, wi, seq)
                sent, t0 = time.time(), time.monotonic()
                try:
                    r = conn.request("GET", self.path, headers=[("x-request-id", rid)], timeout=self.timeout)
                    local.append(Sample(gi, wi, rid, sent, time.monotonic() - t0, r.status_code,
                                        r.headers.get("ratelimit")))
                except Exception as e:  # recorded; the test decides whether that is acceptable
                    local.append(Sample(gi, wi, rid, sent, time.monotonic() - t0, None, error=repr(e)))
                    if conn is not None:
                        conn.close()
                    conn = None
                    self._stop.wait(0.05)
        finally:
            if conn is not None:
                conn.close()
            with self._lock:
                self.samples.extend(local)

    def start(self):
        self._go = threading.Barrier(len(self.targets) * self.workers)
        for gi in range(len(self.targets)):
            for wi in range(self.workers):
                t = threading.Thread(target=self._run, args=(gi, wi), daemon=True)
                self._threads.append(t)
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        """Stops sending; waits (bounded) for every worker's last answer. Returns the samples
        ordered by send time."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a load worker did not finish"
        return sorted(self.samples, key=lambda s: s.sent)

    def run(self, seconds):
        self.start()
        time.sleep(seconds)
        return self.stop()


def attach_server_durations(gws, samples, timeout=5.0):
    """Sets each answered sample's .server to the duration the gateway logged for it (access log:
    request head received -> response sent), free of this client's own delays. The log is
    written within 100 ms of each request: waits (bounded) until every answered request is in it."""
    want = {s.rid: s for s in samples if s.status is not None}
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for g in gws:
            with open(g.access_log_path, "rb") as f:
                for line in f:
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue  # a line being written
                    if doc.get("request_id") in want:
                        found[doc["request_id"]] = doc["duration"]
        if len(found) == len(want) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    missing = [rid for rid in want if rid not in found]
    assert not missing, "%d answered requests are not in the access logs, e.g. %s" % (len(missing), missing[:3])
    for rid, s in want.items():
        s.server = found[rid]


def percentile(values, p):
    v = sorted(values)
    if not v:
        return 0.0
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


# --------------------------------------------------------------------------------------------
# the draft-ietf-httpapi-ratelimit-headers-11 RateLimit field: a list of sf-strings with parameters

_ITEM_RE = re.compile(r'^"((?:[^"\\]|\\["\\])*)";r=(\d+);t=(\d+)$')


def parse_state_field(value):
    """'"a";r=7;t=1, "b";r=0;t=60' -> {"a": {"r": 7, "t": 1}, "b": {"r": 0, "t": 60}}, in order."""
    out = {}
    assert value, "empty RateLimit field"
    for item in value.split(", "):
        m = _ITEM_RE.match(item)
        assert m, "malformed list member %r in %r" % (item, value)
        name = re.sub(r"\\(.)", r"\1", m.group(1))
        assert name not in out, "policy %r twice in %r" % (name, value)
        out[name] = {"r": int(m.group(2)), "t": int(m.group(3))}
    return out


# --------------------------------------------------------------------------------------------
# limited gateways and the exactness check

PATH = "/rl/x"
STORE_TIMEOUT_MS = 200  # redis.timeout in these tests: far below every fault's length, and far
                        # above Redis' answer time even on a busy 2-core machine (no spurious timeouts)


def limited_gateways(gateway, backend, redis_cfg, policies, route_policies, n=2, threads=2, nodes=None,
                     on_store_down="local", timeout="%dms" % STORE_TIMEOUT_MS):
    """N gateways (nodes: N unless NODES) with one route /rl limited by ROUTE_POLICIES, one back end
    (BACKEND: the fast_backend fixture)."""
    b = backend()
    extra = {"redis": dict(redis_cfg, timeout=timeout), "rate_limits": policies,
             "on_store_down": on_store_down, "nodes": nodes or n}
    gws = [gateway([route("rl", "/rl", [b.url], rate_limit=route_policies)], extra=extra, threads=threads)
           for _ in range(n)]
    return gws, b


def ready(g):
    return httpx.get(g.admin + "/readyz", timeout=1, trust_env=False).status_code == 200


_READY_POLLER = r"""
import socket, sys, time
deadline, ports, seen = time.time() + float(sys.argv[1]), [int(p) for p in sys.argv[2:]], {}
def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
while len(seen) < len(ports) and time.time() < deadline:
    for p in ports:
        if p not in seen and ready(p):
            seen[p] = time.time()
    time.sleep(0.01)
print(" ".join(repr(seen.get(p)) for p in ports))
"""


class ReadyPoller:
    """Polls every gateway's /readyz each 10 ms from a separate process (free of this process'
    load threads, which would make the polling itself slow) until each has answered 200 once.
    result() -> for each gateway, the time.time() of its first 200, or None."""

    def __init__(self, gws, timeout=10.0):
        self.timeout = timeout
        self.proc = spawn(["/usr/bin/python3", "-c", _READY_POLLER, str(timeout)] + [str(g.admin_port) for g in gws],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def result(self):
        out, _ = self.proc.communicate(timeout=self.timeout + 5)
        return [None if v == "None" else float(v) for v in out.decode().split()]


def wait_ready(gws, timeout=5.0):
    """Waits (bounded) until every gateway's /readyz is 200; returns the time it took."""
    t0 = time.monotonic()
    deadline = time.monotonic() + timeout
    pending = list(gws)
    while pending and time.monotonic() < deadline:
        pending = [g for g in pending if not ready(g)]
        if pending:
            time.sleep(0.02)
    assert not pending, "/readyz not 200 within %.1fs" % timeout
    return time.monotonic() - t0


def check_exact(samples, limit, window_s, burst, label):
    """The shared budget, from what the clients saw. GCRA with T = window/limit and tau = burst*T,
    on Redis' clock: a fresh key admits BURST at once (first evaluation at t0), then the k-th further
    request no earlier than t0 + k*T. So in [t0, t0 + E] at most BURST + floor(E/T) requests conform,
    whoever asks; and under continuous demand every slot is taken: the schedule (tat) runs ahead of
    the clock by almost tau, so a slot claimed late is not lost (tat advances by exactly T per
    admission), only the slot opening after the last request can stay unclaimed.
    Expected: BURST + E/T, E = elapsed from the first to the last request's send time (time.time(),
    the same clock Redis' TIME reads on this host), within 2 %. Redis evaluated the first request
    somewhere between its send and the first answer any client got, and the last one between the
    last send and the last answer: E is known only that closely, so "within 2 %" means for some E in
    [last send - first answer, last answer - first send] (normally a couple of ms: < 0.2 T).
    Hard upper bound, whatever the timing: BURST + floor((last answer - first send + 1 ms)/T)
    (+1 ms: Redis truncates its clock to whole ms)."""
    assert samples, "no requests were made"
    bad = [s for s in samples if s.status not in (200, 429)]
    assert not bad, "%s: answers other than 200/429: %s" % (label, bad[:5])
    accepted = sum(1 for s in samples if s.status == 200)
    first, last = samples[0].sent, samples[-1].sent
    first_answer = min(s.sent + s.latency for s in samples)
    last_answer = max(s.sent + s.latency for s in samples)
    T = window_s / limit
    elapsed = last - first
    expected = burst + elapsed / T
    e_lo, e_hi = max(0.0, last - first_answer), last_answer - first
    lo, hi = 0.98 * (burst + e_lo / T), 1.02 * (burst + e_hi / T)
    hard_max = burst + int((last_answer - first + 0.001) / T)
    per_gw = {}
    for s in samples:
        per_gw.setdefault(s.gw, [0, 0])[0 if s.status == 200 else 1] += 1
    print("%s: %d requests (%.0f/s) over %.3fs (%.3f..%.3fs), accepted %d, expected %.1f (burst %d + %.3fs x %g/s), "
          "2%% band %.1f..%.1f, hard max %d, per gateway [200, 429]: %s" % (
              label, len(samples), len(samples) / elapsed, elapsed, e_lo, e_hi, accepted, expected, burst, elapsed,
              limit / window_s, lo, hi, hard_max, per_gw))
    assert accepted <= hard_max, "%s: %d accepted, more than GCRA can ever admit (%d)" % (label, accepted, hard_max)
    assert lo <= accepted <= hi, "%s: accepted %d, expected %.1f +- 2%% (%.1f..%.1f for the elapsed %.3f..%.3fs)" % (
        label, accepted, expected, lo, hi, e_lo, e_hi)
    # the budget really was shared: every gateway admitted some and refused some
    for gi, (ok, refused) in per_gw.items():
        assert ok > 0 and refused > 0, "%s: gateway %d answered 200 x%d, 429 x%d" % (label, gi, ok, refused)
    return accepted, expected


def store_errors(g):
    return g.metrics().value("hegate_store_errors_total")


def run_exact(gws, limit, window_s, burst, label, seconds, workers=4):
    """Drives GWS concurrently for SECONDS and checks the shared budget (check_exact). Every
    answer must have come from the store: a store error during the run (a timeout, say) would
    hand requests to on_store_down and void the arithmetic, so it fails the test on its own."""
    before = [store_errors(g) for g in gws]
    samples = Load(gws, PATH, workers=workers).run(seconds)
    after = [store_errors(g) for g in gws]
    assert after == before, "%s: store calls failed during the run (hegate_store_errors_total %s -> %s)" % (
        label, before, after)
    return check_exact(samples, limit, window_s, burst, label)
