/*
 * qr/internal.h — helpers shared by the files of qr/ and by nobody else (not part of the contract).
 */
#ifndef hegate_qr_internal_h
#define hegate_qr_internal_h

#include <stddef.h>
#include <stdint.h>
#include "qr/qr.h"

/* ecdsa.c: reads a whole file of at most MAX bytes into a malloc'd, NUL-terminated buffer. NULL on failure. */
char *qr_read_file(const char *path, size_t max, size_t *len);

static inline uint32_t qr_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void qr_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
