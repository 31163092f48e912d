#!/usr/bin/python3
"""scripts/demo_token.py — an access token from the dev stack `make run` started, printed on stdout.

  scripts/demo_token.py resident [SCOPE...]   the demo resident signs in to the city app (hecheng-app):
                                             authorization code + PKCE S256 driven over HTTP, exactly
                                             what the app does (default scopes: openid profile query qr)
  scripts/demo_token.py gate                 the transit gates' client (gate-line1): client_credentials
                                             with the dev secret, scope qr.verify
  scripts/demo_token.py approve USER_CODE    what the city app does with a scanned kiosk code (SPEC §6.1):
                                             the demo resident (scope device) reads it and approves it

The demo resident and the dev secret are the ones scripts/run.sh creates (DEV ONLY: fixed, public
values). Talks to https://127.0.0.1:8443 (self-signed dev certificate: not verified) unless
HEGATE_URL says otherwise. Exit status 1 with the server's answer on stderr when something fails.
"""
import base64
import hashlib
import html.parser
import os
import secrets
import sys
import urllib.parse

import httpx

BASE = os.environ.get("HEGATE_URL", "https://127.0.0.1:8443")
DEMO_PHONE = "13800000000"
DEMO_PASSWORD = "hecheng-demo-only"
APP = "hecheng-app"
APP_REDIRECT = "hecheng://oauth/callback"
GATE = "gate-line1"
GATE_SECRET = "gate-line1-dev-secret"


def fail(what, r=None):
    sys.stderr.write("demo_token: %s%s\n" % (what, "" if r is None else ": HTTP %d %s" % (r.status_code, r.text[:300])))
    sys.exit(1)


class Form(html.parser.HTMLParser):
    """The first form of a page: its action and its named inputs."""

    def __init__(self, text):
        super().__init__()
        self.action, self.fields, self._in = None, {}, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self._in = a.get("action"), True
        elif tag == "input" and self._in and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._in = False


def resident(scopes):
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(8)
    with httpx.Client(verify=False, timeout=10) as c:
        r = c.get(BASE + "/oauth2/authorize", params={
            "response_type": "code", "client_id": APP, "redirect_uri": APP_REDIRECT, "scope": " ".join(scopes),
            "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
        if r.status_code != 200 or 'name="password"' not in r.text:
            fail("no sign-in page", r)
        f = Form(r.text)
        data = dict(f.fields, phone=DEMO_PHONE, password=DEMO_PASSWORD, action="signin")
        r = c.post(BASE + f.action, data=data)
        if r.status_code != 302:
            fail("sign-in refused (is `make run` up, and did it create the demo resident?)", r)
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))
        if q.get("state") != state or "code" not in q:
            fail("unexpected redirect " + r.headers["location"])
        r = c.post(BASE + "/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                                  "redirect_uri": APP_REDIRECT, "code_verifier": verifier,
                                                  "client_id": APP})
        if r.status_code != 200:
            fail("token endpoint", r)
        return r.json()["access_token"]


def gate():
    with httpx.Client(verify=False, timeout=10) as c:
        r = c.post(BASE + "/oauth2/token", data={"grant_type": "client_credentials", "scope": "qr.verify"},
                   auth=(GATE, GATE_SECRET))
        if r.status_code != 200:
            fail("token endpoint", r)
        return r.json()["access_token"]


def approve(user_code):
    token = resident(["openid", "device"])
    auth = {"authorization": "Bearer " + token}
    with httpx.Client(verify=False, timeout=10) as c:
        r = c.get(BASE + "/oauth2/device/info", params={"user_code": user_code}, headers=auth)
        if r.status_code != 200:
            fail("no such pending code", r)
        i = r.json()
        sys.stderr.write("approving: %s — %s — %s\n" % (i["name"], i.get("description", ""), " ".join(i["scopes"])))
        r = c.post(BASE + "/oauth2/device/approve", json={"user_code": user_code, "decision": "approve"}, headers=auth)
        if r.status_code != 204:
            fail("approve", r)
    return i["client_id"]


def main(argv):
    if len(argv) == 3 and argv[1] == "approve":
        print("approved " + approve(argv[2]))
    elif len(argv) >= 2 and argv[1] == "resident":
        print(resident(argv[2:] or ["openid", "profile", "query", "qr"]))
    elif len(argv) == 2 and argv[1] == "gate":
        print(gate())
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
