"""The access log (SPEC §8): one JSON object per line per request with time, request_id, route,
method, path WITHOUT the query, status, bytes, duration, upstream, client_id — and no personal
data or secret from the query string ever."""

import json
import os
import time

import pytest

from hegatetest import route

FIELDS = {"time", "request_id", "route", "method", "path", "status", "bytes", "duration", "upstream", "client_id"}
ID_NUMBER = "110101199003071234"
SECRET = "s3cr3tT0kenValue"
PHONE = "13800138000"


def read_lines(g, want, timeout=3.0):
    """The access-log lines once at least WANT are there. If the gateway buffers its log, the
    lines are read after a clean SIGTERM instead (the contents are what this file tests)."""
    path = g.access_log_path
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        if os.path.exists(path):
            with open(path, "rb") as f:
                lines = [l for l in f.read().split(b"\n") if l.strip()]
        if len(lines) >= want:
            return lines
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert g.stop() == 0
    with open(path, "rb") as f:
        return [l for l in f.read().split(b"\n") if l.strip()]


@pytest.fixture
def logged(gateway, backend):
    b = backend("query-1")
    g = gateway([route("query", "/api/v1/query", [b.url], methods=["GET", "POST"])])
    return g, b


def test_one_json_line_per_request_without_query(logged):
    g, b = logged
    sent = []
    with g.client(http2=True) as c:
        for i in range(3):
            r = c.get(g.https + "/api/v1/query/person/%d" % i,
                      params={"idnumber": ID_NUMBER, "token": SECRET, "phone": PHONE})
            assert r.status_code == 200
            sent.append(("GET", "/api/v1/query/person/%d" % i, r))
        r = c.post(g.https + "/api/v1/query/form?idnumber=" + ID_NUMBER, content=b"x" * 10)
        sent.append(("POST", "/api/v1/query/form", r))
        r = c.get(g.https + "/api/v1/query/big?size=3000&token=" + SECRET)
        sent.append(("GET", "/api/v1/query/big", r))
    lines = read_lines(g, len(sent))
    assert len(lines) == len(sent), "expected %d lines, got %d:\n%s" % (len(sent), len(lines), lines)
    by_id = {}
    for raw in lines:
        doc = json.loads(raw)  # each line is one complete JSON object
        assert isinstance(doc, dict)
        missing = FIELDS - set(doc)
        assert not missing, "access-log line lacks %s: %s" % (sorted(missing), raw)
        by_id[doc["request_id"]] = doc
    for method, path, r in sent:
        rid = r.headers["x-request-id"]
        assert rid in by_id, "no log line for request %s" % rid
        doc = by_id[rid]
        assert doc["method"] == method
        assert doc["path"] == path, "path must be logged without its query: %r" % doc["path"]
        assert doc["status"] == r.status_code and isinstance(doc["status"], int)
        assert doc["route"] == "query"
        assert isinstance(doc["duration"], (int, float)) and doc["duration"] >= 0
        assert isinstance(doc["bytes"], int) and doc["bytes"] >= 0
        assert doc["upstream"] and str(b.port) in str(doc["upstream"]), doc["upstream"]
        assert doc["client_id"] in (None, "", "-"), "public route, no client: %r" % doc["client_id"]
        assert isinstance(doc["time"], (str, int, float)) and doc["time"]
    big = by_id[sent[-1][2].headers["x-request-id"]]
    assert 3000 <= big["bytes"] < 3000 + 4096, "bytes of a 3000-byte response: %r" % big["bytes"]


def test_no_personal_data_in_any_log(logged):
    g, b = logged
    with g.client() as c:
        c.get(g.http + "/api/v1/query/p?idnumber=%s&token=%s&phone=%s" % (ID_NUMBER, SECRET, PHONE))
        c.get(g.http + "/api/v1/nowhere?idnumber=%s&token=%s" % (ID_NUMBER, SECRET))
        c.get(g.http + "/api/v1/query/p?status=503&token=" + SECRET)
        c.get(g.http + "/api/v1/query/p", headers={"authorization": "Bearer " + SECRET})
    lines = read_lines(g, 4)
    assert len(lines) == 4, lines
    assert g.stop() == 0
    for name, path in (("access log", g.access_log_path), ("stdout", g.stdout_path), ("stderr", g.stderr_path)):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for secret in (ID_NUMBER, SECRET, PHONE):
            assert secret not in text, "%s contains %r" % (name, secret)


def test_errors_are_logged_too(logged):
    g, b = logged
    with g.client() as c:
        r404 = c.get(g.http + "/nowhere/at/all?q=1")
        r405 = c.delete(g.http + "/api/v1/query/x")
    lines = read_lines(g, 2)
    docs = {json.loads(l)["request_id"]: json.loads(l) for l in lines}
    d404 = docs[r404.headers["x-request-id"]]
    d405 = docs[r405.headers["x-request-id"]]
    assert d404["status"] == 404 and d404["path"] == "/nowhere/at/all" and d404["route"] in (None, "", "-")
    assert d405["status"] == 405 and d405["route"] == "query" and d405["method"] == "DELETE"
    assert d404["upstream"] in (None, "", "-") and d405["upstream"] in (None, "", "-")
