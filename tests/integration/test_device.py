"""Scan to sign in (SPEC §6.1, RFC 8628): a kiosk asks for a device authorization through one gateway node,
the resident's city app reads and approves it through a second, the kiosk polls through a third — three
nodes on one Redis. Polling too fast (slow_down, a growing interval), deny, expiry, a second exchange, a
second resident deciding a decided code, guessing limits, shared-device tokens, ID tokens on the device
grant, and logout-all from the phone ending the kiosk's session on another node."""

import hashlib
import re
import subprocess
import time

import pytest
import redis

from hegatetest import route
from oauthtest import (ISS, add_user, clients, code_flow, verify, verify_id_token)

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
KIOSK_NAME = "3号自助机"
KIOSK_DESC = "鹤城区政务服务中心 / Hecheng service hall, kiosk 3"


def device_clients(hegate_bin):
    cl = clients(hegate_bin)
    for c in cl:
        if c["id"] == "hecheng-app":
            c["scopes"] = c["scopes"] + ["device"]
    return cl + [
        {"id": "kiosk-hall-3", "grants": ["device_code"], "name": KIOSK_NAME, "description": KIOSK_DESC,
         "shared_device": True, "scopes": ["openid", "query", "service"]},
        {"id": "pc-portal", "grants": ["device_code", "refresh_token"], "name": "政务网 PC portal",
         "scopes": ["openid", "profile", "query"]},
    ]


@pytest.fixture
def dv(gateway, backend, hegate_bin, redis_url):
    store = redis.Redis.from_url(redis_url)
    for pat in ("hegate:{id}:dguess:*", "hegate:{id}:uc:*", "hegate:{id}:dev:*"):
        for k in store.scan_iter(match=pat):
            store.delete(k)
    b = backend("query")
    extra = {"clients": device_clients(hegate_bin),
             "tokens": {"access_ttl": "15m", "audience": "hegate", "shared_device_ttl": "2m"}}
    gs = [gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])], extra=extra, start=False) for _ in range(3)]
    phone, password, sub = add_user(hegate_bin, gs[0].cfg_path)
    phone2, password2, sub2 = add_user(hegate_bin, gs[0].cfg_path)
    for g in gs:
        g.start()
    return {"g": gs, "phone": phone, "password": password, "sub": sub, "phone2": phone2, "password2": password2,
            "sub2": sub2, "store": store}


def app_token(g, phone, password):
    """The city app's token (scope device) for a resident, through the code flow."""
    with g.client(http2=True) as c:
        t, _, _ = code_flow(c, g.https, phone, password, scope="openid query device")
    return t


def ask(g, client_id="kiosk-hall-3", scope=None):
    data = {"client_id": client_id}
    if scope is not None:
        data["scope"] = scope
    with g.client(http2=True) as c:
        return c.post(g.https + "/oauth2/device_authorization", data=data)


def poll(g, device_code, client_id="kiosk-hall-3"):
    with g.client(http2=True) as c:
        return c.post(g.https + "/oauth2/token", data={"grant_type": GRANT, "device_code": device_code, "client_id": client_id})


def info(g, token, user_code):
    with g.client(http2=True) as c:
        return c.get(g.https + "/oauth2/device/info", params={"user_code": user_code},
                     headers={"authorization": "Bearer " + token})


def decide(g, token, user_code, decision="approve"):
    with g.client(http2=True) as c:
        return c.post(g.https + "/oauth2/device/approve", json={"user_code": user_code, "decision": decision},
                      headers={"authorization": "Bearer " + token})


def test_kiosk_signed_in_through_three_nodes(dv):
    g1, g2, g3 = dv["g"]
    r = ask(g1)
    assert r.status_code == 200, r.text
    a = r.json()
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", a["user_code"]), a
    assert len(a["device_code"]) >= 43 and a["interval"] == 5 and a["expires_in"] == 300
    assert a["verification_uri"] == ISS + "/oauth2/device"
    assert a["verification_uri_complete"] == ISS + "/oauth2/device?user_code=" + a["user_code"]
    assert "no-store" in r.headers.get("cache-control", "")
    p = poll(g3, a["device_code"])
    assert p.status_code == 400 and p.json()["error"] == "authorization_pending"
    app = app_token(g2, dv["phone"], dv["password"])
    i = info(g2, app["access_token"], a["user_code"].lower().replace("-", " "))  # typed on a phone: forgiving
    assert i.status_code == 200, i.text
    assert i.json()["client_id"] == "kiosk-hall-3" and i.json()["name"] == KIOSK_NAME
    assert i.json()["description"] == KIOSK_DESC and i.json()["scopes"] == ["openid", "query", "service"]
    assert abs(i.json()["expires_at"] - (time.time() + 300)) < 10
    d = decide(g2, app["access_token"], a["user_code"])
    assert d.status_code == 204, d.text
    time.sleep(5.1)  # the interval since the last poll
    p = poll(g3, a["device_code"])
    assert p.status_code == 200, p.text
    t = p.json()
    assert "refresh_token" not in t and t["expires_in"] == 120  # a shared device: no refresh, tokens.shared_device_ttl
    with g3.client() as c:
        claims = verify(c, g3.https, t["access_token"])
    assert claims["sub"] == dv["sub"] and claims["acr"] == "cross-device" and claims["client_id"] == "kiosk-hall-3"
    assert claims["exp"] - claims["iat"] == 120
    with g3.client() as c:
        idt = verify_id_token(c, g3.https, t["id_token"], "kiosk-hall-3", t["access_token"])
    assert idt["acr"] == "cross-device" and idt["amr"] == ["mca"] and idt["sid"] == claims["sid"]
    assert idt["sub"] != dv["sub"]  # a partner device: pairwise
    with g1.client(http2=True) as c:
        r = c.get(g1.https + "/api/v1/query/x", headers={"authorization": "Bearer " + t["access_token"]})
    assert r.status_code == 200
    p = poll(g1, a["device_code"])  # a second exchange
    assert p.status_code == 400 and p.json()["error"] == "invalid_grant"
    assert info(g1, app["access_token"], a["user_code"]).status_code == 404  # exchanged: forgotten
    # logout-all from the phone ends the kiosk's session on every node within 1 s
    with g2.client(http2=True) as c:
        assert c.post(g2.https + "/oauth2/logout-all", headers={"authorization": "Bearer " + app["access_token"]}).status_code == 200
    end = time.monotonic() + 1.0
    while True:
        with g1.client(http2=True) as c:
            st = c.get(g1.https + "/api/v1/query/x", headers={"authorization": "Bearer " + t["access_token"]}).status_code
        if st == 401 or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert st == 401
    total = sum(g.metrics().value("hegate_tokens_issued_total", grant="device_code")
                for g in dv["g"] if g.metrics().has("hegate_tokens_issued_total", grant="device_code"))
    assert total == 1


def test_polling_too_fast_slows_down(dv):
    g1, g2, _ = dv["g"]
    a = ask(g1).json()
    assert poll(g1, a["device_code"]).json()["error"] == "authorization_pending"
    p = poll(g2, a["device_code"])  # at once, on another node: the interval is shared
    assert p.json()["error"] == "slow_down"
    iv = int(dv["store"].hget("hegate:{id}:dev:" + hashlib.sha256(a["device_code"].encode()).hexdigest(), "iv"))
    assert iv == 10
    assert poll(g2, a["device_code"]).json()["error"] == "slow_down"  # still too fast: 15 s now
    time.sleep(5.5)  # 5 s is no longer enough
    assert poll(g1, a["device_code"]).json()["error"] == "slow_down"


def test_deny_and_decided_codes(dv):
    g1, g2, g3 = dv["g"]
    app = app_token(g1, dv["phone"], dv["password"])
    app2 = app_token(g1, dv["phone2"], dv["password2"])
    a = ask(g1).json()
    assert decide(g2, app["access_token"], a["user_code"], "deny").status_code == 204
    p = poll(g3, a["device_code"])
    assert p.status_code == 400 and p.json()["error"] == "access_denied"
    assert decide(g2, app2["access_token"], a["user_code"]).status_code == 404  # denied: forgotten at once
    b = ask(g1).json()
    assert decide(g2, app["access_token"], b["user_code"]).status_code == 204
    r = decide(g3, app2["access_token"], b["user_code"], "deny")  # a second resident: decided already
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert decide(g3, app["access_token"], b["user_code"]).status_code == 409
    time.sleep(5.1)
    t = poll(g1, b["device_code"]).json()
    with g1.client() as c:
        assert verify(c, g1.https, t["access_token"])["sub"] == dv["sub"]  # the first resident's


def test_expired_code(dv, hegate_bin):
    g1, g2, _ = dv["g"]
    a = ask(g1).json()
    key = "hegate:{id}:dev:" + hashlib.sha256(a["device_code"].encode()).hexdigest()
    dv["store"].hset(key, "exp", int(time.time()) - 1)  # as time would have
    app = app_token(g2, dv["phone"], dv["password"])
    assert info(g2, app["access_token"], a["user_code"]).status_code == 404
    p = poll(g2, a["device_code"])
    assert p.status_code == 400 and p.json()["error"] == "expired_token"
    assert poll(g2, a["device_code"]).json()["error"] == "invalid_grant"  # forgotten


def test_user_code_guessing_is_limited(dv):
    g1, g2, _ = dv["g"]
    app = app_token(g1, dv["phone"], dv["password"])
    real = ask(g1).json()
    for i in range(5):
        r = info(g2, app["access_token"], "BBBB-BBB" + "CDFGH"[i])
        assert r.status_code == 404, r.text
    r = info(g2, app["access_token"], "BBBB-BBBJ")
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    r = info(g1, app["access_token"], real["user_code"])  # even a real one, from this resident, until the window ends
    assert r.status_code == 429
    # another resident (from the same address, though) is limited by the address's count too
    app2 = app_token(g1, dv["phone2"], dv["password2"])
    assert info(g1, app2["access_token"], real["user_code"]).status_code == 429
    assert sum(g.metrics().value("hegate_device_codes_total", result="limited") for g in dv["g"]
               if g.metrics().has("hegate_device_codes_total", result="limited")) == 3


def test_portal_gets_a_refresh_token_and_bad_requests_are_refused(dv):
    g1, g2, _ = dv["g"]
    a = ask(g1, "pc-portal", scope="openid profile").json()
    app = app_token(g2, dv["phone"], dv["password"])
    assert decide(g2, app["access_token"], a["user_code"]).status_code == 204
    t = poll(g1, a["device_code"], "pc-portal").json()
    assert "refresh_token" in t and t["expires_in"] == 900
    with g1.client() as c:
        idt = verify_id_token(c, g1.https, t["id_token"], "pc-portal", t["access_token"])
        assert idt["name"] == "张*" and idt["acr"] == "cross-device"
        r = c.post(g1.https + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                                                     "client_id": "pc-portal"})
        assert r.status_code == 200 and verify(c, g1.https, r.json()["access_token"])["acr"] == "cross-device"
        # not a device client; a scope it lacks; the kiosk's code polled by another client
        assert c.post(g1.https + "/oauth2/device_authorization",
                      data={"client_id": "hecheng-app"}).json()["error"] == "unauthorized_client"
        assert c.post(g1.https + "/oauth2/device_authorization",
                      data={"client_id": "kiosk-hall-3", "scope": "payment"}).json()["error"] == "invalid_scope"
    k = ask(g1).json()
    assert poll(g1, k["device_code"], "pc-portal").json()["error"] == "invalid_grant"
    with g2.client(http2=True) as c:
        for body in ({"user_code": k["user_code"]}, {"user_code": k["user_code"], "decision": "maybe"},
                     {"decision": "approve"}, {"user_code": "AAAA-AAAA", "decision": "approve"}, [1, 2], "x"):
            r = c.post(g2.https + "/oauth2/device/approve", json=body, headers={"authorization": "Bearer " + app["access_token"]})
            assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), (body, r.text)
    assert info(g2, app["access_token"], k["user_code"]).status_code == 200  # none of that decided it
    # the app path needs the device scope and a resident's token
    with g1.client(http2=True) as c:
        t2, _, _ = code_flow(c, g1.https, dv["phone"], dv["password"], scope="openid query")
    assert info(g1, t2["access_token"], k["user_code"]).status_code == 403


def test_check_refuses_bad_device_config(gateway, hegate_bin):
    cl = device_clients(hegate_bin)
    cl[-2].pop("name")
    g = gateway([], extra={"clients": cl, "tokens": {"device_ttl": "11m"}}, start=False)
    p = subprocess.run([hegate_bin, "check", "-c", g.cfg_path], capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "grant device_code needs a name" in out and "tokens.device_ttl must be at most 10m" in out, out


def test_the_kiosks_qr_code_is_what_the_phone_scans(dv, tmp_path):
    """The kiosk shows the PNG; the test decodes it with zbarimg (a phone camera's job), the app takes the
    user_code out of the URL and approves through another node."""
    g1, g2, g3 = dv["g"]
    a = ask(g1).json()
    with g2.client(http2=True) as c:
        png = c.get(g2.https + "/oauth2/device/qr.png", params={"user_code": a["user_code"]})
        svg = c.get(g2.https + "/oauth2/device/qr.svg", params={"user_code": a["user_code"].lower()})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and "no-store" in png.headers["cache-control"]
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml" and svg.text.lstrip().startswith("<")
    p = tmp_path / "kiosk.png"
    p.write_bytes(png.content)
    z = subprocess.run(["zbarimg", "--raw", "-q", str(p)], capture_output=True, timeout=30)
    assert z.returncode == 0, z.stderr
    url = z.stdout.decode().strip()
    assert url == a["verification_uri_complete"], url
    user_code = url.split("user_code=", 1)[1]
    app = app_token(g3, dv["phone"], dv["password"])
    assert decide(g3, app["access_token"], user_code).status_code == 204
    with g1.client(http2=True) as c:  # decided: the image is gone (404, as for an unknown code)
        r = c.get(g1.https + "/oauth2/device/qr.png", params={"user_code": a["user_code"]})
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        assert c.get(g1.https + "/oauth2/device/qr.png", params={"user_code": "nope"}).status_code == 400


# ---- the browser path (GET/POST /oauth2/device) -----------------------------------------------------------


def test_browser_path_with_the_forms(dv):
    """A browser without a session: the typed-code form, the sign-in page, then the device's page (its name,
    description, scopes, the time left), Approve; the kiosk polls through another node. A second visit in
    the same browser needs no sign-in (SSO). A forged form (no CSRF token) decides nothing."""
    from oauthtest import parse_form
    g1, g2, g3 = dv["g"]
    a = ask(g1).json()
    with g2.client(http2=True) as c:
        r = c.get(g2.https + "/oauth2/device")
        assert r.status_code == 200 and 'name="user_code"' in r.text
        r = c.get(g2.https + "/oauth2/device", params={"user_code": "nonsense"})
        assert r.status_code == 400 and 'name="user_code"' in r.text
        r = c.get(g2.https + "/oauth2/device", params={"user_code": a["user_code"].lower()})
        assert r.status_code == 200 and 'name="password"' in r.text and KIOSK_NAME not in r.text  # sign in first
        f = parse_form(r.text)
        assert f.action == "/oauth2/device"
        forged = c.post(g2.https + "/oauth2/device", data={"user_code": a["user_code"], "action": "approve"})
        assert forged.status_code == 403
        r = c.post(g2.https + f.action, data=dict(f.fields, phone=dv["phone"], password=dv["password"], action="signin"))
        assert r.status_code == 200, r.text[:300]
        assert KIOSK_NAME in r.text and "Hecheng service hall, kiosk 3" in r.text and "<code>query</code>" in r.text
        assert re.search(r"valid for [45] more minutes", r.text), r.text
        assert "hegate_sid=" in r.headers.get("set-cookie", "")
        f = parse_form(r.text)
        time.sleep(1.1)  # a resident reads the page: the session is a second older and still counts
        r = c.post(g2.https + f.action, data=dict(f.fields, action="approve"))
        assert r.status_code == 200 and "Approved" in r.text, r.text[:500]
        r = c.post(g2.https + f.action, data=dict(f.fields, action="approve"))  # decided
        assert r.status_code == 409
        b = ask(g1).json()  # SSO: the same browser, a new code: straight to the device's page
        r = c.get(g2.https + "/oauth2/device", params={"user_code": b["user_code"]})
        assert r.status_code == 200 and KIOSK_NAME in r.text and 'name="password"' not in r.text
        f = parse_form(r.text)
        assert c.post(g2.https + f.action, data=dict(f.fields, action="deny")).status_code == 200
    time.sleep(5.1)
    t = poll(g3, a["device_code"])
    assert t.status_code == 200, t.text
    with g3.client() as c:
        assert verify(c, g3.https, t.json()["access_token"])["sub"] == dv["sub"]
    assert poll(g3, b["device_code"]).json()["error"] == "access_denied"


def test_browser_path_in_chromium(dv, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    g1, g2, g3 = dv["g"]
    a = ask(g1).json()
    d = browser
    d.set_window_size(390, 844)  # a phone's screen
    d.get(g2.https + "/oauth2/device")  # the resident types the code shown by the kiosk
    d.find_element(By.ID, "user_code").send_keys(a["user_code"].replace("-", " ").lower())
    d.find_element(By.ID, "next").click()
    WebDriverWait(d, 15).until(lambda d: d.find_elements(By.ID, "password"))
    d.find_element(By.ID, "phone").send_keys(dv["phone"])
    d.find_element(By.ID, "password").send_keys(dv["password"])
    d.find_element(By.ID, "signin").click()
    WebDriverWait(d, 15).until(lambda d: d.find_elements(By.ID, "device-name"))
    assert d.find_element(By.ID, "device-name").text == KIOSK_NAME
    assert "kiosk 3" in d.find_element(By.ID, "device-description").text
    # usable on a phone screen: the buttons fit the 390 px viewport
    btn = d.find_element(By.ID, "approve")
    assert btn.size["width"] <= 390 and btn.location["x"] >= 0
    btn.click()
    WebDriverWait(d, 15).until(lambda d: "Approved" in d.page_source or 'name="password"' in d.page_source)
    assert "Approved" in d.page_source, d.page_source[:2000]  # not asked to sign in again
    time.sleep(5.1)
    t = poll(g3, a["device_code"])
    assert t.status_code == 200, t.text


def test_device_authorizations_per_address_are_capped(gateway, hegate_bin, redis_url):
    """Each pending code is Redis memory an unauthenticated caller could pile up: one address may ask
    limits.device_authorizations_per_ip a minute, then 429 with Retry-After (nothing stored)."""
    store = redis.Redis.from_url(redis_url)
    for k in store.scan_iter(match="hegate:{id}:dguess:*"):
        store.delete(k)
    g = gateway([], extra={"clients": device_clients(hegate_bin), "limits": {"device_authorizations_per_ip": 3}})
    codes = [ask(g) for _ in range(3)]
    assert all(r.status_code == 200 for r in codes)
    before = len(list(store.scan_iter(match="hegate:{id}:uc:*")))
    r = ask(g)
    assert r.status_code == 429 and r.json()["error"] == "temporarily_unavailable", r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert len(list(store.scan_iter(match="hegate:{id}:uc:*"))) == before
