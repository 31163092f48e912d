"""Every way in (SPEC §1): h2 over TLS (ALPN), HTTP/1.1 over TLS, h2c by prior knowledge and by
Upgrade, plain HTTP/1.1 — each reaches the back end with the path intact."""

import json
import socket
import ssl
import warnings

import pytest

from hegatetest import H2Conn, connect_refused, curl, route


@pytest.fixture
def gw(gateway, backend):
    b = backend("query-1")
    return gateway([route("query", "/api/v1/query", [b.url])])


def echo_ok(status, doc, path):
    assert status == 200, (status, doc)
    assert doc["backend"] == "query-1"
    assert doc["path"] == path
    assert doc["method"] == "GET"


def test_h2_over_tls_alpn(gw):
    with gw.client(http2=True) as c:
        r = c.get(gw.https + "/api/v1/query/fund?year=2024")
        assert r.http_version == "HTTP/2"
        echo_ok(r.status_code, r.json(), "/api/v1/query/fund?year=2024")


@pytest.mark.parametrize("offer,expected", [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1"),
                                            (["http/1.1", "h2"], "h2")])
def test_alpn_negotiation(gw, offer, expected):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(offer)
    with socket.create_connection(("127.0.0.1", gw.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == expected
            assert s.version() in ("TLSv1.2", "TLSv1.3")


def test_tls_below_1_2_refused(gw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with socket.create_connection(("127.0.0.1", gw.tls_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname="localhost"):
                pass


def test_http11_over_tls(gw):
    with gw.client(http2=False) as c:
        r = c.get(gw.https + "/api/v1/query/fund")
        assert r.http_version == "HTTP/1.1"
        echo_ok(r.status_code, r.json(), "/api/v1/query/fund")


def test_h2c_prior_knowledge_curl(gw):
    code, version, body = curl("--http2-prior-knowledge", gw.http + "/api/v1/query/h2c?x=1")
    assert version == "2"
    echo_ok(code, json.loads(body), "/api/v1/query/h2c?x=1")


def test_h2c_prior_knowledge_raw(gw):
    c = H2Conn(gw.plain_port, tls=False)
    try:
        r1 = c.request("GET", "/api/v1/query/a")
        r2 = c.request("GET", "/api/v1/query/b")
    finally:
        c.close()
    echo_ok(r1.status_code, r1.json(), "/api/v1/query/a")
    echo_ok(r2.status_code, r2.json(), "/api/v1/query/b")


def test_h2c_upgrade(gw):
    code, version, body = curl("--http2", gw.http + "/api/v1/query/upgrade")
    assert version == "2", "no h2c Upgrade: curl ended with HTTP/%s" % version
    echo_ok(code, json.loads(body), "/api/v1/query/upgrade")


def test_plain_http11(gw):
    with gw.client() as c:
        r = c.get(gw.http + "/api/v1/query/plain")
        assert r.http_version == "HTTP/1.1"
        echo_ok(r.status_code, r.json(), "/api/v1/query/plain")
    code, version, body = curl("--http1.1", gw.http + "/api/v1/query/curl")
    assert version == "1.1" and code == 200


def test_h2_keeps_many_streams_on_one_connection(gw):
    """Requests multiplexed on one h2 connection all complete (100 requests, one connection)."""
    with gw.client(http2=True) as c:
        for i in range(100):
            r = c.get(gw.https + "/api/v1/query/n%d" % i)
            assert r.status_code == 200 and r.json()["path"] == "/api/v1/query/n%d" % i
            assert r.http_version == "HTTP/2"


def test_listeners_bind_only_the_configured_host(gw):
    """`host: 127.0.0.1` means 127.0.0.1 only: another loopback address is refused."""
    for port in (gw.tls_port, gw.plain_port):
        assert connect_refused("127.0.0.2", port), "port %d answers on 127.0.0.2" % port
