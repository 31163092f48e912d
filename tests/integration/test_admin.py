"""The admin listener (SPEC §1, §8): /healthz, /readyz, /metrics in strict Prometheus text format,
counting exactly what was sent; bound to 127.0.0.1 only."""

import math
import time

import httpx
import pytest

from hegatetest import PromError, connect_refused, free_port, parse_prometheus, route


def admin_get(g, path):
    return httpx.get(g.admin + path, timeout=5, trust_env=False)


@pytest.fixture
def gw(gateway, backend):
    b = backend("query-1")
    g = gateway([
        route("query", "/api/v1/query", [b.url], timeout="500ms", retries=0),
        route("dead", "/api/v1/dead", ["http://127.0.0.1:%d" % free_port()], retries=0),
    ])
    return g


def test_healthz_and_readyz(gw):
    r = admin_get(gw, "/healthz")
    assert r.status_code == 200
    # the fixture gives keys (hegate keys generate) and a live redis-server; the revocation subscriber
    # reports "subscribed" once it has subscribed and read the set (until then token checks ask the store)
    deadline = time.monotonic() + 5
    while True:
        r = admin_get(gw, "/readyz")
        if r.json().get("revocations") == "subscribed" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "keys": "loaded", "store": "up", "revocations": "subscribed", "generation": 1}


def test_readyz_needs_keys(gateway, backend, tmp_path):
    """SPEC §8: /readyz is 200 only when keys are loaded (and the store answers)."""
    b = backend("query-1")
    g = gateway([route("query", "/api/v1/query", [b.url])], extra={"keys": {"dir": str(tmp_path / "no-keys")}})
    r = admin_get(g, "/readyz")
    assert r.status_code == 503, r.text
    assert r.json()["keys"] == "missing"
    assert admin_get(g, "/healthz").status_code == 200  # serving, just not ready


def test_admin_only_on_loopback(gw):
    assert connect_refused("127.0.0.2", gw.admin_port), "admin port answers on 127.0.0.2"
    # and the admin endpoints are not served on the public listeners
    with gw.client() as c:
        r = c.get(gw.http + "/metrics")
        assert r.status_code == 404


def test_metrics_is_valid_prometheus_text(gw):
    with gw.client(http2=True) as c:
        for _ in range(3):
            assert c.get(gw.https + "/api/v1/query/x").status_code == 200
        c.get(gw.https + "/nope")
    r = admin_get(gw, "/metrics")
    assert r.status_code == 200
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith("text/plain"), ctype
    m = parse_prometheus(r.text)
    assert m.types.get("hegate_requests_total") == "counter"
    assert m.types.get("hegate_request_duration_seconds") == "histogram"
    assert m.types.get("hegate_upstream_errors_total") == "counter"
    assert m.has("hegate_request_duration_seconds_bucket", route="query")


def test_requests_total_counts_exactly(gw):
    before = gw.metrics()
    n = 17
    with gw.client(http2=True) as c:
        for i in range(n):
            assert c.get(gw.https + "/api/v1/query/c%d" % i).status_code == 200
    with gw.client() as c:  # and HTTP/1.1, cleartext
        for i in range(n):
            assert c.get(gw.http + "/api/v1/query/h%d" % i).status_code == 200
    after = gw.metrics()
    for name in ("hegate_requests_total", "hegate_request_duration_seconds_count"):
        b = before.value(name, route="query", code="200") if name.endswith("_total") else \
            before.value(name, route="query")
        a = after.value(name, route="query", code="200") if name.endswith("_total") else \
            after.value(name, route="query")
        assert a - b == 2 * n, "%s went from %s to %s after %d requests" % (name, b, a, 2 * n)
    assert after.find("hegate_requests_total", route="query", code="200"), \
        "no series hegate_requests_total{route=\"query\",code=\"200\"}"


def test_duration_histogram_by_route(gw):
    with gw.client() as c:
        assert c.get(gw.http + "/api/v1/query/slow?delay_ms=200").status_code == 200
    m = gw.metrics()
    buckets = m.find("hegate_request_duration_seconds_bucket", route="query")
    assert buckets, "no duration buckets for route query"
    les = sorted(float(l["le"]) for _, l, _ in buckets)
    assert les[-1] == math.inf
    assert any(0.05 <= le <= 0.2 for le in les) and any(0.25 <= le < math.inf for le in les), \
        "bucket bounds do not resolve a 200 ms request: %s" % les
    # the 200 ms request is in no bucket below 0.2 s and counted in every bucket >= 0.25 s
    total = m.value("hegate_request_duration_seconds_count", route="query")
    slow_le = [v for _, l, v in buckets if float(l["le"]) < 0.2]
    assert all(v <= total - 1 for v in slow_le), (slow_le, total)
    assert m.value("hegate_request_duration_seconds_sum", route="query") >= 0.2


def test_upstream_errors_by_kind(gw):
    before = gw.metrics()
    with gw.client(http2=True) as c:
        assert c.get(gw.https + "/api/v1/dead/x").status_code == 502
        assert c.get(gw.https + "/api/v1/query/x?delay_ms=1500").status_code == 504
    time.sleep(0.1)
    after = gw.metrics()
    d_connect = after.value("hegate_upstream_errors_total", route="dead", kind="connect") - \
        before.value("hegate_upstream_errors_total", route="dead", kind="connect")
    d_timeout = after.value("hegate_upstream_errors_total", route="query", kind="timeout") - \
        before.value("hegate_upstream_errors_total", route="query", kind="timeout")
    assert d_connect == 1, "hegate_upstream_errors_total{route=dead,kind=connect} +%s" % d_connect
    assert d_timeout == 1, "hegate_upstream_errors_total{route=query,kind=timeout} +%s" % d_timeout
    assert after.value("hegate_requests_total", route="dead", code="502") - \
        before.value("hegate_requests_total", route="dead", code="502") == 1
    assert after.value("hegate_requests_total", route="query", code="504") - \
        before.value("hegate_requests_total", route="query", code="504") == 1


# the parser itself must reject what Prometheus would reject -------------------------------------

GOOD = """# HELP x_total A counter.
# TYPE x_total counter
x_total{route="a",code="200"} 3
x_total{route="b",code="404"} 1
# TYPE d histogram
d_bucket{route="a",le="0.1"} 1
d_bucket{route="a",le="1"} 2
d_bucket{route="a",le="+Inf"} 3
d_sum{route="a"} 2.5
d_count{route="a"} 3
"""

BAD = [
    GOOD.replace('le="1"} 2', 'le="1"} 0'),                  # buckets decrease
    GOOD.replace('d_count{route="a"} 3', 'd_count{route="a"} 4'),  # +Inf != count
    GOOD.replace('d_bucket{route="a",le="+Inf"} 3\n', ""),   # no +Inf
    GOOD.replace('x_total{route="b",code="404"} 1', 'x_total{route="b",code="404"} one'),
    GOOD.replace('{route="a",code="200"}', '{route=a,code="200"}'),
    GOOD + 'x_total{route="a",code="200"} 4\n',              # duplicate, and not contiguous
    GOOD.rstrip("\n"),                                        # no final newline
    GOOD.replace("# TYPE x_total counter", "# TYPE x_total countr"),
    GOOD.replace("x_total{", "x-total{", 1),
]


def test_prometheus_parser_is_strict():
    parse_prometheus(GOOD)
    for i, text in enumerate(BAD):
        with pytest.raises(PromError):
            parse_prometheus(text)
            pytest.fail("bad sample %d accepted" % i)
