/*
 * auth/http/usercode.c — the user codes of the device grant (SPEC §6.1, RFC 8628 §6.1): what a
 * resident reads off a kiosk's screen or types into the portal. 8 characters of the 20 consonants
 * BCDFGHJKLMNPQRSTVWXZ (no vowels: no words; no 0/O or 1/I to confuse), shown XXXX-XXXX: 20^8 ≈ 2^34.6.
 * Typed input is forgiving: case, dashes and spaces do not matter.
 *
 * Pure functions (the randomness is OpenSSL's RAND_bytes); unit-tested by tests/unit/auth/test_usercode.c,
 * fuzzed by tests/fuzz/fuzz_form.c.
 */
#include <string.h>
#include <openssl/rand.h>
#include "auth/http/http.h"

static const char alphabet[] = AUTH_USER_CODE_ALPHABET;

int auth_user_code_new(char out[AUTH_USER_CODE_LEN + 1])
{
    /* one uniform letter per byte below 240 (= 12 × 20); the rest are drawn again */
    unsigned char buf[32];
    size_t have = 0;
    while (have != 8) {
        if (RAND_bytes(buf, sizeof(buf)) != 1)
            return -1;
        for (size_t i = 0; i != sizeof(buf) && have != 8; ++i)
            if (buf[i] < 240) {
                out[have < 4 ? have : have + 1] = alphabet[buf[i] % 20];
                ++have;
            }
    }
    out[4] = '-';
    out[AUTH_USER_CODE_LEN] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

int auth_user_code_normalize(const char *in, size_t len, char out[AUTH_USER_CODE_LEN + 1])
{
    size_t n = 0;
    for (size_t i = 0; i != len; ++i) {
        char ch = in[i];
        if (ch == '-' || ch == ' ')
            continue;
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        if (ch == '\0' || strchr(alphabet, ch) == NULL || n == 8)
            return -1;
        out[n < 4 ? n : n + 1] = ch;
        ++n;
    }
    if (n != 8)
        return -1;
    out[4] = '-';
    out[AUTH_USER_CODE_LEN] = '\0';
    return 0;
}
