"""Process life (SPEC §1): SIGTERM drains in-flight requests and exits 0; SIGHUP reloads routes
without dropping connections, and a broken new config is refused while the old one serves."""

import json
import re
import signal
import socket
import threading
import time


from hegatetest import H2Conn, curl, route


def test_sigterm_lets_inflight_request_finish(gateway, backend):
    b = backend("slow-1")
    g = gateway([route("slow", "/api/v1/slow", [b.url], timeout="10s")])
    result = {}

    def slow_h1():
        try:
            with g.client() as c:
                r = c.get(g.http + "/api/v1/slow/x?delay_ms=1500")
                result["h1"] = (r.status_code, r.json().get("backend"))
        except Exception as e:  # recorded, asserted below
            result["h1"] = e

    def slow_h2():
        # curl (nghttp2), not httpx: on shutdown the server sends a graceful GOAWAY first
        # (last_stream_id 2^31-1, RFC 9113 §6.8) and python-h2 4.1 gives up on the connection
        # at any GOAWAY, so httpx would fail a request the server completes correctly.
        try:
            code, version, body = curl("--http2", "-k", g.https + "/api/v1/slow/x?delay_ms=1500")
            assert version == "2"
            result["h2"] = (code, json.loads(body).get("backend"))
        except Exception as e:
            result["h2"] = e

    threads = [threading.Thread(target=slow_h2), threading.Thread(target=slow_h1)]
    for t in threads:
        t.start()
    # both requests must have reached the back end before the signal
    deadline = time.monotonic() + 5
    while len(b.requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(b.requests()) == 2
    t_sig = time.monotonic()
    g.signal(signal.SIGTERM)
    time.sleep(0.3)

    # stop accepting: a new connection is refused (or at least never served)
    served = None
    try:
        with socket.create_connection(("127.0.0.1", g.plain_port), timeout=1) as s:
            s.settimeout(1)
            s.sendall(b"GET /api/v1/slow/new HTTP/1.1\r\nHost: t\r\n\r\n")
            served = s.recv(100)
    except OSError:
        served = None
    assert not served or not served.startswith(b"HTTP/1.1 200"), \
        "a new connection was served after SIGTERM: %r" % served

    for t in threads:
        t.join(10)
    for key in ("h2", "h1"):
        res = result.get(key)
        assert isinstance(res, tuple), "in-flight %s request failed during shutdown: %r" % (key, res)
        assert res[0] == 200 and res[1] == "slow-1", res
    rc = g.wait(10)
    assert rc == 0, "exit status %s after SIGTERM" % rc
    assert time.monotonic() - t_sig < 6, "shutdown took longer than shutdown_timeout (5 s)"


def test_sigterm_idle_exits_promptly(gateway, backend):
    b = backend("q-1")
    g = gateway([route("q", "/q", [b.url])])
    idle = H2Conn(g.tls_port)  # an idle keep-alive connection must not hold the process
    try:
        assert idle.request("GET", "/q/x").status_code == 200
        t0 = time.monotonic()
        g.signal(signal.SIGTERM)
        rc = g.wait(8)
    finally:
        idle.close()
    assert rc == 0
    assert time.monotonic() - t0 < 6


def test_sigint_exits_zero(gateway, backend):
    b = backend("q-1")
    g = gateway([route("q", "/q", [b.url])])
    g.signal(signal.SIGINT)
    assert g.wait(8) == 0


RELOAD_FAIL = re.compile(r"reload.*(fail|error|refus|reject|invalid|keep|kept)|"
                         r"(fail|error|refus|reject|invalid).*reload", re.I)


def test_sighup_broken_config_keeps_old(gateway, backend):
    b = backend("q-1")
    g = gateway([route("q", "/api/v1/query", [b.url])])
    with g.client(http2=True) as c:
        assert c.get(g.https + "/api/v1/query/before").status_code == 200
        for garbage in ["routes: [ {name: x, prefix: /x, upstreams: [http://127.0.0.1:1]\n  :::: {{{\n",
                        "issuer: https://hegate.test\nthreads: -3\nno_such_key: 1\nlisten: []\nroutes: []\n"]:
            g.write_config(garbage)
            before = g.generation()
            g.reload(wait=False)
            time.sleep(0.5)
            assert g.generation() == before, "a broken config was applied"
            assert g.alive(), "hegate died on SIGHUP with a broken config"
            for i in range(5):
                r = c.get(g.https + "/api/v1/query/after%d" % i)
                assert r.status_code == 200, "old config no longer serves after a failed reload: %d %s" % (
                    r.status_code, r.text[:300])
    with g.client() as c:
        assert c.get(g.http + "/api/v1/query/new-conn").status_code == 200
    deadline = time.monotonic() + 3
    while not RELOAD_FAIL.search(g.stderr()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert RELOAD_FAIL.search(g.stderr()), "no log line about the refused reload; stderr:\n" + g.stderr()[-3000:]


def test_sighup_valid_config_adds_route_keeps_connection(gateway, backend):
    b1, b2 = backend("q-1"), backend("new-1")
    g = gateway([route("q", "/api/v1/query", [b1.url])])
    conns = [H2Conn(g.tls_port), H2Conn(g.plain_port, tls=False)]
    h1 = g.client()
    try:
        for c in conns:
            assert c.request("GET", "/api/v1/query/x").status_code == 200
            assert c.request("GET", "/api/v1/new/x").status_code == 404
        r = h1.get(g.http + "/api/v1/query/x")
        assert r.status_code == 200
        cfg = dict(g.cfg)
        cfg["routes"] = [route("q", "/api/v1/query", [b1.url]), route("new", "/api/v1/new", [b2.url])]
        g.write_config(cfg)
        g.reload()
        assert g.metrics().value("hegate_config_generation") == 2
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = conns[0].request("GET", "/api/v1/new/x").status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, "new route not served 5 s after SIGHUP"
        for c in conns:  # the same connections, no GOAWAY
            r = c.request("GET", "/api/v1/new/y")
            assert r.status_code == 200 and r.json()["backend"] == "new-1"
            assert c.request("GET", "/api/v1/query/y").status_code == 200
            assert c.goaway is None, "server sent GOAWAY on reload: %r" % c.goaway
        # the HTTP/1.1 keep-alive connection too
        r = h1.get(g.http + "/api/v1/new/z")
        assert r.status_code == 200
    finally:
        for c in conns:
            c.close()
        h1.close()
    assert g.alive()
    assert "only after a restart" not in g.stderr()  # nothing was ignored


def test_sighup_says_what_needs_a_restart(gateway, backend):
    """The store settings are read once per thread: a reload that changes them applies the rest and
    says plainly that those need a restart."""
    b = backend("q-1")
    g = gateway([route("q", "/api/v1/query", [b.url])])
    cfg = dict(g.cfg)
    cfg["on_store_down"] = "closed" if cfg.get("on_store_down") != "closed" else "open"
    cfg["routes"] = [route("q", "/api/v1/query", [b.url]), route("new", "/api/v1/new", [b.url])]
    g.write_config(cfg)
    g.reload()  # returns once every thread serves the new generation
    assert "reload 2 complete" in g.stderr(), g.stderr()[-2000:]
    assert "on_store_down and nodes changes take effect only after a restart" in g.stderr(), g.stderr()[-2000:]
    with g.client() as c:
        assert c.get(g.http + "/api/v1/new/x").status_code == 200  # the rest of the reload applied


def test_sighup_removes_route_and_httpx_h2_client_survives(gateway, backend):
    """The brief's scenario with one httpx.Client(http2=True) across the reload."""
    b1, b2 = backend("q-1"), backend("pay-1")
    g = gateway([route("q", "/api/v1/query", [b1.url]), route("pay", "/api/v1/payments", [b2.url])])
    with g.client(http2=True) as c:
        assert c.get(g.https + "/api/v1/payments/x").status_code == 200
        cfg = dict(g.cfg)
        cfg["routes"] = [route("q", "/api/v1/query", [b1.url])]
        g.write_config(cfg)
        g.reload()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = c.get(g.https + "/api/v1/payments/x")
            if r.status_code == 404:
                break
            time.sleep(0.1)
        assert r.status_code == 404
        r = c.get(g.https + "/api/v1/query/x")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
    assert g.alive()
