/*
 * declog.c - the decision log writer and the format of its lines.
 *
 * The file is opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC; each line goes
 * out in one write() of the whole line and its newline, under a mutex that
 * only orders our own threads (O_APPEND orders other processes). The
 * mutex is never held across anything but writes. Reopening swaps the
 * descriptor under the same mutex.
 *
 * A full disk loses no decision while memory allows: a line that cannot
 * be written is kept, in order, in a backlog of at most BACKLOG_MAX bytes,
 * and written before the next line once the disk has room again (or at a
 * reopen, or at close). Only when the backlog is full are its oldest
 * lines dropped, counted as lost. A short write is undone (the file cut
 * back to where the line began; this daemon is taken to be the file's
 * only writer), so a line is never torn and never glued to the next. The
 * failure is reported at most once a minute.
 *
 * Every string in a line is written by buf_add_json(), which escapes every
 * byte outside printable ASCII: a HELO or address with CR, LF or NUL in it
 * cannot split or forge a line.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "declog.h"
#include "dnsbl.h"
#include "log.h"
#include "xalloc.h"

/* seconds between reports of failed writes */
#define REPORT_EVERY 60
/* bytes of lines kept while the disk is full */
#define BACKLOG_MAX (16u << 20)

struct declog {
	pthread_mutex_t mu;
	char *path;
	int fd;
	unsigned long written;
	unsigned long failures;
	unsigned long lost;
	time_t reported; /* last failure report */
	unsigned long unreported;
	/* lines not written yet, oldest first: a ring of q[cap] */
	char **q;
	size_t *qlen;
	size_t head, n, cap, bytes;
};

static int
open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

struct declog *
declog_open(const char *path, char *err, size_t errlen)
{
	struct declog *d;
	int fd;

	if ((fd = open_log(path)) == -1) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	(void)pthread_mutex_init(&d->mu, NULL);
	d->path = xstrdup(path);
	d->fd = fd;
	return d;
}

/* undo - cut a short write back off the file; failing that, end the torn
 * line so that the next one stays whole (d->mu held) */
static void
undo(struct declog *d, ssize_t n)
{
	struct stat st;

	if (fstat(d->fd, &st) == 0 && st.st_size >= n &&
	    ftruncate(d->fd, st.st_size - n) == 0)
		return;
	if (write(d->fd, "\n", 1) != 1) {
		/* nothing more can be done for it */
	}
}

/* put - one whole line, or nothing (d->mu held); 0 or an errno */
static int
put(struct declog *d, const char *p, size_t len)
{
	ssize_t n = write(d->fd, p, len);

	if (n == (ssize_t)len)
		return 0;
	if (n > 0)
		undo(d, n);
	return n == -1 ? errno : ENOSPC;
}

/* flush - write the backlog out, oldest first, until it is empty (0) or a
 * write fails (its errno); d->mu held */
static int
flush(struct declog *d)
{
	int rc;

	while (d->n > 0) {
		if ((rc = put(d, d->q[d->head], d->qlen[d->head])) != 0)
			return rc;
		d->written++;
		d->bytes -= d->qlen[d->head];
		free(d->q[d->head]);
		d->head = (d->head + 1) % d->cap;
		d->n--;
	}
	return 0;
}

/* keep - a line to the backlog, dropping the oldest if it is full (d->mu
 * held; the backlog takes the line's memory) */
static void
keep(struct declog *d, char *line, size_t len)
{
	size_t i;

	while (d->n > 0 && d->bytes + len > BACKLOG_MAX) {
		d->bytes -= d->qlen[d->head];
		free(d->q[d->head]);
		d->head = (d->head + 1) % d->cap;
		d->n--;
		d->lost++;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap > 0 ? d->cap * 2 : 64;
		char **q = xcalloc(cap, sizeof(*q));
		size_t *ql = xcalloc(cap, sizeof(*ql));

		for (i = 0; i < d->n; i++) {
			q[i] = d->q[(d->head + i) % d->cap];
			ql[i] = d->qlen[(d->head + i) % d->cap];
		}
		free(d->q);
		free(d->qlen);
		d->q = q;
		d->qlen = ql;
		d->cap = cap;
		d->head = 0;
	}
	i = (d->head + d->n) % d->cap;
	d->q[i] = line;
	d->qlen[i] = len;
	d->bytes += len;
	d->n++;
}

int
declog_reopen(struct declog *d)
{
	int fd, old;

	if ((fd = open_log(d->path)) == -1) {
		log_warn("decision log %s: cannot reopen, keeping the old file",
		    d->path);
		return -1;
	}
	(void)pthread_mutex_lock(&d->mu);
	old = d->fd;
	d->fd = fd;
	(void)flush(d);
	(void)pthread_mutex_unlock(&d->mu);
	(void)close(old);
	return 0;
}

void
declog_close(struct declog *d)
{
	if (d == NULL)
		return;
	if (flush(d) != 0 || d->lost > 0)
		log_warnx("decision log %s: %zu line(s) could not be written "
			  "before the end, %lu dropped earlier",
		    d->path, d->n, d->lost);
	while (d->n > 0) {
		free(d->q[d->head]);
		d->head = (d->head + 1) % d->cap;
		d->n--;
	}
	free(d->q);
	free(d->qlen);
	(void)close(d->fd);
	(void)pthread_mutex_destroy(&d->mu);
	free(d->path);
	free(d);
}

void
declog_write(struct declog *d, const char *line, size_t len)
{
	struct buf b;
	int saved;
	bool report = false;
	unsigned long count = 0, lost = 0;
	size_t waiting = 0;
	time_t now;

	buf_init(&b);
	buf_add(&b, line, len);
	buf_addc(&b, '\n');
	(void)pthread_mutex_lock(&d->mu);
	if ((saved = flush(d)) == 0 && (saved = put(d, b.data, b.len)) == 0)
		d->written++;
	else {
		d->failures++;
		d->unreported++;
		len = b.len;
		keep(d, buf_release(&b), len);
		now = time(NULL);
		if (now - d->reported >= REPORT_EVERY) {
			report = true;
			count = d->unreported;
			waiting = d->n;
			lost = d->lost;
			d->unreported = 0;
			d->reported = now;
		}
	}
	(void)pthread_mutex_unlock(&d->mu);
	buf_free(&b);
	if (report) {
		errno = saved;
		log_warn("decision log %s: %lu line(s) not written (%zu kept "
			 "to write when there is room, %lu dropped)",
		    d->path, count, waiting, lost);
	}
}

void
declog_get_stats(struct declog *d, struct declog_stats *st)
{
	(void)pthread_mutex_lock(&d->mu);
	st->written = d->written;
	st->failures = d->failures;
	st->pending = d->n;
	st->lost = d->lost;
	(void)pthread_mutex_unlock(&d->mu);
}

/* key - "k": after a comma unless it is the object's first member */
static void
key(struct buf *b, const char *k)
{
	if (b->len > 0 && b->data[b->len - 1] != '{' &&
	    b->data[b->len - 1] != '[')
		buf_addc(b, ',');
	buf_add_jsons(b, k);
	buf_addc(b, ':');
}

static void
kv(struct buf *b, const char *k, const char *v)
{
	key(b, k);
	buf_add_jsons(b, v);
}

/* spf_json - one identity's result, or null */
static void
spf_json(struct buf *b, const char *k, const struct spf_response *r)
{
	key(b, k);
	if (r == NULL) {
		buf_adds(b, "null");
		return;
	}
	buf_adds(b, "{\"result\":");
	buf_add_jsons(b, spf_result_name(r->result));
	buf_adds(b, ",\"domain\":");
	buf_add_jsons(b, r->domain);
	buf_adds(b, ",\"mechanism\":");
	buf_add_jsons(b, r->mechanism);
	buf_adds(b, ",\"problem\":");
	buf_add_jsons(b, r->problem);
	buf_adds(b, ",\"explanation\":");
	buf_add_jsons(b, r->explanation);
	buf_addf(b,
	    ",\"lookups\":%u,\"void_lookups\":%u,\"dns_queries\":%u,"
	    "\"elapsed_ms\":%ld}",
	    r->lookups, r->void_lookups, r->dns_queries, r->elapsed_ms);
}

/* lists_json - every blocklist lookup of the message */
static void
lists_json(struct buf *b, const struct rep_facts *rep)
{
	const struct dnsbl_result *r;
	char codes[DNSBL_MAX_CODES * 16];
	size_t i;

	key(b, "lists");
	buf_addc(b, '[');
	for (i = 0; rep != NULL && i < rep->nlists; i++) {
		r = rep->lists[i];
		if (i > 0)
			buf_addc(b, ',');
		buf_adds(b, "{\"list\":");
		buf_add_jsons(b, r->list->name);
		buf_adds(b, ",\"kind\":");
		buf_add_jsons(b, r->list->kind == DNSBL_IP ? "dnsbl" : "rhsbl");
		buf_adds(b, ",\"subject\":");
		buf_add_jsons(b, r->subject);
		buf_adds(b, ",\"status\":");
		buf_add_jsons(b, dnsbl_status_name(r->status));
		dnsbl_codes_text(r, codes, sizeof(codes));
		buf_adds(b, ",\"codes\":");
		buf_add_jsons(b, codes[0] != '\0' ? codes : NULL);
		buf_adds(b, ",\"why\":");
		buf_add_jsons(b, r->why);
		buf_addc(b, '}');
	}
	buf_addc(b, ']');
}

static void
history_one(struct buf *b, const struct rep_history *h)
{
	int r;

	buf_adds(b, "{\"class\":");
	buf_add_jsons(b, policy_history_name(h->class));
	buf_addf(b, ",\"delivered\":%lld,\"refused\":%lld,\"first\":%lld",
	    (long long)h->delivered, (long long)h->refused,
	    (long long)h->first);
	buf_adds(b, ",\"spf\":{");
	for (r = SPF_NONE; r <= SPF_PERMERROR; r++)
		buf_addf(b, "%s\"%s\":%lld", r > SPF_NONE ? "," : "",
		    spf_result_name((enum spf_result)r),
		    (long long)h->counts[r]);
	buf_adds(b, "}}");
}

/* rep_json - history, rate limits and store failures */
static void
rep_json(struct buf *b, const struct rep_facts *rep)
{
	size_t i;

	key(b, "history");
	if (rep != NULL && rep->have_history) {
		buf_adds(b, "{\"domain\":");
		history_one(b, rep->history);
		buf_adds(b, ",\"network\":");
		if (rep->net_history != NULL)
			history_one(b, rep->net_history);
		else
			buf_adds(b, "null");
		buf_addf(b, ",\"anomaly\":%s}",
		    rep->anomaly ? "true" : "false");
	} else
		buf_adds(b, "null");
	kv(b, "network", rep != NULL ? rep->net : NULL);
	key(b, "rates");
	buf_addc(b, '[');
	for (i = 0; rep != NULL && i < rep->nrates; i++) {
		const struct rep_rate_state *r = &rep->rates[i];

		if (!r->checked)
			continue;
		if (b->data[b->len - 1] != '[')
			buf_addc(b, ',');
		buf_adds(b, "{\"limit\":");
		buf_add_jsons(b, r->limit->name);
		buf_addf(b, ",\"rate\":%.2f,\"max\":%u,\"over\":%s}", r->rate,
		    r->limit->limit, r->over ? "true" : "false");
	}
	buf_addc(b, ']');
	kv(b, "store_error", rep != NULL ? rep->store_error : NULL);
}

static void
time_json(struct buf *b, const struct timespec *ts)
{
	struct tm tm;
	char tmp[40];

	(void)gmtime_r(&ts->tv_sec, &tm);
	(void)strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	key(b, "time");
	buf_addf(b, "\"%s.%03ldZ\"", tmp, ts->tv_nsec / 1000000L);
}

void
declog_format(const struct decision *d, struct buf *b)
{
	const struct policy_verdict *v = d->verdict;
	const struct policy_facts *f = d->facts;
	size_t i;

	buf_addc(b, '{');
	time_json(b, &d->when);
	kv(b, "queue_id", d->queue_id);
	kv(b, "conn_id", d->conn_id);
	kv(b, "client_ip", d->client_ip);
	kv(b, "client_name", d->client_name);
	key(b, "trusted");
	buf_adds(b, d->trusted ? "true" : "false");
	kv(b, "helo", d->helo);
	kv(b, "sender", d->sender);
	key(b, "recipients");
	buf_addc(b, '[');
	for (i = 0; i < d->nrcpts; i++) {
		if (i > 0)
			buf_addc(b, ',');
		buf_add_jsons(b, d->rcpts[i]);
	}
	buf_addc(b, ']');
	kv(b, "auth", d->auth_user);
	key(b, "spf");
	if (f != NULL && f->have_spf) {
		buf_adds(b, "{\"result\":");
		buf_add_jsons(b, spf_result_name(f->spf));
		buf_adds(b, ",\"identity\":");
		buf_add_jsons(b, spf_identity_name(f->spf_identity));
		buf_addc(b, '}');
	} else
		buf_adds(b, "null");
	spf_json(b, "spf_helo", d->spf_helo);
	spf_json(b, "spf_mfrom", d->spf_mfrom);
	lists_json(b, d->rep);
	rep_json(b, d->rep);
	kv(b, "policy_set", v != NULL && v->set != NULL ? v->set->name : NULL);
	kv(b, "rule", v != NULL && v->rule != NULL ? v->rule->name : NULL);
	kv(b, "action", v != NULL ? policy_action_name(v->action) : "accept");
	kv(b, "would", v != NULL ? policy_action_name(v->would) : "accept");
	key(b, "reply");
	if (v != NULL && v->text != NULL && policy_action_refuses(v->would)) {
		buf_addf(b, "{\"code\":%d,\"xcode\":", v->code);
		buf_add_jsons(b, v->xcode);
		buf_adds(b, ",\"text\":");
		buf_add_jsons(b, v->text);
		buf_addc(b, '}');
	} else
		buf_adds(b, "null");
	key(b, "greylist");
	if (v != NULL && v->would == ACT_GREYLIST)
		buf_addf(b, "{\"state\":\"deferred\",\"retry_s\":%u}",
		    v->retry_s);
	else if (v != NULL && v->greylist_pass)
		buf_adds(b, "{\"state\":\"passed\"}");
	else
		buf_adds(b, "null");
	key(b, "shadow");
	buf_addc(b, '[');
	for (i = 0; v != NULL && i < v->nshadows; i++) {
		if (i > 0)
			buf_addc(b, ',');
		buf_adds(b, "{\"rule\":");
		buf_add_jsons(b, v->shadows[i].rule);
		buf_adds(b, ",\"action\":");
		buf_add_jsons(b, policy_action_name(v->shadows[i].action));
		buf_addc(b, '}');
	}
	buf_addc(b, ']');
	key(b, "trace");
	buf_addc(b, '[');
	for (i = 0; v != NULL && i < v->ntrace; i++) {
		if (i > 0)
			buf_addc(b, ',');
		buf_adds(b, "{\"rule\":");
		buf_add_jsons(b, v->trace[i].rule);
		buf_addf(b, ",\"matched\":%s,\"why\":",
		    v->trace[i].matched ? "true" : "false");
		buf_add_jsons(b, v->trace[i].why);
		buf_addc(b, '}');
	}
	buf_addc(b, ']');
	kv(b, "mode", d->mode);
	key(b, "elapsed_ms");
	buf_addf(b, "%ld", d->elapsed_ms);
	buf_addc(b, '}');
}

/* text - a syslog-safe value: printable ASCII, bounded */
static void
text(struct buf *b, const char *s)
{
	size_t n;

	if (s == NULL) {
		buf_adds(b, "-");
		return;
	}
	for (n = 0; *s != '\0' && n < 200; s++, n++)
		buf_addc(b,
		    (unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f ? *s
									 : '?');
}

void
declog_format_syslog(const struct decision *d, struct buf *b)
{
	const struct policy_verdict *v = d->verdict;
	const struct policy_facts *f = d->facts;
	size_t i, n;

	text(b, d->queue_id != NULL ? d->queue_id : "NOQUEUE");
	buf_adds(b, ": action=");
	buf_adds(b, v != NULL ? policy_action_name(v->action) : "accept");
	if (v != NULL && v->would != v->action) {
		buf_adds(b, " would=");
		buf_adds(b, policy_action_name(v->would));
	}
	buf_adds(b, " rule=");
	text(b, v != NULL && v->rule != NULL ? v->rule->name : NULL);
	buf_adds(b, " spf=");
	if (f != NULL && f->have_spf) {
		buf_adds(b, spf_result_name(f->spf));
		buf_addc(b, '/');
		buf_adds(b, spf_identity_name(f->spf_identity));
	} else
		buf_adds(b, "-");
	buf_adds(b, " client=");
	text(b, d->client_ip);
	buf_adds(b, " helo=");
	text(b, d->helo);
	buf_adds(b, " from=<");
	text(b, d->sender);
	buf_adds(b, "> rcpt=");
	for (i = 0; i < d->nrcpts; i++) {
		if (i > 0)
			buf_addc(b, ',');
		buf_addc(b, '<');
		text(b, d->rcpts[i]);
		buf_addc(b, '>');
	}
	if (v != NULL && v->text != NULL && policy_action_refuses(v->would))
		buf_addf(b, " reply=%d/%s", v->code, v->xcode);
	for (i = 0, n = 0; d->rep != NULL && i < d->rep->nlists; i++)
		if (d->rep->lists[i]->status != DNSBL_CLEAN) {
			buf_adds(b, n++ == 0 ? " lists=" : ",");
			text(b, d->rep->lists[i]->list->name);
			buf_addc(b, ':');
			buf_adds(b,
			    dnsbl_status_name(d->rep->lists[i]->status));
		}
	if (d->rep != NULL && d->rep->store_error != NULL)
		buf_adds(b, " store=error");
}
