/*
 * qr/http/http.h — the city code's HTTP side (SPEC §7.3): the /qr/v1 endpoint family on top of the
 * qr/ library and the gateway's interface. main.c registers the family; the body parser is public
 * for the fuzz target (tests/fuzz/fuzz_qr_json.c), apart from any request.
 */
#ifndef hegate_qr_http_h
#define hegate_qr_http_h

#include <stddef.h>
#include <stdint.h>
#include "qr/qr.h"

/* Registers the /qr/v1 family (start-up, before gw_server_run). */
void qr_http_register(void);

#define QR_BODY_MAX 4096 /* bytes of JSON accepted by any /qr/v1 endpoint */

typedef enum { QR_BODY_CODES, QR_BODY_CREDENTIALS, QR_BODY_VERIFY, QR_BODY_REDEEM } qr_body_kind_t;

typedef struct {
    unsigned scene;                       /* codes, credentials: 1..5, or 0 when absent or unknown */
    uint8_t device_point[HMT1_POINT_LEN]; /* credentials: the device key, SEC1 compressed */
    int code_readable;                    /* verify: 1 when CODE holds the decoded code, 0 = malformed */
    uint8_t code[HMT1_LEN];
    char payment_token[65]; /* redeem: NUL-terminated */
} qr_body_t;

/* Parses BODY as the endpoint KIND reads it: 0 and OUT filled; -1 when it is not one JSON object of at
 * most QR_BODY_MAX bytes (nesting depth 4, no duplicate members); -2 when a member the endpoint needs is
 * missing or wrong (credentials: device_public_key not a P-256 point in base64url; verify: code not a
 * string or terminal_id not a string; redeem: payment_token not a string of at most 64 bytes). An
 * unreadable code is not an error (code_readable = 0: the answer is "malformed"). Allocates only while
 * it works. */
int qr_body_parse(qr_body_kind_t kind, const char *body, size_t len, qr_body_t *out);

#endif
