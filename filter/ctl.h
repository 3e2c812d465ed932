/*
 * ctl.h - spfguardctl's decision-log commands, private to filter/: `log`
 * (ctl_log.c) and `report` (ctl_report.c), and what they share (defined
 * in ctl_log.c). Each command takes argv with argv[0] its own name and
 * returns the exit status: 0, 1 when a file could not be read, 2 on a
 * usage error (after printing it).
 */
#ifndef SPFGUARD_CTL_H
#define SPFGUARD_CTL_H

#include <getopt.h>
#include <jansson.h>

#include "buf.h"
#include "logread.h"

int ctl_log_main(int argc, char **argv);
int ctl_report_main(int argc, char **argv);

/*
 * The command's options followed by the filter options (and the
 * terminator), in a new array to free(). Every filter option has the
 * value CTL_OPT_FILTER; its name is the filter kind for
 * logread_filter_add().
 */
#define CTL_OPT_FILTER 0x100
struct option *ctl_longopts(const struct option *own, size_t nown);
#define CTL_FILTER_USAGE                                                       \
	"[--since TIME] [--until TIME] [--action A] [--rule NAME]\n"           \
	"    [--result R] [--domain PATTERN] [--ip IP|CIDR] [--queue-id ID]"

/* A filter whose "now" is the clock's. */
struct logread_filter *ctl_filter_new(void);
/* Add one condition; a bad value is a usage error (exit 2). */
void ctl_filter_opt(struct logread_filter *, const char *kind,
    const char *value, const char *usage);

void __attribute__((noreturn, format(printf, 2, 3)))
ctl_usage_error(const char *usage, const char *fmt, ...);
/* An option's number in [min, max]; anything else is a usage error. */
long ctl_number(const char *opt, const char *s, long min, long max,
    const char *usage);

/* Every record of the paths that the filter passes, to fn. Reports
 * skipped lines on stderr and, if st is not NULL, gives the counts;
 * returns the exit status (0, or 1 when a file could not be opened or
 * read to its end). */
int ctl_read(char **paths, int npaths, const struct logread_filter *,
    void (*fn)(json_t *rec, void *arg), void *arg, struct logread_stats *st);

/* Text for a terminal or a page: a JSON string's bytes with '\' and
 * everything outside printable ASCII as \xNN; "-" for anything else. */
void ctl_text(struct buf *, const json_t *);
void ctl_text_n(struct buf *, const char *, size_t);

/*
 * The report, shared by ctl_report.c (which fills it and prints text and
 * JSON) and ctl_html.c (the page). Counters are jansson objects, key ->
 * integer; recent is a ring of the last `top` refused records, each held
 * with json_incref().
 */
struct report {
	unsigned long total, refused, would_refuse, monitor;
	bool have_time;
	long long first_ms, last_ms;
	json_t *actions, *would, *rules, *results;
	json_t *domains, *networks; /* refused */
	json_t *listed, *unknown;   /* blocklist results by list */
	long long *rtimes;	    /* of refusals, ms */
	size_t nrtimes, rtcap;
	json_t **recent;
	size_t top, nrecent;
	unsigned long skipped; /* lines that did not parse */
};

/* refusals over time: n buckets of step_ms from start_ms */
struct series {
	long long start_ms;
	long long step_ms;
	size_t n;
	unsigned long *counts;
	unsigned long max;
};

/* a counter's entry */
struct kv {
	const char *k; /* borrowed from the counter */
	size_t klen;
	long long n;
};

/* A counter's entries, most first, then by key; *n of them. free() it. */
struct kv *ctl_sorted(const json_t *counter, size_t *n);
/* The i-th of the latest refusals kept (0: the oldest), or NULL. */
json_t *ctl_recent(const struct report *, size_t i);
/* A time: "2026-12-02T03:04:05Z", or "2026-12-02 03:04" with minutes. */
const char *ctl_iso(long long ms, bool minutes, char *out, size_t outlen);
/* "minute", "5 minutes", "hour", ... for a bucket size. */
const char *ctl_step_name(long long step_ms);
/* Write the HTML page to path: 0, or -1 (reported). */
int
ctl_report_html(const struct report *, const struct series *, const char *path);

#endif
