/*
 * tests/fuzz/fuzz_form.c — libFuzzer target for what the sign-in service parses from a client:
 * application/x-www-form-urlencoded bodies and queries, `Authorization: Basic`, and cookies
 * (auth/http/form.c), the OpenID parameters of an authorization request (auth/http/oidc.c), typed user
 * codes (auth/http/usercode.c) and the app's device decisions (auth/http/device.c). Any bytes end in a parse or a refusal, never in a crash, a hang or a leak.
 */
#include <string.h>
#include "gateway/gateway.h"
#include "auth/http/http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    auth_form_t form;
    if (auth_form_parse(&pool, (const char *)data, size, &form) == 0) {
        auth_form_get(&form, "grant_type");
        auth_form_get(&form, "code_verifier");
        auth_oidc_request_t oidc;
        auth_oidc_request_read(&form, &oidc); /* nonce, prompt, max_age */
    }
    char user_code[AUTH_USER_CODE_LEN + 1]; /* a typed user code (the device grant) */
    if (auth_user_code_normalize((const char *)data, size, user_code) == 0 && strlen(user_code) != AUTH_USER_CODE_LEN)
        __builtin_trap();
    const char *decision; /* the app's decision on a device code (JSON) */
    if (auth_device_decision_parse((const char *)data, size, user_code, &decision) == 0 && decision[0] == '\0')
        __builtin_trap();
    /* the same bytes as an Authorization header value and as a Cookie header */
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    char *v = h2o_mem_alloc_pool(&req.pool, size + 1);
    memcpy(v, data, size);
    v[size] = '\0';
    h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_AUTHORIZATION, NULL, v, size);
    h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_COOKIE, NULL, v, size);
    const char *id, *secret;
    size_t secret_len;
    auth_basic_parse(&req, &id, &secret, &secret_len);
    auth_cookie_get(&req, "hegate_sid");
    auth_cookie_get(&req, "hegate_pre");
    h2o_mem_clear_pool(&req.pool);
    h2o_mem_clear_pool(&pool);
    return 0;
}
