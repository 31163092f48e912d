"""Sign-out while a node's revocation subscription is down but the store answers (issue 16, SPEC §6
"refused by every node within 1 s"). Node B connects to Redis as a user that may not SUBSCRIBE, so its
subscriber can never be up, while its store works: B must ask the store about tokens (at most once a
second per token and thread) and refuse a token signed out through node A within 1 s. The subscriber
itself under faults (node killed, connection black-holed, Redis restarted): test_revocation_faults.py."""

import math
import time

import pytest
import redis

from test_oauth_flow import api, client, code_flow, idp, wait_refused  # noqa: F401

NOSUB_USER, NOSUB_PASSWORD = "nosub", "nosub-password"


@pytest.fixture
def b_without_subscription(idp, redis_url):  # noqa: F811
    r = redis.Redis.from_url(redis_url)
    r.execute_command("ACL", "SETUSER", NOSUB_USER, "on", ">" + NOSUB_PASSWORD, "~*", "&*", "+@all", "-subscribe",
                      "-psubscribe")
    b = idp["make"]()
    cfg = dict(b.cfg)
    cfg["redis"] = dict(cfg["redis"], url=redis_url.replace("redis://", "redis://%s:%s@" % (NOSUB_USER, NOSUB_PASSWORD)))
    b.write_config(cfg)
    b.start()
    return b


def readyz(g):
    with g.client() as c:
        return c.get(g.admin + "/readyz").json()


def test_logout_reaches_a_node_without_subscription_through_the_store(idp, b_without_subscription):  # noqa: F811
    a, b = idp["g"], b_without_subscription
    deadline = time.monotonic() + 5
    while readyz(b)["revocations"] != "store" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readyz(b)["revocations"] == "store", readyz(b)
    assert readyz(a)["revocations"] == "subscribed", readyz(a)
    with client(a) as c:
        t, _, _ = code_flow(c, a.https, idp["phone"], idp["password"])
    at = t["access_token"]

    # accepted while not revoked; the store is asked at most once per 0.9 s per token and thread
    # (GW_REVOCATIONS_ASK_MS)
    checks0 = b.metrics().value("hegate_revocation_store_checks_total")
    t0 = time.monotonic()
    for _ in range(40):
        assert api(b, at).status_code == 200
    elapsed = time.monotonic() - t0
    asked = b.metrics().value("hegate_revocation_store_checks_total") - checks0
    threads = b.cfg["threads"]
    print("40 requests in %.2f s: %d store questions (%d threads)" % (elapsed, asked, threads))
    assert 1 <= asked <= threads * (math.ceil(elapsed / 0.9) + 1), (asked, elapsed)
    # the state change is logged once, within a second (the subscriber's check runs every second)
    deadline = time.monotonic() + 3
    while "subscriber down; token checks ask the store directly" not in b.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.stderr().count("subscriber down; token checks ask the store directly") == 1, b.stderr()[-2000:]

    with client(a) as c:
        assert c.post(a.https + "/oauth2/logout", headers={"authorization": "Bearer " + at}).status_code == 200
    took = wait_refused(b, at)
    print("refused on the node without subscription %.3f s after the logout" % took)
    assert took is not None and took < 1.0, took
    assert api(a, at).status_code == 401
    # nothing was accepted on a guess: the store answered every question
    assert b.metrics().value("hegate_revocation_unknown_total") == 0
