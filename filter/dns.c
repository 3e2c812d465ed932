/*
 * dns.c - the DNS layer on libunbound, with an answer cache in front.
 *
 * One libunbound context per struct dns_ctx, in threaded asynchronous mode:
 * callers submit with ub_resolve_async() and wait on their own condition
 * variable; one event thread of ours runs ub_process() whenever ub_fd() is
 * readable and hands each answer to its waiter. A waiter that reaches its
 * per-query timeout or its deadline cancels the query and reports
 * DNS_TEMPFAIL; libunbound's blocking call would instead wait out its own
 * retry schedule (17 s measured, DESIGN.md section 1).
 *
 * Ownership of a pending query (struct pending) is shared by the waiter and
 * the callback: whoever comes second frees it. ub_cancel() returning
 * UB_NOERROR guarantees the callback never runs; UB_NOID means it has run or
 * is running, and then the callback frees what the waiter abandoned.
 *
 * The answer cache. Even an answer libunbound has cached costs a write to
 * its thread, a write back, our ub_process() and a wake-up: some 20 system
 * calls and 2.5 context switches (bench/README.md), for each of the ~5
 * questions of a message. So decoded answers are kept here as well, keyed
 * by type and name (ASCII letters folded, a final dot dropped), and a hit
 * is copied out on the calling thread: clock_gettime() and one shard's
 * mutex, no hand-off; the caller owns the copy. Kept: DNS_OK, DNS_NODATA and
 * DNS_NXDOMAIN answers of TTL 1 or more, for that TTL capped as libunbound
 * caps its own cache (cache-max-ttl 86400 s, cache-max-negative-ttl
 * 3600 s); never a temporary failure, so the next question goes to the
 * resolver. Bounded whatever names strangers make us ask: 16,384 entries
 * and 8 MiB counting the entries, names and records (an answer over 8 KiB
 * is not kept: libunbound still has it), both split evenly over 64 shards.
 * Each shard has its own mutex, hash table and use order; when full it
 * drops its least recently used entry, and expired ones as they are met.
 * No lock is held while querying or building a new entry; a hit is copied
 * under its shard's lock, with the TTL it has left. Only the libunbound
 * path has a cache; function backends are asked every time.
 *
 * libunbound defaults that would hurt a mail filter are changed here: a
 * forwarder marked down after two timeouts (infra-host-ttl 900 s) would turn
 * one black-holed sender zone into SERVFAIL for every name; the built-in
 * local zones (RFC 1918 reverse, test., invalid., ...) would answer for
 * names that the configured resolvers should answer; 256 outgoing sockets
 * would queue queries behind slow ones until they pass their timeout.
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unbound.h>

#include "buf.h"
#include "dns.h"
#include "dns_cache.h"
#include "xalloc.h"

#define DNS_DEFAULT_TIMEOUT_MS 5000

struct dns_ctx {
	struct ub_ctx *ub; /* NULL for a function backend */
	dns_answer_fn fn;
	void *fn_arg;
	unsigned timeout_ms;
	pthread_t thread;
	int wake[2];		 /* stop the event thread */
	struct dns_cache *cache; /* NULL for a function backend */
	struct dns_stats stats;
};

enum pending_state { P_WAITING, P_DONE, P_ABANDONED };

struct pending {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum pending_state state;
	int err;
	struct ub_result *res;
};

static void
stat_inc(unsigned long *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

void
dns_deadline(struct timespec *ts, unsigned ms)
{
	(void)clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

long
dns_ms_left(const struct timespec *ts)
{
	struct timespec now;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(ts->tv_sec - now.tv_sec) * 1000L +
	    (ts->tv_nsec - now.tv_nsec) / 1000000L;
}

/* dns_name_ok - could this name be sent at all: labels 1..63, total <= 253 */
bool
dns_name_ok(const char *name)
{
	size_t len = strlen(name), label = 0, i;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_MAX_NAME)
		return false;
	for (i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (++label > DNS_MAX_LABEL)
			return false;
	}
	return label > 0;
}

const char *
dns_type_name(enum dns_type t)
{
	switch (t) {
	case DNS_T_A:
		return "A";
	case DNS_T_PTR:
		return "PTR";
	case DNS_T_MX:
		return "MX";
	case DNS_T_TXT:
		return "TXT";
	case DNS_T_AAAA:
		return "AAAA";
	}
	return "?";
}

const char *
dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "nodata";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

void
dns_answer_add(struct dns_answer *a, const struct dns_rr *rr)
{
	a->rr = xreallocarray(a->rr, a->count + 1, sizeof(*a->rr));
	a->rr[a->count] = *rr;
	a->count++;
	a->status = DNS_OK;
}

/* dns_answer_truncate - keep the first n records */
void
dns_answer_truncate(struct dns_answer *a, size_t n)
{
	while (a->count > n)
		free(a->rr[--a->count].data);
}

void
dns_answer_free(struct dns_answer *a)
{
	size_t i;

	for (i = 0; i < a->count; i++)
		free(a->rr[i].data);
	free(a->rr);
	a->rr = NULL;
	a->count = 0;
}

/* note_latency - one answer's time in the histogram */
static void
note_latency(struct dns_ctx *ctx, const struct timespec *t0)
{
	static const long bounds[] = DNS_LATENCY_BOUNDS_MS;
	struct timespec t1;
	long us;
	size_t i;

	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	us = (long)(t1.tv_sec - t0->tv_sec) * 1000000L +
	    (t1.tv_nsec - t0->tv_nsec) / 1000L;
	if (us < 0)
		us = 0;
	for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
		if (us <= bounds[i] * 1000L)
			break;
	stat_inc(&ctx->stats.latency[i]);
	__atomic_fetch_add(&ctx->stats.latency_sum_us, (unsigned long)us,
	    __ATOMIC_RELAXED);
}

void
dns_get_stats(struct dns_ctx *ctx, struct dns_stats *st)
{
	size_t i;

	for (i = 0; i < DNS_LATENCY_BUCKETS; i++)
		st->latency[i] =
		    __atomic_load_n(&ctx->stats.latency[i], __ATOMIC_RELAXED);
	st->latency_sum_us =
	    __atomic_load_n(&ctx->stats.latency_sum_us, __ATOMIC_RELAXED);
	st->queries = __atomic_load_n(&ctx->stats.queries, __ATOMIC_RELAXED);
	st->sent = __atomic_load_n(&ctx->stats.sent, __ATOMIC_RELAXED);
	st->timeouts = __atomic_load_n(&ctx->stats.timeouts, __ATOMIC_RELAXED);
	st->tempfails =
	    __atomic_load_n(&ctx->stats.tempfails, __ATOMIC_RELAXED);
	st->badnames = __atomic_load_n(&ctx->stats.badnames, __ATOMIC_RELAXED);
	st->cache_hits =
	    __atomic_load_n(&ctx->stats.cache_hits, __ATOMIC_RELAXED);
}

/* wire_name - a wire-format name in rdata to text; NULL if malformed */
static char *
wire_name(const unsigned char *p, size_t len)
{
	struct buf b;
	size_t i = 0;

	buf_init(&b);
	while (i < len && p[i] != 0) {
		size_t n = p[i];

		if (n > DNS_MAX_LABEL || i + 1 + n > len) {
			buf_free(&b);
			return NULL;
		}
		if (b.len > 0)
			buf_addc(&b, '.');
		buf_add(&b, p + i + 1, n);
		i += 1 + n;
	}
	if (i >= len) {
		buf_free(&b);
		return NULL;
	}
	return buf_release(&b); /* the root name is "" */
}

/* decode_rr - one rdata of the type asked into a record; -1 if malformed */
static int
decode_rr(enum dns_type type, const unsigned char *p, size_t len,
    struct dns_rr *rr)
{
	struct buf b;
	size_t i;

	memset(rr, 0, sizeof(*rr));
	switch (type) {
	case DNS_T_A:
		if (len != 4)
			return -1;
		memcpy(&rr->addr.v4, p, 4);
		return 0;
	case DNS_T_AAAA:
		if (len != 16)
			return -1;
		memcpy(&rr->addr.v6, p, 16);
		return 0;
	case DNS_T_TXT:
		buf_init(&b);
		for (i = 0; i < len; i += 1 + p[i]) {
			if (i + 1 + p[i] > len) {
				buf_free(&b);
				return -1;
			}
			buf_add(&b, p + i + 1, p[i]);
		}
		rr->len = b.len;
		rr->data = buf_release(&b);
		return 0;
	case DNS_T_MX:
		if (len < 3)
			return -1;
		rr->pref = (uint16_t)(p[0] << 8 | p[1]);
		p += 2;
		len -= 2;
		/* FALLTHROUGH */
	case DNS_T_PTR:
		if ((rr->data = wire_name(p, len)) == NULL)
			return -1;
		rr->len = strlen(rr->data);
		return 0;
	}
	return -1;
}

/* dns_decode_result - turn libunbound's result into our answer */
void
dns_decode_result(const struct ub_result *res, struct dns_answer *out)
{
	struct dns_rr rr;
	int i;

	out->ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
	if (res->havedata) {
		for (i = 0; res->data[i] != NULL; i++) {
			if (decode_rr(out->type,
				(const unsigned char *)res->data[i],
				(size_t)res->len[i], &rr) == 0)
				dns_answer_add(out, &rr);
		}
		if (out->count == 0)
			out->status = DNS_NODATA;
		return;
	}
	switch (res->rcode) {
	case 0:
		out->status = DNS_NODATA;
		break;
	case 3:
		out->status = DNS_NXDOMAIN;
		break;
	case 2:
		out->status = DNS_TEMPFAIL;
		out->why = "SERVFAIL";
		break;
	case 5:
		out->status = DNS_TEMPFAIL;
		out->why = "REFUSED";
		break;
	default:
		out->status = DNS_TEMPFAIL;
		out->why = "error response";
		break;
	}
}

/* ub_name - the name in the text form libunbound parses: escape all but
 * letters, digits, '-', '_' and the dots, so bytes reach the wire as is */
static void
ub_name(const char *name, struct buf *b)
{
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		    *p == '.')
			buf_addc(b, (char)*p);
		else
			buf_addf(b, "\\%03u", *p);
	}
}

static void
pending_free(struct pending *p)
{
	if (p->res != NULL)
		ub_resolve_free(p->res);
	(void)pthread_cond_destroy(&p->cv);
	(void)pthread_mutex_destroy(&p->mu);
	free(p);
}

/* on_answer - libunbound's callback, run on our event thread */
static void
on_answer(void *arg, int err, struct ub_result *res)
{
	struct pending *p = arg;

	(void)pthread_mutex_lock(&p->mu);
	if (p->state == P_ABANDONED) {
		(void)pthread_mutex_unlock(&p->mu);
		if (res != NULL)
			ub_resolve_free(res);
		pending_free(p);
		return;
	}
	p->err = err;
	p->res = res;
	p->state = P_DONE;
	(void)pthread_cond_signal(&p->cv);
	(void)pthread_mutex_unlock(&p->mu);
}

/* event_loop - run libunbound's callbacks until told to stop */
static void *
event_loop(void *arg)
{
	struct dns_ctx *ctx = arg;
	struct pollfd pfd[2];

	pfd[0].fd = ub_fd(ctx->ub);
	pfd[0].events = POLLIN;
	pfd[1].fd = ctx->wake[0];
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents != 0)
			(void)ub_process(ctx->ub);
	}
	return NULL;
}

static int64_t
ts_ms(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

void
dns_cache_usage(struct dns_ctx *ctx, size_t *entries, size_t *bytes)
{
	*entries = *bytes = 0;
	if (ctx->cache != NULL)
		dns_cache_count(ctx->cache, entries, bytes);
}

void
dns_cache_limits(struct dns_ctx *ctx, size_t entries, size_t bytes,
    uint32_t max_ttl, uint32_t max_neg_ttl)
{
	if (ctx->cache != NULL)
		dns_cache_set_limits(ctx->cache, entries, bytes, max_ttl,
		    max_neg_ttl);
}

/* resolve_ub - one query through libunbound, bounded by timeout/deadline */
static void
resolve_ub(struct dns_ctx *ctx, const char *name,
    const struct timespec *deadline, struct dns_answer *out)
{
	struct pending *p;
	struct timespec until;
	struct buf qname;
	int id, rc = 0;

	dns_deadline(&until, ctx->timeout_ms);
	if (deadline != NULL &&
	    (until.tv_sec > deadline->tv_sec ||
		(until.tv_sec == deadline->tv_sec &&
		    until.tv_nsec > deadline->tv_nsec)))
		until = *deadline;
	if (dns_ms_left(&until) <= 0) {
		out->status = DNS_TEMPFAIL;
		out->why = "deadline";
		stat_inc(&ctx->stats.timeouts);
		return;
	}

	p = xcalloc(1, sizeof(*p));
	(void)pthread_mutex_init(&p->mu, NULL);
	{
		pthread_condattr_t attr;

		(void)pthread_condattr_init(&attr);
		(void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		(void)pthread_cond_init(&p->cv, &attr);
		(void)pthread_condattr_destroy(&attr);
	}
	p->state = P_WAITING;

	buf_init(&qname);
	ub_name(name, &qname);
	stat_inc(&ctx->stats.sent);
	if (ub_resolve_async(ctx->ub, buf_str(&qname), (int)out->type, 1, p,
		on_answer, &id) != 0) {
		buf_free(&qname);
		pending_free(p);
		out->status = DNS_TEMPFAIL;
		out->why = "resolver error";
		return;
	}
	buf_free(&qname);

	(void)pthread_mutex_lock(&p->mu);
	while (p->state == P_WAITING && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
	if (p->state != P_DONE) {
		p->state = P_ABANDONED;
		(void)pthread_mutex_unlock(&p->mu);
		if (ub_cancel(ctx->ub, id) == 0)
			pending_free(p);
		/* else the callback is running and frees p */
		out->status = DNS_TEMPFAIL;
		out->why = "timeout";
		stat_inc(&ctx->stats.timeouts);
		return;
	}
	(void)pthread_mutex_unlock(&p->mu);

	if (p->err != 0 || p->res == NULL) {
		out->status = DNS_TEMPFAIL;
		out->why = "resolver error";
	} else
		dns_decode_result(p->res, out);
	pending_free(p);
}

void
dns_query(struct dns_ctx *ctx, const char *name, enum dns_type type,
    const struct timespec *deadline, struct dns_answer *out)
{
	struct timespec t0;
	struct dns_cache_key key;
	bool cacheable;

	memset(out, 0, sizeof(*out));
	out->type = type;
	out->status = DNS_NODATA;
	stat_inc(&ctx->stats.queries);

	if (!dns_name_ok(name)) {
		out->status = DNS_NXDOMAIN;
		stat_inc(&ctx->stats.badnames);
		return;
	}
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	cacheable =
	    ctx->cache != NULL && dns_cache_key(ctx->cache, name, type, &key);
	/* a passed deadline is a temporary failure, cached answer or not */
	if (cacheable && (deadline == NULL || ts_ms(deadline) > ts_ms(&t0)) &&
	    dns_cache_get(ctx->cache, &key, ts_ms(&t0), out)) {
		stat_inc(&ctx->stats.cache_hits);
		return;
	}
	if (ctx->fn != NULL) {
		if (deadline != NULL && dns_ms_left(deadline) <= 0) {
			out->status = DNS_TEMPFAIL;
			out->why = "deadline";
		} else
			ctx->fn(ctx->fn_arg, name, type, out);
	} else
		resolve_ub(ctx, name, deadline, out);
	note_latency(ctx, &t0);
	if (cacheable)
		dns_cache_put(ctx->cache, &key, ts_ms(&t0), out);
	if (out->status == DNS_TEMPFAIL)
		stat_inc(&ctx->stats.tempfails);
	if (out->status != DNS_OK)
		dns_answer_free(out);
}

/* builtin_zones - the names of libunbound's default local zones */
static int
builtin_zones(char ***names, size_t *n)
{
	struct ub_ctx *probe;
	char *text = NULL, *line, *save = NULL;
	size_t textlen = 0;
	FILE *fp;

	*names = NULL;
	*n = 0;
	if ((probe = ub_ctx_create()) == NULL)
		return -1;
	if ((fp = open_memstream(&text, &textlen)) == NULL) {
		ub_ctx_delete(probe);
		return -1;
	}
	(void)ub_ctx_debugout(probe, fp);
	(void)ub_ctx_print_local_zones(probe);
	ub_ctx_delete(probe);
	(void)fclose(fp);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *z = strstr(line, "static zone "), *end;

		if (z == NULL)
			continue;
		z += strlen("static zone ");
		if ((end = strchr(z, ' ')) == NULL)
			continue;
		*names = xreallocarray(*names, *n + 1, sizeof(**names));
		(*names)[(*n)++] = xstrndup(z, (size_t)(end - z));
	}
	free(text);
	return 0;
}

/*
 * undefault_zones - "local-zone: NAME nodefault" for each name. Passed as a
 * configuration file (in memory) because ub_ctx_set_option() accepts the
 * option in libunbound 1.17 but does not apply it.
 */
static int
undefault_zones(struct ub_ctx *ub, char **zones, size_t n)
{
	char path[64];
	FILE *fp;
	size_t i;
	int fd, rc;

	if ((fd = memfd_create("spfguard-unbound", 0)) == -1 ||
	    (fp = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			(void)close(fd);
		return -1;
	}
	(void)fputs("server:\n", fp);
	for (i = 0; i < n; i++)
		if (strcmp(zones[i], "localhost.") != 0 &&
		    strchr(zones[i], '"') == NULL)
			(void)fprintf(fp, "\tlocal-zone: \"%s\" nodefault\n",
			    zones[i]);
	if (fflush(fp) != 0) {
		(void)fclose(fp);
		return -1;
	}
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = ub_ctx_config(ub, path);
	(void)fclose(fp);
	return rc == 0 ? 0 : -1;
}

/*
 * dns_resolver_parse - "HOST", "HOST:PORT", "[V6]:PORT" or "V6" (an IP
 * address, never a name) into libunbound's "ADDR[@PORT]"
 */
int
dns_resolver_parse(const char *spec, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *port = NULL, *colon;
	unsigned char tmp[16];
	size_t hlen;
	long pnum;
	char *end;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
			goto bad;
		hlen = (size_t)(rb - spec - 1);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, hlen);
		host[hlen] = '\0';
		if (rb[1] == ':')
			port = rb + 2;
	} else if ((colon = strchr(spec, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		hlen = (size_t)(colon - spec);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, spec, hlen);
		host[hlen] = '\0';
		port = colon + 1;
	} else {
		if (strlen(spec) >= sizeof(host))
			goto bad;
		(void)strcpy(host, spec);
	}
	if (inet_pton(AF_INET, host, tmp) != 1 &&
	    inet_pton(AF_INET6, host, tmp) != 1) {
		(void)snprintf(err, errlen,
		    "not an IP address (names are not resolved here)");
		return -1;
	}
	if (port != NULL) {
		errno = 0;
		pnum = strtol(port, &end, 10);
		if (*port == '\0' || *end != '\0' || errno != 0 || pnum < 1 ||
		    pnum > 65535)
			goto bad;
		(void)snprintf(out, outlen, "%s@%ld", host, pnum);
	} else
		(void)snprintf(out, outlen, "%s", host);
	return 0;
bad:
	(void)snprintf(err, errlen, "expected IP, IPv4:PORT or [IPv6]:PORT");
	return -1;
}

/* set_forwarder - one resolver as a libunbound forwarder */
static int
set_forwarder(struct ub_ctx *ub, const char *spec, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 16], why[128];

	if (dns_resolver_parse(spec, addr, sizeof(addr), why, sizeof(why)) !=
	    0) {
		(void)snprintf(err, errlen, "resolver \"%.64s\": %s", spec,
		    why);
		return -1;
	}
	if (ub_ctx_set_fwd(ub, addr) != 0) {
		(void)snprintf(err, errlen, "resolver \"%.64s\": rejected",
		    spec);
		return -1;
	}
	return 0;
}

/* configure - the options that make libunbound fit a mail filter */
static int
configure(struct ub_ctx *ub, const struct dns_opts *o, char *err, size_t errlen)
{
	/*
	 * outgoing-range: sockets for queries in flight, and
	 * num-queries-per-thread: queries libunbound works on at once. At
	 * 256 (and 1024), with ~400 slow answers in flight the rest waited
	 * inside libunbound and some passed dns.timeout_ms although their
	 * answer came in 3 s (bench/README.md). Debian's libunbound uses
	 * libevent, so no select() limit; the daemon raises RLIMIT_NOFILE.
	 */
	static const char *const opts[][2] = {
	    {"do-not-query-localhost:", "no"},
	    {"infra-host-ttl:", "0"},
	    {"infra-keep-probing:", "yes"},
	    {"outgoing-range:", "4096"},
	    {"num-queries-per-thread:", "4096"},
	};
	char **zones;
	size_t nzones, i;
	int rc = 0;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		if (ub_ctx_set_option(ub, opts[i][0], opts[i][1]) != 0) {
			(void)snprintf(err, errlen, "libunbound option %s %s",
			    opts[i][0], opts[i][1]);
			return -1;
		}
	}
	if (builtin_zones(&zones, &nzones) == 0) {
		rc = undefault_zones(ub, zones, nzones);
		for (i = 0; i < nzones; i++)
			free(zones[i]);
		free(zones);
		if (rc != 0) {
			(void)snprintf(err, errlen,
			    "libunbound: cannot disable its local zones");
			return -1;
		}
	}
	if (o->nresolvers == 0) {
		if (ub_ctx_resolvconf(ub, NULL) != 0) {
			(void)snprintf(err, errlen,
			    "cannot read the system resolvers");
			return -1;
		}
	}
	for (i = 0; i < o->nresolvers && rc == 0; i++)
		rc = set_forwarder(ub, o->resolvers[i], err, errlen);
	if (rc == 0 && ub_ctx_async(ub, 1) != 0) {
		(void)snprintf(err, errlen, "libunbound: no threads");
		rc = -1;
	}
	return rc;
}

struct dns_ctx *
dns_create(const struct dns_opts *o, char *err, size_t errlen)
{
	struct dns_ctx *ctx;

	ctx = xcalloc(1, sizeof(*ctx));
	ctx->timeout_ms =
	    o->timeout_ms != 0 ? o->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	if ((ctx->ub = ub_ctx_create()) == NULL) {
		(void)snprintf(err, errlen, "libunbound: cannot create");
		free(ctx);
		return NULL;
	}
	if (configure(ctx->ub, o, err, errlen) != 0) {
		ub_ctx_delete(ctx->ub);
		free(ctx);
		return NULL;
	}
	if (pipe(ctx->wake) == -1) {
		(void)snprintf(err, errlen, "pipe: %s", strerror(errno));
		ub_ctx_delete(ctx->ub);
		free(ctx);
		return NULL;
	}
	/* ub_fd() finalises the context and starts libunbound's thread */
	if (ub_fd(ctx->ub) == -1 ||
	    pthread_create(&ctx->thread, NULL, event_loop, ctx) != 0) {
		(void)snprintf(err, errlen, "cannot start the DNS thread");
		(void)close(ctx->wake[0]);
		(void)close(ctx->wake[1]);
		ub_ctx_delete(ctx->ub);
		free(ctx);
		return NULL;
	}
	ctx->cache = dns_cache_new();
	return ctx;
}

struct dns_ctx *
dns_create_fn(dns_answer_fn fn, void *arg)
{
	struct dns_ctx *ctx;

	ctx = xcalloc(1, sizeof(*ctx));
	ctx->fn = fn;
	ctx->fn_arg = arg;
	return ctx;
}

void
dns_destroy(struct dns_ctx *ctx)
{
	if (ctx == NULL)
		return;
	if (ctx->ub != NULL) {
		(void)write(ctx->wake[1], "x", 1);
		(void)pthread_join(ctx->thread, NULL);
		(void)close(ctx->wake[0]);
		(void)close(ctx->wake[1]);
		ub_ctx_delete(ctx->ub);
	}
	dns_cache_free(ctx->cache);
	free(ctx);
}
