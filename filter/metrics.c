/*
 * metrics.c - counters in the Prometheus text format (see metrics.h).
 *
 * Decisions are counted by action, rule and deciding SPF result, and
 * blocklist lookups by list and outcome: label sets the configuration
 * bounds (rules and lists are named there; actions and results are
 * fixed), kept in a small array searched under a mutex. Label values are
 * escaped as the format wants; nothing from the network is a label.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "xalloc.h"

#define MAX_SERIES 4096 /* label sets kept; more are counted as "other" */

struct series {
	char *a, *b, *c; /* label values */
	unsigned long n;
};

struct family {
	struct series *v;
	size_t n;
};

struct metrics {
	pthread_mutex_t mu;
	struct family decisions;  /* action, rule, spf */
	struct family recipients; /* action */
	struct family lists;	  /* list, status */
	unsigned long reloads, reload_failures;
};

struct metrics *
metrics_create(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	(void)pthread_mutex_init(&m->mu, NULL);
	return m;
}

static void
family_free(struct family *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->v[i].a);
		free(f->v[i].b);
		free(f->v[i].c);
	}
	free(f->v);
}

void
metrics_destroy(struct metrics *m)
{
	if (m == NULL)
		return;
	family_free(&m->decisions);
	family_free(&m->recipients);
	family_free(&m->lists);
	(void)pthread_mutex_destroy(&m->mu);
	free(m);
}

static bool
same(const char *x, const char *y)
{
	return strcmp(x != NULL ? x : "", y != NULL ? y : "") == 0;
}

/* count - add n to the series with these labels (m->mu held) */
static void
count(struct family *f, const char *a, const char *b, const char *c,
    unsigned long n)
{
	struct series *s;
	size_t i;

	for (i = 0; i < f->n; i++) {
		s = &f->v[i];
		if (same(s->a, a) && same(s->b, b) && same(s->c, c)) {
			s->n += n;
			return;
		}
	}
	if (f->n >= MAX_SERIES - 1 && !same(a, "other")) {
		/* the last series takes whatever does not fit */
		count(f, "other", b != NULL ? "other" : NULL,
		    c != NULL ? "other" : NULL, n);
		return;
	}
	f->v = xreallocarray(f->v, f->n + 1, sizeof(*f->v));
	s = &f->v[f->n++];
	s->a = xstrdup(a != NULL ? a : "");
	s->b = b != NULL ? xstrdup(b) : NULL;
	s->c = c != NULL ? xstrdup(c) : NULL;
	s->n = n;
}

void
metrics_decision(struct metrics *m, const struct decision *d)
{
	const struct policy_verdict *v = d->verdict;
	const char *action = policy_action_name(v->action);
	const char *rule = v->rule != NULL ? v->rule->name : "(none)";
	const char *spf = d->facts != NULL && d->facts->have_spf
	    ? spf_result_name(d->facts->spf)
	    : "none";
	size_t i;

	(void)pthread_mutex_lock(&m->mu);
	count(&m->decisions, action, rule, spf, 1);
	count(&m->recipients, action, NULL, NULL, d->nrcpts);
	for (i = 0; d->rep != NULL && i < d->rep->nlists; i++)
		count(&m->lists, d->rep->lists[i]->list->name,
		    dnsbl_status_name(d->rep->lists[i]->status), NULL, 1);
	(void)pthread_mutex_unlock(&m->mu);
}

void
metrics_reload(struct metrics *m, bool ok)
{
	(void)pthread_mutex_lock(&m->mu);
	m->reloads++;
	if (!ok)
		m->reload_failures++;
	(void)pthread_mutex_unlock(&m->mu);
}

/* label - name="value", the value escaped as the format says */
static void
label(struct buf *b, const char *name, const char *v)
{
	buf_addf(b, "%s=\"", name);
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			buf_addc(b, '\\');
		if (*v == '\n')
			buf_adds(b, "\\n");
		else
			buf_addc(b, *v);
	}
	buf_addc(b, '"');
}

static void
head(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(struct buf *b, const char *name, const char *type, const char *help,
    unsigned long v)
{
	head(b, name, type, help);
	buf_addf(b, "%s %lu\n", name, v);
}

static void
family(struct buf *b, const char *name, const char *help,
    const struct family *f, const char *la, const char *lb, const char *lc)
{
	size_t i;

	head(b, name, "counter", help);
	for (i = 0; i < f->n; i++) {
		buf_addf(b, "%s{", name);
		label(b, la, f->v[i].a);
		if (lb != NULL && f->v[i].b != NULL) {
			buf_addc(b, ',');
			label(b, lb, f->v[i].b);
		}
		if (lc != NULL && f->v[i].c != NULL) {
			buf_addc(b, ',');
			label(b, lc, f->v[i].c);
		}
		buf_addf(b, "} %lu\n", f->v[i].n);
	}
}

/* latency - the DNS answer times as a cumulative histogram in seconds */
static void
latency(struct buf *b, const struct dns_stats *st)
{
	static const long bounds[] = DNS_LATENCY_BOUNDS_MS;
	unsigned long total = 0;
	size_t i;

	head(b, "spfguard_dns_latency_seconds", "histogram",
	    "Time to answer a DNS question handed to the resolver "
	    "(libunbound, with its own cache); not those answered from "
	    "spfguard's answer cache.");
	for (i = 0; i < DNS_LATENCY_BUCKETS; i++) {
		total += st->latency[i];
		if (i < sizeof(bounds) / sizeof(bounds[0]))
			buf_addf(b,
			    "spfguard_dns_latency_seconds_bucket{le=\"%g\"} "
			    "%lu\n",
			    (double)bounds[i] / 1000.0, total);
		else
			buf_addf(b,
			    "spfguard_dns_latency_seconds_bucket{le=\"+Inf\"} "
			    "%lu\n",
			    total);
	}
	buf_addf(b, "spfguard_dns_latency_seconds_sum %.6f\n",
	    (double)st->latency_sum_us / 1e6);
	buf_addf(b, "spfguard_dns_latency_seconds_count %lu\n", total);
}

void
metrics_format(struct metrics *m, const struct metrics_sources *src,
    struct buf *b)
{
	(void)pthread_mutex_lock(&m->mu);
	family(b, "spfguard_decisions_total",
	    "Decisions (decision-log lines) by action, deciding rule and "
	    "deciding SPF result.",
	    &m->decisions, "action", "rule", "spf");
	family(b, "spfguard_recipients_total", "Recipients decided, by action.",
	    &m->recipients, "action", NULL, NULL);
	family(b, "spfguard_blocklist_lookups_total",
	    "Blocklist lookups used in decisions, by list and outcome "
	    "(clean, listed, unknown).",
	    &m->lists, "list", "status", NULL);
	one(b, "spfguard_reloads_total", "counter",
	    "Configuration reloads asked for (SIGHUP).", m->reloads);
	one(b, "spfguard_reload_failures_total", "counter",
	    "Reloads refused because the new configuration had errors.",
	    m->reload_failures);
	(void)pthread_mutex_unlock(&m->mu);

	one(b, "spfguard_sessions_in_flight", "gauge",
	    "SMTP sessions open now.", src->sessions);
	if (src->dns != NULL) {
		one(b, "spfguard_dns_queries_total", "counter",
		    "DNS questions asked by SPF checks and blocklist lookups.",
		    src->dns->queries);
		one(b, "spfguard_dns_sent_total", "counter",
		    "Questions handed to the resolver (the rest were answered "
		    "from spfguard's answer cache, or were invalid names "
		    "answered locally).",
		    src->dns->sent);
		one(b, "spfguard_dns_timeouts_total", "counter",
		    "Questions that ran out of time (query timeout or "
		    "evaluation deadline).",
		    src->dns->timeouts);
		one(b, "spfguard_dns_tempfails_total", "counter",
		    "Questions answered with a temporary failure (timeouts, "
		    "SERVFAIL, REFUSED).",
		    src->dns->tempfails);
		one(b, "spfguard_dns_cache_hits_total", "counter",
		    "Questions answered from spfguard's own answer cache, "
		    "without the resolver (hits in libunbound's cache behind "
		    "it are not counted: those questions are sent).",
		    src->dns->cache_hits);
		latency(b, src->dns);
	}
	if (src->jobs != NULL) {
		one(b, "spfguard_worker_threads", "gauge",
		    "Worker threads for SPF checks and blocklist lookups.",
		    src->jobs->threads);
		one(b, "spfguard_worker_queue", "gauge",
		    "Checks waiting for a worker.", src->jobs->queued);
		one(b, "spfguard_worker_jobs_total", "counter",
		    "Checks and lookups done by the workers.", src->jobs->done);
	}
	if (src->declog != NULL) {
		one(b, "spfguard_decision_log_lines_total", "counter",
		    "Lines written to the decision log.", src->declog->written);
		one(b, "spfguard_decision_log_write_failures_total", "counter",
		    "Decision-log lines whose first write failed (full disk); "
		    "they wait in memory for room.",
		    src->declog->failures);
		one(b, "spfguard_decision_log_pending", "gauge",
		    "Decision-log lines waiting in memory for room on the "
		    "disk.",
		    src->declog->pending);
		one(b, "spfguard_decision_log_lost_total", "counter",
		    "Decision-log lines dropped because too many were waiting.",
		    src->declog->lost);
	}
	if (src->store != NULL) {
		one(b, "spfguard_store_updates_total", "counter",
		    "Reputation store operations.", src->store->updates);
		one(b, "spfguard_store_errors_total", "counter",
		    "Reputation store operations that failed.",
		    src->store->errors);
	}
	one(b, "spfguard_store_failures_total", "counter",
	    "Messages answered as store.on_error says because the store "
	    "failed.",
	    src->store_failures);
}

int
metrics_listen_parse(const char *v, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	char host[64], *end;
	const char *colon;
	long port;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	if (v[0] == '[') {
		if ((colon = strstr(v, "]:")) == NULL)
			goto bad;
		n = (size_t)(colon - v - 1);
		colon++;
	} else {
		if ((colon = strrchr(v, ':')) == NULL)
			goto bad;
		n = (size_t)(colon - v);
	}
	if (n == 0 || n >= sizeof(host))
		goto bad;
	(void)memcpy(host, v[0] == '[' ? v + 1 : v, n);
	host[n] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1 && v[0] != '[') {
		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
			goto loopback;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (v[0] == '[' && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			goto loopback;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
bad:
	(void)snprintf(err, errlen,
	    "expected 127.0.0.1:PORT or [::1]:PORT (a loopback address)");
	return -1;
loopback:
	(void)snprintf(err, errlen,
	    "not a loopback address: the metrics page is for this host only");
	return -1;
}
