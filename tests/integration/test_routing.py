"""Routing (SPEC §2): longest prefix at '/' boundaries, methods -> 405 + Allow, else 404;
strip_prefix and upstream base paths; every gateway error is problem+json (SPEC §4)."""

import pytest

from hegatetest import H2Conn, assert_problem, route


@pytest.fixture
def two(gateway, backend):
    q = backend("query-1")
    s = backend("special-1")
    a = backend("appointment-1")
    g = gateway([
        route("query", "/api/v1/query", [q.url], methods=["GET"]),
        route("special", "/api/v1/query/special", [s.url], methods=["GET"]),
        route("appointment", "/api/v1/appointments", [a.url], methods=["GET", "POST"]),
    ])
    return g, q, s, a


PREFIX_CASES = [
    ("/api/v1/query", "query-1"),
    ("/api/v1/query/", "query-1"),
    ("/api/v1/query/fund", "query-1"),
    ("/api/v1/query/special", "special-1"),
    ("/api/v1/query/special/", "special-1"),
    ("/api/v1/query/special/deep/er?x=1", "special-1"),
    ("/api/v1/query/specialx", "query-1"),         # boundary: not the longer prefix
    ("/api/v1/query/fund?next=/api/v1/query/special", "query-1"),  # the query string is not the path
    ("/api/v1/query?x=/special", "query-1"),
    ("/api/v1/appointments/2024-06-01", "appointment-1"),
]


def test_longest_prefix_wins(two):
    g, *_ = two
    with g.client(http2=True) as c:
        for path, want in PREFIX_CASES:
            r = c.get(g.https + path)
            assert r.status_code == 200, (path, r.text)
            assert (path, r.json()["backend"]) == (path, want)
            assert r.json()["path"] == path


NOT_FOUND = ["/api/v1/queryx", "/api/v1/query-x", "/api/v1/quer", "/api/v1", "/",
             "/api/v1/appointmentsx/1", "/API/V1/QUERY", "/nothing/here", "/api/v1/queryx?x=/api/v1/query/"]


def test_no_route_is_404_problem(two):
    g, q, s, a = two
    with g.client(http2=True) as c:
        for path in NOT_FOUND:
            r = c.get(g.https + path)
            assert r.status_code == 404, (path, r.status_code)
            assert_problem(r, 404, "not-found")
    for b in (q, s, a):
        assert b.requests() == [], "a 404 request reached back end %s" % b.name


def test_404_over_http11_and_h2c(two):
    g, *_ = two
    with g.client() as c:
        assert_problem(c.get(g.http + "/api/v1/queryx"), 404)
    c = H2Conn(g.plain_port, tls=False)
    try:
        assert_problem(c.request("GET", "/api/v1/queryx"), 404)
    finally:
        c.close()


def allow_set(resp):
    allow = resp.headers.get("allow")
    assert allow is not None, "405 without Allow"
    return {m.strip() for m in allow.split(",") if m.strip()}


def test_wrong_method_is_405_with_allow(two):
    g, q, s, a = two
    with g.client(http2=True) as c:
        for method in ("DELETE", "PUT", "PATCH"):
            r = c.request(method, g.https + "/api/v1/appointments/42", content=b"{}" if method != "DELETE" else None)
            assert r.status_code == 405, (method, r.status_code)
            assert_problem(r, 405, "method-not-allowed")
            allowed = allow_set(r)
            assert {"GET", "POST"} <= allowed and allowed <= {"GET", "POST", "HEAD"}, allowed
    assert a.requests() == [], "a 405 request reached the back end"


def test_405_allow_lists_the_matched_routes_methods(two):
    g, *_ = two
    with g.client() as c:
        r = c.post(g.http + "/api/v1/query/special/x", content=b"x")
    assert_problem(r, 405)
    allowed = allow_set(r)
    assert "GET" in allowed and "POST" not in allowed, allowed


def test_allowed_methods_pass(two):
    g, q, s, a = two
    with g.client(http2=True) as c:
        r = c.post(g.https + "/api/v1/appointments", content=b'{"office":"civil"}')
        assert r.status_code == 200
        assert r.json()["method"] == "POST" and r.json()["body_bytes"] == 18


def test_route_without_methods_accepts_all(gateway, backend):
    b = backend("any-1")
    g = gateway([route("any", "/any", [b.url])])
    with g.client(http2=True) as c:
        for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            r = c.request(m, g.https + "/any/x")
            assert r.status_code == 200, (m, r.status_code)
            assert r.json()["method"] == m


@pytest.fixture
def stripping(gateway, backend):
    b = backend("svc-1")
    g = gateway([
        route("strip", "/api/v1/services", [b.url], strip_prefix=True),
        route("keep", "/api/v1/payments", [b.url], strip_prefix=False),
        route("basestrip", "/api/v1/base", [b.url + "/internal/v2"], strip_prefix=True),
        route("basekeep", "/api/v1/basekeep", [b.url + "/internal"]),
    ])
    return g


STRIP_CASES = [
    ("/api/v1/services/permits?id=7", "/permits?id=7"),
    ("/api/v1/services/a/b/c", "/a/b/c"),
    ("/api/v1/services", "/"),
    ("/api/v1/services?x=1", "/?x=1"),
    ("/api/v1/payments/bill/9?y=2", "/api/v1/payments/bill/9?y=2"),
    ("/api/v1/payments", "/api/v1/payments"),
    ("/api/v1/base/items?z=3", "/internal/v2/items?z=3"),
    ("/api/v1/basekeep/items", "/internal/api/v1/basekeep/items"),
]


def test_strip_prefix_and_base_path(stripping):
    g = stripping
    with g.client(http2=True) as c:
        for path, seen in STRIP_CASES:
            r = c.get(g.https + path)
            assert r.status_code == 200, (path, r.text)
            assert (path, r.json()["path"]) == (path, seen)


def test_problem_request_id_matches_header_and_client_id(two):
    g, *_ = two
    with g.client() as c:
        r = c.get(g.http + "/nowhere", headers={"x-request-id": "trace-404-abc"})
    doc = assert_problem(r, 404)
    assert doc["request_id"] == "trace-404-abc"
