"""Expiry paths of SPEC §6 with the gateway's clock moved by libfaketime (the test does not wait):
access tokens at the bearer stage (exp + 30 s leeway, cached and uncached), authorization codes older
than 60 s, refresh tokens past refresh_ttl (and renewed by rotation), sign-in sessions past session_ttl.

Only the gateway runs under libfaketime (FAKETIME_DONT_FAKE_MONOTONIC=1, NOTES.md; the offset is read from
a file on every call, so the test moves the clock while the gateway runs). Redis keeps the real time (it
does not start under libfaketime), so these tests see the gateway's own expiry checks: codes, refresh
tokens and sessions carry their expiry on the gateway's clock beside their Redis TTL. Skipped for an ASan
build (`make asan`): a process with libfaketime preloaded before the ASan runtime hangs at start-up."""

import os
import urllib.parse

import jwt
import pytest

from hegatetest import assert_problem, route, sanitized
from oauthtest import APP_REDIRECT, add_user, authorize_params, clients, code_flow, location_params, pkce, sign_in

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


class Clock:
    def __init__(self, path):
        self.path = path
        self.set(0)

    def set(self, seconds):
        """The gateway's clock runs SECONDS ahead of the real one from now on."""
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+ds\n" % seconds)
        os.replace(tmp, self.path)

    def env(self):
        return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": self.path, "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture
def faked(gateway, backend, hegate_bin, tmp_path, monkeypatch):
    """factory(tokens) -> (gateway under libfaketime, clock, phone, password)"""
    if not os.path.exists(LIBFAKETIME):
        pytest.fail("libfaketime is required (apt-get install faketime)")
    if sanitized(hegate_bin):
        pytest.skip("libfaketime cannot be preloaded into an ASan build (it hangs at start-up); "
                    "these tests run in `make integration`")
    b = backend("query")

    def make(tokens, client_list=None):
        clock = Clock(str(tmp_path / "faketime.txt"))
        g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                    extra={"clients": client_list or clients(hegate_bin), "tokens": dict(tokens, audience="hegate")},
                    start=False)
        phone, password, _ = add_user(hegate_bin, g.cfg_path)
        with monkeypatch.context() as m:  # only the gateway process runs with the faked clock
            for k, v in clock.env().items():
                m.setenv(k, v)
            g.start()
        return g, clock, phone, password

    return make


def fresh(g):
    # a new client after each jump: the gateway's idle timers ran on the faked clock and may close connections
    return g.client(http2=True)


def api(g, token):
    with fresh(g) as c:
        return c.get(g.https + "/api/v1/query/x", headers={"authorization": "Bearer " + token})


def refresh(c, g, rt):
    return c.post(g.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                                   "client_id": "hecheng-app"})


def test_faked_clock_reaches_the_gateway(faked):
    """The premise of this file: moving the clock file moves the gateway's notion of now."""
    g, clock, phone, password = faked({"access_ttl": "2m"})

    def iat():
        with fresh(g) as c:
            tok = code_flow(c, g.https, phone, password)[0]["access_token"]
        return jwt.decode(tok, options={"verify_signature": False})["iat"]  # PyJWT would check iat on the real clock

    t0 = iat()
    clock.set(3600)
    t1 = iat()
    assert 3590 <= t1 - t0 <= 3700, (t0, t1)


def test_access_token_expiry_and_leeway_at_the_bearer_stage(faked):
    g, clock, phone, password = faked({"access_ttl": "2m"})
    with fresh(g) as c:
        used = code_flow(c, g.https, phone, password)[0]["access_token"]
        unused = code_flow(c, g.https, phone, password)[0]["access_token"]
    assert api(g, used).status_code == 200  # now in the thread's verified-token cache
    clock.set(120 + 15)  # past exp, within the 30 s leeway
    assert api(g, used).status_code == 200
    clock.set(120 + 35)  # past exp + 30 s: refused, cached or not
    for tok in (used, unused):
        r = api(g, tok)
        assert_problem(r, 401, "unauthorized")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    clock.set(0)  # and the clock really was the reason
    assert api(g, unused).status_code == 200


def test_authorization_code_older_than_60s_refused(faked):
    g, clock, phone, password = faked({"access_ttl": "5m"})
    with fresh(g) as c:
        codes = []
        for _ in range(2):  # the first signs in, the second uses the session
            verifier, challenge = pkce()
            r = sign_in(c, g.https, phone, password, authorize_params(challenge=challenge))
            codes.append((location_params(r)[1]["code"], verifier))

    def redeem(code, verifier):
        with fresh(g) as c:
            return c.post(g.https + "/oauth2/token", data={"grant_type": "authorization_code", "code": code,
                                                           "redirect_uri": APP_REDIRECT, "code_verifier": verifier,
                                                           "client_id": "hecheng-app"})

    clock.set(45)  # 45 s old (plus the test's own seconds): still good
    assert redeem(*codes[0]).status_code == 200
    clock.set(62)  # older than 60 s on the gateway's clock (Redis' TTL has not run out): refused
    r = redeem(*codes[1])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_refresh_token_expiry_and_renewal_by_rotation(faked):
    g, clock, phone, password = faked({"access_ttl": "5m", "refresh_ttl": "10m", "session_ttl": "1h"})
    with fresh(g) as c:
        rt1 = code_flow(c, g.https, phone, password)[0]["refresh_token"]
        cookies = c.cookies
    clock.set(5 * 60)
    with fresh(g) as c:
        r = refresh(c, g, rt1)
        assert r.status_code == 200, r.text
        rt2 = r.json()["refresh_token"]
    clock.set(14 * 60)  # rt1 would be dead by now; rt2 was issued at +5 min for 10 min
    with fresh(g) as c:
        r = refresh(c, g, rt2)
        assert r.status_code == 200, r.text
        rt3 = r.json()["refresh_token"]
    clock.set(24 * 60 + 10)  # rt3 (issued at +14 min) is past its 10 min
    with fresh(g) as c:
        r = refresh(c, g, rt3)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        # an expired token is not a reused one: the session lives on (authorize needs no sign-in)
        c.cookies = cookies
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1]))
        assert r.status_code == 302, (r.status_code, r.text[:200])


def test_session_expiry(faked):
    g, clock, phone, password = faked({"access_ttl": "5m", "refresh_ttl": "2h", "session_ttl": "30m"})
    with fresh(g) as c:
        rt = code_flow(c, g.https, phone, password)[0]["refresh_token"]
        cookies = c.cookies
    clock.set(29 * 60)
    with fresh(g) as c:
        c.cookies = cookies
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1]))
        assert r.status_code == 302 and "code=" in urllib.parse.urlsplit(r.headers["location"]).query
    clock.set(31 * 60)
    with fresh(g) as c:
        c.cookies = cookies
        r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1]))
        assert r.status_code == 200 and 'name="password"' in r.text  # sign in again
        r = refresh(c, g, rt)  # the session's refresh tokens end with it
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        # signing in again works on the faked clock, and so does the new session's flow
        t, _, _ = code_flow(c, g.https, phone, password)
        assert t["refresh_token"]


def test_device_code_expires_on_the_gateways_clock(faked, hegate_bin):
    """SPEC §6.1: a device authorization lives tokens.device_ttl; past it the kiosk's poll is expired_token
    (then forgotten: invalid_grant) and the app finds no pending code."""
    from test_device import GRANT, device_clients
    g, clock, phone, password = faked({"access_ttl": "15m", "device_ttl": "2m"}, device_clients(hegate_bin))
    with fresh(g) as c:
        t, _, _ = code_flow(c, g.https, phone, password, scope="openid query device")
        a = c.post(g.https + "/oauth2/device_authorization", data={"client_id": "kiosk-hall-3"}).json()
    assert a["expires_in"] == 120

    def poll():
        with fresh(g) as c:
            return c.post(g.https + "/oauth2/token", data={"grant_type": GRANT, "device_code": a["device_code"],
                                                           "client_id": "kiosk-hall-3"}).json()["error"]

    clock.set(110)
    assert poll() == "authorization_pending"
    clock.set(121)
    with fresh(g) as c:
        r = c.get(g.https + "/oauth2/device/info", params={"user_code": a["user_code"]},
                  headers={"authorization": "Bearer " + t["access_token"]})
    assert r.status_code == 404
    assert poll() == "expired_token"
    assert poll() == "invalid_grant"
