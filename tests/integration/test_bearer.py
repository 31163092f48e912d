"""Bearer tokens on protected routes (SPEC §3, §6) and the discovery documents.

Tokens here are minted by an independent implementation (PyJWT + cryptography) with the
gateway's own key file, exactly as SPEC §6 describes them, so these tests check the verifier
and the kid/JWKS rules against the SPEC rather than against the gateway's own signer."""

import base64
import glob
import hashlib
import hmac
import json
import os
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hegatetest import assert_problem, route

ISS = "https://hegate.test"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token_key(keys_dir):
    [path] = glob.glob(os.path.join(keys_dir, "token", "*.pem"))
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, b64u(hashlib.sha256(spki).digest()[:8])


def claims(**over):
    now = int(time.time())
    c = {"iss": ISS, "sub": "u_7f3a9c", "aud": "hegate", "client_id": "hecheng-app", "scope": "openid query",
         "iat": now, "exp": now + 600, "jti": "j-%d" % time.monotonic_ns(), "sid": "s-1", "acr": "pwd"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def mint(keys_dir, typ="at+jwt", kid=None, key=None, **over):
    k, own_kid = token_key(keys_dir)
    return jwt.encode(claims(**over), key or k, algorithm="ES256",
                      headers={"typ": typ, "kid": kid or own_kid})


@pytest.fixture
def gw(gateway, backend):
    b = backend("query-1")
    g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"]),
                 route("pay", "/api/v1/payments", [b.url], scopes=["payment"]),
                 route("open", "/open", [b.url])])
    return g, b


def get(g, path, token=None, **headers):
    if token is not None:
        headers["authorization"] = "Bearer " + token
    with g.client(http2=True) as c:
        return c.get(g.https + path, headers=headers)


def test_discovery_document(gw):
    g, _ = gw
    d = get(g, "/.well-known/openid-configuration").json()
    assert d["issuer"] == ISS
    assert d["jwks_uri"] == ISS + "/.well-known/jwks.json"
    assert d["authorization_endpoint"] == ISS + "/oauth2/authorize"
    assert d["token_endpoint"] == ISS + "/oauth2/token"
    assert d["code_challenge_methods_supported"] == ["S256"]
    assert set(d["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials",
                                               "urn:ietf:params:oauth:grant-type:device_code"}
    assert "client_secret_basic" in d["token_endpoint_auth_methods_supported"]
    assert get(g, "/.well-known/oauth-authorization-server").json() == d
    r = httpx.post(g.http + "/.well-known/jwks.json", trust_env=False)
    assert_problem(r, 405)


def test_jwks_matches_key_file_and_kid_rule(gw, keys_dir):
    g, _ = gw
    key, kid = token_key(keys_dir)
    jwks = get(g, "/.well-known/jwks.json").json()
    [jwk] = jwks["keys"]
    nums = key.public_key().public_numbers()
    assert jwk == {"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big")),
                   "kid": kid, "alg": "ES256", "use": "sig"}
    # an independent verifier accepts what the JWKS says
    tok = mint(keys_dir)
    pub = jwt.PyJWK(jwk).key
    assert jwt.decode(tok, pub, algorithms=["ES256"], audience="hegate")["sub"] == "u_7f3a9c"


def test_valid_token_reaches_backend_with_identity(gw, keys_dir):
    g, b = gw
    tok = mint(keys_dir)
    r = get(g, "/api/v1/query/fund", tok, **{"x-hegate-sub": "attacker", "x-hegate-scope": "payment"})
    assert r.status_code == 200, r.text
    h = r.json()["headers"]
    assert h["x-hegate-sub"] == "u_7f3a9c"
    assert h["x-hegate-client"] == "hecheng-app"
    assert h["x-hegate-scope"] == "openid query"
    assert h["x-hegate-sid"] == "s-1"
    assert h["authorization"] == "Bearer " + tok
    # the same token again (the verified-token cache path) gives the same answer
    r = get(g, "/api/v1/query/fund", tok)
    assert r.status_code == 200 and r.json()["headers"]["x-hegate-sub"] == "u_7f3a9c"


def test_missing_token_401_and_public_route_open(gw):
    g, b = gw
    r = get(g, "/api/v1/query/fund")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in r.headers["www-authenticate"]  # RFC 6750 §3.1: no error code without credentials
    assert get(g, "/open/x").status_code == 200
    assert not any(q["path"].startswith("/api/v1/query") for q in b.requests())


def test_insufficient_scope_403(gw, keys_dir):
    g, b = gw
    r = get(g, "/api/v1/payments/1", mint(keys_dir))
    assert_problem(r, 403)
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="payment"' in r.headers["www-authenticate"]


def attack_tokens(keys_dir):
    key, kid = token_key(keys_dir)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())

    def raw(header, payload, sig=b""):
        return ".".join([b64u(json.dumps(header).encode()), b64u(json.dumps(payload).encode()), b64u(sig)])

    def hs256(header, payload, secret):
        si = (b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(payload).encode())).encode()
        return si.decode() + "." + b64u(hmac.new(secret, si, hashlib.sha256).digest())

    nums = key.public_key().public_numbers()
    jwk_json = json.dumps({"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
                           "y": b64u(nums.y.to_bytes(32, "big"))}).encode()
    good = mint(keys_dir)
    other = ec.generate_private_key(ec.SECP256R1())
    return {
        "alg none": raw({"alg": "none", "typ": "at+jwt", "kid": kid}, claims()),
        "alg NoNe": raw({"alg": "NoNe", "typ": "at+jwt", "kid": kid}, claims()),
        "HS256 with the public PEM": hs256({"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims(), pem),
        "HS256 with the JWK": hs256({"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims(), jwk_json),
        "unknown kid": mint(keys_dir, kid="AAAAAAAAAAA"),
        "expired": mint(keys_dir, exp=now - 31, iat=now - 700),
        "nbf in the future": mint(keys_dir, nbf=now + 60),
        "iat in the future": mint(keys_dir, iat=now + 60),
        "wrong iss": mint(keys_dir, iss="https://evil.example"),
        "wrong aud": mint(keys_dir, aud="someone-else"),
        "typ JWT": mint(keys_dir, typ="JWT"),
        "trailing garbage": good + "x",
        "signed by a key not in the set": mint(keys_dir, key=other),
        "signature cut": good.rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1][:40],
        "over token_bytes": mint(keys_dir, pad="p" * 9000),
    }


def test_attack_tokens_all_401(gw, keys_dir):
    g, b = gw
    b.reset()
    for name, tok in attack_tokens(keys_dir).items():
        r = get(g, "/api/v1/query/fund", tok)
        assert r.status_code == 401, "%s: %d %s" % (name, r.status_code, r.text)
        assert_problem(r, 401)
        assert 'error="invalid_token"' in r.headers["www-authenticate"], name
        assert tok not in r.text, name  # never echo a token
    assert b.requests() == []


def test_huge_token_no_crash(gw):
    g, b = gw
    with g.client(http2=False) as c:
        r = c.get(g.http + "/api/v1/query/x", headers={"authorization": "Bearer " + "a" * (2 * 1024 * 1024)})
    assert r.status_code in (400, 431), r.status_code  # refused as an oversize head, never processed
    assert get(g, "/open/x").status_code == 200  # and the gateway still serves
