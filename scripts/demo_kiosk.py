#!/usr/bin/python3
"""scripts/demo_kiosk.py — a self-service kiosk of the dev stack `make run` started (SPEC §6.1): asks for a
device authorization as kiosk-hall-3, shows the QR code in the terminal (UTF-8 half blocks, from the
gateway's own /oauth2/device/qr.svg) with the URL and the code, polls the token endpoint politely
(its interval; 5 s more after a slow_down), and when the resident approved prints the masked userinfo
the kiosk's token reads.

  scripts/demo_kiosk.py            then, as the city app would: scripts/demo_token.py approve XXXX-XXXX

Talks to https://127.0.0.1:8443 (self-signed dev certificate: not verified) unless HEGATE_URL says
otherwise. Exit status 0 signed in, 1 denied / expired / failed.
"""
import os
import re
import sys
import time

import httpx

BASE = os.environ.get("HEGATE_URL", "https://127.0.0.1:8443")
KIOSK = "kiosk-hall-3"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def terminal_qr(svg):
    """The modules of the gateway's SVG (one "M x y h run v1 h-run z" per run of dark modules) as text."""
    side = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))
    dark = [[False] * side for _ in range(side + 1)]
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)v1", svg):
        for i in range(int(run)):
            dark[int(y)][int(x) + i] = True
    glyph = {(False, False): "\u2588", (False, True): "\u2580", (True, False): "\u2584", (True, True): " "}
    return "\n".join("".join(glyph[(dark[y][x], dark[y + 1][x])] for x in range(side)) for y in range(0, side, 2))


def main():
    with httpx.Client(verify=False, timeout=10, trust_env=False) as c:
        r = c.post(BASE + "/oauth2/device_authorization", data={"client_id": KIOSK})
        if r.status_code != 200:
            sys.exit("demo_kiosk: device_authorization: HTTP %d %s" % (r.status_code, r.text[:300]))
        a = r.json()
        svg = c.get(BASE + "/oauth2/device/qr.svg", params={"user_code": a["user_code"]})
        if svg.status_code == 200:
            print(terminal_qr(svg.text))
        print("\n  扫码登录 Scan with the city app, or open %s and enter  %s" % (a["verification_uri"], a["user_code"]))
        print("  (the app's part: scripts/demo_token.py approve %s)\n" % a["user_code"], flush=True)
        interval, deadline = a["interval"], time.monotonic() + a["expires_in"]
        while time.monotonic() < deadline:
            time.sleep(interval)
            t = c.post(BASE + "/oauth2/token", data={"grant_type": GRANT, "device_code": a["device_code"], "client_id": KIOSK})
            if t.status_code == 200:
                tok = t.json()
                info = c.get(BASE + "/oauth2/userinfo", headers={"authorization": "Bearer " + tok["access_token"]}).json()
                print("  signed in for %d s: %s" % (tok["expires_in"], {k: info.get(k) for k in ("name", "phone_number")}),
                      flush=True)
                return 0
            err = t.json().get("error")
            if err == "slow_down":
                interval += 5
            elif err != "authorization_pending":
                print("  not signed in: %s" % err, flush=True)
                return 1
        print("  not signed in: the code expired", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
