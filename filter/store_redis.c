/*
 * store_redis.c - the Redis backend of the store (hiredis, blocking API):
 * one server shared by a fleet of MX hosts.
 *
 * A record is a Redis hash under prefix+key, one hash field per store
 * field, values in decimal. Redis expires the keys itself, so
 * store_sweep() returns 0 without a word to the server.
 *
 * Atomicity: one update is one EVALSHA of the Lua script below, so one
 * round trip, and Redis runs a script with nothing else in between. The
 * script applies the ops in order (HGET for `found`, HSET, HINCRBY) and
 * then EXPIREs the key when a ttl is given. Redis does not undo a script
 * that fails half-way, so the script keeps the first value of every field
 * it touches and, when an HINCRBY fails (overflow, a field that is not an
 * integer), puts them back before returning the error: a call is applied
 * whole or not at all. Values travel as strings both ways (HINCRBY's
 * result is read back with HGET) because Lua's numbers are doubles. The
 * script is loaded (SCRIPT LOAD) when a connection is made; a NOSCRIPT
 * answer (SCRIPT FLUSH on the server) falls back to EVAL once. A call with
 * only GETs runs the same script, which then writes nothing.
 *
 * Connections: a pool of at most opts.pool, under a mutex and a condition
 * variable. A caller takes an idle one, or opens one while the pool is
 * under its size, or waits for one at most timeout_ms. Connecting
 * (redisConnectWithTimeout, or redisConnectUnixWithTimeout for
 * "unix:/path") is bounded by timeout_ms, and so is every read and write
 * (redisSetTimeout); TCP connections have keepalive on. AUTH and SELECT
 * are sent when configured, pipelined with SCRIPT LOAD: one round trip.
 * So a call takes at most: pool wait + connect and handshake + one reply,
 * each bounded by timeout_ms (resolving a host name is not: give an
 * address).
 *
 * Failure: a connection that fails (timeout, EOF, reset, protocol error)
 * is closed, never pooled again. A timeout or EOF also closes the idle
 * connections (they lead to the same server, and after a restart they are
 * all dead). A failed connect or handshake, or a timeout, marks the
 * server down: for a backoff of 1 s, doubling to 10 s while it stays
 * down, calls that find no idle connection fail at once with the last
 * reason and do not try; after the backoff one caller at a time tries
 * again (the others still fail fast), and a success ends the backoff.
 * Errors name the server: "redis 127.0.0.1:6379: Connection refused".
 * An error answer from Redis (WRONGTYPE, ...) fails the call but keeps
 * the connection.
 *
 * Writing to a connection the server has closed raises SIGPIPE: the
 * process must ignore it (the daemon does, in main.c).
 */
#include "autoconf.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_impl.h"
#include "xalloc.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS	 10000
#define SHA_LEN		 40

/*
 * KEYS[1]: the record; ARGV[1]: ttl (0: leave the expiry); then for each
 * op: kind (G, S, N for SETNX, I), field, value. Returns found, value
 * (a string) for each op.
 */
static const char script[] =
    "local k, out, orig, seen = KEYS[1], {}, {}, {}\n"
    "for i = 2, #ARGV, 3 do\n"
    "  local op, f, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]\n"
    "  local cur = redis.call('HGET', k, f)\n"
    "  if not seen[f] then seen[f] = true; orig[#orig + 1] = {f, cur} end\n"
    "  out[#out + 1] = cur and 1 or 0\n"
    "  if op == 'S' or (op == 'N' and not cur) then\n"
    "    redis.call('HSET', k, f, v); cur = v\n"
    "  elseif op == 'I' then\n"
    "    local r = redis.pcall('HINCRBY', k, f, v)\n"
    "    if type(r) == 'table' and r.err then\n"
    "      for j = 1, #orig do\n"
    "        if orig[j][2] then redis.call('HSET', k, orig[j][1], "
    "orig[j][2])\n"
    "        else redis.call('HDEL', k, orig[j][1]) end\n"
    "      end\n"
    "      return redis.error_reply(r.err)\n"
    "    end\n"
    "    cur = redis.call('HGET', k, f)\n"
    "  end\n"
    "  out[#out + 1] = cur or '0'\n"
    "end\n"
    "if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', k, ARGV[1]) end\n"
    "return out\n";

struct rconn {
	redisContext *c;
	unsigned gen; /* the pool's generation when it was made */
	char sha[SHA_LEN + 1];
	struct rconn *next;
};

struct redis {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a connection came back or a slot freed */
	struct rconn *idle;
	unsigned total;	     /* open or being opened */
	unsigned gen;	     /* bumped when pooled connections are suspect */
	unsigned backoff_ms; /* 0: the server is not known down */
	struct timespec retry_at; /* no connect before, while down */
	bool probing;		  /* a connect is trying a down server */
	char down[256];		  /* why it is down */
	/* settings */
	char *host; /* or the socket path */
	bool unix_sock;
	unsigned port;
	char *password;
	unsigned db;
	unsigned pool;
	unsigned timeout_ms;
	char name[300]; /* "redis host:port", for errors */
};

static struct timespec
mono_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static struct timespec
ts_add_ms(struct timespec ts, unsigned ms)
{
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* ms_until - milliseconds from now to ts, 0 when passed */
static long
ms_until(struct timespec ts)
{
	struct timespec now = mono_now();
	long ms;

	ms = (long)(ts.tv_sec - now.tv_sec) * 1000 +
	    (ts.tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

static void *
redis_open(const struct store_opts *o, char *err, size_t errlen)
{
	struct redis *r;
	pthread_condattr_t ca;

	r = xcalloc(1, sizeof(*r));
	if (strncmp(o->host, "unix:", 5) == 0) {
		r->unix_sock = true;
		r->host = xstrdup(o->host + 5);
		(void)snprintf(r->name, sizeof(r->name), "redis %s", o->host);
	} else {
		r->host = xstrdup(o->host);
		(void)snprintf(r->name, sizeof(r->name),
		    strchr(o->host, ':') != NULL ? "redis [%s]:%u"
						 : "redis %s:%u",
		    o->host, o->port);
	}
	r->port = o->port;
	r->password = o->password != NULL ? xstrdup(o->password) : NULL;
	r->db = o->db;
	r->pool = o->pool;
	r->timeout_ms = o->timeout_ms;
	(void)pthread_mutex_init(&r->mu, NULL);
	(void)pthread_condattr_init(&ca);
	(void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	(void)pthread_cond_init(&r->cv, &ca);
	(void)pthread_condattr_destroy(&ca);
	/* no connection yet: a server that is down at start-up is a
	 * temporary failure of the calls, not of the daemon */
	(void)err;
	(void)errlen;
	return r;
}

static void
redis_close(void *p)
{
	struct redis *r = p;
	struct rconn *c;

	while ((c = r->idle) != NULL) {
		r->idle = c->next;
		redisFree(c->c);
		free(c);
	}
	(void)pthread_cond_destroy(&r->cv);
	(void)pthread_mutex_destroy(&r->mu);
	free(r->host);
	free(r->password);
	free(r);
}

/* conn_error - a failed connection's reason; true when it timed out */
static bool
conn_error(const struct redis *r, const redisContext *c, int saved, char *err,
    size_t errlen)
{
	bool timeout = c->err == REDIS_ERR_IO &&
	    (saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT);

	if (timeout)
		(void)snprintf(err, errlen, "%s: timeout (%u ms)", r->name,
		    r->timeout_ms);
	else if (c->err == REDIS_ERR_EOF)
		(void)snprintf(err, errlen, "%s: connection closed by server",
		    r->name);
	else
		(void)snprintf(err, errlen, "%s: %s", r->name, c->errstr);
	return timeout;
}

/* handshake - AUTH, SELECT and SCRIPT LOAD in one round trip */
static int
handshake(struct redis *r, struct rconn *c, char *err, size_t errlen)
{
	const char *argv[3];
	size_t argl[3];
	redisReply *rep;
	char dbs[16];
	int n = 0, i, rc = 0;

	if (r->password != NULL) {
		argv[0] = "AUTH";
		argv[1] = r->password;
		(void)redisAppendCommandArgv(c->c, 2, argv, NULL);
		n++;
	}
	if (r->db != 0) {
		(void)snprintf(dbs, sizeof(dbs), "%u", r->db);
		argv[0] = "SELECT";
		argv[1] = dbs;
		(void)redisAppendCommandArgv(c->c, 2, argv, NULL);
		n++;
	}
	argv[0] = "SCRIPT";
	argv[1] = "LOAD";
	argv[2] = script;
	argl[0] = 6;
	argl[1] = 4;
	argl[2] = sizeof(script) - 1;
	(void)redisAppendCommandArgv(c->c, 3, argv, argl);
	n++;
	for (i = 0; i < n; i++) {
		if (redisGetReply(c->c, (void **)&rep) != REDIS_OK) {
			(void)conn_error(r, c->c, errno, err, errlen);
			return -1;
		}
		if (rc == 0 && rep->type == REDIS_REPLY_ERROR) {
			(void)snprintf(err, errlen, "%s: %s", r->name,
			    rep->str);
			rc = -1;
		} else if (rc == 0 && i == n - 1) {
			if (rep->type != REDIS_REPLY_STRING ||
			    rep->len != SHA_LEN) {
				(void)snprintf(err, errlen,
				    "%s: unexpected answer to SCRIPT LOAD",
				    r->name);
				rc = -1;
			} else
				memcpy(c->sha, rep->str, SHA_LEN + 1);
		}
		freeReplyObject(rep);
	}
	return rc;
}

/* dial - a new connection, ready for commands, or NULL */
static struct rconn *
dial(struct redis *r, char *err, size_t errlen)
{
	struct timeval tv;
	struct rconn *c;
	redisContext *rc;

	tv.tv_sec = r->timeout_ms / 1000;
	tv.tv_usec = (long)(r->timeout_ms % 1000) * 1000;
	if (r->unix_sock)
		rc = redisConnectUnixWithTimeout(r->host, tv);
	else
		rc = redisConnectWithTimeout(r->host, (int)r->port, tv);
	if (rc == NULL) {
		(void)snprintf(err, errlen, "%s: cannot allocate a context",
		    r->name);
		return NULL;
	}
	if (rc->err != 0 || redisSetTimeout(rc, tv) != REDIS_OK ||
	    (!r->unix_sock && redisEnableKeepAlive(rc) != REDIS_OK)) {
		(void)snprintf(err, errlen, "%s: %s", r->name, rc->errstr);
		redisFree(rc);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->c = rc;
	if (handshake(r, c, err, errlen) == -1) {
		redisFree(rc);
		free(c);
		return NULL;
	}
	return c;
}

/* mark_down - start or lengthen the backoff (mutex held) */
static void
mark_down(struct redis *r, const char *why)
{
	if (r->backoff_ms == 0)
		r->backoff_ms = BACKOFF_FIRST_MS;
	else if ((r->backoff_ms *= 2) > BACKOFF_MAX_MS)
		r->backoff_ms = BACKOFF_MAX_MS;
	r->retry_at = ts_add_ms(mono_now(), r->backoff_ms);
	(void)snprintf(r->down, sizeof(r->down), "%s", why);
}

/* acquire - an idle or a new connection, or NULL and why */
static struct rconn *
acquire(struct redis *r, char *err, size_t errlen)
{
	struct timespec deadline = ts_add_ms(mono_now(), r->timeout_ms);
	struct rconn *c;
	bool probe;

	(void)pthread_mutex_lock(&r->mu);
	for (;;) {
		if ((c = r->idle) != NULL) {
			r->idle = c->next;
			(void)pthread_mutex_unlock(&r->mu);
			return c;
		}
		if (r->backoff_ms > 0 &&
		    (r->probing || ms_until(r->retry_at) > 0)) {
			(void)snprintf(err, errlen,
			    "%s (down, next try in %ld ms)", r->down,
			    ms_until(r->retry_at));
			(void)pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		if (r->total < r->pool)
			break;
		if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) ==
		    ETIMEDOUT) {
			(void)snprintf(err, errlen,
			    "%s: no free connection in %u ms", r->name,
			    r->timeout_ms);
			(void)pthread_mutex_unlock(&r->mu);
			return NULL;
		}
	}
	r->total++;
	if ((probe = r->backoff_ms > 0))
		r->probing = true;
	(void)pthread_mutex_unlock(&r->mu);

	c = dial(r, err, errlen);

	(void)pthread_mutex_lock(&r->mu);
	if (probe)
		r->probing = false;
	if (c == NULL) {
		r->total--;
		mark_down(r, err);
		(void)pthread_cond_broadcast(&r->cv);
	} else {
		r->backoff_ms = 0;
		c->gen = r->gen;
	}
	(void)pthread_mutex_unlock(&r->mu);
	return c;
}

enum conn_state {
	CONN_OK,      /* back to the pool */
	CONN_BROKEN,  /* close it */
	CONN_SUSPECT, /* close it and the idle ones */
	CONN_TIMEOUT, /* and the server is down */
};

/* release - give a connection back, or close it (and maybe the idle) */
static void
release(struct redis *r, struct rconn *c, enum conn_state st, const char *why)
{
	struct rconn *stale = NULL, *next;

	(void)pthread_mutex_lock(&r->mu);
	if (st == CONN_OK && c->gen == r->gen) {
		c->next = r->idle;
		r->idle = c;
		c = NULL;
	} else
		r->total--;
	if (st >= CONN_SUSPECT) {
		r->gen++;
		stale = r->idle;
		r->idle = NULL;
		for (next = stale; next != NULL; next = next->next)
			r->total--;
	}
	if (st == CONN_TIMEOUT)
		mark_down(r, why);
	(void)pthread_cond_broadcast(&r->cv);
	(void)pthread_mutex_unlock(&r->mu);
	if (c != NULL) {
		redisFree(c->c);
		free(c);
	}
	for (; stale != NULL; stale = next) {
		next = stale->next;
		redisFree(stale->c);
		free(stale);
	}
}

/* command - send argv, read the reply; on a connection failure NULL, the
 * reason in err and *st what to do with the connection */
static redisReply *
command(struct redis *r, struct rconn *c, int argc, const char **argv,
    const size_t *argl, enum conn_state *st, char *err, size_t errlen)
{
	redisReply *rep;

	*st = CONN_OK;
	if (redisAppendCommandArgv(c->c, argc, argv, argl) == REDIS_OK &&
	    redisGetReply(c->c, (void **)&rep) == REDIS_OK)
		return rep;
	if (conn_error(r, c->c, errno, err, errlen))
		*st = CONN_TIMEOUT;
	else if (c->c->err == REDIS_ERR_PROTOCOL || c->c->err == REDIS_ERR_OOM)
		*st = CONN_BROKEN;
	else
		*st = CONN_SUSPECT;
	return NULL;
}

/* parse_i64 - a whole decimal int64, or -1 */
static int
parse_i64(const char *s, size_t len, int64_t *v)
{
	char buf[32], *end;
	long long n;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	n = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v = (int64_t)n;
	return 0;
}

/* read_result - the script's answer into ops; -1 for a bad one */
static int
read_result(const redisReply *rep, struct store_op *ops, size_t nops)
{
	const redisReply *f, *v;
	size_t i;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 * nops)
		return -1;
	for (i = 0; i < nops; i++) {
		f = rep->element[2 * i];
		v = rep->element[2 * i + 1];
		if (f->type != REDIS_REPLY_INTEGER ||
		    v->type != REDIS_REPLY_STRING ||
		    parse_i64(v->str, v->len, &ops[i].value) == -1)
			return -1;
		ops[i].found = f->integer != 0;
	}
	return 0;
}

static const char *const kinds[] = {[STORE_GET] = "G",
    [STORE_SET] = "S",
    [STORE_SETNX] = "N",
    [STORE_INCR] = "I"};

static int
redis_update(void *p, const char *key, size_t keylen, struct store_op *ops,
    size_t nops, bool writes, unsigned ttl_s, char *err, size_t errlen)
{
	struct redis *r = p;
	struct rconn *c;
	redisReply *rep;
	enum conn_state st;
	const char **argv;
	size_t *argl, i, argc = 5 + 3 * nops;
	char ttl[16], (*vals)[24];
	int rc = -1;

	if ((c = acquire(r, err, errlen)) == NULL)
		return -1;
	argv = xcalloc(argc, sizeof(*argv));
	argl = xcalloc(argc, sizeof(*argl));
	vals = xcalloc(nops, sizeof(*vals));
	(void)snprintf(ttl, sizeof(ttl), "%u", writes ? ttl_s : 0);
	argv[0] = "EVALSHA";
	argv[1] = c->sha;
	argv[2] = "1";
	argv[3] = key;
	argl[3] = keylen;
	argv[4] = ttl;
	for (i = 0; i < nops; i++) {
		(void)snprintf(vals[i], sizeof(vals[i]), "%" PRId64,
		    ops[i].value);
		argv[5 + 3 * i] = kinds[ops[i].kind];
		argv[6 + 3 * i] = ops[i].field;
		argv[7 + 3 * i] = vals[i];
	}
	for (i = 0; i < argc; i++)
		if (i != 3)
			argl[i] = strlen(argv[i]);
	rep = command(r, c, (int)argc, argv, argl, &st, err, errlen);
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(rep);
		argv[0] = "EVAL";
		argv[1] = script;
		argl[0] = 4;
		argl[1] = sizeof(script) - 1;
		rep = command(r, c, (int)argc, argv, argl, &st, err, errlen);
	}
	if (rep != NULL) {
		if (rep->type == REDIS_REPLY_ERROR)
			(void)snprintf(err, errlen, "%s: %s", r->name,
			    rep->str);
		else if (read_result(rep, ops, nops) == -1)
			(void)snprintf(err, errlen, "%s: unexpected answer",
			    r->name);
		else
			rc = 0;
		freeReplyObject(rep);
	}
	release(r, c, st, err);
	free(argv);
	free(argl);
	free(vals);
	return rc;
}

static int
redis_del(void *p, const char *key, size_t keylen, char *err, size_t errlen)
{
	struct redis *r = p;
	struct rconn *c;
	redisReply *rep;
	enum conn_state st;
	const char *argv[2] = {"DEL", key};
	size_t argl[2] = {3, keylen};
	int rc = -1;

	if ((c = acquire(r, err, errlen)) == NULL)
		return -1;
	if ((rep = command(r, c, 2, argv, argl, &st, err, errlen)) != NULL) {
		if (rep->type == REDIS_REPLY_INTEGER)
			rc = 0;
		else
			(void)snprintf(err, errlen, "%s: %s", r->name,
			    rep->type == REDIS_REPLY_ERROR
				? rep->str
				: "unexpected answer");
		freeReplyObject(rep);
	}
	release(r, c, st, err);
	return rc;
}

static long
redis_sweep(void *p, size_t max, char *err, size_t errlen)
{
	return 0;
}

const struct store_backend_ops store_redis_backend = {
    .open = redis_open,
    .close = redis_close,
    .update = redis_update,
    .del = redis_del,
    .sweep = redis_sweep,
};
