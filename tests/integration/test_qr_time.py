"""The city code's time windows online (SPEC §7.2), provoked on purpose: a code issued by a gateway on
real time is verified by a second gateway (same Redis, same keys) whose clock libfaketime moves —
earlier than gen − skew (not_yet_valid), later than gen + ttl + 5 s (expired), later than the
credential's expiry (credential_expired). A code refused on time is not consumed: the real-time node
accepts it afterwards. Also the deny list's cleanup: a revoked serial leaves the trust list only once
its credential has been expired for a day.

FAKETIME_DONT_FAKE_MONOTONIC=1 keeps the event loop's timers on the real monotonic clock (NOTES.md)."""

import json
import os
import subprocess

import jwt
import pytest

from hegatetest import sanitized
from oauthtest import GATE_SECRET, add_user, code_flow
from test_qr_endpoints import auth, new_code, parse, qr_clients, scanner_token, verify

FAKETIME_LIB = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1") if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(FAKETIME_LIB is None, reason="libfaketime is not installed (apt-get install faketime)")


def faketime_env(offset):
    return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture
def qrt(gateway, backend, hegate_bin, tmp_path, monkeypatch, redis_url):
    if sanitized(hegate_bin):
        pytest.skip("libfaketime cannot be preloaded into an ASan build (it hangs at start-up); "
                    "these tests run in `make integration`")
    b = backend("query")
    # a Redis database of these tests' own: the faked clocks clean the deny list of every serial they see as old
    own_db = redis_url.rsplit("/", 1)[0] + "/7"
    # keys made an hour ago: a code key is trusted only from its creation on (else unknown_key comes first)
    keys = str(tmp_path / "keys")
    p = subprocess.run([hegate_bin, "keys", "generate", "--dir", keys], capture_output=True, timeout=30,
                       env=dict(os.environ, **faketime_env("-1h")))
    assert p.returncode == 0, p.stderr

    def make():
        from hegatetest import route
        return gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                       extra={"clients": qr_clients(hegate_bin), "tokens": {"access_ttl": "5m"}, "keys": {"dir": keys},
                              "redis": {"url": own_db, "timeout": "50ms"},
                              "qr": {"code_ttl": "60s", "credential_ttl": "72h", "skew": "20s"}}, start=False)

    def faked(offset):
        """A second node whose clock is OFFSET (libfaketime syntax, e.g. "-30" seconds, "+73h") away."""
        g = make()
        with monkeypatch.context() as m:
            for k, v in faketime_env(offset).items():
                m.setenv(k, v)
            g.start()
        return g

    g = make()
    phone, password, sub = add_user(hegate_bin, g.cfg_path)
    g.start()
    with g.client(http2=True) as c:
        tok, _, _ = code_flow(c, g.https, phone, password, scope="openid qr")
    return {"g": g, "faked": faked, "token": tok["access_token"]}


def trust_doc(g):
    with g.client() as c:
        r = c.get(g.https + "/qr/v1/trust")
    assert r.status_code == 200, r.text
    return json.loads(jwt.api_jws.decode(r.text, options={"verify_signature": False}))


@pytest.mark.parametrize("offset,reason", [("-30", "not_yet_valid"), ("+70", "expired"), ("+73h", "credential_expired")])
def test_time_window_reasons_online(qrt, offset, reason):
    g = qrt["g"]
    code = new_code(g, qrt["token"])["code"]
    late = qrt["faked"](offset)
    gate = scanner_token(late)  # minted by the faked node at its own time
    assert abs(trust_doc(late)["issued_at"] - trust_doc(g)["issued_at"]) > 25, "libfaketime did not move the clock"
    assert verify(late, gate, code) == {"valid": False, "reason": reason}
    # the same code is still good on real time: a time-window refusal does not consume it
    assert verify(g, scanner_token(g), code)["valid"] is True
    # and once consumed, the faked node still reports the time window first (SPEC order), not replayed
    assert verify(late, gate, code)["reason"] == reason


def test_skew_edge_is_valid(qrt):
    """10 s early is within the 20 s skew: valid on the faked node (the windows are not off by much)."""
    g = qrt["g"]
    code = new_code(g, qrt["token"])["code"]
    early = qrt["faked"]("-10")
    assert verify(early, scanner_token(early), code)["valid"] is True


def test_deny_list_drops_serials_a_day_after_their_credentials_expire(qrt):
    g = qrt["g"]
    serial = parse(new_code(g, qrt["token"])["code"])["serial"]
    with g.client() as c:
        r = c.post(g.https + "/qr/v1/credentials/revoke", headers=auth(qrt["token"]))
        assert r.status_code == 200 and r.json()["revoked"] >= 1
    assert serial in trust_doc(g)["deny"]
    # a day after the credential expired (72 h) is not yet over: still denied
    assert serial in trust_doc(qrt["faked"]("+95h"))["deny"]
    # past expiry + a day: gone from the list (and from the store: real time no longer lists it either)
    assert serial not in trust_doc(qrt["faked"]("+97h"))["deny"]
    assert serial not in trust_doc(g)["deny"]
