/*
 * ctl_log.c - `spfguardctl log`: the decision log's records that pass
 * the filters, as a table or as JSON lines; and what `log` and `report`
 * share (ctl.h): the filter options, the reading loop, the escaping.
 *
 *	spfguardctl log [--json] [--width N] [--no-header] [filters] [FILE...]
 *
 * Everything printed from a record is escaped here: the log holds what
 * SMTP clients chose to send, so a sender or HELO with control bytes or
 * escape sequences reaches the terminal as \xNN text. --json prints each
 * matching record re-serialised by jansson on one line (the same values,
 * non-ASCII as \u escapes). Records come from logread.c and are borrowed.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "xalloc.h"

#define EXIT_USAGE 2
#define MIN_FLEX   6 /* the narrowest a shared column gets */

static const char log_usage[] =
    "usage: spfguardctl log [--json] [--width N] [--no-header]\n"
    "    " CTL_FILTER_USAGE "\n"
    "    [FILE ...]\n"
    "FILE: a decision log, plain or .gz; none or \"-\": stdin.\n"
    "TIME: 2026-12-02, 2026-12-02T03:04[:05[.123]][Z|+HH:MM] (UTC unless\n"
    "    an offset is given), or before now: -90s -30m -1h -2d -1w.\n"
    "A filter given twice matches either value; different filters must\n"
    "all match. --action matches the action taken or, in monitor mode,\n"
    "the one it would have been (shown in parentheses); --rule - matches\n"
    "no rule; --result unchecked matches no SPF check (trusted, auth);\n"
    "--domain takes patterns as the configuration does (*.example.org).\n";

static const struct option filter_opts[] = {
    {"since", required_argument, NULL, CTL_OPT_FILTER},
    {"until", required_argument, NULL, CTL_OPT_FILTER},
    {"action", required_argument, NULL, CTL_OPT_FILTER},
    {"rule", required_argument, NULL, CTL_OPT_FILTER},
    {"result", required_argument, NULL, CTL_OPT_FILTER},
    {"domain", required_argument, NULL, CTL_OPT_FILTER},
    {"ip", required_argument, NULL, CTL_OPT_FILTER},
    {"queue-id", required_argument, NULL, CTL_OPT_FILTER},
};
#define NFILTER_OPTS (sizeof(filter_opts) / sizeof(filter_opts[0]))

struct option *
ctl_longopts(const struct option *own, size_t nown)
{
	struct option *o;

	o = xcalloc(nown + NFILTER_OPTS + 1, sizeof(*o));
	memcpy(o, own, nown * sizeof(*o));
	memcpy(o + nown, filter_opts, sizeof(filter_opts));
	return o; /* the last entry stays zero: the terminator */
}

void
ctl_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	(void)fputs("spfguardctl: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
	(void)fputs(usage, stderr);
	exit(EXIT_USAGE);
}

struct logread_filter *
ctl_filter_new(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return logread_filter_new(
	    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void
ctl_filter_opt(struct logread_filter *f, const char *kind, const char *value,
    const char *usage)
{
	char err[200];

	if (logread_filter_add(f, kind, value, err, sizeof(err)) == -1)
		ctl_usage_error(usage, "%s", err);
}

long
ctl_number(const char *opt, const char *s, long min, long max,
    const char *usage)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		ctl_usage_error(usage, "%s: expected %ld to %ld, got \"%.20s\"",
		    opt, min, max, s);
	return v;
}

int
ctl_read(char **paths, int npaths, const struct logread_filter *f,
    void (*fn)(json_t *, void *), void *arg, struct logread_stats *stp)
{
	struct logread_stats st;
	struct logread *lr;
	json_t *rec;
	char err[512];

	if (stp != NULL)
		memset(stp, 0, sizeof(*stp));
	lr = logread_open((const char *const *)paths, (size_t)npaths, err,
	    sizeof(err));
	if (lr == NULL) {
		log_warnx("%s", err);
		return 1;
	}
	while (logread_next(lr, &rec, NULL, NULL) == 1)
		if (logread_filter_match(f, rec))
			fn(rec, arg);
	logread_get_stats(lr, &st);
	logread_close(lr);
	if (stp != NULL)
		*stp = st;
	if (st.bad > 0)
		log_warnx("%lu line(s) skipped, %lu of them cut short at the "
			  "end of a file",
		    st.bad, st.torn);
	return st.errors > 0 ? 1 : 0;
}

/* utf8 - the code point at p (jansson's strings are valid UTF-8) */
static unsigned long
utf8(const unsigned char *p, const unsigned char *end, size_t *len)
{
	unsigned long cp;
	size_t n, i;

	if (*p < 0x80 || (*p & 0xc0) == 0x80) {
		*len = 1;
		return *p;
	}
	n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
	if ((size_t)(end - p) < n) {
		*len = 1;
		return *p;
	}
	cp = *p & (0x7f >> n);
	for (i = 1; i < n; i++)
		cp = cp << 6 | (p[i] & 0x3f);
	*len = n;
	return cp;
}

void
ctl_text_n(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p, *end;
	unsigned long cp;
	size_t len;

	p = (const unsigned char *)s;
	end = p + n;
	for (; p < end; p += len) {
		cp = utf8(p, end, &len);
		if (cp == '\\')
			buf_adds(b, "\\\\");
		else if (cp >= 0x20 && cp < 0x7f)
			buf_addc(b, (char)cp);
		else if (cp <= 0xff)
			buf_addf(b, "\\x%02lx", cp);
		else
			buf_addf(b, "\\u{%lx}", cp);
	}
}

void
ctl_text(struct buf *b, const json_t *v)
{
	if (json_is_string(v))
		ctl_text_n(b, json_string_value(v), json_string_length(v));
	else
		buf_addc(b, '-');
}

/* ---------------------------------------------------------------- */

enum col {
	C_TIME,
	C_QUEUE,
	C_CLIENT,
	C_SENDER,
	C_RCPTS,
	C_SPF,
	C_RULE,
	C_ACTION,
	C_REPLY,
	NCOLS
};

static const struct column {
	const char *title;
	size_t width;  /* the default, and the fixed columns' always */
	unsigned flex; /* share of the room left, when fitted */
} columns[NCOLS] = {
    {"TIME (UTC)", 19, 0},
    {"QUEUE ID", 12, 0},
    {"CLIENT", 15, 2},
    {"SENDER", 28, 5},
    {"RECIPIENTS", 28, 4},
    {"SPF", 9, 0},
    {"RULE", 12, 2},
    {"ACTION", 10, 0},
    {"REPLY", 10, 0},
};

struct table {
	size_t width[NCOLS];
	bool fit; /* cut cells to their width */
	struct buf cell, row;
};

/* table_init - column widths for a line of `total` columns (0: no limit) */
static void
table_init(struct table *t, size_t total)
{
	size_t i, fixed = 2 * (NCOLS - 1), shares = 0, room, used = 0;

	for (i = 0; i < NCOLS; i++) {
		t->width[i] = columns[i].width;
		if (columns[i].flex == 0)
			fixed += columns[i].width;
		shares += columns[i].flex;
	}
	t->fit = total > 0;
	buf_init(&t->cell);
	buf_init(&t->row);
	if (!t->fit)
		return;
	/* each shared column gets MIN_FLEX, then a share of what is left */
	for (i = 0; i < NCOLS; i++)
		if (columns[i].flex > 0)
			fixed += MIN_FLEX;
	room = total > fixed ? total - fixed : 0;
	for (i = 0; i < NCOLS; i++)
		if (columns[i].flex > 0) {
			t->width[i] =
			    MIN_FLEX + room * columns[i].flex / shares;
			used += t->width[i] - MIN_FLEX;
		}
	t->width[C_SENDER] += room - used; /* the rounding's leftovers */
}

/* table_put - the cell in t->cell as column i of the row */
static void
table_put(struct table *t, enum col i)
{
	size_t n = t->cell.len, w = t->width[i];

	if (t->fit && n > w) {
		buf_add(&t->row, t->cell.data, w - 1);
		buf_addc(&t->row, '~');
		n = w;
	} else
		buf_add(&t->row, t->cell.data, n);
	if (i + 1 < NCOLS)
		do
			buf_addc(&t->row, ' ');
		while (++n < w + 2);
	buf_reset(&t->cell);
}

/* table_end - print the row without trailing blanks */
static void
table_end(struct table *t)
{
	while (t->row.len > 0 && t->row.data[t->row.len - 1] == ' ')
		t->row.len--;
	buf_addc(&t->row, '\n');
	(void)fwrite(t->row.data, 1, t->row.len, stdout);
	buf_reset(&t->row);
}

static void
table_header(struct table *t)
{
	size_t i;

	for (i = 0; i < NCOLS; i++) {
		buf_adds(&t->cell, columns[i].title);
		table_put(t, (enum col)i);
	}
	table_end(t);
}

/* cell_time - "2026-12-02 03:04:05" from the log's ISO time */
static void
cell_time(struct buf *b, const json_t *v)
{
	const char *s = json_string_value(v);

	if (s != NULL && json_string_length(v) >= 19 && s[10] == 'T') {
		ctl_text_n(b, s, 10);
		buf_addc(b, ' ');
		ctl_text_n(b, s + 11, 8);
	} else
		ctl_text(b, v);
}

static void
table_row(struct table *t, const json_t *rec)
{
	const json_t *v, *r;
	const char *action, *would;
	size_t i;

	cell_time(&t->cell, json_object_get(rec, "time"));
	table_put(t, C_TIME);
	ctl_text(&t->cell, json_object_get(rec, "queue_id"));
	table_put(t, C_QUEUE);
	ctl_text(&t->cell, json_object_get(rec, "client_ip"));
	table_put(t, C_CLIENT);
	v = json_object_get(rec, "sender");
	if (json_is_string(v) && json_string_length(v) == 0)
		buf_adds(&t->cell, "<>");
	else
		ctl_text(&t->cell, v);
	table_put(t, C_SENDER);
	v = json_object_get(rec, "recipients");
	json_array_foreach(v, i, r)
	{
		if (i > 0)
			buf_addc(&t->cell, ',');
		ctl_text(&t->cell, r);
	}
	if (t->cell.len == 0)
		buf_addc(&t->cell, '-');
	table_put(t, C_RCPTS);
	v = json_object_get(rec, "spf");
	if (json_is_object(v))
		ctl_text(&t->cell, json_object_get(v, "result"));
	else
		buf_addc(&t->cell, '-');
	table_put(t, C_SPF);
	ctl_text(&t->cell, json_object_get(rec, "rule"));
	table_put(t, C_RULE);
	action = logread_str(rec, "action");
	would = logread_str(rec, "would");
	if (action != NULL && would != NULL && strcmp(action, would) != 0) {
		buf_addc(&t->cell, '(');
		ctl_text(&t->cell, json_object_get(rec, "would"));
		buf_addc(&t->cell, ')');
	} else
		ctl_text(&t->cell, json_object_get(rec, "action"));
	table_put(t, C_ACTION);
	v = json_object_get(rec, "reply");
	if (json_is_object(v) && json_is_integer(json_object_get(v, "code"))) {
		buf_addf(&t->cell, "%lld",
		    (long long)json_integer_value(json_object_get(v, "code")));
		if (json_is_string(json_object_get(v, "xcode"))) {
			buf_addc(&t->cell, ' ');
			ctl_text(&t->cell, json_object_get(v, "xcode"));
		}
	} else
		buf_addc(&t->cell, '-');
	table_put(t, C_REPLY);
	table_end(t);
}

static void
print_row(json_t *rec, void *arg)
{
	table_row(arg, rec);
}

/*
 * print_json - the record on one line. jansson escapes every control
 * character but DEL; a raw 0x7f can only be inside a string, so it is
 * written as \u007f too and the line is pure printable ASCII.
 */
static void
print_json(json_t *rec, void *arg)
{
	char *s, *p, *q;

	(void)arg;
	if ((s = json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII)) == NULL)
		return; /* jansson could not allocate */
	for (p = s; (q = strchr(p, 0x7f)) != NULL; p = q + 1) {
		(void)fwrite(p, 1, (size_t)(q - p), stdout);
		(void)fputs("\\u007f", stdout);
	}
	(void)fputs(p, stdout);
	(void)putchar('\n');
	free(s);
}

/* print_table - the records as a table of `width` columns (0: any) */
static int
print_table(char **paths, int npaths, const struct logread_filter *f,
    size_t width, bool header)
{
	struct table t;
	int rc;

	table_init(&t, width);
	if (header)
		table_header(&t);
	rc = ctl_read(paths, npaths, f, print_row, &t, NULL);
	buf_free(&t.cell);
	buf_free(&t.row);
	return rc;
}

/* terminal_width - stdout's columns, or 0 when it is not a terminal */
static size_t
terminal_width(void)
{
	struct winsize ws;

	if (!isatty(STDOUT_FILENO) ||
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == -1 || ws.ws_col == 0)
		return 0;
	return ws.ws_col;
}

int
ctl_log_main(int argc, char **argv)
{
	static const struct option own[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"width", required_argument, NULL, 'w'},
	    {"no-header", no_argument, NULL, 'H'},
	    {"help", no_argument, NULL, 'h'},
	};
	struct option *longopts =
	    ctl_longopts(own, sizeof(own) / sizeof(own[0]));
	struct logread_filter *f = ctl_filter_new();
	bool json = false, header = true;
	size_t width = terminal_width();
	int ch, idx, rc;

	log_init("spfguardctl", true, false);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		switch (ch) {
		case CTL_OPT_FILTER:
			ctl_filter_opt(f, longopts[idx].name, optarg,
			    log_usage);
			break;
		case 'j':
			json = true;
			break;
		case 'w':
			width = (size_t)ctl_number("--width", optarg, 0, 10000,
			    log_usage);
			break;
		case 'H':
			header = false;
			break;
		case 'h':
			(void)fputs(log_usage, stdout);
			exit(0);
		default:
			(void)fputs(log_usage, stderr);
			exit(EXIT_USAGE);
		}
	}
	free(longopts);
	if (json)
		rc = ctl_read(argv + optind, argc - optind, f, print_json, NULL,
		    NULL);
	else
		rc =
		    print_table(argv + optind, argc - optind, f, width, header);
	logread_filter_free(f);
	if (fflush(stdout) != 0) {
		log_warn("standard output");
		rc = 1;
	}
	return rc;
}
