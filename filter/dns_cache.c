/*
 * dns_cache.c - the answer cache in front of libunbound: decoded answers
 * by type and name, for their TTL, bounded in entries and bytes (what is
 * kept and why: the top of dns.c).
 *
 * 64 shards, each with its own mutex, hash table (chains, a power of two
 * of buckets) and use order (a list, most recent first). A shard that is
 * full drops its least recently used entry; expired entries go when a
 * lookup or an insert meets them. An entry is one allocation: the struct,
 * its records, its name and the records' data, so its size is what it
 * costs. The hash is FNV-1a from a random basis: names chosen by strangers
 * cannot be made to collide on purpose, and a shard's chains cannot grow
 * past its entry bound anyway.
 */
#include "autoconf.h"

#include <sys/random.h>
#include <sys/types.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns.h"
#include "dns_cache.h"
#include "xalloc.h"

#define CACHE_SHARDS	  64
#define CACHE_ENTRIES	  16384	      /* in all */
#define CACHE_BYTES	  (8UL << 20) /* in all: entries, names, records */
#define CACHE_MAX_ENTRY	  8192	      /* bytes; a larger answer is not kept */
#define CACHE_MAX_TTL	  86400	      /* libunbound's cache-max-ttl */
#define CACHE_MAX_NEG_TTL 3600	      /* its cache-max-negative-ttl */

/* One cached answer: a single allocation holding the struct, the records,
 * the key and the records' data. */
struct centry {
	struct centry *hnext;	      /* hash chain */
	struct centry *newer, *older; /* the shard's use order */
	int64_t expires;	      /* CLOCK_MONOTONIC, ms */
	size_t size;		      /* bytes of the allocation */
	uint32_t hash;
	enum dns_type type;
	enum dns_status status;
	size_t count;
	struct dns_rr *rr;
	char *key;
	size_t keylen;
};

struct cshard {
	pthread_mutex_t mu;
	struct centry **bucket;
	size_t nbucket; /* a power of 2 */
	struct centry *newest, *oldest;
	size_t count, bytes;	     /* held */
	size_t max_count, max_bytes; /* allowed */
};

struct dns_cache {
	struct cshard shard[CACHE_SHARDS];
	uint32_t seed;		       /* of the hash, against collisions */
	uint32_t max_ttl, max_neg_ttl; /* read and set with __atomic */
};

/* key_hash - FNV-1a from a random basis, and a final mix */
static uint32_t
key_hash(uint32_t seed, const char *p, size_t len, enum dns_type type)
{
	uint32_t h = 2166136261U ^ seed;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 16777619U;
	}
	h ^= (uint32_t)type;
	h *= 16777619U;
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	return h ^ (h >> 16);
}

/* dns_cache_key - the question as the cache knows it; false if it cannot be */
bool
dns_cache_key(const struct dns_cache *c, const char *name, enum dns_type type,
    struct dns_cache_key *k)
{
	size_t len = strlen(name), i;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len > DNS_MAX_NAME)
		return false;
	for (i = 0; i < len; i++)
		k->name[i] = name[i] >= 'A' && name[i] <= 'Z'
		    ? (char)(name[i] - 'A' + 'a')
		    : name[i];
	k->name[len] = '\0';
	k->len = len;
	k->type = type;
	k->hash = key_hash(c->seed, k->name, len, type);
	return true;
}

/* The shard is chosen by the hash's low bits, the bucket by the next. */
static struct cshard *
shard_of(struct dns_cache *c, uint32_t hash)
{
	return &c->shard[hash % CACHE_SHARDS];
}

static struct centry **
bucket_of(struct cshard *s, uint32_t hash)
{
	return &s->bucket[(hash / CACHE_SHARDS) & (s->nbucket - 1)];
}

static void
order_unlink(struct cshard *s, struct centry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		s->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		s->oldest = e->newer;
}

static void
order_push(struct cshard *s, struct centry *e)
{
	e->newer = NULL;
	e->older = s->newest;
	if (s->newest != NULL)
		s->newest->newer = e;
	else
		s->oldest = e;
	s->newest = e;
}

/* shard_forget - free an entry already off its hash chain (s->mu held) */
static void
shard_forget(struct cshard *s, struct centry *e)
{
	order_unlink(s, e);
	s->count--;
	s->bytes -= e->size;
	free(e);
}

/* shard_drop - take an entry out of the shard and free it (s->mu held) */
static void
shard_drop(struct cshard *s, struct centry *e)
{
	struct centry **pp;

	for (pp = bucket_of(s, e->hash); *pp != e; pp = &(*pp)->hnext)
		;
	*pp = e->hnext;
	shard_forget(s, e);
}

/* shard_find - the live entry for k, dropping expired ones met on the way
 * (s->mu held) */
static struct centry *
shard_find(struct cshard *s, const struct dns_cache_key *k, int64_t now)
{
	struct centry **pp, *e;

	pp = bucket_of(s, k->hash);
	while ((e = *pp) != NULL) {
		if (e->expires <= now) {
			*pp = e->hnext;
			shard_forget(s, e);
			continue;
		}
		if (e->hash == k->hash && e->type == k->type &&
		    e->keylen == k->len && memcmp(e->key, k->name, k->len) == 0)
			return e;
		pp = &e->hnext;
	}
	return NULL;
}

/* shard_reset - drop every entry and size the table for max_count
 * (s->mu held, or the shard not yet shared) */
static void
shard_reset(struct cshard *s, size_t max_count, size_t max_bytes)
{
	while (s->oldest != NULL)
		shard_drop(s, s->oldest);
	free(s->bucket);
	for (s->nbucket = 1; s->nbucket < max_count; s->nbucket *= 2)
		;
	s->bucket = xcalloc(s->nbucket, sizeof(*s->bucket));
	s->max_count = max_count;
	s->max_bytes = max_bytes;
}

/* entry_new - a cache entry for an answer; NULL if it is too big to keep */
static struct centry *
entry_new(const struct dns_cache_key *k, const struct dns_answer *a,
    uint32_t ttl, int64_t now)
{
	struct centry *e;
	size_t size, i;
	char *p;

	size = sizeof(*e) + a->count * sizeof(*e->rr) + k->len + 1;
	for (i = 0; i < a->count && size <= CACHE_MAX_ENTRY; i++)
		if (a->rr[i].data != NULL)
			size += a->rr[i].len + 1;
	if (size > CACHE_MAX_ENTRY)
		return NULL;
	e = xmalloc(size);
	memset(e, 0, sizeof(*e));
	e->size = size;
	e->hash = k->hash;
	e->type = k->type;
	e->status = a->status;
	e->expires = now + (int64_t)ttl * 1000;
	e->count = a->count;
	e->rr = (struct dns_rr *)(e + 1);
	p = (char *)(e->rr + a->count);
	e->key = p;
	e->keylen = k->len;
	memcpy(p, k->name, k->len + 1);
	p += k->len + 1;
	for (i = 0; i < a->count; i++) {
		e->rr[i] = a->rr[i];
		if (a->rr[i].data != NULL) {
			memcpy(p, a->rr[i].data, a->rr[i].len + 1);
			e->rr[i].data = p;
			p += a->rr[i].len + 1;
		}
	}
	return e;
}

/* entry_copy - the caller's own copy of a cached answer */
static void
entry_copy(const struct centry *e, int64_t now, struct dns_answer *out)
{
	size_t i;

	out->status = e->status;
	out->ttl = (uint32_t)((e->expires - now + 999) / 1000);
	if (e->count == 0)
		return;
	out->rr = xreallocarray(NULL, e->count, sizeof(*out->rr));
	for (i = 0; i < e->count; i++) {
		out->rr[i] = e->rr[i];
		if (e->rr[i].data != NULL) {
			out->rr[i].data = xmalloc(e->rr[i].len + 1);
			memcpy(out->rr[i].data, e->rr[i].data,
			    e->rr[i].len + 1);
		}
	}
	out->count = e->count;
}

/* dns_cache_get - a copy of the cached answer to k into out; false if none */
bool
dns_cache_get(struct dns_cache *c, const struct dns_cache_key *k, int64_t now,
    struct dns_answer *out)
{
	struct cshard *s = shard_of(c, k->hash);
	struct centry *e;

	(void)pthread_mutex_lock(&s->mu);
	if ((e = shard_find(s, k, now)) != NULL) {
		if (s->newest != e) {
			order_unlink(s, e);
			order_push(s, e);
		}
		entry_copy(e, now, out);
	}
	(void)pthread_mutex_unlock(&s->mu);
	return e != NULL;
}

/* cache_ttl - how long an answer may be kept (seconds); 0: not at all */
static uint32_t
cache_ttl(struct dns_cache *c, const struct dns_answer *a)
{
	uint32_t max;

	switch (a->status) {
	case DNS_OK:
		max = __atomic_load_n(&c->max_ttl, __ATOMIC_RELAXED);
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		max = __atomic_load_n(&c->max_neg_ttl, __ATOMIC_RELAXED);
		break;
	default:
		return 0; /* a temporary failure: ask again next time */
	}
	return a->ttl < max ? a->ttl : max;
}

/* dns_cache_put - keep an answer to k got at now, making room as needed */
void
dns_cache_put(struct dns_cache *c, const struct dns_cache_key *k, int64_t now,
    const struct dns_answer *a)
{
	struct cshard *s = shard_of(c, k->hash);
	struct centry *e, *old;
	uint32_t ttl;

	if ((ttl = cache_ttl(c, a)) == 0 ||
	    (e = entry_new(k, a, ttl, now)) == NULL)
		return;
	(void)pthread_mutex_lock(&s->mu);
	if (s->max_count == 0 || e->size > s->max_bytes) {
		(void)pthread_mutex_unlock(&s->mu);
		free(e);
		return;
	}
	if ((old = shard_find(s, k, now)) != NULL)
		shard_drop(s, old); /* another thread asked meanwhile */
	while (s->count >= s->max_count || s->bytes + e->size > s->max_bytes)
		shard_drop(s, s->oldest);
	e->hnext = *bucket_of(s, e->hash);
	*bucket_of(s, e->hash) = e;
	order_push(s, e);
	s->count++;
	s->bytes += e->size;
	(void)pthread_mutex_unlock(&s->mu);
}

struct dns_cache *
dns_cache_new(void)
{
	struct dns_cache *c = xcalloc(1, sizeof(*c));
	struct timespec ts;
	size_t i;

	if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(c->seed)) {
		/* a weaker seed still spreads names; chains stay bounded */
		(void)clock_gettime(CLOCK_MONOTONIC, &ts);
		c->seed = (uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)c;
	}
	c->max_ttl = CACHE_MAX_TTL;
	c->max_neg_ttl = CACHE_MAX_NEG_TTL;
	for (i = 0; i < CACHE_SHARDS; i++) {
		(void)pthread_mutex_init(&c->shard[i].mu, NULL);
		shard_reset(&c->shard[i], CACHE_ENTRIES / CACHE_SHARDS,
		    CACHE_BYTES / CACHE_SHARDS);
	}
	return c;
}

void
dns_cache_free(struct dns_cache *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < CACHE_SHARDS; i++) {
		while (c->shard[i].oldest != NULL)
			shard_drop(&c->shard[i], c->shard[i].oldest);
		free(c->shard[i].bucket);
		(void)pthread_mutex_destroy(&c->shard[i].mu);
	}
	free(c);
}

void
dns_cache_count(struct dns_cache *c, size_t *entries, size_t *bytes)
{
	struct cshard *s;
	size_t i;

	*entries = *bytes = 0;
	for (i = 0; i < CACHE_SHARDS; i++) {
		s = &c->shard[i];
		(void)pthread_mutex_lock(&s->mu);
		*entries += s->count;
		*bytes += s->bytes;
		(void)pthread_mutex_unlock(&s->mu);
	}
}

void
dns_cache_set_limits(struct dns_cache *c, size_t entries, size_t bytes,
    uint32_t max_ttl, uint32_t max_neg_ttl)
{
	struct cshard *s;
	size_t i;

	__atomic_store_n(&c->max_ttl, max_ttl, __ATOMIC_RELAXED);
	__atomic_store_n(&c->max_neg_ttl, max_neg_ttl, __ATOMIC_RELAXED);
	for (i = 0; i < CACHE_SHARDS; i++) {
		s = &c->shard[i];
		(void)pthread_mutex_lock(&s->mu);
		shard_reset(s, entries / CACHE_SHARDS, bytes / CACHE_SHARDS);
		(void)pthread_mutex_unlock(&s->mu);
	}
}
