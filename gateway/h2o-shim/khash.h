/*
 * gateway/h2o-shim/khash.h — lets guard.c include Debian's <h2o/http2_internal.h>, which includes
 * "khash.h" (h2o's bundled hash table) that the package does not install.
 *
 * Only the names that header mentions are declared: the streams map as an opaque type (the
 * connection holds a pointer to it, so the connection's layout does not depend on it) and the
 * lookup h2o_http2_conn_get_stream() would use. That lookup is deliberately left undefined: the
 * gateway never looks into h2o's streams map, and a call to it fails at link time rather than
 * reading a table whose layout is not ours to know.
 */
#ifndef hegate_h2o_shim_khash_h
#define hegate_h2o_shim_khash_h

#include <stdint.h>

typedef uint32_t khint_t;
typedef khint_t khiter_t;

#define khash_t(name) kh_##name##_t
#define KHASH_MAP_INIT_INT64(name, khval_t) typedef struct kh_##name##_s kh_##name##_t;

void *hegate_khash_not_available(const void *h, ...);
#define kh_get(name, h, k) ((khiter_t)(uintptr_t)hegate_khash_not_available((h), (k)))
#define kh_end(h) ((khiter_t)(uintptr_t)hegate_khash_not_available((h)))
#define kh_val(h, i) (*(void **)hegate_khash_not_available((h), (i)))

#endif
