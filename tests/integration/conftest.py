"""
tests/integration/conftest.py — fixtures for the hegate integration tests.

Run:  HEGATE_BIN=$PWD/build/hegate /usr/bin/python3 -m pytest tests/integration   (make integration)

  hegate_bin   absolute path of the binary under test (HEGATE_BIN, else build/hegate)
  tls_cert     a self-signed P-256 certificate (scripts/devcert.sh): (cert_path, key_path)
  redis_url    a private redis-server on a free 127.0.0.1 port for the whole run
  backend      factory: backend("name", status=None) -> a scripts/demo_backend.py process
  gateway      factory: gateway(routes=[...], limits=..., extra=...) -> a running hegate,
               healthy on its admin port; SIGTERMed at teardown, which asserts exit status 0

Every process listens on 127.0.0.1 only, is started with PR_SET_PDEATHSIG (it dies with pytest),
and every wait is bounded. A per-test watchdog ends the run if one test hangs past 90 s (a test marked
@pytest.mark.watchdog(seconds) sets its own).
"""

import ctypes
import faulthandler
import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest
import yaml

from hegatetest import free_port, parse_prometheus, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PY = "/usr/bin/python3"
DEMO = os.path.join(ROOT, "scripts", "demo_backend.py")
TEST_TIMEOUT = 90
LSAN_SUPP = os.path.join(HERE, "lsan.supp")

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: SIGKILL this child when pytest goes away, whatever the reason.
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def spawn(argv, stdout, stderr, **kw):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            preexec_fn=_die_with_parent, close_fds=True, **kw)


def tail(path, n=6000):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "(no %s)" % path
    return data[-n:].decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# watchdog and failure reports


def pytest_configure(config):
    config.addinivalue_line("markers", "watchdog(seconds): this test's own watchdog, instead of TEST_TIMEOUT")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    mark = item.get_closest_marker("watchdog")
    faulthandler.dump_traceback_later(mark.args[0] if mark else TEST_TIMEOUT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


# --------------------------------------------------------------------------------------------
# session-wide things


@pytest.fixture(scope="session")
def hegate_bin():
    path = os.environ.get("HEGATE_BIN") or os.path.join(ROOT, "build", "hegate")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail("hegate binary not found at %s (build it with `make`, or set HEGATE_BIN)" % path)
    return path


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run([os.path.join(ROOT, "scripts", "devcert.sh"), str(d)], check=True,
                   capture_output=True, timeout=30)
    return str(d / "cert.pem"), str(d / "key.pem")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server; the gateway of issue 3 may not use it yet, later issues will."""
    exe = shutil.which("redis-server")
    port = free_port()
    if not exe:
        yield "redis://127.0.0.1:%d/0" % port  # nothing there: the gateway must cope
        return
    d = tmp_path_factory.mktemp("redis")
    log = open(d / "redis.log", "wb")
    p = spawn([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
               "--dir", str(d), "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT)
    if not wait_port(port, 10, proc=p):
        p.kill()
        pytest.fail("redis-server did not start: %s" % tail(d / "redis.log"))
    yield "redis://127.0.0.1:%d/0" % port
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log.close()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory, hegate_bin):
    """A keys folder; filled by `hegate keys generate` if that command works already."""
    d = tmp_path_factory.mktemp("keys")
    try:
        subprocess.run([hegate_bin, "keys", "generate", "--dir", str(d)], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        pass
    return str(d)


# --------------------------------------------------------------------------------------------
# back ends


class Backend:
    def __init__(self, name, port, proc, log):
        self.name, self.port, self.proc, self.log = name, port, proc, log
        self.url = "http://127.0.0.1:%d" % port

    def requests(self):
        """What the back end received (newest last), asked directly, not through the gateway."""
        r = httpx.get(self.url + "/__demo/requests", timeout=5, trust_env=False)
        r.raise_for_status()
        return r.json()["requests"]

    def reset(self):
        httpx.post(self.url + "/__demo/reset", timeout=5, trust_env=False).raise_for_status()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def alive(self):
        return self.proc.poll() is None


@pytest.fixture
def backend(tmp_path):
    started = []

    def start(name="backend", status=None):
        port = free_port()
        log = str(tmp_path / ("backend-%s-%d.log" % (name, port)))
        argv = [PY, DEMO, "--name", name, "--port", str(port)]
        if status:
            argv += ["--status", str(status)]
        f = open(log, "wb")
        p = spawn(argv, stdout=subprocess.DEVNULL, stderr=f)
        f.close()
        b = Backend(name, port, p, log)
        started.append(b)
        if not wait_port(port, 10, proc=p):
            pytest.fail("demo back end %s did not start: %s" % (name, tail(log)))
        return b

    yield start
    for b in started:
        if b.proc.poll() is None:
            b.proc.terminate()
    for b in started:
        try:
            b.proc.wait(5)
        except subprocess.TimeoutExpired:
            b.proc.kill()
            b.proc.wait()


# --------------------------------------------------------------------------------------------
# the gateway


class Gateway:
    def __init__(self, dirpath, cfg, hegate_bin):
        self.dir = dirpath
        self.cfg = cfg
        self.bin = hegate_bin
        self.cfg_path = os.path.join(dirpath, "hegate.yaml")
        self.stdout_path = os.path.join(dirpath, "stdout.log")
        self.stderr_path = os.path.join(dirpath, "stderr.log")
        self.access_log_path = cfg.get("access_log")
        self.tls_port = next((l["port"] for l in cfg["listen"] if "tls" in l), None)
        self.plain_port = next((l["port"] for l in cfg["listen"] if "tls" not in l), None)
        self.admin_port = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
        self.https = "https://127.0.0.1:%d" % self.tls_port if self.tls_port else None
        self.http = "http://127.0.0.1:%d" % self.plain_port if self.plain_port else None
        self.admin = "http://127.0.0.1:%d" % self.admin_port
        self.proc = None
        self.returncode = None
        self.write_config(cfg)

    # config ---------------------------------------------------------------------------------
    def write_config(self, cfg_or_text):
        text = cfg_or_text if isinstance(cfg_or_text, str) else yaml.safe_dump(
            cfg_or_text, sort_keys=False, allow_unicode=True)
        if not isinstance(cfg_or_text, str):
            self.cfg = cfg_or_text
        tmp = self.cfg_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.cfg_path)

    def generation(self):
        """The configuration generation every thread serves (/readyz; 1 at start, +1 per completed reload)."""
        return httpx.get(self.admin + "/readyz", timeout=5, trust_env=False).json()["generation"]

    def reload(self, wait=True, timeout=10.0):
        """SIGHUP. With WAIT, returns once every thread serves the new configuration (the generation
        has moved on): a reload the gateway refuses fails here, so pass wait=False for those."""
        before = self.generation() if wait else None
        self.proc.send_signal(signal.SIGHUP)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while self.generation() == before:
            if time.monotonic() > deadline:
                pytest.fail("reload not complete %.0fs after SIGHUP (generation still %d); stderr:\n%s" % (
                    timeout, before, self.stderr()[-3000:]))
            time.sleep(0.02)

    # process --------------------------------------------------------------------------------
    def start(self, timeout=10.0):
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        env = dict(os.environ)
        # under ASan/LSan: see lsan.supp (h2o's thread-local recycle lists, nothing of ours)
        env["LSAN_OPTIONS"] = ":".join(filter(None, [env.get("LSAN_OPTIONS"), "suppressions=" + LSAN_SUPP,
                                                     "print_suppressions=0"]))
        self.proc = spawn([self.bin, "-c", self.cfg_path], stdout=out, stderr=err, cwd=self.dir, env=env)
        out.close()
        err.close()
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("hegate exited with %s before it was healthy; stderr:\n%s"
                            % (self.proc.returncode, self.stderr()))
            try:
                r = httpx.get(self.admin + "/healthz", timeout=0.5, trust_env=False)
                if r.status_code == 200:
                    return self
                last = "status %d" % r.status_code
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.05)
        pytest.fail("hegate /healthz not 200 within %.0fs (last: %s); stderr:\n%s" % (timeout, last, self.stderr()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for the process to exit; returns its status (None if it is still running)."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=15.0):
        """SIGTERM and wait; returns the exit status (SIGKILLs and returns None if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait()
                self.returncode = None
                return None
        self.returncode = self.proc.returncode
        return self.returncode

    def alive(self):
        return self.proc.poll() is None

    # logs and helpers -----------------------------------------------------------------------
    def stderr(self):
        return tail(self.stderr_path, 200000)

    def stdout(self):
        return tail(self.stdout_path, 200000)

    def metrics(self):
        r = httpx.get(self.admin + "/metrics", timeout=5, trust_env=False)
        assert r.status_code == 200, r.status_code
        return parse_prometheus(r.text)

    def client(self, http2=False, **kw):
        kw.setdefault("timeout", 10)
        return httpx.Client(http2=http2, verify=False, trust_env=False, **kw)

    def h2c_client(self, **kw):
        """httpx speaking HTTP/2 by prior knowledge on the cleartext port."""
        kw.setdefault("timeout", 10)
        return httpx.Client(http1=False, http2=True, trust_env=False, **kw)


@pytest.fixture
def gateway(request, tmp_path, hegate_bin, tls_cert, redis_url, keys_dir):
    """Factory: gateway(routes, limits=None, extra=None, threads=2, start=True) -> Gateway.

    EXTRA is merged into the top level of the config (e.g. {"access_log": ...}); keys whose
    value is None are removed. Teardown SIGTERMs each gateway and asserts it exited 0."""
    made = []

    def make(routes, limits=None, extra=None, threads=2, start=True, tls=True, plain=True):
        d = tmp_path / ("gw%d" % len(made))
        d.mkdir()
        listen = []
        if tls:
            listen.append({"host": "127.0.0.1", "port": free_port(),
                           "tls": {"cert": tls_cert[0], "key": tls_cert[1]}})
        if plain:
            listen.append({"host": "127.0.0.1", "port": free_port()})
        cfg = {
            "issuer": "https://hegate.test",
            "threads": threads,
            "shutdown_timeout": "5s",
            "listen": listen,
            "admin": {"listen": "127.0.0.1:%d" % free_port()},
            "redis": {"url": redis_url, "timeout": "50ms"},
            "keys": {"dir": keys_dir},
            "access_log": str(d / "access.log"),
        }
        if limits:
            cfg["limits"] = limits
        cfg["routes"] = routes
        for k, v in (extra or {}).items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        g = Gateway(str(d), cfg, hegate_bin)
        made.append(g)
        if start:
            g.start()
        return g

    yield make

    problems = []
    for g in made:
        if g.proc is None:
            continue
        was_running = g.proc.poll() is None
        rc = g.stop()
        if _failed(request) or rc != 0:
            print("\n---- hegate stderr (%s) ----\n%s" % (g.dir, g.stderr()[-8000:]))
        if rc is None:
            problems.append("hegate (%s) did not exit within 15 s of SIGTERM" % g.dir)
        elif rc != 0:
            problems.append("hegate (%s) exited with status %s%s" % (
                g.dir, rc, "" if was_running else " (it had stopped before teardown)"))
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through WebDriver (python3-selenium + chromium-driver, from scripts/deps.sh)."""
    from selenium import webdriver
    exe, drv = shutil.which("chromium"), shutil.which("chromedriver")
    if not exe or not drv:
        pytest.fail("chromium and chromium-driver are required (scripts/deps.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--ignore-certificate-errors", "--user-data-dir=%s" % (tmp_path / "chromium")):
        opts.add_argument(a)
    service = webdriver.ChromeService(executable_path=drv, log_output=str(tmp_path / "chromedriver.log")) \
        if hasattr(webdriver, "ChromeService") else webdriver.chrome.service.Service(drv)
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(20)
    yield d
    d.quit()
