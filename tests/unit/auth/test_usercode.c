/*
 * tests/unit/auth/test_usercode.c — auth/http/usercode.c: user codes of the device grant (SPEC §6.1):
 * shape (XXXX-XXXX), alphabet, the spread of letters over many codes (chi-square: a uniform source passes,
 * a byte taken modulo 20 or a stuck byte does not), and the forgiving reading of typed input.
 */
#include "tests/unit/unit.h"
#include "auth/http/http.h"

static void test_new_codes_have_the_shape_and_alphabet(void **state)
{
    for (int i = 0; i != 1000; ++i) {
        char c[AUTH_USER_CODE_LEN + 1];
        assert_int_equal(auth_user_code_new(c), 0);
        assert_int_equal(strlen(c), 9);
        assert_int_equal(c[4], '-');
        for (int k = 0; k != 9; ++k)
            if (k != 4 && strchr(AUTH_USER_CODE_ALPHABET, c[k]) == NULL)
                fail_msg("letter %c of %s is not in the alphabet", c[k], c);
    }
}

static void test_new_codes_spread_evenly(void **state)
{
    enum { N = 40000 };
    static unsigned counts[8][20];
    char seen_first[N][AUTH_USER_CODE_LEN + 1];
    for (int i = 0; i != N; ++i) {
        char *c = seen_first[i];
        assert_int_equal(auth_user_code_new(c), 0);
        for (int k = 0, pos = 0; k != 9; ++k)
            if (k != 4)
                counts[pos++][strchr(AUTH_USER_CODE_ALPHABET, c[k]) - AUTH_USER_CODE_ALPHABET]++;
    }
    /* chi-square over the 8 × 20 cells (152 degrees of freedom: mean 152, sd 17.4). 240 is 5 sd above: a
     * uniform source passes but for a 1e-7 chance; the plain byte-modulo-20 bias (letters 0-15 at 13/256,
     * 16-19 at 12/256) scores ~311 and fails */
    double chi2 = 0;
    for (int pos = 0; pos != 8; ++pos)
        for (int l = 0; l != 20; ++l) {
            double d = (double)counts[pos][l] - N / 20.0;
            chi2 += d * d / (N / 20.0);
        }
    if (chi2 > 240)
        fail_msg("letters are not uniform: chi-square %.1f over 152 degrees of freedom", chi2);
    /* 40,000 codes out of 2.56e10: a repeat is a 3 % event by the birthday bound, two would mean a weak source */
    int repeats = 0;
    for (int i = 0; i != N; ++i)
        for (int j = i + 1; j < N && j < i + 2000; ++j)
            repeats += strcmp(seen_first[i], seen_first[j]) == 0;
    assert_true(repeats <= 1);
}

static void test_typed_input_is_read_forgivingly(void **state)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"BCDF-GHJK", "BCDF-GHJK"}, {"bcdfghjk", "BCDF-GHJK"}, {" bcdf ghjk ", "BCDF-GHJK"},
        {"B-C-D-F-G-H-J-K", "BCDF-GHJK"}, {"wxzb-cdfg", "WXZB-CDFG"}, {"--zzzz--zzzz--", "ZZZZ-ZZZZ"},
    };
    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); ++i) {
        char out[AUTH_USER_CODE_LEN + 1];
        if (auth_user_code_normalize(ok[i].in, strlen(ok[i].in), out) != 0)
            fail_msg("refused \"%s\"", ok[i].in);
        assert_string_equal(out, ok[i].out);
    }
    static const char *const bad[] = {"", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ0", "BCDF_GHJK", "BCDF\tGHJK",
                                      "BCDF-GHJK\n", "ＢCDF-GHJK", "--------"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char out[AUTH_USER_CODE_LEN + 1];
        if (auth_user_code_normalize(bad[i], strlen(bad[i]), out) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    char out[AUTH_USER_CODE_LEN + 1];
    assert_int_equal(auth_user_code_normalize("BCDF\0GHJK", 9, out), -1); /* an embedded NUL is no letter */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_codes_have_the_shape_and_alphabet),
        cmocka_unit_test(test_new_codes_spread_evenly),
        cmocka_unit_test(test_typed_input_is_read_forgivingly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
