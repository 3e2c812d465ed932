/*
 * logread.c - the decision log read back: lines from plain or gzip files
 * (zlib's gzdopen() reads both) or stdin, parsed by jansson, and the
 * filters over the records.
 *
 * logread_open() opens every path at once and keeps the descriptors;
 * each is handed to zlib when its turn comes and closed when it ends.
 * The current record is owned here and released at the next call; the
 * caller borrows it. Lines are read whole (up to LOGREAD_MAX_LINE bytes;
 * a longer one is skipped without being kept) so that no record is ever
 * cut in two. Lines that do not parse are reported with file:line through
 * log_warnx() and counted; I/O and gzip errors end that file only.
 *
 * A filter owns copies of its values. Only this file and spfguardctl's
 * commands include jansson.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "logread.h"
#include "policy.h"
#include "spf.h"
#include "xalloc.h"

#define LOGREAD_MAX_LINE (16u << 20) /* bytes; the daemon's are far shorter */
#define LOGREAD_CHUNK	 (64u << 10)

struct lr_file {
	char *name; /* as reported: the path, or "(stdin)" */
	int fd;	    /* -1 once handed to zlib or closed */
};

struct logread {
	struct lr_file *files;
	size_t nfiles;
	size_t cur;  /* the file being read */
	gzFile gz;   /* files[cur], or NULL before it is opened */
	char *chunk; /* read-ahead from gz */
	size_t clen, cpos;
	struct buf line;
	unsigned long lineno;
	json_t *rec; /* the last record returned */
	struct logread_stats st;
};

struct logread *
logread_open(const char *const *paths, size_t npaths, char *err, size_t errlen)
{
	static const char *const stdin_only[] = {"-"};
	struct logread *lr;
	size_t i;
	int fd;

	if (npaths == 0) {
		paths = stdin_only;
		npaths = 1;
	}
	lr = xcalloc(1, sizeof(*lr));
	lr->files = xreallocarray(NULL, npaths, sizeof(*lr->files));
	for (i = 0; i < npaths; i++) {
		if (strcmp(paths[i], "-") == 0)
			fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0);
		else
			fd = open(paths[i], O_RDONLY | O_CLOEXEC);
		if (fd == -1) {
			(void)snprintf(err, errlen, "%s: %s",
			    strcmp(paths[i], "-") == 0 ? "(stdin)" : paths[i],
			    strerror(errno));
			lr->nfiles = i;
			logread_close(lr);
			return NULL;
		}
		lr->files[i].fd = fd;
		lr->files[i].name =
		    xstrdup(strcmp(paths[i], "-") == 0 ? "(stdin)" : paths[i]);
	}
	lr->nfiles = npaths;
	lr->chunk = xmalloc(LOGREAD_CHUNK);
	buf_init(&lr->line);
	return lr;
}

void
logread_close(struct logread *lr)
{
	size_t i;

	if (lr == NULL)
		return;
	if (lr->gz != NULL)
		(void)gzclose(lr->gz);
	for (i = 0; i < lr->nfiles; i++) {
		if (lr->files[i].fd != -1)
			(void)close(lr->files[i].fd);
		free(lr->files[i].name);
	}
	free(lr->files);
	free(lr->chunk);
	buf_free(&lr->line);
	json_decref(lr->rec);
	free(lr);
}

void
logread_get_stats(const struct logread *lr, struct logread_stats *st)
{
	*st = lr->st;
}

/* printable - text from a line or a parser, safe for the log facade */
static void
printable(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

/* end_file - close the current file; report why it ended if not at EOF */
static void
end_file(struct logread *lr)
{
	const char *msg;
	int errnum = Z_OK;

	if (lr->gz != NULL) {
		msg = gzerror(lr->gz, &errnum);
		if (errnum == Z_BUF_ERROR)
			log_warnx("%s: compressed data cut short, read up to "
				  "line %lu",
			    lr->files[lr->cur].name, lr->lineno);
		else if (errnum == Z_ERRNO)
			log_warn("%s: read error after line %lu",
			    lr->files[lr->cur].name, lr->lineno);
		else if (errnum != Z_OK)
			log_warnx("%s: %s, after line %lu",
			    lr->files[lr->cur].name, msg, lr->lineno);
		if (errnum != Z_OK)
			lr->st.errors++;
		(void)gzclose(lr->gz);
		lr->gz = NULL;
	}
	lr->cur++;
	lr->clen = lr->cpos = 0;
	lr->lineno = 0;
}

/*
 * read_line - the next line of the current file into lr->line (without
 * its newline): 1 with *complete telling whether a newline ended it, 0
 * at the end of the file. A line over LOGREAD_MAX_LINE comes back empty
 * with *overlong set.
 */
static int
read_line(struct logread *lr, bool *complete, bool *overlong)
{
	char *nl;
	size_t n;
	int got;
	bool any = false;

	buf_reset(&lr->line);
	*complete = *overlong = false;
	for (;;) {
		if (lr->cpos == lr->clen) {
			got = gzread(lr->gz, lr->chunk, LOGREAD_CHUNK);
			if (got <= 0)
				return any ? 1 : 0;
			lr->clen = (size_t)got;
			lr->cpos = 0;
		}
		any = true;
		nl = memchr(lr->chunk + lr->cpos, '\n', lr->clen - lr->cpos);
		n = (nl != NULL ? (size_t)(nl - lr->chunk) : lr->clen) -
		    lr->cpos;
		if (!*overlong && lr->line.len + n > LOGREAD_MAX_LINE) {
			*overlong = true;
			buf_reset(&lr->line);
		}
		if (!*overlong)
			buf_add(&lr->line, lr->chunk + lr->cpos, n);
		lr->cpos += n;
		if (nl != NULL) {
			lr->cpos++;
			*complete = true;
			return 1;
		}
	}
}

/* bad_line - report and count a line that is not a record */
static void
bad_line(struct logread *lr, bool torn, const char *why)
{
	char msg[200];

	(void)snprintf(msg, sizeof(msg), "%s", why);
	printable(msg);
	log_warnx("%s:%lu: %s%s, skipped", lr->files[lr->cur].name, lr->lineno,
	    torn ? "last line cut short (no newline): " : "", msg);
	lr->st.bad++;
	if (torn)
		lr->st.torn++;
}

int
logread_next(struct logread *lr, json_t **rec, const char **file,
    unsigned long *line)
{
	json_error_t jerr;
	json_t *o;
	bool complete, overlong;

	json_decref(lr->rec);
	lr->rec = NULL;
	while (lr->cur < lr->nfiles) {
		if (lr->gz == NULL) {
			if ((lr->gz = gzdopen(lr->files[lr->cur].fd, "rb")) ==
			    NULL) {
				log_warn("%s", lr->files[lr->cur].name);
				lr->st.errors++;
				end_file(lr);
				continue;
			}
			lr->files[lr->cur].fd = -1; /* zlib's now */
			(void)gzbuffer(lr->gz, LOGREAD_CHUNK);
		}
		if (read_line(lr, &complete, &overlong) == 0) {
			end_file(lr);
			continue;
		}
		lr->lineno++;
		if (overlong) {
			bad_line(lr, !complete, "line too long");
			continue;
		}
		o = json_loadb(lr->line.data != NULL ? lr->line.data : "",
		    lr->line.len, JSON_ALLOW_NUL, &jerr);
		if (o == NULL || !json_is_object(o)) {
			bad_line(lr, !complete,
			    o == NULL ? jerr.text : "not a JSON object");
			json_decref(o);
			continue;
		}
		lr->rec = o;
		lr->st.records++;
		*rec = o;
		if (file != NULL)
			*file = lr->files[lr->cur].name;
		if (line != NULL)
			*line = lr->lineno;
		return 1;
	}
	return 0;
}

/* digits - n decimal digits at *p, advancing it: the value, or -1 */
static long
digits(const char **p, int n)
{
	long v = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

/* relative_time - "-90s", "-30m", "-1h", "-2d", "-1w" before now */
static int
relative_time(const char *s, long long now_ms, long long *ms)
{
	char *end;
	long long n, unit;

	if (s[0] != '-' || !isdigit((unsigned char)s[1]))
		return -1;
	errno = 0;
	n = strtoll(s + 1, &end, 10);
	if (errno != 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (end[0]) {
	case 's':
		unit = 1000LL;
		break;
	case 'm':
		unit = 60 * 1000LL;
		break;
	case 'h':
		unit = 3600 * 1000LL;
		break;
	case 'd':
		unit = 86400 * 1000LL;
		break;
	case 'w':
		unit = 7 * 86400 * 1000LL;
		break;
	default:
		return -1;
	}
	if (n > 100LL * 366 * 86400 * 1000 / unit)
		return -1;
	*ms = now_ms - n * unit;
	return 0;
}

/* zone_offset - "Z", "", "+HH:MM", "-HHMM": seconds east of UTC, or -1 */
static int
zone_offset(const char *p, long *off)
{
	long h, m;
	int sign;

	*off = 0;
	if (*p == '\0' || (p[0] == 'Z' && p[1] == '\0'))
		return 0;
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if ((h = digits(&p, 2)) < 0 || h > 23)
		return -1;
	if (*p == ':')
		p++;
	if ((m = digits(&p, 2)) < 0 || m > 59 || *p != '\0')
		return -1;
	*off = sign * (h * 3600 + m * 60);
	return 0;
}

int
logread_parse_time(const char *s, long long now_ms, long long *ms)
{
	struct tm tm, back;
	const char *p = s;
	long v[6] = {0, 0, 0, 0, 0, 0}, frac = 0, off, scale = 100;
	time_t t;

	if (strcmp(s, "now") == 0) {
		*ms = now_ms;
		return 0;
	}
	if (s[0] == '-')
		return relative_time(s, now_ms, ms);
	if ((v[0] = digits(&p, 4)) < 0 || *p++ != '-' ||
	    (v[1] = digits(&p, 2)) < 0 || *p++ != '-' ||
	    (v[2] = digits(&p, 2)) < 0)
		return -1;
	if (*p == 'T' || *p == ' ') {
		p++;
		if ((v[3] = digits(&p, 2)) < 0 || *p++ != ':' ||
		    (v[4] = digits(&p, 2)) < 0)
			return -1;
		if (*p == ':') {
			p++;
			if ((v[5] = digits(&p, 2)) < 0)
				return -1;
			if (*p == '.' || *p == ',') {
				if (!isdigit((unsigned char)*++p))
					return -1;
				for (; isdigit((unsigned char)*p); p++) {
					frac += (*p - '0') * scale;
					scale /= 10;
				}
			}
		}
	}
	if (zone_offset(p, &off) == -1)
		return -1;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 59)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)v[0] - 1900;
	tm.tm_mon = (int)v[1] - 1;
	tm.tm_mday = (int)v[2];
	tm.tm_hour = (int)v[3];
	tm.tm_min = (int)v[4];
	tm.tm_sec = (int)v[5];
	back = tm;
	t = timegm(&tm);
	if (tm.tm_mday != back.tm_mday) /* 31 February, normalised away */
		return -1;
	*ms = ((long long)t - off) * 1000 + frac;
	return 0;
}

/* member - the value at a dotted path, or NULL */
static const json_t *
member(const json_t *o, const char *path)
{
	const char *dot;

	while (o != NULL && json_is_object(o)) {
		if ((dot = strchr(path, '.')) == NULL)
			return json_object_get(o, path);
		o = json_object_getn(o, path, (size_t)(dot - path));
		path = dot + 1;
	}
	return NULL;
}

const char *
logread_str(const json_t *rec, const char *path)
{
	const json_t *v = member(rec, path);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int
logread_time(const json_t *rec, long long *ms)
{
	const char *s = logread_str(rec, "time");

	/* absolute only: "now" or "-1h" in a record is no time */
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	return logread_parse_time(s, 0, ms);
}

int
logread_sender_domain(const json_t *rec, struct buf *out)
{
	const json_t *v = json_object_get(rec, "sender");
	const char *s, *at;
	size_t len, i;

	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	len = json_string_length(v);
	for (at = NULL, i = 0; i < len; i++)
		if (s[i] == '@')
			at = s + i;
	if (at == NULL)
		return -1;
	len -= (size_t)(at + 1 - s);
	if (len > 0 && at[len] == '.')
		len--;
	if (len == 0)
		return -1;
	for (i = 1; i <= len; i++)
		buf_addc(out, (char)tolower((unsigned char)at[i]));
	return 0;
}

/* ---------------------------------------------------------------- */

struct strs {
	char **v;
	size_t n;
};

struct logread_filter {
	long long now_ms;
	bool have_since, have_until;
	long long since_ms, until_ms;
	struct strs actions, rules, results, queue_ids;
	struct policy_patterns domains;
	struct policy_cidr *nets;
	size_t nnets;
};

static void
strs_add(struct strs *s, const char *v)
{
	s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = xstrdup(v);
}

/* strs_has - no condition of the kind, or s among them */
static bool
strs_has(const struct strs *set, const char *s)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (s != NULL && strcmp(set->v[i], s) == 0)
			return true;
	return false;
}

static void
strs_free(struct strs *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

struct logread_filter *
logread_filter_new(long long now_ms)
{
	struct logread_filter *f = xcalloc(1, sizeof(*f));

	f->now_ms = now_ms;
	return f;
}

void
logread_filter_free(struct logread_filter *f)
{
	size_t i;

	if (f == NULL)
		return;
	strs_free(&f->actions);
	strs_free(&f->rules);
	strs_free(&f->results);
	strs_free(&f->queue_ids);
	for (i = 0; i < f->domains.n; i++)
		free(f->domains.pat[i]);
	free(f->domains.pat);
	free(f->nets);
	free(f);
}

static int
add_time(struct logread_filter *f, const char *kind, const char *value)
{
	long long ms;

	if (logread_parse_time(value, f->now_ms, &ms) == -1)
		return -1;
	if (strcmp(kind, "since") == 0) {
		f->have_since = true;
		f->since_ms = ms;
	} else {
		f->have_until = true;
		f->until_ms = ms;
	}
	return 0;
}

static int
add_action(struct logread_filter *f, const char *kind, const char *value)
{
	enum policy_action a;

	if (policy_action_parse(value, &a) == -1)
		return -1;
	strs_add(&f->actions, policy_action_name(a));
	return 0;
}

static int
add_result(struct logread_filter *f, const char *kind, const char *value)
{
	enum spf_result r;

	if (strcmp(value, "unchecked") == 0)
		strs_add(&f->results, value);
	else if (spf_result_parse(value, &r) == 0)
		strs_add(&f->results, spf_result_name(r));
	else
		return -1;
	return 0;
}

static int
add_net(struct logread_filter *f, const char *kind, const char *value)
{
	struct policy_cidr net;

	if (policy_cidr_parse(value, &net) == -1)
		return -1;
	f->nets = xreallocarray(f->nets, f->nnets + 1, sizeof(*f->nets));
	f->nets[f->nnets++] = net;
	return 0;
}

static int
add_domain(struct logread_filter *f, const char *kind, const char *value)
{
	f->domains.pat = xreallocarray(f->domains.pat, f->domains.n + 1,
	    sizeof(*f->domains.pat));
	f->domains.pat[f->domains.n++] = xstrdup(value);
	return 0;
}

static int
add_string(struct logread_filter *f, const char *kind, const char *value)
{
	strs_add(strcmp(kind, "rule") == 0 ? &f->rules : &f->queue_ids, value);
	return 0;
}

/* the filter kinds: how a value is added, and what it must be */
static const struct {
	const char *kind;
	int (*add)(struct logread_filter *, const char *, const char *);
	const char *must_be;
} kinds[] = {
    {"since", add_time,
	"a time (2026-12-02, 2026-12-02T03:04:05Z, -30m, -2h, -1d)"},
    {"until", add_time,
	"a time (2026-12-02, 2026-12-02T03:04:05Z, -30m, -2h, -1d)"},
    {"action", add_action,
	"an action (accept tag quarantine tempfail reject greylist)"},
    {"rule", add_string, NULL},
    {"result", add_result,
	"an SPF result (pass fail softfail neutral none temperror "
	"permerror, or unchecked)"},
    {"domain", add_domain, NULL},
    {"ip", add_net, "an address or a CIDR"},
    {"queue-id", add_string, NULL},
};

int
logread_filter_add(struct logread_filter *f, const char *kind,
    const char *value, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i].kind) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0])) {
		(void)snprintf(err, errlen, "unknown filter \"%.40s\"", kind);
		return -1;
	}
	if (value[0] == '\0') {
		(void)snprintf(err, errlen, "--%s: empty value", kind);
		return -1;
	}
	if (kinds[i].add(f, kind, value) == -1) {
		(void)snprintf(err, errlen, "--%s: \"%.60s\" is not %s", kind,
		    value, kinds[i].must_be);
		return -1;
	}
	return 0;
}

/* match_domain - the sender's domain against the patterns */
static bool
match_domain(const struct logread_filter *f, const json_t *rec)
{
	struct buf d;
	bool ok;

	buf_init(&d);
	ok = logread_sender_domain(rec, &d) == 0 &&
	    memchr(d.data, '\0', d.len) == NULL &&
	    policy_pattern_match(&f->domains, d.data);
	buf_free(&d);
	return ok;
}

bool
logread_filter_match(const struct logread_filter *f, const json_t *rec)
{
	const json_t *spf;
	const char *rule;
	long long ms;

	if (f->have_since || f->have_until) {
		if (logread_time(rec, &ms) == -1)
			return false;
		if (f->have_since && ms < f->since_ms)
			return false;
		if (f->have_until && ms >= f->until_ms)
			return false;
	}
	if (f->actions.n > 0 &&
	    !strs_has(&f->actions, logread_str(rec, "action")) &&
	    !strs_has(&f->actions, logread_str(rec, "would")))
		return false;
	if (f->rules.n > 0) {
		rule = logread_str(rec, "rule");
		if (!strs_has(&f->rules, rule != NULL ? rule : "-"))
			return false;
	}
	if (f->results.n > 0) {
		spf = json_object_get(rec, "spf");
		if (!strs_has(&f->results,
			json_is_object(spf) ? logread_str(spf, "result")
					    : "unchecked"))
			return false;
	}
	if (f->queue_ids.n > 0 &&
	    !strs_has(&f->queue_ids, logread_str(rec, "queue_id")))
		return false;
	if (f->domains.n > 0 && !match_domain(f, rec))
		return false;
	if (f->nnets > 0 &&
	    !policy_cidr_contains(f->nets, f->nnets,
		logread_str(rec, "client_ip")))
		return false;
	return true;
}
