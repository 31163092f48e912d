"""The sign-in page driven in headless Chromium (SPEC §6): load authorize, fill phone and password,
submit, land on the client's redirect_uri with a code that the token endpoint accepts; a second
authorize in the same browser needs no sign-in. WebDriver through python3-selenium + chromium-driver."""

import urllib.parse

import pytest

from hegatetest import route
from oauthtest import add_user, authorize_params, clients, pkce, verify

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def test_sign_in_page_in_chromium(gateway, backend, hegate_bin, browser):
    cb = backend("callback")
    redirect = cb.url + "/cb"
    cl = clients(hegate_bin) + [{"id": "kiosk-web", "redirect_uris": [redirect], "first_party": True,
                                 "scopes": ["openid", "query"]}]
    g = gateway([route("query", "/api/v1/query", [cb.url], scopes=["query"])], extra={"clients": cl}, start=False)
    phone, password, sub = add_user(hegate_bin, g.cfg_path)
    g.start()

    verifier, challenge = pkce()
    params = authorize_params("kiosk-web", redirect, "openid query", challenge, state="st-1")
    browser.get(g.https + "/oauth2/authorize?" + urllib.parse.urlencode(params))
    assert browser.find_element(By.CSS_SELECTOR, "label[for=phone]").text.endswith("Phone number")
    browser.find_element(By.ID, "phone").send_keys(phone)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "signin").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.startswith(redirect))
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(browser.current_url).query))
    assert q["state"] == "st-1" and q["iss"] == "https://hegate.test" and q["code"]
    # the session cookie is HttpOnly, Secure on TLS, SameSite=Lax, scoped to /oauth2
    browser.get(g.https + "/oauth2/authorize?" + urllib.parse.urlencode(dict(params, state="st-2")))
    WebDriverWait(browser, 15).until(lambda d: d.current_url.startswith(redirect))
    q2 = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(browser.current_url).query))
    assert q2["state"] == "st-2" and q2["code"] != q["code"]  # signed in once: no form the second time
    browser.get(g.https + "/oauth2/none")  # a page on the cookie's origin and path, to read it
    cookies = {c["name"]: c for c in browser.get_cookies()}
    sid = cookies["hegate_sid"]
    assert sid["httpOnly"] and sid["secure"] and sid["sameSite"] == "Lax" and sid["path"] == "/oauth2"

    with g.client(http2=True) as c:
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                                    "redirect_uri": redirect, "code_verifier": verifier,
                                                    "client_id": "kiosk-web"})
        assert r.status_code == 200, r.text
        claims = verify(c, g.https, r.json()["access_token"])
    assert claims["sub"] == sub and claims["scope"] == "openid query"


def test_wrong_password_in_chromium(gateway, backend, hegate_bin, browser):
    cb = backend("callback")
    redirect = cb.url + "/cb"
    cl = clients(hegate_bin) + [{"id": "kiosk-web", "redirect_uris": [redirect], "first_party": True, "scopes": ["openid"]}]
    g = gateway([route("query", "/api/v1/query", [cb.url], scopes=["query"])], extra={"clients": cl}, start=False)
    phone, password, _ = add_user(hegate_bin, g.cfg_path)
    g.start()
    params = authorize_params("kiosk-web", redirect, "openid", pkce()[1])
    browser.get(g.https + "/oauth2/authorize?" + urllib.parse.urlencode(params))
    browser.find_element(By.ID, "phone").send_keys(phone)
    browser.find_element(By.ID, "password").send_keys(password + "-wrong")
    browser.find_element(By.ID, "signin").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "error"))
    assert "not correct" in browser.find_element(By.ID, "error").text
    assert not browser.current_url.startswith(redirect)
    assert phone not in browser.page_source
