"""
tests/integration/oauthtest.py — helpers for the identity-service tests (SPEC §6): config with
clients, residents made with `hegate user add`, the authorization-code + PKCE flow over httpx
(following the HTML forms as a browser would), and token checks with PyJWT against the JWKS.
"""

import base64
import hashlib
import html.parser
import os
import random
import secrets
import subprocess
import urllib.parse

import jwt

ISS = "https://hegate.test"
APP_REDIRECT = "https://app.hegate.test/cb"
MP_REDIRECT = "https://mp.partner.test/cb"
MP_BYE = "https://mp.partner.test/bye"
GATE_SECRET = "gate-line1-secret-" + "x" * 16


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pkce():
    verifier = b64u(secrets.token_bytes(32))
    return verifier, b64u(hashlib.sha256(verifier.encode()).digest())


def hash_secret(hegate_bin, secret):
    p = subprocess.run([hegate_bin, "client", "hash-secret"], input=secret.encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    h = p.stdout.decode().strip()
    assert h.startswith("$scrypt$") and secret not in h
    return h


_secret_hash = {}


def clients(hegate_bin):
    if hegate_bin not in _secret_hash:
        _secret_hash[hegate_bin] = hash_secret(hegate_bin, GATE_SECRET)
    return [
        {"id": "hecheng-app", "redirect_uris": [APP_REDIRECT], "first_party": True,
         "scopes": ["openid", "profile", "appointment", "query", "service", "qr", "payment"]},
        {"id": "mp-partner", "redirect_uris": [MP_REDIRECT], "scopes": ["openid", "appointment", "query"],
         "post_logout_redirect_uris": [MP_BYE]},
        {"id": "gate-line1", "secret_hash": _secret_hash[hegate_bin], "grants": ["client_credentials"],
         "roles": ["transit"], "scopes": ["qr.verify"]},
    ]


def random_phone():
    return "139" + "".join(random.choice("0123456789") for _ in range(8))


def add_user(hegate_bin, cfg_path, phone=None, password="correct horse battery", name="张三",
             idn="23020419900101123X", cards=("social:2302041990", "bus:88880001")):
    phone = phone or random_phone()
    argv = [hegate_bin, "user", "add", "-c", cfg_path, "--phone", phone, "--name", name, "--id-number", idn]
    for c in cards:
        argv += ["--card", c]
    argv.append("--password-stdin")
    p = subprocess.run(argv, input=(password + "\n").encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    err = p.stderr.decode()
    for secret in (phone, password, idn, name):
        assert secret not in out and secret not in err
    sub = out.strip()
    assert sub.startswith("u_")
    return phone, password, sub


class FormParser(html.parser.HTMLParser):
    """The first <form>'s action and its inputs (hidden and named), plus any error text."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self.buttons = {}
        self.in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
            self.in_form = True
        elif tag == "input" and self.in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self.in_form and a.get("name"):
            self.buttons[a.get("id")] = (a["name"], a.get("value"))

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False


def parse_form(text):
    p = FormParser()
    p.feed(text)
    return p


def authorize_params(client_id="hecheng-app", redirect_uri=APP_REDIRECT, scope="openid profile query",
                     challenge=None, method="S256", state=None, nonce=None):
    q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
         "state": state or secrets.token_urlsafe(8)}
    if nonce is not None:
        q["nonce"] = nonce
    if challenge is not None:
        q["code_challenge"] = challenge
    if method is not None:
        q["code_challenge_method"] = method
    return q


def location_params(r):
    assert r.status_code == 302, (r.status_code, r.text[:500])
    loc = r.headers["location"]
    u = urllib.parse.urlsplit(loc)
    return loc, dict(urllib.parse.parse_qsl(u.query))


def sign_in(c, base, phone, password, params):
    """GET authorize, then POST the sign-in form. Returns the final response (302 or a page)."""
    r = c.get(base + "/oauth2/authorize", params=params)
    if r.status_code != 200 or 'name="password"' not in r.text:
        return r
    f = parse_form(r.text)
    data = dict(f.fields)
    data.update({"phone": phone, "password": password, "action": "signin"})
    return c.post(base + f.action, data=data)


def consent(c, base, page, allow=True):
    f = parse_form(page.text)
    data = dict(f.fields)
    data["action"] = "consent" if allow else "deny"
    return c.post(base + f.action, data=data)


def code_flow(c, base, phone, password, client_id="hecheng-app", redirect_uri=APP_REDIRECT, scope="openid profile query",
              nonce=None):
    """The whole flow; returns (token response json, verifier, code)."""
    verifier, challenge = pkce()
    params = authorize_params(client_id, redirect_uri, scope, challenge, nonce=nonce)
    r = sign_in(c, base, phone, password, params)
    if r.status_code == 200 and "action\" value=\"consent\"" in r.text:
        r = consent(c, base, r)
    _, q = location_params(r)
    assert q["state"] == params["state"] and q["iss"] == ISS, q
    t = c.post(base + "/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                              "redirect_uri": redirect_uri, "code_verifier": verifier,
                                              "client_id": client_id})
    assert t.status_code == 200, t.text
    return t.json(), verifier, q["code"]


def jwks_client_keys(c, base):
    return {k["kid"]: jwt.PyJWK(k) for k in c.get(base + "/.well-known/jwks.json").json()["keys"]}


def verify_id_token(c, base, token, client_id, access_token):
    """Verifies an ID token as an OpenID Connect RP does (OIDC Core §3.1.3.7) with PyJWT and the JWKS:
    signature, typ JWT, iss, aud and azp = CLIENT_ID, exp, and at_hash against ACCESS_TOKEN."""
    keys = jwks_client_keys(c, base)
    hdr = jwt.get_unverified_header(token)
    assert hdr["alg"] == "ES256" and hdr["typ"] == "JWT" and hdr["kid"] in keys, hdr
    claims = jwt.decode(token, keys[hdr["kid"]].key, algorithms=["ES256"], audience=client_id, issuer=ISS,
                        options={"require": ["iss", "sub", "aud", "exp", "iat"]})
    assert claims["azp"] == client_id, claims
    assert claims["at_hash"] == b64u(hashlib.sha256(access_token.encode()).digest()[:16]), claims
    return claims


def verify(c, base, token, audience="hegate"):
    """Verifies TOKEN with PyJWT against the gateway's JWKS (an independent implementation)."""
    keys = jwks_client_keys(c, base)
    hdr = jwt.get_unverified_header(token)
    assert hdr["alg"] == "ES256" and hdr["typ"] == "at+jwt" and hdr["kid"] in keys, hdr
    return jwt.decode(token, keys[hdr["kid"]].key, algorithms=["ES256"], audience=audience, issuer=ISS)
