"""OpenID Connect on top of the sign-in service (SPEC §6.2): ID tokens with the code and refresh grants
(nonce, auth_time, at_hash, sid, acr, amr, azp), verified as an RP would with PyJWT against the JWKS,
and the subjects clients see: pairwise for partners (per client or sector_identifier, the same in the
ID token and userinfo, across sign-ins and gateway nodes), the city-wide pseudonym for first-party
clients and in every access token."""

import contextlib
import secrets
import time

import pytest

from hegatetest import route
from oauthtest import (MP_REDIRECT, add_user, clients, code_flow, verify, verify_id_token)

MP2_REDIRECT = "https://mp2.partner.test/cb"


def oidc_clients(hegate_bin):
    return clients(hegate_bin) + [
        {"id": "mp-partner-2", "redirect_uris": [MP2_REDIRECT], "scopes": ["openid", "query"]},
        {"id": "mp-public", "redirect_uris": [MP2_REDIRECT], "scopes": ["openid"], "subject_type": "public"},
        {"id": "mp-sector-a", "redirect_uris": [MP2_REDIRECT], "scopes": ["openid"], "sector_identifier": "sector-x"},
        {"id": "mp-sector-b", "redirect_uris": [MP2_REDIRECT], "scopes": ["openid"], "sector_identifier": "sector-x"},
    ]


@pytest.fixture
def op(gateway, backend, hegate_bin):
    b = backend("query")
    extra = {"clients": oidc_clients(hegate_bin), "tokens": {"access_ttl": "5m", "audience": "hegate"}}
    g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])], extra=extra, start=False)
    g2 = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])], extra=extra, start=False)
    phone, password, sub = add_user(hegate_bin, g.cfg_path)
    g.start()
    g2.start()
    return {"g": g, "g2": g2, "phone": phone, "password": password, "sub": sub}


def flow(g, op, client_id="hecheng-app", redirect=None, scope="openid profile query", nonce=None):
    from oauthtest import APP_REDIRECT
    with g.client(http2=True) as c:
        t, _, _ = code_flow(c, g.https, op["phone"], op["password"], client_id=client_id,
                            redirect_uri=redirect or APP_REDIRECT, scope=scope, nonce=nonce)
        at = verify(c, g.https, t["access_token"])
        idt = verify_id_token(c, g.https, t["id_token"], client_id, t["access_token"]) if "id_token" in t else None
        if "openid" not in scope.split():
            return t, at, idt, None
        ui = c.get(g.https + "/oauth2/userinfo", headers={"authorization": "Bearer " + t["access_token"]})
        assert ui.status_code == 200, ui.text
    return t, at, idt, ui.json()


def test_code_grant_with_openid_returns_an_id_token(op):
    g = op["g"]
    nonce = secrets.token_urlsafe(16)
    before = int(time.time())
    t, at, idt, ui = flow(g, op, nonce=nonce)
    assert idt is not None, t
    assert idt["nonce"] == nonce
    assert idt["sub"] == op["sub"] == at["sub"] == ui["sub"]  # first party: the city-wide pseudonym
    assert idt["sid"] == at["sid"] and idt["acr"] == at["acr"] == "pwd" and idt["amr"] == ["pwd"]
    assert before - 2 <= idt["auth_time"] <= idt["iat"] <= int(time.time()) + 1
    assert idt["exp"] - idt["iat"] == 300  # tokens.access_ttl
    for private in (op["phone"], "张三", "23020419900101123X"):
        assert private not in str(idt)


def test_profile_adds_the_masked_name_only(op):
    g = op["g"]
    _, _, idt, ui = flow(g, op, scope="openid profile query")
    assert idt["name"] == ui["name"] == "张*"
    for claim in ("phone_number", "cards", "id_number", "given_name", "family_name"):
        assert claim not in idt
    _, _, idt, _ = flow(g, op, scope="openid query")
    assert "name" not in idt
    with g.client(http2=True) as c:  # a refreshed ID token keeps it
        t, _, _ = code_flow(c, g.https, op["phone"], op["password"], scope="openid profile")
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                                    "client_id": "hecheng-app"})
        t2 = r.json()
        assert verify_id_token(c, g.https, t2["id_token"], "hecheng-app", t2["access_token"])["name"] == "张*"
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t2["refresh_token"],
                                                    "client_id": "hecheng-app", "scope": "openid"})
        t3 = r.json()  # narrowed to openid: no profile, no name
        assert "name" not in verify_id_token(c, g.https, t3["id_token"], "hecheng-app", t3["access_token"])


def test_no_openid_no_id_token_and_no_nonce_without_one(op):
    g = op["g"]
    t, _, _, _ = flow(g, op, scope="query")
    assert "id_token" not in t and t["scope"] == "query"
    t, _, idt, _ = flow(g, op)
    assert "nonce" not in idt


def test_nonce_longer_than_512_bytes_is_refused(op):
    g = op["g"]
    from oauthtest import APP_REDIRECT, authorize_params, location_params, pkce
    _, challenge = pkce()
    with g.client(http2=True) as c:
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=challenge, nonce="n" * 513))
        _, q = location_params(r)
        assert q["error"] == "invalid_request", q


def test_refresh_gives_a_new_id_token_of_the_same_sign_in(op):
    g = op["g"]
    t, _, idt, _ = flow(g, op, client_id="mp-partner", redirect=MP_REDIRECT, scope="openid query", nonce="n-1")
    with g.client(http2=True) as c:
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                                    "client_id": "mp-partner"})
        assert r.status_code == 200, r.text
        t2 = r.json()
        idt2 = verify_id_token(c, g.https, t2["id_token"], "mp-partner", t2["access_token"])
    assert idt2["sub"] == idt["sub"] and idt2["sid"] == idt["sid"] and idt2["auth_time"] == idt["auth_time"]
    assert "nonce" not in idt2 and idt["nonce"] == "n-1"
    assert idt2["at_hash"] != idt["at_hash"]


def test_partners_see_pairwise_subjects(op):
    g, g2 = op["g"], op["g2"]
    _, at1, idt1, ui1 = flow(g, op, client_id="mp-partner", redirect=MP_REDIRECT, scope="openid query")
    _, at2, idt2, ui2 = flow(g, op, client_id="mp-partner-2", redirect=MP2_REDIRECT, scope="openid query")
    assert at1["sub"] == at2["sub"] == op["sub"]  # access tokens: what back ends see, unchanged
    assert idt1["sub"] != op["sub"] and idt2["sub"] != op["sub"] and idt1["sub"] != idt2["sub"]
    assert ui1["sub"] == idt1["sub"] and ui2["sub"] == idt2["sub"]
    # the same client on another sign-in through another node: the same pairwise subject
    _, _, idt1b, ui1b = flow(g2, op, client_id="mp-partner", redirect=MP_REDIRECT, scope="openid query")
    assert idt1b["sub"] == idt1["sub"] == ui1b["sub"] and idt1b["sid"] != idt1["sid"]
    assert op["sub"] not in idt1["sub"]


def test_subject_type_public_and_sector_identifier(op):
    g = op["g"]
    _, _, pub, _ = flow(g, op, client_id="mp-public", redirect=MP2_REDIRECT, scope="openid")
    assert pub["sub"] == op["sub"]
    _, _, a, _ = flow(g, op, client_id="mp-sector-a", redirect=MP2_REDIRECT, scope="openid")
    _, _, b, _ = flow(g, op, client_id="mp-sector-b", redirect=MP2_REDIRECT, scope="openid")
    _, _, p, _ = flow(g, op, client_id="mp-partner-2", redirect=MP2_REDIRECT, scope="openid")
    assert a["sub"] == b["sub"] != op["sub"] and a["sub"] != p["sub"]


def test_discovery_lists_what_is_implemented(op):
    g = op["g"]
    with g.client(http2=True) as c:
        d = c.get(g.https + "/.well-known/openid-configuration").json()
    assert d["subject_types_supported"] == ["public", "pairwise"]
    assert d["id_token_signing_alg_values_supported"] == ["ES256"] and d["acr_values_supported"] == ["pwd", "cross-device"]
    assert {"nonce", "auth_time", "at_hash", "sid", "acr", "amr", "azp"} <= set(d["claims_supported"])
    assert d["prompt_values_supported"] == ["none", "login"]
    assert d["end_session_endpoint"] == "https://hegate.test/oauth2/end_session"


@pytest.mark.parametrize("bad,want", [
    ({"subject_type": "secret"}, "subject_type"),
    ({"sector_identifier": "has space"}, "sector_identifier"),
])
def test_check_refuses_bad_oidc_client_keys(gateway, hegate_bin, bad, want):
    import subprocess
    cl = clients(hegate_bin)
    cl[1] = dict(cl[1], **bad)
    g = gateway([route("q", "/api/v1/q", ["http://127.0.0.1:9"])], extra={"clients": cl}, start=False)
    p = subprocess.run([hegate_bin, "check", "-c", g.cfg_path], capture_output=True, timeout=30)
    err = p.stderr.decode() + p.stdout.decode()
    assert p.returncode != 0 and want in err and g.cfg_path + ":" in err, err


# ---- prompt and max_age ---------------------------------------------------------------------------------


def authorize(c, g, client_id="hecheng-app", redirect=None, scope="openid query", **extra):
    from oauthtest import APP_REDIRECT, authorize_params, pkce
    _, challenge = pkce()
    params = dict(authorize_params(client_id, redirect or APP_REDIRECT, scope, challenge), **extra)
    return c.get(g.https + "/oauth2/authorize", params=params), params


@contextlib.contextmanager
def signed_in_browser(g, op):
    """An httpx client holding a sign-in session cookie (as a browser after one sign-in)."""
    with g.client(http2=True) as c:
        code_flow(c, g.https, op["phone"], op["password"])
        yield c


def redirect_query(r):
    from oauthtest import location_params
    return location_params(r)[1]


def test_prompt_none_without_a_session_is_login_required(op):
    g = op["g"]
    with g.client(http2=True) as c:
        r, p = authorize(c, g, prompt="none")
        q = redirect_query(r)
    assert q["error"] == "login_required" and q["state"] == p["state"] and "code" not in q


def test_prompt_none_with_a_session(op):
    g = op["g"]
    with signed_in_browser(g, op) as c:
        q = redirect_query(authorize(c, g, prompt="none")[0])  # first party: no consent needed
        assert "code" in q and "error" not in q
        r, _ = authorize(c, g, client_id="mp-partner", redirect=MP_REDIRECT, prompt="none")
        assert redirect_query(r)["error"] == "consent_required"
        # consent once (no prompt), then prompt=none answers with a code
        from oauthtest import consent
        page, _ = authorize(c, g, client_id="mp-partner", redirect=MP_REDIRECT)
        assert page.status_code == 200 and 'value="consent"' in page.text
        assert "code" in redirect_query(consent(c, g.https, page))
        q = redirect_query(authorize(c, g, client_id="mp-partner", redirect=MP_REDIRECT, prompt="none")[0])
        assert "code" in q, q
        # a scope not consented to yet asks again
        r, _ = authorize(c, g, client_id="mp-partner", redirect=MP_REDIRECT, scope="openid appointment", prompt="none")
        assert redirect_query(r)["error"] == "consent_required"


def test_prompt_login_asks_again_despite_the_session(op):
    g = op["g"]
    with signed_in_browser(g, op) as c:
        assert "code" in redirect_query(authorize(c, g)[0])
        r, _ = authorize(c, g, prompt="login")
        assert r.status_code == 200 and 'name="password"' in r.text


def test_max_age_forces_a_fresh_sign_in(op):
    g = op["g"]
    with signed_in_browser(g, op) as c:
        assert "code" in redirect_query(authorize(c, g, max_age="3600")[0])
        time.sleep(2.1)
        r, _ = authorize(c, g, max_age="1")
        assert r.status_code == 200 and 'name="password"' in r.text
        assert redirect_query(authorize(c, g, max_age="1", prompt="none")[0])["error"] == "login_required"
    # after signing in again, the ID token's auth_time is the new sign-in
    before = int(time.time())
    with g.client(http2=True) as c:
        from oauthtest import APP_REDIRECT
        t, _, _ = code_flow(c, g.https, op["phone"], op["password"])
        idt = verify_id_token(c, g.https, t["id_token"], "hecheng-app", t["access_token"])
    assert idt["auth_time"] >= before - 1


@pytest.mark.parametrize("extra", [{"prompt": "consent"}, {"prompt": "none login"}, {"max_age": "-1"},
                                   {"max_age": "soon"}, {"max_age": ""}])
def test_bad_prompt_and_max_age_are_invalid_requests(op, extra):
    g = op["g"]
    with g.client(http2=True) as c:
        q = redirect_query(authorize(c, g, **extra)[0])
    assert q["error"] == "invalid_request", q


# ---- RP-initiated logout ---------------------------------------------------------------------------------


@contextlib.contextmanager
def partner_session(g, op):
    """A browser signed in to mp-partner: (client with the session cookie, token answer)."""
    with g.client(http2=True) as c:
        t, _, _ = code_flow(c, g.https, op["phone"], op["password"], client_id="mp-partner", redirect_uri=MP_REDIRECT,
                            scope="openid query")
        yield c, t


def session_alive(g, t):
    with g.client(http2=True) as c:
        r = c.get(g.https + "/api/v1/query/x", headers={"authorization": "Bearer " + t["access_token"]})
    assert r.status_code in (200, 401), r.status_code
    return r.status_code == 200


def wait_dead(g, t, seconds=2.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not session_alive(g, t):
            return True
        time.sleep(0.05)
    return False


def test_end_session_with_a_valid_hint_returns_to_the_client(op):
    from oauthtest import MP_BYE
    g, g2 = op["g"], op["g2"]
    with partner_session(g, op) as (c, t):
        r = c.get(g.https + "/oauth2/end_session", params={"id_token_hint": t["id_token"], "post_logout_redirect_uri": MP_BYE,
                                                          "state": "s-42", "client_id": "mp-partner"})
        assert r.status_code == 302 and r.headers["location"] == MP_BYE + "?state=s-42", (r.status_code, r.headers)
        assert "hegate_sid=;" in r.headers.get("set-cookie", "") and "Max-Age=0" in r.headers["set-cookie"]
        assert wait_dead(g, t) and wait_dead(g2, t)  # the session ended everywhere
        rr = c.post(g.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                                     "client_id": "mp-partner"})
        assert rr.status_code == 400 and rr.json()["error"] == "invalid_grant"
        # the browser must sign in again
        from oauthtest import authorize_params, pkce
        page = c.get(g.https + "/oauth2/authorize", params=authorize_params("mp-partner", MP_REDIRECT, "openid", pkce()[1]))
        assert page.status_code == 200 and 'name="password"' in page.text


@pytest.mark.parametrize("case", ["no-hint", "tampered", "other-client", "unregistered-uri"])
def test_end_session_never_redirects_unverified(op, case):
    from oauthtest import MP_BYE
    g = op["g"]
    with partner_session(g, op) as (c, t):
        hint = t["id_token"]
        params = {"post_logout_redirect_uri": MP_BYE, "state": "x"}
        if case == "tampered":
            h, p, s = hint.split(".")
            hint = ".".join([h, p, s[:-2] + ("AA" if s[-2:] != "AA" else "BB")])
        if case == "other-client":
            params["client_id"] = "hecheng-app"
        if case == "unregistered-uri":
            params["post_logout_redirect_uri"] = "https://evil.example/"
        if case != "no-hint":
            params["id_token_hint"] = hint
        r = c.get(g.https + "/oauth2/end_session", params=params)
        assert "location" not in r.headers, r.headers
        if case == "unregistered-uri":
            assert r.status_code == 400
        else:
            assert r.status_code == 200 and 'value="logout"' in r.text  # the confirmation page
        time.sleep(0.3)
        assert session_alive(g, t)  # nothing ended without the resident confirming


def test_end_session_confirmation_page_ends_the_browsers_session(op):
    from oauthtest import parse_form
    g = op["g"]
    with partner_session(g, op) as (c, t):
        page = c.get(g.https + "/oauth2/end_session")
        assert page.status_code == 200
        f = parse_form(page.text)
        assert f.action == "/oauth2/end_session" and f.fields.get("csrf")
        bad = c.post(g.https + f.action, data={"action": "logout", "csrf": "0" * 64})
        assert bad.status_code == 403 and session_alive(g, t)
        r = c.post(g.https + f.action, data=dict(f.fields, action="logout"))
        assert r.status_code == 200 and "Signed out" in r.text and "location" not in r.headers
        assert wait_dead(g, t)


def test_id_tokens_follow_key_rotation(gateway, backend, hegate_bin, tmp_path):
    """ID tokens are signed by the newest token key (kid in the JWKS) and an older key's ID token still
    works as a logout hint while that key verifies."""
    import subprocess
    from oauthtest import MP_BYE, jwks_client_keys
    kd = tmp_path / "keys"
    assert subprocess.run([hegate_bin, "keys", "generate", "--dir", str(kd)], capture_output=True, timeout=30).returncode == 0
    b = backend("query")
    g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                extra={"clients": oidc_clients(hegate_bin), "keys": {"dir": str(kd)},
                       "tokens": {"access_ttl": "5m", "audience": "hegate"}}, start=False)
    phone, password, sub = add_user(hegate_bin, g.cfg_path)
    g.start()
    op = {"phone": phone, "password": password, "sub": sub}
    t1, _, idt1, _ = flow(g, op, client_id="mp-partner", redirect=MP_REDIRECT, scope="openid query")
    import jwt as pyjwt
    kid1 = pyjwt.get_unverified_header(t1["id_token"])["kid"]
    time.sleep(1.1)  # key files are named by their creation second
    r = subprocess.run([hegate_bin, "keys", "rotate", "--dir", str(kd), "--purpose", "token"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    g.reload()
    t2, _, idt2, _ = flow(g, op, client_id="mp-partner", redirect=MP_REDIRECT, scope="openid query")
    kid2 = pyjwt.get_unverified_header(t2["id_token"])["kid"]
    with g.client(http2=True) as c:
        keys = jwks_client_keys(c, g.https)
    assert kid2 != kid1 and {kid1, kid2} <= set(keys)
    assert idt2["sub"] == idt1["sub"]
    # the older key's ID token is still a valid hint: its session ends, the browser goes back
    with g.client(http2=True) as c:
        r = c.get(g.https + "/oauth2/end_session", params={"id_token_hint": t1["id_token"], "post_logout_redirect_uri": MP_BYE})
    assert r.status_code == 302 and r.headers["location"] == MP_BYE
