/*
 * auth/json.c — the bounded JSON parser of the token layer (base64url is crypto/'s).
 *
 * Called by keys.c (JWKs, JWKS documents), jwt.c (every token's header and claims) and the /qr/v1
 * request bodies. It refuses duplicate keys, trailing bytes and deep nesting before jansson recurses,
 * so an attacker's token cannot make it use the stack without bound. It never logs its input.
 */
#include <string.h>
#include "auth/internal.h"

int auth_json_depth_ok(const char *text, size_t len, unsigned max_depth)
{
    unsigned depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; ++i) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i; /* skip the escaped character (\" in particular) */
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return 0;
        } else if (c == '}' || c == ']') {
            if (depth != 0)
                --depth;
        }
    }
    return 1;
}

json_t *auth_json_parse_object(const char *text, size_t len, unsigned max_depth)
{
    if (len == 0 || !auth_json_depth_ok(text, len, max_depth))
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}
