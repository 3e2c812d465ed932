/*
 * store.h - the reputation store: small records of named 64-bit counters
 * under a key, updated atomically, expired by the store.
 *
 * Two backends behind one interface: LMDB (a file on this host, shared
 * safely by several processes, surviving restarts; the default) and Redis
 * (hiredis; one server shared by a fleet of MX hosts). Reputation logic
 * (reputation.c) sees only this interface.
 *
 * store_update() applies a list of operations to one key's record as one
 * atomic step: no increment is lost when processes or hosts update the
 * same key at once. Every call is bounded in time (Redis: the configured
 * timeout; LMDB: local I/O); a failure returns -1 with a reason and never
 * blocks the caller beyond that. A handle is safe for use from any number
 * of threads.
 */
#ifndef SPFGUARD_STORE_H
#define SPFGUARD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_backend {
	STORE_LMDB,
	STORE_REDIS,
};

struct store_opts {
	enum store_backend backend;
	/* LMDB */
	const char *path;   /* a directory; created if missing */
	size_t map_size_mb; /* 0: 64 */
	/* Redis */
	const char *host;     /* name or address; "unix:/path" for a
				 socket */
	unsigned port;	      /* 0: 6379 */
	const char *password; /* NULL: no AUTH */
	unsigned db;	      /* SELECT index */
	unsigned pool;	      /* most connections; 0: 4 */
	unsigned timeout_ms;  /* connect and command; 0: 250 */
	/* both */
	const char *prefix; /* put before every key; NULL: "spfguard:" */
};

enum store_op_kind {
	STORE_GET,   /* read the field */
	STORE_SET,   /* field = value */
	STORE_SETNX, /* field = value unless the field exists */
	STORE_INCR,  /* field += value (absent counts as 0) */
};

/*
 * One operation on a field of the key's record. On success, `value` holds
 * the field's value after the operation (GET of an absent field: 0) and
 * `found` whether the field existed before it.
 */
struct store_op {
	enum store_op_kind kind;
	const char *field; /* [a-z0-9_], at most 32 bytes */
	int64_t value;
	bool found;
};

struct store;

struct store *store_open(const struct store_opts *, char *err, size_t errlen);
void store_close(struct store *);

/*
 * Apply ops in order to the record under key (any bytes but NUL, at most
 * 512). ttl_s > 0: the whole record expires ttl_s seconds from now (set
 * again on every call that gives it); 0: its expiry is left as it was
 * (a new record made without a ttl does not expire). A call with only
 * GETs creates nothing. Returns 0, or -1 and a reason in err.
 */
int store_update(struct store *, const char *key, struct store_op *ops,
    size_t nops, unsigned ttl_s, char *err, size_t errlen);

/* Remove a key; 0 (also when absent) or -1. */
int store_delete(struct store *, const char *key, char *err, size_t errlen);

/*
 * Remove expired records, at most `max` of them (0: no bound); the number
 * removed, or -1. LMDB only needs it (Redis expires keys itself, where it
 * returns 0); the daemon calls it now and then.
 */
long store_sweep(struct store *, size_t max, char *err, size_t errlen);

struct store_stats {
	unsigned long updates; /* store_update() calls */
	unsigned long errors;  /* of which failed */
	unsigned long swept;   /* records removed by store_sweep() */
};
void store_get_stats(struct store *, struct store_stats *);

const char *store_backend_name(enum store_backend);

#endif
