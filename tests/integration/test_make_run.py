"""
tests/integration/test_make_run.py — the development stack `make run` starts (scripts/run.sh), as a
developer uses it: it comes up and prints its try-list, the public route answers, the query route
refuses a request without a token and serves the demo resident's token from scripts/demo_token.py,
the resident's city code (PNG, decoded by zbarimg) verifies for the gate client with role-filtered
claims, and Ctrl-C stops everything it started.

scripts/, conf/ are copied into a temporary directory (run.sh writes var/ beside them); the binary is
HEGATE_BIN. It needs the fixed ports of the dev stack (8443, 8080, 9090, 6390, 9101-9108) free.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from conftest import PY, ROOT

@pytest.fixture
def dev_stack(hegate_bin, tmp_path):
    for d in ("scripts", "conf"):
        shutil.copytree(os.path.join(ROOT, d), tmp_path / d)
    env = dict(os.environ, HEGATE_BIN=hegate_bin)
    p = subprocess.Popen(["bash", str(tmp_path / "scripts" / "run.sh")], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    out = b""
    deadline = time.monotonic() + 45
    os.set_blocking(p.stdout.fileno(), False)
    while time.monotonic() < deadline and b"Ctrl-C stops everything" not in out:
        chunk = p.stdout.read()
        if chunk:
            out += chunk
        elif p.poll() is not None:
            break
        else:
            time.sleep(0.1)
    try:
        assert b"Ctrl-C stops everything" in out, out.decode(errors="replace")[-3000:]
        yield tmp_path, out.decode(errors="replace")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                pytest.fail("scripts/run.sh did not stop within 20 s of Ctrl-C")


def demo_token(root, who):
    r = subprocess.run([PY, str(root / "scripts" / "demo_token.py"), who], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    token = r.stdout.decode().strip()
    assert token.count(".") == 2
    return token


def test_make_run_stack_end_to_end(dev_stack):
    root, banner = dev_stack
    for needle in ("hegate is up", "demo resident", "scripts/demo_token.py resident", "/qr/v1/verify"):
        assert needle in banner, needle
    with httpx.Client(verify=False, timeout=10) as c:
        r = c.get("https://127.0.0.1:8443/api/v1/appointments/today")
        assert r.status_code == 200 and r.json()["backend"].startswith("appointment-")
        r = c.get("https://127.0.0.1:8443/api/v1/query/fund")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        token = demo_token(root, "resident")
        auth = {"authorization": "Bearer " + token}
        r = c.get("https://127.0.0.1:8443/api/v1/query/fund", headers=auth)
        assert r.status_code == 200 and r.json()["backend"].startswith("query-")
        assert r.headers["ratelimit-policy"].startswith('"per-user"')
        sub = r.json()["headers"]["x-hegate-sub"]
        assert sub.startswith("u_")
        info = c.get("https://127.0.0.1:8443/oauth2/userinfo", headers=auth).json()
        assert info["sub"] == sub and "13800000000" not in str(info)
        png = c.get("https://127.0.0.1:8443/qr/v1/codes/transit.png", headers=auth)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        (root / "code.png").write_bytes(png.content)
        z = subprocess.run(["zbarimg", "--raw", "-q", str(root / "code.png")], capture_output=True, timeout=30)
        code = z.stdout.decode().strip()
        assert code.startswith("HMT1:"), z.stderr.decode()
        gate = demo_token(root, "gate")
        v = c.post("https://127.0.0.1:8443/qr/v1/verify", json={"code": code},
                   headers={"authorization": "Bearer " + gate})
        assert v.status_code == 200 and v.json()["valid"] is True, v.text
        claims = v.json()["claims"]
        assert "name" not in claims and "演示居民" not in v.text
        assert claims["transit_card"].endswith("0001") and "88880001" not in v.text


def test_make_run_demo_kiosk_signed_in_by_the_app(dev_stack):
    """The try-list's kiosk: scripts/demo_kiosk.py shows a code (and its QR in the terminal), the city app's
    part (scripts/demo_token.py approve) approves it, the kiosk's next poll signs it in and prints the
    masked userinfo."""
    root, banner = dev_stack
    assert "scripts/demo_kiosk.py" in banner and "demo_token.py approve" in banner
    k = subprocess.Popen([PY, str(root / "scripts" / "demo_kiosk.py")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, code = b"", None
        deadline = time.monotonic() + 20
        while code is None and time.monotonic() < deadline:
            line = k.stdout.readline()
            if not line:
                break
            out += line
            m = re.search(rb"demo_token\.py approve ([B-Z]{4}-[B-Z]{4})", line)
            code = m.group(1).decode() if m else None
        assert code is not None, out.decode(errors="replace") + k.stderr.read().decode(errors="replace")
        assert "\u2588".encode() in out  # the QR code, drawn in half blocks
        r = subprocess.run([PY, str(root / "scripts" / "demo_token.py"), "approve", code], capture_output=True, timeout=30)
        assert r.returncode == 0 and b"approved kiosk-hall-3" in r.stdout, r.stderr.decode()
        assert "3号自助机" in r.stderr.decode()
        rest, err = k.communicate(timeout=30)
        assert k.returncode == 0, (rest + err).decode(errors="replace")
        assert "signed in for 600 s" in rest.decode() and "演*" in rest.decode(), rest.decode()
        assert "13800000000" not in rest.decode()
    finally:
        if k.poll() is None:
            k.kill()
            k.wait()
