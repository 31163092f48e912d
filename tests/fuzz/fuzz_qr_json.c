/*
 * tests/fuzz/fuzz_qr_json.c — libFuzzer target for the /qr/v1 endpoints' request bodies as
 * qr/http/body.c parses them (qr_body_parse: codes, credentials, verify, redeem). The first byte picks
 * the endpoint, the rest is the body. Any bytes end in a parse or a refusal, never in a crash, a hang
 * or a leak; what a successful parse promises is checked.
 */
#include <stdlib.h>
#include <string.h>
#include "qr/http/http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    qr_body_kind_t kind = (qr_body_kind_t)(data[0] % 4);
    /* a copy of exactly the body's bytes: a read past them is an ASan finding */
    char *body = malloc(size - 1 ? size - 1 : 1);
    memcpy(body, data + 1, size - 1);
    qr_body_t b;
    int r = qr_body_parse(kind, body, size - 1, &b);
    if (r == 0) {
        if (b.scene > QR_SCENE_MAX)
            abort();
        if (kind == QR_BODY_CREDENTIALS && b.device_point[0] != 0x02 && b.device_point[0] != 0x03)
            abort();
        if (kind == QR_BODY_REDEEM && strlen(b.payment_token) > 64)
            abort();
        if (kind == QR_BODY_VERIFY && b.code_readable) {
            qr_code_t c;
            char text[HMT1_TEXT_LEN + 1];
            uint8_t again[HMT1_LEN];
            /* a readable code round-trips through its text form */
            qr_code_to_text(b.code, text);
            if (qr_code_from_text(text, HMT1_TEXT_LEN, again) != 0 || memcmp(again, b.code, HMT1_LEN) != 0)
                abort();
            (void)qr_code_parse(b.code, HMT1_LEN, &c);
        }
    } else if (r != -1 && r != -2) {
        abort();
    }
    free(body);
    return 0;
}
