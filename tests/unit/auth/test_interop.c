/*
 * tests/unit/auth/test_interop.c — our tokens against an independent implementation, PyJWT 2 on
 * pyca/cryptography (Debian's python3-jwt, run as `/usr/bin/python3 -c SCRIPT`), both ways:
 *
 *   ours → PyJWT: `hegate keys generate/rotate` into a temp folder, tokens signed by both keys, our
 *   JWKS; PyJWT verifies every token (alg, typ, iss, aud, exp) and recomputes each kid from the PEM
 *   files (SHA-256 of the DER SubjectPublicKeyInfo, first 8 bytes, base64url).
 *   PyJWT → ours: a P-256 key and JWKS made in Python, 64+ ES256 at+jwt tokens (about half with a
 *   high S, as OpenSSL signs) and attack tokens, each with the reason our verifier must give.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, mkdtemp */
#endif
#include "tests/unit/unit.h"
#include <fcntl.h>
#include <ftw.h>
#include <sys/wait.h>
#include <time.h>
#include "auth/auth.h"
#include "crypto/crypto.h"

static const char *const ISS = "https://hegate.example";
static const char *const EXT_ISS = "https://id.province.example";
static char tmp[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int make_tmp(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/hegate-auth-interop-XXXXXX");
    return mkdtemp(tmp) == NULL ? -1 : 0;
}

static int remove_tmp(void **state)
{
    (void)state;
    return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* /usr/bin/python3 -c SCRIPT ARG1 ARG2 (no shell); its stdout+stderr into OUT; returns the exit status */
static int run_python(const char *script, const char *arg1, const char *arg2, char *out, size_t outsz)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        execl("/usr/bin/python3", "python3", "-c", script, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < outsz && (r = read(fds[0], out + n, outsz - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* ---- ours → PyJWT ------------------------------------------------------------------------------- */

static const char py_verify[] =
    "import sys, json, glob, os, base64, hashlib, jwt\n"
    "from cryptography.hazmat.primitives import serialization\n"
    "d, iss = sys.argv[1], sys.argv[2]\n"
    "jwks = json.load(open(d + '/jwks.json'))\n"
    "keys = {k['kid']: jwt.PyJWK.from_dict(k) for k in jwks['keys']}\n"
    "for k in jwks['keys']:\n"
    "    assert set(k) == {'kty', 'crv', 'x', 'y', 'kid', 'alg', 'use'}, k\n"
    "    assert (k['kty'], k['crv'], k['alg'], k['use']) == ('EC', 'P-256', 'ES256', 'sig'), k\n"
    "pems = glob.glob(d + '/keys/token/*.pem')\n"
    "assert len(pems) == 2, pems\n"
    "for pem in pems:\n"
    "    key = serialization.load_pem_private_key(open(pem, 'rb').read(), None)\n"
    "    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)\n"
    "    kid = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()[:8]).rstrip(b'=').decode()\n"
    "    assert os.path.basename(pem).endswith('-' + kid + '.pem'), (pem, kid)\n"
    "    assert kid in keys, kid\n"
    "n = 0\n"
    "kids = set()\n"
    "for tok in open(d + '/tokens.txt').read().split():\n"
    "    h = jwt.get_unverified_header(tok)\n"
    "    assert h == {'alg': 'ES256', 'typ': 'at+jwt', 'kid': h['kid']}, h\n"
    "    c = jwt.decode(tok, keys[h['kid']].key, algorithms=['ES256'], audience='hegate', issuer=iss,\n"
    "                   options={'require': ['exp', 'iat', 'iss', 'aud', 'sub', 'jti']})\n"
    "    assert c['client_id'] == 'hecheng-app' and c['sid'] == 's-1' and c['scope'] == 'openid query', c\n"
    "    kids.add(h['kid'])\n"
    "    n += 1\n"
    "    bad = tok[:-6] + ('A' if tok[-6] != 'A' else 'B') + tok[-5:]\n"
    "    try:\n"
    "        jwt.decode(bad, keys[h['kid']].key, algorithms=['ES256'], audience='hegate', issuer=iss)\n"
    "        raise SystemExit('tampered token accepted')\n"
    "    except jwt.InvalidSignatureError:\n"
    "        pass\n"
    "assert len(kids) == 2, kids\n"
    "print('pyjwt verified', n)\n";

static void test_ours_verified_by_pyjwt(void **state)
{
    (void)state;
    char dir[256], path[512], out[8192];
    snprintf(dir, sizeof(dir), "%s/keys", tmp);
    char *gen[] = {"keys", "generate", "--dir", dir, NULL};
    char *rot[] = {"keys", "rotate", "--dir", dir, "--purpose", "token", NULL};
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1); /* the command's report is not this test's output */
    int r1 = auth_keys_cli_main(4, gen), r2 = auth_keys_cli_main(6, rot);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    assert_int_equal(r1, 0);
    assert_int_equal(r2, 0);

    int64_t now = (int64_t)time(NULL);
    char err[256];
    auth_keyset_t *ks = auth_keyset_load(dir, AUTH_KEY_TOKEN, now, 0, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(auth_keyset_count(ks), 2);
    char *jwks = auth_keyset_jwks(ks, now);
    snprintf(path, sizeof(path), "%s/jwks.json", tmp);
    write_text(path, jwks);
    free(jwks);

    snprintf(path, sizeof(path), "%s/tokens.txt", tmp);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < 40; ++i) {
        json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "iss", ISS, "sub", "u-ab12", "aud", "hegate",
                              "client_id", "hecheng-app", "scope", "openid query", "iat", (json_int_t)now, "exp",
                              (json_int_t)now + 900, "jti", "", "sid", "s-1", "acr", "pwd");
        json_object_set_new(c, "jti", json_sprintf("j-%d", i));
        /* the newest key signs; a few tokens from the older key, as right after a rotation */
        char *tok = auth_jwt_sign(auth_keyset_get(ks, i % 4 == 0 ? 1 : 0), c);
        json_decref(c);
        assert_non_null(tok);
        fprintf(fp, "%s\n", tok);
        free(tok);
    }
    fclose(fp);
    auth_keyset_free(ks);

    int status = run_python(py_verify, tmp, ISS, out, sizeof(out));
    print_message("%s", out);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "pyjwt verified 40"));
}

/* ---- PyJWT → ours ------------------------------------------------------------------------------- */

static const char py_sign[] =
    "import sys, json, base64, hmac, hashlib, jwt\n"
    "from cryptography.hazmat.primitives import hashes, serialization\n"
    "from cryptography.hazmat.primitives.asymmetric import ec\n"
    "from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature\n"
    "d, now = sys.argv[1], int(sys.argv[2])\n"
    "def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
    "def js(o): return b64(json.dumps(o).encode())\n"
    "k = ec.generate_private_key(ec.SECP256R1())\n"
    "n = k.public_key().public_numbers()\n"
    "jwk = {'kty': 'EC', 'crv': 'P-256', 'x': b64(n.x.to_bytes(32, 'big')), 'y': b64(n.y.to_bytes(32, 'big')),\n"
    "       'kid': 'py-1', 'alg': 'ES256', 'use': 'sig'}\n"
    "rsa_stub = {'kty': 'RSA', 'kid': 'py-rsa', 'n': 'AQAB', 'e': 'AQAB', 'alg': 'RS256'}\n"
    "json.dump({'keys': [rsa_stub, jwk]}, open(d + '/py-jwks.json', 'w'))\n"
    "ISS = 'https://id.province.example'\n"
    "base = {'iss': ISS, 'sub': 'p-77', 'aud': ['other', 'hegate'], 'client_id': 'province-app', 'scope': 'query',\n"
    "        'iat': now, 'exp': now + 600, 'jti': 'pj'}\n"
    "H = {'kid': 'py-1', 'typ': 'at+jwt'}\n"
    "out = []\n"
    "def emit(expect, tok): out.append(expect + ' ' + tok)\n"
    "def enc(c, key=k, headers=H, alg='ES256'): return jwt.encode(c, key, algorithm=alg, headers=headers)\n"
    "for i in range(64): emit('ok', enc(dict(base, jti='pj-%d' % i)))\n"
    "emit('ok', enc(base, headers={'kid': 'py-1', 'typ': 'application/at+jwt'}))\n"
    "emit('ok', enc(dict(base, nbf=now + 30)))\n"
    "emit('ok', enc(dict(base, exp=now - 29)))\n"
    "emit('expired', enc(dict(base, exp=now - 31)))\n"
    "emit('not_yet_valid', enc(dict(base, nbf=now + 31)))\n"
    "emit('not_yet_valid', enc(dict(base, iat=now + 31)))\n"
    "emit('bad_aud', enc(dict(base, aud='someone-else')))\n"
    "emit('bad_iss', enc(dict(base, iss='https://hegate.example')))\n"
    "emit('bad_typ', enc(base, headers={'kid': 'py-1'}))\n"
    "emit('bad_typ', enc(base, headers={'kid': 'py-1', 'typ': 'JWT'}))\n"
    "emit('unknown_kid', enc(base, headers={'kid': 'py-2', 'typ': 'at+jwt'}))\n"
    "emit('unknown_kid', enc(base, headers={'kid': 'py-rsa', 'typ': 'at+jwt'}))\n"
    "emit('bad_signature', enc(base, key=ec.generate_private_key(ec.SECP256R1())))\n"
    "emit('missing_claim', enc({x: base[x] for x in base if x != 'client_id'}))\n"
    "p = js(base)\n"
    "pem = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)\n"
    "h = js({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'py-1'})\n"
    "emit('alg_not_allowed', h + '.' + p + '.' + b64(hmac.new(pem, (h + '.' + p).encode(), hashlib.sha256).digest()))\n"
    "jk = json.dumps(jwk).encode()\n"
    "emit('alg_not_allowed', h + '.' + p + '.' + b64(hmac.new(jk, (h + '.' + p).encode(), hashlib.sha256).digest()))\n"
    "emit('alg_not_allowed', js({'alg': 'none', 'typ': 'at+jwt', 'kid': 'py-1'}) + '.' + p + '.')\n"
    "emit('alg_not_allowed', js({'alg': 'NoNe', 'typ': 'at+jwt', 'kid': 'py-1'}) + '.' + p + '.')\n"
    "h2 = js({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 'py-1'})\n"
    "der = k.sign((h2 + '.' + p).encode(), ec.ECDSA(hashes.SHA256()))\n"
    "emit('bad_signature', h2 + '.' + p + '.' + b64(der))\n"
    "r, s = decode_dss_signature(der)\n"
    "emit('ok', h2 + '.' + p + '.' + b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big')))\n"
    "emit('malformed', h2 + '.' + p + '.' + b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big')) + '==')\n"
    "emit('malformed', h2 + '=.' + p + '.' + b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big')))\n"
    "open(d + '/py-tokens.txt', 'w').write('\\n'.join(out) + '\\n')\n"
    "print('pyjwt signed', len(out))\n";

static const uint8_t half_n[32] = {0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B, 0xCF, 0x42, 0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8};

static void test_pyjwt_verified_by_ours(void **state)
{
    (void)state;
    char out[4096], path[512], nowbuf[32];
    int64_t now = (int64_t)time(NULL);
    snprintf(nowbuf, sizeof(nowbuf), "%lld", (long long)now);
    int status = run_python(py_sign, tmp, nowbuf, out, sizeof(out));
    print_message("%s", out);
    assert_int_equal(status, 0);

    char err[256];
    snprintf(path, sizeof(path), "%s/py-jwks.json", tmp);
    auth_keyset_t *ext = auth_keyset_load_jwks(path, err, sizeof(err));
    if (ext == NULL)
        fail_msg("%s", err);
    assert_int_equal(auth_keyset_count(ext), 1); /* the RSA entry is skipped */
    auth_keyset_t *own = auth_keyset_new();
    assert_int_equal(auth_keyset_add(own, auth_key_generate(), now, INT64_MAX), 0);
    auth_issuer_t issuers[2] = {{ISS, "hegate", own}, {EXT_ISS, "hegate", ext}};
    auth_verifier_t *v = auth_verifier_new(issuers, 2, 0, err, sizeof(err));
    assert_non_null(v);

    snprintf(path, sizeof(path), "%s/py-tokens.txt", tmp);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[4096];
    int total = 0, ok = 0, high_s = 0, wrong = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        char *tok = sp + 1;
        tok[strcspn(tok, "\n")] = '\0';
        auth_claims_t c;
        auth_reason_t r = auth_verify_token(v, tok, strlen(tok), now, &c);
        ++total;
        if (strcmp(auth_reason_name(r), line) != 0) {
            ++wrong;
            print_error("PyJWT token %d: expected %s, got %s\n", total, line, auth_reason_name(r));
            continue;
        }
        if (r == AUTH_OK) {
            ++ok;
            assert_int_equal(c.issuer_index, 1);
            assert_string_equal(c.sub, "p-77");
            assert_string_equal(c.client_id, "province-app");
            uint8_t sig[64];
            const char *dot = strrchr(tok, '.');
            assert_int_equal(crypto_b64url_decode(sig, 64, dot + 1, strlen(dot + 1)), 64);
            if (memcmp(sig + 32, half_n, 32) > 0)
                ++high_s;
        }
    }
    fclose(fp);
    print_message("PyJWT → ours: %d tokens, %d accepted (%d with high S), %d with the wrong verdict\n", total, ok, high_s, wrong);
    assert_int_equal(wrong, 0);
    assert_true(ok >= 68);
    assert_true(high_s > 0); /* 2^-68 odds of a false failure */
    auth_verifier_free(v);
    auth_keyset_free(own);
    auth_keyset_free(ext);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ours_verified_by_pyjwt),
        cmocka_unit_test(test_pyjwt_verified_by_ours),
    };
    return cmocka_run_group_tests_name("auth_interop", tests, make_tmp, remove_tmp);
}
