"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0, SPEC §6.2): when a sign-in session ends —
logout, logout-all, end_session, a replayed refresh token, a reused code — every client with a
backchannel_logout_uri that was issued tokens in it gets one POST logout_token=<JWT>, from exactly one of
the gateway nodes, within 5 s; failures are retried with backoff (and counted in /metrics), a client that
does not answer does not slow the logout, and retries stop after 10 minutes.

The relying party here is a small HTTP server of the test's own, which checks each logout token as an RP
must (§2.6): signature against the gateway's JWKS, typ logout+jwt, iss, aud, iat/exp, the event, a sid,
no nonce, and a jti it has not seen before (a replayed one it refuses)."""

import contextlib
import http.server
import json
import re
import ssl
import subprocess
import threading
import time
import urllib.parse

import jwt
import pytest
import redis

from hegatetest import free_port, route
from oauthtest import (APP_REDIRECT, ISS, MP_BYE, MP_REDIRECT, add_user, authorize_params, clients, code_flow,
                       jwks_client_keys, pkce)

EVENT = "http://schemas.openid.net/event/backchannel-logout"


class RP:
    """A relying party's back-channel endpoint: answers with the statuses queued for it (then 200), or holds
    the request for HANG seconds; records each POST and what its check of the logout token found."""

    def __init__(self, jwks_url, client_id, tls_ctx=None):
        self.jwks_url, self.client_id = jwks_url, client_id
        self.statuses, self.hang = [], 0.0
        self.received, self.seen_jti = [], set()
        self.lock = threading.Lock()
        rp = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n).decode()
                with rp.lock:
                    status = rp.statuses.pop(0) if rp.statuses else 200
                    hang = rp.hang
                if hang:
                    time.sleep(hang)
                form = urllib.parse.parse_qs(body, strict_parsing=True)
                entry = {"at": time.monotonic(), "path": self.path, "form": form, "ctype": self.headers.get("content-type")}
                entry["check"] = rp.check(form.get("logout_token", [""])[0])
                if entry["check"] != "ok" and status == 200:
                    status = 400  # §2.8: a logout token that does not validate is answered 400
                with rp.lock:
                    rp.received.append(entry)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        if tls_ctx is not None:
            self.server.socket = tls_ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, token):
        """The checks of Back-Channel Logout §2.6, as an RP makes them."""
        try:
            import httpx
            keys = {k["kid"]: jwt.PyJWK(k) for k in httpx.get(self.jwks_url, verify=False, trust_env=False).json()["keys"]}
            hdr = jwt.get_unverified_header(token)
            if hdr.get("typ") != "logout+jwt" or hdr.get("alg") != "ES256" or hdr.get("kid") not in keys:
                return "header %r" % (hdr,)
            c = jwt.decode(token, keys[hdr["kid"]].key, algorithms=["ES256"], audience=self.client_id, issuer=ISS,
                           options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]})
        except Exception as e:  # noqa: BLE001 — the reason is the result
            return "invalid: %s" % e
        if c.get("events") != {EVENT: {}} or "nonce" in c or not c.get("sid") or not c.get("sub"):
            return "claims %r" % (c,)
        if not 0 < c["exp"] - c["iat"] <= 300:
            return "lifetime"
        with self.lock:
            if c["jti"] in self.seen_jti:
                return "replayed jti"
            self.seen_jti.add(c["jti"])
        return "ok"

    def claims(self, i):
        return jwt.decode(self.received[i]["form"]["logout_token"][0], options={"verify_signature": False})

    def wait(self, n, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.received) >= n:
                return True
            time.sleep(0.02)
        return len(self.received) >= n

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def uri(self):
        return "http://127.0.0.1:%d/oidc/logout" % self.port


@pytest.fixture
def bc(gateway, backend, hegate_bin, redis_url, request):
    """Three gateway nodes on one Redis; mp-partner (and hecheng-app, when asked) with an RP of their own."""
    rps = []
    store = redis.Redis.from_url(redis_url)

    def forget_jobs():  # a previous test's job would go to this test's RP (the same client id)
        for k in store.scan_iter(match="hegate:{id}:bcl*"):
            store.delete(k)

    forget_jobs()

    def make(app_rp=False, nodes=3, tls_rp=None):
        mp_rp = RP("http://placeholder", "mp-partner", tls_ctx=tls_rp)
        rps.append(mp_rp)
        scheme = "https://localhost" if tls_rp is not None else "http://127.0.0.1"
        cl = clients(hegate_bin)
        for c in cl:
            if c["id"] == "mp-partner":
                c["backchannel_logout_uri"] = "%s:%d/oidc/logout" % (scheme, mp_rp.port)
        app = None
        if app_rp:
            app = RP("http://placeholder", "hecheng-app")
            rps.append(app)
            for c in cl:
                if c["id"] == "hecheng-app":
                    c["backchannel_logout_uri"] = app.uri
        b = backend("query")
        extra = {"clients": cl, "tokens": {"access_ttl": "5m", "audience": "hegate"}}
        gs = [gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])], extra=extra, start=False)
              for _ in range(nodes)]
        phone, password, sub = add_user(hegate_bin, gs[0].cfg_path)
        for g in gs:
            g.start()
        for r in rps:
            r.jwks_url = gs[0].https + "/.well-known/jwks.json"
        return {"g": gs, "mp": mp_rp, "app": app, "phone": phone, "password": password, "sub": sub}

    yield make
    for r in rps:
        r.close()
    forget_jobs()


def partner_tokens(g, op, c=None):
    """mp-partner's tokens for a sign-in in browser C (a new one when None)."""
    with (contextlib.nullcontext(c) if c is not None else g.client(http2=True)) as cc:
        t, verifier, code = code_flow(cc, g.https, op["phone"], op["password"], client_id="mp-partner",
                                      redirect_uri=MP_REDIRECT, scope="openid query")
    return t, verifier, code


def id_claims(t):
    return jwt.decode(t["id_token"], options={"verify_signature": False})


def logout_all(g, t):
    with g.client(http2=True) as c:
        r = c.post(g.https + "/oauth2/logout-all", headers={"authorization": "Bearer " + t["access_token"]})
    assert r.status_code == 200, r.text
    return r


def bcl_metrics(gs):
    out = {}
    for g in gs:
        m = g.metrics()
        for result in ("delivered", "failed", "gave_up", "dropped"):
            out[result] = out.get(result, 0) + (m.value("hegate_backchannel_logout_total", result=result)
                                                if m.has("hegate_backchannel_logout_total", result=result) else 0)
    return out


def test_logout_all_on_another_node_reaches_the_partner_once(bc):
    op = bc()
    g1, g2, g3 = op["g"]
    t, _, _ = partner_tokens(g1, op)
    idc = id_claims(t)
    start = time.monotonic()
    logout_all(g2, t)
    assert time.monotonic() - start < 1.0
    assert op["mp"].wait(1, 5.0), "no logout token within 5 s"
    e = op["mp"].received[0]
    assert e["at"] - start <= 5.0
    assert e["check"] == "ok", e["check"]
    assert e["path"] == "/oidc/logout" and e["ctype"].startswith("application/x-www-form-urlencoded")
    c = op["mp"].claims(0)
    assert c["sid"] == idc["sid"] and c["sub"] == idc["sub"] != op["sub"]  # the partner's pairwise subject
    assert c["aud"] == "mp-partner" and c["iss"] == ISS and "nonce" not in c
    time.sleep(2.5)  # three nodes polling: still exactly one delivery
    assert len(op["mp"].received) == 1
    assert bcl_metrics(op["g"]) == {"delivered": 1, "failed": 0, "gave_up": 0, "dropped": 0}
    for private in (op["phone"], op["sub"], "张三"):
        assert all(private not in g.stderr() for g in op["g"])


def test_a_failing_partner_gets_it_on_the_third_attempt(bc):
    op = bc(nodes=2)
    g1, g2 = op["g"]
    op["mp"].statuses = [500, 500]
    t, _, _ = partner_tokens(g1, op)
    logout_all(g1, t)
    assert op["mp"].wait(3, 15.0), op["mp"].received
    rec = op["mp"].received
    assert [e["check"] for e in rec] == ["ok"] * 3
    gaps = [rec[i + 1]["at"] - rec[i]["at"] for i in range(2)]
    # backoff: 1 s, then 2 s (each picked up by the next once-a-second poll; the upper bounds leave room
    # for a loaded machine, the lower ones are the backoff itself)
    assert 0.9 <= gaps[0] <= 5.0 and 1.9 <= gaps[1] <= 6.0 and gaps[1] > gaps[0] - 0.5, gaps
    jtis = {op["mp"].claims(i)["jti"] for i in range(3)}
    assert len(jtis) == 3  # a new logout token per attempt: an RP's replay check never refuses a retry
    assert len({op["mp"].claims(i)["sid"] for i in range(3)}) == 1
    time.sleep(2.0)
    assert len(rec) == 3
    assert bcl_metrics(op["g"]) == {"delivered": 1, "failed": 2, "gave_up": 0, "dropped": 0}


def test_a_partner_that_hangs_does_not_slow_logout(bc):
    op = bc(nodes=1)
    g = op["g"][0]
    op["mp"].hang = 8.0
    t, _, _ = partner_tokens(g, op)
    start = time.monotonic()
    logout_all(g, t)
    assert time.monotonic() - start < 1.0
    # the attempt times out after 5 s and counts as failed; the session is dead at once all the same
    with g.client(http2=True) as c:
        r = c.get(g.https + "/api/v1/query/x", headers={"authorization": "Bearer " + t["access_token"]})
    assert r.status_code == 401
    end = time.monotonic() + 8
    while time.monotonic() < end and bcl_metrics(op["g"])["failed"] < 1:
        time.sleep(0.1)
    assert bcl_metrics(op["g"])["failed"] == 1
    assert 4.5 <= time.monotonic() - start <= 8.0


@pytest.mark.parametrize("how", ["logout", "end_session", "refresh_replay", "code_reuse"])
def test_every_way_a_session_ends_reaches_the_partner(bc, how):
    op = bc(nodes=2)
    g1, g2 = op["g"]
    with g1.client(http2=True) as c:
        t, verifier, code = partner_tokens(g1, op, c)
        sid = id_claims(t)["sid"]
        if how == "logout":
            r = c.post(g2.https + "/oauth2/logout", headers={"authorization": "Bearer " + t["access_token"]})
            assert r.status_code == 200
        elif how == "end_session":
            r = c.get(g1.https + "/oauth2/end_session", params={"id_token_hint": t["id_token"],
                                                                 "post_logout_redirect_uri": MP_BYE})
            assert r.status_code == 302
        elif how == "refresh_replay":
            r = c.post(g1.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                                         "client_id": "mp-partner"})
            assert r.status_code == 200
            r = c.post(g2.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                                         "client_id": "mp-partner"})
            assert r.status_code == 400
        else:
            r = c.post(g2.https + "/oauth2/token", data={"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": MP_REDIRECT, "code_verifier": verifier,
                                                         "client_id": "mp-partner"})
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert op["mp"].wait(1, 5.0), how
    assert op["mp"].received[0]["check"] == "ok"
    assert op["mp"].claims(0)["sid"] == sid
    time.sleep(1.5)
    assert len(op["mp"].received) == 1, ([op["mp"].claims(i) for i in range(len(op["mp"].received))],
                                         [e["at"] for e in op["mp"].received], bcl_metrics(op["g"]))


def test_every_client_of_the_session_is_told_and_only_those(bc):
    """The app and the partner signed in in one browser session: each gets its own token, with the subject
    it knows; a second resident's session, still alive, tells nobody anything."""
    op = bc(app_rp=True, nodes=2)
    g1, g2 = op["g"]
    with g1.client(http2=True) as c:
        ta, _, _ = code_flow(c, g1.https, op["phone"], op["password"])  # hecheng-app, first party
        tp, _, _ = partner_tokens(g1, op, c)  # the same browser session (SSO)
    assert id_claims(ta)["sid"] == id_claims(tp)["sid"]
    logout_all(g2, ta)
    assert op["mp"].wait(1) and op["app"].wait(1)
    assert op["app"].received[0]["check"] == "ok" and op["mp"].received[0]["check"] == "ok"
    assert op["app"].claims(0)["sub"] == op["sub"]  # the first-party app knows the city-wide pseudonym
    assert op["mp"].claims(0)["sub"] == id_claims(tp)["sub"] != op["sub"]
    time.sleep(1.5)
    assert len(op["app"].received) == 1 and len(op["mp"].received) == 1


def test_a_session_without_partner_tokens_tells_nobody(bc):
    op = bc(nodes=1)
    g = op["g"][0]
    with g.client(http2=True) as c:
        t, _, _ = code_flow(c, g.https, op["phone"], op["password"])  # hecheng-app only (no back-channel URI)
    logout_all(g, t)
    time.sleep(2.5)
    assert op["mp"].received == []
    assert bcl_metrics(op["g"]) == {"delivered": 0, "failed": 0, "gave_up": 0, "dropped": 0}


def test_a_logout_token_is_no_bearer_token_and_no_hint(bc):
    op = bc(nodes=1)
    g = op["g"][0]
    t, _, _ = partner_tokens(g, op)
    logout_all(g, t)
    assert op["mp"].wait(1)
    lt = op["mp"].received[0]["form"]["logout_token"][0]
    with g.client(http2=True) as c:
        r = c.get(g.https + "/api/v1/query/x", headers={"authorization": "Bearer " + lt})
        assert r.status_code == 401  # typ logout+jwt is not an access token
        r = c.get(g.https + "/oauth2/end_session", params={"id_token_hint": lt, "post_logout_redirect_uri": MP_BYE})
        assert r.status_code == 200 and "location" not in r.headers  # not an ID token: the confirmation page
    # the RP's own replay check refuses the same token posted again
    assert op["mp"].check(lt) == "replayed jti"


def test_retries_stop_after_ten_minutes(bc, redis_url):
    """A job whose session ended more than 10 minutes ago is given up at its next failure (its start moved
    back in Redis, as the clock would have)."""
    op = bc(nodes=1)
    g = op["g"][0]
    op["mp"].statuses = [500] * 20
    t, _, _ = partner_tokens(g, op)
    logout_all(g, t)
    assert op["mp"].wait(1)
    r = redis.Redis.from_url(redis_url)
    jobs = [k for k in r.scan_iter(match="hegate:{id}:bcl:*")]
    assert len(jobs) == 1
    r.hset(jobs[0], "t0", int(time.time() * 1000) - 600_000)
    assert op["mp"].wait(2, 5.0)
    time.sleep(1.0)
    m = bcl_metrics(op["g"])
    assert m["gave_up"] == 1 and m["failed"] == 2, m
    assert not r.exists(jobs[0]) and r.zcard("hegate:{id}:bclq") == 0
    time.sleep(3.0)
    assert len(op["mp"].received) == 2


def test_a_client_removed_by_a_reload_is_dropped(bc):
    op = bc(nodes=1)
    g = op["g"][0]
    op["mp"].statuses = [500]
    t, _, _ = partner_tokens(g, op)
    logout_all(g, t)
    assert op["mp"].wait(1)
    cfg = g.cfg
    for c in cfg["clients"]:
        c.pop("backchannel_logout_uri", None)
    g.write_config(cfg)
    g.reload()
    end = time.monotonic() + 5
    while time.monotonic() < end and bcl_metrics(op["g"])["dropped"] == 0:
        time.sleep(0.1)
    assert bcl_metrics(op["g"])["dropped"] == 1
    assert len(op["mp"].received) == 1


@pytest.fixture
def rp_tls(tmp_path):
    key, crt = tmp_path / "rp.key", tmp_path / "rp.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True, timeout=30)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    return ctx, crt


@pytest.mark.parametrize("trusted", [True, False])
def test_https_partner_is_verified(bc, rp_tls, monkeypatch, trusted):
    """Over https the partner's certificate is checked against the trust store (SSL_CERT_FILE here): a
    partner whose certificate is not trusted gets nothing."""
    ctx, crt = rp_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(crt) if trusted else "/nonexistent")
    op = bc(nodes=1, tls_rp=ctx)
    g = op["g"][0]
    t, _, _ = partner_tokens(g, op)
    logout_all(g, t)
    if trusted:
        assert op["mp"].wait(1, 5.0)
        assert op["mp"].received[0]["check"] == "ok"
    else:
        time.sleep(2.5)
        assert op["mp"].received == []
        assert bcl_metrics(op["g"])["failed"] >= 1


def test_discovery_announces_back_channel_logout(bc):
    op = bc(nodes=1)
    g = op["g"][0]
    with g.client() as c:
        d = c.get(g.https + "/.well-known/openid-configuration").json()
    assert d["backchannel_logout_supported"] is True and d["backchannel_logout_session_supported"] is True


@pytest.mark.parametrize("uri,why", [
    ("http://partner.example/logout", "must use https:// unless its host is a loopback address"),
    ("https://partner.example/logout#frag", "must not have a fragment"),
    ("ftp://partner.example/x", "must be an https:// URL"),
    ("https://user@partner.example/x", "must not contain user information"),
])
def test_check_refuses_bad_backchannel_uris(gateway, hegate_bin, uri, why):
    cl = clients(hegate_bin)
    cl[1]["backchannel_logout_uri"] = uri
    g = gateway([], extra={"clients": cl}, start=False)
    p = subprocess.run([hegate_bin, "check", "-c", g.cfg_path], capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    line = next(i for i, l in enumerate(open(g.cfg_path), 1) if "backchannel_logout_uri" in l)
    assert p.returncode != 0 and why in out and "backchannel_logout_uri" in out, out
    assert re.search(r"hegate\.yaml:%d\b" % line, out), out
