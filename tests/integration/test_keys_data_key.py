"""`hegate keys generate` also makes the data key (keys.dir/data.key: AES-256 for ID and card numbers at rest,
auth/sealed.c) when there is none: 64 hex digits, mode 0600, never printed; an existing one is never
overwritten, and one open to group/others is refused rather than replaced. The key it makes is the one
`hegate user add` then seals with (it does not make another)."""

import os
import re
import stat
import subprocess

import yaml


def keys(hegate_bin, d):
    return subprocess.run([hegate_bin, "keys", "generate", "--dir", str(d)], capture_output=True, timeout=30)


def test_generate_makes_the_data_key_once(hegate_bin, tmp_path):
    d = tmp_path / "keys"
    p = keys(hegate_bin, d)
    assert p.returncode == 0, p.stderr
    f = d / "data.key"
    st = os.stat(f)
    assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_ISREG(st.st_mode)
    text = f.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", text), len(text)
    assert text.strip() not in (p.stdout + p.stderr).decode()  # never printed
    assert b"new data key" in p.stdout
    # the token and code keys are there too, and a second run keeps all three
    assert list((d / "token").glob("*.pem")) and list((d / "code").glob("*.pem"))
    p = keys(hegate_bin, d)
    assert p.returncode == 0, p.stderr
    assert b"keeping the existing data key" in p.stdout
    assert f.read_text() == text and os.stat(f).st_ino == st.st_ino
    # two directories, two different keys
    p = keys(hegate_bin, tmp_path / "other")
    assert p.returncode == 0 and (tmp_path / "other" / "data.key").read_text() != text


def test_generate_never_overwrites_an_existing_data_key(hegate_bin, tmp_path):
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    mine = "ab" * 32 + "\n"
    f = d / "data.key"
    f.write_text(mine)
    os.chmod(f, 0o600)
    p = keys(hegate_bin, d)
    assert p.returncode == 0, p.stderr
    assert f.read_text() == mine and b"keeping" in p.stdout
    assert list((d / "token").glob("*.pem"))  # the signing keys were still made


def test_generate_refuses_an_unsafe_or_broken_data_key(hegate_bin, tmp_path):
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    f = d / "data.key"
    f.write_text("cd" * 32 + "\n")
    os.chmod(f, 0o644)
    p = keys(hegate_bin, d)
    assert p.returncode == 1 and b"chmod 600" in p.stderr, p.stderr
    assert f.read_text() == "cd" * 32 + "\n" and stat.S_IMODE(os.stat(f).st_mode) == 0o644  # left as it was
    assert b"cd" * 32 not in p.stdout + p.stderr
    os.chmod(f, 0o600)
    f.write_text("not a key\n")
    p = keys(hegate_bin, d)
    assert p.returncode == 1 and b"not 64 hex digits" in p.stderr, p.stderr
    assert f.read_text() == "not a key\n"


def test_user_add_seals_with_the_generated_key(hegate_bin, tmp_path, redis_url):
    """`hegate user add` uses the data key `keys generate` made (it would make its own if there were none)."""
    d = tmp_path / "keys"
    assert keys(hegate_bin, d).returncode == 0
    before = (d / "data.key").read_text()
    cfg = tmp_path / "hegate.yaml"
    cfg.write_text(yaml.safe_dump({
        "issuer": "https://hegate.test", "listen": [{"host": "127.0.0.1", "port": 1}],
        "admin": {"listen": "127.0.0.1:2"}, "redis": {"url": redis_url, "timeout": "500ms"},
        "keys": {"dir": str(d)}, "routes": []}))
    p = subprocess.run([hegate_bin, "user", "add", "-c", str(cfg), "--phone", "13911112222", "--name", "李四",
                        "--id-number", "230204199002021234", "--password-stdin"],
                       input=b"a long enough password\n", capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert (d / "data.key").read_text() == before
