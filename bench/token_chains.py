#!/usr/bin/python3
"""bench/token_chains.py — fixtures of the refresh-token row (bench/rows_identity.sh): signs a resident
in once through the HTML sign-in form, then runs the authorization-code + PKCE flow K times in that
browser session (sign in once: no form again) and writes the K refresh tokens, one per line, to OUT —
the starts of K refresh chains for bench/token_load.c. With MODE "codes" it redeems nothing: it writes
K token-request bodies (an unused authorization code and its PKCE verifier each; codes live 60 s) for
token_load -k, the code-grant row. Run with /usr/bin/python3 (httpx).

  token_chains.py BASE_URL CLIENT_ID REDIRECT_URI SCOPE PHONE K OUT [codes]   (password on stdin)
"""
import base64
import hashlib
import html.parser
import secrets
import sys
import urllib.parse

import httpx


class Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.fields, self.inside = None, {}, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self.inside = a.get("action"), True
        elif tag == "input" and self.inside and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main(base, client_id, redirect_uri, scope, phone, k, out, mode="chains"):
    password = sys.stdin.readline().rstrip("\n")
    tokens = []
    with httpx.Client(base_url=base, trust_env=False, timeout=10, follow_redirects=False) as c:
        for i in range(int(k)):
            verifier = b64u(secrets.token_bytes(32))
            challenge = b64u(hashlib.sha256(verifier.encode()).digest())
            r = c.get("/oauth2/authorize", params={
                "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
                "state": "s%d" % i, "code_challenge": challenge, "code_challenge_method": "S256"})
            if r.status_code == 200 and 'name="password"' in r.text:  # the first time only: sign in
                f = Form()
                f.feed(r.text)
                data = dict(f.fields, phone=phone, password=password, action="signin")
                r = c.post(f.action, data=data)
            if r.status_code != 302:
                sys.exit("token_chains: authorize answered %d (expected 302)" % r.status_code)
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))
            if mode == "codes":
                tokens.append(urllib.parse.urlencode({"grant_type": "authorization_code", "code": q["code"],
                                                      "redirect_uri": redirect_uri, "code_verifier": verifier,
                                                      "client_id": client_id}))
                continue
            t = c.post("/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                              "redirect_uri": redirect_uri, "code_verifier": verifier,
                                              "client_id": client_id})
            if t.status_code != 200 or "refresh_token" not in t.json():
                sys.exit("token_chains: token endpoint answered %d" % t.status_code)
            tokens.append(t.json()["refresh_token"])
    with open(out, "w") as f:
        f.write("".join(x + "\n" for x in tokens))


if __name__ == "__main__":
    if len(sys.argv) not in (8, 9) or (len(sys.argv) == 9 and sys.argv[8] != "codes"):
        sys.exit(__doc__)
    main(*sys.argv[1:])
