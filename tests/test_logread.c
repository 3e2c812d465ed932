/*
 * test_logread.c - reading the decision log back (filter/logread.c):
 * plain, gzip and stdin input, a torn last line and a bad line in the
 * middle (reported as file:line on stderr, skipped), a truncated .gz, a
 * missing file; the time parser; the filters, table-driven over nine
 * records, with a fixed "now".
 */
#include "autoconf.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "logread.h"
#include "tap.h"

#define DAY   1796169600LL			/* 2026-12-02T00:00:00Z */
#define NOW   (DAY + 4 * 3600 + 30 * 60) * 1000 /* 04:30 */
#define NRECS 9

static char dir[] = "/tmp/test_logread.XXXXXX";

/* the records the filters run over; one JSON line each, as declog writes */
static const char *const recs[NRECS] = {
    "{\"time\":\"2026-12-02T03:00:00.000Z\",\"queue_id\":\"A1\","
    "\"client_ip\":\"192.0.2.1\",\"sender\":\"a@pass.example\","
    "\"spf\":{\"result\":\"pass\",\"identity\":\"mailfrom\"},"
    "\"rule\":\"default\",\"action\":\"accept\",\"would\":\"accept\","
    "\"mode\":\"enforce\"}",
    "{\"time\":\"2026-12-02T03:10:00.500Z\",\"queue_id\":null,"
    "\"client_ip\":\"203.0.113.5\",\"sender\":\"b@fail.example\","
    "\"spf\":{\"result\":\"fail\",\"identity\":\"mailfrom\"},"
    "\"rule\":\"spf-fail\",\"action\":\"reject\",\"would\":\"reject\","
    "\"mode\":\"enforce\"}",
    "{\"time\":\"2026-12-02T03:20:00.000Z\",\"queue_id\":null,"
    "\"client_ip\":\"2001:db8:1::5\",\"sender\":\"c@sub.fail.example\","
    "\"spf\":{\"result\":\"fail\",\"identity\":\"mailfrom\"},"
    "\"rule\":\"spf-fail\",\"action\":\"reject\",\"would\":\"reject\","
    "\"mode\":\"enforce\"}",
    "{\"time\":\"2026-12-02T03:30:00.000Z\",\"queue_id\":\"B2\","
    "\"client_ip\":\"198.51.100.7\",\"sender\":\"d@trusted.example\","
    "\"spf\":null,\"rule\":\"trusted\",\"action\":\"accept\","
    "\"would\":\"accept\",\"mode\":\"enforce\"}",
    "{\"time\":\"2026-12-02T03:40:00.000Z\",\"queue_id\":\"C3\","
    "\"client_ip\":\"192.0.2.77\",\"sender\":\"\","
    "\"spf\":{\"result\":\"none\",\"identity\":\"helo\"},"
    "\"rule\":\"default\",\"action\":\"accept\",\"would\":\"accept\","
    "\"mode\":\"enforce\"}",
    "{\"time\":\"2026-12-02T03:50:00.000Z\",\"queue_id\":null,"
    "\"client_ip\":\"203.0.113.9\",\"sender\":\"e@temp.example\","
    "\"spf\":{\"result\":\"temperror\",\"identity\":\"mailfrom\"},"
    "\"rule\":\"spf-temp\",\"action\":\"tempfail\",\"would\":\"tempfail\","
    "\"mode\":\"enforce\"}",
    "{\"time\":\"2026-12-02T04:00:00.000Z\",\"queue_id\":\"D4\","
    "\"client_ip\":\"::ffff:192.0.2.5\","
    "\"sender\":\"f@Deep.Sub.Pass.Example.\","
    "\"spf\":{\"result\":\"softfail\",\"identity\":\"mailfrom\"},"
    "\"rule\":\"spf-soft\",\"action\":\"tag\",\"would\":\"tag\","
    "\"mode\":\"enforce\"}",
    "{\"time\":\"2026-12-02T04:10:00.000Z\",\"queue_id\":\"E5\","
    "\"client_ip\":\"192.0.2.9\",\"sender\":\"g@fail.example\","
    "\"spf\":{\"result\":\"fail\",\"identity\":\"mailfrom\"},"
    "\"rule\":\"watch-fail\",\"action\":\"accept\",\"would\":\"reject\","
    "\"mode\":\"monitor\"}",
    "{\"time\":\"2026-12-02T04:20:00.000Z\",\"queue_id\":null,"
    "\"client_ip\":\"2001:db8:2::1\",\"sender\":\"h\\u0001@pass.example\","
    "\"spf\":{\"result\":\"pass\",\"identity\":\"mailfrom\"},"
    "\"rule\":null,\"action\":\"accept\",\"would\":\"accept\","
    "\"mode\":\"enforce\"}",
};

/* path - a file of the test directory (a ring of 8 buffers) */
static char *
path(const char *name)
{
	static char p[8][256];
	static int i;

	i = (i + 1) % 8;
	(void)snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static const char *
err_path(void)
{
	static char p[256];

	(void)snprintf(p, sizeof(p), "%s/stderr", dir);
	return p;
}

static void
write_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
		perror(p);
		exit(1);
	}
}

static void
write_gz(const char *p, const char *text)
{
	gzFile g = gzopen(p, "wb");

	if (g == NULL || gzputs(g, text) < 0 || gzclose(g) != Z_OK) {
		(void)fprintf(stderr, "%s: gzip write failed\n", p);
		exit(1);
	}
}

/* all_lines - the records, one per line, from first to last-1 */
static char *
all_lines(int first, int last)
{
	size_t n = 1;
	char *s;
	int i;

	for (i = first; i < last; i++)
		n += strlen(recs[i]) + 1;
	s = calloc(1, n);
	for (i = first; i < last; i++) {
		(void)strcat(s, recs[i]);
		(void)strcat(s, "\n");
	}
	return s;
}

/* stderr captured into a file between capture() and captured() */
static int saved_err = -1;

static void
capture(void)
{
	int fd = open(err_path(), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	(void)fflush(stderr);
	saved_err = dup(2);
	(void)dup2(fd, 2);
	(void)close(fd);
}

static char *
captured(void)
{
	static char text[4096];
	FILE *f;
	size_t n;

	(void)fflush(stderr);
	(void)dup2(saved_err, 2);
	(void)close(saved_err);
	f = fopen(err_path(), "r");
	n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
	text[n] = '\0';
	if (f != NULL)
		(void)fclose(f);
	return text;
}

struct readout {
	int n;		  /* records */
	char senders[64]; /* first letters of their senders */
	unsigned long lastline;
	struct logread_stats st;
	char *err; /* what was reported */
};

/* read_all - read paths, noting what came back */
static int
read_all(const char *const *paths, size_t n, struct readout *o)
{
	struct logread *lr;
	const char *file, *s;
	json_t *rec;
	char err[300];

	memset(o, 0, sizeof(*o));
	capture();
	lr = logread_open(paths, n, err, sizeof(err));
	if (lr == NULL) {
		o->err = captured();
		(void)snprintf(o->err, 300, "%s", err);
		return -1;
	}
	while (logread_next(lr, &rec, &file, &o->lastline) == 1) {
		s = logread_str(rec, "sender");
		o->senders[o->n++ % 63] = s != NULL && *s != '\0' ? *s : '_';
	}
	logread_get_stats(lr, &o->st);
	logread_close(lr);
	o->err = captured();
	return 0;
}

/* test_reading - plain, gzip, both in a row, stdin */
static void
test_reading(void)
{
	struct readout o;
	const char *p[2];
	char *text;
	int fd, saved, rc;

	text = all_lines(0, NRECS);
	write_file(path("plain.log"), text);
	write_gz(path("old.log.1.gz"), text);

	p[0] = path("plain.log");
	rc = read_all(p, 1, &o);
	TAP_OK(rc == 0 && o.n == NRECS && strcmp(o.senders, "abcd_efgh") == 0 &&
		o.st.bad == 0 && o.lastline == NRECS && o.err[0] == '\0',
	    "plain file: %d records in order (%s), last line %lu", o.n,
	    o.senders, o.lastline);
	p[0] = path("old.log.1.gz");
	rc = read_all(p, 1, &o);
	TAP_OK(rc == 0 && o.n == NRECS && strcmp(o.senders, "abcd_efgh") == 0 &&
		o.st.errors == 0,
	    "gzipped file: %d records (%s)", o.n, o.senders);
	p[1] = path("plain.log");
	rc = read_all(p, 2, &o);
	TAP_OK(rc == 0 && o.n == 2 * NRECS && o.st.records == 2 * NRECS,
	    "rotated .gz then the live file: %d records", o.n);

	/* stdin: no path, and "-" */
	saved = dup(0);
	fd = open(path("old.log.1.gz"), O_RDONLY);
	(void)dup2(fd, 0);
	(void)close(fd);
	rc = read_all(NULL, 0, &o);
	TAP_OK(rc == 0 && o.n == NRECS, "stdin (no path), gzipped: %d records",
	    o.n);
	fd = open(path("plain.log"), O_RDONLY);
	(void)dup2(fd, 0);
	(void)close(fd);
	p[0] = "-";
	rc = read_all(p, 1, &o);
	TAP_OK(rc == 0 && o.n == NRECS, "stdin (\"-\"), plain: %d records",
	    o.n);
	(void)dup2(saved, 0);
	(void)close(saved);
	free(text);
}

/* test_bad_lines - a torn last line, bad lines in the middle */
static void
test_bad_lines(void)
{
	struct readout o;
	const char *p[1];
	char *text = all_lines(0, NRECS), *torn, *bad;
	int rc;

	/* a torn last line: the crash case */
	torn = calloc(1, strlen(text) + 64);
	(void)strcpy(torn, text);
	(void)strcat(torn, "{\"time\":\"2026-12-02T05:00:00.000Z\",\"sen");
	write_file(path("torn.log"), torn);
	p[0] = path("torn.log");
	rc = read_all(p, 1, &o);
	TAP_OK(rc == 0 && o.n == NRECS && o.st.bad == 1 && o.st.torn == 1,
	    "torn last line: %d records, %lu bad, %lu torn", o.n, o.st.bad,
	    o.st.torn);
	TAP_OK(strstr(o.err, path("torn.log")) != NULL &&
		strstr(o.err, ":10: last line cut short") != NULL,
	    "... reported as file:10: %s", o.err);

	/* a bad line in the middle, an empty one and a JSON array */
	bad = calloc(1, strlen(text) + 64);
	(void)strcat(strcat(bad, recs[0]), "\n");
	(void)strcat(strcat(bad, recs[1]), "\n");
	(void)strcat(bad, "garbage {\x01\x1b[31m\n\n[1,2]\n");
	(void)strcat(strcat(bad, recs[2]), "\n");
	write_file(path("bad.log"), bad);
	p[0] = path("bad.log");
	rc = read_all(p, 1, &o);
	TAP_OK(rc == 0 && o.n == 3 && strcmp(o.senders, "abc") == 0 &&
		o.st.bad == 3 && o.st.torn == 0 && o.lastline == 6,
	    "bad lines in the middle skipped: %d records (%s), %lu bad, "
	    "last record on line %lu",
	    o.n, o.senders, o.st.bad, o.lastline);
	TAP_OK(strstr(o.err, "bad.log:3: ") != NULL &&
		strstr(o.err, "bad.log:4: ") != NULL &&
		strstr(o.err, "bad.log:5: not a JSON object") != NULL &&
		strchr(o.err, '\x1b') == NULL,
	    "... each reported as file:line, no raw escape byte: %s", o.err);

	free(text);
	free(torn);
	free(bad);
}

/* test_open_errors - a .gz cut short (rotation compressing), a missing
 * file */
static void
test_open_errors(void)
{
	struct readout o;
	const char *p[2];
	int fd, rc;

	fd = open(path("old.log.1.gz"), O_RDONLY);
	{
		char gz[4096];
		ssize_t n = read(fd, gz, sizeof(gz));
		int out = open(path("cut.log.gz"), O_WRONLY | O_CREAT, 0600);

		(void)close(fd);
		if (n > 20)
			(void)!write(out, gz, (size_t)n - 20);
		(void)close(out);
	}
	p[0] = path("cut.log.gz");
	rc = read_all(p, 1, &o);
	TAP_OK(rc == 0 && o.st.errors == 1 && o.n < NRECS &&
		strstr(o.err, "cut short") != NULL,
	    "truncated .gz: %d records, %lu error(s): %s", o.n, o.st.errors,
	    o.err);
	p[0] = path("plain.log");
	p[1] = path("missing.log");
	rc = read_all(p, 2, &o);
	TAP_OK(rc == -1 && strstr(o.err, "missing.log") &&
		strstr(o.err, "No such file"),
	    "a missing file fails the open: %s", o.err);
}

static void
test_times(void)
{
	static const struct {
		const char *in;
		int rc;
		long long want; /* ms since the epoch */
	} rows[] = {
	    {"2026-12-02T03:04:05.123Z", 0, 1796180645123LL},
	    {"2026-12-02T03:04:05Z", 0, 1796180645000LL},
	    {"2026-12-02T03:04:05.1Z", 0, 1796180645100LL},
	    {"2026-12-02T03:04:05.123456Z", 0, 1796180645123LL},
	    {"2026-12-02T03:04:05", 0, 1796180645000LL},
	    {"2026-12-02 03:04", 0, 1796180640000LL},
	    {"2026-12-02", 0, DAY * 1000},
	    {"2026-12-02T04:04:05+01:00", 0, 1796180645000LL},
	    {"2026-12-01T21:34:05-0530", 0, 1796180645000LL},
	    {"now", 0, NOW},
	    {"-90s", 0, NOW - 90000},
	    {"-30m", 0, NOW - 1800000},
	    {"-1h", 0, NOW - 3600000},
	    {"-2d", 0, NOW - 2 * 86400000LL},
	    {"-1w", 0, NOW - 7 * 86400000LL},
	    {"2026-13-01", -1, 0},
	    {"2026-02-30", -1, 0},
	    {"2026-12-02T24:00", -1, 0},
	    {"2026-12-02T03:04:05.Z", -1, 0},
	    {"2026-12-02Tx", -1, 0},
	    {"2026-12-02T03:04:05Q", -1, 0},
	    {"yesterday", -1, 0},
	    {"-1x", -1, 0},
	    {"-h", -1, 0},
	    {"-1hh", -1, 0},
	    {"1h", -1, 0},
	    {"", -1, 0},
	};
	long long ms;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ms = 0;
		rc = logread_parse_time(rows[i].in, NOW, &ms);
		TAP_OK(rc == rows[i].rc && (rc != 0 || ms == rows[i].want),
		    "time \"%s\": rc %d ms %lld (want %d %lld)", rows[i].in, rc,
		    ms, rows[i].rc, rows[i].want);
	}
}

/* the filter rows: conditions (kind=value; ...) and the records matched */
static const struct {
	const char *label;
	const char *conds[4][2];
	const char *want; /* one character per record: x matched, . not */
} filters[] = {
    {"no condition", {{NULL}}, "xxxxxxxxx"},
    {"since (inclusive)", {{"since", "2026-12-02T03:30:00Z"}}, "...xxxxxx"},
    {"until (exclusive)", {{"until", "2026-12-02T03:30"}}, "xxx......"},
    {"since and until",
	{{"since", "2026-12-02T03:10"}, {"until", "2026-12-02T03:40"}},
	".xxx....."},
    {"since to the millisecond", {{"since", "2026-12-02T03:10:00.500Z"}},
	".xxxxxxxx"},
    {"... one later", {{"since", "2026-12-02T03:10:00.501Z"}}, "..xxxxxxx"},
    {"since with an offset", {{"since", "2026-12-02T04:10:00+01:00"}},
	".xxxxxxxx"},
    {"since a date", {{"since", "2026-12-02"}}, "xxxxxxxxx"},
    {"until a date", {{"until", "2026-12-02"}}, "........."},
    {"since -1h (now 04:30)", {{"since", "-1h"}}, "...xxxxxx"},
    {"since -30m", {{"since", "-30m"}}, "......xxx"},
    {"since -90s until now", {{"since", "-90s"}, {"until", "now"}},
	"........."},
    {"since -2d", {{"since", "-2d"}}, "xxxxxxxxx"},
    {"until -1w", {{"until", "-1w"}}, "........."},
    {"since given twice: the last", {{"since", "-1w"}, {"since", "-30m"}},
	"......xxx"},
    {"action reject (and monitor's would)", {{"action", "reject"}},
	".xx....x."},
    {"action tempfail", {{"action", "tempfail"}}, ".....x..."},
    {"action accept", {{"action", "ACCEPT"}}, "x..xx..xx"},
    {"action reject or tempfail",
	{{"action", "reject"}, {"action", "tempfail"}}, ".xx..x.x."},
    {"rule spf-fail", {{"rule", "spf-fail"}}, ".xx......"},
    {"rule - (none)", {{"rule", "-"}}, "........x"},
    {"rule spf-fail or trusted", {{"rule", "spf-fail"}, {"rule", "trusted"}},
	".xxx....."},
    {"result fail", {{"result", "fail"}}, ".xx....x."},
    {"result unchecked", {{"result", "unchecked"}}, "...x....."},
    {"result none", {{"result", "none"}}, "....x...."},
    {"result softfail or temperror",
	{{"result", "softfail"}, {"result", "TempError"}}, ".....xx.."},
    {"domain fail.example", {{"domain", "fail.example"}}, ".x.....x."},
    {"domain *.fail.example (subdomains only)", {{"domain", "*.fail.example"}},
	"..x......"},
    {"domain *.pass.example (case, final dot)", {{"domain", "*.pass.example"}},
	"......x.."},
    {"domain pass.example", {{"domain", "pass.example"}}, "x.......x"},
    {"domain *.example (not the null sender)", {{"domain", "*.example"}},
	"xxxx.xxxx"},
    {"domain fail.example or *.fail.example",
	{{"domain", "fail.example"}, {"domain", "*.fail.example"}},
	".xx....x."},
    {"domain glob t*.example", {{"domain", "t*.example"}}, "...x.x..."},
    {"ip 192.0.2.0/24 (and a mapped address)", {{"ip", "192.0.2.0/24"}},
	"x...x.xx."},
    {"ip 203.0.113.5", {{"ip", "203.0.113.5"}}, ".x......."},
    {"ip 2001:db8::/32", {{"ip", "2001:db8::/32"}}, "..x.....x"},
    {"ip 2001:db8:1::/48", {{"ip", "2001:db8:1::/48"}}, "..x......"},
    {"ip v4 or v6", {{"ip", "192.0.2.0/24"}, {"ip", "2001:db8::/32"}},
	"x.x.x.xxx"},
    {"queue-id A1", {{"queue-id", "A1"}}, "x........"},
    {"queue-id A1 or E5", {{"queue-id", "A1"}, {"queue-id", "E5"}},
	"x......x."},
    {"AND: action reject, ip 203.0.113.0/24",
	{{"action", "reject"}, {"ip", "203.0.113.0/24"}}, ".x......."},
    {"AND: action accept, result pass",
	{{"action", "accept"}, {"result", "pass"}}, "x.......x"},
    {"AND: domain, action, since",
	{{"domain", "fail.example"}, {"action", "reject"},
	    {"since", "2026-12-02T04:00"}},
	".......x."},
    {"AND: (reject or tempfail), not v6",
	{{"action", "reject"}, {"action", "tempfail"}, {"ip", "0.0.0.0/0"}},
	".x...x.x."},
};

static void
test_filters(void)
{
	json_t *r[NRECS];
	struct logread_filter *f;
	char got[NRECS + 1], err[200];
	size_t i, k;
	int bad;

	for (i = 0; i < NRECS; i++)
		r[i] = json_loads(recs[i], JSON_ALLOW_NUL, NULL);
	for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		f = logread_filter_new(NOW);
		bad = 0;
		for (k = 0; k < 4 && filters[i].conds[k][0] != NULL; k++)
			bad |= logread_filter_add(f, filters[i].conds[k][0],
			    filters[i].conds[k][1], err, sizeof(err));
		for (k = 0; k < NRECS; k++)
			got[k] = r[k] != NULL && logread_filter_match(f, r[k])
			    ? 'x'
			    : '.';
		got[NRECS] = '\0';
		TAP_OK(bad == 0 && strcmp(got, filters[i].want) == 0,
		    "filter %s: %s (want %s)", filters[i].label, got,
		    filters[i].want);
		logread_filter_free(f);
	}
	for (i = 0; i < NRECS; i++)
		json_decref(r[i]);
}

static void
test_filter_errors(void)
{
	static const char *const rows[][2] = {
	    {"colour", "red"},
	    {"action", "bounce"},
	    {"result", "maybe"},
	    {"ip", "192.0.2.0/33"},
	    {"ip", "mail.example"},
	    {"since", "last tuesday"},
	    {"until", "-5y"},
	    {"rule", ""},
	};
	struct logread_filter *f = logread_filter_new(NOW);
	char err[200];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		err[0] = '\0';
		rc = logread_filter_add(f, rows[i][0], rows[i][1], err,
		    sizeof(err));
		TAP_OK(rc == -1 && err[0] != '\0',
		    "filter %s=\"%s\" refused: %s", rows[i][0], rows[i][1],
		    err);
	}
	logread_filter_free(f);
}

static void
test_helpers(void)
{
	json_t *r = json_loads(recs[6], 0, NULL),
	       *n = json_loads(recs[4], 0, NULL);
	struct buf b;
	long long ms = 0;
	int rc;

	buf_init(&b);
	rc = logread_sender_domain(r, &b);
	TAP_OK(rc == 0 && strcmp(buf_str(&b), "deep.sub.pass.example") == 0,
	    "sender domain lowercased, final dot dropped: %s", buf_str(&b));
	buf_reset(&b);
	rc = logread_sender_domain(n, &b);
	TAP_OK(rc == -1 && b.len == 0, "the null sender has no domain");
	TAP_OK(logread_str(r, "spf.result") != NULL &&
		strcmp(logread_str(r, "spf.result"), "softfail") == 0 &&
		logread_str(r, "spf.nothing") == NULL &&
		logread_str(r, "queue_id.x") == NULL,
	    "logread_str follows dotted paths");
	rc = logread_time(r, &ms);
	TAP_OK(rc == 0 && ms == (DAY + 4 * 3600) * 1000, "logread_time: %lld",
	    ms);
	buf_free(&b);
	json_decref(r);
	json_decref(n);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_reading();
	test_bad_lines();
	test_open_errors();
	test_times();
	test_filters();
	test_filter_errors();
	test_helpers();
	(void)unlink(path("plain.log"));
	(void)unlink(path("old.log.1.gz"));
	(void)unlink(path("torn.log"));
	(void)unlink(path("bad.log"));
	(void)unlink(path("cut.log.gz"));
	(void)unlink(err_path());
	(void)rmdir(dir);
	TAP_DONE();
}
