/*
 * logread.h - reading the decision log back: files (plain or gzip, as
 * logrotate leaves them) or stdin, one parsed record per line, and the
 * filters that `spfguardctl log`, `report` and `replay` share.
 *
 * Records are jansson objects (struct json_t is jansson's json_t; include
 * <jansson.h> to look inside one). A record returned by logread_next() is
 * borrowed: it lives until the next logread_next() or logread_close();
 * json_incref() it to keep it longer. Strings in a record are what the
 * daemon logged, decoded: the daemon writes every byte outside printable
 * ASCII as \u00XX, so a code point below 0x100 is the byte it stands for.
 *
 * A line that does not parse (a torn last line after a crash, a line
 * edited by hand) is reported through the log facade as file:line,
 * counted and skipped; it never ends the reading. A file that cannot be
 * opened fails logread_open(); one that cannot be read to its end (a
 * truncated .gz) is reported and counted in errors.
 */
#ifndef SPFGUARD_LOGREAD_H
#define SPFGUARD_LOGREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct json_t;
struct logread;

/*
 * Open paths in order ("-", or npaths 0: stdin). Every file is opened
 * here, so a missing one is an error before anything is read (and a file
 * rotated away meanwhile is still read whole). NULL with err set on
 * failure.
 */
struct logread *
logread_open(const char *const *paths, size_t npaths, char *err, size_t errlen);

/*
 * The next record: 1 and *rec (borrowed), *file ("(stdin)" for stdin)
 * and *line (1-based) set, or 0 at the end of the last file. file and
 * line may be NULL.
 */
int logread_next(struct logread *, struct json_t **rec, const char **file,
    unsigned long *line);

struct logread_stats {
	unsigned long records; /* returned by logread_next() */
	unsigned long bad;     /* lines skipped: not a JSON object */
	unsigned long torn;    /* of which the last line of a file, cut */
	unsigned long errors;  /* files not read to their end */
};
void logread_get_stats(const struct logread *, struct logread_stats *);
void logread_close(struct logread *);

/*
 * A time as milliseconds since the epoch. Absolute: ISO 8601 as the log
 * writes it, "2026-12-02T03:04:05.123Z", or shorter ("2026-12-02",
 * "2026-12-02T03:04", a space for the T), UTC unless it ends in +HH:MM or
 * -HH:MM. Relative to now_ms: "now", "-90s", "-30m", "-1h", "-2d", "-1w".
 * 0, or -1 when s is neither.
 */
int logread_parse_time(const char *s, long long now_ms, long long *ms);

/* The record's "time" in milliseconds: 0, or -1 (absent, malformed). */
int logread_time(const struct json_t *rec, long long *ms);

/* The string at a dotted path ("spf.result"), or NULL: absent, null or
 * not a string. Borrowed from rec. */
const char *logread_str(const struct json_t *rec, const char *path);

/*
 * Filters. Conditions of one kind are ORed, different kinds ANDed; an
 * empty filter matches everything. Kinds (the command line's option
 * names):
 *	since, until	a time as logread_parse_time() reads it; since is
 *			inclusive, until exclusive; given again, replaces
 *	action		accept tag quarantine tempfail reject greylist: the
 *			action taken or, in monitor mode, the one it would be
 *	rule		the deciding rule's name; "-" for none
 *	result		the deciding SPF result (pass fail softfail neutral
 *			none temperror permerror), "unchecked" for none
 *	domain		the sender's domain: a policy pattern ("x.org";
 *			"*.x.org" for its subdomains; shell globs)
 *	ip		the client: an address or a CIDR, IPv4 or IPv6
 *	queue-id	the MTA's queue id
 */
struct logread_filter;

struct logread_filter *logread_filter_new(long long now_ms);
/* 0, or -1 with err set (unknown kind, bad value). */
int logread_filter_add(struct logread_filter *, const char *kind,
    const char *value, char *err, size_t errlen);
bool
logread_filter_match(const struct logread_filter *, const struct json_t *rec);
void logread_filter_free(struct logread_filter *);

/* The sender's domain, lowercased, without a final dot, added to out: 0,
 * or -1 (nothing added) for the null sender or a sender without '@'. */
int logread_sender_domain(const struct json_t *rec, struct buf *out);

#endif
