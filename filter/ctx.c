/*
 * ctx.c - per-connection and per-message state, and the transaction
 * driver (see ctx.h).
 *
 * Timing: the HELO check is started at HELO and the MAIL FROM check at
 * MAIL, on the SPF workers (jobs.c); the callbacks return at once. The
 * results are collected at the first RCPT, waiting at most until the
 * evaluation deadline (plus a second of grace for a busy pool); a check
 * still running then counts as temperror. Trusted clients start no checks;
 * authenticated clients start no MAIL FROM check, and a HELO check begun
 * before the client authenticated is ignored.
 *
 * Blocklists are looked up on the same workers as soon as their subject
 * is known: the client's DNSBLs at connect, RHSBLs of the HELO name at
 * HELO and of the sender domain at MAIL; they are collected with SPF, a
 * lookup that has not finished by then being "unknown", never "clean".
 *
 * Reputation state (reputation.c over the store) is read at the first
 * RCPT (history, message rate limits), per recipient (recipient rate
 * limits, greylisting, asked by the rule engine when a greylist rule
 * matches), and written when the message ends (history). A store failure
 * is logged (at most once a minute), counted, written into the decision,
 * and answered as store.on_error says: accept as if the fact were unknown,
 * or tempfail 451 4.3.0.
 *
 * Decisions are made per recipient at RCPT and written to the decision
 * log when the message ends (end of message, abort, a new MAIL, close):
 * one line per group of recipients that got the same answer.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctx.h"
#include "dnsbl.h"
#include "headers.h"
#include "reputation.h"
#include "log.h"
#include "xalloc.h"

#define WAIT_GRACE_MS 1000
#define MAX_RCPTS     1000 /* recipients remembered per message */
#define WARN_EVERY_S  60   /* store failure warnings */

/* the answer to mail when the store failed and on_error is tempfail */
static const struct policy_rule store_error_rule = {
    .name = (char *)"store-error",
    .action = ACT_TEMPFAIL,
};

/* A blocklist lookup of one list for one subject. */
struct bl {
	const struct dnsbl_list *list;
	char *subject;
	struct job *job;
	struct dnsbl_result late; /* it did not finish in time */
	const struct dnsbl_result *r;
};

struct bls {
	struct bl *v;
	size_t n;
};

struct rcpt {
	char *addr;
	char *domain;
	struct policy_verdict v;
	long elapsed_ms;
	bool logged;
};

struct msg {
	bool active;
	char *sender; /* "" for the null sender */
	char *local, *domain;
	char *auth_user;
	char *queue_id;
	struct job *mfrom_job;
	bool mfrom_is_helo; /* null sender: the HELO result serves */
	bool collected;
	const struct spf_response *helo_r, *mfrom_r;
	struct spf_response late_helo, late_mfrom; /* did not finish */
	struct policy_facts facts;
	struct rcpt *rcpts;
	size_t nrcpts;
	size_t ar_seen;
	size_t *remove;
	size_t nremove;
	struct timespec started;
	char *ar_hdr, *rspf_hdr, *tag_value;

	/* reputation */
	struct bls from_bl;
	const char **names; /* the facts' name lists, one array */
	const struct dnsbl_result **results;
	size_t nresults;
	char net[64]; /* the client's network, or "" */
	struct rep_history hist, net_hist;
	struct rep_rate_state *rates;
	const char **over;
	char *store_error;
	struct rep_facts rep;
};

struct conn {
	struct runtime *rt;
	struct conf *conf;
	char conn_id[40];
	char *client_ip;
	char *client_name;
	bool trusted;
	char *helo;
	struct job *helo_job;
	struct bls client_bl, helo_bl;
	struct msg m;
	char *reply_text;
};

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec now;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - t0->tv_sec) * 1000L +
	    (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

char *
ctx_address(const char *arg)
{
	const char *p = arg, *colon;
	size_t n;

	if (p == NULL)
		return xstrdup("");
	while (*p == ' ')
		p++;
	n = strlen(p);
	if (n >= 2 && p[0] == '<' && p[n - 1] == '>') {
		p++;
		n -= 2;
	}
	/* a source route, <@a,@b:user@d>, is ignored (RFC 5321 4.1.2) */
	if (n > 0 && p[0] == '@' && (colon = memchr(p, ':', n)) != NULL) {
		n -= (size_t)(colon + 1 - p);
		p = colon + 1;
	}
	return xstrndup(p, n);
}

void
ctx_split(const char *addr, char **local, char **domain)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL) {
		*local = xstrdup(addr);
		*domain = xstrdup("");
		return;
	}
	*local = xstrndup(addr, (size_t)(at - addr));
	*domain = xstrdup(at + 1);
}

/* bl_start - look the subject up on the lists of a kind that check it */
static void
bl_start(struct conn *c, struct bls *b, enum dnsbl_kind kind, bool helo,
    const char *subject)
{
	const struct conf *cf = c->conf;
	const struct dnsbl_list *l;
	struct bl *x;
	size_t i;

	for (i = 0; i < cf->ndnsbls; i++) {
		l = &cf->dnsbls[i];
		if (l->kind != kind ||
		    (kind == DNSBL_DOMAIN &&
			!(helo ? l->check_helo : l->check_from)))
			continue;
		b->v = xreallocarray(b->v, b->n + 1, sizeof(*b->v));
		x = &b->v[b->n++];
		memset(x, 0, sizeof(*x));
		x->list = l;
		x->subject = xstrdup(subject);
		x->job = dnsbl_job_start(c->rt->jobs, c->rt->dns, l, subject,
		    cf->spf_deadline_ms);
	}
}

static void
bl_free(struct bls *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		job_release(b->v[i].job);
		free(b->v[i].subject);
		dnsbl_result_free(&b->v[i].late);
	}
	free(b->v);
	b->v = NULL;
	b->n = 0;
}

/* store_failed - remember, count and (now and then) log a store failure */
static void
store_failed(struct conn *c, const char *why)
{
	struct runtime *rt = c->rt;
	time_t now = time(NULL);
	bool warn = false;

	if (c->m.store_error == NULL)
		c->m.store_error = xstrdup(why);
	(void)pthread_mutex_lock(&rt->mu);
	rt->store_failures++;
	if (now - rt->store_warned >= WARN_EVERY_S) {
		rt->store_warned = now;
		warn = true;
	}
	(void)pthread_mutex_unlock(&rt->mu);
	if (warn)
		log_warnx("store: %s; failing %s (store.on_error = %s)", why,
		    conf_store_fail_closed(c->conf) ? "closed" : "open",
		    c->conf->store_on_error);
}

/* store_of - the store, or NULL after reporting that there is none */
static struct store *
store_of(struct conn *c)
{
	struct store *st = __atomic_load_n(&c->rt->store, __ATOMIC_ACQUIRE);

	if (st == NULL)
		store_failed(c, "no store is open");
	return st;
}

struct conn *
ctx_connect(struct runtime *rt, const char *client_ip, const char *client_name)
{
	struct conn *c;
	unsigned long id;

	c = xcalloc(1, sizeof(*c));
	c->rt = rt;
	(void)pthread_mutex_lock(&rt->mu);
	c->conf = conf_ref(rt->conf);
	id = ++rt->next_conn;
	rt->sessions++;
	(void)pthread_mutex_unlock(&rt->mu);
	(void)snprintf(c->conn_id, sizeof(c->conn_id), "%ld.%lu",
	    (long)getpid(), id);
	c->client_ip = dup_or_null(client_ip);
	c->client_name = dup_or_null(client_name);
	c->trusted = client_ip != NULL &&
	    policy_cidr_contains(c->conf->policy->trusted,
		c->conf->policy->ntrusted, client_ip);
	if (!c->trusted && client_ip != NULL)
		bl_start(c, &c->client_bl, DNSBL_IP, false, client_ip);
	return c;
}

/* start - an SPF check on the workers */
static struct job *
start(struct conn *c, enum spf_identity id, const char *sender)
{
	struct spf_request req;

	memset(&req, 0, sizeof(req));
	req.ip = c->client_ip;
	req.helo = c->helo != NULL ? c->helo : "";
	req.sender = sender;
	req.identity = id;
	req.receiver = c->conf->receiver;
	req.default_exp = c->conf->default_explanation;
	req.deadline_ms = c->conf->spf_deadline_ms;
	return spf_job_start(c->rt->jobs, spf_engine_find(c->conf->spf_engine),
	    c->rt->dns, &req);
}

/* decision_group - do two recipients share one log line? */
static bool
same_answer(const struct rcpt *a, const struct rcpt *b)
{
	const struct policy_verdict *x = &a->v, *y = &b->v;

	return x->action == y->action && x->would == y->would &&
	    x->rule == y->rule && x->set == y->set && x->code == y->code &&
	    strcmp(x->xcode, y->xcode) == 0 &&
	    ((x->text == NULL && y->text == NULL) ||
		(x->text != NULL && y->text != NULL &&
		    strcmp(x->text, y->text) == 0));
}

/* write_log - the message's decisions, one line per answer */
static void
write_log(struct conn *c)
{
	struct msg *m = &c->m;
	struct decision d;
	const char **addrs;
	size_t i, j, n;
	struct buf line;

	addrs = xcalloc(m->nrcpts, sizeof(*addrs));
	for (i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].logged)
			continue;
		for (n = 0, j = i; j < m->nrcpts; j++) {
			if (!m->rcpts[j].logged &&
			    same_answer(&m->rcpts[i], &m->rcpts[j])) {
				addrs[n++] = m->rcpts[j].addr;
				m->rcpts[j].logged = true;
			}
		}
		memset(&d, 0, sizeof(d));
		(void)clock_gettime(CLOCK_REALTIME, &d.when);
		d.queue_id = m->queue_id;
		d.conn_id = c->conn_id;
		d.client_ip = c->client_ip;
		d.client_name = c->client_name;
		d.helo = c->helo;
		d.sender = m->sender;
		d.auth_user = m->auth_user;
		d.rcpts = addrs;
		d.nrcpts = n;
		d.trusted = c->trusted;
		d.spf_helo = m->helo_r;
		d.spf_mfrom = m->mfrom_r;
		d.facts = &m->facts;
		d.verdict = &m->rcpts[i].v;
		d.rep = m->collected ? &m->rep : NULL;
		d.mode = m->rcpts[i].v.monitor ? "monitor" : "enforce";
		d.elapsed_ms = m->rcpts[i].elapsed_ms;
		if (c->rt->on_decision != NULL)
			c->rt->on_decision(c->rt->on_decision_arg, &d);
		buf_init(&line);
		declog_format_syslog(&d, &line);
		log_info("%s", buf_str(&line));
		if (c->rt->declog != NULL) {
			buf_reset(&line);
			declog_format(&d, &line);
			declog_write(c->rt->declog, buf_str(&line), line.len);
		}
		buf_free(&line);
	}
	free(addrs);
}

/* record_history - what this message adds to its sender's history */
static void
record_history(struct conn *c)
{
	struct msg *m = &c->m;
	bool delivered = false, refused = true;
	struct store *st;
	char err[256];
	size_t i;

	if (!c->conf->history || !m->collected || c->trusted ||
	    m->auth_user != NULL || m->domain == NULL || *m->domain == '\0' ||
	    m->mfrom_r == NULL || m->mfrom_is_helo)
		return;
	for (i = 0; i < m->nrcpts; i++) {
		enum policy_action a = m->rcpts[i].v.action;

		if (a == ACT_ACCEPT || a == ACT_TAG || a == ACT_QUARANTINE)
			delivered = true;
		if (a != ACT_REJECT)
			refused = false;
	}
	if ((st = store_of(c)) == NULL)
		return;
	if (rep_history_record(st, &c->conf->hist, m->domain,
		m->net[0] != '\0' ? m->net : NULL, m->mfrom_r->result,
		delivered, refused, time(NULL), err, sizeof(err)) != 0)
		store_failed(c, err);
}

/* msg_finish - log the message's decisions and forget it */
static void
msg_finish(struct conn *c)
{
	struct msg *m = &c->m;
	size_t i;

	if (m->active && m->nrcpts > 0) {
		write_log(c);
		record_history(c);
	}
	for (i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].domain);
		policy_verdict_free(&m->rcpts[i].v);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->local);
	free(m->domain);
	free(m->auth_user);
	free(m->queue_id);
	free(m->remove);
	free(m->ar_hdr);
	free(m->rspf_hdr);
	free(m->tag_value);
	job_release(m->mfrom_job);
	spf_response_free(&m->late_helo);
	spf_response_free(&m->late_mfrom);
	bl_free(&m->from_bl);
	free(m->names);
	free(m->results);
	free(m->rates);
	free(m->over);
	free(m->store_error);
	memset(m, 0, sizeof(*m));
}

void
ctx_helo(struct conn *c, const char *helo)
{
	msg_finish(c);
	free(c->helo);
	c->helo = xstrdup(helo != NULL ? helo : "");
	job_release(c->helo_job);
	c->helo_job = NULL;
	if (!c->trusted && c->client_ip != NULL && c->conf->helo_check)
		c->helo_job = start(c, SPF_ID_HELO, "");
	bl_free(&c->helo_bl);
	if (!c->trusted && c->client_ip != NULL && c->helo[0] != '\0')
		bl_start(c, &c->helo_bl, DNSBL_DOMAIN, true, c->helo);
}

void
ctx_mail(struct conn *c, const char *sender, const char *auth_user,
    const char *queue_id)
{
	struct msg *m = &c->m;

	msg_finish(c);
	m->active = true;
	(void)clock_gettime(CLOCK_MONOTONIC, &m->started);
	m->sender = ctx_address(sender);
	ctx_split(m->sender, &m->local, &m->domain);
	m->auth_user =
	    auth_user != NULL && *auth_user != '\0' ? xstrdup(auth_user) : NULL;
	m->queue_id = dup_or_null(queue_id);
	if (c->trusted || m->auth_user != NULL || c->client_ip == NULL)
		return;
	if (m->domain[0] != '\0')
		bl_start(c, &m->from_bl, DNSBL_DOMAIN, false, m->domain);
	if (m->sender[0] == '\0' && c->helo_job != NULL)
		m->mfrom_is_helo = true;
	else
		m->mfrom_job = start(c, SPF_ID_MAILFROM, m->sender);
}

/* late - the result of a check that did not finish in time */
static const struct spf_response *
late(struct spf_response *r, enum spf_identity id)
{
	r->result = SPF_TEMPERROR;
	r->identity = id;
	r->problem = xstrdup("SPF evaluation did not finish in time");
	return r;
}

/* wait_until - how long a job may be waited for: its deadline from its
 * start, and a grace for a pool that was busy when it was queued */
static void
wait_until(const struct conn *c, const struct job *j, struct timespec *until)
{
	unsigned ms = c->conf->spf_deadline_ms + WAIT_GRACE_MS;

	*until = *job_started(j);
	until->tv_sec += ms / 1000;
	until->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until->tv_nsec >= 1000000000L) {
		until->tv_sec++;
		until->tv_nsec -= 1000000000L;
	}
}

/* bl_collect - wait for the lookups; what did not finish is unknown */
static void
bl_collect(struct conn *c, struct bls *b)
{
	struct timespec until;
	struct bl *x;
	size_t i;

	for (i = 0; i < b->n; i++) {
		x = &b->v[i];
		if (x->r != NULL)
			continue;
		wait_until(c, x->job, &until);
		if (job_wait(x->job, &until)) {
			x->r = dnsbl_job_result(x->job);
			continue;
		}
		x->late.list = x->list;
		x->late.subject = xstrdup(x->subject);
		x->late.status = DNSBL_UNKNOWN;
		x->late.why = "the lookup did not finish in time";
		x->r = &x->late;
	}
}

/* bl_names - the names of the lists of a kind with a status, once each,
 * appended to m->names; *n gets their count */
static const char *const *
bl_names(struct msg *m, size_t *used, enum dnsbl_kind kind,
    enum dnsbl_status status, size_t *n)
{
	const char **start = m->names + *used;
	const struct dnsbl_result *r;
	size_t i, j;

	*n = 0;
	for (i = 0; i < m->nresults; i++) {
		r = m->results[i];
		if (r->list->kind != kind || r->status != status)
			continue;
		for (j = 0; j < *n && strcmp(start[j], r->list->name) != 0; j++)
			;
		if (j == *n)
			start[(*n)++] = r->list->name;
	}
	*used += *n;
	return start;
}

/* bl_facts - the blocklist facts of the message */
static void
bl_facts(struct conn *c)
{
	struct msg *m = &c->m;
	struct policy_facts *f = &m->facts;
	struct bls *all[3] = {&c->client_bl, &c->helo_bl, &m->from_bl};
	size_t i, j, n = 0, used = 0;

	for (i = 0; i < 3; i++)
		n += all[i]->n;
	if (n == 0)
		return;
	m->results = xcalloc(n, sizeof(*m->results));
	m->names = xcalloc(n, sizeof(*m->names));
	for (i = 0; i < 3; i++) {
		bl_collect(c, all[i]);
		for (j = 0; j < all[i]->n; j++)
			m->results[m->nresults++] = all[i]->v[j].r;
	}
	f->dnsbl = bl_names(m, &used, DNSBL_IP, DNSBL_LISTED, &f->ndnsbl);
	f->dnsbl_unknown =
	    bl_names(m, &used, DNSBL_IP, DNSBL_UNKNOWN, &f->ndnsbl_unknown);
	f->rhsbl = bl_names(m, &used, DNSBL_DOMAIN, DNSBL_LISTED, &f->nrhsbl);
	f->rhsbl_unknown =
	    bl_names(m, &used, DNSBL_DOMAIN, DNSBL_UNKNOWN, &f->nrhsbl_unknown);
	m->rep.lists = m->results;
	m->rep.nlists = m->nresults;
}

/* rate_subject - who a limit counts for this message, or NULL: nobody
 * (authenticated clients count only per user) */
static const char *
rate_subject(const struct conn *c, enum rate_key k)
{
	const struct msg *m = &c->m;

	if (k == RATE_AUTH_USER)
		return m->auth_user;
	if (m->auth_user != NULL)
		return NULL;
	switch (k) {
	case RATE_IP:
		return c->client_ip;
	case RATE_NET:
		return m->net[0] != '\0' ? m->net : NULL;
	case RATE_SENDER_DOMAIN:
		return m->domain[0] != '\0' ? m->domain : NULL;
	default:
		return NULL;
	}
}

/* rate_count - one more event for limit i */
static void
rate_count(struct conn *c, size_t i)
{
	struct rep_rate_state *r = &c->m.rates[i];
	const char *subject = rate_subject(c, r->limit->key);
	struct store *st;
	char err[256];
	int rc;

	if (subject == NULL || (st = store_of(c)) == NULL)
		return;
	rc = rep_rate(st, r->limit, subject, 1, time(NULL), &r->rate, err,
	    sizeof(err));
	if (rc < 0) {
		store_failed(c, err);
		return;
	}
	r->checked = true;
	r->over = rc == 1;
}

/* rate_facts - the names of the limits over */
static void
rate_facts(struct conn *c)
{
	struct msg *m = &c->m;
	size_t i;

	m->facts.nrate_over = 0;
	for (i = 0; i < c->conf->nlimits; i++)
		if (m->rates[i].over)
			m->over[m->facts.nrate_over++] =
			    m->rates[i].limit->name;
	m->facts.rate_over = m->over;
}

/* rep_collect - history and message rate limits, at the first RCPT */
static void
rep_collect(struct conn *c)
{
	struct msg *m = &c->m;
	struct policy_facts *f = &m->facts;
	const struct conf *cf = c->conf;
	time_t now = time(NULL);
	struct store *st;
	char err[256];
	size_t i;

	if (c->client_ip == NULL ||
	    rep_network(c->client_ip, cf->v4_prefix, cf->v6_prefix, m->net,
		sizeof(m->net)) != 0)
		m->net[0] = '\0';
	m->rep.net = m->net[0] != '\0' ? m->net : NULL;
	if (c->trusted)
		return;
	if (cf->history && m->auth_user == NULL && m->domain[0] != '\0' &&
	    !m->mfrom_is_helo && (st = store_of(c)) != NULL) {
		if (rep_history_read(st, &cf->hist, m->domain, NULL, now,
			&m->hist, err, sizeof(err)) != 0)
			store_failed(c, err);
		else {
			f->have_history = true;
			f->history = m->hist.class;
			f->anomaly = f->have_spf_mfrom &&
			    rep_history_anomaly(&m->hist, f->spf_mfrom);
			m->rep.have_history = true;
			m->rep.history = &m->hist;
			m->rep.anomaly = f->anomaly;
			if (m->net[0] != '\0' &&
			    rep_history_read(st, &cf->hist, m->domain, m->net,
				now, &m->net_hist, err, sizeof(err)) == 0)
				m->rep.net_history = &m->net_hist;
		}
	}
	if (cf->nlimits > 0) {
		m->rates = xcalloc(cf->nlimits, sizeof(*m->rates));
		m->over = xcalloc(cf->nlimits, sizeof(*m->over));
		m->rep.rates = m->rates;
		m->rep.nrates = cf->nlimits;
		for (i = 0; i < cf->nlimits; i++) {
			m->rates[i].limit = &cf->limits[i];
			if (!cf->limits[i].per_rcpt)
				rate_count(c, i);
		}
		rate_facts(c);
	}
	m->rep.store_error = m->store_error;
}

/* greylist - the rule engine asks whether to defer this recipient:
 * 1 defer, 0 passed, -1 not applied */
static int
greylist(void *arg, const struct policy_facts *f, unsigned *retry_s)
{
	struct conn *c = arg;
	struct msg *m = &c->m;
	struct buf src;
	struct store *st;
	char err[256];
	int rc;

	*retry_s = 0;
	if (c->trusted || m->auth_user != NULL)
		return -1;
	buf_init(&src);
	/* the SPF-validated domain, else the client's network */
	if (f->have_spf_mfrom && f->spf_mfrom == SPF_PASS &&
	    f->spf_domain != NULL && f->spf_identity == SPF_ID_MAILFROM)
		buf_addf(&src, "d:%s", f->spf_domain);
	else if (m->net[0] != '\0')
		buf_addf(&src, "n:%s", m->net);
	else
		buf_adds(&src, "n:unknown");
	if ((st = store_of(c)) == NULL)
		rc = -1;
	else if ((rc = rep_greylist(st, &c->conf->grey, buf_str(&src),
		      m->sender, f->rcpt, time(NULL), retry_s, err,
		      sizeof(err))) < 0)
		store_failed(c, err);
	buf_free(&src);
	m->rep.store_error = m->store_error;
	if (rc < 0) {
		/* failing closed, ctx_rcpt() answers for the store */
		*retry_s = c->conf->grey.delay;
		return conf_store_fail_closed(c->conf) ? 1 : -1;
	}
	return rc;
}

/* store_answer - a verdict replaced by the fail-closed answer */
static void
store_answer(struct policy_verdict *v)
{
	free(v->text);
	v->rule = &store_error_rule;
	v->action = v->would = ACT_TEMPFAIL;
	v->code = 451;
	(void)snprintf(v->xcode, sizeof(v->xcode), "4.3.0");
	v->text = xstrdup("Temporary failure of the reputation store, please "
			  "try again later");
}

/* collect - wait for the checks, at most until the deadline */
static void
collect(struct conn *c)
{
	struct msg *m = &c->m;
	struct policy_facts *f = &m->facts;
	struct timespec until;
	const struct spf_response *d = NULL;

	if (m->collected)
		return;
	m->collected = true;
	if (c->helo_job != NULL && m->auth_user == NULL) {
		wait_until(c, c->helo_job, &until);
		m->helo_r = job_wait(c->helo_job, &until)
		    ? spf_job_response(c->helo_job)
		    : late(&m->late_helo, SPF_ID_HELO);
	}
	if (m->mfrom_job != NULL) {
		wait_until(c, m->mfrom_job, &until);
		m->mfrom_r = job_wait(m->mfrom_job, &until)
		    ? spf_job_response(m->mfrom_job)
		    : late(&m->late_mfrom, SPF_ID_MAILFROM);
	} else if (m->mfrom_is_helo)
		m->mfrom_r = m->helo_r;

	memset(f, 0, sizeof(*f));
	f->client_ip = c->client_ip;
	f->client_name = c->client_name;
	f->helo = c->helo;
	f->sender = m->sender;
	f->from_localpart = m->local;
	f->from_domain = m->domain;
	f->auth_user = m->auth_user;
	if (m->helo_r != NULL) {
		f->have_spf_helo = true;
		f->spf_helo = m->helo_r->result;
	}
	if (m->mfrom_r != NULL) {
		f->have_spf_mfrom = true;
		f->spf_mfrom = m->mfrom_r->result;
	}
	policy_spf(f);
	if (f->have_spf)
		d = f->spf_identity == SPF_ID_HELO ? m->helo_r : m->mfrom_r;
	if (d != NULL) {
		f->spf_domain = d->domain;
		f->spf_explanation = d->explanation;
	}
	if (m->auth_user == NULL)
		bl_facts(c);
	rep_collect(c);
}

void
ctx_rcpt(struct conn *c, const char *arg, struct ctx_reply *reply)
{
	struct msg *m = &c->m;
	struct policy_facts f;
	struct rcpt *r;
	char *local;
	size_t i;

	memset(reply, 0, sizeof(*reply));
	free(c->reply_text);
	c->reply_text = NULL;
	if (!m->active)
		ctx_mail(c, "", NULL, NULL); /* RCPT without MAIL */
	collect(c);
	if (m->nrcpts == MAX_RCPTS) {
		/* past the limit, decide again without remembering */
		m->nrcpts--;
		free(m->rcpts[m->nrcpts].addr);
		free(m->rcpts[m->nrcpts].domain);
		policy_verdict_free(&m->rcpts[m->nrcpts].v);
	}
	m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1, sizeof(*m->rcpts));
	r = &m->rcpts[m->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = ctx_address(arg);
	ctx_split(r->addr, &local, &r->domain);
	free(local);

	if (m->rates != NULL) {
		for (i = 0; i < c->conf->nlimits; i++)
			if (m->rates[i].limit->per_rcpt)
				rate_count(c, i);
		rate_facts(c);
	}
	f = m->facts;
	f.rcpt = r->addr;
	f.rcpt_domain = r->domain;
	f.greylist = greylist;
	f.greylist_arg = c;
	policy_evaluate(c->conf->policy, &f, &r->v);
	m->rep.store_error = m->store_error;
	/* failing closed: what the store would have decided is unknown, so
	   the store's answer replaces any that is not a refusal of its own
	   (a greylisting could not be recorded either) */
	if (m->store_error != NULL && conf_store_fail_closed(c->conf) &&
	    !r->v.monitor &&
	    (!policy_action_refuses(r->v.action) ||
		r->v.action == ACT_GREYLIST))
		store_answer(&r->v);
	r->elapsed_ms = ms_since(&m->started);
	if (policy_action_refuses(r->v.action)) {
		reply->refuse = true;
		reply->code = r->v.code;
		(void)snprintf(reply->xcode, sizeof(reply->xcode), "%s",
		    r->v.xcode);
		c->reply_text = xstrdup(r->v.text != NULL ? r->v.text : "");
		reply->text = c->reply_text;
	}
}

void
ctx_queue_id(struct conn *c, const char *queue_id)
{
	if (queue_id == NULL || *queue_id == '\0' || c->m.queue_id != NULL)
		return;
	c->m.queue_id = xstrdup(queue_id);
}

void
ctx_header(struct conn *c, const char *name, const char *value)
{
	struct msg *m = &c->m;

	if (strcasecmp(name, "Authentication-Results") != 0)
		return;
	m->ar_seen++;
	if (c->conf->remove_forged_ar && c->conf->authserv_id != NULL &&
	    headers_ar_is_ours(value, c->conf->authserv_id)) {
		m->remove = xreallocarray(m->remove, m->nremove + 1,
		    sizeof(*m->remove));
		m->remove[m->nremove++] = m->ar_seen;
	}
}

void
ctx_eom(struct conn *c, struct ctx_eom *out)
{
	struct msg *m = &c->m;
	const struct policy_verdict *tagged = NULL, *held = NULL;
	const struct spf_response *d = NULL;
	struct headers_in in;
	size_t i;

	memset(out, 0, sizeof(*out));
	collect(c);
	for (i = 0; i < m->nrcpts; i++) {
		const struct policy_verdict *v = &m->rcpts[i].v;

		if (v->action == ACT_TAG && tagged == NULL)
			tagged = v;
		if (v->action == ACT_QUARANTINE && held == NULL)
			held = v;
	}
	if (m->facts.have_spf)
		d = m->facts.spf_identity == SPF_ID_HELO ? m->helo_r
							 : m->mfrom_r;
	if (d != NULL) {
		memset(&in, 0, sizeof(in));
		in.authserv_id = c->conf->authserv_id;
		in.receiver = c->conf->receiver;
		in.client_ip = c->client_ip;
		in.helo = c->helo;
		in.spf = d;
		if (c->conf->add_auth_results)
			out->auth_results = m->ar_hdr =
			    headers_auth_results(&in);
		if (c->conf->add_received_spf)
			out->received_spf = m->rspf_hdr =
			    headers_received_spf(&in);
	}
	if (tagged != NULL && c->conf->tag_header != NULL) {
		struct buf b;

		buf_init(&b);
		buf_adds(&b, tagged->rule != NULL ? tagged->rule->name : "-");
		buf_adds(&b, "; spf=");
		buf_adds(&b,
		    m->facts.have_spf ? spf_result_name(m->facts.spf) : "none");
		out->tag_name = c->conf->tag_header;
		out->tag_value = m->tag_value = buf_release(&b);
	}
	if (held != NULL)
		out->quarantine =
		    held->rule != NULL ? held->rule->name : "spfguard";
	out->remove_ar = m->remove;
	out->nremove_ar = m->nremove;
}

void
ctx_eom_done(struct conn *c)
{
	msg_finish(c);
}

void
ctx_abort(struct conn *c)
{
	msg_finish(c);
}

void
ctx_close(struct conn *c)
{
	if (c == NULL)
		return;
	msg_finish(c);
	job_release(c->helo_job);
	bl_free(&c->client_bl);
	bl_free(&c->helo_bl);
	(void)pthread_mutex_lock(&c->rt->mu);
	c->rt->sessions--;
	(void)pthread_mutex_unlock(&c->rt->mu);
	conf_unref(c->conf);
	free(c->client_ip);
	free(c->client_name);
	free(c->helo);
	free(c->reply_text);
	free(c);
}
