/*
 * ctl_report.c - `spfguardctl report`: what the decision log adds up to.
 *
 *	spfguardctl report [--top N] [--json | --html FILE] [filters] [FILE...]
 *
 * Counts by action (and, for monitor mode, by the action it would have
 * taken), by rule and by the deciding SPF result; the sender domains and
 * client networks (/24, /64) refused most; refusals over time, in
 * buckets sized to the time span; blocklist results by list; the latest
 * refusals. "Refused" means the action taken was tempfail, reject or
 * greylist.
 *
 * Output is text, JSON, or one HTML page that needs nothing else: inline
 * CSS, charts as inline SVG drawn here, no script and no URL; every
 * string from the log goes through ctl_text() and then html() - the log
 * holds HELO names and senders chosen by SMTP clients. Counters are
 * jansson objects (key -> integer) owned by struct report; the latest
 * refusals are records kept with json_incref().
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "log.h"
#include "policy.h"
#include "reputation.h"
#include "xalloc.h"

#define EXIT_USAGE  2
#define MAX_BUCKETS 48
#define BAR_WIDTH   40 /* characters of the longest text bar */

static const char report_usage[] =
    "usage: spfguardctl report [--top N] [--json | --html FILE]\n"
    "    " CTL_FILTER_USAGE "\n"
    "    [FILE ...]\n"
    "FILE: a decision log, plain or .gz; none or \"-\": stdin. The filters\n"
    "are those of `spfguardctl log` (see spfguardctl log --help). --top N\n"
    "(default 10): how many domains, networks and latest refusals.\n";

static void
count(json_t *o, const char *k, size_t klen)
{
	json_t *v = json_object_getn(o, k, klen);

	if (v != NULL)
		(void)json_integer_set(v, json_integer_value(v) + 1);
	else
		(void)json_object_setn_new(o, k, klen, json_integer(1));
}

static void
count_s(json_t *o, const char *k)
{
	count(o, k, strlen(k));
}

/* count_v - a string value counted under its text, or under dflt */
static void
count_v(json_t *o, const json_t *v, const char *dflt)
{
	if (json_is_string(v))
		count(o, json_string_value(v), json_string_length(v));
	else
		count_s(o, dflt);
}

static int
kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	c = memcmp(x->k, y->k, x->klen < y->klen ? x->klen : y->klen);
	if (c != 0)
		return c;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* ctl_sorted - a counter's entries, most first; *n of them (free the array) */
struct kv *
ctl_sorted(const json_t *o, size_t *n)
{
	struct kv *a;
	const char *k;
	size_t klen, i = 0;
	json_t *v;
	void *tmp;

	a = xreallocarray(NULL, json_object_size(o) + 1, sizeof(*a));
	json_object_keylen_foreach_safe((json_t *)o, tmp, k, klen, v)
	{
		a[i].k = k;
		a[i].klen = klen;
		a[i].n = json_integer_value(v);
		i++;
	}
	qsort(a, i, sizeof(*a), kv_cmp);
	*n = i;
	return a;
}

static bool
refuses(const char *action)
{
	enum policy_action a;

	return action != NULL && policy_action_parse(action, &a) == 0 &&
	    policy_action_refuses(a);
}

/* add_refusal - the facts of one refused decision */
static void
add_refusal(struct report *r, json_t *rec)
{
	struct buf b;
	char net[64];
	const char *ip;
	long long ms;

	r->refused++;
	buf_init(&b);
	if (logread_sender_domain(rec, &b) == 0)
		count(r->domains, b.data, b.len);
	else
		count_s(r->domains, "<>");
	buf_free(&b);
	ip = logread_str(rec, "client_ip");
	if (ip != NULL && rep_network(ip, 24, 64, net, sizeof(net)) == 0)
		count_s(r->networks, net);
	else
		count_v(r->networks, json_object_get(rec, "client_ip"), "-");
	if (logread_time(rec, &ms) == 0) {
		if (r->nrtimes == r->rtcap) {
			r->rtcap = r->rtcap == 0 ? 256 : r->rtcap * 2;
			r->rtimes = xreallocarray(r->rtimes, r->rtcap,
			    sizeof(*r->rtimes));
		}
		r->rtimes[r->nrtimes++] = ms;
	}
	json_decref(r->recent[r->nrecent % r->top]);
	r->recent[r->nrecent++ % r->top] = json_incref(rec);
}

/* add - one record into the report */
static void
add(json_t *rec, void *arg)
{
	struct report *r = arg;
	const json_t *spf, *l;
	const char *action, *would, *mode, *status;
	long long ms;
	size_t i;

	r->total++;
	if (logread_time(rec, &ms) == 0) {
		if (!r->have_time || ms < r->first_ms)
			r->first_ms = ms;
		if (!r->have_time || ms > r->last_ms)
			r->last_ms = ms;
		r->have_time = true;
	}
	action = logread_str(rec, "action");
	would = logread_str(rec, "would");
	mode = logread_str(rec, "mode");
	count_v(r->actions, json_object_get(rec, "action"), "-");
	if (mode != NULL && strcmp(mode, "monitor") == 0) {
		r->monitor++;
		count_v(r->would, json_object_get(rec, "would"), "-");
	}
	count_v(r->rules, json_object_get(rec, "rule"), "-");
	spf = json_object_get(rec, "spf");
	if (json_is_object(spf))
		count_v(r->results, json_object_get(spf, "result"), "-");
	else
		count_s(r->results, "unchecked");
	if (refuses(action))
		add_refusal(r, rec);
	else if (refuses(would))
		r->would_refuse++;
	json_array_foreach(json_object_get(rec, "lists"), i, l)
	{
		status = logread_str(l, "status");
		if (status != NULL && strcmp(status, "listed") == 0)
			count_v(r->listed, json_object_get(l, "list"), "-");
		else if (status != NULL && strcmp(status, "unknown") == 0)
			count_v(r->unknown, json_object_get(l, "list"), "-");
	}
}

static void
report_init(struct report *r, size_t top)
{
	memset(r, 0, sizeof(*r));
	r->actions = json_object();
	r->would = json_object();
	r->rules = json_object();
	r->results = json_object();
	r->domains = json_object();
	r->networks = json_object();
	r->listed = json_object();
	r->unknown = json_object();
	r->top = top;
	r->recent = xcalloc(top, sizeof(*r->recent));
}

static void
report_free(struct report *r)
{
	size_t i;

	json_decref(r->actions);
	json_decref(r->would);
	json_decref(r->rules);
	json_decref(r->results);
	json_decref(r->domains);
	json_decref(r->networks);
	json_decref(r->listed);
	json_decref(r->unknown);
	for (i = 0; i < r->top; i++)
		json_decref(r->recent[i]);
	free(r->recent);
	free(r->rtimes);
}

/* ctl_recent - the i-th latest refusal kept (0: the oldest kept), or NULL */
json_t *
ctl_recent(const struct report *r, size_t i)
{
	size_t n = r->nrecent < r->top ? r->nrecent : r->top;

	if (i >= n)
		return NULL;
	return r->recent[(r->nrecent - n + i) % r->top];
}

/* ---------------------------------------------------------------- */
/* refusals over time */

/* series_make - buckets over the report's time span, sized to fit */
static void
series_make(const struct report *r, struct series *s)
{
	static const long long steps[] = {60, 300, 900, 3600, 3 * 3600,
	    6 * 3600, 86400, 7 * 86400};
	long long span = r->last_ms - r->first_ms;
	size_t i;

	memset(s, 0, sizeof(*s));
	s->step_ms = 3600 * 1000; /* what an empty report names */
	if (!r->have_time)
		return;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		s->step_ms = steps[i] * 1000;
		if (span / s->step_ms < MAX_BUCKETS)
			break;
	}
	s->start_ms = r->first_ms - r->first_ms % s->step_ms;
	s->n = (size_t)((r->last_ms - s->start_ms) / s->step_ms) + 1;
	s->counts = xcalloc(s->n, sizeof(*s->counts));
	for (i = 0; i < r->nrtimes; i++) {
		long long k = (r->rtimes[i] - s->start_ms) / s->step_ms;

		if (k >= 0 && (size_t)k < s->n && ++s->counts[k] > s->max)
			s->max = s->counts[k];
	}
}

/* ctl_iso - a time in ms as the log writes it, to seconds or to minutes */
const char *
ctl_iso(long long ms, bool minutes, char *out, size_t outlen)
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);

	(void)gmtime_r(&t, &tm);
	(void)strftime(out, outlen,
	    minutes ? "%Y-%m-%d %H:%M" : "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

const char *
ctl_step_name(long long step_ms)
{
	switch (step_ms / 1000) {
	case 60:
		return "minute";
	case 300:
		return "5 minutes";
	case 900:
		return "15 minutes";
	case 3600:
		return "hour";
	case 3 * 3600:
		return "3 hours";
	case 6 * 3600:
		return "6 hours";
	case 86400:
		return "day";
	default:
		return "week";
	}
}

/* ---------------------------------------------------------------- */
/* text */

static void
text_counts(const char *title, const json_t *o, size_t limit, unsigned long of)
{
	struct buf b;
	struct kv *a;
	size_t n, i;

	(void)printf("\n%s\n", title);
	a = ctl_sorted(o, &n);
	if (n == 0)
		(void)puts("  (none)");
	buf_init(&b);
	for (i = 0; i < n && i < limit; i++) {
		buf_reset(&b);
		ctl_text_n(&b, a[i].k, a[i].klen);
		(void)printf("  %-32s %8lld  %5.1f%%\n", buf_str(&b), a[i].n,
		    of > 0 ? 100.0 * (double)a[i].n / (double)of : 0.0);
	}
	buf_free(&b);
	free(a);
}

static void
text_series(const struct series *s)
{
	char when[40];
	size_t i;
	int bar;

	(void)printf("\nrefusals per %s (UTC)\n", ctl_step_name(s->step_ms));
	if (s->n == 0)
		(void)puts("  (none)");
	for (i = 0; i < s->n; i++) {
		bar = s->max > 0 ? (int)(s->counts[i] * BAR_WIDTH / s->max) : 0;
		(void)printf("  %s %8lu  %.*s\n",
		    ctl_iso(s->start_ms + (long long)i * s->step_ms, true, when,
			sizeof(when)),
		    s->counts[i], bar,
		    "########################################");
	}
}

static void
text_lists(const struct report *r)
{
	struct buf b;
	struct kv *a;
	size_t n, i;
	json_t *u;

	(void)puts("\nblocklists: listed, unknown (not answered)");
	a = ctl_sorted(r->listed, &n);
	buf_init(&b);
	for (i = 0; i < n; i++) {
		buf_reset(&b);
		ctl_text_n(&b, a[i].k, a[i].klen);
		u = json_object_getn(r->unknown, a[i].k, a[i].klen);
		(void)printf("  %-32s %8lld %8lld\n", buf_str(&b), a[i].n,
		    (long long)json_integer_value(u));
	}
	free(a);
	a = ctl_sorted(r->unknown, &i);
	for (n = 0; n < i; n++)
		if (json_object_getn(r->listed, a[n].k, a[n].klen) == NULL) {
			buf_reset(&b);
			ctl_text_n(&b, a[n].k, a[n].klen);
			(void)printf("  %-32s %8d %8lld\n", buf_str(&b), 0,
			    a[n].n);
		}
	if (json_object_size(r->listed) + json_object_size(r->unknown) == 0)
		(void)puts("  (none)");
	free(a);
	buf_free(&b);
}

static void
text_recent(const struct report *r)
{
	struct buf b;
	json_t *rec;
	size_t i;

	(void)printf("\nlatest refusals\n");
	if (r->nrecent == 0)
		(void)puts("  (none)");
	buf_init(&b);
	for (i = 0; (rec = ctl_recent(r, i)) != NULL; i++) {
		buf_reset(&b);
		ctl_text(&b, json_object_get(rec, "time"));
		buf_addc(&b, ' ');
		ctl_text(&b, json_object_get(rec, "client_ip"));
		buf_adds(&b, " <");
		ctl_text(&b, json_object_get(rec, "sender"));
		buf_adds(&b, "> ");
		ctl_text(&b, json_object_get(rec, "rule"));
		buf_addc(&b, ' ');
		ctl_text(&b, json_object_get(rec, "action"));
		(void)printf("  %s\n", buf_str(&b));
	}
	buf_free(&b);
}

static void
print_text(const struct report *r, const struct series *s)
{
	char a[40], b[40];

	(void)puts("spfguard decision report");
	if (r->have_time)
		(void)printf("period       %s .. %s\n",
		    ctl_iso(r->first_ms, false, a, sizeof(a)),
		    ctl_iso(r->last_ms, false, b, sizeof(b)));
	(void)printf("decisions    %lu\n", r->total);
	(void)printf("refused      %lu\n", r->refused);
	if (r->monitor > 0)
		(void)printf("monitor mode %lu decisions, %lu would have been "
			     "refused\n",
		    r->monitor, r->would_refuse);
	if (r->skipped > 0)
		(void)printf("skipped      %lu line(s) that did not parse\n",
		    r->skipped);
	text_counts("actions", r->actions, SIZE_MAX, r->total);
	if (r->monitor > 0)
		text_counts("monitor mode: the actions it would have taken",
		    r->would, SIZE_MAX, r->monitor);
	text_counts("rules", r->rules, SIZE_MAX, r->total);
	text_counts("SPF results (deciding identity; unchecked: no check)",
	    r->results, SIZE_MAX, r->total);
	(void)snprintf(a, sizeof(a), "top %zu sender domains refused", r->top);
	text_counts(a, r->domains, r->top, r->refused);
	(void)snprintf(a, sizeof(a), "top %zu client networks refused", r->top);
	text_counts(a, r->networks, r->top, r->refused);
	text_series(s);
	text_lists(r);
	text_recent(r);
}

/* ---------------------------------------------------------------- */
/* JSON */

static json_t *
json_counts(const json_t *o)
{
	json_t *out = json_object();
	struct kv *a;
	size_t n, i;

	a = ctl_sorted(o, &n);
	for (i = 0; i < n; i++)
		(void)json_object_setn_new(out, a[i].k, a[i].klen,
		    json_integer(a[i].n));
	free(a);
	return out;
}

static json_t *
json_top(const json_t *o, const char *name, size_t limit)
{
	json_t *out = json_array();
	struct kv *a;
	size_t n, i;

	a = ctl_sorted(o, &n);
	for (i = 0; i < n && i < limit; i++)
		(void)json_array_append_new(out,
		    json_pack("{s:s%,s:I}", name, a[i].k, a[i].klen, "count",
			(json_int_t)a[i].n));
	free(a);
	return out;
}

static json_t *
json_series(const struct series *s)
{
	json_t *b = json_array();
	char when[40];
	size_t i;

	for (i = 0; i < s->n; i++)
		(void)json_array_append_new(b,
		    json_pack("{s:s,s:I}", "start",
			ctl_iso(s->start_ms + (long long)i * s->step_ms, false,
			    when, sizeof(when)),
			"count", (json_int_t)s->counts[i]));
	return json_pack("{s:I,s:o}", "bucket_seconds",
	    (json_int_t)(s->step_ms / 1000), "buckets", b);
}

static json_t *
json_lists(const struct report *r)
{
	json_t *out = json_object(), *v;
	const char *k;
	size_t klen;
	void *tmp;

	json_object_keylen_foreach_safe(r->listed, tmp, k, klen, v)
	{
		(void)json_object_setn_new(out, k, klen,
		    json_pack("{s:O,s:i}", "listed", v, "unknown", 0));
	}
	json_object_keylen_foreach_safe(r->unknown, tmp, k, klen, v)
	{
		if (json_object_getn(out, k, klen) == NULL)
			(void)json_object_setn_new(out, k, klen,
			    json_pack("{s:i,s:O}", "listed", 0, "unknown", v));
		else
			(void)json_object_set(json_object_getn(out, k, klen),
			    "unknown", v);
	}
	return out;
}

static json_t *
json_recent(const struct report *r)
{
	static const char *const keys[] = {"time", "queue_id", "client_ip",
	    "helo", "sender", "recipients", "spf", "rule", "action", "reply"};
	json_t *out = json_array(), *rec, *o;
	size_t i, k;

	for (i = 0; (rec = ctl_recent(r, i)) != NULL; i++) {
		o = json_object();
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (json_object_get(rec, keys[k]) != NULL)
				(void)json_object_set(o, keys[k],
				    json_object_get(rec, keys[k]));
		(void)json_array_append_new(out, o);
	}
	return out;
}

static int
print_json(const struct report *r, const struct series *s)
{
	char a[40], b[40];
	json_t *o;
	int rc;

	o = json_pack("{s:I,s:I,s:I,s:I,s:I}", "decisions",
	    (json_int_t)r->total, "refused", (json_int_t)r->refused, "monitor",
	    (json_int_t)r->monitor, "would_refuse", (json_int_t)r->would_refuse,
	    "skipped_lines", (json_int_t)r->skipped);
	if (r->have_time) {
		(void)json_object_set_new(o, "first",
		    json_string(ctl_iso(r->first_ms, false, a, sizeof(a))));
		(void)json_object_set_new(o, "last",
		    json_string(ctl_iso(r->last_ms, false, b, sizeof(b))));
	}
	(void)json_object_set_new(o, "actions", json_counts(r->actions));
	(void)json_object_set_new(o, "monitor_would", json_counts(r->would));
	(void)json_object_set_new(o, "rules", json_counts(r->rules));
	(void)json_object_set_new(o, "results", json_counts(r->results));
	(void)json_object_set_new(o, "top_domains_refused",
	    json_top(r->domains, "domain", r->top));
	(void)json_object_set_new(o, "top_networks_refused",
	    json_top(r->networks, "network", r->top));
	(void)json_object_set_new(o, "refusals_over_time", json_series(s));
	(void)json_object_set_new(o, "lists", json_lists(r));
	(void)json_object_set_new(o, "latest_refusals", json_recent(r));
	rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	(void)fputc('\n', stdout);
	json_decref(o);
	return rc == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- */

/* report - read, add up, print (json), or write the page (html) */
static int
report(char **paths, int npaths, const struct logread_filter *f, size_t top,
    bool json, const char *html)
{
	struct logread_stats st;
	struct report r;
	struct series s;
	int rc;

	report_init(&r, top);
	rc = ctl_read(paths, npaths, f, add, &r, &st);
	r.skipped = st.bad;
	series_make(&r, &s);
	if (html != NULL) {
		if (ctl_report_html(&r, &s, html) != 0)
			rc = 1;
	} else if (json) {
		if (print_json(&r, &s) != 0)
			rc = 1;
	} else
		print_text(&r, &s);
	free(s.counts);
	report_free(&r);
	return rc;
}

int
ctl_report_main(int argc, char **argv)
{
	static const struct option own[] = {
	    {"top", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"html", required_argument, NULL, 'H'},
	    {"help", no_argument, NULL, 'h'},
	};
	struct option *longopts =
	    ctl_longopts(own, sizeof(own) / sizeof(own[0]));
	struct logread_filter *f = ctl_filter_new();
	const char *html = NULL;
	bool json = false;
	long top = 10;
	int ch, idx, rc;

	log_init("spfguardctl", true, false);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		switch (ch) {
		case CTL_OPT_FILTER:
			ctl_filter_opt(f, longopts[idx].name, optarg,
			    report_usage);
			break;
		case 't':
			top =
			    ctl_number("--top", optarg, 1, 1000, report_usage);
			break;
		case 'j':
			json = true;
			break;
		case 'H':
			html = optarg;
			break;
		case 'h':
			(void)fputs(report_usage, stdout);
			exit(0);
		default:
			(void)fputs(report_usage, stderr);
			exit(EXIT_USAGE);
		}
	}
	free(longopts);
	if (json && html != NULL)
		ctl_usage_error(report_usage, "--json and --html: choose one");
	rc = report(argv + optind, argc - optind, f, (size_t)top, json, html);
	logread_filter_free(f);
	if (fflush(stdout) != 0) {
		log_warn("standard output");
		rc = 1;
	}
	return rc;
}
