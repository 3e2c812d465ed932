/*
 * store.c - the reputation store's front: argument checks, defaults,
 * the key prefix, statistics, and dispatch to a backend (store_lmdb.c,
 * store_redis.c through store_impl.h).
 *
 * Everything a backend would otherwise check twice is checked here once:
 * a key is 1 to 512 bytes (no NUL, by being a C string), a field is 1 to 32
 * bytes of [a-z0-9_], an op kind is known. A bad argument fails the call
 * with a reason and never reaches a backend. The full key (prefix + key)
 * is built on the stack; nothing here allocates per call.
 *
 * The handle owns its copies of every string of the options; the caller's
 * store_opts may go away after store_open(). Statistics are atomic
 * counters, so store_get_stats() takes no lock and may run at any time.
 */
#include "autoconf.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_impl.h"
#include "xalloc.h"

#define DEFAULT_PREFIX	   "spfguard:"
#define DEFAULT_MAP_MB	   64
#define DEFAULT_PORT	   6379
#define DEFAULT_POOL	   4
#define DEFAULT_TIMEOUT_MS 250

struct store {
	const struct store_backend_ops *ops;
	void *be;
	char prefix[STORE_PREFIX_MAX + 1];
	size_t prefixlen;
	atomic_ulong updates;
	atomic_ulong errors;
	atomic_ulong swept;
};

const char *
store_backend_name(enum store_backend b)
{
	switch (b) {
	case STORE_LMDB:
		return "lmdb";
	case STORE_REDIS:
		return "redis";
	}
	return "unknown";
}

struct store *
store_open(const struct store_opts *opts, char *err, size_t errlen)
{
	struct store_opts o = *opts;
	struct store *s;
	const char *prefix;

	prefix = o.prefix != NULL ? o.prefix : DEFAULT_PREFIX;
	if (strlen(prefix) > STORE_PREFIX_MAX) {
		(void)snprintf(err, errlen, "store prefix longer than %d bytes",
		    STORE_PREFIX_MAX);
		return NULL;
	}
	o.prefix = prefix;
	if (o.map_size_mb == 0)
		o.map_size_mb = DEFAULT_MAP_MB;
	if (o.port == 0)
		o.port = DEFAULT_PORT;
	if (o.pool == 0)
		o.pool = DEFAULT_POOL;
	if (o.timeout_ms == 0)
		o.timeout_ms = DEFAULT_TIMEOUT_MS;

	s = xcalloc(1, sizeof(*s));
	switch (o.backend) {
	case STORE_LMDB:
		s->ops = &store_lmdb_backend;
		if (o.path == NULL || *o.path == '\0') {
			(void)snprintf(err, errlen, "LMDB store: no path");
			free(s);
			return NULL;
		}
		break;
	case STORE_REDIS:
		s->ops = &store_redis_backend;
		if (o.host == NULL || *o.host == '\0')
			o.host = "127.0.0.1";
		break;
	default:
		(void)snprintf(err, errlen, "unknown store backend %d",
		    (int)o.backend);
		free(s);
		return NULL;
	}
	(void)strcpy(s->prefix, prefix);
	s->prefixlen = strlen(prefix);
	atomic_init(&s->updates, 0);
	atomic_init(&s->errors, 0);
	atomic_init(&s->swept, 0);
	if ((s->be = s->ops->open(&o, err, errlen)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	s->ops->close(s->be);
	free(s);
}

/* full_key - prefix + key into buf (STORE_FULLKEY_MAX + 1), or -1 */
static int
full_key(const struct store *s, const char *key, char *buf, size_t *len,
    char *err, size_t errlen)
{
	size_t klen;

	if (key == NULL || *key == '\0') {
		(void)snprintf(err, errlen, "store: empty key");
		return -1;
	}
	if ((klen = strlen(key)) > STORE_KEY_MAX) {
		(void)snprintf(err, errlen, "store: key longer than %d bytes",
		    STORE_KEY_MAX);
		return -1;
	}
	memcpy(buf, s->prefix, s->prefixlen);
	memcpy(buf + s->prefixlen, key, klen + 1);
	*len = s->prefixlen + klen;
	return 0;
}

/* check_ops - every op of a known kind on a well-formed field */
static int
check_ops(const struct store_op *ops, size_t nops, bool *writes, char *err,
    size_t errlen)
{
	const char *p;
	size_t i, n;

	*writes = false;
	if (nops > 0 && ops == NULL) {
		(void)snprintf(err, errlen, "store: no ops");
		return -1;
	}
	for (i = 0; i < nops; i++) {
		switch (ops[i].kind) {
		case STORE_GET:
			break;
		case STORE_SET:
		case STORE_SETNX:
		case STORE_INCR:
			*writes = true;
			break;
		default:
			(void)snprintf(err, errlen, "store: unknown op %d",
			    (int)ops[i].kind);
			return -1;
		}
		if ((p = ops[i].field) == NULL || *p == '\0') {
			(void)snprintf(err, errlen, "store: empty field name");
			return -1;
		}
		for (n = 0; p[n] != '\0'; n++)
			if (n == STORE_FIELD_MAX ||
			    !((p[n] >= 'a' && p[n] <= 'z') ||
				(p[n] >= '0' && p[n] <= '9') || p[n] == '_')) {
				(void)snprintf(err, errlen,
				    "store: bad field name (want [a-z0-9_], "
				    "at most %d bytes)",
				    STORE_FIELD_MAX);
				return -1;
			}
	}
	return 0;
}

int
store_update(struct store *s, const char *key, struct store_op *ops,
    size_t nops, unsigned ttl_s, char *err, size_t errlen)
{
	char fk[STORE_FULLKEY_MAX + 1];
	size_t fklen;
	bool writes;
	int rc = -1;

	atomic_fetch_add_explicit(&s->updates, 1, memory_order_relaxed);
	if (full_key(s, key, fk, &fklen, err, errlen) == 0 &&
	    check_ops(ops, nops, &writes, err, errlen) == 0) {
		if (nops == 0)
			rc = 0;
		else
			rc = s->ops->update(s->be, fk, fklen, ops, nops, writes,
			    ttl_s, err, errlen);
	}
	if (rc != 0)
		atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
	return rc;
}

int
store_delete(struct store *s, const char *key, char *err, size_t errlen)
{
	char fk[STORE_FULLKEY_MAX + 1];
	size_t fklen;

	if (full_key(s, key, fk, &fklen, err, errlen) == -1)
		return -1;
	return s->ops->del(s->be, fk, fklen, err, errlen);
}

long
store_sweep(struct store *s, size_t max, char *err, size_t errlen)
{
	long n;

	if ((n = s->ops->sweep(s->be, max, err, errlen)) > 0)
		atomic_fetch_add_explicit(&s->swept, (unsigned long)n,
		    memory_order_relaxed);
	return n;
}

void
store_get_stats(struct store *s, struct store_stats *st)
{
	st->updates = atomic_load_explicit(&s->updates, memory_order_relaxed);
	st->errors = atomic_load_explicit(&s->errors, memory_order_relaxed);
	st->swept = atomic_load_explicit(&s->swept, memory_order_relaxed);
}
