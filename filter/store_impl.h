/*
 * store_impl.h - the backends behind store.h (internal to the store
 * module).
 *
 * store.c checks every argument, fills in the defaults of the options and
 * puts the prefix before the key, so a backend sees a valid full key (1 to
 * STORE_FULLKEY_MAX bytes, no NUL), valid fields and known op kinds, and
 * only has to store.
 */
#ifndef SPFGUARD_STORE_IMPL_H
#define SPFGUARD_STORE_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#define STORE_KEY_MAX	  512 /* of a caller's key */
#define STORE_PREFIX_MAX  64
#define STORE_FULLKEY_MAX (STORE_PREFIX_MAX + STORE_KEY_MAX)
#define STORE_FIELD_MAX	  32

struct store_backend_ops {
	/* opts has its defaults filled in; NULL and a reason on failure */
	void *(*open)(const struct store_opts *, char *err, size_t errlen);
	void (*close)(void *);
	/* writes: some op is not a GET (a call without them creates nothing) */
	int (*update)(void *, const char *key, size_t keylen, struct store_op *,
	    size_t nops, bool writes, unsigned ttl_s, char *err, size_t errlen);
	int (*del)(void *, const char *key, size_t keylen, char *err,
	    size_t errlen);
	long (*sweep)(void *, size_t max, char *err, size_t errlen);
};

extern const struct store_backend_ops store_lmdb_backend;
extern const struct store_backend_ops store_redis_backend;

#endif
