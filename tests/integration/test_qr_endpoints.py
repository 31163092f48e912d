"""The city code's endpoints (SPEC §7.3): codes as text and images, the trust list as a JWS, verification
by role with single use across gateway nodes, offline credentials, revoke, scan history, redeem.

The verifier below is written from SPEC §7.1 alone (Python `cryptography`), independent of qr/."""

import base64
import hashlib
import json
import os
import subprocess
import time

import httpx
import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from hegatetest import route
from oauthtest import GATE_SECRET, add_user, clients, code_flow, hash_secret

N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
SCENES = {1: "transit", 2: "medical", 3: "payment", 4: "government", 5: "tourism"}
SCANNER_SECRET = "scanner-secret-" + "y" * 20


# ---- an independent HMT1 reader (SPEC §7.1) ------------------------------------------------------------


def b45decode(s):
    out = bytearray()
    for i in range(0, len(s), 3):
        chunk = s[i:i + 3]
        vals = [B45.index(c) for c in chunk]
        n = sum(v * 45 ** k for k, v in enumerate(vals))
        if len(chunk) == 3:
            assert n <= 0xFFFF
            out += bytes([n >> 8, n & 0xFF])
        else:
            assert len(chunk) == 2 and n <= 0xFF
            out.append(n)
    return bytes(out)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def parse(text):
    assert text.startswith("HMT1:") and len(text) == 311, len(text)
    b = b45decode(text[5:])
    assert len(b) == 204
    be = lambda o, n: int.from_bytes(b[o:o + n], "big")
    return {
        "raw": b, "version": b[0], "suite": b[1], "scene": b[2], "kid": b[3:7], "serial": be(7, 4),
        "cred_expires": be(11, 4), "pseudonym": b[15:23], "entitlements": b[23:31], "device_key": b[31:64],
        "issuer_sig": b[64:128], "gen": be(128, 4), "ttl": b[132], "counter": be(133, 3), "terminal": b[136:140],
        "device_sig": b[140:204],
    }


def key_id(pub):
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:4]


def check_sig(pub, sig, msg):
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    assert 1 <= r < N_P256 and 1 <= s <= N_P256 // 2, "high-S or out of range"
    pub.verify(encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))


def independent_verify(text, issuer_keys, now=None):
    """issuer_keys: {kid bytes: public key}. Raises on any failure; returns the fields."""
    c = parse(text)
    now = now or int(time.time())
    assert c["version"] == 1 and c["suite"] == 1 and c["scene"] in SCENES
    pub = issuer_keys[c["kid"]]
    check_sig(pub, c["issuer_sig"], c["raw"][:64])
    assert now <= c["cred_expires"]
    dev = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), c["device_key"])
    check_sig(dev, c["device_sig"], c["raw"][:140])
    assert c["gen"] - 20 <= now <= c["gen"] + c["ttl"] + 5
    return c


def tamper(text, offset):
    b = bytearray(parse(text)["raw"])
    b[offset] ^= 0x01
    out = ""
    for i in range(0, len(b) - 1, 2):
        n = b[i] * 256 + b[i + 1]
        out += B45[n % 45] + B45[(n // 45) % 45] + B45[n // 2025]
    return "HMT1:" + out


# ---- fixtures --------------------------------------------------------------------------------------------


def qr_clients(hegate_bin):
    h = hash_secret(hegate_bin, SCANNER_SECRET)
    cl = clients(hegate_bin)
    for cid, roles, scopes in (("clinic-1", ["medical"], ["qr.verify"]), ("shop-1", ["merchant"], ["qr.verify"]),
                               ("gov-1", ["government"], ["qr.verify"]), ("tour-1", ["tourism"], ["qr.verify"]),
                               ("paybackend", [], ["payment.redeem"])):
        c = {"id": cid, "secret_hash": h, "grants": ["client_credentials"], "scopes": scopes}
        if roles:
            c["roles"] = roles
        cl.append(c)
    return cl


@pytest.fixture
def qr(gateway, backend, hegate_bin, keys_dir):
    b = backend("query")

    def make():
        return gateway([route("query", "/api/v1/query", [b.url], scopes=["query"])],
                       extra={"clients": qr_clients(hegate_bin), "tokens": {"access_ttl": "5m"},
                              "qr": {"code_ttl": "60s", "credential_ttl": "72h", "skew": "20s"}}, start=False)

    g = make()
    phone, password, sub = add_user(hegate_bin, g.cfg_path, cards=("social:2302041990", "bus:88880001", "bank:6222020000001234"))
    g.start()
    with g.client(http2=True) as c:
        tok, _, _ = code_flow(c, g.https, phone, password, scope="openid qr")
    return {"g": g, "make": make, "sub": sub, "token": tok["access_token"], "keys_dir": keys_dir}


def scanner_token(g, cid="gate-line1", secret=GATE_SECRET):
    with g.client() as c:
        r = c.post(g.https + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


def auth(tok):
    return {"authorization": "Bearer " + tok}


def new_code(g, tok, scene="transit"):
    with g.client() as c:
        r = c.post(g.https + "/qr/v1/codes", json={"scene": scene}, headers=auth(tok))
    assert r.status_code == 200, r.text
    return r.json()


def verify(g, tok, code, **kw):
    with g.client() as c:
        body = {"code": code}
        body.update(kw)
        r = c.post(g.https + "/qr/v1/verify", json=body, headers=auth(tok))
    assert r.status_code == 200, r.text
    return r.json()


def code_keys(keys_dir):
    out = {}
    d = os.path.join(keys_dir, "code")
    for f in os.listdir(d):
        if f.endswith(".pem"):
            k = serialization.load_pem_private_key(open(os.path.join(d, f), "rb").read(), None).public_key()
            out[key_id(k)] = k
    return out


# ---- codes ---------------------------------------------------------------------------------------------------


def test_code_issued_and_independently_verified(qr):
    g = qr["g"]
    before = int(time.time())
    a = new_code(g, qr["token"])
    b = new_code(g, qr["token"])
    for body in (a, b):
        assert body["scene"] == "transit"
        c = independent_verify(body["code"], code_keys(qr["keys_dir"]))
        assert c["scene"] == 1 and c["ttl"] == 60
        assert body["expires_at"] == c["gen"] + 60 and body["refresh_after"] <= c["gen"] + 30
        assert before <= c["gen"] <= int(time.time())
        assert c["cred_expires"] <= int(time.time()) + 72 * 3600
    ca, cb = parse(a["code"]), parse(b["code"])
    # one online credential per resident and scene, the counter moving on
    assert ca["serial"] == cb["serial"] and ca["raw"][:128] == cb["raw"][:128] and cb["counter"] == ca["counter"] + 1
    # the transit entitlements and a pseudonym, nothing personal
    assert ca["entitlements"][0] >= 1 and ca["pseudonym"] != bytes(8)
    for secret in (qr["sub"].encode(), "张三".encode()):
        assert secret not in ca["raw"]
    assert g.metrics().value("hegate_qr_codes_issued_total", scene="transit") == 2
    # a tampered code is refused by the independent verifier too (it can fail)
    with pytest.raises((InvalidSignature, AssertionError)):
        independent_verify(tamper(a["code"], 40), code_keys(qr["keys_dir"]))


def test_first_burst_makes_one_credential(qr):
    """Many first requests at once (an app opening on a fresh phone, or several nodes) for a scene the
    resident has no credential for yet: every one gets a code, all on ONE new credential (one serial),
    not one credential each."""
    import concurrent.futures
    g = qr["g"]

    def one(_):
        with g.client(http2=True) as c:
            return c.post(g.https + "/qr/v1/codes", json={"scene": "medical"}, headers=auth(qr["token"]))

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(one, range(48)))
    assert all(r.status_code == 200 for r in rs), [(r.status_code, r.text[:200]) for r in rs if r.status_code != 200][:3]
    parsed = [parse(r.json()["code"]) for r in rs]
    assert len({p["serial"] for p in parsed}) == 1, sorted({p["serial"] for p in parsed})
    assert len({p["counter"] for p in parsed}) == len(parsed)  # every code its own counter value
    for r in rs[:3]:
        independent_verify(r.json()["code"], code_keys(qr["keys_dir"]))


def test_codes_need_a_resident_token_with_scope_qr(qr):
    g = qr["g"]
    with g.client() as c:
        assert c.post(g.https + "/qr/v1/codes", json={"scene": "transit"}).status_code == 401
        gate = scanner_token(g)
        assert c.post(g.https + "/qr/v1/codes", json={"scene": "transit"}, headers=auth(gate)).status_code == 403
        assert c.post(g.https + "/qr/v1/codes", json={"scene": "nope"}, headers=auth(qr["token"])).status_code == 400
        assert c.post(g.https + "/qr/v1/codes", content=b"{bad", headers=auth(qr["token"])).status_code == 400
        assert c.get(g.https + "/qr/v1/codes", headers=auth(qr["token"])).status_code == 405


def test_png_decodes_to_the_code(qr, tmp_path):
    g = qr["g"]
    keys = code_keys(qr["keys_dir"])
    with g.client() as c:
        for scene in ("transit", "medical"):
            r = c.get(g.https + "/qr/v1/codes/%s.png" % scene, headers=auth(qr["token"]))
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            p = tmp_path / ("%s.png" % scene)
            p.write_bytes(r.content)
            # ≥ 4 px per module, 4-module quiet zone: 57 + 8 modules
            w = int.from_bytes(r.content[16:20], "big")
            assert w % 65 == 0 and w // 65 >= 4
            z = subprocess.run(["zbarimg", "--raw", "-q", str(p)], capture_output=True, timeout=30)
            assert z.returncode == 0, z.stderr
            text = z.stdout.decode().rstrip("\n")
            fields = independent_verify(text, keys)
            assert SCENES[fields["scene"]] == scene
        r = c.get(g.https + "/qr/v1/codes/transit.svg", headers=auth(qr["token"]))
        assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml" and r.text.lstrip().startswith("<")
        assert c.get(g.https + "/qr/v1/codes/nope.png", headers=auth(qr["token"])).status_code == 404
        assert c.get(g.https + "/qr/v1/codes/transit.png").status_code == 401


# ---- trust list ----------------------------------------------------------------------------------------------


def test_trust_list_is_a_jws_over_the_jwks(qr, tmp_path):
    g = qr["g"]
    with g.client() as c:
        r = c.get(g.https + "/qr/v1/trust")
        assert r.status_code == 200
        jws = r.text
        jwks = c.get(g.https + "/.well-known/jwks.json").json()
    hdr = jwt.get_unverified_header(jws)
    assert hdr["alg"] == "ES256" and hdr["typ"] == "hmt1-trust"
    keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}
    body = jwt.api_jws.decode(jws, keys[hdr["kid"]].key, algorithms=["ES256"])
    doc = json.loads(body)
    assert abs(doc["issued_at"] - time.time()) < 10 and isinstance(doc["deny"], list)
    ck = code_keys(qr["keys_dir"])
    assert {bytes.fromhex(k["kid"]) for k in doc["keys"]} == set(ck)
    for k in doc["keys"]:
        pub = ck[bytes.fromhex(k["kid"])].public_numbers()
        assert b64u_dec(k["x"]) == pub.x.to_bytes(32, "big") and b64u_dec(k["y"]) == pub.y.to_bytes(32, "big")
        assert k["alg"] == "ES256" and "transit" in k["scenes"] and k["not_before"] <= time.time() <= k["not_after"]
    # a changed payload does not verify
    h, p, s = jws.split(".")
    bad = ".".join([h, b64u(json.dumps(dict(doc, deny=[1])).encode()), s])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.api_jws.decode(bad, keys[hdr["kid"]].key, algorithms=["ES256"])
    # `hegate qr verify --trust --jwks` accepts a fresh code with it (no gateway needed for that)
    (tmp_path / "trust.jws").write_text(jws)
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    code = new_code(g, qr["token"])["code"]
    p = subprocess.run([g.bin, "qr", "verify", "--trust", str(tmp_path / "trust.jws"), "--jwks", str(tmp_path / "jwks.json"),
                        "--role", "transit", code], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run([g.bin, "qr", "verify", "--trust", str(tmp_path / "trust.jws"), "--jwks", str(tmp_path / "jwks.json"),
                        "--role", "medical", code], capture_output=True, timeout=30)
    assert p.returncode == 1, p.stdout + p.stderr
    # the same trust list, later than gen + ttl + 5: expired
    late = str(parse(code)["gen"] + 66)
    p = subprocess.run([g.bin, "qr", "verify", "--trust", str(tmp_path / "trust.jws"), "--jwks", str(tmp_path / "jwks.json"),
                        "--role", "transit", "--now", late, code], capture_output=True, timeout=30)
    assert p.returncode == 1 and b"expired" in p.stdout + p.stderr, p.stdout + p.stderr


# ---- verify ----------------------------------------------------------------------------------------------------


def test_verify_once_then_replayed_across_nodes(qr):
    g = qr["g"]
    g2 = qr["make"]()
    g2.start()
    gate = scanner_token(g)
    code = new_code(g, qr["token"])["code"]
    r = verify(g, gate, code, terminal_id="gate-7")
    assert r["valid"] is True and r["scene"] == "transit" and r["scan_id"], r
    cl = r["claims"]
    assert set(cl) == {"pseudonym", "fare_class", "concessions", "transit_card"}, cl
    assert cl["transit_card"] == "****0001" and cl["pseudonym"] == parse(code)["pseudonym"].hex()
    assert "张" not in json.dumps(r, ensure_ascii=False)
    assert verify(g, gate, code) == {"valid": False, "reason": "replayed"}
    assert verify(g2, scanner_token(g2), code) == {"valid": False, "reason": "replayed"}
    # a fresh code is valid once on the second node first
    code2 = new_code(g2, qr["token"])["code"]
    assert verify(g2, gate, code2)["valid"] is True
    assert verify(g, gate, code2)["reason"] == "replayed"
    m = g.metrics()
    assert m.value("hegate_qr_verifications_total", result="valid") == 1
    assert m.value("hegate_qr_verifications_total", result="replayed") == 2


def test_wrong_role_does_not_burn_the_code(qr):
    g = qr["g"]
    code = new_code(g, qr["token"])["code"]
    clinic = scanner_token(g, "clinic-1", SCANNER_SECRET)
    assert verify(g, clinic, code) == {"valid": False, "reason": "wrong_scene"}
    assert verify(g, scanner_token(g), code)["valid"] is True
    # a medical code for the clinic: masked name, social card, no transit data
    med = new_code(g, qr["token"], "medical")["code"]
    r = verify(g, clinic, med)
    assert r["valid"] is True and r["claims"]["name"] == "张*" and r["claims"]["social_card"] == "******1990", r
    assert set(r["claims"]) == {"name", "social_card", "insurance_status"}
    # government: the name and a masked id number
    gov = new_code(g, qr["token"], "government")["code"]
    r = verify(g, scanner_token(g, "gov-1", SCANNER_SECRET), gov)
    assert r["claims"] == {"name": "张三", "id_number": "230***********123X"}, r
    # tourism accepts transit codes too
    r = verify(g, scanner_token(g, "tour-1", SCANNER_SECRET), new_code(g, qr["token"])["code"])
    assert r["valid"] is True and set(r["claims"]) == {"pseudonym", "entitlements"}


@pytest.mark.parametrize("offset,reason", [(0, "malformed"), (3, "unknown_key"), (20, "bad_issuer_signature"),
                                           (135, "bad_device_signature"), (150, "bad_device_signature")])
def test_tampered_byte(qr, offset, reason):
    g = qr["g"]
    gate = scanner_token(g)
    code = new_code(g, qr["token"])["code"]
    assert verify(g, gate, tamper(code, offset)) == {"valid": False, "reason": reason}
    assert verify(g, gate, code)["valid"] is True  # the genuine code was not consumed


def test_verify_requests(qr):
    g = qr["g"]
    gate = scanner_token(g)
    with g.client() as c:
        r = c.post(g.https + "/qr/v1/verify", content=b"{not json", headers=auth(gate))
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
        r = c.post(g.https + "/qr/v1/verify", json={"code": 5}, headers=auth(gate))
        assert r.status_code == 400
        assert c.post(g.https + "/qr/v1/verify", json={"code": "x"}).status_code == 401
        # a resident token may not verify
        assert c.post(g.https + "/qr/v1/verify", json={"code": "x"}, headers=auth(qr["token"])).status_code == 403
    assert verify(g, gate, "HMT1:nonsense") == {"valid": False, "reason": "malformed"}
    assert verify(g, gate, "") == {"valid": False, "reason": "malformed"}


# ---- history, revoke, offline, redeem --------------------------------------------------------------------------


def test_scans_newest_first(qr):
    g = qr["g"]
    gate = scanner_token(g)
    code = new_code(g, qr["token"])["code"]
    verify(g, gate, code)
    verify(g, scanner_token(g, "clinic-1", SCANNER_SECRET), new_code(g, qr["token"])["code"])
    with g.client() as c:
        r = c.get(g.https + "/qr/v1/scans", headers=auth(qr["token"]))
    assert r.status_code == 200
    scans = r.json()["scans"]
    assert [s["client"] for s in scans[:2]] == ["clinic-1", "gate-line1"], scans
    assert scans[0]["result"] == "wrong_scene" and scans[1]["result"] == "valid" and scans[1]["role"] == "transit"
    assert scans[0]["at"] >= scans[1]["at"]


def test_revoke_puts_credentials_on_the_deny_list(qr):
    g = qr["g"]
    gate = scanner_token(g)
    old = new_code(g, qr["token"])["code"]
    serial = parse(old)["serial"]
    with g.client() as c:
        r = c.post(g.https + "/qr/v1/credentials/revoke", headers=auth(qr["token"]))
        assert r.status_code == 200 and r.json()["revoked"] >= 1
        doc = json.loads(jwt.api_jws.decode(c.get(g.https + "/qr/v1/trust").text, options={"verify_signature": False}))
    assert serial in doc["deny"]
    assert verify(g, gate, old) == {"valid": False, "reason": "revoked"}
    new = new_code(g, qr["token"])["code"]
    assert parse(new)["serial"] != serial and verify(g, gate, new)["valid"] is True


def test_offline_credential_without_a_gateway(qr, tmp_path):
    g = qr["g"]
    dev = tmp_path / "device.pem"
    p = subprocess.run([g.bin, "qr", "keygen-device", "--out", str(dev)], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    pub = serialization.load_pem_private_key(dev.read_bytes(), None).public_key()
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    with g.client() as c:
        r = c.post(g.https + "/qr/v1/credentials", json={"scene": "transit", "device_public_key": b64u(point)},
                   headers=auth(qr["token"]))
        assert r.status_code == 200, r.text
        cred = b64u_dec(r.json()["credential"])
        assert r.json()["expires_at"] <= time.time() + 72 * 3600 + 5
        bad = c.post(g.https + "/qr/v1/credentials", json={"scene": "transit", "device_public_key": b64u(b"\x02" + b"\xff" * 32)},
                     headers=auth(qr["token"]))
        assert bad.status_code == 400
        (tmp_path / "trust.jws").write_text(c.get(g.https + "/qr/v1/trust").text)
        (tmp_path / "jwks.json").write_text(c.get(g.https + "/.well-known/jwks.json").text)
    assert len(cred) == 128 and cred[31:64] == point
    (tmp_path / "cred.bin").write_bytes(cred)
    (tmp_path / "cred.b64").write_text(b64u(cred))
    g.stop()  # fully offline from here
    m = None
    for f in ("cred.b64", "cred.bin"):
        m = subprocess.run([g.bin, "qr", "make", "--credential", str(tmp_path / f), "--device-key", str(dev),
                            "--counter", "7"], capture_output=True, timeout=30)
        if m.returncode == 0:
            break
    assert m.returncode == 0, m.stderr
    code = m.stdout.decode().strip()
    independent_verify(code, code_keys(qr["keys_dir"]))
    seen = tmp_path / "seen"
    args = [g.bin, "qr", "verify", "--trust", str(tmp_path / "trust.jws"), "--jwks", str(tmp_path / "jwks.json"),
            "--role", "transit", "--seen", str(seen), code]
    v = subprocess.run(args, capture_output=True, timeout=30)
    assert v.returncode == 0, v.stdout + v.stderr
    v = subprocess.run(args, capture_output=True, timeout=30)
    assert v.returncode == 1 and b"replayed" in v.stdout + v.stderr


def test_merchant_payment_token_redeemed_once(qr):
    g = qr["g"]
    code = new_code(g, qr["token"], "payment")["code"]
    r = verify(g, scanner_token(g, "shop-1", SCANNER_SECRET), code)
    assert r["valid"] is True and set(r["claims"]) <= {"payment_token", "payment_token_expires_in"}, r
    assert "6222" not in json.dumps(r)
    pt = r["claims"]["payment_token"]
    with g.client() as c:
        # only the payment back end may redeem
        assert c.post(g.https + "/qr/v1/redeem", json={"payment_token": pt},
                      headers=auth(scanner_token(g))).status_code == 403
        back = scanner_token(g, "paybackend", SCANNER_SECRET)
        r1 = c.post(g.https + "/qr/v1/redeem", json={"payment_token": pt}, headers=auth(back))
        assert r1.status_code == 200 and r1.json()["card_reference"].startswith("card_"), r1.text
        assert "6222020000001234" not in r1.text
        r2 = c.post(g.https + "/qr/v1/redeem", json={"payment_token": pt}, headers=auth(back))
        assert r2.status_code == 400
