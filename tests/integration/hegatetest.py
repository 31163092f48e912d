"""
tests/integration/hegatetest.py — helpers shared by the integration tests (fixtures live in conftest.py).

  free_port()            a currently unused TCP port on 127.0.0.1 (never handed out twice per run)
  route(...)             one route dict for a gateway config (SPEC §2), public by default
  assert_problem(r, ..)  the response is an RFC 9457 problem+json as SPEC §4 defines it
  parse_prometheus(txt)  a strict parser/validator of the Prometheus text format (0.0.4)
  H2Conn                 a minimal blocking HTTP/2 client (python3-h2) that exposes the connection:
                         several requests on one connection, and whether the server sent GOAWAY
  curl(...)              runs curl, returns (status, http_version, body)
Nothing here binds anything but 127.0.0.1.
"""

import json
import math
import os
import random
import re
import socket
import ssl
import subprocess
import tempfile
import time

import h2.config
import h2.connection
import h2.events

# ---------------------------------------------------------------------------------------------
# ports

_handed_out = set()


# Ports for the servers tests start: below the kernel's ephemeral range (32768-60999 by default), so that
# no outgoing connection (this suite's, or another suite's running beside it) can take one between the
# choice and the server's bind; and reserved across processes (a file per port, O_EXCL) so that two
# suites on one machine never hand out the same port within PORT_LEASE_S.
PORT_RANGE = (25000, 32000)  # beside: redis_harness.c 10000-11999 (+10000 bus), cluster_port() 12000-14999 (+10000)
PORT_DIR = os.path.join(tempfile.gettempdir(), "hegate-test-ports")
PORT_LEASE_S = 300


def reserve_port(port):
    os.makedirs(PORT_DIR, exist_ok=True)
    path = os.path.join(PORT_DIR, str(port))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        try:
            if time.time() - os.stat(path).st_mtime < PORT_LEASE_S:
                return False
            os.utime(path)  # a stale lease (its suite is long gone): take it over
            return True
        except OSError:
            return False


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, that we have not used, and that no other
    test suite on this machine has reserved in the last PORT_LEASE_S seconds."""
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(*PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if reserve_port(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def wait_port(port, timeout=5.0, host="127.0.0.1", proc=None):
    """Waits until HOST:PORT accepts a TCP connection. False on timeout or if PROC exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def connect_refused(host, port, timeout=1.0):
    """True if a TCP connect to HOST:PORT is actively refused."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# config


def route(name, prefix, upstreams, **kw):
    """A public route (scopes: []) as SPEC §2 writes it; keyword arguments add/override keys."""
    r = {"name": name, "prefix": prefix, "upstreams": list(upstreams), "scopes": []}
    r.update(kw)
    return r


# ---------------------------------------------------------------------------------------------
# problem+json (SPEC §4)

PROBLEM_SLUGS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 413: "too-large", 429: "quota-exceeded", 431: "headers-too-large",
    502: "bad-gateway", 503: "unavailable", 504: "gateway-timeout",
}


def header(resp, name):
    """A response header from an httpx response, an H2Response or a dict."""
    return resp.headers.get(name)


def assert_problem(resp, status, slug=None):
    """RESP is the gateway's own problem+json error with STATUS; returns the parsed body."""
    slug = slug or PROBLEM_SLUGS[status]
    body = resp.content if hasattr(resp, "content") else resp.body
    assert resp.status_code == status, "expected %d, got %d: %r" % (status, resp.status_code, body[:300])
    ctype = header(resp, "content-type") or ""
    assert ctype.split(";")[0].strip().lower() == "application/problem+json", \
        "content-type %r, body %r" % (ctype, body[:300])
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError("problem body is not JSON: %r" % body[:300])
    assert isinstance(doc, dict), doc
    assert doc.get("type") == "https://hegate.dev/problems/" + slug, doc
    assert isinstance(doc.get("title"), str) and doc["title"], doc
    assert doc.get("status") == status and type(doc.get("status")) is int, doc
    assert isinstance(doc.get("detail"), str), doc
    rid = header(resp, "x-request-id")
    assert rid, "error response without x-request-id"
    assert doc.get("request_id") == rid, (doc, rid)
    return doc


REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# ---------------------------------------------------------------------------------------------
# Prometheus text format 0.0.4, strictly

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_SAMPLE_RE = re.compile(r"^(" + _NAME + r")(\{.*\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$")
_LABEL_RE = re.compile(r'\s*(' + _LNAME + r')\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class PromError(AssertionError):
    pass


def _parse_value(s, lineno):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.match(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", s):
        raise PromError("line %d: bad value %r" % (lineno, s))
    return float(s)


def _parse_labels(s, lineno):
    labels = {}
    inner = s[1:-1]
    pos = 0
    while pos < len(inner):
        m = _LABEL_RE.match(inner, pos)
        if not m or m.end() == pos:
            raise PromError("line %d: bad labels %r" % (lineno, s))
        name, raw = m.group(1), m.group(2)
        if name in labels:
            raise PromError("line %d: duplicate label %r" % (lineno, name))
        labels[name] = raw.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        pos = m.end()
    return labels


class Metrics:
    def __init__(self, types, samples):
        self.types = types          # family -> type
        self.samples = samples      # [(name, labels, value)]

    def find(self, name, **labels):
        return [(n, l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(val) for k, val in labels.items())]

    def value(self, name, **labels):
        """Sum of the samples NAME whose labels include LABELS (0.0 when there is none)."""
        return sum(v for _, _, v in self.find(name, **labels))

    def has(self, name, **labels):
        return bool(self.find(name, **labels))


def parse_prometheus(text):
    """Parses and validates TEXT; raises PromError (an AssertionError) on anything malformed."""
    if text and not text.endswith("\n"):
        raise PromError("text does not end with a newline")
    types, helps, samples, seen = {}, set(), [], set()
    sampled = set()  # families that already have samples
    done_families = set()
    current = None

    def family(name):
        if name in types:
            return name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[: -len(suf)]) in ("histogram", "summary"):
                if suf == "_bucket" and types[name[: -len(suf)]] != "histogram":
                    continue
                return name[: -len(suf)]
        return name

    for lineno, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        if line.strip() == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 3 or not re.match("^" + _NAME + "$", parts[2]):
                    raise PromError("line %d: bad %s line %r" % (lineno, parts[1], line))
                name = parts[2]
                if name in sampled:
                    raise PromError("line %d: %s for %s after its samples" % (lineno, parts[1], name))
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3].strip() not in _TYPES:
                        raise PromError("line %d: bad TYPE %r" % (lineno, line))
                    if name in types:
                        raise PromError("line %d: second TYPE for %s" % (lineno, name))
                    types[name] = parts[3].strip()
                else:
                    if name in helps:
                        raise PromError("line %d: second HELP for %s" % (lineno, name))
                    helps.add(name)
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise PromError("line %d: not a sample line: %r" % (lineno, line))
        name, lab, val = m.group(1), m.group(2), m.group(3)
        labels = _parse_labels(lab, lineno) if lab else {}
        value = _parse_value(val, lineno)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise PromError("line %d: duplicate series %s%s" % (lineno, name, lab or ""))
        seen.add(key)
        fam = family(name)
        if name.startswith("hegate_") and fam not in types:
            raise PromError("line %d: %s has no # TYPE line before it" % (lineno, name))
        if fam != current:
            if fam in done_families:
                raise PromError("line %d: samples of %s are not contiguous" % (lineno, fam))
            if current is not None:
                done_families.add(current)
            current = fam
        sampled.add(fam)
        t = types.get(fam)
        if t == "counter" and not (value >= 0):
            raise PromError("line %d: negative counter %s" % (lineno, line))
        if t == "histogram":
            if name == fam + "_bucket":
                if "le" not in labels:
                    raise PromError("line %d: bucket without le" % lineno)
            elif name not in (fam + "_sum", fam + "_count"):
                raise PromError("line %d: %s is not a histogram series of %s" % (lineno, name, fam))
        samples.append((name, labels, value))

    # histograms: per label set, buckets cumulative and +Inf == _count, _sum present
    for fam, t in types.items():
        if t != "histogram":
            continue
        groups = {}
        for n, l, v in samples:
            if n in (fam + "_bucket", fam + "_sum", fam + "_count"):
                rest = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
                g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
                if n == fam + "_bucket":
                    g["buckets"].append((_parse_value(l["le"], 0), v))
                elif n == fam + "_sum":
                    g["sum"] = v
                else:
                    g["count"] = v
        for rest, g in groups.items():
            where = "%s%s" % (fam, dict(rest))
            if not g["buckets"]:
                raise PromError("%s: no buckets" % where)
            les = [le for le, _ in g["buckets"]]
            if les != sorted(les) or len(set(les)) != len(les):
                raise PromError("%s: le values not strictly increasing: %s" % (where, les))
            counts = [c for _, c in g["buckets"]]
            if any(b < a for a, b in zip(counts, counts[1:])):
                raise PromError("%s: bucket counts decrease: %s" % (where, counts))
            if les[-1] != math.inf:
                raise PromError("%s: no +Inf bucket" % where)
            if g["count"] is None or g["sum"] is None:
                raise PromError("%s: _count or _sum missing" % where)
            if counts[-1] != g["count"]:
                raise PromError("%s: +Inf bucket %s != _count %s" % (where, counts[-1], g["count"]))
    return Metrics(types, samples)


# ---------------------------------------------------------------------------------------------
# a minimal HTTP/2 client that keeps one connection in view


class H2Response:
    def __init__(self, status, headers, body, stream_id):
        self.status_code = status
        self.headers = headers  # dict: lower-case name -> value (last one wins)
        self.body = body
        self.content = body
        self.stream_id = stream_id

    def json(self):
        return json.loads(self.body)


class H2Conn:
    """One HTTP/2 connection (TLS with ALPN h2, or h2c by prior knowledge)."""

    def __init__(self, port, tls=True, host="127.0.0.1", timeout=10.0):
        raw = socket.create_connection((host, port), timeout=timeout)
        self.local_port = raw.getsockname()[1]
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
            alpn = self.sock.selected_alpn_protocol()
            if alpn != "h2":
                raise AssertionError("ALPN selected %r, not h2" % alpn)
        else:
            self.sock = raw
        self.scheme = "https" if tls else "http"
        self.authority = "%s:%d" % (host, port)
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self._flush()
        self.goaway = None  # the ConnectionTerminated event, if the server sent GOAWAY

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, headers=(), body=b"", timeout=10.0, content_length=None):
        """One request; CONTENT_LENGTH declares a length other than len(BODY), in which case the
        stream is left open after BODY (the server must answer without the rest)."""
        if self.goaway is not None:
            raise ConnectionError("server sent GOAWAY earlier: %r" % self.goaway)
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", self.scheme), (":authority", self.authority), (":path", path)]
        hdrs += list(headers)
        declared = len(body) if content_length is None else content_length
        if declared:
            hdrs.append(("content-length", str(declared)))
        self.conn.send_headers(sid, hdrs, end_stream=not declared)
        off = 0
        while off < len(body):
            n = min(self.conn.max_outbound_frame_size, self.conn.local_flow_control_window(sid), len(body) - off)
            if n <= 0:
                raise RuntimeError("flow-control window exhausted (body too big for this helper)")
            self.conn.send_data(sid, body[off:off + n], end_stream=off + n == declared)
            off += n
        self._flush()
        status, rheaders, data, done = None, {}, bytearray(), False
        deadline = time.monotonic() + timeout
        while not done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete response on stream %d within %.1fs" % (sid, timeout))
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            for ev in self.conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    for k, v in ev.headers:
                        if k == ":status":
                            status = int(v)
                        else:
                            rheaders[k.lower()] = v
                elif isinstance(ev, h2.events.DataReceived):
                    if ev.stream_id == sid:
                        data += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    raise ConnectionError("stream %d reset by server (error %s)" % (sid, ev.error_code))
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev
                    if ev.last_stream_id is None or ev.last_stream_id < sid:
                        raise ConnectionError("server sent GOAWAY: %r" % ev)
            self._flush()
        return H2Response(status, rheaders, bytes(data), sid)

    def close(self):
        try:
            self.conn.close_connection()
            self._flush()
        except Exception:
            pass
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# curl


def curl(*args, timeout=15):
    """Runs curl with ARGS (no proxy, silent); returns (http_code, http_version, body bytes)."""
    marker = b"\n@@CURL@@"
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout - 2),
           "-w", marker.decode() + "%{http_code} %{http_version}"] + list(args)
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("curl %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    body, _, tail = p.stdout.rpartition(marker)
    code, version = tail.decode().split()
    return int(code), version, body


_sanitized = {}


def sanitized(path):
    """True for an AddressSanitizer build (`make asan`): libfaketime preloaded into one hangs in ASan's
    start-up, so the tests that move a gateway's clock run in `make integration` only."""
    if path not in _sanitized:
        with open(path, "rb") as f:
            _sanitized[path] = b"__asan_init" in f.read()
    return _sanitized[path]
