/*
 * dns_cache.h - the answer cache in front of libunbound (dns_cache.c);
 * private to dns.c, which says what is kept and why.
 */
#ifndef SPFGUARD_DNS_CACHE_H
#define SPFGUARD_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

/* A question as the cache knows it */
struct dns_cache_key {
	char name[DNS_MAX_NAME + 1]; /* ASCII lower case, no final dot */
	size_t len;
	enum dns_type type;
	uint32_t hash;
};

struct dns_cache;

struct dns_cache *dns_cache_new(void);
void dns_cache_free(struct dns_cache *);

/* The question as the cache knows it; false if it cannot be kept. */
bool dns_cache_key(const struct dns_cache *, const char *name, enum dns_type,
    struct dns_cache_key *);
/* A copy of the live answer to the question into out (its records the
 * caller's, its TTL what is left); false if none. now: CLOCK_MONOTONIC
 * in milliseconds. */
bool dns_cache_get(struct dns_cache *, const struct dns_cache_key *,
    int64_t now, struct dns_answer *out);
/* Keep an answer got at now, if it may be kept (not a temporary failure,
 * a TTL, not too big), making room as needed. */
void dns_cache_put(struct dns_cache *, const struct dns_cache_key *,
    int64_t now, const struct dns_answer *);

void dns_cache_count(struct dns_cache *, size_t *entries, size_t *bytes);
void dns_cache_set_limits(struct dns_cache *, size_t entries, size_t bytes,
    uint32_t max_ttl, uint32_t max_neg_ttl);

#endif
