"""Upstreams (SPEC §3): round robin, passive health (eject for 10 s on connect failure/timeout),
502 for unreachable, 504 for timeout, retries for idempotent methods only on connect failure /
502 / 503; bodies pass through intact."""

import hashlib
import time
import uuid

import pytest

from hegatetest import H2Conn, assert_problem, free_port, route


def dead_url():
    return "http://127.0.0.1:%d" % free_port()  # nothing listens there


def upstream_errors(g, name):
    return g.metrics().value("hegate_upstream_errors_total", route=name)


def test_round_robin_spreads_over_two(gateway, backend):
    b1, b2 = backend("query-1"), backend("query-2")
    g = gateway([route("query", "/api/v1/query", [b1.url, b2.url])])
    seen = {"query-1": 0, "query-2": 0}
    with g.client(http2=True) as c:  # one connection
        for i in range(40):
            r = c.get(g.https + "/api/v1/query/rr%d" % i)
            assert r.status_code == 200
            seen[r.json()["backend"]] += 1
    assert 15 <= seen["query-1"] <= 25 and 15 <= seen["query-2"] <= 25, seen
    seen = {"query-1": 0, "query-2": 0}
    for i in range(40):  # a new connection each time
        with g.client() as c:
            r = c.get(g.http + "/api/v1/query/fresh%d" % i)
            assert r.status_code == 200
            seen[r.json()["backend"]] += 1
    assert 12 <= seen["query-1"] <= 28 and 12 <= seen["query-2"] <= 28, seen


def test_killed_backend_is_ejected(gateway, backend):
    b1, b2 = backend("query-1"), backend("query-2")
    g = gateway([route("query", "/api/v1/query", [b1.url, b2.url], retries=1, timeout="2s")])
    names = set()
    with g.client(http2=True) as c:
        for i in range(10):
            r = c.get(g.https + "/api/v1/query/warm%d" % i)
            assert r.status_code == 200
            names.add(r.json()["backend"])
    assert names == {"query-1", "query-2"}
    b2.kill()

    def batch(n, tag):
        out = []
        for i in range(n):  # fresh connections, both protocols, so every gateway thread is exercised
            h2 = i % 2 == 0
            with g.client(http2=h2) as c:
                t0 = time.monotonic()
                r = c.get((g.https if h2 else g.http) + "/api/v1/query/%s%d" % (tag, i))
                out.append((r.status_code, r.json().get("backend") if r.status_code == 200 else r.text,
                            time.monotonic() - t0))
        return out

    first = batch(20, "after-kill")
    assert all(s == 200 for s, _, _ in first), "GET not retried on the live back end: %s" % first
    assert all(who == "query-1" for _, who, _ in first), first
    assert max(t for _, _, t in first) < 1.5, "a retry took too long: %s" % first
    errors_before = upstream_errors(g, "query")
    assert errors_before >= 1, "the dead back end was never tried (or upstream errors are not counted)"
    second = batch(20, "ejected")
    assert all(s == 200 and who == "query-1" for s, who, _ in second), second
    assert upstream_errors(g, "query") == errors_before, \
        "the killed back end is still being tried within its 10 s ejection"


def test_only_dead_upstreams_502_fast(gateway):
    g = gateway([route("dead", "/api/v1/dead", [dead_url(), dead_url()], retries=1, timeout="5s")])
    with g.client(http2=True) as c:
        for i in range(6):  # past the point where both are ejected: "tried anyway", still fast
            t0 = time.monotonic()
            r = c.get(g.https + "/api/v1/dead/x%d" % i)
            elapsed = time.monotonic() - t0
            assert_problem(r, 502, "bad-gateway")
            assert elapsed < 1.0, "502 took %.2fs" % elapsed
    with g.client() as c:
        assert_problem(c.post(g.http + "/api/v1/dead/p", content=b"x"), 502)


@pytest.mark.parametrize("transport", ["http1", "h2"])
def test_slow_backend_504_within_timeout(gateway, backend, transport):
    b = backend("slow-1")
    g = gateway([route("slow", "/api/v1/slow", [b.url], timeout="500ms", retries=1)])
    base = g.http if transport == "http1" else g.https
    with g.client(http2=(transport == "h2")) as c:
        t0 = time.monotonic()
        r = c.get(base + "/api/v1/slow/x?delay_ms=3000")
        elapsed = time.monotonic() - t0
        assert_problem(r, 504, "gateway-timeout")
        assert 0.45 <= elapsed <= 1.5, "504 after %.2fs (route timeout 500ms)" % elapsed
        # the only target is now ejected; all ejected -> it is tried anyway
        r = c.get(base + "/api/v1/slow/fast")
        assert r.status_code == 200, r.text
    # a timeout is not retried (SPEC: retries on connect failure / 502 / 503 only)
    assert len([q for q in b.requests() if "delay_ms=3000" in q["path"]]) == 1


def test_post_not_retried(gateway, backend):
    live = backend("payment-1")
    g = gateway([route("pay", "/api/v1/payments", [dead_url(), live.url], retries=1, timeout="2s")])
    results = []
    c = H2Conn(g.tls_port)  # one connection: one gateway thread, strict alternation
    try:
        for i in range(2):
            mark = "post-%d-%s" % (i, uuid.uuid4().hex)
            r = c.request("POST", "/api/v1/payments/charge", [("x-test-mark", mark)], body=b'{"fen":100}')
            results.append((mark, r))
    finally:
        c.close()
    got = live.requests()
    marks_seen = [q["headers"].get("x-test-mark") for q in got]
    failed = [(m, r) for m, r in results if r.status_code != 200]
    assert failed, "round robin over [dead, live]: one of two POSTs must have met the dead target " \
                   "(statuses %s)" % [r.status_code for _, r in results]
    for mark, r in failed:
        assert_problem(r, 502, "bad-gateway")
        assert mark not in marks_seen, "a POST that met a dead target was retried on the live one"
    for mark, r in results:
        if r.status_code == 200:
            assert marks_seen.count(mark) == 1


def test_get_retried_after_dead_target(gateway, backend):
    live = backend("query-1")
    g = gateway([route("q", "/api/v1/query", [dead_url(), live.url], retries=1, timeout="2s")])
    c = H2Conn(g.tls_port)
    try:
        for i in range(4):
            r = c.request("GET", "/api/v1/query/g%d" % i)
            assert r.status_code == 200, r.body
    finally:
        c.close()
    assert len(live.requests()) == 4


def test_503_retried_for_get_passed_through_for_post(gateway, backend):
    bad = backend("svc-503", status=503)
    good = backend("svc-200")
    g = gateway([route("svc", "/api/v1/services", [bad.url, good.url], retries=1, timeout="2s")])
    with g.client(http2=True) as c:
        for i in range(10):
            r = c.get(g.https + "/api/v1/services/g%d" % i)
            assert r.status_code == 200, r.text
            assert r.json()["backend"] == "svc-200"
        assert len(bad.requests()) >= 1, "the 503 back end was never tried: the retry path is untested"
        good.reset()
        bad.reset()
        posts = [c.post(g.https + "/api/v1/services/p%d" % i, content=b"{}") for i in range(4)]
    codes = [r.status_code for r in posts]
    assert 503 in codes, "no POST met the 503 back end in 4 tries: %s" % codes
    for r in posts:
        if r.status_code == 503:
            assert r.json()["backend"] == "svc-503", "a back end's 503 must pass through unchanged"
    assert len(good.requests()) == codes.count(200), "a POST answered 503 was retried"


def test_retry_bound_and_other_statuses(gateway, backend):
    b1, b2 = backend("q-1"), backend("q-2")
    g = gateway([route("q", "/api/v1/query", [b1.url, b2.url], retries=1, timeout="2s")])
    with g.client(http2=True) as c:
        r = c.get(g.https + "/api/v1/query/e500?status=500")
        assert r.status_code == 500 and r.json()["backend"] in ("q-1", "q-2"), "500 must pass through"
        assert len(b1.requests()) + len(b2.requests()) == 1, "a 500 was retried"
        b1.reset()
        b2.reset()
        r = c.get(g.https + "/api/v1/query/e502?status=502")
        assert r.status_code == 502
        assert len(b1.requests()) + len(b2.requests()) == 2, "retries: 1 means exactly 2 attempts on 502"


def test_large_bodies_pass_intact(gateway, backend):
    b = backend("big-1")
    g = gateway([route("big", "/big", [b.url])])
    size = 5 * 1024 * 1024
    payload = bytes(range(256)) * (512 * 1024 // 256)
    for h2 in (True, False):
        with g.client(http2=h2) as c:
            r = c.get(g.https + "/big/x?size=%d" % size)
            assert r.status_code == 200 and len(r.content) == size and r.content == b"x" * size
            r = c.post(g.https + "/big/up", content=payload)
            assert r.status_code == 200
            assert r.json()["body_bytes"] == len(payload)
            assert r.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()
