/*
 * test_store.c - the reputation store (store.h) on both backends.
 *
 * LMDB runs in a mkdtemp directory; Redis against a private redis-server
 * on 127.0.0.1 and a free port, started here as a child (killed by its pid
 * at the end, and by PR_SET_PDEATHSIG should this test die first). Without
 * /usr/bin/redis-server the Redis cases are one TAP skip saying so.
 *
 * The same tables run on both backends: the semantic rows (in order, on
 * one store: each row sees what the rows before it left), bad arguments,
 * and the expiry rows, which are set up, then one sleep of EXPIRY_WAIT_MS,
 * then checked. What the store wrote is checked behind its back: LMDB
 * from a forked child that opens the files with liblmdb itself (a process
 * must not open one environment twice), Redis with a raw hiredis
 * connection.
 */
#include "autoconf.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "tap.h"

#define REDIS_SERVER   "/usr/bin/redis-server"
#define EXPIRY_WAIT_MS 2100 /* ttl 1 s: LMDB keeps whole seconds, 1-2 s */
#define THREADS	       4
#define PROCS	       4
#define PER_WORKER     200
#define TEST_DEADLINE  240 /* seconds, then SIGALRM ends it all */

static char tmpdir[64];
static char key512[513], key512b[513], key513[514];

/* the backend under test */
struct backend {
	const char *name;
	struct store_opts opts;
	struct store *s;
	/* does the store's full key exist, seen without the store: 1, 0, -1 */
	int (*exists)(struct backend *, const char *key);
};

static double
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static const char *
prefix_of(const struct backend *b)
{
	return b->opts.prefix != NULL ? b->opts.prefix : "spfguard:";
}

/*
 * LMDB, looked at from a child process.
 */

/* lmdb_child - run fn on the environment in a child; its answer or -1 */
static long
lmdb_child(const char *dir, long (*fn)(MDB_env *, MDB_txn *, const void *),
    const void *arg, bool rw)
{
	MDB_env *env;
	MDB_txn *txn;
	int fds[2], st;
	long v = -1;
	pid_t pid;

	if (pipe(fds) == -1 || (pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		(void)close(fds[0]);
		if (mdb_env_create(&env) == 0 &&
		    mdb_env_open(env, dir, MDB_NOTLS, 0640) == 0 &&
		    mdb_txn_begin(env, NULL, rw ? 0 : MDB_RDONLY, &txn) == 0) {
			v = fn(env, txn, arg);
			if (rw && mdb_txn_commit(txn) != 0)
				v = -1;
			else if (!rw)
				mdb_txn_abort(txn);
		}
		(void)write(fds[1], &v, sizeof(v));
		_exit(0);
	}
	(void)close(fds[1]);
	if (read(fds[0], &v, sizeof(v)) != sizeof(v))
		v = -1;
	(void)close(fds[0]);
	(void)waitpid(pid, &st, 0);
	return v;
}

static long
lmdb_count_fn(MDB_env *env, MDB_txn *txn, const void *arg)
{
	MDB_stat st;
	MDB_dbi dbi;

	if (mdb_dbi_open(txn, NULL, 0, &dbi) != 0 ||
	    mdb_stat(txn, dbi, &st) != 0)
		return -1;
	return (long)st.ms_entries;
}

static long
lmdb_exists_fn(MDB_env *env, MDB_txn *txn, const void *arg)
{
	MDB_val k = {strlen(arg), (void *)arg}, v;
	MDB_dbi dbi;
	int rc;

	if (mdb_dbi_open(txn, NULL, 0, &dbi) != 0)
		return -1;
	rc = mdb_get(txn, dbi, &k, &v);
	return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
}

/* a value no version of the store wrote */
static long
lmdb_garbage_fn(MDB_env *env, MDB_txn *txn, const void *arg)
{
	MDB_val k = {strlen(arg), (void *)arg}, v = {5, (void *)"junk!"};
	MDB_dbi dbi;

	if (mdb_dbi_open(txn, NULL, 0, &dbi) != 0 ||
	    mdb_put(txn, dbi, &k, &v, 0) != 0)
		return -1;
	return 0;
}

static int
lmdb_exists(struct backend *b, const char *key)
{
	char full[1024];

	(void)snprintf(full, sizeof(full), "%s%s", prefix_of(b), key);
	return (int)lmdb_child(b->opts.path, lmdb_exists_fn, full, false);
}

/*
 * Redis, looked at through its own connection.
 */

static redisContext *raw;
static pid_t redis_pid = -1;
static unsigned redis_port;
static char redis_sock[128];

/* raw_cmd - a command on the raw connection; the reply or NULL */
static redisReply *
raw_cmd(const char *fmt, const char *key)
{
	redisReply *r;

	if (raw == NULL)
		return NULL;
	r = redisCommand(raw, fmt, key, strlen(key));
	if (r == NULL) {
		redisFree(raw);
		raw = NULL;
	}
	return r;
}

static long long
raw_int(const char *fmt, const char *key)
{
	redisReply *r;
	long long v = -99;

	if ((r = raw_cmd(fmt, key)) != NULL) {
		if (r->type == REDIS_REPLY_INTEGER)
			v = r->integer;
		freeReplyObject(r);
	}
	return v;
}

static int
redis_exists(struct backend *b, const char *key)
{
	char full[1024];
	long long v;

	(void)snprintf(full, sizeof(full), "%s%s", prefix_of(b), key);
	v = raw_int("EXISTS %b", full);
	return v == 0 || v == 1 ? (int)v : -1;
}

/*
 * The semantic rows, shared by the backends.
 */

struct op_row {
	enum store_op_kind kind;
	const char *field; /* NULL ends the list */
	int64_t arg;
	bool found;
	int64_t value;
};

struct row {
	const char *label;
	const char *key;
	unsigned ttl;
	int rc;
	int exists; /* after the call: 1, 0, or -1 not looked at */
	struct op_row ops[6];
};

static const struct row rows[] = {
    {"GET of an absent key: 0, not found, creates nothing", "a", 0, 0, 0,
	{{STORE_GET, "x", 0, false, 0}}},
    {"SET creates the record", "a", 0, 0, 1, {{STORE_SET, "x", 5, false, 5}}},
    {"GET after SET", "a", 0, 0, 1, {{STORE_GET, "x", 0, true, 5}}},
    {"SETNX of an existing field keeps it", "a", 0, 0, 1,
	{{STORE_SETNX, "x", 9, true, 5}}},
    {"SETNX of an absent field sets it", "a", 0, 0, 1,
	{{STORE_SETNX, "y", 7, false, 7}}},
    {"INCR of an existing field", "a", 0, 0, 1,
	{{STORE_INCR, "x", 3, true, 8}}},
    {"INCR of an absent field counts from 0", "a", 0, 0, 1,
	{{STORE_INCR, "z", -2, false, -2}}},
    {"GET of an absent field of an existing record", "a", 0, 0, 1,
	{{STORE_GET, "nope", 0, false, 0}, {STORE_GET, "y", 0, true, 7}}},
    {"several ops in one call, in order", "b", 0, 0, 1,
	{{STORE_INCR, "n", 1, false, 1}, {STORE_INCR, "n", 1, true, 2},
	    {STORE_GET, "n", 0, true, 2}, {STORE_SET, "m", 4, false, 4},
	    {STORE_SETNX, "m", 5, true, 4},
	    {STORE_SET, "big", INT64_MIN, false, INT64_MIN}}},
    {"an INCR that overflows fails the whole call", "b", 0, -1, 1,
	{{STORE_SET, "m", 100, false, 0}, {STORE_INCR, "new", 1, false, 0},
	    {STORE_INCR, "n", INT64_MAX, false, 0}}},
    {"... and nothing of it was written", "b", 0, 0, 1,
	{{STORE_GET, "m", 0, true, 4}, {STORE_GET, "n", 0, true, 2},
	    {STORE_GET, "new", 0, false, 0}}},
    {"a failed call on a new key creates nothing", "c", 0, -1, 0,
	{{STORE_SET, "m", 1, false, 0},
	    {STORE_INCR, "m", INT64_MAX, false, 0}}},
    {"GETs only create nothing (ttl given too)", "d", 30, 0, 0,
	{{STORE_GET, "p", 0, false, 0}, {STORE_GET, "q", 0, false, 0}}},
    {"SETNX on a new key creates it", "e", 0, 0, 1,
	{{STORE_SETNX, "p", -7, false, -7}}},
    {"keys may hold any byte but NUL", "\x01 \xff/key:with spaces", 0, 0, 1,
	{{STORE_INCR, "c", 41, false, 41}, {STORE_INCR, "c", 1, true, 42}}},
    {"fields: 32 bytes of [a-z0-9_]", "f", 0, 0, 1,
	{{STORE_SET, "abcdefghijklmnopqrstuvwxyz_01234", 1, false, 1}}},
};

/* run_row - one row on b; a description of what differs in *why */
static bool
run_row(struct backend *b, const struct row *r, char *why, size_t whylen)
{
	struct store_op ops[6];
	char err[256] = "";
	size_t n, i;
	int rc, ex;

	for (n = 0; n < 6 && r->ops[n].field != NULL; n++) {
		ops[n].kind = r->ops[n].kind;
		ops[n].field = r->ops[n].field;
		ops[n].value = r->ops[n].arg;
		ops[n].found = !r->ops[n].found; /* must be written */
	}
	rc = store_update(b->s, r->key, ops, n, r->ttl, err, sizeof(err));
	if (rc != r->rc) {
		(void)snprintf(why, whylen, "rc %d (%s)", rc, err);
		return false;
	}
	if (rc == -1 && err[0] == '\0') {
		(void)snprintf(why, whylen, "failed without a reason");
		return false;
	}
	for (i = 0; rc == 0 && i < n; i++)
		if (ops[i].found != r->ops[i].found ||
		    ops[i].value != r->ops[i].value) {
			(void)snprintf(why, whylen,
			    "op %zu: found %d value %" PRId64, i, ops[i].found,
			    ops[i].value);
			return false;
		}
	if (r->exists != -1 && (ex = b->exists(b, r->key)) != r->exists) {
		(void)snprintf(why, whylen, "exists %d", ex);
		return false;
	}
	(void)snprintf(why, whylen, "%s", rc == 0 ? "ok" : err);
	return true;
}

static void
test_rows(struct backend *b)
{
	char why[512];
	size_t i;
	bool ok;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ok = run_row(b, &rows[i], why, sizeof(why));
		TAP_OK(ok, "%s: %s: %s", b->name, rows[i].label, why);
	}
}

/* get1 - one field of a key: its value, or -999 absent, -1000 failed */
static int64_t
get1(struct store *s, const char *key, const char *field)
{
	struct store_op op = {STORE_GET, field, 0, false};
	char err[256];

	if (store_update(s, key, &op, 1, 0, err, sizeof(err)) != 0)
		return -1000;
	return op.found ? op.value : -999;
}

static int
set1(struct store *s, const char *key, const char *field, int64_t v,
    unsigned ttl)
{
	struct store_op op = {STORE_SET, field, v, false};
	char err[256];

	return store_update(s, key, &op, 1, ttl, err, sizeof(err));
}

static int
incr1(struct store *s, const char *key, int64_t by, int64_t *after)
{
	struct store_op op = {STORE_INCR, "n", by, false};
	char err[256];

	if (store_update(s, key, &op, 1, 0, err, sizeof(err)) != 0)
		return -1;
	if (after != NULL)
		*after = op.value;
	return 0;
}

/*
 * Bad arguments, long keys, delete.
 */

struct bad_row {
	const char *label;
	const char *key;
	enum store_op_kind kind;
	const char *field;
};

static const struct bad_row bad_rows[] = {
    {"NULL key", NULL, STORE_SET, "x"},
    {"empty key", "", STORE_SET, "x"},
    {"513-byte key", key513, STORE_SET, "x"},
    {"NULL field", "k", STORE_SET, NULL},
    {"empty field", "k", STORE_SET, ""},
    {"upper case field", "k", STORE_SET, "Count"},
    {"field with '-'", "k", STORE_INCR, "a-b"},
    {"field with ':'", "k", STORE_GET, "a:b"},
    {"33-byte field", "k", STORE_SET, "abcdefghijklmnopqrstuvwxyz_012345"},
    {"unknown op", "k", (enum store_op_kind)42, "x"},
};

static void
test_bad(struct backend *b)
{
	struct store_stats st0, st1;
	struct store_op op;
	char err[256];
	size_t i;
	int rc;

	store_get_stats(b->s, &st0);
	for (i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		op.kind = bad_rows[i].kind;
		op.field = bad_rows[i].field;
		op.value = 1;
		err[0] = '\0';
		rc = store_update(b->s, bad_rows[i].key, &op, 1, 0, err,
		    sizeof(err));
		TAP_OK(rc == -1 && err[0] != '\0' && b->exists(b, "k") == 0,
		    "%s: rejected: %s: %s", b->name, bad_rows[i].label, err);
	}
	store_get_stats(b->s, &st1);
	TAP_OK(st1.updates - st0.updates == i && st1.errors - st0.errors == i,
	    "%s: stats count them: %lu updates, %lu errors", b->name,
	    st1.updates - st0.updates, st1.errors - st0.errors);

	rc = set1(b->s, key512, "v", 512, 0);
	TAP_OK(rc == 0 && get1(b->s, key512, "v") == 512 &&
		get1(b->s, key512b, "v") == -999 &&
		set1(b->s, key512b, "v", 2, 0) == 0 &&
		get1(b->s, key512, "v") == 512 && get1(b->s, key512b, "v") == 2,
	    "%s: two 512-byte keys that differ in the last byte", b->name);
	TAP_OK(store_delete(b->s, key512, err, sizeof(err)) == 0 &&
		get1(b->s, key512, "v") == -999 &&
		get1(b->s, key512b, "v") == 2 &&
		store_delete(b->s, key512b, err, sizeof(err)) == 0,
	    "%s: the 512-byte key deleted", b->name);
	TAP_OK(store_delete(b->s, "a", err, sizeof(err)) == 0 &&
		b->exists(b, "a") == 0 && get1(b->s, "a", "x") == -999 &&
		get1(b->s, "b", "m") == 4,
	    "%s: delete removes one key", b->name);
	TAP_OK(store_delete(b->s, "never-was", err, sizeof(err)) == 0,
	    "%s: delete of an absent key is 0", b->name);
	TAP_OK(store_delete(b->s, "", err, sizeof(err)) == -1,
	    "%s: delete of an empty key fails: %s", b->name, err);
}

/*
 * Expiry: set up, one sleep, check.
 */

struct ttl_row {
	const char *label;
	const char *key;
	unsigned ttl1, ttl2; /* SET v=1 with ttl1, then INCR v with ttl2 */
	bool second;	     /* do the INCR */
	bool alive;	     /* after EXPIRY_WAIT_MS */
};

static const struct ttl_row ttl_rows[] = {
    {"ttl 1 s: expired", "t1", 1, 0, false, false},
    {"ttl 1 s, then a write with ttl 0 keeps the expiry", "t2", 1, 0, true,
	false},
    {"no ttl: no expiry", "t3", 0, 0, false, true},
    {"ttl 1 s, then ttl 3600: lives", "t4", 1, 3600, true, true},
    {"ttl 3600, then ttl 0: lives", "t5", 3600, 0, true, true},
};

static void
ttl_setup(struct backend *b)
{
	struct store_op op;
	char err[256];
	size_t i;
	bool ok;

	for (i = 0; i < sizeof(ttl_rows) / sizeof(ttl_rows[0]); i++) {
		const struct ttl_row *t = &ttl_rows[i];

		ok = set1(b->s, t->key, "v", 1, t->ttl1) == 0;
		if (t->second) {
			op.kind = STORE_INCR;
			op.field = "v";
			op.value = 1;
			ok = ok &&
			    store_update(b->s, t->key, &op, 1, t->ttl2, err,
				sizeof(err)) == 0 &&
			    op.value == 2;
		}
		TAP_OK(ok && get1(b->s, t->key, "v") == (t->second ? 2 : 1),
		    "%s: expiry setup: %s", b->name, t->label);
	}
}

static void
ttl_check(struct backend *b)
{
	struct store_op op = {STORE_INCR, "v", 1, true};
	char err[256];
	int64_t v;
	size_t i;

	for (i = 0; i < sizeof(ttl_rows) / sizeof(ttl_rows[0]); i++) {
		const struct ttl_row *t = &ttl_rows[i];

		v = get1(b->s, t->key, "v");
		TAP_OK(t->alive ? v == (t->second ? 2 : 1) : v == -999,
		    "%s: after %u ms: %s (read %" PRId64 ")", b->name,
		    EXPIRY_WAIT_MS, t->label, v);
	}
	/* an expired record is gone as a whole: a write starts afresh, and
	 * without a ttl the new record does not expire */
	TAP_OK(store_update(b->s, "t1", &op, 1, 0, err, sizeof(err)) == 0 &&
		!op.found && op.value == 1,
	    "%s: a write to an expired key starts a new record", b->name);
}

/*
 * Concurrency: threads on one handle, processes with their own.
 */

struct worker {
	struct backend *b;
	struct store *s;
	int fails;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < PER_WORKER; i++)
		if (incr1(w->s, "shared", 1, NULL) != 0)
			w->fails++;
	return NULL;
}

static void
test_concurrency(struct backend *b)
{
	struct worker w[THREADS];
	pthread_t t[THREADS];
	struct store *s;
	char err[256];
	int i, st, okprocs = 0, fails = 0;
	double t0;
	pid_t pids[PROCS];

	t0 = now_ms();
	for (i = 0; i < THREADS; i++) {
		w[i].b = b;
		w[i].s = b->s;
		w[i].fails = 0;
		if (pthread_create(&t[i], NULL, worker_run, &w[i]) != 0)
			w[i].fails = PER_WORKER;
	}
	for (i = 0; i < THREADS; i++) {
		(void)pthread_join(t[i], NULL);
		fails += w[i].fails;
	}
	TAP_OK(fails == 0 && get1(b->s, "shared", "n") == THREADS * PER_WORKER,
	    "%s: %d threads x %d INCR on one key: %" PRId64 " (%d failed, "
	    "%.0f ms)",
	    b->name, THREADS, PER_WORKER, get1(b->s, "shared", "n"), fails,
	    now_ms() - t0);

	/* each child opens its own handle: a store is opened after fork */
	t0 = now_ms();
	for (i = 0; i < PROCS; i++) {
		if ((pids[i] = fork()) == 0) {
			struct worker cw = {b, NULL, 0};

			if ((s = store_open(&b->opts, err, sizeof(err))) ==
			    NULL)
				_exit(2);
			cw.s = s;
			(void)worker_run(&cw);
			store_close(s);
			_exit(cw.fails == 0 ? 0 : 1);
		}
	}
	for (i = 0; i < PROCS; i++)
		if (pids[i] > 0 && waitpid(pids[i], &st, 0) == pids[i] &&
		    WIFEXITED(st) && WEXITSTATUS(st) == 0)
			okprocs++;
	TAP_OK(okprocs == PROCS &&
		get1(b->s, "shared", "n") == (THREADS + PROCS) * PER_WORKER,
	    "%s: and %d processes x %d INCR: %" PRId64 " (%d ok, %.0f ms)",
	    b->name, PROCS, PER_WORKER, get1(b->s, "shared", "n"), okprocs,
	    now_ms() - t0);
}

/*
 * LMDB only.
 */

/* fill - write ~8 KB records under long keys until a call fails (-1) or
 * limit are written (0) */
static int
fill(struct store *s, const char *tag, unsigned ttl, int limit, char *err,
    size_t errlen, int *written)
{
	static char names[200][40];
	struct store_op ops[200];
	char key[512];
	int i, n;

	for (i = 0; i < 200; i++) {
		(void)snprintf(names[i], sizeof(names[i]),
		    "f%03d_abcdefghijklmnopqrstuvwxyz0", i % 1000);
		ops[i].kind = STORE_SET;
		ops[i].field = names[i];
	}
	for (n = 0; n < limit; n++) {
		(void)snprintf(key, sizeof(key), "%s-%05d-%0440d", tag, n, 0);
		for (i = 0; i < 200; i++)
			ops[i].value = n;
		if (store_update(s, key, ops, 200, ttl, err, errlen) != 0)
			break;
	}
	*written = n;
	return n < limit ? -1 : 0;
}

static char full_key0[512];

/* test_map_full - a 1 MB map filled with records that expire in 1 s */
static struct store *
test_map_full(const char *dir)
{
	struct store_opts o = {.backend = STORE_LMDB,
	    .path = dir,
	    .map_size_mb = 1};
	struct store *s;
	char err[256];
	int n, rc;

	if ((s = store_open(&o, err, sizeof(err))) == NULL) {
		TAP_OK(0, "lmdb: open a 1 MB map: %s", err);
		return NULL;
	}
	rc = fill(s, "full", 1, 10000, err, sizeof(err), &n);
	TAP_OK(rc == -1 && strstr(err, "MDB_MAP_FULL") != NULL &&
		strstr(err, dir) != NULL && n > 10,
	    "lmdb: 1 MB map full after %d records: %s", n, err);
	(void)snprintf(full_key0, sizeof(full_key0), "full-%05d-%0440d", 0, 0);
	TAP_OK(get1(s, full_key0, "f000_abcdefghijklmnopqrstuvwxyz0") == 0 &&
		get1(s, "absent", "x") == -999,
	    "lmdb: reads still work with the map full");
	TAP_OK(store_delete(s, full_key0, err, sizeof(err)) == 0 &&
		set1(s, "after-delete", "x", 1, 1) == 0 &&
		get1(s, "after-delete", "x") == 1,
	    "lmdb: after a delete, writes work again");
	rc = fill(s, "more", 1, 10000, err, sizeof(err), &n);
	TAP_OK(rc == -1 && strstr(err, "MDB_MAP_FULL") != NULL,
	    "lmdb: full again (%d more): %s", n, err);
	return s;
}

/* test_map_grown - another process opens the 1 MB map with 8 MB and
 * writes past 1 MB: this handle adopts the new size (MDB_MAP_RESIZED) */
static void
test_map_grown(struct store *s, const char *dir)
{
	struct store_opts o = {.backend = STORE_LMDB,
	    .path = dir,
	    .map_size_mb = 8};
	char key[512], err[256] = "";
	struct store *s8;
	int n = 0, st = -1;
	pid_t pid;

	if ((pid = fork()) == 0) {
		if ((s8 = store_open(&o, err, sizeof(err))) == NULL)
			_exit(2);
		(void)fill(s8, "grow", 0, 200, err, sizeof(err), &n);
		store_close(s8);
		_exit(n == 200 ? 0 : 1);
	}
	(void)waitpid(pid, &st, 0);
	(void)snprintf(key, sizeof(key), "grow-%05d-%0440d", 199, 0);
	TAP_OK(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
		get1(s, key, "f000_abcdefghijklmnopqrstuvwxyz0") == 199 &&
		set1(s, "after-grow", "x", 1, 0) == 0 &&
		get1(s, "after-grow", "x") == 1,
	    "lmdb: a map grown to 8 MB by another process is adopted");
}

/* test_map_full_sweep - after the expiry sleep: a sweep makes room */
static void
test_map_full_sweep(struct store *s, const char *dir)
{
	char err[256] = "";
	int n, rc;
	long swept;

	if (s == NULL)
		return;
	swept = store_sweep(s, 0, err, sizeof(err));
	TAP_OK(swept > 10, "lmdb: the full map swept: %ld removed %s", swept,
	    err);
	rc = fill(s, "again", 0, 10000, err, sizeof(err), &n);
	TAP_OK(n > 10, "lmdb: then %d more records fit (until: %s)", n,
	    rc == 0 ? "-" : err);
	test_map_grown(s, dir);
	store_close(s);
}

static void
test_lmdb_open(void)
{
	struct store_opts o = {.backend = STORE_LMDB};
	char dir[128], file[128], err[256];
	struct store *s;
	struct stat sb = {0};
	FILE *fp;

	(void)snprintf(dir, sizeof(dir), "%s/made", tmpdir);
	o.path = dir;
	s = store_open(&o, err, sizeof(err));
	if (stat(dir, &sb) == -1)
		sb.st_mode = 0;
	TAP_OK(s != NULL && S_ISDIR(sb.st_mode) && (sb.st_mode & 07777) == 0750,
	    "lmdb: a missing directory is created, mode 0750 (%o)",
	    (unsigned)(sb.st_mode & 07777));
	store_close(s);

	(void)snprintf(file, sizeof(file), "%s/plainfile", tmpdir);
	if ((fp = fopen(file, "w")) != NULL)
		(void)fclose(fp);
	(void)snprintf(dir, sizeof(dir), "%s/plainfile/db", tmpdir);
	s = store_open(&o, err, sizeof(err));
	TAP_OK(s == NULL && strstr(err, dir) != NULL,
	    "lmdb: a path that cannot be made fails with a reason: %s", err);
	store_close(s);

	o.path = NULL;
	TAP_OK(store_open(&o, err, sizeof(err)) == NULL,
	    "lmdb: no path fails: %s", err);
}

static void
test_lmdb(void)
{
	struct backend b = {"lmdb", {.backend = STORE_LMDB}, NULL, lmdb_exists};
	char dir[128], fulldir[128], err[256] = "", bad[80];
	struct store *full;
	long before, after, swept;

	test_lmdb_open();
	(void)snprintf(dir, sizeof(dir), "%s/lmdb", tmpdir);
	b.opts.path = dir;
	if ((b.s = store_open(&b.opts, err, sizeof(err))) == NULL) {
		TAP_OK(0, "lmdb: open %s: %s", dir, err);
		return;
	}
	test_rows(&b);
	test_bad(&b);

	/* a value the store did not write reads as absent, is replaced */
	(void)snprintf(bad, sizeof(bad), "%sgarbage", prefix_of(&b));
	TAP_OK(lmdb_child(dir, lmdb_garbage_fn, bad, true) == 0 &&
		get1(b.s, "garbage", "x") == -999 &&
		set1(b.s, "garbage", "x", 3, 0) == 0 &&
		get1(b.s, "garbage", "x") == 3,
	    "lmdb: a corrupt value reads as absent and is overwritten");
	(void)snprintf(bad, sizeof(bad), "%sgarbage2", prefix_of(&b));
	(void)lmdb_child(dir, lmdb_garbage_fn, bad, true);

	/* reopen: what was written is still there */
	store_close(b.s);
	b.s = store_open(&b.opts, err, sizeof(err));
	TAP_OK(b.s != NULL && get1(b.s, "b", "n") == 2 &&
		get1(b.s, "e", "p") == -7,
	    "lmdb: close and open again: the records persist");
	if (b.s == NULL)
		return;

	test_concurrency(&b);

	(void)snprintf(fulldir, sizeof(fulldir), "%s/full", tmpdir);
	full = test_map_full(fulldir);

	ttl_setup(&b);
	before = lmdb_child(dir, lmdb_count_fn, NULL, false);
	sleep_ms(EXPIRY_WAIT_MS);
	ttl_check(&b);

	/* t2 expired, and garbage2 is corrupt; t1 was written again */
	swept = store_sweep(b.s, 1, err, sizeof(err));
	TAP_OK(swept == 1, "lmdb: sweep at most 1: %ld", swept);
	swept += store_sweep(b.s, 0, err, sizeof(err));
	after = lmdb_child(dir, lmdb_count_fn, NULL, false);
	TAP_OK(swept == 2 && after == before - 2 && get1(b.s, "t3", "v") == 1 &&
		get1(b.s, "b", "n") == 2,
	    "lmdb: sweep removed the expired and the corrupt only: %ld "
	    "(entries %ld -> %ld)",
	    swept, before, after);
	TAP_OK(store_sweep(b.s, 0, err, sizeof(err)) == 0,
	    "lmdb: a second sweep finds nothing");
	test_map_full_sweep(full, fulldir);
	store_close(b.s);
}

/*
 * Redis.
 */

/* free_port - a TCP port on 127.0.0.1 that nothing listens on now */
static unsigned
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	unsigned port = 0;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	(void)close(fd);
	return port;
}

/* redis_start - a redis-server on redis_port; 0 once it answers */
static int
redis_start(void)
{
	char port[16], log[128];
	struct timeval tv = {1, 0};
	redisReply *r;
	double t0;
	int fd;

	(void)snprintf(port, sizeof(port), "%u", redis_port);
	(void)snprintf(log, sizeof(log), "%s/redis.log", tmpdir);
	if ((redis_pid = fork()) == -1)
		return -1;
	if (redis_pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) >=
		    0) {
			(void)dup2(fd, 1);
			(void)dup2(fd, 2);
		}
		(void)execl(REDIS_SERVER, REDIS_SERVER, "--port", port,
		    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		    "--daemonize", "no", "--dir", tmpdir, "--unixsocket",
		    redis_sock, "--unixsocketperm", "700", (char *)NULL);
		_exit(127);
	}
	for (t0 = now_ms(); now_ms() - t0 < 10000; sleep_ms(50)) {
		if (raw != NULL)
			redisFree(raw);
		raw = redisConnectWithTimeout("127.0.0.1", (int)redis_port, tv);
		if (raw == NULL || raw->err)
			continue;
		if ((r = redisCommand(raw, "PING")) != NULL) {
			freeReplyObject(r);
			return 0;
		}
	}
	return -1;
}

static void
redis_kill(int sig)
{
	int st;

	if (redis_pid <= 0)
		return;
	(void)kill(redis_pid, sig);
	if (sig == SIGKILL) {
		(void)waitpid(redis_pid, &st, 0);
		redis_pid = -1;
	}
}

/* test_redis_config - unix socket, SELECT, AUTH */
static void
test_redis_config(struct backend *b)
{
	struct store_opts o = b->opts;
	char path[160], err[256] = "";
	struct store *s;
	redisReply *r;

	(void)snprintf(path, sizeof(path), "unix:%s", redis_sock);
	o.host = path;
	s = store_open(&o, err, sizeof(err));
	TAP_OK(s != NULL && get1(s, "e", "p") == -7,
	    "redis: over the unix socket %s", path);
	store_close(s);

	o = b->opts;
	o.db = 3;
	s = store_open(&o, err, sizeof(err));
	TAP_OK(s != NULL && set1(s, "indb3", "x", 1, 0) == 0 &&
		b->exists(b, "indb3") == 0 && get1(b->s, "indb3", "x") == -999,
	    "redis: SELECT 3: the key is not in db 0");
	store_close(s);

	if ((r = redisCommand(raw, "CONFIG SET requirepass s3cret")) != NULL)
		freeReplyObject(r);
	if ((r = redisCommand(raw, "AUTH s3cret")) != NULL)
		freeReplyObject(r);
	o = b->opts;
	o.password = "wrong";
	s = store_open(&o, err, sizeof(err));
	TAP_OK(s != NULL && set1(s, "auth", "x", 1, 0) == -1,
	    "redis: a wrong password fails the calls");
	{
		struct store_op op = {STORE_GET, "x", 0, false};

		(void)store_update(s, "auth", &op, 1, 0, err, sizeof(err));
		TAP_OK(strstr(err, "redis 127.0.0.1:") != NULL &&
			(strstr(err, "WRONGPASS") != NULL ||
			    strstr(err, "invalid") != NULL),
		    "redis: ... with the server's reason: %s", err);
	}
	store_close(s);
	o.password = "s3cret";
	s = store_open(&o, err, sizeof(err));
	TAP_OK(s != NULL && set1(s, "auth", "x", 1, 0) == 0 &&
		get1(s, "auth", "x") == 1,
	    "redis: the right password works");
	store_close(s);
	if ((r = redisCommand(raw, "CONFIG SET requirepass %s", "")) != NULL)
		freeReplyObject(r);
}

/* test_redis_atomic - a failing HINCRBY undoes the call's other writes */
static void
test_redis_atomic(struct backend *b)
{
	struct store_op ops[3] = {{STORE_SET, "m", 99, false},
	    {STORE_INCR, "fresh", 1, false}, {STORE_INCR, "text", 1, false}};
	char full[128], err[256] = "";
	redisReply *r;
	int rc;

	(void)snprintf(full, sizeof(full), "%sb", prefix_of(b));
	r = redisCommand(raw, "HSET %s text hello", full);
	if (r != NULL)
		freeReplyObject(r);
	rc = store_update(b->s, "b", ops, 3, 0, err, sizeof(err));
	TAP_OK(rc == -1 && strstr(err, "not an integer") != NULL &&
		get1(b->s, "b", "m") == 4 && get1(b->s, "b", "fresh") == -999,
	    "redis: INCR of a field that is not a number fails the whole "
	    "call: %s",
	    err);
	rc = store_update(b->s, "b", ops, 1, 0, err, sizeof(err));
	TAP_OK(rc == 0 && get1(b->s, "b", "m") == 99,
	    "redis: and the connection still serves");
	if ((r = redisCommand(raw, "SCRIPT FLUSH")) != NULL)
		freeReplyObject(r);
	TAP_OK(incr1(b->s, "b", 5, NULL) == 0 && get1(b->s, "b", "n") == 7,
	    "redis: after SCRIPT FLUSH the script is sent again");
}

/* test_redis_ttl_raw - what Redis holds as the expiry */
static void
test_redis_ttl_raw(struct backend *b)
{
	char full[128];
	long long t1, t3, t5;

	(void)snprintf(full, sizeof(full), "%st1", prefix_of(b));
	t1 = raw_int("TTL %b", full);
	(void)snprintf(full, sizeof(full), "%st3", prefix_of(b));
	t3 = raw_int("TTL %b", full);
	(void)snprintf(full, sizeof(full), "%st5", prefix_of(b));
	t5 = raw_int("TTL %b", full);
	TAP_OK(t1 >= 0 && t1 <= 1 && t3 == -1 && t5 > 3500 && t5 <= 3600,
	    "redis: TTL as set: %lld, none (%lld), %lld", t1, t3, t5);
}

/* timed - one INCR: its rc, its time in *ms, its reason in err */
static int
timed(struct store *s, double *ms, char *err, size_t errlen)
{
	struct store_op op = {STORE_INCR, "n", 1, false};
	double t0 = now_ms();
	int rc;

	rc = store_update(s, "down", &op, 1, 0, err, errlen);
	*ms = now_ms() - t0;
	return rc;
}

/* test_redis_down - stopped, killed, restarted */
static void
test_redis_down(struct backend *b)
{
	struct store_opts o = b->opts;
	struct store *s;
	struct store_stats st;
	char err[256] = "", addr[64];
	double ms, worst = 0, total = 0, t0;
	int i, rc, fast = 0, tries = 0;

	o.timeout_ms = 300;
	if ((s = store_open(&o, err, sizeof(err))) == NULL)
		return;
	(void)snprintf(addr, sizeof(addr), "redis 127.0.0.1:%u", redis_port);
	rc = timed(s, &ms, err, sizeof(err));
	TAP_OK(rc == 0, "redis: up: %.2f ms", ms);

	redis_kill(SIGSTOP);
	rc = timed(s, &ms, err, sizeof(err));
	TAP_OK(rc == -1 && ms >= 250 && ms < 300 + 700 &&
		strstr(err, addr) != NULL,
	    "redis: stopped: -1 after %.0f ms (timeout 300): %s", ms, err);
	rc = timed(s, &ms, err, sizeof(err));
	TAP_OK(rc == -1 && ms < 5 && strstr(err, "down") != NULL,
	    "redis: then it fails at once (%.3f ms): %s", ms, err);

	redis_kill(SIGKILL);
	sleep_ms(1100); /* the first backoff is 1 s */
	rc = timed(s, &ms, err, sizeof(err));
	TAP_OK(rc == -1 && ms < 200 && strstr(err, addr) != NULL &&
		strstr(err, "refused") != NULL,
	    "redis: killed: refused in %.2f ms: %s", ms, err);
	for (i = 0; i < 1000; i++) {
		rc = timed(s, &ms, err, sizeof(err));
		if (rc == -1 && strstr(err, "down") != NULL)
			fast++;
		total += ms;
		worst = ms > worst ? ms : worst;
	}
	TAP_OK(fast == 1000 && total / 1000 < 0.1,
	    "redis: backoff: 1000 calls fail without trying, %.4f ms each "
	    "(worst %.3f ms): %s",
	    total / 1000, worst, err);

	t0 = now_ms();
	rc = redis_start();
	TAP_OK(rc == 0, "redis: restarted on port %u", redis_port);
	for (t0 = now_ms(); now_ms() - t0 < 15000; sleep_ms(50)) {
		tries++;
		if ((rc = timed(s, &ms, err, sizeof(err))) == 0)
			break;
	}
	TAP_OK(rc == 0 && now_ms() - t0 < 2000 + 1000 &&
		get1(s, "down", "n") == 1,
	    "redis: back after %.0f ms (backoff 2 s then)", now_ms() - t0);
	store_get_stats(s, &st);
	/* up, stopped, down, refused, 1000 down, the tries, one GET */
	TAP_OK(st.updates == 1005 + (unsigned long)tries &&
		st.errors == 1003 + (unsigned long)tries - 1,
	    "redis: stats: %lu updates, %lu errors (%d tries to come back)",
	    st.updates, st.errors, tries);
	store_close(s);
}

static void
test_redis(void)
{
	struct backend b = {"redis",
	    {.backend = STORE_REDIS,
		.host = "127.0.0.1",
		.pool = 3,
		.timeout_ms = 2000},
	    NULL, redis_exists};
	char prefix[64], err[256] = "";
	long swept;

	if (access(REDIS_SERVER, X_OK) != 0) {
		TAP_OK(1,
		    "redis # SKIP %s not installed (apt-get install "
		    "redis-server)",
		    REDIS_SERVER);
		return;
	}
	(void)snprintf(redis_sock, sizeof(redis_sock), "%s/redis.sock", tmpdir);
	if ((redis_port = free_port()) == 0 || redis_start() != 0) {
		TAP_OK(0, "redis: start %s on 127.0.0.1:%u (see %s/redis.log)",
		    REDIS_SERVER, redis_port, tmpdir);
		redis_kill(SIGKILL);
		return;
	}
	(void)snprintf(prefix, sizeof(prefix), "test%ld:", (long)getpid());
	b.opts.prefix = prefix;
	b.opts.port = redis_port;
	if ((b.s = store_open(&b.opts, err, sizeof(err))) == NULL) {
		TAP_OK(0, "redis: open: %s", err);
		redis_kill(SIGKILL);
		return;
	}
	test_rows(&b);
	test_bad(&b);
	test_redis_atomic(&b);
	test_concurrency(&b);
	test_redis_config(&b);
	ttl_setup(&b);
	test_redis_ttl_raw(&b);
	sleep_ms(EXPIRY_WAIT_MS);
	ttl_check(&b);
	swept = store_sweep(b.s, 0, err, sizeof(err));
	TAP_OK(swept == 0, "redis: sweep is 0 (Redis expires keys itself)");
	test_redis_down(&b);
	store_close(b.s);
	redis_kill(SIGKILL);
}

int
main(void)
{
	const char *t = getenv("TMPDIR");
	char cmd[128];

	(void)signal(SIGPIPE, SIG_IGN);
	(void)alarm(TEST_DEADLINE);
	(void)snprintf(tmpdir, sizeof(tmpdir), "%s/test_store.XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror(tmpdir);
		return 1;
	}
	memset(key512, 'k', 512);
	memset(key512b, 'k', 511);
	key512b[511] = 'j'; /* differs in the last byte only */
	memset(key513, 'k', 513);

	TAP_OK(strcmp(store_backend_name(STORE_LMDB), "lmdb") == 0 &&
		strcmp(store_backend_name(STORE_REDIS), "redis") == 0,
	    "backend names");
	test_lmdb();
	test_redis();
	if (raw != NULL)
		redisFree(raw);

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		(void)printf("# could not remove %s\n", tmpdir);
	TAP_DONE();
}
