"""The folder contract (README "Folders"), as scripts/check_layers.py enforces it in `make test`:
the real tree passes, and each rule fails on a small tree that breaks it (so the check can fail)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CHECK = os.path.join(ROOT, "scripts", "check_layers.py")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import check_layers  # noqa: E402


def tree(tmp_path, files):
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(tmp_path)


def run(root):
    return subprocess.run([sys.executable, CHECK, "--graph", root], capture_output=True, text=True, timeout=60)


GOOD = {
    "gateway/gateway.h": '#include "routes/routes.h"\n#include "auth/auth.h"\n',
    "gateway/bearer.c": '#include "gateway/gateway.h"\nint f(void) { return auth_verify_bearer_ref(0); }\n',
    "gateway/main.c": '#include "auth/http/http.h"\n#include "qr/http/http.h"\n',
    "routes/routes.h": "",
    "auth/auth.h": "auth_reason_t auth_verify_bearer_ref(int);\n",
    "auth/internal.h": "",
    "auth/jwt.c": '#include "auth/internal.h"\nauth_reason_t auth_verify_bearer_ref(int x)\n{ return x; }\n',
    "auth/http/http.h": '#include "gateway/gateway.h"\n',
    "qr/qr.h": "#include <openssl/evp.h>\n",
    "qr/http/http.h": '#include "gateway/gateway.h"\n#include "qr/qr.h"\n',
    "tests/unit/t.c": '#include "auth/internal.h"\nint g(void) { return auth_verify_bearer(0); }\n',
}


def test_the_real_tree_keeps_the_contract():
    r = run(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    # the shape the README draws: gateway depends on routes and auth's core, never on a family
    assert "gateway/     -> auth/, routes/" in r.stdout, r.stdout


def test_a_good_tree_passes(tmp_path):
    r = run(tree(tmp_path, GOOD))
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("name,files,expect", [
    ("cycle", {"routes/routes.h": '#include "gateway/gateway.h"\n'}, "include cycle between folders"),
    ("cycle through a subfolder", {"auth/jwt.c": '#include "auth/http/http.h"\n'}, "include cycle between folders"),
    ("private header", {"qr/http/x.c": '#include "auth/internal.h"\n'}, "a private header of auth/"),
    ("private _internal header", {"auth/http/store_internal.h": "", "qr/http/y.c": '#include "auth/http/store_internal.h"\n'},
     "a private header of auth/http/"),
    ("qr core includes h2o", {"qr/render.c": "#include <h2o.h>\n"}, "qr's core includes h2o.h"),
    ("qr core includes hiredis", {"qr/render.c": "#include <hiredis/hiredis.h>\n"}, "qr's core includes hiredis/"),
    ("qr core includes auth", {"qr/render.c": '#include "auth/auth.h"\n'}, "qr's core includes auth/auth.h"),
    ("a second bearer check", {"qr/http/z.c": "void h(void) {\n    auth_verify_bearer(1);\n}\n"},
     "qr/http/z.c:2: authenticates a bearer token itself"),
])
def test_each_rule_fails_when_broken(tmp_path, name, files, expect):
    r = run(tree(tmp_path, dict(GOOD, **files)))
    assert r.returncode == 1, (name, r.stdout)
    assert expect in r.stdout, (name, r.stdout)


def test_main_may_wire_everything_and_comments_do_not_count(tmp_path):
    files = dict(GOOD, **{
        "gateway/main.c": '#include "auth/http/http.h"\n#include "qr/http/http.h"\n#include "auth/internal.h"\n',
        "qr/http/doc.c": "/* not auth_verify_bearer(x) here\n   nor auth_verify_bearer_ref(y) */\n// auth_verify_bearer(z)\n",
    })
    errors, _ = check_layers.check(tree(tmp_path, files))
    # main.c's edges are left out of the cycle rule, but private headers stay private even to it
    assert errors == ["gateway/main.c:3: includes auth/internal.h, a private header of auth/"], errors
