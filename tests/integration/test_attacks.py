"""The front door under attack, the short version (the long one, beside h2o and HAProxy, is
bench/attacks.sh): each attack of tests/attack/attack.c for a few seconds from 127.0.0.1 against a
real gateway while a legitimate client on 127.0.0.2 opens a fresh connection every 20 ms
(tests/attack/harness.py). What must hold (the issue "The front door stays open under attack"):
legitimate success >= 95 %, its p99 <= 250 ms, the gateway's RSS grows <= 64 MiB, it does not
crash, and within 1 s of the attack's end every legitimate answer is prompt again. Where a defence
closes the attacker's connections, the reason it gives is checked too, so that a defence that stops
working fails here even if the machine happened to keep up."""

import os
import sys

import pytest

from hegatetest import route, sanitized

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "attack"))
import harness  # noqa: E402

SECONDS = 3
BIG = 16 << 20
# the reason in hegate_connections_closed_total each attack must produce (None: the defence is that
# the attack costs little, not that it is cut: slow readers are paused, trickled bodies wait for
# limits.body_timeout, which is longer than the attack)
REASONS = {
    "rapid-reset": "resets",
    "continuation": "header_block",
    "hpack-bomb": "header_fields",
    "settings": "control_frames",
    "ping": "control_frames",
    "window-priority": "control_frames",
    "slow-reader": None,
    "slowloris-h1": "per_ip",
    "slowloris-h2": None,
    "idle": "per_ip",
    "connect-flood": "connect_rate",
}


# Connections the short version opens where the attack's default differs. idle: 5,000, not 10,000 — the
# attacker reopens every refused connection at each second's tick, and a burst of ~9,700 connects from
# one address meets the kernel's accept queues (net.core.somaxconn 4096 per listening socket, one per
# thread) before the gateway sees it: a legitimate connection waits behind the burst (p99 7-200 ms
# here with 2 threads) or its SYN is dropped (TcpExtListenOverflows; 1 s retransmission). The
# full 10,000 runs in bench/attacks.sh, where that shows as what it is.
CONNS = {"idle": 5000}


@pytest.fixture
def attack_bin(hegate_bin):
    path = os.path.join(os.path.dirname(hegate_bin), "attack")
    if not os.access(path, os.X_OK):
        pytest.fail("%s is not built (make builds it beside hegate)" % path)
    return path


@pytest.mark.parametrize("attack", harness.ATTACKS)
def test_front_door_stays_open(gateway, backend, attack_bin, hegate_bin, monkeypatch, attack):
    if sanitized(hegate_bin):  # ASan keeps 256 MiB of freed memory resident by default (its quarantine)
        monkeypatch.setenv("ASAN_OPTIONS", ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                                  "quarantine_size_mb=4"])))
    # the legitimate client's route has a back end of its own: it measures the front door, not a small
    # Python back end swamped by what the attacker's admitted requests ask of it (its listen queue
    # overflows, and the gateway's connections to it wait for SYN retransmissions)
    attacked, big, legit = backend("public-1"), backend("big-1"), backend("legit-1")
    g = gateway([route("public", "/api/v1/public", [attacked.url]), route("big", "/api/v1/big", [big.url]),
                 route("legit", "/api/v1/legit", [legit.url])])
    r = harness.run(attack_bin, g.plain_port, g.proc.pid, attack, seconds=SECONDS, before=1.0, after=2.0,
                    path="/api/v1/public/x", big_path="/api/v1/big/big?size=%d" % BIG, conns=CONNS.get(attack),
                    legit_path="/api/v1/legit/x")
    m = g.metrics()
    reasons = {k: m.value("hegate_connections_closed_total", reason=k) for k in set(REASONS.values()) if k}
    print("\n" + harness.markdown([r]) + "\nclosed: %s; attacker: %s" % (reasons, r.attacker))
    assert r.alive, g.stderr()[-3000:]
    assert r.legit >= SECONDS * 40, r  # the client made its requests (50 a second)
    assert r.success >= 95.0, r
    assert r.p99_ms <= 250, r
    assert r.rss_mib <= 64, r
    assert r.recovery_s is not None and r.recovery_s <= 1.0, r
    assert "streams_written" in r.attacker, r.attacker  # the attacker ran and reported
    reason = REASONS[attack]
    if reason:
        closed = g.metrics().value("hegate_connections_closed_total", reason=reason)
        assert closed >= 1, (attack, reason, r.attacker)
    assert g.alive()
