"""The `login` rate-limit policy (SPEC §5: "the name login also guards the sign-in form"): every
submission of the sign-in form is checked against it per client address; over the limit the answer is
429 problem+json with Retry-After and the RateLimit fields, exactly as on a limited route; after
Retry-After seconds the form works again; another address keeps its own budget. The page itself (GET),
and the token endpoint are not counted (the SPEC names only the form)."""

import time

import httpx
import pytest

from hegatetest import assert_problem, route
from oauthtest import APP_REDIRECT, GATE_SECRET, add_user, authorize_params, clients, parse_form, pkce
from redis_fixtures import parse_state_field

# 3 submissions at once, then one every 2 s (T = window / limit = 2 s, tau = burst × T = 6 s)
LOGIN = {"key": "ip", "limit": 3, "window": "6s"}


@pytest.fixture
def idp(gateway, backend, hegate_bin):
    b = backend("query")

    def make(policies):
        extra = {"clients": clients(hegate_bin)}
        if policies:
            extra["rate_limits"] = policies
        g = gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])], extra=extra, start=False)
        phone, password, _ = add_user(hegate_bin, g.cfg_path)
        g.start()
        return g, phone, password

    return make


def browser(g, source="127.0.0.1"):
    """An HTTP client whose connections come from SOURCE (any 127/8 address reaches 127.0.0.1)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source, verify=False), verify=False,
                        trust_env=False, timeout=10)


def signin_form(c, g):
    """GET authorize (the sign-in page) and return (action, hidden fields, the params' state)."""
    _, challenge = pkce()
    r = c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=challenge))
    assert r.status_code == 200 and 'name="password"' in r.text, (r.status_code, r.text[:300])
    f = parse_form(r.text)
    return f.action, dict(f.fields)


def submit(c, g, form, phone, password):
    action, fields = form
    return c.post(g.https + action, data=dict(fields, phone=phone, password=password, action="signin"))


def test_login_policy_limits_the_sign_in_form(idp):
    g, phone, password = idp({"login": LOGIN})
    with browser(g) as c, browser(g, "127.0.0.2") as other:
        form = signin_form(c, g)
        # three wrong passwords: the usual answer (the sign-in page again, 401), each with the RateLimit fields
        for i in range(3):
            r = submit(c, g, form, phone, password + "-wrong")
            assert r.status_code == 401 and 'name="password"' in r.text, (i, r.status_code)
            assert r.headers["ratelimit-policy"] == '"login";q=3;w=6', r.headers
            assert r.headers["ratelimit"].startswith('"login";r=%d;t=' % (2 - i)), (i, r.headers["ratelimit"])
        # the fourth, even with the right password: refused before the password is looked at
        t0 = time.monotonic()
        r = submit(c, g, form, phone, password)
        doc = assert_problem(r, 429, "quota-exceeded")
        assert "set-cookie" not in r.headers and "location" not in r.headers
        retry = int(r.headers["retry-after"])
        assert 1 <= retry <= 2, retry
        assert r.headers["ratelimit-policy"] == '"login";q=3;w=6'
        assert r.headers["ratelimit"].startswith('"login";r=0;t='), r.headers["ratelimit"]
        assert password not in doc["detail"] and phone not in doc["detail"]
        assert g.metrics().value("hegate_ratelimited_total", policy="login") == 1

        # another address has its own budget, at the same moment
        r = submit(other, g, signin_form(other, g), phone, password + "-wrong")
        assert r.status_code == 401 and r.headers["ratelimit"].startswith('"login";r=2;'), r.status_code

        # the page (GET) is not counted, nor is the token endpoint: no policy check at all (the login policy
        # is the only one here). Counted, not timed: on a busy machine these scrypt-checked requests can
        # outlast Retry-After, so "still refused afterwards" would measure the machine's speed.
        checks = g.metrics().value("hegate_ratelimit_checks_total")
        assert c.get(g.https + "/oauth2/authorize", params=authorize_params(challenge=pkce()[1])).status_code == 200
        for _ in range(5):
            t = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("gate-line1", GATE_SECRET))
            assert t.status_code == 200, t.text
            assert "ratelimit" not in t.headers
        assert g.metrics().value("hegate_ratelimit_checks_total") == checks

        # after Retry-After (counted from the first refusal) the form works again: a code for the right password
        time.sleep(max(0.0, retry - (time.monotonic() - t0)) + 0.05)
        sent = time.monotonic() - t0
        r = submit(c, g, form, phone, password)
        assert r.status_code == 302, (r.status_code, r.text[:300])
        assert r.headers["location"].startswith(APP_REDIRECT + "?code=")
        left = int(parse_state_field(r.headers["ratelimit"])["login"]["r"])
        # the one slot that opened was taken (r=0), unless the machine took so long that the next opened
        # too (one every T = 2 s): then r counts those, never more than the burst
        assert left == 0 if sent < retry + 2.0 - 0.2 else 0 <= left <= 2, (sent, r.headers["ratelimit"])
        assert g.metrics().value("hegate_ratelimited_total", policy="login") == 1
    assert password not in g.stderr() and phone not in g.stderr()


def test_no_login_policy_no_limit(idp):
    """Without a policy named login the form is not limited (other policies do not guard it)."""
    g, phone, password = idp({"per-ip": {"key": "ip", "limit": 1, "window": "1m"}})
    with browser(g) as c:
        form = signin_form(c, g)
        for _ in range(4):
            r = submit(c, g, form, phone, password + "-wrong")
            assert r.status_code == 401 and "ratelimit" not in r.headers and "ratelimit-policy" not in r.headers
        r = submit(c, g, form, phone, password)
        assert r.status_code == 302 and r.headers["location"].startswith(APP_REDIRECT + "?code=")


def test_login_policy_by_client(idp):
    """A login policy keyed by client counts the submissions for one application, whatever the address."""
    g, phone, password = idp({"login": {"key": "client", "limit": 1, "window": "1m"}})
    with browser(g) as a, browser(g, "127.0.0.3") as b:
        r = submit(a, g, signin_form(a, g), phone, password + "-wrong")
        assert r.status_code == 401 and r.headers["ratelimit-policy"] == '"login";q=1;w=60'
        r = submit(b, g, signin_form(b, g), phone, password)
        assert_problem(r, 429, "quota-exceeded")
        assert int(r.headers["retry-after"]) >= 59
