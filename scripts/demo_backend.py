#!/usr/bin/python3
"""
scripts/demo_backend.py — the demo back end behind hegate (make run) and the integration tests.

An HTTP/1.1 keep-alive server (Python stdlib only) that answers every request with JSON echoing
what it received: back-end name, method, path (with query, exactly as received), every header
(lower-cased name -> value, a list when repeated), body length and SHA-256.  Query parameters,
under any path:
    ?delay_ms=N   sleep N ms before answering
    ?status=N     answer with status N (the echo JSON is still the body)
    ?size=N       answer with exactly N bytes of application/octet-stream instead of JSON
Control endpoints (talk to the back end directly, never through the gateway):
    GET /__demo/requests   the last requests seen (newest last) as JSON
    POST /__demo/reset     forget them
It binds 127.0.0.1 only.  Several ports in one process:
    demo_backend.py --name appointment --port 9101 --port 9102   (names appointment-1, appointment-2)
    demo_backend.py --listen appointment-1=9101 --listen query-1=9103
Prints "ready NAME PORT" per listener on stdout once listening.  SIGTERM/SIGINT: exit 0.
"""

import argparse
import hashlib
import json
import socket
import signal
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FAMILIES = {
    "appointment": "预约 — book, list and cancel appointments with city offices and hospitals",
    "query": "查询 — look up records: social insurance, housing fund, tax, permits",
    "service": "办事 — apply for and follow government services online",
    "payment": "payment — pay fees, fines and utility bills",
}
MAX_BODY = 64 * 1024 * 1024  # refuse to buffer more than this
MAX_DELAY_MS = 120_000
MAX_SIZE = 256 * 1024 * 1024
HISTORY = 1000


def family_of(name):
    for fam in FAMILIES:
        if name == fam or name.startswith(fam + "-") or name.startswith(fam + "s"):
            return fam
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # head and body are written separately: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server_version = "hegate-demo/1"
    sys_version = ""

    # quiet unless --verbose
    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s [%s] %s\n" % (self.server.backend_name, self.log_date_time_string(), fmt % args))

    def _read_body(self):
        te = (self.headers.get("transfer-encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until an empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
            return b"".join(chunks)
        length = self.headers.get("content-length")
        if length is None:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY:
            raise ValueError("bad content-length")
        return self.rfile.read(n)

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Demo-Backend", self.server.backend_name)
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304) and not (100 <= status < 200):
            self.wfile.write(body)

    def _handle(self):
        try:
            body = self._read_body()
        except (ValueError, ConnectionError):
            self.close_connection = True
            self._send(400, b'{"error":"bad body"}', "application/json")
            return
        srv = self.server
        split = urlsplit(self.path)

        if split.path == "/__demo/requests" and self.command == "GET":
            with srv.lock:
                hist = list(srv.history)
            self._send(200, json.dumps({"backend": srv.backend_name, "requests": hist}).encode(), "application/json")
            return
        if split.path == "/__demo/reset" and self.command == "POST":
            with srv.lock:
                srv.history.clear()
            self._send(200, b'{"reset":true}', "application/json")
            return

        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            if k in headers:
                if isinstance(headers[k], list):
                    headers[k].append(v)
                else:
                    headers[k] = [headers[k], v]
            else:
                headers[k] = v
        echo = {
            "backend": srv.backend_name,
            "port": srv.server_address[1],
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        fam = family_of(srv.backend_name)
        if fam:
            echo["family"] = fam
            echo["description"] = FAMILIES[fam]
        with srv.lock:
            srv.history.append(echo)

        q = parse_qs(split.query)

        def qint(name, lo, hi):
            try:
                v = int(q[name][-1])
            except (KeyError, ValueError, IndexError):
                return None
            return v if lo <= v <= hi else None

        delay = qint("delay_ms", 0, MAX_DELAY_MS)
        if delay:
            time.sleep(delay / 1000.0)
        status = qint("status", 100, 599) or srv.default_status
        if status < 200:  # informational codes cannot be a final answer
            status = 200
        size = qint("size", 0, MAX_SIZE)
        if size is not None:
            self._send(status, b"x" * size, "application/octet-stream")
            return
        self._send(status, json.dumps(echo, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def __getattr__(self, name):
        # do_GET, do_POST, do_PUT, do_PATCH, do_DELETE, do_HEAD, do_OPTIONS, ... all echo
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, name, port, default_status, verbose):
        self.backend_name = name
        self.default_status = default_status
        self.verbose = verbose
        self.history = deque(maxlen=HISTORY)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)


def main():
    ap = argparse.ArgumentParser(description="hegate demo back end (echoes requests as JSON)")
    ap.add_argument("--port", type=int, action="append", default=[], help="port to listen on (repeatable)")
    ap.add_argument("--name", default=None, help="back-end name, e.g. appointment-1 (suffixed -1, -2.. with several ports)")
    ap.add_argument("--listen", action="append", default=[], metavar="NAME=PORT", help="one named listener (repeatable)")
    ap.add_argument("--status", type=int, default=200, help="status answered when the request has no ?status=")
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = ap.parse_args()

    listeners = []
    for item in args.listen:
        name, _, port = item.rpartition("=")
        if not name or not port.isdigit():
            ap.error("--listen wants NAME=PORT, got %r" % item)
        listeners.append((name, int(port)))
    if args.port:
        base = args.name or "backend"
        if len(args.port) == 1:
            listeners.append((base, args.port[0]))
        else:
            listeners += [("%s-%d" % (base, i + 1), p) for i, p in enumerate(args.port)]
    if not listeners:
        ap.error("give --port or --listen")

    servers = [Server(n, p, args.status, args.verbose) for n, p in listeners]
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        print("ready %s %d" % (s.backend_name, s.server_address[1]), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    for s in servers:
        s.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
