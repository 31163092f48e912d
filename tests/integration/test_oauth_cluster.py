"""The identity service on a Redis Cluster (redis.cluster, 3 masters + 3 replicas): `hegate user add` writes
the resident on the master that owns the hash tag {id} even when its first seed is another node (it follows
MOVED), the code + PKCE flow works through the gateway's cluster-aware store, and sign-out everywhere
reaches a second gateway whose revocation subscriber listens on a node other than the one that published
(Redis Cluster carries PUBLISH to every node)."""

import subprocess
import time

import pytest

from hegatetest import route
from oauthtest import add_user, clients, code_flow, verify
from redis_fixtures import key_slot, redis_cluster  # noqa: F401

SLOT = key_slot("hegate:{id}:x")  # every identity key shares this slot


@pytest.fixture
def cluster_idp(gateway, backend, hegate_bin, redis_cluster):  # noqa: F811
    c = redis_cluster()
    owner = c.master_of(SLOT)
    others = [n for n in c.nodes if n.port != owner.port]
    b = backend("query")

    def make(seeds):
        return gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                       extra={"clients": clients(hegate_bin), "tokens": {"access_ttl": "5m", "audience": "hegate"},
                              "redis": {"cluster": [n.url for n in seeds], "timeout": "200ms"}}, start=False)

    return c, owner, others, make


def wait_ready(g, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with g.client() as h:
            if h.get(g.admin + "/readyz").status_code == 200:
                return
        time.sleep(0.05)
    pytest.fail("gateway not ready on the cluster")


def api(g, token):
    with g.client(http2=True) as h:
        return h.get(g.https + "/api/v1/query/x", headers={"authorization": "Bearer " + token}).status_code


def test_user_add_and_sign_in_on_a_cluster(cluster_idp, hegate_bin):
    c, owner, others, make = cluster_idp
    g = make(others[:2] + [owner])  # the first seed does not own the slot: user add must follow MOVED
    phone, password, sub = add_user(hegate_bin, g.cfg_path)
    assert owner.client().exists("hegate:{id}:user:" + sub) == 1
    # one phone, one resident: the second add is refused (SET NX on the owning master), also through redirections
    p = subprocess.run([hegate_bin, "user", "add", "-c", g.cfg_path, "--phone", phone, "--name", "李四",
                        "--id-number", "230204199001011234", "--password-stdin"], input=b"another password\n",
                       capture_output=True, timeout=30)
    assert p.returncode == 1 and b"exists already" in p.stderr, p.stderr
    g.start()
    wait_ready(g)
    with g.client(http2=True) as h:
        t, _, _ = code_flow(h, g.https, phone, password)
        assert verify(h, g.https, t["access_token"])["sub"] == sub
    assert api(g, t["access_token"]) == 200


def test_logout_reaches_a_gateway_subscribed_elsewhere_in_the_cluster(cluster_idp, hegate_bin):
    c, owner, others, make = cluster_idp
    a = make([owner] + others[:2])
    phone, password, _ = add_user(hegate_bin, a.cfg_path)
    a.start()
    # b subscribes through its first seed: a replica of another master, not the node that runs the scripts
    other_master = next(n for n in others if c.replicas_of(n))
    b = make([c.replicas_of(other_master)[0], other_master, owner])
    b.start()
    wait_ready(a)
    wait_ready(b)
    time.sleep(0.3)  # b's subscriber has subscribed
    with a.client(http2=True) as h:
        t, _, _ = code_flow(h, a.https, phone, password)
    at = t["access_token"]
    assert api(b, at) == 200
    with a.client(http2=True) as h:
        assert h.post(a.https + "/oauth2/logout", headers={"authorization": "Bearer " + at}).status_code == 200
    t0 = time.monotonic()
    while api(b, at) != 401:
        assert time.monotonic() - t0 < 1.0, "b still accepts the token 1 s after the logout on a"
        time.sleep(0.02)
