"""The command line (SPEC §1): --version, --help, `check -c FILE` (every error as FILE:LINE,
exit 1; unknown keys are errors)."""

import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(hegate_bin, *args, cwd=None):
    p = subprocess.run([hegate_bin] + list(args), capture_output=True, timeout=20, cwd=cwd)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def test_version(hegate_bin):
    rc, out = run(hegate_bin, "--version")
    assert rc == 0
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    assert version in out, out


def test_help(hegate_bin):
    rc, out = run(hegate_bin, "--help")
    assert rc == 0
    for word in ("check", "-c"):
        assert word in out, out


def test_unknown_command_fails(hegate_bin):
    rc, out = run(hegate_bin, "frobnicate")
    assert rc != 0 and out.strip()


GOOD = """\
issuer: https://hegate.test
threads: 1
listen:
  - host: 127.0.0.1
    port: 18443
    tls: { cert: tls/cert.pem, key: tls/key.pem }
  - { host: 127.0.0.1, port: 18080 }
admin: { listen: 127.0.0.1:19090 }
redis: { url: "redis://127.0.0.1:6390/0", timeout: 50ms }
keys: { dir: keys }
limits: { header_bytes: 16k, body_bytes: 1m, token_bytes: 8k }
rate_limits:
  per-ip: { key: ip, limit: 50, window: 1s }
routes:
  - name: query
    prefix: /api/v1/query
    methods: [GET]
    upstreams: [http://127.0.0.1:9103, http://127.0.0.1:9104/base]
    scopes: []
    timeout: 500ms
    retries: 1
    strip_prefix: true
"""


@pytest.fixture
def confdir(tmp_path, tls_cert):
    d = tmp_path / "conf"
    (d / "tls").mkdir(parents=True)
    (d / "keys").mkdir()
    for src, name in zip(tls_cert, ("cert.pem", "key.pem")):
        with open(src, "rb") as f:
            (d / "tls" / name).write_bytes(f.read())
    return d


def test_check_good(hegate_bin, confdir):
    (confdir / "good.yaml").write_text(GOOD)
    rc, out = run(hegate_bin, "check", "-c", str(confdir / "good.yaml"))
    assert rc == 0, out


def test_check_repo_dev_config(hegate_bin, tmp_path, tls_cert):
    """conf/hegate.yaml (what `make run` starts) is valid — checked in a copy of the layout
    scripts/run.sh makes (conf/ beside var/tls, var/keys), so it does not depend on the repo's var/."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "var" / "tls").mkdir(parents=True)
    (tmp_path / "var" / "keys").mkdir()
    for src, name in zip(tls_cert, ("cert.pem", "key.pem")):
        with open(src, "rb") as f:
            (tmp_path / "var" / "tls" / name).write_bytes(f.read())
    with open(os.path.join(ROOT, "conf", "hegate.yaml"), "rb") as f:
        (tmp_path / "conf" / "hegate.yaml").write_bytes(f.read())
    rc, out = run(hegate_bin, "check", "-c", str(tmp_path / "conf" / "hegate.yaml"))
    assert rc == 0, out


def _line_of(text, needle):
    return 1 + text[: text.index(needle)].count("\n")


# two independent errors, each on its own known line
BAD = GOOD.replace("threads: 1\n", "threads: lots\n").replace(
    "    upstreams: [http://127.0.0.1:9103, http://127.0.0.1:9104/base]\n",
    "    upstreams: [ftp://127.0.0.1:9103]\n")
BAD_LINES = [_line_of(BAD, "threads: lots"), _line_of(BAD, "ftp://")]  # 2 and 18


def test_check_bad_reports_every_error_with_line(hegate_bin, confdir):
    path = confdir / "bad.yaml"
    path.write_text(BAD)
    assert BAD_LINES == [2, 18]
    rc, out = run(hegate_bin, "check", "-c", str(path))
    assert rc == 1, "exit %d; output:\n%s" % (rc, out)
    for line in BAD_LINES:
        assert re.search(r"bad\.yaml:%d\b" % line, out), "no error at bad.yaml:%d in:\n%s" % (line, out)


def test_check_unknown_key(hegate_bin, confdir):
    text = GOOD.replace("    retries: 1\n", "    retries: 1\n    retires: 2\n")
    text = text.replace("limits: {", "colour: blue\nlimits: {")
    line2 = _line_of(text, "colour: blue")
    line = _line_of(text, "retires: 2")
    path = confdir / "unknown.yaml"
    path.write_text(text)
    rc, out = run(hegate_bin, "check", "-c", str(path))
    assert rc == 1, out
    assert re.search(r"unknown\.yaml:%d\b.*retires" % line, out), out
    assert re.search(r"unknown\.yaml:%d\b.*colour" % line2, out), out


@pytest.mark.parametrize("bad,needle", [
    ("routes:\n  - { name: a, prefix: api, upstreams: [http://127.0.0.1:1] }\n", "prefix"),
    ("routes:\n  - { name: a, prefix: /a, upstreams: [] }\n", "upstream"),
    ("routes:\n  - { name: a, prefix: /a, upstreams: [http://127.0.0.1:1], timeout: soon }\n", "timeout"),
    ("routes:\n  - { name: a, prefix: /a, upstreams: [http://127.0.0.1:1], rate_limit: [nope] }\n", "nope"),
    ("routes:\n  - { name: a, prefix: /a, upstreams: [http://127.0.0.1:1], methods: [FETCH] }\n", "FETCH"),
])
def test_check_route_errors(hegate_bin, confdir, bad, needle):
    head = GOOD[: GOOD.index("routes:\n")]
    text = head + bad
    path = confdir / "r.yaml"
    path.write_text(text)
    rc, out = run(hegate_bin, "check", "-c", str(path))
    assert rc == 1, out
    line = _line_of(text, bad.splitlines()[1])
    assert re.search(r"r\.yaml:%d\b" % line, out) and needle in out, out


def test_check_missing_file(hegate_bin, tmp_path):
    rc, out = run(hegate_bin, "check", "-c", str(tmp_path / "absent.yaml"))
    assert rc == 1 and "absent.yaml" in out


def test_serve_refuses_bad_config(hegate_bin, confdir):
    path = confdir / "bad.yaml"
    path.write_text(BAD)
    rc, out = run(hegate_bin, "-c", str(path))
    assert rc != 0
    assert re.search(r"bad\.yaml:2\b", out), out


GUARD_LIMITS = ("limits:\n  connections: 20000\n  connections_per_ip: 100\n  new_connections_per_ip: 20\n"
                "  handshake_timeout: 5s\n  head_timeout: 5s\n  body_timeout: 30s\n  idle_timeout: 20s\n"
                "  send_timeout: 15s\n  h2_resets_per_second: 50\n  h2_control_frames_per_second: 50\n"
                "  response_buffer_bytes: 128k\n  response_buffer_total: 16m\n  header_fields: 64\n")


def test_check_connection_guard_limits(hegate_bin, confdir):
    """The guard's limits (README "Under attack") are checked like the rest: a good set passes, each bad
    value is reported at its own line."""
    good = GOOD.replace("limits: { header_bytes: 16k, body_bytes: 1m, token_bytes: 8k }\n", GUARD_LIMITS)
    assert good != GOOD
    (confdir / "guard.yaml").write_text(good)
    rc, out = run(hegate_bin, "check", "-c", str(confdir / "guard.yaml"))
    assert rc == 0, out
    bad = (good.replace("connections_per_ip: 100", "connections_per_ip: -3")
           .replace("head_timeout: 5s", "head_timeout: 0s")
           .replace("h2_resets_per_second: 50", "h2_resets_per_second: lots")
           .replace("response_buffer_bytes: 128k", "response_buffer_bytes: 1k")
           .replace("header_fields: 64", "header_fields: many"))
    (confdir / "guard-bad.yaml").write_text(bad)
    rc, out = run(hegate_bin, "check", "-c", str(confdir / "guard-bad.yaml"))
    assert rc == 1, out
    for needle in ("connections_per_ip: -3", "head_timeout: 0s", "h2_resets_per_second: lots", "response_buffer_bytes: 1k",
                   "header_fields: many"):
        line = _line_of(bad, needle)
        assert re.search(r"guard-bad\.yaml:%d\b" % line, out), "no error at line %d (%s) in:\n%s" % (line, needle, out)
