"""The connection guard (gateway/guard.c, README "Under attack"), one defence at a time, with raw
HTTP/2 frames (hyperframe + hpack, no client library that would refuse to misbehave) against a real
gateway: each defence closes the offending connection, says why where HTTP/2 can (GOAWAY
ENHANCE_YOUR_CALM), counts it once in hegate_connections_closed_total{reason}, logs it once, and
leaves everyone else served. The attacks at full strength, with a legitimate client measuring, are in
test_attacks.py; these tests pin each mechanism with small, exact budgets."""

import socket
import ssl
import struct
import time

import hpack
import pytest
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from hegatetest import H2Conn, route, sanitized

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 11


def closed(g, reason):
    return g.metrics().value("hegate_connections_closed_total", reason=reason)


class Raw:
    """One HTTP/2 connection driven frame by frame (TLS with ALPN h2, or h2c by prior knowledge)."""

    def __init__(self, g, tls=True, source="127.0.0.1"):
        raw = socket.create_connection(("127.0.0.1", g.tls_port if tls else g.plain_port), timeout=5,
                                       source_address=(source, 0))
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock = raw
        self.enc = hpack.Encoder()
        self.buf = b""
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def headers_block(self, path, extra=()):
        return self.enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", "t"), (":path", path)]
                               + list(extra), huffman=False)

    def send(self, *frames):
        try:
            self.sock.sendall(b"".join(f.serialize() if isinstance(f, Frame) else f for f in frames))
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return False

    def frames(self, timeout=3.0):
        """Frames the server sends until it closes the connection or TIMEOUT passes without one."""
        out = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                f, _ = Frame.parse_frame_header(memoryview(self.buf[:9]))
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                out.append(f)
                if isinstance(f, GoAwayFrame):
                    return out
            try:
                self.sock.settimeout(max(0.05, end - time.monotonic()))
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except (ConnectionResetError, ssl.SSLError, OSError):
                break
            if not chunk:
                break
            self.buf += chunk
        return out

    def goaway(self, timeout=3.0):
        return next((f for f in self.frames(timeout) if isinstance(f, GoAwayFrame)), None)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def served(g, source="127.0.0.2"):
    """A legitimate request from another address is answered 200."""
    raw = socket.create_connection(("127.0.0.1", g.plain_port), timeout=5, source_address=(source, 0))
    try:
        raw.sendall(b"GET /api/v1/public/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            c = raw.recv(65536)
            if not c:
                break
            data += c
        return data.startswith(b"HTTP/1.1 200")
    finally:
        raw.close()


def refused(g, source="127.0.0.1"):
    """A new cleartext connection is closed (or reset) without an answer."""
    try:
        s = socket.create_connection(("127.0.0.1", g.plain_port), timeout=5, source_address=(source, 0))
        try:
            s.sendall(b"GET /api/v1/public/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return s.recv(12) == b""
        finally:
            s.close()
    except (ConnectionResetError, BrokenPipeError):
        return True


@pytest.fixture
def gw(gateway, backend):
    def make(**limits):
        b = backend("public-1")
        return gateway([route("public", "/api/v1/public", [b.url])], limits=limits or None)
    return make


def test_rapid_reset_gets_goaway_and_costs_no_upstream(gw):
    g = gw(h2_resets_per_second=50)
    c = Raw(g)
    frames = []
    for i in range(400):  # HEADERS then RST_STREAM, 400 streams in a few writes
        sid = 1 + 2 * i
        frames += [HeadersFrame(sid, data=c.headers_block("/api/v1/public/rr"), flags=["END_HEADERS", "END_STREAM"]),
                   RstStreamFrame(sid, error_code=8)]
    c.send(*frames)
    ga = c.goaway()
    c.close()
    assert ga is not None and ga.error_code == ENHANCE_YOUR_CALM, ga
    m = g.metrics()
    assert m.value("hegate_connections_closed_total", reason="resets") == 1
    cancelled = m.value("hegate_streams_cancelled_before_routing_total")
    assert cancelled >= 100  # reset in the same read as their HEADERS: never routed
    with open(g.access_log_path) as f:
        logged = sum(1 for line in f if "/api/v1/public/rr" in line)
    assert logged + cancelled <= 400 and logged < 300, (logged, cancelled)
    assert g.stderr().count("streams cancelled beyond limits.h2_resets_per_second") == 1  # once per connection
    assert served(g)


def test_a_few_cancelled_streams_are_normal(gw):
    g = gw(h2_resets_per_second=50)
    c = Raw(g)
    for i in range(20):
        sid = 1 + 2 * i
        c.send(HeadersFrame(sid, data=c.headers_block("/api/v1/public/a"), flags=["END_HEADERS", "END_STREAM"]),
               RstStreamFrame(sid, error_code=8))
    assert c.goaway(timeout=1.0) is None
    c.close()
    assert closed(g, "resets") == 0


def test_resetting_answered_streams_costs_nothing(gw):
    """A client that cancels streams it was already answered (RST_STREAM after END_STREAM: a browser
    leaving a page) does no work to the server: over the budget's burst, it stays connected."""
    g = gw(h2_resets_per_second=10)  # a burst of 20
    c = Raw(g)
    c.send(WindowUpdateFrame(0, window_increment=1 << 24))  # room for every answer on the connection
    sid = 1
    for batch in range(4):  # 200 resets in all, each of an answered stream
        ids = list(range(sid, sid + 100, 2))
        sid += 100
        c.send(*[HeadersFrame(i, data=c.headers_block("/api/v1/public/done"), flags=["END_HEADERS", "END_STREAM"])
                 for i in ids])
        ended, deadline = set(), time.monotonic() + 10
        while len(ended) < len(ids) and time.monotonic() < deadline:
            ended |= {f.stream_id for f in c.frames(timeout=0.2) if "END_STREAM" in f.flags}
        assert ended == set(ids), "batch %d: %d of %d answered" % (batch, len(ended), len(ids))
        c.send(*[RstStreamFrame(i, error_code=8) for i in ids])
    assert c.goaway(timeout=1.0) is None
    c.send(HeadersFrame(sid, data=c.headers_block("/api/v1/public/after"), flags=["END_HEADERS", "END_STREAM"]))
    assert any(f.stream_id == sid and "END_STREAM" in f.flags for f in c.frames(timeout=1.0))
    c.close()
    assert closed(g, "resets") == 0


@pytest.mark.parametrize("kind", ["ping", "settings", "priority", "unknown"])
def test_control_frame_flood_gets_goaway(gw, kind):
    g = gw(h2_control_frames_per_second=20)
    c = Raw(g, tls=False)
    if kind == "ping":
        f = PingFrame(0, opaque_data=b"12345678")
    elif kind == "settings":
        f = SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100})
    elif kind == "priority":
        f = struct.pack(">I", 5)[1:] + bytes([2, 0]) + struct.pack(">I", 3) + struct.pack(">IB", 1, 16)
    else:
        f = struct.pack(">I", 4)[1:] + bytes([0x77, 0]) + struct.pack(">I", 0) + b"abcd"
    c.send(*[f] * 200)
    ga = c.goaway()
    c.close()
    assert ga is not None and ga.error_code == ENHANCE_YOUR_CALM, (kind, ga)
    assert closed(g, "control_frames") == 1
    assert "skipping frame" not in g.stderr()  # h2o prints a line per unknown frame; the guard swallows them
    assert served(g)


def test_unknown_frames_are_ignored_quietly(gw):
    g = gw()
    c = Raw(g, tls=False)
    unknown = struct.pack(">I", 4)[1:] + bytes([0x77, 0]) + struct.pack(">I", 0) + b"abcd"
    c.send(*[unknown] * 5, HeadersFrame(1, data=c.headers_block("/api/v1/public/u"), flags=["END_HEADERS", "END_STREAM"]))
    got = c.frames(timeout=2.0)
    c.close()
    assert any(isinstance(f, HeadersFrame) and f.stream_id == 1 for f in got), got
    assert "skipping frame" not in g.stderr()


def test_continuation_flood_gets_goaway(gw):
    g = gw(header_bytes="4k")
    c = Raw(g)
    block = c.headers_block("/api/v1/public/c")
    frames = [HeadersFrame(1, data=block, flags=["END_STREAM"])]
    frames += [ContinuationFrame(1, data=b"\x00" * 16384)] * 20  # endless, never END_HEADERS
    c.send(*frames)
    ga = c.goaway()
    c.close()
    assert ga is not None and ga.error_code == ENHANCE_YOUR_CALM, ga
    assert closed(g, "header_block") == 1
    assert served(g)


def test_trickled_body_gets_goaway(gw):
    g = gw(body_timeout="1s")
    c = Raw(g)
    c.send(HeadersFrame(1, data=c.headers_block("/api/v1/public/b", [("content-length", "100")]), flags=["END_HEADERS"]))
    ga = None
    for _ in range(12):  # a byte every 250 ms: 3 s in all
        if not c.send(DataFrame(1, data=b"x")):
            break
        ga = c.goaway(timeout=0.25)
        if ga is not None:
            break
    c.close()
    assert ga is not None and ga.error_code == ENHANCE_YOUR_CALM, ga
    assert closed(g, "body_timeout") == 1


def test_slow_reader_is_cut(gw):
    """A client that asks for a big answer and reads none of it is closed after limits.send_timeout."""
    g = gw(send_timeout="1s")
    raw = socket.create_connection(("127.0.0.1", g.plain_port), timeout=5)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.sendall(b"GET /api/v1/public/big?size=33554432 HTTP/1.1\r\nHost: t\r\n\r\n")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and closed(g, "send_timeout") == 0:
        time.sleep(0.2)
    assert closed(g, "send_timeout") == 1
    raw.close()
    assert served(g)


def test_idle_connection_before_any_request_is_closed(gw):
    g = gw(handshake_timeout="1s")
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", g.tls_port), timeout=5)
    s2 = socket.create_connection(("127.0.0.1", g.plain_port), timeout=5)
    assert s.recv(1) == b""  # closed without a TLS handshake ever starting
    assert s2.recv(1) == b""
    took = time.monotonic() - t0
    s.close()
    s2.close()
    assert 0.9 <= took <= 3.0, took
    assert closed(g, "handshake_timeout") == 2


def test_connections_per_address_are_capped(gw):
    g = gw(connections_per_ip=5, new_connections_per_ip=0)
    held = [H2Conn(g.tls_port) for _ in range(5)]
    try:
        assert refused(g)
        assert closed(g, "per_ip") == 1
        assert served(g, source="127.0.0.2")  # another address is not affected
        assert held[0].request("GET", "/api/v1/public/held").status_code == 200
    finally:
        for c in held:
            c.close()
    time.sleep(0.3)
    assert served(g, source="127.0.0.1")  # closed connections no longer count


def test_new_connections_per_address_are_rate_limited(gw):
    g = gw(new_connections_per_ip=5)  # bursts of 10
    t0 = time.monotonic()
    n = sum(refused(g) for _ in range(30))
    took = time.monotonic() - t0
    admitted = 30 - n  # 30 in a row: the burst (10) and what 5/s refill meanwhile get through
    assert 10 <= admitted <= 10 + 5 * took + 1, (admitted, took)
    assert closed(g, "connect_rate") == n
    assert served(g, source="127.0.0.2")
    assert g.stderr().count("over limits.new_connections_per_ip") <= 3  # not a line per refusal


def test_open_connections_metric_and_check(gw, hegate_bin, tmp_path):
    g = gw()
    held = [H2Conn(g.tls_port) for _ in range(3)]
    try:
        assert g.metrics().value("hegate_connections_open") >= 3
    finally:
        for c in held:
            c.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def read_bytes(pid):
    """Bytes the process has read from any descriptor (its clients' and its upstreams' sockets)."""
    with open("/proc/%d/io" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def test_slow_readers_hold_bounded_memory(gw, hegate_bin):
    """Ten clients ask for 32 MB each and read nothing: the gateway reads about limits.response_buffer_bytes
    of each answer from the upstream (plus the socket buffers), not the answers, and holds no more."""
    g = gw(response_buffer_bytes="256k", send_timeout="30s")
    rss0, read0 = rss_kib(g.proc.pid), read_bytes(g.proc.pid)
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", g.plain_port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /api/v1/public/big?size=33554432 HTTP/1.1\r\nHost: t\r\n\r\n")
        socks.append(s)
    time.sleep(3)  # unchecked, the back end would have handed the gateway most of 320 MB by now
    read = (read_bytes(g.proc.pid) - read0) / 2**20
    grown = (rss_kib(g.proc.pid) - rss0) / 1024
    for s in socks:
        s.close()
    # what may be read per connection: what the kernel takes into the client's send buffer (at most
    # tcp_wmem's maximum), the gateway's own buffers (2 x 256 KiB) and the upstream socket's (2 x 256 KiB)
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem_max = int(f.read().split()[2]) / 2**20
    bound = 10 * (wmem_max + 1.0)
    assert read < bound < 160, "the gateway read %.1f MiB of the answers (bound %.1f MiB)" % (read, bound)
    if not sanitized(hegate_bin):  # ASan's allocator keeps freed memory resident (its quarantine)
        assert grown < 32, "RSS grew %.1f MiB" % grown
    assert served(g)
