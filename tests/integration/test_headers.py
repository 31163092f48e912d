"""Header hygiene (SPEC §3): what the client sends about identity and forwarding never reaches the
back end; x-request-id / x-forwarded-for / x-forwarded-proto are the gateway's; authorization
passes unchanged."""

import json

import pytest

from hegatetest import REQUEST_ID_RE, H2Conn, route

SPOOFED = [
    ("x-hegate-sub", "attacker-sub"),
    ("x-hegate-client", "attacker-client"),
    ("X-Hegate-Scope", "attacker-scope admin"),
    ("x-hegate-sid", "attacker-sid"),
    ("x-hegate-anything", "attacker-anything"),
    ("x-forwarded-for", "6.6.6.6"),
    ("X-Forwarded-For", "7.7.7.7, 8.8.8.8"),
    ("x-forwarded-proto", "gopher"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "6666"),
    ("x-forwarded-prefix", "/evil"),
    ("forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
    ("x-real-ip", "6.6.6.6"),
]
SPOOF_MARKERS = ["attacker", "6.6.6.6", "7.7.7.7", "8.8.8.8", "gopher", "evil", "6666"]
FORBIDDEN_PREFIXES = ("x-hegate-", "x-forwarded-", "forwarded", "x-real-ip")

TRANSPORTS = ["http1", "https1", "h2", "h2c"]


@pytest.fixture
def gw(gateway, backend):
    b = backend("query-1")
    return gateway([route("query", "/api/v1/query", [b.url])])


def send(gw, transport, path, headers):
    """GET PATH with HEADERS (a list of pairs) over TRANSPORT; returns (status, resp headers, echo)."""
    if transport == "h2c":
        c = H2Conn(gw.plain_port, tls=False)
        try:
            r = c.request("GET", path, [(k.lower(), v) for k, v in headers])
        finally:
            c.close()
        return r.status_code, r.headers, r.json()
    base = {"http1": gw.http, "https1": gw.https, "h2": gw.https}[transport]
    with gw.client(http2=(transport == "h2")) as c:
        r = c.get(base + path, headers=headers)
        if transport == "h2":
            assert r.http_version == "HTTP/2"
        return r.status_code, r.headers, r.json()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_spoofed_headers_never_reach_backend(gw, transport):
    status, _, echo = send(gw, transport, "/api/v1/query/who", SPOOFED)
    assert status == 200, echo
    hdrs = echo["headers"]
    for name, value in hdrs.items():
        if name in ("x-forwarded-for", "x-forwarded-proto"):
            continue
        assert not name.startswith(FORBIDDEN_PREFIXES), "back end received %s: %r" % (name, value)
    blob = json.dumps(hdrs)
    for marker in SPOOF_MARKERS:
        assert marker not in blob, "spoofed value %r reached the back end: %s" % (marker, blob)
    # the gateway's own, exactly (not appended to the client's)
    assert hdrs.get("x-forwarded-for") == "127.0.0.1", hdrs.get("x-forwarded-for")
    want_proto = "http" if transport in ("http1", "h2c") else "https"
    assert hdrs.get("x-forwarded-proto") == want_proto, hdrs.get("x-forwarded-proto")


@pytest.mark.parametrize("transport", ["http1", "h2"])
def test_forwarding_headers_set_without_client_input(gw, transport):
    status, _, echo = send(gw, transport, "/api/v1/query/plain", [])
    assert status == 200
    assert echo["headers"].get("x-forwarded-for") == "127.0.0.1"
    assert echo["headers"].get("x-forwarded-proto") == ("http" if transport == "http1" else "https")
    # a public route: no identity headers at all
    assert not [h for h in echo["headers"] if h.startswith("x-hegate-")]


GOOD_IDS = ["abc-123_DEF.xyz", "a" * 64, "0", "550e8400-e29b-41d4-a716-446655440000"]
BAD_IDS = ["a" * 65, "bad id", "semi;colon", "<script>", "a/b", "%41", "\u00fcn\u00efcode".encode(), ""]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wellformed_request_id_kept(gw, transport):
    for rid in GOOD_IDS:
        status, rh, echo = send(gw, transport, "/api/v1/query/rid", [("x-request-id", rid)])
        assert status == 200
        assert echo["headers"].get("x-request-id") == rid
        assert rh.get("x-request-id") == rid


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_request_id_replaced(gw, transport):
    for rid in BAD_IDS:
        sent = rid.decode() if isinstance(rid, bytes) else rid
        status, rh, echo = send(gw, transport, "/api/v1/query/rid", [("x-request-id", rid)])
        assert status == 200, (sent, status)
        seen = echo["headers"].get("x-request-id")
        assert isinstance(seen, str), "sent %r, back end got %r" % (sent, seen)
        assert seen != sent, "malformed x-request-id %r was kept" % sent
        assert REQUEST_ID_RE.match(seen), "generated id %r is not well-formed" % seen
        assert rh.get("x-request-id") == seen


@pytest.mark.parametrize("transport", ["http1", "h2"])
def test_generated_request_ids_unique_and_echoed(gw, transport):
    ids = set()
    for _ in range(20):
        status, rh, echo = send(gw, transport, "/api/v1/query/gen", [])
        assert status == 200
        seen = echo["headers"].get("x-request-id")
        assert seen and REQUEST_ID_RE.match(seen), seen
        assert rh.get("x-request-id") == seen
        ids.add(seen)
    assert len(ids) == 20, "generated request ids repeat: %s" % sorted(ids)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_authorization_forwarded_unchanged(gw, transport):
    for authz in ["Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "Basic dXNlcjpwYXNz"]:
        status, _, echo = send(gw, transport, "/api/v1/query/authz", [("authorization", authz)])
        assert status == 200
        assert echo["headers"].get("authorization") == authz


def test_ordinary_headers_pass(gw):
    status, _, echo = send(gw, "h2", "/api/v1/query/h", [("x-app-version", "3.1.4"), ("accept-language", "zh-CN")])
    assert status == 200
    assert echo["headers"].get("x-app-version") == "3.1.4"
    assert echo["headers"].get("accept-language") == "zh-CN"
