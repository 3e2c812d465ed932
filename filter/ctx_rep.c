/*
 * ctx_rep.c - the transaction driver's blocklists and reputation (see
 * ctx.c for the stages).
 *
 * Blocklists are looked up on the workers as soon as their subject is
 * known: the client's DNSBLs at connect, RHSBLs of the HELO name at HELO
 * and of the sender domain at MAIL; they are collected with SPF, a lookup
 * that has not finished by then being "unknown", never "clean".
 *
 * Reputation state (reputation.c over the store) is read at the first
 * RCPT (history, message rate limits), per recipient (recipient rate
 * limits, and greylisting, asked by the rule engine when a greylist rule
 * matches), and written when the message ends (history). A store failure
 * is logged (at most once a minute), counted, written into the decision,
 * and answered as store.on_error says: accept as if the fact were unknown,
 * or tempfail 451 4.3.0.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "ctx_impl.h"
#include "log.h"
#include "xalloc.h"

#define WARN_EVERY_S 60 /* store failure warnings */

/* the answer to mail when the store failed and on_error is tempfail */
static const struct policy_rule store_error_rule = {
    .name = (char *)"store-error",
    .action = ACT_TEMPFAIL,
};

/* ctx_rep_bl_start - look the subject up on the lists of a kind that check it
 */
void
ctx_rep_bl_start(struct conn *c, struct bls *b, enum dnsbl_kind kind, bool helo,
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

void
ctx_rep_bl_free(struct bls *b)
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

/* sender_domain - the MAIL FROM domain, or NULL: none, or no MAIL at all
 * (an end of message alone) */
static const char *
sender_domain(const struct msg *m)
{
	return m->domain != NULL && m->domain[0] != '\0' ? m->domain : NULL;
}

/* ctx_rep_record_history - what this message adds to its sender's history */
void
ctx_rep_record_history(struct conn *c)
{
	struct msg *m = &c->m;
	bool delivered = false, refused = true;
	struct store *st;
	char err[256];
	size_t i;

	if (!c->conf->history || !m->collected || c->trusted ||
	    m->auth_user != NULL || sender_domain(m) == NULL ||
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
		ctx_wait_until(c, x->job, &until);
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
		return sender_domain(m);
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
	if (cf->history && m->auth_user == NULL && sender_domain(m) != NULL &&
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

/* ctx_rep_greylist - the rule engine asks whether to defer this recipient:
 * 1 defer, 0 passed, -1 not applied */
int
ctx_rep_greylist(void *arg, const struct policy_facts *f, unsigned *retry_s)
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

/* ctx_rep_store_answer - failing closed, what the store would have
 * decided is unknown, so its answer replaces any that is not a refusal of
 * its own (a greylisting could not be recorded either) */
void
ctx_rep_store_answer(struct conn *c, struct policy_verdict *v)
{
	struct msg *m = &c->m;

	m->rep.store_error = m->store_error;
	if (m->store_error == NULL || !conf_store_fail_closed(c->conf) ||
	    v->monitor ||
	    (policy_action_refuses(v->action) && v->action != ACT_GREYLIST))
		return;
	free(v->text);
	v->rule = &store_error_rule;
	v->action = v->would = ACT_TEMPFAIL;
	v->code = 451;
	(void)snprintf(v->xcode, sizeof(v->xcode), "4.3.0");
	v->text = xstrdup("Temporary failure of the reputation store, please "
			  "try again later");
}

/* ctx_rep_collect - the blocklist and reputation facts of the message */
void
ctx_rep_collect(struct conn *c)
{
	if (c->m.auth_user == NULL)
		bl_facts(c);
	rep_collect(c);
}

void
ctx_rep_rcpt(struct conn *c)
{
	struct msg *m = &c->m;
	size_t i;

	if (m->rates == NULL)
		return;
	for (i = 0; i < c->conf->nlimits; i++)
		if (m->rates[i].limit->per_rcpt)
			rate_count(c, i);
	rate_facts(c);
}

void
ctx_rep_msg_free(struct msg *m)
{
	ctx_rep_bl_free(&m->from_bl);
	free(m->names);
	free(m->results);
	free(m->rates);
	free(m->over);
	free(m->store_error);
}
