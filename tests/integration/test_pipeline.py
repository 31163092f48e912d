"""One pipeline for every request (README "How a request flows"): routes and the gateway's own
endpoint families share the match table, the method and body stages, the one bearer check (README
"Bearer tokens") in each entry's error format, and the log: own endpoints are counted and logged
under "<family>.<endpoint>" (or the family's name for its 404s), never as route "-"."""

import http.client
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hegatetest import assert_problem, route
from test_bearer import b64u, mint

WWW_MISSING = 'Bearer realm="hegate"'
WWW_INVALID = 'Bearer realm="hegate", error="invalid_token"'


@pytest.fixture
def gw(gateway, backend):
    b = backend("query-1")
    g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"]), route("open", "/open", [b.url])],
                limits={"body_bytes": 1024})
    return g


def call(g, method, path, token=None, **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers["authorization"] = "Bearer " + token
    with g.client(http2=True) as c:
        return c.request(method, g.https + path, headers=headers, **kw)


def assert_oauth_error(r, status, error):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    assert r.json()["error"] == error, r.text


# the same table for a route, a /qr/v1 endpoint and an /oauth2 endpoint, each in its error format
ENTRIES = [
    ("GET", "/api/v1/query/fund", "problem", "query"),
    ("GET", "/qr/v1/scans", "problem", None),
    ("GET", "/oauth2/userinfo", "oauth", "openid"),
]


@pytest.mark.parametrize("method,path,fmt,scope", ENTRIES)
def test_missing_token(gw, method, path, fmt, scope):
    r = call(gw, method, path)
    assert r.headers["www-authenticate"] == WWW_MISSING
    if fmt == "problem":
        assert_problem(r, 401, "unauthorized")
    else:
        assert_oauth_error(r, 401, "invalid_request")


@pytest.mark.parametrize("method,path,fmt,scope", ENTRIES)
@pytest.mark.parametrize("bad", ["garbage", "expired", "basic"])
def test_invalid_token(gw, keys_dir, method, path, fmt, scope, bad):
    headers = {}
    if bad == "garbage":
        headers["authorization"] = "Bearer not.a.token"
    elif bad == "expired":
        headers["authorization"] = "Bearer " + mint(keys_dir, scope="openid query qr", iat=int(time.time()) - 4000,
                                                    exp=int(time.time()) - 3000)
    else:
        headers["authorization"] = "Basic Zm9vOmJhcg=="
    r = call(gw, method, path, headers=headers)
    assert r.headers["www-authenticate"] == WWW_INVALID, r.headers
    if fmt == "problem":
        assert_problem(r, 401, "unauthorized")
    else:
        assert_oauth_error(r, 401, "invalid_token")


@pytest.mark.parametrize("method,path,fmt,scope", [e for e in ENTRIES if e[3] is not None])
def test_wrong_scope(gw, keys_dir, method, path, fmt, scope):
    r = call(gw, method, path, mint(keys_dir, scope="payment"))
    assert r.headers["www-authenticate"].startswith('Bearer realm="hegate", error="insufficient_scope", scope="'), r.headers
    assert scope in r.headers["www-authenticate"]
    if fmt == "problem":
        assert_problem(r, 403, "forbidden")
    else:
        assert_oauth_error(r, 403, "insufficient_scope")


def test_valid_tokens_reach_the_handler(gw, keys_dir):
    tok = mint(keys_dir, scope="openid query qr", sub="u_pipeline_%d" % time.monotonic_ns())
    r = call(gw, "GET", "/api/v1/query/fund", tok)
    assert r.status_code == 200 and r.json()["headers"]["x-hegate-sub"].startswith("u_pipeline_"), r.text
    r = call(gw, "GET", "/qr/v1/scans", tok)  # a resident with no history yet
    assert r.status_code == 200, r.text
    assert r.json() == {"scans": []}, r.text
    # userinfo got past the bearer stage: the handler itself says there is no such resident
    r = call(gw, "GET", "/oauth2/userinfo", tok)
    assert_oauth_error(r, 401, "invalid_token")
    assert "resident" in r.json()["error_description"]


def test_resident_endpoints_refuse_a_clients_own_token(gw, keys_dir):
    tok = mint(keys_dir, scope="qr", sub="gate-1", client_id="gate-1", sid=None)
    assert_problem(call(gw, "GET", "/qr/v1/scans", tok), 403, "forbidden")
    assert_problem(call(gw, "POST", "/qr/v1/codes", tok, json={"scene": "transit"}), 403, "forbidden")


def test_a_trusted_issuers_token_opens_routes_not_own_endpoints(gateway, backend, tmp_path):
    """Own endpoints take only tokens this gateway issued (GW_AUTH_OWN); routes also a trusted issuer's."""
    key = ec.generate_private_key(ec.SECP256R1())
    nums = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "kid": "partner-1", "alg": "ES256", "use": "sig",
           "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big"))}
    (tmp_path / "partner.jwks").write_text(json.dumps({"keys": [jwk]}))
    b = backend("query-1")
    g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                extra={"trusted_issuers": [{"issuer": "https://partner.example", "audience": "hegate",
                                            "jwks": str(tmp_path / "partner.jwks")}]})
    now = int(time.time())
    tok = jwt.encode({"iss": "https://partner.example", "sub": "u_partner", "aud": "hegate", "client_id": "partner-app",
                      "scope": "openid query qr", "iat": now, "exp": now + 600, "jti": "pj-1", "sid": "ps-1"},
                     key, algorithm="ES256", headers={"typ": "at+jwt", "kid": "partner-1"})
    assert call(g, "GET", "/api/v1/query/x", tok).status_code == 200
    r = call(g, "GET", "/qr/v1/scans", tok)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == WWW_INVALID
    assert_oauth_error(call(g, "GET", "/oauth2/userinfo", tok), 401, "invalid_token")


def test_methods_and_bodies_of_own_endpoints(gw):
    r = call(gw, "GET", "/oauth2/token")
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "POST"
    r = call(gw, "DELETE", "/oauth2/authorize")
    assert r.headers["allow"] == "GET, POST"
    r = call(gw, "POST", "/.well-known/jwks.json")
    assert_problem(r, 405)
    assert r.headers["allow"] == "GET, HEAD"
    assert call(gw, "HEAD", "/.well-known/jwks.json").status_code == 200
    # limits.body_bytes (1024 here) holds for own endpoints too, before any authentication
    r = call(gw, "POST", "/qr/v1/verify", content=b"{" + b" " * 2000 + b"}", headers={"content-type": "application/json"})
    assert_problem(r, 413, "too-large")
    r = call(gw, "POST", "/oauth2/token", content=b"a=" + b"b" * 2000, headers={"content-type": "application/x-www-form-urlencoded"})
    assert_problem(r, 413, "too-large")


def test_family_404s_and_free_well_known_paths(gw):
    assert_problem(call(gw, "GET", "/oauth2/nothing"), 404, "not-found")
    assert_problem(call(gw, "GET", "/qr/v1/nothing"), 404, "not-found")
    assert_problem(call(gw, "POST", "/oauth2/token/x"), 404, "not-found")  # exact endpoints are exact
    r = call(gw, "GET", "/.well-known/security.txt")  # not the family's: route matching decides (none: 404)
    assert_problem(r, 404, "not-found")


def test_errors_keep_an_http1_connection_open(gw):
    """A problem answer over HTTP/1.1 is framed by its length, so the client's keep-alive connection
    serves the next request (a closed one makes every client reconnect after each error)."""
    c = http.client.HTTPConnection("127.0.0.1", gw.plain_port, timeout=10)
    c.connect()
    sock = c.sock
    for method, path, status in (("GET", "/nowhere", 404), ("GET", "/api/v1/query/fund", 401),
                                 ("GET", "/oauth2/token", 405), ("GET", "/qr/v1/nothing", 404),
                                 ("HEAD", "/nowhere", 404), ("GET", "/open/x", 200)):
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        assert r.status == status, (path, r.status, body)
        assert not r.will_close and r.getheader("connection") != "close", (path, r.getheaders())
        if method == "GET" and status != 200:
            assert int(r.getheader("content-length")) == len(body) and json.loads(body)["status"] == status
        assert c.sock is sock, "%s %s: the connection was closed" % (method, path)
    c.close()


def counts(g):
    return {(l.get("route"), l.get("code")): v for _, l, v in g.metrics().find("hegate_requests_total")}


def test_own_endpoints_in_metrics_and_access_log(gw):
    call(gw, "POST", "/oauth2/token", content=b"grant_type=client_credentials",
         headers={"content-type": "application/x-www-form-urlencoded"})
    call(gw, "GET", "/.well-known/jwks.json")
    call(gw, "POST", "/qr/v1/verify", json={"code": "x"})
    call(gw, "GET", "/oauth2/nothing")
    call(gw, "GET", "/open/x")
    deadline = time.monotonic() + 5
    want = {("oauth2.token", "401"), ("well-known.jwks", "200"), ("qr.verify", "401"), ("oauth2", "404"), ("open", "200")}
    while True:
        c = counts(gw)
        if all(c.get(k) == 1 for k in want) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for k in want:
        assert c.get(k) == 1, (k, c)
    assert not any(r == "-" for r, _ in c), c  # nothing of the above is unmatched
    while True:
        with open(gw.access_log_path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        if len(lines) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    by_path = {(d["method"], d["path"]): d["route"] for d in lines}
    assert by_path[("POST", "/oauth2/token")] == "oauth2.token"
    assert by_path[("GET", "/.well-known/jwks.json")] == "well-known.jwks"
    assert by_path[("POST", "/qr/v1/verify")] == "qr.verify"
    assert by_path[("GET", "/oauth2/nothing")] == "oauth2"
    assert by_path[("GET", "/open/x")] == "open"
