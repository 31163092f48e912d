"""Rate limits (SPEC §5, issue 4) against a real Redis, store healthy: two gateway nodes share one
budget exactly (single Redis and a 3-master Redis Cluster), the draft-11 RateLimit-Policy and
RateLimit fields are exact, a 429 is problem+json with an honest Retry-After, only ip policies bind
anonymous requests, and hegate_ratelimited_total counts every 429. (Store failures:
test_ratelimit_faults.py.)"""

import time

from hegatetest import assert_problem
from redis_fixtures import (PATH, Load, fast_backend, key_slot, limited_gateways, parse_state_field,  # noqa: F401
                            redis_cluster, redis_server, run_exact, wait_ready)


# ---------------------------------------------------------------------------------------------
# 1. exactness


LIMIT, WINDOW, BURST = 50, 1, 50  # T = 20 ms
SECONDS = 4.0
KEY = "hegate:rl:{ip:127.0.0.1}:shared"  # every request comes from 127.0.0.1: one key (tag: the identity)
SHARED = {"shared": {"key": "ip", "limit": LIMIT, "window": "%ds" % WINDOW, "burst": BURST}}


def test_exact_across_two_gateways_single_redis(gateway, fast_backend, redis_server):
    """Two gateways (2 threads each), 4 h2c connections each, 4 s: accepted = 50 + 50/s x elapsed
    within 2 % (the GCRA arithmetic is in check_exact's docstring)."""
    r = redis_server()
    gws, _ = limited_gateways(gateway, fast_backend, {"url": r.url + "/0"}, SHARED, ["shared"])
    wait_ready(gws)
    run_exact(gws, LIMIT, WINDOW, BURST, "single Redis", SECONDS)
    assert r.client().exists(KEY) == 1  # the state lives in Redis, under one hash-tagged key


def test_exact_across_two_gateways_cluster(gateway, fast_backend, redis_cluster):
    """The same through a 3-master + 3-replica Redis Cluster (redis.cluster: three of its nodes as seeds)."""
    c = redis_cluster()
    gws, _ = limited_gateways(gateway, fast_backend, {"cluster": [n.url for n in c.nodes[:3]]}, SHARED, ["shared"])
    wait_ready(gws)
    run_exact(gws, LIMIT, WINDOW, BURST, "Redis Cluster", SECONDS)
    assert c.master_of(key_slot(KEY)).client().exists(KEY) == 1  # on the master owning its slot


# ---------------------------------------------------------------------------------------------
# 2. the fields, 429, Retry-After


def one(r, name):
    """The single value of header NAME (the field must not be repeated)."""
    v = r.headers.get_list(name)
    assert len(v) == 1, "%s: %r" % (name, v)
    return v[0]


def test_headers_exact_429_and_honest_retry_after(gateway, fast_backend, redis_server):
    """Policy q=3 per w=6 s (burst 3): T = 2 s. Three quick requests get r = 2, 1, 0 and t = 2, 4, 6
    (t: seconds until the key is back to a full burst = ceil(tat - now), tat = t0 + k*T). The 4th is
    refused: 429 quota-exceeded, Retry-After 2 (the next slot opens at t0 + T), r=0, t=6. One second
    later still 429 with Retry-After 1; after waiting that second too: 200."""
    r = redis_server()
    (g,), _ = limited_gateways(gateway, fast_backend, {"url": r.url},
                               {"hdr": {"key": "ip", "limit": 3, "window": "6s"}}, ["hdr"], n=1, threads=1)
    wait_ready([g])
    with g.h2c_client() as c:
        for k in range(1, 4):
            resp = c.get(g.http + PATH)
            assert resp.status_code == 200, resp.text
            assert one(resp, "ratelimit-policy") == '"hdr";q=3;w=6'
            assert one(resp, "ratelimit") == '"hdr";r=%d;t=%d' % (3 - k, 2 * k)
        resp = c.get(g.http + PATH)
        assert_problem(resp, 429, "quota-exceeded")
        assert one(resp, "retry-after") == "2"
        assert one(resp, "ratelimit-policy") == '"hdr";q=3;w=6'
        assert one(resp, "ratelimit") == '"hdr";r=0;t=6'
        time.sleep(1.0)
        resp = c.get(g.http + PATH)
        assert_problem(resp, 429, "quota-exceeded")
        assert one(resp, "retry-after") == "1"
        assert parse_state_field(one(resp, "ratelimit"))["hdr"]["r"] == 0
        time.sleep(int(one(resp, "retry-after")))
        resp = c.get(g.http + PATH)
        assert resp.status_code == 200, "waited Retry-After, still refused: %r" % resp.text
        assert one(resp, "ratelimit") == '"hdr";r=0;t=6'


def test_two_policies_both_in_both_fields(gateway, fast_backend, redis_server):
    """Route limited by "ipa" (q=10 per 10 s: T = 1 s) and "ipb" (q=2 per 1 s, burst 3: T = 0.5 s).
    Both appear, in route order, in RateLimit-Policy and RateLimit; "ipb" runs out first."""
    r = redis_server()
    (g,), _ = limited_gateways(gateway, fast_backend, {"url": r.url},
                               {"ipa": {"key": "ip", "limit": 10, "window": "10s"},
                                "ipb": {"key": "ip", "limit": 2, "window": "1s", "burst": 3}},
                               ["ipa", "ipb"], n=1, threads=1)
    wait_ready([g])
    policy = '"ipa";q=10;w=10, "ipb";q=2;w=1'
    with g.h2c_client() as c:
        for k in range(1, 4):
            resp = c.get(g.http + PATH)
            assert resp.status_code == 200, resp.text
            assert one(resp, "ratelimit-policy") == policy
            # ipa: r = 10 - k, t = k * 1 s; ipb: r = 3 - k, t = ceil(k * 0.5 s)
            assert one(resp, "ratelimit") == '"ipa";r=%d;t=%d, "ipb";r=%d;t=%d' % (10 - k, k, 3 - k, (k + 1) // 2)
        resp = c.get(g.http + PATH)  # ipb is out: Redis answers both policies
        assert_problem(resp, 429, "quota-exceeded")
        assert one(resp, "ratelimit-policy") == policy
        state = parse_state_field(one(resp, "ratelimit"))
        assert list(state) == ["ipa", "ipb"], state
        assert state["ipb"] == {"r": 0, "t": 2}, state
        assert state["ipa"]["r"] <= 7, state
        assert one(resp, "retry-after") == "1"
        # answered from the deny cache (no round trip): the policy field still lists both, the
        # state field at least the policy that refuses
        resp = c.get(g.http + PATH)
        assert_problem(resp, 429, "quota-exceeded")
        assert one(resp, "ratelimit-policy") == policy
        assert parse_state_field(one(resp, "ratelimit"))["ipb"]["r"] == 0


def test_refused_requests_consume_no_policy(gateway, fast_backend, redis_server):
    """All or nothing: "tight" (2 per hour) and "loose" (5 per hour) on one route, one identity (one
    slot, one script call). After 2 requests tight refuses; 20 refused requests later loose still has
    exactly 3 left, in the RateLimit field and in Redis (its schedule is 2 intervals ahead, not 22).
    A second gateway (no deny cache of its own yet) sees the same in Redis."""
    r = redis_server()
    gws, _ = limited_gateways(gateway, fast_backend, {"url": r.url},
                              {"tight": {"key": "ip", "limit": 2, "window": "1h"},
                               "loose": {"key": "ip", "limit": 5, "window": "1h"}},
                              ["loose", "tight"], n=2, threads=1)
    wait_ready(gws)
    with gws[0].h2c_client() as c:
        for k in (1, 2):
            resp = c.get(gws[0].http + PATH)
            assert resp.status_code == 200, resp.text
            assert parse_state_field(one(resp, "ratelimit"))["loose"]["r"] == 5 - k
        for _ in range(20):
            resp = c.get(gws[0].http + PATH)
            assert_problem(resp, 429, "quota-exceeded")
    with gws[1].h2c_client() as c:
        resp = c.get(gws[1].http + PATH)  # Redis answers: loose would admit it, tight refuses
        assert_problem(resp, 429, "quota-exceeded")
        state = parse_state_field(one(resp, "ratelimit"))
        assert state["loose"]["r"] == 3, state
        assert state["tight"]["r"] == 0, state
    # 5 per hour: T = 720 s; two admitted requests put loose's schedule 1440 s ahead
    pttl = r.client().pttl("hegate:rl:{ip:127.0.0.1}:loose")
    assert 1440000 - 60000 < pttl <= 1440000, pttl
    assert r.client().pttl("hegate:rl:{ip:127.0.0.1}:tight") > 0


def test_user_and_client_policies_skip_anonymous_requests(gateway, fast_backend, redis_server):
    """user and client policies bind authenticated requests only (their key is the token's sub /
    client_id): on a public route, a user and a client policy of 1 request do not refuse anonymous
    requests and are not advertised to them; the ip policy is."""
    r = redis_server()
    (g,), _ = limited_gateways(gateway, fast_backend, {"url": r.url},
                               {"u": {"key": "user", "limit": 1, "window": "1m"},
                                "c": {"key": "client", "limit": 1, "window": "1m"},
                                "ip": {"key": "ip", "limit": 100, "window": "1m"}},
                               ["u", "c", "ip"], n=1, threads=1)
    wait_ready([g])
    with g.h2c_client() as c:
        for k in range(1, 4):
            resp = c.get(g.http + PATH)
            assert resp.status_code == 200, resp.text
            assert one(resp, "ratelimit-policy") == '"ip";q=100;w=60'
            # T = 60 s / 100 = 0.6 s: t = ceil(k * 0.6 s)
            assert parse_state_field(one(resp, "ratelimit")) == {"ip": {"r": 100 - k, "t": -(-6 * k // 10)}}


# ---------------------------------------------------------------------------------------------
# 4. metrics


def test_ratelimited_total_counts_every_429(gateway, fast_backend, redis_server):
    """Two gateways, concurrent load; "tight" refuses most requests, "loose" never does.
    hegate_ratelimited_total{policy="tight"} summed over the gateways equals the 429s received
    exactly (whether Redis or the deny cache answered), {policy="loose"} stays 0."""
    r = redis_server()
    gws, _ = limited_gateways(gateway, fast_backend, {"url": r.url},
                              {"tight": {"key": "ip", "limit": 20, "window": "1s", "burst": 5},
                               "loose": {"key": "ip", "limit": 100000, "window": "1s"}},
                              ["tight", "loose"])
    wait_ready(gws)
    for g in gws:
        m = g.metrics()
        assert m.types.get("hegate_ratelimited_total") == "counter"
        assert m.find("hegate_ratelimited_total", policy="tight") and m.value("hegate_ratelimited_total") == 0
    samples = Load(gws, PATH, workers=2).run(1.5)
    refused = sum(1 for s in samples if s.status == 429)
    assert refused > 100 and all(s.status in (200, 429) for s in samples), (refused, samples[:3])
    counted = sum(g.metrics().value("hegate_ratelimited_total", policy="tight") for g in gws)
    loose = sum(g.metrics().value("hegate_ratelimited_total", policy="loose") for g in gws)
    print("429 received %d, hegate_ratelimited_total{tight} %d, {loose} %d" % (refused, counted, loose))
    assert counted == refused
    assert loose == 0
    for g in gws:
        assert g.metrics().value("hegate_requests_total", route="rl", code="429") == \
            sum(1 for s in samples if s.status == 429 and s.gw == gws.index(g))
    # who answered: each request either went to Redis with both policies, or was refused by the deny
    # cache on "tight" alone ("loose" never refuses, so it is never in the cache); the Redis answers
    # came in batches (script calls)
    store = sum(g.metrics().value("hegate_ratelimit_checks_total", source="store") for g in gws)
    cache = sum(g.metrics().value("hegate_ratelimit_checks_total", source="cache") for g in gws)
    calls = sum(g.metrics().value("hegate_ratelimit_store_calls_total") for g in gws)
    down = sum(g.metrics().value("hegate_ratelimit_checks_total", source=s) for g in gws for s in ("local", "open", "closed"))
    print("checks answered by Redis %d in %d script calls, by the deny cache %d" % (store, calls, cache))
    assert down == 0 and cache > 0
    assert store % 2 == 0 and store // 2 + cache == len(samples)
    assert 0 < calls <= store // 2
