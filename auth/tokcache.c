/*
 * auth/tokcache.c — a per-thread cache of verified access tokens, so that a client sending the
 * same bearer token on every request pays one ECDSA verification, not one per request.
 *
 * Used by auth_verify_bearer (jwt.c); the gateway keeps one per event-loop thread, so there are
 * no locks. Keyed by the exact token bytes and the verifier that judged them: a seeded 64-bit
 * hash picks a bucket and a full comparison decides. Fixed capacity, CLOCK (second-chance)
 * eviction; entries die at their claims' valid_until, and a verdict of an older verifier (before a
 * reload) never answers for a newer one — it just waits to be recycled, so requests of the old
 * and the new configuration may interleave on one thread without emptying the cache. Stores only
 * AUTH_OK verdicts — never a revocation answer — and never logs.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "auth/internal.h"

#define NIL ((uint32_t)-1)

struct tc_entry {
    uint64_t hash;
    uint64_t generation; /* of the verifier that accepted the token */
    int64_t until;       /* the entry is good while now < until */
    char *token;         /* its bytes (buffer kept and reused when the slot is recycled) */
    uint32_t len, cap;
    uint32_t next; /* next entry in the same bucket, or NIL */
    uint8_t used, referenced;
    auth_revocation_memo_t memo;
    auth_claims_t claims;
};

struct auth_tokcache {
    struct tc_entry *entries;
    uint32_t *buckets; /* head entry of each bucket, or NIL */
    size_t capacity, mask, fill, size, hand;
    uint64_t seed;
    auth_tokcache_stats_t stats;
};

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Not a cryptographic hash: collisions only cost a comparison, and only verified tokens (which an
 * attacker cannot mint) are ever stored. The random seed keeps bucket choice unpredictable. */
static uint64_t hash_token(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9E3779B97F4A7C15ULL;
        h = (h << 27) | (h >> 37);
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix64(h ^ mix64(w ^ ((uint64_t)n << 56)));
}

auth_tokcache_t *auth_tokcache_new(size_t capacity)
{
    if (capacity == 0)
        capacity = AUTH_TOKCACHE_DEFAULT;
    if (capacity > ((size_t)1 << 24))
        return NULL;
    size_t nb = 1;
    while (nb < capacity)
        nb <<= 1;
    auth_tokcache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->entries = calloc(capacity, sizeof(*c->entries));
    c->buckets = malloc(nb * sizeof(*c->buckets));
    if (c->entries == NULL || c->buckets == NULL) {
        free(c->entries);
        free(c->buckets);
        free(c);
        return NULL;
    }
    memset(c->buckets, 0xff, nb * sizeof(*c->buckets));
    c->capacity = capacity;
    c->mask = nb - 1;
    if (RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1)
        c->seed = (uint64_t)(uintptr_t)c ^ 0x6a09e667f3bcc908ULL;
    return c;
}

void auth_tokcache_free(auth_tokcache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i != c->fill; ++i) {
        if (c->entries[i].token != NULL)
            OPENSSL_cleanse(c->entries[i].token, c->entries[i].cap);
        free(c->entries[i].token);
    }
    OPENSSL_cleanse(c->entries, c->capacity * sizeof(*c->entries));
    free(c->entries);
    free(c->buckets);
    free(c);
}

void auth_tokcache_clear(auth_tokcache_t *c)
{
    for (size_t i = 0; i != c->fill; ++i) {
        c->entries[i].used = 0;
        c->entries[i].referenced = 0;
    }
    memset(c->buckets, 0xff, (c->mask + 1) * sizeof(*c->buckets));
    c->size = 0;
    c->hand = 0;
}

static void unlink_entry(auth_tokcache_t *c, uint32_t idx)
{
    struct tc_entry *e = &c->entries[idx];
    uint32_t *link = &c->buckets[e->hash & c->mask];
    while (*link != idx)
        link = &c->entries[*link].next;
    *link = e->next;
    e->used = 0;
    e->referenced = 0;
    --c->size;
}

static uint32_t lookup(auth_tokcache_t *c, uint64_t gen, uint64_t h, const char *token, size_t len)
{
    for (uint32_t i = c->buckets[h & c->mask]; i != NIL; i = c->entries[i].next) {
        const struct tc_entry *e = &c->entries[i];
        if (e->hash == h && e->generation == gen && e->len == len && memcmp(e->token, token, len) == 0)
            return i;
    }
    return NIL;
}

const auth_claims_t *auth_tokcache_ref(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now,
                                       auth_revocation_memo_t **memo)
{
    uint32_t i =
        len <= v->max_token_bytes && c->size != 0 ? lookup(c, v->generation, hash_token(c->seed, token, len), token, len) : NIL;
    if (i != NIL && now >= c->entries[i].until) {
        unlink_entry(c, i);
        ++c->stats.expirations;
        i = NIL;
    }
    if (i == NIL) {
        ++c->stats.misses;
        return NULL;
    }
    c->entries[i].referenced = 1;
    ++c->stats.hits;
    if (memo != NULL)
        *memo = &c->entries[i].memo;
    return &c->entries[i].claims;
}

int auth_tokcache_get(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now, auth_claims_t *out)
{
    const auth_claims_t *claims = auth_tokcache_ref(c, v, token, len, now, NULL);
    if (claims == NULL)
        return 0;
    memcpy(out, claims, sizeof(*out));
    return 1;
}

/* a slot for a new entry: a never-used one, else the CLOCK hand's choice (expired entries first
 * come, then the first entry not referenced since the hand last passed) */
static uint32_t take_slot(auth_tokcache_t *c, int64_t now)
{
    if (c->fill < c->capacity)
        return (uint32_t)c->fill++;
    for (;;) {
        uint32_t i = (uint32_t)c->hand;
        c->hand = c->hand + 1 == c->capacity ? 0 : c->hand + 1;
        struct tc_entry *e = &c->entries[i];
        if (!e->used)
            return i;
        if (now >= e->until) {
            unlink_entry(c, i);
            ++c->stats.expirations;
            return i;
        }
        if (e->referenced) {
            e->referenced = 0;
            continue;
        }
        unlink_entry(c, i);
        ++c->stats.evictions;
        return i;
    }
}

const auth_claims_t *auth_tokcache_put_ref(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now,
                                           const auth_claims_t *claims, auth_revocation_memo_t **memo)
{
    if (len == 0 || len > v->max_token_bytes || len > UINT32_MAX || now >= claims->valid_until)
        return NULL;
    uint64_t h = hash_token(c->seed, token, len);
    uint32_t i = lookup(c, v->generation, h, token, len);
    struct tc_entry *e;
    if (i != NIL) { /* already there (two requests raced to verify it): refresh */
        e = &c->entries[i];
        e->claims = *claims;
        e->until = claims->valid_until;
        goto Done;
    }
    i = take_slot(c, now);
    e = &c->entries[i];
    if (e->cap < len) {
        char *buf = malloc(len);
        if (buf == NULL)
            return NULL; /* the slot stays free */
        if (e->token != NULL)
            OPENSSL_cleanse(e->token, e->cap);
        free(e->token);
        e->token = buf;
        e->cap = (uint32_t)len;
    }
    memcpy(e->token, token, len);
    e->len = (uint32_t)len;
    e->hash = h;
    e->generation = v->generation;
    e->until = claims->valid_until;
    e->claims = *claims;
    e->memo = (auth_revocation_memo_t){0};
    e->used = 1;
    e->referenced = 0;
    e->next = c->buckets[h & c->mask];
    c->buckets[h & c->mask] = i;
    ++c->size;
    ++c->stats.insertions;
Done:
    if (memo != NULL)
        *memo = &e->memo;
    return &e->claims;
}

void auth_tokcache_put(auth_tokcache_t *c, const auth_verifier_t *v, const char *token, size_t len, int64_t now,
                       const auth_claims_t *claims)
{
    auth_tokcache_put_ref(c, v, token, len, now, claims, NULL);
}

size_t auth_tokcache_size(const auth_tokcache_t *c)
{
    return c->size;
}

size_t auth_tokcache_capacity(const auth_tokcache_t *c)
{
    return c->capacity;
}

auth_tokcache_stats_t auth_tokcache_stats(const auth_tokcache_t *c)
{
    return c->stats;
}
