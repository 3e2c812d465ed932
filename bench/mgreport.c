/*
 * mgreport.c - miltergen's results as a table (stdout) and as JSON: per
 * class of message (fast, slow) the messages per second, the decisions,
 * and latency p50/p99/max in milliseconds per stage and per decision.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "miltergen.h"

static const char *const class_names[NCLASSES] = {"fast", "slow"};
static const char *const stage_names[NSTAGES] = {"connect", "helo", "mail",
    "rcpt", "data", "header", "eoh", "body", "eom", "total"};
static const char *const decision_names[NDECISIONS] = {"accept", "reject",
    "tempfail", "discard"};
static const char *const error_names[NERRORS] = {"connect", "eof", "io",
    "protocol", "timeout"};

static double
ms(uint64_t us)
{
	return (double)us / 1000.0;
}

static double
rate(const struct results *r, const struct class_stats *s)
{
	return r->window > 0 ? (double)s->in_window / r->window : 0.0;
}

static unsigned long
errors(const struct results *r)
{
	unsigned long n = 0;
	int i;

	for (i = 0; i < NERRORS; i++)
		n += r->errors[i];
	return n;
}

static void
hist_row(FILE *fp, const char *name, const struct hist *h, long stalls)
{
	if (h->n == 0)
		return;
	(void)fprintf(fp, "  %-10s %9llu %9.2f %9.2f %9.2f", name,
	    (unsigned long long)h->n, ms(hist_pct(h, 0.5)),
	    ms(hist_pct(h, 0.99)), ms(h->max));
	if (stalls >= 0)
		(void)fprintf(fp, " %7ld", stalls);
	(void)fprintf(fp, "\n");
}

void
mg_report_text(FILE *fp, const struct results *r)
{
	const struct class_stats *s;
	int k, i;

	(void)fprintf(fp,
	    "miltergen: %s, %u connections x %u message(s), %u "
	    "recipient(s); %lu started; window %.2f s after %.1f s "
	    "warm-up\n",
	    r->socket, r->conns, r->per_conn, r->rcpts, r->started, r->window,
	    r->warmup);
	(void)fprintf(fp,
	    "filter: milter version %u, actions 0x%x, protocol 0x%x\n",
	    r->version, r->actions, r->protocol);
	for (k = 0; k < NCLASSES; k++) {
		s = &r->cls[k];
		if (s->messages == 0 && r->lost[k] == 0)
			continue;
		(void)fprintf(fp,
		    "%s: %lu messages, %.0f msg/s; accept %lu, reject %lu, "
		    "tempfail %lu, discard %lu; lost to errors %lu\n",
		    class_names[k], s->messages, rate(r, s),
		    s->decisions[DEC_ACCEPT], s->decisions[DEC_REJECT],
		    s->decisions[DEC_TEMPFAIL], s->decisions[DEC_DISCARD],
		    r->lost[k]);
		(void)fprintf(fp, "  %-10s %9s %9s %9s %9s  >%.0f ms\n",
		    "stage", "count", "p50 ms", "p99 ms", "max ms",
		    r->stall * 1000);
		for (i = 0; i < NSTAGES; i++)
			hist_row(fp, stage_names[i], &s->stage[i],
			    (long)s->stalls[i]);
		for (i = 0; i < NDECISIONS; i++)
			hist_row(fp, decision_names[i], &s->by_decision[i], -1);
	}
	(void)fprintf(fp, "errors: %lu (", errors(r));
	for (i = 0; i < NERRORS; i++)
		(void)fprintf(fp, "%s%s %lu", i > 0 ? ", " : "", error_names[i],
		    r->errors[i]);
	(void)fprintf(fp, "); shutdowns %lu; slow sessions not started %lu\n",
	    r->shutdowns, r->slow_skipped);
	(void)fprintf(fp, "modifications:");
	for (i = 0; i < NMODS; i++)
		if (r->mods[i] > 0)
			(void)fprintf(fp, " %s %lu", mg_modification_name(i),
			    r->mods[i]);
	(void)fprintf(fp, "\n");
}

static void
hist_json(FILE *fp, const char *name, const struct hist *h, long stalls,
    bool comma)
{
	(void)fprintf(fp,
	    "%s\"%s\": {\"count\": %llu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
	    "\"max_ms\": %.3f, \"mean_ms\": %.3f",
	    comma ? ", " : "", name, (unsigned long long)h->n,
	    ms(hist_pct(h, 0.5)), ms(hist_pct(h, 0.99)), ms(h->max),
	    h->n > 0 ? ms(h->sum) / (double)h->n : 0.0);
	if (stalls >= 0)
		(void)fprintf(fp, ", \"stalls\": %ld", stalls);
	(void)fprintf(fp, "}");
}

static void
class_json(FILE *fp, const struct results *r, int k)
{
	const struct class_stats *s = &r->cls[k];
	int i;
	bool first = true;

	(void)fprintf(fp,
	    "\"%s\": {\"messages\": %lu, \"in_window\": %lu, "
	    "\"msgs_per_s\": %.1f, \"lost\": %lu, \"decisions\": {",
	    class_names[k], s->messages, s->in_window, rate(r, s), r->lost[k]);
	for (i = 0; i < NDECISIONS; i++)
		(void)fprintf(fp, "%s\"%s\": %lu", i > 0 ? ", " : "",
		    decision_names[i], s->decisions[i]);
	(void)fprintf(fp, "},\n   \"stages\": {");
	for (i = 0; i < NSTAGES; i++) {
		if (s->stage[i].n == 0)
			continue;
		hist_json(fp, stage_names[i], &s->stage[i], (long)s->stalls[i],
		    !first);
		first = false;
	}
	(void)fprintf(fp, "},\n   \"by_decision\": {");
	first = true;
	for (i = 0; i < NDECISIONS; i++) {
		if (s->by_decision[i].n == 0)
			continue;
		hist_json(fp, decision_names[i], &s->by_decision[i], -1,
		    !first);
		first = false;
	}
	(void)fprintf(fp, "}}");
}

int
mg_report_json(const char *path, const struct results *r)
{
	FILE *fp;
	int i, k;

	if ((fp = fopen(path, "w")) == NULL) {
		(void)fprintf(stderr, "miltergen: %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	(void)fprintf(fp,
	    "{\"socket\": \"%s\", \"connections\": %u, "
	    "\"messages_per_connection\": %u, \"recipients\": %u,\n "
	    "\"started\": %lu, \"warmup_s\": %.3f, \"window_s\": %.3f, "
	    "\"stall_s\": %.3f,\n "
	    "\"negotiated\": {\"version\": %u, \"actions\": %u, "
	    "\"protocol\": %u},\n \"errors\": {\"total\": %lu",
	    r->socket, r->conns, r->per_conn, r->rcpts, r->started, r->warmup,
	    r->window, r->stall, r->version, r->actions, r->protocol,
	    errors(r));
	for (i = 0; i < NERRORS; i++)
		(void)fprintf(fp, ", \"%s\": %lu", error_names[i],
		    r->errors[i]);
	(void)fprintf(fp,
	    "},\n \"shutdowns\": %lu, \"slow_not_started\": %lu,\n "
	    "\"modifications\": {",
	    r->shutdowns, r->slow_skipped);
	for (i = 0; i < NMODS; i++)
		(void)fprintf(fp, "%s\"%s\": %lu", i > 0 ? ", " : "",
		    mg_modification_name(i), r->mods[i]);
	(void)fprintf(fp, "},\n \"classes\": {");
	for (k = 0; k < NCLASSES; k++) {
		(void)fprintf(fp, "%s\n  ", k > 0 ? "," : "");
		class_json(fp, r, k);
	}
	(void)fprintf(fp, "}}\n");
	if (fclose(fp) != 0) {
		(void)fprintf(stderr, "miltergen: %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}
