/*
 * qr/cli.c — `hegate qr verify|make|keygen-device`: what a gate and a phone do, from a shell.
 *
 * Called by gateway/main.c as qr_cli_main(argc - 1, argv + 1) for `hegate qr ...` (so argv[0] is
 * "qr", argv[1] the command). verify prints one JSON object on stdout and exits 0 (valid) or 1
 * (invalid); usage and I/O problems go to stderr with exit 2. Prints no key material and no code
 * text except the one `make` produces; claims shown are those of the scanner's role (SPEC §7.3).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "qr/internal.h"

#define CLI_USAGE 2
#define CLI_CODE_MAX 4096
#define CLI_CRED_FILE_MAX (64 * 1024)
#define CLI_SEEN_FILE_MAX (64u << 20)
#define CLI_DEFAULT_SKEW 20 /* seconds, as the gateway's qr.skew default */
#define CLI_DEFAULT_TTL 60

static const char usage_text[] =
    "usage: hegate qr verify --trust FILE [--jwks FILE | --trust-key PEMFILE] [--role ROLE | --scenes LIST]\n"
    "                        [--now T] [--skew S] [--seen FILE] CODE|-\n"
    "       hegate qr make --credential FILE --device-key PEMFILE [--counter N] [--scene NAME] [--now T]\n"
    "                      [--ttl S] [--terminal ID]\n"
    "       hegate qr keygen-device --out PEMFILE\n";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a usage or I/O problem on stderr; returns the exit status for it. */
static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("hegate qr: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_USAGE;
}

/* ---- arguments -------------------------------------------------------------------------------- */

typedef struct {
    const char *name; /* without "--" */
    const char *value;
} cli_opt_t;

/* "--name VALUE" or "--name=VALUE" for each of OPTS, plus at most one positional argument. */
static int parse_args(int argc, char **argv, cli_opt_t *opts, size_t nopts, const char **positional)
{
    for (int i = 0; i < argc; ++i) {
        const char *a = argv[i], *eq;
        size_t j, nlen;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (positional == NULL || *positional != NULL)
                return fail("unexpected argument '%s'", a);
            *positional = a;
            continue;
        }
        a += 2;
        nlen = (eq = strchr(a, '=')) != NULL ? (size_t)(eq - a) : strlen(a);
        for (j = 0; j != nopts && !(strlen(opts[j].name) == nlen && strncmp(opts[j].name, a, nlen) == 0); ++j)
            ;
        if (j == nopts)
            return fail("unknown option '--%s'", a);
        if (eq == NULL && i + 1 == argc)
            return fail("option '--%s' needs a value", a);
        opts[j].value = eq != NULL ? eq + 1 : argv[++i];
    }
    return 0;
}

static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;
    if (s == NULL || *s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static char *trim(char *s, const char *chars)
{
    size_t n;
    s += strspn(s, chars);
    for (n = strlen(s); n != 0 && strchr(chars, s[n - 1]) != NULL; --n)
        s[n - 1] = '\0';
    return s;
}

/* ---- verify: the seen file -------------------------------------------------------------------- */

/* The seen-set persisted between runs: one "kidhex serial counter until" line per entry. The file
 * stays locked (flock) from load to save, so concurrent runs on one gate consume a code once. */
typedef struct {
    int fd;
    qr_seenset_t set;
    qr_seen_slot_t *slots;
} seen_file_t;

static int seen_line(seen_file_t *sf, const char *line, int64_t now)
{
    unsigned k[HMT1_KID_LEN];
    uint8_t kid[HMT1_KID_LEN];
    unsigned long serial, counter;
    long long until;
    int used = 0;
    if (sscanf(line, "%2x%2x%2x%2x %lu %lu %lld%n", &k[0], &k[1], &k[2], &k[3], &serial, &counter, &until, &used) != 7 ||
        line[used] != '\0' || serial > UINT32_MAX || counter > HMT1_COUNTER_MAX)
        return -1;
    for (int i = 0; i != HMT1_KID_LEN; ++i)
        kid[i] = (uint8_t)k[i];
    if (until < now)
        return 0; /* forgotten */
    return qr_seenset_check_and_mark(&sf->set, kid, (uint32_t)serial, (uint32_t)counter, now, until) == 0 ? 0 : -1;
}

static int seen_open(seen_file_t *sf, const char *path, int64_t now)
{
    char *buf = NULL, *line, *save = NULL;
    size_t len = 0, lines = 0, nslots = 1024;
    if ((sf->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || flock(sf->fd, LOCK_EX) != 0)
        return -1;
    if ((buf = qr_read_file(path, CLI_SEEN_FILE_MAX, &len)) == NULL)
        return -1;
    for (size_t i = 0; i != len; ++i)
        lines += buf[i] == '\n';
    while (nslots < 4 * (lines + 1))
        nslots *= 2;
    if ((sf->slots = malloc(nslots * sizeof(*sf->slots))) == NULL || qr_seenset_init(&sf->set, sf->slots, nslots) != 0) {
        free(buf);
        return -1;
    }
    for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (seen_line(sf, line, now) != 0) {
            free(buf);
            return -1;
        }
    free(buf);
    return 0;
}

static int seen_save(seen_file_t *sf, int64_t now)
{
    FILE *fp;
    int fd = dup(sf->fd), ok;
    if (fd < 0 || ftruncate(sf->fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 || (fp = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (size_t i = 0; i != sf->set.nslots; ++i) {
        const qr_seen_slot_t *e = &sf->slots[i];
        if (e->until != 0 && e->until >= now)
            fprintf(fp, "%02x%02x%02x%02x %u %u %lld\n", e->kid[0], e->kid[1], e->kid[2], e->kid[3], e->serial, e->counter,
                    (long long)e->until);
    }
    ok = fflush(fp) == 0 && fsync(fd) == 0;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

static void seen_close(seen_file_t *sf)
{
    if (sf->fd >= 0)
        close(sf->fd); /* releases the lock */
    free(sf->slots);
}

/* ---- verify ----------------------------------------------------------------------------------- */

static qr_trust_t *load_trust(const char *path, const char *jwks_path, const char *key_path)
{
    size_t len;
    char *buf = qr_read_file(path, QR_TRUST_MAX_LEN, &len), *jws, err[128];
    qr_jwks_t *jwks = jwks_path != NULL ? qr_jwks_load_file(jwks_path) : NULL;
    qr_key_t *key = key_path != NULL ? qr_key_load_pem_file(key_path) : NULL;
    qr_trust_t *t = NULL;
    if (buf == NULL)
        fail("cannot read the trust list %s", path);
    else if (jwks_path != NULL && jwks == NULL)
        fail("cannot read a JWKS with an ES256 key from %s", jwks_path);
    else if (key_path != NULL && key == NULL)
        fail("cannot read a P-256 public key from %s", key_path);
    else {
        jws = trim(buf, " \t\r\n");
        if (jwks == NULL && key == NULL)
            fprintf(stderr, "hegate qr: warning: the trust list's signature is not checked (give --jwks FILE)\n");
        t = jwks != NULL || key != NULL ? qr_trust_from_jws(jws, strlen(jws), jwks, key, err, sizeof(err))
                                        : qr_trust_from_jws_unverified(jws, strlen(jws), err, sizeof(err));
        if (t == NULL)
            fail("trust list refused: %s", err);
    }
    free(buf);
    qr_jwks_free(jwks);
    crypto_key_free(key);
    return t;
}

/* --role, --scenes, or every scene. */
static int accepted_scenes(const char *role, const char *list, uint32_t *scenes)
{
    char buf[128], *name, *save = NULL;
    if (role != NULL && list != NULL)
        return fail("give --role or --scenes, not both");
    if (role != NULL)
        return (*scenes = qr_role_scenes(role)) != 0 ? 0 : fail("unknown role '%s'", role);
    if (list == NULL) {
        *scenes = QR_SCENES_ALL;
        return 0;
    }
    if (strlen(list) >= sizeof(buf))
        return fail("--scenes is too long");
    strcpy(buf, list);
    *scenes = 0;
    for (name = strtok_r(buf, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
        unsigned s = qr_scene_from_name(name);
        if (s == 0)
            return fail("unknown scene '%s'", name);
        *scenes |= QR_SCENE_BIT(s);
    }
    return *scenes != 0 ? 0 : fail("--scenes is empty");
}

static char *read_code(const char *arg, char *buf, size_t bufsz)
{
    size_t n;
    if (strcmp(arg, "-") != 0)
        return (char *)arg;
    n = fread(buf, 1, bufsz - 1, stdin);
    buf[n] = '\0';
    while (n != 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) /* not spaces: ' ' is a Base45 digit */
        buf[--n] = '\0';
    return buf;
}

static json_t *hex_string(const uint8_t *b, size_t n)
{
    char s[2 * 16 + 1];
    for (size_t i = 0; i != n && i != 16; ++i)
        snprintf(s + 2 * i, 3, "%02x", b[i]);
    return json_stringn(s, 2 * (n < 16 ? n : 16));
}

/* What the scanner's role learns from the code itself (SPEC §7.3); without a role, the scene's own. */
static json_t *claims_json(const qr_code_t *c, const char *role)
{
    const char *r = role != NULL ? role : c->scene == QR_SCENE_TRANSIT ? "transit" : c->scene == QR_SCENE_TOURISM ? "tourism" : "";
    json_t *claims = json_object();
    qr_transit_t t;
    if (strcmp(r, "transit") == 0 && c->scene == QR_SCENE_TRANSIT) {
        qr_transit_decode(c->entitlements, &t);
        json_object_set_new(claims, "pseudonym", hex_string(c->pseudonym, HMT1_PSEUDONYM_LEN));
        json_object_set_new(claims, "fare_class", json_integer(t.fare_class));
        json_object_set_new(claims, "concessions", json_integer(t.concessions));
        json_object_set_new(claims, "operator", json_integer(t.operator_id));
        json_object_set_new(claims, "offline_cap_fen", json_integer(t.offline_cap_fen));
    } else if (strcmp(r, "tourism") == 0) {
        json_object_set_new(claims, "pseudonym", hex_string(c->pseudonym, HMT1_PSEUDONYM_LEN));
        json_object_set_new(claims, "entitlements", hex_string(c->entitlements, HMT1_ENTITLEMENTS_LEN));
    } /* medical, merchant, government: their claims live in the gateway's stores, not in the code */
    return claims;
}

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(j);
}

static void print_verdict(qr_reason_t r, const qr_code_t *c, const char *role)
{
    if (r != QR_OK) {
        print_json(json_pack("{s:b, s:s}", "valid", 0, "reason", qr_reason_name(r)));
        return;
    }
    print_json(json_pack("{s:b, s:s, s:I, s:o}", "valid", 1, "scene", qr_scene_name(c->scene), "serial", (json_int_t)c->serial,
                         "claims", claims_json(c, role)));
}

enum { V_TRUST, V_JWKS, V_TRUST_KEY, V_ROLE, V_SCENES, V_NOW, V_SKEW, V_SEEN, V_NOPTS };

static int cli_verify(int argc, char **argv)
{
    cli_opt_t o[V_NOPTS] = {{"trust", NULL},  {"jwks", NULL}, {"trust-key", NULL}, {"role", NULL},
                            {"scenes", NULL}, {"now", NULL},  {"skew", NULL},      {"seen", NULL}};
    const char *code_arg = NULL;
    char stdin_buf[CLI_CODE_MAX], *code;
    qr_verify_params_t p = {.now = time(NULL), .skew = CLI_DEFAULT_SKEW};
    seen_file_t sf = {.fd = -1};
    int64_t v;
    qr_code_t c;
    qr_reason_t r;
    qr_trust_t *trust;
    if (parse_args(argc, argv, o, V_NOPTS, &code_arg) != 0)
        return CLI_USAGE;
    if (o[V_TRUST].value == NULL || code_arg == NULL)
        return fail("verify needs --trust FILE and a CODE (or - for stdin)");
    if (accepted_scenes(o[V_ROLE].value, o[V_SCENES].value, &p.scenes) != 0)
        return CLI_USAGE;
    if (o[V_NOW].value != NULL && parse_int(o[V_NOW].value, 0, INT64_MAX / 2, &p.now) != 0)
        return fail("--now must be unix seconds, not '%s'", o[V_NOW].value);
    if (o[V_SKEW].value != NULL) {
        if (parse_int(o[V_SKEW].value, 0, 86400, &v) != 0)
            return fail("--skew must be 0..86400 seconds, not '%s'", o[V_SKEW].value);
        p.skew = (uint32_t)v;
    }
    code = read_code(code_arg, stdin_buf, sizeof(stdin_buf));
    if ((trust = load_trust(o[V_TRUST].value, o[V_JWKS].value, o[V_TRUST_KEY].value)) == NULL)
        return CLI_USAGE;
    p.trust = trust;
    if (o[V_SEEN].value != NULL) {
        if (seen_open(&sf, o[V_SEEN].value, p.now) != 0) {
            seen_close(&sf);
            qr_trust_free(trust);
            return fail("cannot use the seen file %s", o[V_SEEN].value);
        }
        p.seen = qr_seenset_check_and_mark;
        p.seen_ctx = &sf.set;
    }
    r = qr_code_verify_text(&p, code, strlen(code), &c);
    if (r == QR_OK && p.seen != NULL && seen_save(&sf, p.now) != 0)
        r = QR_UNAVAILABLE; /* not remembered: do not let it through */
    seen_close(&sf);
    qr_trust_free(trust);
    print_verdict(r, &c, o[V_ROLE].value);
    return r == QR_OK ? 0 : 1;
}

/* ---- make ------------------------------------------------------------------------------------- */

/* The credential file: base64url of bytes 0–127, or JSON with a "credential" member holding it.
 * -2 if the file cannot be read, -1 if it holds no credential. */
static int load_credential(const char *path, uint8_t cred[HMT1_CRED_LEN])
{
    size_t len;
    char *buf = qr_read_file(path, CLI_CRED_FILE_MAX, &len), *s;
    json_t *root = NULL;
    int ret = -1;
    if (buf == NULL)
        return -2;
    s = trim(buf, " \t\r\n");
    if (*s == '{') {
        json_error_t jerr;
        root = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
        s = (char *)json_string_value(json_object_get(root, "credential"));
    }
    if (s != NULL && strlen(s) == CRYPTO_B64URL_LEN(HMT1_CRED_LEN) &&
        crypto_b64url_decode(cred, HMT1_CRED_LEN, s, strlen(s)) == HMT1_CRED_LEN)
        ret = 0;
    json_decref(root);
    free(buf);
    return ret;
}

/* A counter a phone without a stored one can use: its clock in tenths of a second, mod 2^24
 * (it wraps every 19 days; a code is remembered for minutes). */
static uint32_t clock_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint32_t)(((uint64_t)ts.tv_sec * 10 + (uint64_t)ts.tv_nsec / 100000000) & HMT1_COUNTER_MAX);
}

enum { M_CRED, M_DEVKEY, M_COUNTER, M_SCENE, M_NOW, M_TTL, M_TERMINAL, M_NOPTS };

/* The numeric options of make, checked. */
static int make_numbers(cli_opt_t *o, int64_t *counter, int64_t *now, int64_t *ttl)
{
    *counter = clock_counter();
    *now = time(NULL);
    *ttl = CLI_DEFAULT_TTL;
    if (o[M_COUNTER].value != NULL && parse_int(o[M_COUNTER].value, 0, HMT1_COUNTER_MAX, counter) != 0)
        return fail("--counter must be 0..16777215, not '%s'", o[M_COUNTER].value);
    if (o[M_NOW].value != NULL && parse_int(o[M_NOW].value, 0, UINT32_MAX, now) != 0)
        return fail("--now must be unix seconds, not '%s'", o[M_NOW].value);
    if (o[M_TTL].value != NULL && parse_int(o[M_TTL].value, 1, 255, ttl) != 0)
        return fail("--ttl must be 1..255 seconds, not '%s'", o[M_TTL].value);
    return 0;
}

static int cli_make(int argc, char **argv)
{
    cli_opt_t o[M_NOPTS] = {{"credential", NULL}, {"device-key", NULL}, {"counter", NULL}, {"scene", NULL},
                            {"now", NULL},        {"ttl", NULL},        {"terminal", NULL}};
    uint8_t cred[HMT1_CRED_LEN], code[HMT1_LEN], terminal[HMT1_TERMINAL_LEN];
    char text[HMT1_TEXT_LEN + 1];
    int64_t counter, now, ttl;
    qr_key_t *device;
    int ret;
    if (parse_args(argc, argv, o, M_NOPTS, NULL) != 0 || make_numbers(o, &counter, &now, &ttl) != 0)
        return CLI_USAGE;
    if (o[M_CRED].value == NULL || o[M_DEVKEY].value == NULL)
        return fail("make needs --credential FILE and --device-key FILE");
    if ((ret = load_credential(o[M_CRED].value, cred)) == -2)
        return fail("cannot read %s", o[M_CRED].value);
    if (ret != 0)
        return fail("%s holds no credential (base64url of 128 bytes, or JSON {\"credential\": ...})", o[M_CRED].value);
    if (o[M_SCENE].value != NULL && qr_scene_from_name(o[M_SCENE].value) != cred[HMT1_OFF_SCENE])
        return fail("the credential is not for scene '%s'", o[M_SCENE].value);
    if ((device = qr_key_load_pem_file(o[M_DEVKEY].value)) == NULL || !crypto_key_has_private(device)) {
        crypto_key_free(device);
        return fail("cannot read a P-256 private key from %s", o[M_DEVKEY].value);
    }
    if (o[M_TERMINAL].value != NULL)
        qr_terminal_binding(o[M_TERMINAL].value, strlen(o[M_TERMINAL].value), terminal);
    ret = qr_code_make(cred, device, (uint32_t)now, (uint8_t)ttl, (uint32_t)counter, o[M_TERMINAL].value != NULL ? terminal : NULL,
                       code);
    crypto_key_free(device);
    if (ret != 0)
        return fail("cannot make a code: the device key is not the credential's, or the credential is not HMT1");
    qr_code_to_text(code, text);
    printf("%s\n", text);
    return fflush(stdout) == 0 ? 0 : CLI_USAGE;
}

/* ---- keygen-device ---------------------------------------------------------------------------- */

static int cli_keygen(int argc, char **argv)
{
    cli_opt_t o[1] = {{"out", NULL}};
    uint8_t point[HMT1_POINT_LEN];
    char b64[CRYPTO_B64URL_LEN(HMT1_POINT_LEN) + 1];
    qr_key_t *key;
    if (parse_args(argc, argv, o, 1, NULL) != 0)
        return CLI_USAGE;
    if (o[0].value == NULL)
        return fail("keygen-device needs --out FILE");
    if ((key = crypto_key_generate()) == NULL || crypto_key_save_private_pem(key, o[0].value) != 0) {
        crypto_key_free(key);
        return fail("cannot write a new key to %s (it must not exist yet)", o[0].value);
    }
    crypto_key_point(key, point);
    crypto_key_free(key);
    crypto_b64url_encode(b64, point, sizeof(point));
    print_json(json_pack("{s:s}", "device_public_key", b64));
    return 0;
}

int qr_cli_main(int argc, char **argv)
{
    const char *cmd = argc >= 2 ? argv[1] : "";
    if (strcmp(cmd, "verify") == 0)
        return cli_verify(argc - 2, argv + 2);
    if (strcmp(cmd, "make") == 0)
        return cli_make(argc - 2, argv + 2);
    if (strcmp(cmd, "keygen-device") == 0)
        return cli_keygen(argc - 2, argv + 2);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    fputs(usage_text, stderr);
    return CLI_USAGE;
}
