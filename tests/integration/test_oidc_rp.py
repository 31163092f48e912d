"""A partner's standard library against a real gateway (issue 12, SPEC §6.2): openid-client 5.7.1
(OpenID Certified; tests/rp/, pinned by its lockfile, installed by scripts/deps.sh, run with the
machine's Node.js) does discovery, code + PKCE + state + nonce, the code exchange with its own ID token
validation (JWKS signature, iss, aud, azp, exp, iat, nonce, at_hash), refresh with a new ID token,
userinfo (sub matched against the ID token's), prompt=none with and without a session, and RP-initiated
logout through the library's end-session URL; this test
plays the browser on the sign-in and consent pages in between."""

import json
import os
import subprocess
import urllib.parse

import pytest

from hegatetest import route
from oauthtest import MP_BYE, MP_REDIRECT, add_user, clients, consent, parse_form

RP_DIR = os.path.join(os.path.dirname(__file__), "..", "rp")


class RP:
    def __init__(self, issuer, client_id, redirect_uri, ca):
        if not os.path.isdir(os.path.join(RP_DIR, "node_modules", "openid-client")):
            pytest.fail("tests/rp/node_modules is missing: run scripts/deps.sh (npm ci in tests/rp)")
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=ca)
        self.p = subprocess.Popen(["node", "rp.js", issuer, client_id, redirect_uri], cwd=RP_DIR, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, step, **kw):
        self.p.stdin.write(json.dumps(dict(kw, step=step)) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, "rp.js ended: %s" % self.p.stderr.read()
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


@pytest.fixture
def rp_gateway(gateway, backend, hegate_bin, tls_cert):
    b = backend("query")
    g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                extra={"clients": clients(hegate_bin), "tokens": {"access_ttl": "5m", "audience": "hegate"}}, start=False)
    g.write_config(dict(g.cfg, issuer=g.https))  # the RP fetches every endpoint the discovery document names
    phone, password, sub = add_user(hegate_bin, g.cfg_path)
    g.start()
    rp = RP(g.https, "mp-partner", MP_REDIRECT, tls_cert[0])
    yield g, rp, phone, password, sub
    rp.close()


def browse(c, url, phone=None, password=None):
    """What the resident's browser does with an authorization URL: sign in and consent when asked.
    Returns the redirect to the client (its Location)."""
    r = c.get(url)
    if r.status_code == 200 and 'name="password"' in r.text:
        f = parse_form(r.text)
        data = dict(f.fields, phone=phone, password=password, action="signin")
        r = c.post(urllib.parse.urljoin(url, f.action), data=data)
    if r.status_code == 200 and 'value="consent"' in r.text:
        r = consent(c, url.split("/oauth2/")[0], r)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    return r.headers["location"]


def test_openid_client_end_to_end(rp_gateway):
    g, rp, phone, password, sub = rp_gateway
    d = rp("discover")
    assert d["ok"], d
    assert d["issuer"] == g.https and d["metadata"]["subject_types_supported"] == ["public", "pairwise"]

    a = rp("authorize", scope="openid query")
    with g.client(http2=True) as browser:
        cb = rp("callback", url=browse(browser, a["url"], phone, password))
        assert cb["ok"], cb
        claims = cb["claims"]
        assert claims["nonce"] == a["nonce"] and claims["aud"] == "mp-partner" and claims["azp"] == "mp-partner"
        assert claims["sub"] != sub and claims["amr"] == ["pwd"] and claims["sid"] and cb["has_refresh"]

        bad = rp("tamper")
        assert bad["ok"] and bad["refused"], bad  # the library does check our signature

        r = rp("refresh")
        assert r["ok"], r
        assert r["claims"]["sub"] == claims["sub"] and r["claims"]["auth_time"] == claims["auth_time"]
        assert "nonce" not in r["claims"]

        u = rp("userinfo")
        assert u["ok"], u
        assert u["userinfo"]["sub"] == claims["sub"] and u["userinfo"]["name"] == "张*"

        # prompt=none, signed in (and consented): a code, and the library takes it
        a = rp("authorize", scope="openid query", prompt="none", max_age=3600)
        cb2 = rp("callback", url=browse(browser, a["url"]), max_age=3600)
        assert cb2["ok"], cb2
        assert cb2["claims"]["sub"] == claims["sub"] and cb2["claims"]["nonce"] == a["nonce"]

        # RP-initiated logout: the library's end-session URL ends the session and comes back with state
        e = rp("end_session", uri=MP_BYE, state="bye-1")
        assert e["ok"] and e["url"].startswith(g.https + "/oauth2/end_session?"), e
        r = browser.get(e["url"])
        assert r.status_code == 302 and r.headers["location"] == MP_BYE + "?state=bye-1", (r.status_code, r.headers)
        a = rp("authorize", scope="openid query", prompt="none")
        cb4 = rp("callback", url=browse(browser, a["url"]))
        assert not cb4["ok"] and cb4["error"] == "login_required", cb4  # signed out in that browser too

    # prompt=none in a browser without a session: the library reports the OP's login_required
    with g.client(http2=True) as fresh:
        a = rp("authorize", scope="openid query", prompt="none")
        cb3 = rp("callback", url=browse(fresh, a["url"]))
    assert not cb3["ok"] and cb3["op_error"] and cb3["error"] == "login_required", cb3
