"""The OAuth 2.0 / sign-in service (SPEC §6): token endpoint grants, the code + PKCE flow driven over
HTTP by following the forms, refresh rotation and reuse, revoke, introspect, userinfo, lockout,
logout and logout-all across two gateway processes sharing one Redis."""

import time

import httpx
import jwt
import pytest

from hegatetest import route
from oauthtest import (APP_REDIRECT, GATE_SECRET, ISS, MP_REDIRECT, add_user, authorize_params, clients, code_flow,
                       consent, location_params, parse_form, pkce, sign_in, verify)


@pytest.fixture
def idp(gateway, backend, hegate_bin):
    """A gateway with the three SPEC clients, a protected route, and one resident."""
    b = backend("query")

    def make(start=True):
        g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                    extra={"clients": clients(hegate_bin), "tokens": {"access_ttl": "5m", "audience": "hegate"}},
                    start=False)
        return g

    g = make()
    phone, password, sub = add_user(hegate_bin, g.cfg_path)
    g.start()
    return {"g": g, "phone": phone, "password": password, "sub": sub, "make": make, "backend": b}


def client(g):
    return g.client(http2=True)


def api(g, token):
    with client(g) as c:
        return c.get(g.https + "/api/v1/query/fund", headers={"authorization": "Bearer " + token})


# ---- client_credentials ------------------------------------------------------------------------------


def test_client_credentials_good_secret(idp):
    g = idp["g"]
    with client(g) as c:
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("gate-line1", GATE_SECRET))
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "qr.verify" and body["expires_in"] == 300
        assert "refresh_token" not in body
        claims = verify(c, g.https, body["access_token"])
    assert claims["sub"] == "gate-line1" and claims["client_id"] == "gate-line1" and claims["scope"] == "qr.verify"
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"] and "sid" not in claims
    m = g.metrics()
    assert m.value("hegate_tokens_issued_total", grant="client_credentials") == 1


def test_client_credentials_bad_secret(idp):
    g = idp["g"]
    with client(g) as c:
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("gate-line1", GATE_SECRET + "x"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        assert r.headers["www-authenticate"].startswith("Basic")
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "gate-line1"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("nobody", GATE_SECRET))
        assert r.status_code == 401
        # a public client may not use client_credentials; a confidential one may not use other grants
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "hecheng-app"})
        assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "password"}, auth=("gate-line1", GATE_SECRET))
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials", "scope": "query"},
                   auth=("gate-line1", GATE_SECRET))
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
        # strict forms
        r = c.post(g.https + "/oauth2/token", content=b"grant_type=client_credentials&grant_type=x",
                   headers={"content-type": "application/x-www-form-urlencoded"}, auth=("gate-line1", GATE_SECRET))
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        r = c.post(g.https + "/oauth2/token", json={"grant_type": "client_credentials"}, auth=("gate-line1", GATE_SECRET))
        assert r.status_code == 400
        r = c.post(g.https + "/oauth2/token", content=b"a=" + b"x" * 17000,
                   headers={"content-type": "application/x-www-form-urlencoded"}, auth=("gate-line1", GATE_SECRET))
        assert r.status_code == 400
        assert c.get(g.https + "/oauth2/token").status_code == 405
    assert GATE_SECRET not in g.stderr() and GATE_SECRET not in open(g.access_log_path).read()


# ---- authorization code + PKCE ----------------------------------------------------------------------


def test_code_flow_tokens_verify_with_pyjwt(idp):
    g = idp["g"]
    with client(g) as c:
        t, _, _ = code_flow(c, g.https, idp["phone"], idp["password"])
        assert t["token_type"] == "Bearer" and t["scope"] == "openid profile query" and t["refresh_token"]
        claims = verify(c, g.https, t["access_token"])
        hdr = jwt.get_unverified_header(t["access_token"])
    assert hdr["typ"] == "at+jwt"
    assert claims["sub"] == idp["sub"] and claims["client_id"] == "hecheng-app" and claims["iss"] == ISS
    assert claims["aud"] == "hegate" and claims["acr"] == "pwd" and claims["sid"] and claims["jti"]
    assert idp["phone"] not in str(claims)
    # the token opens the protected route, and the identity reaches the back end
    r = api(g, t["access_token"])
    assert r.status_code == 200, r.text
    seen = idp["backend"].requests()[-1]["headers"]
    assert seen.get("x-hegate-sub") == idp["sub"] and seen.get("x-hegate-sid") == claims["sid"]
    assert g.metrics().value("hegate_tokens_issued_total", grant="authorization_code") == 1


def test_session_cookie_and_sign_in_once(idp):
    g = idp["g"]
    with client(g) as c:
        code_flow(c, g.https, idp["phone"], idp["password"])
        cookie = [h for h in c.cookies.jar if h.name == "hegate_sid"][0]
        assert cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
        # a second client in the same browser: no sign-in page, only its consent page
        verifier, challenge = pkce()
        params = authorize_params("mp-partner", MP_REDIRECT, "openid query", challenge)
        r = c.get(g.https + "/oauth2/authorize", params=params)
        assert r.status_code == 200 and 'type="password"' not in r.text and 'value="consent"' in r.text, r.text
        assert r.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in r.headers["content-security-policy"]
        r = consent(c, g.https, r)
        _, q = location_params(r)
        t = c.post(g.https + "/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                                    "redirect_uri": MP_REDIRECT, "code_verifier": verifier,
                                                    "client_id": "mp-partner"})
        assert t.status_code == 200 and t.json()["scope"] == "openid query"
        # consent is remembered: the next authorize goes straight back with a code
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params("mp-partner", MP_REDIRECT, "query", pkce()[1]))
        _, q = location_params(r)
        assert q["code"]


def test_consent_denied(idp):
    g = idp["g"]
    with client(g) as c:
        params = authorize_params("mp-partner", MP_REDIRECT, "openid", pkce()[1])
        r = sign_in(c, g.https, idp["phone"], idp["password"], params)
        assert r.status_code == 200 and "consent" in r.text
        _, q = location_params(consent(c, g.https, r, allow=False))
        assert q["error"] == "access_denied" and q["state"] == params["state"] and "code" not in q


def test_pkce_required_s256(idp):
    g = idp["g"]
    with client(g) as c:
        verifier, challenge = pkce()
        for bad in (authorize_params(challenge=verifier, method="plain"), authorize_params(challenge=None, method=None),
                    authorize_params(challenge=challenge, method=None)):
            r = c.get(g.https + "/oauth2/authorize", params=bad)
            loc, q = location_params(r)
            assert loc.startswith(APP_REDIRECT + "?") and q["error"] == "invalid_request", q
            assert q["state"] == bad["state"] and q["iss"] == ISS


def test_pkce_mismatch_and_missing_verifier(idp):
    g = idp["g"]
    with client(g) as c:
        verifier, challenge = pkce()
        _, q = location_params(sign_in(c, g.https, idp["phone"], idp["password"], authorize_params(challenge=challenge)))
        base = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": APP_REDIRECT, "client_id": "hecheng-app"}
        r = c.post(g.https + "/oauth2/token", data=base)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = c.post(g.https + "/oauth2/token", data=dict(base, code_verifier=pkce()[0]))
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = c.post(g.https + "/oauth2/token", data=dict(base, code_verifier=challenge))  # a "plain" downgrade
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = c.post(g.https + "/oauth2/token", data=dict(base, code_verifier=verifier))
        assert r.status_code == 200, r.text


def test_redirect_uri_exact_match(idp):
    g = idp["g"]
    with client(g) as c:
        for ru in (APP_REDIRECT + "/x", APP_REDIRECT + "?a=1", APP_REDIRECT.upper(), "https://evil.test/cb"):
            r = c.get(g.https + "/oauth2/authorize", params=authorize_params(redirect_uri=ru, challenge=pkce()[1]))
            assert r.status_code == 400 and "location" not in r.headers
            assert "text/html" in r.headers["content-type"] and "evil" not in r.text.lower()
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(client_id="nobody", challenge=pkce()[1]))
        assert r.status_code == 400 and "location" not in r.headers
        # the redirect_uri at the token endpoint must be the one of the authorization request
        verifier, challenge = pkce()
        _, q = location_params(sign_in(c, g.https, idp["phone"], idp["password"], authorize_params(challenge=challenge)))
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                                    "redirect_uri": APP_REDIRECT + "/", "code_verifier": verifier,
                                                    "client_id": "hecheng-app"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # and the code is bound to its client
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                                    "redirect_uri": MP_REDIRECT, "code_verifier": verifier,
                                                    "client_id": "mp-partner"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_html_escapes_state_and_scope(idp):
    g = idp["g"]
    with client(g) as c:
        p = authorize_params(challenge=pkce()[1], state='"><script>alert(1)</script>')
        r = c.get(g.https + "/oauth2/authorize", params=p)
        assert r.status_code == 200 and "<script>" not in r.text and "&lt;script&gt;" in r.text


def test_code_reuse_revokes_what_it_issued(idp):
    g = idp["g"]
    with client(g) as c:
        t, verifier, code = code_flow(c, g.https, idp["phone"], idp["password"])
        assert api(g, t["access_token"]).status_code == 200
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "authorization_code", "code": code,
                                                    "redirect_uri": APP_REDIRECT, "code_verifier": verifier,
                                                    "client_id": "hecheng-app"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert api(g, t["access_token"]).status_code == 401
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                                    "client_id": "hecheng-app"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # the session the code was issued in ended too (SPEC §6.2): authorize shows the sign-in page again
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1]))
        assert r.status_code == 200 and 'name="password"' in r.text


# ---- refresh tokens -----------------------------------------------------------------------------------


def refresh(c, g, rt, client_id="hecheng-app"):
    return c.post(g.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": client_id})


def test_refresh_rotates(idp):
    g = idp["g"]
    with client(g) as c:
        t, _, _ = code_flow(c, g.https, idp["phone"], idp["password"])
        r = refresh(c, g, t["refresh_token"])
        assert r.status_code == 200, r.text
        t2 = r.json()
        assert t2["refresh_token"] != t["refresh_token"]
        c2 = verify(c, g.https, t2["access_token"])
        assert c2["sub"] == idp["sub"] and c2["sid"] == verify(c, g.https, t["access_token"])["sid"]
        assert refresh(c, g, t2["refresh_token"], client_id="mp-partner").status_code == 400
        r = refresh(c, g, t2["refresh_token"])
        assert r.status_code == 200
    assert g.metrics().value("hegate_tokens_issued_total", grant="refresh_token") == 2


def test_refresh_reuse_revokes_family_and_session(idp):
    g = idp["g"]
    with client(g) as c:
        t, _, _ = code_flow(c, g.https, idp["phone"], idp["password"])
        t2 = refresh(c, g, t["refresh_token"]).json()
        assert api(g, t2["access_token"]).status_code == 200
        r = refresh(c, g, t["refresh_token"])  # the used one again: theft
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert refresh(c, g, t2["refresh_token"]).status_code == 400  # the whole family is dead
        assert api(g, t2["access_token"]).status_code == 401         # and the session's access tokens
        assert api(g, t["access_token"]).status_code == 401
        # the browser session is gone too: authorize shows the sign-in page again
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1]))
        assert r.status_code == 200 and 'name="password"' in r.text


# ---- revoke, introspect, userinfo ----------------------------------------------------------------------


def test_revoke_introspect_userinfo(idp):
    g = idp["g"]
    with client(g) as c:
        t, _, _ = code_flow(c, g.https, idp["phone"], idp["password"])
        at = t["access_token"]
        # userinfo: masked values only
        r = c.get(g.https + "/oauth2/userinfo", headers={"authorization": "Bearer " + at})
        assert r.status_code == 200, r.text
        u = r.json()
        assert u == {"sub": idp["sub"], "name": "张*", "phone_number": idp["phone"][:3] + "****" + idp["phone"][-4:],
                     "cards": ["social", "bus"]}
        assert c.get(g.https + "/oauth2/userinfo").status_code == 401
        # introspection: confidential clients only
        r = c.post(g.https + "/oauth2/introspect", data={"token": at, "client_id": "hecheng-app"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = c.post(g.https + "/oauth2/introspect", data={"token": at}, auth=("gate-line1", GATE_SECRET))
        j = r.json()
        assert j["active"] is True and j["sub"] == idp["sub"] and j["client_id"] == "hecheng-app"
        r = c.post(g.https + "/oauth2/introspect", data={"token": t["refresh_token"]}, auth=("gate-line1", GATE_SECRET))
        assert r.json()["active"] is True and r.json()["token_type"] == "refresh_token"
        r = c.post(g.https + "/oauth2/introspect", data={"token": "garbage"}, auth=("gate-line1", GATE_SECRET))
        assert r.json() == {"active": False}
        # RFC 7009: revoke the access token and the refresh token
        r = c.post(g.https + "/oauth2/revoke", data={"token": at, "client_id": "hecheng-app"})
        assert r.status_code == 200
        assert api(g, at).status_code == 401
        r = c.post(g.https + "/oauth2/introspect", data={"token": at}, auth=("gate-line1", GATE_SECRET))
        assert r.json() == {"active": False}
        r = c.post(g.https + "/oauth2/revoke", data={"token": t["refresh_token"], "client_id": "hecheng-app"})
        assert r.status_code == 200
        assert refresh(c, g, t["refresh_token"]).status_code == 400
        assert c.post(g.https + "/oauth2/revoke", data={"token": "nothing", "client_id": "hecheng-app"}).status_code == 200


# ---- sign-in protection -----------------------------------------------------------------------------


def test_lockout_after_five_failures(idp, hegate_bin):
    g = idp["g"]
    with client(g) as c:
        params = authorize_params(challenge=pkce()[1])
        for i in range(5):
            r = sign_in(c, g.https, idp["phone"], "wrong password %d" % i, params)
            assert r.status_code == 401 and 'name="password"' in r.text, r.status_code
        r = sign_in(c, g.https, idp["phone"], idp["password"], params)  # even the right password now
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # another phone is not affected
    phone2, pw2, _ = add_user(hegate_bin, g.cfg_path)
    with client(g) as c:
        r = sign_in(c, g.https, phone2, pw2, authorize_params(challenge=pkce()[1]))
        assert r.status_code == 302
    for secret in (idp["phone"], idp["password"], phone2):
        assert secret not in g.stderr() and secret not in open(g.access_log_path).read()


def test_unknown_phone_same_answer_same_time(idp):
    g = idp["g"]

    params = authorize_params(challenge=pkce()[1])

    def attempt(phone):
        with client(g) as c:
            t0 = time.monotonic()
            r = sign_in(c, g.https, phone, "not the password", params)
            return r, time.monotonic() - t0

    r1, d1 = attempt(idp["phone"])
    r2, d2 = attempt("13000000001")
    assert r1.status_code == r2.status_code == 401
    strip = lambda t: t.split('name="csrf" value="')[0]  # noqa: E731 (the csrf differs per browser)
    assert strip(r1.text) == strip(r2.text)
    assert abs(d1 - d2) < max(0.5 * max(d1, d2), 0.05), (d1, d2)


def test_csrf_required(idp):
    g = idp["g"]
    with client(g) as c:
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1]))
        f = parse_form(r.text)
        data = dict(f.fields, phone=idp["phone"], password=idp["password"], action="signin")
        data["csrf"] = "0" * 64
        r = c.post(g.https + "/oauth2/authorize", data=data)
        assert r.status_code == 403
    with client(g) as other:  # another browser (no pre-auth cookie) replaying the form
        r = other.post(g.https + "/oauth2/authorize", data=dict(f.fields, phone=idp["phone"], password=idp["password"],
                                                              action="signin"))
        assert r.status_code == 403


# ---- sign out everywhere --------------------------------------------------------------------------


def wait_refused(g, token, limit=1.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        if api(g, token).status_code == 401:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def test_logout_on_a_refused_on_b_within_1s(idp, hegate_bin):
    a = idp["g"]
    b = idp["make"]()
    b.start()
    time.sleep(0.3)  # b's subscriber is connected
    with client(a) as c:
        t, _, _ = code_flow(c, a.https, idp["phone"], idp["password"])
    at = t["access_token"]
    assert api(b, at).status_code == 200
    with client(a) as c:
        r = c.post(a.https + "/oauth2/logout", headers={"authorization": "Bearer " + at})
        assert r.status_code == 200
    took = wait_refused(b, at)
    assert took is not None and took < 1.0, took
    assert api(a, at).status_code == 401
    with client(a) as c:
        assert refresh(c, a, t["refresh_token"]).status_code == 400


def test_revocations_resync_after_restart(idp):
    """A node that was down while a session was revoked learns it from Redis when it (re)starts."""
    a = idp["g"]
    with client(a) as c:
        t, _, _ = code_flow(c, a.https, idp["phone"], idp["password"])
        assert c.post(a.https + "/oauth2/logout", headers={"authorization": "Bearer " + t["access_token"]}).status_code == 200
    b = idp["make"]()
    b.start()
    took = wait_refused(b, t["access_token"], limit=2.0)
    assert took is not None and took < 2.0


def test_logout_all(idp):
    g = idp["g"]
    with client(g) as c1, client(g) as c2:
        t1, _, _ = code_flow(c1, g.https, idp["phone"], idp["password"])
        t2, _, _ = code_flow(c2, g.https, idp["phone"], idp["password"])
        assert verify(c1, g.https, t1["access_token"])["sid"] != verify(c2, g.https, t2["access_token"])["sid"]
        assert api(g, t1["access_token"]).status_code == 200 and api(g, t2["access_token"]).status_code == 200
        r = c1.post(g.https + "/oauth2/logout-all", headers={"authorization": "Bearer " + t1["access_token"]})
        assert r.status_code == 200
        assert wait_refused(g, t2["access_token"]) is not None
        assert api(g, t1["access_token"]).status_code == 401
        assert refresh(c2, g, t2["refresh_token"]).status_code == 400
        r = c2.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1]))
        assert r.status_code == 200 and 'name="password"' in r.text


def test_cli_user_add_refuses_duplicates_and_bad_input(idp, hegate_bin):
    import subprocess
    g = idp["g"]
    base = [hegate_bin, "user", "add", "-c", g.cfg_path, "--name", "李四", "--id-number", "230204199001011234", "--password-stdin"]
    p = subprocess.run(base + ["--phone", idp["phone"]], input=b"another password\n", capture_output=True, timeout=30)
    assert p.returncode == 1 and idp["phone"].encode() not in p.stderr
    p = subprocess.run(base + ["--phone", "12ab"], input=b"another password\n", capture_output=True, timeout=30)
    assert p.returncode == 2
    p = subprocess.run(base + ["--phone", "13912345678"], input=b"short\n", capture_output=True, timeout=30)
    assert p.returncode == 2
