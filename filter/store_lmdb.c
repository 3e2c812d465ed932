/*
 * store_lmdb.c - the LMDB backend of the store: one file on this host,
 * shared by every process that opens the same directory.
 *
 * One MDB_env per handle, opened with MDB_NOTLS (read transactions are not
 * tied to threads, so any thread may use the handle) and MDB_NOMETASYNC
 * (a crash of the OS may lose the last transaction, never corrupt the
 * file). Open the store after any fork(): an MDB_env must not be used in
 * a process other than the one that opened it. The directory is created
 * (mode 0750) when missing; its parent must exist.
 *
 * Atomicity: store_update() is one LMDB write transaction (read the record,
 * apply the ops, write it back). LMDB serialises writers across threads and
 * processes with its lock file, so no increment is lost. A call with only
 * GETs runs in a read transaction and writes nothing (not even the
 * expiry). An INCR that would overflow int64 fails the whole call and
 * nothing of it is written.
 *
 * Keys live in the main database as prefix+key. LMDB keys are limited to
 * mdb_env_get_maxkeysize() bytes (511); a longer key is stored as its
 * first bytes, a NUL (which no real key contains) and a 64-bit FNV-1a
 * digest of it, and its record carries the whole key, compared on every
 * read: a digest collision reads as absent and is overwritten, it never
 * returns another key's counters.
 *
 * Value encoding, version 1, native byte order (an LMDB file is not
 * portable across byte orders anyway):
 *	u8 magic 'R', u8 version 1, u8 flags (1: whole key follows),
 *	u8 number of fields, i64 expiry (unix seconds, 0: never),
 *	[u16 key length, key bytes],
 *	then per field: u8 name length, name, i64 value.
 * A record that does not decode (corrupt, unknown version) reads as
 * absent, is replaced by the next write and is removed by store_sweep();
 * this is not counted as an error: the call did what it was asked. An
 * expired record reads as absent the same way. Expiry is kept in whole
 * seconds and a record lives through its last second: ttl_s 1 lives 1 to
 * 2 s, never less than asked.
 *
 * Failures (MDB_MAP_FULL, ENOSPC, EACCES, ...) abort the transaction and
 * return -1 with "LMDB <dir>: <mdb_strerror>"; the handle stays usable
 * (after MDB_MAP_FULL reads still work, and deletes or a sweep make room).
 * When another process has grown the map (MDB_MAP_RESIZED), the new size
 * is adopted under a write lock that no transaction of ours holds, and the
 * call is retried once.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_impl.h"
#include "xalloc.h"

#define REC_MAGIC      'R'
#define REC_VERSION    1
#define REC_F_FULLKEY  0x01
#define REC_HDR	       12
#define REC_FIELDS_MAX 255
#define MAX_READERS    512
#define SWEEP_SCAN     4096 /* records looked at per write transaction */
#define DIGEST_LEN     8

struct lmdb {
	MDB_env *env;
	MDB_dbi dbi;
	char *path;
	size_t maxkey;
	/* every transaction holds it shared; adopting a new map size takes
	 * it exclusively (mdb_env_set_mapsize needs no live transaction) */
	pthread_rwlock_t resize;
};

struct rec_field {
	const char *name; /* into the old value or an op: valid for the txn */
	size_t len;
	int64_t value;
};

struct rec {
	int64_t expires;
	const char *key; /* the whole key, kept for a digest key */
	size_t keylen;
	size_t n;
	struct rec_field f[REC_FIELDS_MAX];
};

/* a record key as LMDB stores it */
struct dbkey {
	unsigned char buf[STORE_FULLKEY_MAX];
	MDB_val val;
	bool digest; /* the record must carry the whole key */
};

static int
lmdb_fail(const struct lmdb *l, int rc, char *err, size_t errlen)
{
	(void)snprintf(err, errlen, "LMDB %s: %s", l->path, mdb_strerror(rc));
	return -1;
}

static void *
lmdb_open(const struct store_opts *o, char *err, size_t errlen)
{
	struct lmdb *l;
	MDB_txn *txn;
	int rc, dead;

	if (mkdir(o->path, 0750) == -1 && errno != EEXIST) {
		(void)snprintf(err, errlen, "LMDB %s: mkdir: %s", o->path,
		    strerror(errno));
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->path = xstrdup(o->path);
	if ((rc = mdb_env_create(&l->env)) != 0)
		goto fail;
	if ((rc = mdb_env_set_mapsize(l->env, o->map_size_mb << 20)) != 0 ||
	    (rc = mdb_env_set_maxreaders(l->env, MAX_READERS)) != 0 ||
	    (rc = mdb_env_open(l->env, o->path, MDB_NOTLS | MDB_NOMETASYNC,
		 0640)) != 0)
		goto fail;
	/* slots of readers that died without ending their transaction */
	(void)mdb_reader_check(l->env, &dead);
	if ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &l->dbi)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	l->maxkey = (size_t)mdb_env_get_maxkeysize(l->env);
	(void)pthread_rwlock_init(&l->resize, NULL);
	return l;
fail:
	(void)lmdb_fail(l, rc, err, errlen);
	if (l->env != NULL)
		mdb_env_close(l->env);
	free(l->path);
	free(l);
	return NULL;
}

static void
lmdb_close(void *p)
{
	struct lmdb *l = p;

	mdb_env_close(l->env);
	(void)pthread_rwlock_destroy(&l->resize);
	free(l->path);
	free(l);
}

/* make_key - the LMDB key of a full key (see the top: long keys) */
static void
make_key(const struct lmdb *l, const char *key, size_t len, struct dbkey *k)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i, keep;

	k->val.mv_data = k->buf;
	if (len <= l->maxkey) {
		memcpy(k->buf, key, len);
		k->val.mv_size = len;
		k->digest = false;
		return;
	}
	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ULL;
	keep = l->maxkey - 1 - DIGEST_LEN;
	memcpy(k->buf, key, keep);
	k->buf[keep] = '\0';
	memcpy(k->buf + keep + 1, &h, DIGEST_LEN);
	k->val.mv_size = keep + 1 + DIGEST_LEN;
	k->digest = true;
}

/* rec_decode - a stored value into r (which points into it), or -1 */
static int
rec_decode(const MDB_val *v, struct rec *r)
{
	const unsigned char *p = v->mv_data, *end = p + v->mv_size;
	uint16_t klen;
	size_t i;
	int flags;

	r->key = NULL;
	r->keylen = 0;
	if (v->mv_size < REC_HDR || p[0] != REC_MAGIC || p[1] != REC_VERSION ||
	    (p[2] & ~REC_F_FULLKEY) != 0)
		return -1;
	flags = p[2];
	r->n = p[3];
	memcpy(&r->expires, p + 4, sizeof(r->expires));
	p += REC_HDR;
	if (flags & REC_F_FULLKEY) {
		if (end - p < 2)
			return -1;
		memcpy(&klen, p, 2);
		if (klen == 0 || end - p - 2 < klen)
			return -1;
		r->key = (const char *)p + 2;
		r->keylen = klen;
		p += 2 + klen;
	}
	for (i = 0; i < r->n; i++) {
		if (end - p < 1 || p[0] == 0 || p[0] > STORE_FIELD_MAX ||
		    end - p < 1 + p[0] + 8)
			return -1;
		r->f[i].len = p[0];
		r->f[i].name = (const char *)p + 1;
		memcpy(&r->f[i].value, p + 1 + p[0], 8);
		p += 1 + p[0] + 8;
	}
	return p == end ? 0 : -1;
}

/* rec_load - the live record of key k from v: it decodes, is this key's
 * (not a digest collision's) and has not expired */
static bool
rec_load(const MDB_val *v, const struct dbkey *k, const char *key,
    size_t keylen, int64_t now, struct rec *r)
{
	if (rec_decode(v, r) == -1)
		return false;
	if (k->digest ? r->keylen != keylen || memcmp(r->key, key, keylen) != 0
		      : r->key != NULL)
		return false;
	return r->expires == 0 || r->expires >= now;
}

/* rec_encode - r as a value (see the top), in a buffer the caller frees */
static void *
rec_encode(const struct rec *r, const char *key, size_t keylen, bool digest,
    size_t *len)
{
	unsigned char *buf, *p;
	uint16_t klen = (uint16_t)keylen;
	size_t i, n = REC_HDR;

	if (digest)
		n += 2 + keylen;
	for (i = 0; i < r->n; i++)
		n += 1 + r->f[i].len + 8;
	p = buf = xmalloc(n);
	p[0] = REC_MAGIC;
	p[1] = REC_VERSION;
	p[2] = digest ? REC_F_FULLKEY : 0;
	p[3] = (unsigned char)r->n;
	memcpy(p + 4, &r->expires, 8);
	p += REC_HDR;
	if (digest) {
		memcpy(p, &klen, 2);
		memcpy(p + 2, key, keylen);
		p += 2 + keylen;
	}
	for (i = 0; i < r->n; i++) {
		*p = (unsigned char)r->f[i].len;
		memcpy(p + 1, r->f[i].name, r->f[i].len);
		memcpy(p + 1 + r->f[i].len, &r->f[i].value, 8);
		p += 1 + r->f[i].len + 8;
	}
	*len = n;
	return buf;
}

static struct rec_field *
rec_find(struct rec *r, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < r->n; i++)
		if (r->f[i].len == len && memcmp(r->f[i].name, name, len) == 0)
			return &r->f[i];
	return NULL;
}

/* rec_apply - the ops in order on r; -1 (nothing to be written) when a
 * field cannot be added or an INCR overflows */
static int
rec_apply(struct rec *r, struct store_op *ops, size_t nops, char *err,
    size_t errlen)
{
	struct rec_field *f;
	size_t i;

	for (i = 0; i < nops; i++) {
		f = rec_find(r, ops[i].field);
		ops[i].found = f != NULL;
		if (f == NULL && ops[i].kind != STORE_GET) {
			if (r->n == REC_FIELDS_MAX) {
				(void)snprintf(err, errlen,
				    "store: a record holds at most %d fields",
				    REC_FIELDS_MAX);
				return -1;
			}
			f = &r->f[r->n++];
			f->name = ops[i].field;
			f->len = strlen(ops[i].field);
			f->value = 0;
			if (ops[i].kind == STORE_SETNX)
				f->value = ops[i].value;
		}
		switch (ops[i].kind) {
		case STORE_GET:
		case STORE_SETNX:
			break;
		case STORE_SET:
			f->value = ops[i].value;
			break;
		case STORE_INCR:
			if (__builtin_add_overflow(f->value, ops[i].value,
				&f->value)) {
				(void)snprintf(err, errlen,
				    "store: INCR of %s overflows",
				    ops[i].field);
				return -1;
			}
			break;
		}
		ops[i].value = f != NULL ? f->value : 0;
	}
	return 0;
}

/* txn_begin - a transaction, adopting a map grown by another process */
static int
txn_begin(struct lmdb *l, unsigned flags, MDB_txn **txn)
{
	int rc;

	(void)pthread_rwlock_rdlock(&l->resize);
	if ((rc = mdb_txn_begin(l->env, NULL, flags, txn)) != MDB_MAP_RESIZED)
		goto out;
	(void)pthread_rwlock_unlock(&l->resize);
	(void)pthread_rwlock_wrlock(&l->resize);
	rc = mdb_env_set_mapsize(l->env, 0);
	(void)pthread_rwlock_unlock(&l->resize);
	(void)pthread_rwlock_rdlock(&l->resize);
	if (rc == 0)
		rc = mdb_txn_begin(l->env, NULL, flags, txn);
out:
	if (rc != 0)
		(void)pthread_rwlock_unlock(&l->resize);
	return rc;
}

/* txn_end - commit (or abort) a transaction begun by txn_begin() */
static int
txn_end(struct lmdb *l, MDB_txn *txn, bool commit)
{
	int rc = 0;

	if (commit)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	(void)pthread_rwlock_unlock(&l->resize);
	return rc;
}

static int
lmdb_update(void *p, const char *key, size_t keylen, struct store_op *ops,
    size_t nops, bool writes, unsigned ttl_s, char *err, size_t errlen)
{
	struct lmdb *l = p;
	struct dbkey k;
	struct rec *r;
	MDB_txn *txn;
	MDB_val v;
	int64_t now = (int64_t)time(NULL);
	bool exists = false;
	void *buf;
	int rc;

	make_key(l, key, keylen, &k);
	if ((rc = txn_begin(l, writes ? 0 : MDB_RDONLY, &txn)) != 0)
		return lmdb_fail(l, rc, err, errlen);
	r = xmalloc(sizeof(*r));
	rc = mdb_get(txn, l->dbi, &k.val, &v);
	if (rc == 0)
		exists = rec_load(&v, &k, key, keylen, now, r);
	else if (rc != MDB_NOTFOUND)
		goto fail;
	if (!exists) {
		r->n = 0;
		r->expires = 0;
	}
	if (rec_apply(r, ops, nops, err, errlen) == -1) {
		(void)txn_end(l, txn, false);
		free(r);
		return -1;
	}
	if (!writes) {
		(void)txn_end(l, txn, false);
		free(r);
		return 0;
	}
	if (ttl_s > 0)
		r->expires = now + (int64_t)ttl_s;
	buf = rec_encode(r, key, keylen, k.digest, &v.mv_size);
	v.mv_data = buf;
	rc = mdb_put(txn, l->dbi, &k.val, &v, 0);
	free(buf);
	if (rc != 0)
		goto fail;
	free(r);
	if ((rc = txn_end(l, txn, true)) != 0)
		return lmdb_fail(l, rc, err, errlen);
	return 0;
fail:
	(void)txn_end(l, txn, false);
	free(r);
	return lmdb_fail(l, rc, err, errlen);
}

static int
lmdb_del(void *p, const char *key, size_t keylen, char *err, size_t errlen)
{
	struct lmdb *l = p;
	struct dbkey k;
	struct rec *r;
	MDB_txn *txn;
	MDB_val v;
	int rc;

	make_key(l, key, keylen, &k);
	if ((rc = txn_begin(l, 0, &txn)) != 0)
		return lmdb_fail(l, rc, err, errlen);
	rc = mdb_get(txn, l->dbi, &k.val, &v);
	if (rc == 0 && k.digest) {
		/* a digest collision is another key's record: keep it */
		r = xmalloc(sizeof(*r));
		if (rec_decode(&v, r) == -1 || r->keylen != keylen ||
		    memcmp(r->key, key, keylen) != 0)
			rc = MDB_NOTFOUND;
		free(r);
	}
	if (rc == 0)
		rc = mdb_del(txn, l->dbi, &k.val, NULL);
	if (rc == MDB_NOTFOUND) {
		(void)txn_end(l, txn, false);
		return 0;
	}
	if (rc != 0) {
		(void)txn_end(l, txn, false);
		return lmdb_fail(l, rc, err, errlen);
	}
	if ((rc = txn_end(l, txn, true)) != 0)
		return lmdb_fail(l, rc, err, errlen);
	return 0;
}

/* dead - an expired record, or one that does not decode */
static bool
dead(const MDB_val *v, int64_t now, struct rec *r)
{
	if (rec_decode(v, r) == -1)
		return true;
	return r->expires != 0 && r->expires < now;
}

/* sweep_batch - one write transaction of a sweep, from *pos (NULL: the
 * first key) over at most SWEEP_SCAN records; *pos is where the next
 * batch starts, its size 0 at the end */
static int
sweep_batch(struct lmdb *l, MDB_val *pos, unsigned char *posbuf,
    size_t *removed, size_t max, int64_t now, struct rec *r)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	size_t scanned = 0;
	int rc;

	if ((rc = txn_begin(l, 0, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, l->dbi, &cur)) != 0) {
		(void)txn_end(l, txn, false);
		return rc;
	}
	k = *pos;
	rc = mdb_cursor_get(cur, &k, &v,
	    pos->mv_size == 0 ? MDB_FIRST : MDB_SET_RANGE);
	while (
	    rc == 0 && scanned < SWEEP_SCAN && (max == 0 || *removed < max)) {
		scanned++;
		if (dead(&v, now, r)) {
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
			(*removed)++;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	pos->mv_size = 0;
	if (rc == 0) { /* more to look at: the next batch starts here */
		memcpy(posbuf, k.mv_data, k.mv_size);
		pos->mv_size = k.mv_size;
	} else if (rc != MDB_NOTFOUND) {
		mdb_cursor_close(cur);
		(void)txn_end(l, txn, false);
		return rc;
	}
	mdb_cursor_close(cur);
	return txn_end(l, txn, true);
}

/*
 * bump - one more committed write transaction after a sweep. LMDB reuses
 * the pages a transaction freed only two transactions later (the previous
 * meta page still points at them), so without it the room a sweep made
 * in a full map could never be used: the next write would fail, and
 * commit nothing that would move the transaction id on. It writes and
 * removes the key "\0", which no full key can be (none starts with NUL).
 */
static void
bump(struct lmdb *l)
{
	MDB_val k = {1, (void *)""}, v = {0, (void *)""};
	MDB_txn *txn;

	if (txn_begin(l, 0, &txn) != 0)
		return;
	if (mdb_put(txn, l->dbi, &k, &v, 0) == 0 &&
	    mdb_del(txn, l->dbi, &k, NULL) == 0)
		(void)txn_end(l, txn, true);
	else
		(void)txn_end(l, txn, false);
}

static long
lmdb_sweep(void *p, size_t max, char *err, size_t errlen)
{
	struct lmdb *l = p;
	unsigned char posbuf[STORE_FULLKEY_MAX];
	MDB_val pos = {0, posbuf};
	size_t removed = 0;
	int64_t now = (int64_t)time(NULL);
	struct rec *r = xmalloc(sizeof(*r));
	int rc;

	do {
		rc = sweep_batch(l, &pos, posbuf, &removed, max, now, r);
	} while (rc == 0 && pos.mv_size != 0 && (max == 0 || removed < max));
	free(r);
	if (removed > 0)
		bump(l);
	if (rc != 0) /* batches committed before stay removed */
		return lmdb_fail(l, rc, err, errlen);
	return (long)removed;
}

const struct store_backend_ops store_lmdb_backend = {
    .open = lmdb_open,
    .close = lmdb_close,
    .update = lmdb_update,
    .del = lmdb_del,
    .sweep = lmdb_sweep,
};
