"""Rate limits when the store fails (SPEC §5, issue 4): Redis killed (SIGKILL) or paused (SIGSTOP)
under load, then back; a Redis Cluster master killed and its replica promoted.

What must hold: no request waits on the store longer than redis.timeout, the configured
on_store_down mode applies while the store is away (local: each node enforces limit / nodes;
open: everything passes; closed: 503 problem+json), no gateway crashes or needs a restart,
/readyz follows the store, hegate_store_errors_total grows during an outage, and once the store is
back the shared budget is enforced by it again, exactly.

Latency is judged per request on two clocks: the gateway's own duration of the request (its access
log: request head received -> response sent, joined by x-request-id) against redis.timeout plus a
small margin, and the client's round trip (which includes this Python client's thread switches)
against a looser bound that still catches any request left hanging for the length of a fault.
"""

import time

import httpx
import pytest

from hegatetest import assert_problem
from redis_fixtures import (PATH, STORE_TIMEOUT_MS, Load, ReadyPoller, attach_server_durations,  # noqa: F401
                            fast_backend, key_slot, limited_gateways, parse_state_field, percentile, ready,
                            redis_cluster, redis_server, run_exact, store_errors, wait_ready)

TIMEOUT_MS = STORE_TIMEOUT_MS
# gateway side: the store wait (<= TIMEOUT_MS) plus the rest of the request's handling (local GCRA,
# proxying to a local back end: ~1 ms, more when the machine is busy)
SERVER_MARGIN_P99_MS = 25
SERVER_MARGIN_MAX_MS = 100
# client side: every fault below lasts >= 1.5 s; a request not bounded by the timeout waits that long
CLIENT_MAX_MS = 1000

LIMIT, BURST = 100, 100  # per second; T = 10 ms
KEY = "hegate:rl:{ip:127.0.0.1}:kf"
POLICIES = {"kf": {"key": "ip", "limit": LIMIT, "window": "1s", "burst": BURST}}


def latency_report(samples, label):
    """Prints and returns {client,server: (p50, p99, max)} in ms."""
    out = {}
    for side, vals in (("client", [s.latency for s in samples]), ("server", [s.server for s in samples])):
        ms = [v * 1000 for v in vals]
        out[side] = (percentile(ms, 50), percentile(ms, 99), max(ms))
    print("%s: %d requests; gateway p50 %.1f / p99 %.1f / max %.1f ms; client p50 %.1f / p99 %.1f / max %.1f ms" % (
        (label, len(samples)) + out["server"] + out["client"]))
    return out


def check_latency(gws, samples, label):
    """No request waited on the store longer than the timeout (see the module's docstring)."""
    attach_server_durations(gws, samples)
    rep = latency_report(samples, label)
    _, p99, mx = rep["server"]
    slow = sorted(samples, key=lambda s: -s.server)[:5]
    assert p99 <= TIMEOUT_MS + SERVER_MARGIN_P99_MS, "%s: gateway p99 %.1f ms > %d + %d ms; slowest %s" % (
        label, p99, TIMEOUT_MS, SERVER_MARGIN_P99_MS, slow)
    assert mx <= TIMEOUT_MS + SERVER_MARGIN_MAX_MS, "%s: gateway max %.1f ms > %d + %d ms; slowest %s" % (
        label, mx, TIMEOUT_MS, SERVER_MARGIN_MAX_MS, slow)
    assert rep["client"][2] <= CLIENT_MAX_MS, "%s: a request took %.0f ms: %s" % (
        label, rep["client"][2], sorted(samples, key=lambda s: -s.latency)[:5])
    return rep


def check_fail_fast(samples, label):
    """While the store is known to be away, requests do not wait for it at all: only those in
    flight when it went away (or caught by a reconnect attempt) wait up to the timeout."""
    rep = latency_report(samples, label)
    p90 = percentile([s.server * 1000 for s in samples], 90)
    assert p90 <= TIMEOUT_MS / 4, "%s: gateway p90 %.1f ms: requests wait on a store known to be down" % (label, p90)
    return rep


def since(times, t0):
    """Seconds from T0 to each time (None stays None: never)."""
    return [None if t is None else round(t - t0, 3) for t in times]


def no_transport_errors(samples, gws):
    errs = [s for s in samples if s.status is None]
    assert not errs, "requests failed at the connection level: %s" % errs[:5]
    for g in gws:
        assert g.alive(), "a gateway died; stderr:\n%s" % g.stderr()[-4000:]


def wait_key_gone(client, key, timeout=3.0):
    """The GCRA key expires when the bucket is full again (at most tau = 1 s after the last admission)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.exists(key):
            return
        time.sleep(0.02)
    pytest.fail("%s still in Redis after %.1fs" % (key, timeout))


def fresh_exact(gws, client, label, seconds=1.5):
    """The store enforces the shared budget again: once the key has expired, two gateways under
    load admit exactly BURST + LIMIT x elapsed (see check_exact). A gateway still deciding locally
    would add its own burst and rate."""
    wait_key_gone(client, KEY)
    return run_exact(gws, LIMIT, 1, BURST, label, seconds, workers=3)


# ---------------------------------------------------------------------------------------------
# single Redis killed, then restarted on the same port


def local_expectation(samples, start, nodes):
    """Local mode: each node runs its own GCRA with T' = T x nodes and burst' = BURST // nodes
    (threads: 1, so the node's share is not split further between threads), fresh when the store
    goes away at START: burst' + E/T' admitted on a node whose requests span START..last send."""
    T_local = nodes / LIMIT
    out = {}
    for gi in sorted({s.gw for s in samples}):
        mine = [s for s in samples if s.gw == gi]
        accepted = sum(1 for s in mine if s.status == 200)
        elapsed = mine[-1].sent - start
        out[gi] = (accepted, BURST // nodes + elapsed / T_local, elapsed)
    return out


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
def test_redis_killed_mid_load_then_restarted(mode, gateway, fast_backend, redis_server):
    """Two gateways (nodes: 2, threads: 1) under load; Redis SIGKILLed after 1 s, started again on
    the same port 1.5 s later. Latency bounded, the mode applied while it is away, /readyz 503 then
    200 again and the store deciding again within 2 s of the restart, the shared budget exact."""
    r = redis_server()
    gws, _ = limited_gateways(gateway, fast_backend, {"url": r.url}, POLICIES, ["kf"], n=2, threads=1,
                              on_store_down=mode)
    wait_ready(gws)

    load = Load(gws, PATH, workers=3).start()
    try:
        time.sleep(1.0)
        t_kill = time.time()
        r.kill()
        t_killed = time.time()
        time.sleep(0.3)
        assert not any(ready(g) for g in gws), "/readyz still 200 with the store down"
        if mode == "closed":
            assert_problem(httpx.get(gws[0].http + PATH, timeout=5, trust_env=False), 503, "unavailable")
        time.sleep(1.2)
        poller = ReadyPoller(gws)
        t_restart = time.time()
        r.start()
        time.sleep(2.2)
    finally:
        samples = load.stop()
    no_transport_errors(samples, gws)
    readiness = since(poller.result(), t_restart)
    print("mode %s: store down %.2fs; /readyz 200 again %s s after the restart began" % (
        mode, t_restart - t_kill, readiness))
    assert all(x is not None and x <= 2.0 for x in readiness), readiness

    # no request waited on the store longer than the timeout; none waited on a store known down
    check_latency(gws, samples, "mode %s, whole run" % mode)
    check_fail_fast([s for s in samples if t_killed + 0.05 <= s.sent < t_restart], "mode %s, while down" % mode)

    # while the store was away, the mode. Right after the kill the deny cache may still answer 429
    # for what Redis refused (for at most T = 10 ms): the open/closed checks start 50 ms later.
    down = [s for s in samples if s.sent + s.latency >= t_kill and s.sent < t_restart]
    settled = [s for s in down if s.sent >= t_killed + 0.05]
    codes = {}
    for s in down:
        codes[s.status] = codes.get(s.status, 0) + 1
    print("mode %s, while down: %s" % (mode, codes))
    assert settled
    if mode == "open":
        assert all(s.status == 200 for s in settled), codes
    elif mode == "closed":
        assert all(s.status == 503 for s in settled), codes
    else:
        assert all(s.status in (200, 429) for s in down), codes
        for gi, (accepted, expected, elapsed) in local_expectation(down, t_kill, len(gws)).items():
            print("mode local, gateway %d: accepted %d in %.3fs, expected %.1f" % (gi, accepted, elapsed, expected))
            assert abs(accepted - expected) <= 0.02 * expected, \
                "local mode, gateway %d: accepted %d, expected %.1f +- 2%% (limit / nodes)" % (gi, accepted, expected)
        # local state, never the store's: remaining stays below the local burst (BURST / nodes)
        for s in settled:
            assert s.ratelimit is not None and parse_state_field(s.ratelimit)["kf"]["r"] < BURST // len(gws), s

    # back within 2 s of the restart, without a gateway restart: /readyz on every gateway (above),
    # and answers only the store can give. open: a RateLimit state (open answers have none); closed:
    # anything but 503; local: remaining >= BURST / nodes, beyond any local burst (the restarted
    # store has a fresh key with the full burst, which may all go to the gateway that reconnects
    # first, so that one is looked for across gateways; fresh_exact below covers each gateway).
    if mode == "open":
        def from_store(s):
            return s.ratelimit is not None
    elif mode == "closed":
        def from_store(s):
            return s.status != 503
    else:
        def from_store(s):
            return s.ratelimit is not None and parse_state_field(s.ratelimit)["kf"]["r"] >= BURST // len(gws)
    after = [s for s in samples if s.sent >= t_restart]
    groups = [("any", after)] if mode == "local" else [(gi, [s for s in after if s.gw == gi]) for gi in range(len(gws))]
    for gi, group in groups:
        back = [s for s in group if from_store(s)]
        assert back, "gateway %s: no answer from the store after Redis returned" % gi
        print("mode %s, gateway %s: first answer from the store %.3fs after the restart began" % (
            mode, gi, back[0].sent - t_restart))
        assert back[0].sent - t_restart <= 2.0
    late = [s for s in after if s.sent >= t_restart + 2.0]
    assert late and all(s.status in (200, 429) and s.ratelimit is not None for s in late), \
        [s for s in late if s.status not in (200, 429) or s.ratelimit is None][:5]
    assert r.client().exists(KEY), "the limiter state is not in the restarted Redis"
    fresh_exact(gws, r.client(), "mode %s, after Redis returned" % mode)


def test_redis_paused_sigstop(gateway, fast_backend, redis_server):
    """SIGSTOP: the connection stays open and nothing answers. Requests in flight wait the timeout,
    later ones are answered at once (local mode) until Redis continues; then it decides again."""
    r = redis_server()
    gws, _ = limited_gateways(gateway, fast_backend, {"url": r.url}, POLICIES, ["kf"], n=2, threads=1,
                              on_store_down="local")
    wait_ready(gws)
    load = Load(gws, PATH, workers=3).start()
    try:
        time.sleep(1.0)
        t_pause = time.time()
        r.pause()
        time.sleep(1.5)
        assert not any(ready(g) for g in gws), "/readyz still 200 with the store paused"
        poller = ReadyPoller(gws)
        t_cont = time.time()
        r.resume()
        time.sleep(2.0)
    finally:
        r.resume()
        samples = load.stop()
    no_transport_errors(samples, gws)
    readiness = since(poller.result(), t_cont)
    print("paused %.2fs; /readyz 200 again %s s after SIGCONT" % (t_cont - t_pause, readiness))
    assert all(x is not None and x <= 2.0 for x in readiness), readiness
    check_latency(gws, samples, "SIGSTOP, whole run")
    paused = [s for s in samples if t_pause <= s.sent < t_cont]
    assert paused and all(s.status in (200, 429) for s in paused), {s.status for s in paused}
    waited = [s for s in paused if s.server * 1000 >= TIMEOUT_MS * 0.9]
    print("SIGSTOP: %d of %d requests sent while paused waited the timeout" % (len(waited), len(paused)))
    assert waited, "nobody waited on the paused store: was it paused at all?"
    check_fail_fast([s for s in paused if s.sent >= t_pause + (TIMEOUT_MS + 50) / 1000.0], "SIGSTOP, while paused")
    # after SIGCONT the store decides again: with the key expired, the budget is shared exactly
    fresh_exact(gws, r.client(), "after SIGCONT")


# ---------------------------------------------------------------------------------------------
# metrics


def test_store_errors_total_grows_while_redis_down(gateway, fast_backend, redis_server):
    """hegate_store_errors_total is 0 while Redis is healthy, and keeps growing for as long as it
    is down under load (so that a rate() alert fires for the whole outage, not for an instant)."""
    r = redis_server()
    (g,), _ = limited_gateways(gateway, fast_backend, {"url": r.url}, POLICIES, ["kf"], n=1, threads=2)
    wait_ready([g])
    load = Load([g], PATH, workers=3).start()
    try:
        time.sleep(0.5)
        healthy = store_errors(g)
        r.kill()
        time.sleep(0.3)
        early = store_errors(g)
        time.sleep(1.5)
        late = store_errors(g)
    finally:
        samples = load.stop()
    no_transport_errors(samples, [g])
    print("hegate_store_errors_total: healthy %d, 0.3 s into the outage %d, 1.8 s into it %d" % (healthy, early, late))
    assert healthy == 0
    assert late > early, "hegate_store_errors_total stood still at %d during 1.5 s of outage under load" % late


# ---------------------------------------------------------------------------------------------
# Redis Cluster: a master killed, its replica promoted


def test_cluster_master_killed_failover(gateway, fast_backend, redis_cluster):
    """Two gateways on a 3-master + 3-replica cluster; the master owning the key's slot SIGKILLed
    under load. Its replica is promoted (cluster-node-timeout 1 s), the gateways follow without a
    restart, every answer meanwhile is a 200 or 429 within the latency bound, and afterwards the
    promoted replica holds the budget, shared exactly again."""
    c = redis_cluster()
    gws, _ = limited_gateways(gateway, fast_backend, {"cluster": [n.url for n in c.nodes[:3]]}, POLICIES, ["kf"],
                              n=2, threads=1, on_store_down="local")
    wait_ready(gws)
    slot = key_slot(KEY)
    master = c.master_of(slot)
    replica = c.replicas_of(master)[0]
    load = Load(gws, PATH, workers=3).start()
    try:
        time.sleep(1.0)
        t_kill = time.time()
        master.kill()
        # the cluster notices (cluster-node-timeout 1 s) and promotes the replica
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and c.master_of(slot, via=replica) is not replica:
            time.sleep(0.05)
        t_promoted = time.time()
        assert c.master_of(slot, via=replica) is replica, "the replica was not promoted within 10 s"
        readiness = wait_ready(gws, timeout=5.0)
        t_back = time.time()
        time.sleep(0.5)
    finally:
        samples = load.stop()
    no_transport_errors(samples, gws)
    print("cluster: replica promoted %.2fs after the kill, /readyz 200 on both gateways %.2fs after that" % (
        t_promoted - t_kill, readiness))
    check_latency(gws, samples, "cluster failover, whole run")
    # consistent answers throughout: never a 5xx, the limit keeps biting (local mode while the slot
    # has no master), and no more is admitted than the store's burst, one local burst per node
    # (BURST / nodes each) and LIMIT per second together allow
    during = [s for s in samples if t_kill <= s.sent < t_back]
    assert during and all(s.status in (200, 429) for s in during), {s.status for s in during}
    accepted = sum(1 for s in during if s.status == 200)
    elapsed = during[-1].sent - during[0].sent
    bound = BURST + BURST + LIMIT * elapsed
    print("cluster failover: %d accepted in %.2fs (bound %.0f)" % (accepted, elapsed, bound))
    assert 0 < accepted <= bound * 1.02
    assert sum(1 for s in during if s.status == 429) > 0
    # after the failover the promoted replica holds the state, and the budget is shared exactly
    fresh_exact(gws, replica.client(), "cluster after failover")
