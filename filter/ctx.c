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
#include "ctx_impl.h"
#include "headers.h"
#include "log.h"
#include "xalloc.h"

#define MAX_RCPTS 1000 /* recipients remembered per message */

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
		ctx_rep_bl_start(c, &c->client_bl, DNSBL_IP, false, client_ip);
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

/* msg_finish - log the message's decisions and forget it */
static void
msg_finish(struct conn *c)
{
	struct msg *m = &c->m;
	size_t i;

	if (m->active && m->nrcpts > 0) {
		write_log(c);
		ctx_rep_record_history(c);
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
	ctx_rep_msg_free(m);
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
	ctx_rep_bl_free(&c->helo_bl);
	if (!c->trusted && c->client_ip != NULL && c->helo[0] != '\0')
		ctx_rep_bl_start(c, &c->helo_bl, DNSBL_DOMAIN, true, c->helo);
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
		ctx_rep_bl_start(c, &m->from_bl, DNSBL_DOMAIN, false,
		    m->domain);
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

/* ctx_wait_until - how long a job may be waited for: its deadline from
 * its start, and a grace for a pool that was busy when it was queued */
void
ctx_wait_until(const struct conn *c, const struct job *j,
    struct timespec *until)
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
		ctx_wait_until(c, c->helo_job, &until);
		m->helo_r = job_wait(c->helo_job, &until)
		    ? spf_job_response(c->helo_job)
		    : late(&m->late_helo, SPF_ID_HELO);
	}
	if (m->mfrom_job != NULL) {
		ctx_wait_until(c, m->mfrom_job, &until);
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
	ctx_rep_collect(c);
}

void
ctx_rcpt(struct conn *c, const char *arg, struct ctx_reply *reply)
{
	struct msg *m = &c->m;
	struct policy_facts f;
	struct rcpt *r;
	char *local;

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

	ctx_rep_rcpt(c);
	f = m->facts;
	f.rcpt = r->addr;
	f.rcpt_domain = r->domain;
	f.greylist = ctx_rep_greylist;
	f.greylist_arg = c;
	policy_evaluate(c->conf->policy, &f, &r->v);
	ctx_rep_store_answer(c, &r->v);
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
	ctx_rep_bl_free(&c->client_bl);
	ctx_rep_bl_free(&c->helo_bl);
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
