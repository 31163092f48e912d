"""Sign out everywhere under faults (SPEC §6, issue 16): "a signed-out session's access tokens are
refused by every node within 1 s", also while a node's revocation subscriber is away.

Each scenario: three gateways A, B, C on one store (and one keys dir); a resident signs in through A
(code flow) and B and C accept the access token. The fault is staged; then the session is logged out
through A (POST /oauth2/logout with the token) and the token is asked on B and C (and A) every 50 ms
on an authenticated route: each must answer 401 within 1 s of the logout's answer (the time of the
first 401's answer counts: the node had refused by then at the latest), and keep answering 401.
  1. cluster: the node B's subscriber is connected to (found by CLIENT LIST, name
     hegate-revocations-<pid>) SIGKILLed; a master's replica promoted first
  2. B's subscriber connection black-holed by a TCP proxy in the test (B's redis.url points at it),
     the store reachable: B asks the store directly; its /readyz says so; then it subscribes again
  3. a single Redis restarted: the logout right after it answers again
  4. the store unreachable: on_store_down decides (closed: 503; open/local: 200, counted)
Every time measured is printed; the module prints the fault table at its end.
"""

import datetime
import json
import select
import socket
import threading
import time

import httpx
import pytest
import redis

from hegatetest import assert_problem, free_port, route
from oauthtest import add_user, clients, code_flow, verify
from redis_fixtures import redis_cluster, redis_server, wait_ready  # noqa: F401
from test_oauth_cluster import SLOT as ID_SLOT
from test_oauth_flow import api, client

REFUSED_WITHIN_S = 1.0     # SPEC §6
POLL_S = 0.05              # how often B and C are asked
WATCH_AFTER_S = 3.0        # how long a node is watched after the logout (to tell "late" from "never")
STILL_REFUSED_POLLS = 3    # polls after the first 401 that must be 401 too
STORE_TIMEOUT = "200ms"    # redis.timeout: far below every fault, far above Redis' answer time here
# the subscriber probes every 250 ms: one unanswered for 500 ms and token checks ask the store, for 1 s and
# the connection is replaced; so a silent cut is noticed (state "store") within 0.75 s. The staging waits longer
SILENT_CUT_NOTICED_S = 2.5
CUT_S = 7.0                # how long the proxy black-holes B's subscriber: noticed (2.5) + watched (3) + margin
RESUBSCRIBED_WITHIN_S = 3.0

table = []  # (fault, node, seconds until refused or None, last accepted request's send time), printed at the end


@pytest.fixture(scope="module", autouse=True)
def fault_table():
    yield
    if table:
        print("\n---- sign-out under faults: from the logout's answer until the node refused (first 401 answered), "
              "and the last request it accepted (sent at) ----")
        print("%-58s %-4s %-12s %s" % ("fault", "node", "refused by", "last 200 sent"))
        for fault, node, took, last in table:
            print("%-58s %-4s %-12s %s" % (fault, node, "never (%.0f s)" % WATCH_AFTER_S if took is None
                                           else "%.3f s" % took, fmt(last)))


# ---------------------------------------------------------------------------------------------
# the gateways, the resident, the store


def idp_gateways(gateway, backend, hegate_bin, redis_cfgs, modes=None):
    """One gateway per REDIS_CFGS entry (A first), sharing the keys dir, the SPEC clients and a
    protected route; one resident added through A's config. Returns (gateways, phone, password)."""
    b = backend("query")
    modes = modes or ["local"] * len(redis_cfgs)
    gws = [gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                   extra={"clients": clients(hegate_bin), "tokens": {"access_ttl": "5m", "audience": "hegate"},
                          "redis": dict(cfg, timeout=STORE_TIMEOUT), "on_store_down": mode}, start=False)
           for cfg, mode in zip(redis_cfgs, modes)]
    phone, password, _ = add_user(hegate_bin, gws[0].cfg_path)
    for g in gws:
        g.start()
    wait_ready(gws, timeout=10.0)
    return gws, phone, password


def sign_in(a, phone, password):
    """A new sign-in session through A (a browser of its own): (access token, sid)."""
    with client(a) as c:
        t, _, _ = code_flow(c, a.https, phone, password)
        return t["access_token"], verify(c, a.https, t["access_token"])["sid"]


def accepted_everywhere(gws, token):
    codes = [api(g, token).status_code for g in gws]
    assert codes == [200] * len(gws), "the fresh token is not accepted on every node: %s" % codes


def logout(a, token, retry_for=0.0):
    """POST /oauth2/logout on A; returns the time.time() of its 204/200 answer. With RETRY_FOR, a
    5xx (A's store not back yet) is retried every 20 ms for that long; each attempt is printed."""
    deadline = time.monotonic() + retry_for
    attempts = []
    with client(a) as c:
        while True:
            r = c.post(a.https + "/oauth2/logout", headers={"authorization": "Bearer " + token})
            t = time.time()
            attempts.append(r.status_code)
            if r.status_code < 500 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    if len(attempts) > 1:
        print("logout on A: answers %s" % attempts)
    assert r.status_code in (200, 204), "logout on A answered %d: %s" % (r.status_code, r.text[:300])
    return t


def readyz(g):
    r = httpx.get(g.admin + "/readyz", timeout=2, trust_env=False)
    return r.json()


def revocations_state(g):
    return readyz(g).get("revocations")


def wait_state(g, want, timeout):
    """Polls G's /readyz every 20 ms until "revocations" is WANT; returns the seconds it took, or
    None (and the last state seen is printed)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 <= timeout:
        last = revocations_state(g)
        if last == want:
            return time.monotonic() - t0
        time.sleep(0.02)
    print("%s: /readyz revocations still %r after %.1f s (wanted %r)" % (g.dir, last, timeout, want))
    return None


def metric(g, name):
    """NAME's value on G's /metrics, or None when it is not there (asserted where it matters, so
    that a missing counter does not hide what the node did)."""
    m = g.metrics()
    return m.value(name) if m.has(name) else None


def revocation_log(g, since=None):
    """B's stderr lines about revocations (optionally from the time.time() SINCE on), for the report."""
    out = []
    for line in g.stderr().splitlines():
        if "revocation" not in line and "subscri" not in line:
            continue
        if since is not None:
            try:
                ts = datetime.datetime.strptime(line[:24], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
            except ValueError:
                ts = None
            if ts is not None:
                line = "%+.3f s  %s" % (ts - since, line[25:])
        out.append(line)
    return "\n".join(out) or "(no revocation lines)"


def subscribers_on(node):
    """Names of the connections subscribed on NODE (a RedisServer)."""
    return {c.get("name") or "(unnamed %s)" % c.get("addr") for c in node.client(timeout=1).client_list()
            if int(c.get("sub", 0)) > 0}


def subscriber_name(g):
    return "hegate-revocations-%d" % g.proc.pid


def find_subscriber(nodes, g, timeout):
    """The node of NODES whose CLIENT LIST holds G's subscriber (by name): (node, seconds) or (None, None)."""
    want = subscriber_name(g)
    t0 = time.monotonic()
    while time.monotonic() - t0 <= timeout:
        for n in nodes:
            if not n.alive():
                continue
            try:
                if any(c.get("name") == want for c in n.client(timeout=1).client_list()):
                    return n, time.monotonic() - t0
            except redis.RedisError:
                pass
        time.sleep(0.05)
    return None, None


def numsub(r):
    return r.client().execute_command("PUBSUB", "NUMSUB", "hegate:{id}:revocations")[1]


def wait_numsub(r, n, timeout=3.0):
    deadline = time.monotonic() + timeout
    while numsub(r) < n:
        assert time.monotonic() < deadline, "only %d of %d gateways are subscribed" % (numsub(r), n)
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# watching a token on some nodes


class TokenWatch:
    """One thread per node asks TOKEN on the node's authenticated route every POLL_S (fixed rate,
    one HTTP/2 connection per node), from start() on. Once the logout's answer is known (mark(t0)),
    each goes on until it has asked at least once more than REFUSED_WITHIN_S + 0.2 s after T0 and
    STILL_REFUSED_POLLS times after its first 401, or until WATCH_AFTER_S after T0.

    What SPEC §6 means, observed from here: every request sent REFUSED_WITHIN_S or more after the
    logout's answer is refused (the node received it later still), and once refused, always refused.
    "refused" in the report is the answer time of the first 401 (the node refused by then at the
    latest); "last 200" is the send time of the last request it accepted."""

    def __init__(self, nodes, token):
        self.nodes = nodes  # [(label, gateway)]
        self.token = token
        self.t0 = None
        self._marked = threading.Event()
        self.polls = {label: [] for label, _ in nodes}  # label -> [(sent, answered, status or repr(error))]
        self._threads = [threading.Thread(target=self._run, args=(label, g), daemon=True) for label, g in nodes]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def mark(self, t0):
        self.t0 = t0
        self._marked.set()

    def _done(self, out):
        if not self._marked.is_set():
            return False
        now = time.time()
        if now > self.t0 + WATCH_AFTER_S:
            return True
        after = [p for p in out if p[0] >= self.t0]
        first = next((i for i, p in enumerate(after) if p[2] == 401), None)
        return (first is not None and len(after) - 1 - first >= STILL_REFUSED_POLLS
                and after[-1][0] >= self.t0 + REFUSED_WITHIN_S + 0.2)

    def _run(self, label, g):
        out = self.polls[label]
        hard_deadline = time.monotonic() + 30  # bounded whatever happens
        with g.client(http2=True, timeout=2) as c:
            start, k = time.monotonic(), 0
            while time.monotonic() < hard_deadline and not self._done(out):
                sent = time.time()
                try:
                    st = c.get(g.https + "/api/v1/query/fund", headers={"authorization": "Bearer " + self.token}).status_code
                except httpx.HTTPError as e:
                    st = repr(e)
                out.append((sent, time.time(), st))
                k += 1
                pause = start + k * POLL_S - time.monotonic()
                if pause > 0:
                    time.sleep(pause)

    def result(self):
        for t in self._threads:
            t.join(35)
        assert not any(t.is_alive() for t in self._threads), "a token watcher did not finish"
        out = {}
        for label, _ in self.nodes:
            polls = self.polls[label]
            before = [p for p in polls if p[1] < self.t0]  # answered before the logout's answer
            after = [p for p in polls if p[1] >= self.t0]
            first = next((p for p in after if p[2] == 401), None)
            last_ok = max((p[0] for p in after if p[2] == 200), default=None)
            out[label] = {
                "refused": None if first is None else first[1] - self.t0,
                "last_200": None if last_ok is None else last_ok - self.t0,
                "polls": len(after),
                "asked_late": sum(1 for p in after if p[0] >= self.t0 + REFUSED_WITHIN_S),
                "late_200": [round(p[0] - self.t0, 3) for p in after if p[0] >= self.t0 + REFUSED_WITHIN_S and p[2] == 200],
                "before": [p[2] for p in before],
                "after_first_401": [] if first is None else [p[2] for p in after[after.index(first) + 1:]],
                "odd": [p for p in after if p[2] not in (200, 401)],
            }
        return out


def watch_after_logout(a, token, nodes, retry_for=0.0):
    """Logs TOKEN's session out on A, then watches NODES; returns (t0, results)."""
    t0 = logout(a, token, retry_for)
    w = TokenWatch(nodes, token)
    w.mark(t0)
    return t0, w.start().result()


def report(fault, res):
    for label, r in res.items():
        table.append((fault, label, r["refused"], r["last_200"]))
        print("%s: %s refused %s after the logout's answer (last 200 for a request sent at %s; %d polls)" % (
            fault, label, "never" if r["refused"] is None else "by %.3f s" % r["refused"], fmt(r["last_200"]), r["polls"]))


def fmt(x):
    return "-" if x is None else "%+.3f s" % x


def problems(res):
    """Every way RES breaks SPEC §6, as sentences (empty when it holds)."""
    bad = []
    for label, r in res.items():
        if r["refused"] is None:
            bad.append("%s still accepted the token %.1f s after the logout" % (label, WATCH_AFTER_S))
        if r["late_200"]:
            bad.append("%s accepted requests sent %s s after the logout's answer (> %.1f s)" % (
                label, r["late_200"][:5], REFUSED_WITHIN_S))
        if r["asked_late"] == 0:
            bad.append("%s was not asked %.1f s after the logout at all (the watch ended early)" % (label, REFUSED_WITHIN_S))
        if any(s != 401 for s in r["after_first_401"]):
            bad.append("%s accepted the token again after refusing it: %s" % (label, r["after_first_401"]))
        if r["odd"]:
            bad.append("%s answered neither 200 nor 401: %s" % (label, r["odd"][:3]))
    return bad


# ---------------------------------------------------------------------------------------------
# a TCP proxy that can black-hole the subscriber connection


class RedisProxy:
    """127.0.0.1:port -> Redis, a thread per connection (at most MAX_CONNS). A connection whose
    client bytes carry a SUBSCRIBE command (RESP bulk "SUBSCRIBE") is the subscriber. cut(seconds):
    every subscriber connection is black-holed (nothing forwarded either way, the sockets stay open;
    closed when the cut ends), and a connection that sends SUBSCRIBE while the cut lasts is closed
    before that command is forwarded. Other connections (the store's) are forwarded throughout."""

    MAX_CONNS = 32
    MARK = b"$9\r\nSUBSCRIBE\r\n"

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d" % self.port
        self.events = []  # (time.time(), connection number, what)
        self._lock = threading.Lock()
        self._conns = {}  # number -> {"subscriber": bool, "holed": bool}
        self._cut_until = 0.0
        self._stop = threading.Event()
        self._threads = []
        self._n = 0

    def start(self):
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", self.port))
        self._lsock.listen(16)
        self._lsock.settimeout(0.05)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def log(self, n, what):
        self.events.append((time.time(), n, what))

    def cutting(self):
        return time.monotonic() < self._cut_until

    def cut(self, seconds):
        with self._lock:
            self._cut_until = time.monotonic() + seconds
            for n, c in self._conns.items():
                if c["subscriber"]:
                    c["holed"] = True
                    self.log(n, "subscriber black-holed")

    def live_subscribers(self):
        with self._lock:
            return sum(1 for c in self._conns.values() if c["subscriber"] and not c["holed"])

    def _accept(self):
        while not self._stop.is_set():
            try:
                cs, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._n += 1
                n = self._n
                if len(self._conns) >= self.MAX_CONNS:
                    self.log(n, "refused: too many connections")
                    cs.close()
                    continue
                self._conns[n] = {"subscriber": False, "holed": False}
            t = threading.Thread(target=self._pump, args=(n, cs), daemon=True)
            self._threads.append(t)
            t.start()

    def _pump(self, n, cs):
        state = self._conns[n]
        up = None
        try:
            up = socket.create_connection(self.target, timeout=1)
            cs.settimeout(5)
            up.settimeout(5)
            seen = b""
            while not self._stop.is_set():
                if state["holed"]:
                    if not self.cutting():
                        self.log(n, "black-holed subscriber closed (cut over)")
                        return
                    self._stop.wait(0.05)
                    continue
                ready, _, _ = select.select([cs, up], [], [], 0.05)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        self.log(n, "closed by the %s" % ("gateway" if s is cs else "server"))
                        return
                    if state["holed"]:
                        break  # cut between select and here: swallowed, as a black hole does
                    if s is cs:
                        if not state["subscriber"]:
                            seen = (seen + data)[-4096:]
                            if self.MARK in seen.upper():
                                with self._lock:
                                    state["subscriber"] = True
                                    if self.cutting():
                                        self.log(n, "SUBSCRIBE during the cut: connection closed")
                                        return
                                self.log(n, "subscriber connected")
                        up.sendall(data)
                    else:
                        cs.sendall(data)
        except OSError as e:
            self.log(n, "error %r" % e)
        finally:
            for s in (cs, up):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            with self._lock:
                self._conns.pop(n, None)

    def stop(self):
        self._stop.set()
        try:
            self._lsock.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(5)

    def timeline(self, since):
        return "\n".join("%+.3f s  conn %d: %s" % (t - since, n, what) for t, n, what in self.events)


@pytest.fixture
def redis_proxy():
    made = []

    def make(target_port):
        p = RedisProxy(target_port).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


class StateWatch:
    """Polls G's /readyz every 50 ms in a thread; records each change of "revocations" (time.time())."""

    def __init__(self, g):
        self.g = g
        self.changes = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        last = object()
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                s = revocations_state(self.g)
            except (httpx.HTTPError, ValueError) as e:
                s = "error %r" % e
            if s != last:
                self.changes.append((time.time(), s))
                last = s
            self._stop.wait(0.05)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return self.changes

    def first(self, state):
        return next((t for t, s in self.changes if s == state), None)

    def timeline(self, since):
        return ", ".join("%+.3f s %r" % (t - since, s) for t, s in self.changes)


# ---------------------------------------------------------------------------------------------
# 0. no fault: the baseline the others stand on

STEADY_S = 5.0  # many rounds of the subscriber's probe (every 250 ms, 1 s to answer before a reconnect)


def test_subscriber_steady_without_faults(gateway, backend, hegate_bin, redis_server):  # noqa: F811
    """With nothing wrong, each gateway keeps one subscriber connection (the same Redis client id
    throughout, its probes answered), /readyz says "subscribed" all along, and no token check goes
    to the store: the fault tests below measure faults, not a subscriber that comes and goes."""
    r = redis_server()
    gws, phone, password = idp_gateways(gateway, backend, hegate_bin, [{"url": r.url}] * 3)
    wait_numsub(r, 3)
    token, _ = sign_in(gws[0], phone, password)

    def ids():
        listed = r.client().client_list()
        return [sorted(c["id"] for c in listed if c.get("name") == subscriber_name(g)) for g in gws]

    first = ids()
    checks_before = [metric(g, "hegate_revocation_store_checks_total") for g in gws]
    watches = [StateWatch(g).start() for g in gws]
    t_start = time.time()
    while time.time() < t_start + STEADY_S:
        accepted_everywhere(gws, token)
        time.sleep(0.2)
    changes = [w.stop() for w in watches]
    last = ids()
    checks_after = [metric(g, "hegate_revocation_store_checks_total") for g in gws]
    for label, g, w in zip("ABC", gws, watches):
        print("%s: subscriber ids %s -> %s; /readyz revocations %s; store checks %s -> %s; log:\n%s" % (
            label, first["ABC".index(label)], last["ABC".index(label)], w.timeline(t_start),
            checks_before["ABC".index(label)], checks_after["ABC".index(label)], revocation_log(g, t_start)))
    assert all(len(i) == 1 for i in first), "subscriber connections per gateway (by name): %s" % first
    assert [[s for _, s in ch] for ch in changes] == [["subscribed"]] * len(gws), \
        "/readyz revocations over %.0f s without a fault: %s" % (STEADY_S, [w.timeline(t_start) for w in watches])
    assert last == first, "a subscriber connection was replaced without a fault: %s -> %s" % (first, last)
    assert checks_after == checks_before, "token checks asked the store without a fault: %s -> %s" % (
        checks_before, checks_after)


# ---------------------------------------------------------------------------------------------
# 1. cluster: the node B's subscriber is on, killed


def cluster_serves(c):
    """Every live node says cluster_state:ok and maps all 16384 slots to the same live masters."""
    views = []
    for n in c.nodes:
        if not n.alive():
            continue
        try:
            info = n.client(timeout=1).execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        ok = info.get("cluster_state") == "ok" if isinstance(info, dict) else "cluster_state:ok" in info
        view = sorted((s, e, m) for s, e, m, _ in c.slots(n))
        if not ok or sum(e - s + 1 for s, e, _ in view) != 16384 or not all(c.by_port(m).alive() for _, _, m in view):
            return False
        views.append(view)
    return bool(views) and all(v == views[0] for v in views)


def test_cluster_node_of_b_subscriber_killed(gateway, backend, hegate_bin, redis_cluster):  # noqa: F811
    c = redis_cluster()
    owner = c.master_of(ID_SLOT)  # runs the logout script; B's first seed, so B subscribes through a master
    masters = [owner] + [n for n in c.nodes if n is not owner and c.replicas_of(n)]
    replicas = [n for n in c.nodes if n not in masters]
    seeds_ab = [n.url for n in masters + replicas]
    seeds_c = [n.url for n in replicas + masters]  # C through a replica: PUBLISH reaches every node
    (a, b, cc), phone, password = idp_gateways(gateway, backend, hegate_bin,
                                               [{"cluster": seeds_ab}, {"cluster": seeds_ab}, {"cluster": seeds_c}])
    token, _ = sign_in(a, phone, password)
    accepted_everywhere([a, b, cc], token)

    node, _ = find_subscriber(c.nodes, b, timeout=3.0)
    assert node is not None, "B's subscriber (%s) is on no node; subscribers per node: %s" % (
        subscriber_name(b), {n.port: subscribers_on(n) for n in c.nodes})
    role = node.client().execute_command("ROLE")[0]
    heir = c.replicas_of(node)[0] if role == "master" else None
    fault = "cluster: %s under B's subscriber SIGKILLed%s" % (role, ", replica promoted" if heir else "")
    print("B's subscriber is on %s (port %d, %s); killing it" % (subscriber_name(b), node.port, role))
    t_kill = time.time()
    node.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not cluster_serves(c):
        time.sleep(0.05)
    assert cluster_serves(c), "the cluster did not serve every slot again within 10 s of the kill"
    if heir is not None:
        assert heir.client().execute_command("ROLE")[0] == "master", "the killed master's replica was not promoted"
    id_master = c.master_of(ID_SLOT)
    assert id_master is not None and id_master.alive()
    t_served = time.time()
    print("%s: the cluster serves every slot again %.2f s after the kill ({id} on port %d)" % (
        fault, t_served - t_kill, id_master.port))

    t0, res = watch_after_logout(a, token, [("B", b), ("C", cc), ("A", a)], retry_for=3.0)
    print("logout answered %.2f s after the kill" % (t0 - t_kill))
    report(fault, res)
    again, took = find_subscriber([n for n in c.nodes if n.alive()], b, timeout=5.0)
    print("B's subscriber found again on port %s, %.2f s after the kill" % (
        again.port if again else None, time.time() - t_kill if again else float("nan")))
    bad = problems(res)
    assert not bad, "; ".join(bad) + "\nB's log:\n" + revocation_log(b, t_kill)
    assert again is not None, "B's subscriber is on no live node 5 s after the logout; per node: %s\nB's log:\n%s" % (
        {n.port: subscribers_on(n) for n in c.nodes if n.alive()}, revocation_log(b, t_kill))


# ---------------------------------------------------------------------------------------------
# 2. B's subscriber connection cut while the store stays reachable


def proxied_gateways(gateway, backend, hegate_bin, redis_server, redis_proxy):  # noqa: F811
    """A and C on Redis directly, B through the proxy; every gateway subscribed."""
    r = redis_server()
    proxy = redis_proxy(r.port)
    gws, phone, password = idp_gateways(gateway, backend, hegate_bin, [{"url": r.url}, {"url": proxy.url}, {"url": r.url}])
    wait_numsub(r, 3)
    deadline = time.monotonic() + 3
    while proxy.live_subscribers() != 1:
        assert time.monotonic() < deadline, "B's subscriber did not come through the proxy: %s" % proxy.events
        time.sleep(0.02)
    return r, proxy, gws, phone, password


def test_subscriber_cut_store_reachable(gateway, backend, hegate_bin, redis_server, redis_proxy):  # noqa: F811
    """The brief's case: the logout once B has had the time to notice the cut (its probe)."""
    r, proxy, (a, b, c), phone, password = proxied_gateways(gateway, backend, hegate_bin, redis_server, redis_proxy)
    token, _ = sign_in(a, phone, password)
    control, _ = sign_in(a, phone, password)  # a session that stays signed in
    accepted_everywhere([a, b, c], token)
    accepted_everywhere([b], control)
    state_before = revocations_state(b)
    checks_before = metric(b, "hegate_revocation_store_checks_total")
    watch = StateWatch(b).start()

    t_cut = time.time()
    proxy.cut(CUT_S)
    noticed = wait_state(b, "store", SILENT_CUT_NOTICED_S)
    time.sleep(max(0.0, t_cut + SILENT_CUT_NOTICED_S - time.time()))  # the same staging, noticed or not
    control_during = api(b, control).status_code  # store asked: a live session is still accepted
    t0, res = watch_after_logout(a, token, [("B", b), ("C", c), ("A", a)])
    state_during, t_state = revocations_state(b), time.time()
    checks_after = metric(b, "hegate_revocation_store_checks_total")
    control_after = api(b, control).status_code

    back = wait_state(b, "subscribed", CUT_S + RESUBSCRIBED_WITHIN_S - (time.time() - t_cut))
    t_back = time.time()
    watch.stop()
    report("subscriber of B black-holed, store reachable", res)
    print("B /readyz revocations: %s" % watch.timeline(t_cut))
    print("proxy:\n%s" % proxy.timeline(t_cut))
    print("B's log:\n%s" % revocation_log(b, t_cut))
    print("hegate_revocation_store_checks_total on B: %s before the cut, %s after the logout" % (
        checks_before, checks_after))
    print("B noticed the cut after %s s; subscribed again %.2f s after the cut ended" % (
        "%.2f" % noticed if noticed is not None else "never", t_back - t_cut - CUT_S))

    bad = problems(res)
    assert not bad, "; ".join(bad)
    assert t_state < t_cut + CUT_S, "the test itself was too slow: the cut ended before /readyz was read"
    assert control_during == 200 and control_after == 200, \
        "B refused a session nobody signed out (asking the store): %d, %d" % (control_during, control_after)
    assert checks_before is not None and checks_after > checks_before, \
        "B did not ask the store (hegate_revocation_store_checks_total %s -> %s)" % (checks_before, checks_after)
    assert state_before == "subscribed", "B /readyz revocations before the cut: %r" % state_before
    assert state_during == "store", "B /readyz revocations during the cut: %r" % state_during
    assert back is not None, "B not subscribed again %.1f s after the cut ended" % RESUBSCRIBED_WITHIN_S
    # subscribed again and resynced: the signed-out session stays refused, the other one accepted
    assert api(b, token).status_code == 401 and api(b, control).status_code == 200
    assert proxy.live_subscribers() == 1


def test_subscriber_cut_logout_at_once(gateway, backend, hegate_bin, redis_server, redis_proxy):  # noqa: F811
    """SPEC §6 without the grace: the logout right after the cut, before B can have noticed it.
    The publication is lost in the black hole; B must still refuse within 1 s."""
    r, proxy, (a, b, c), phone, password = proxied_gateways(gateway, backend, hegate_bin, redis_server, redis_proxy)
    token, _ = sign_in(a, phone, password)
    accepted_everywhere([a, b, c], token)
    watch = StateWatch(b).start()
    t_cut = time.time()
    proxy.cut(CUT_S)
    t0, res = watch_after_logout(a, token, [("B", b), ("C", c)])
    watch.stop()
    report("subscriber of B black-holed, logout at once", res)
    print("logout answered %.3f s after the cut; B /readyz revocations: %s" % (t0 - t_cut, watch.timeline(t_cut)))
    print("proxy:\n%s" % proxy.timeline(t_cut))
    print("B's log:\n%s" % revocation_log(b, t_cut))
    bad = problems(res)
    assert not bad, "; ".join(bad)


def test_subscriber_cut_token_in_use_until_logout(gateway, backend, hegate_bin, redis_server, redis_proxy):  # noqa: F811
    """While B asks the store (subscriber cut and noticed), the token is in use on B every 50 ms
    right up to the logout, as a phone's app would use it, and the logout comes right after B has
    asked the store about it (hegate_revocation_store_checks_total moved): whatever B remembers of
    that answer, it must refuse the token within 1 s of the logout's answer all the same."""
    r, proxy, (a, b, c), phone, password = proxied_gateways(gateway, backend, hegate_bin, redis_server, redis_proxy)
    token, _ = sign_in(a, phone, password)
    accepted_everywhere([a, b, c], token)
    t_cut = time.time()
    proxy.cut(CUT_S)
    noticed = wait_state(b, "store", SILENT_CUT_NOTICED_S)
    w = TokenWatch([("B", b)], token).start()
    time.sleep(0.3)  # in use on B
    # the logout right after one of B's questions to the store (the counter moves when it asks)
    base, t_asked = metric(b, "hegate_revocation_store_checks_total"), None
    deadline = time.monotonic() + 2.0
    while base is not None and time.monotonic() < deadline:
        if metric(b, "hegate_revocation_store_checks_total") > base:
            t_asked = time.time()
            break
        time.sleep(0.005)
    t0 = logout(a, token)
    w.mark(t0)
    res = w.result()
    report("subscriber of B black-holed, token in use on B", res)
    print("B noticed the cut after %s s; B asked the store %s s before the logout's answer; polls before it: %s" % (
        "%.2f" % noticed if noticed is not None else "never", "?" if t_asked is None else "%.3f" % (t0 - t_asked),
        res["B"]["before"]))
    print("B's log:\n%s" % revocation_log(b, t_cut))
    assert res["B"]["before"] and all(s == 200 for s in res["B"]["before"]), \
        "B refused the token before the logout: %s" % res["B"]["before"]
    bad = problems(res)
    assert not bad, "; ".join(bad)
    assert noticed is not None, "B's /readyz never said revocations: store during the cut"
    assert t_asked is not None, "B did not ask the store about a token in use for 2 s (store checks %s)" % base


# ---------------------------------------------------------------------------------------------
# 3. a single Redis restarted


def test_single_redis_restarted(gateway, backend, hegate_bin, redis_server):  # noqa: F811
    r = redis_server()
    (a, b, c), phone, password = idp_gateways(gateway, backend, hegate_bin, [{"url": r.url}] * 3)
    wait_numsub(r, 3)
    token, _ = sign_in(a, phone, password)
    accepted_everywhere([a, b, c], token)
    t_kill = time.time()
    r.kill()
    time.sleep(1.0)  # every gateway notices: subscriber and store connections gone
    r.start()  # returns once it answers PING
    t_up = time.time()
    t0, res = watch_after_logout(a, token, [("B", b), ("C", c), ("A", a)], retry_for=3.0)
    print("Redis down %.2f s; the logout answered %.3f s after Redis answered again" % (t_up - t_kill, t0 - t_up))
    report("single Redis restarted (SIGKILL, same port)", res)
    bad = problems(res)
    assert not bad, "; ".join(bad) + "\nB's log:\n" + revocation_log(b, t_kill) + "\nC's log:\n" + revocation_log(c, t_kill)


# ---------------------------------------------------------------------------------------------
# 4. the store unreachable: on_store_down decides


@pytest.mark.parametrize("mode", ["closed", "open", "local"])
def test_store_unreachable_on_store_down(mode, gateway, backend, hegate_bin, redis_server):  # noqa: F811
    r = redis_server()
    (a, b), phone, password = idp_gateways(gateway, backend, hegate_bin, [{"url": r.url}] * 2, modes=["local", mode])
    wait_numsub(r, 2)
    gone, _ = sign_in(a, phone, password)
    live, _ = sign_in(a, phone, password)
    accepted_everywhere([a, b], gone)
    accepted_everywhere([b], live)
    t0, res = watch_after_logout(a, gone, [("B", b)])  # seen revoked by B before the store goes away
    assert not problems(res), problems(res)
    unknown_before = metric(b, "hegate_revocation_unknown_total")

    t_kill = time.time()
    r.kill()
    took = wait_state(b, "unknown", 2.0)
    print("on_store_down %s: B /readyz revocations \"unknown\" %s s after the kill" % (
        mode, "never within 2" if took is None else "%.3f" % took))
    log = revocation_log(b, t_kill)
    n = 5
    if mode == "closed":
        for _ in range(n):
            assert_problem(api(b, live), 503, "unavailable")
        unknown_after = metric(b, "hegate_revocation_unknown_total")
        print("B's log:\n%s" % log)
        assert unknown_before is not None, "hegate_revocation_unknown_total is not on /metrics"
        assert unknown_after == unknown_before, "closed mode counted acceptances: %d -> %d" % (unknown_before, unknown_after)
    else:
        assert api(b, gone).status_code == 401, "B forgot a revocation it had seen once the store went away"
        codes = [api(b, live).status_code for _ in range(n)]
        unknown_after = metric(b, "hegate_revocation_unknown_total")
        print("on_store_down %s: %s; hegate_revocation_unknown_total %s -> %s\nB's log:\n%s" % (
            mode, codes, unknown_before, unknown_after, log))
        assert codes == [200] * n, "on_store_down %s: a live session's token answered %s" % (mode, codes)
        assert unknown_before is not None, "hegate_revocation_unknown_total is not on /metrics"
        assert unknown_after == unknown_before + n, \
            "each acceptance unchecked by the store counts: %d -> %d after %d" % (unknown_before, unknown_after, n)
    assert took is not None, "B /readyz revocations is %r with the store gone" % revocations_state(b)
    assert readyz(b)["store"] == "down"
