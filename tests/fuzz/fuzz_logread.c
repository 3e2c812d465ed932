/*
 * fuzz_logread.c - the decision log read back (logread.h): lines parsed
 * by jansson from a plain or gzip file, the filters, the time parser.
 *
 * Input: filter lines "KIND=VALUE" up to the first empty line (at most
 * 16), then the log file's bytes (plain, or gzip if they start so). Each
 * value also goes through logread_parse_time(); each record through the
 * field accessors and the filter.
 */
#include "autoconf.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "logread.h"

#define NOW_MS	    1767225600000LL /* 2026-01-01T00:00:00Z */
#define MAX_FILTERS 16

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void
filters(struct logread_filter *flt, const char *spec, size_t len)
{
	struct fuzz_fields f;
	char err[256];
	long long ms;
	size_t i;

	fuzz_split((const uint8_t *)spec, len, '\n', MAX_FILTERS, &f);
	for (i = 0; i < f.n; i++) {
		char *eq = strchr(f.v[i], '=');

		(void)logread_parse_time(f.v[i], NOW_MS, &ms);
		if (eq == NULL)
			continue;
		*eq = '\0';
		(void)logread_parse_time(eq + 1, NOW_MS, &ms);
		(void)logread_filter_add(flt, f.v[i], eq + 1, err, sizeof(err));
	}
	fuzz_fields_free(&f);
}

static void
records(const char *path, struct logread_filter *flt)
{
	static const char *const fields[] = {"time", "queue_id", "client.ip",
	    "sender", "spf.result", "rule", "action", "a.b.c.d", "", "."};
	const char *paths[1] = {path}, *file;
	struct logread_stats st;
	struct logread *lr;
	unsigned long line;
	char err[256];
	json_t *rec;
	long long ms;
	struct buf dom;
	size_t i;

	if ((lr = logread_open(paths, 1, err, sizeof(err))) == NULL)
		fuzz_fail("cannot open the log", err);
	buf_init(&dom);
	while (logread_next(lr, &rec, &file, &line) == 1) {
		if (!json_is_object(rec))
			fuzz_fail("a record that is not an object", file);
		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			(void)logread_str(rec, fields[i]);
		(void)logread_time(rec, &ms);
		buf_reset(&dom);
		(void)logread_sender_domain(rec, &dom);
		(void)logread_filter_match(flt, rec);
	}
	logread_get_stats(lr, &st);
	buf_free(&dom);
	logread_close(lr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct logread_filter *flt;
	const uint8_t *log = data;
	char path[300];
	size_t i;

	flt = logread_filter_new(NOW_MS);
	for (i = 0; i + 1 < size; i++)
		if (data[i] == '\n' && data[i + 1] == '\n') {
			filters(flt, (const char *)data, i);
			log = data + i + 2;
			break;
		}
	fuzz_write_file("decisions.log", log, size - (size_t)(log - data), path,
	    sizeof(path));
	records(path, flt);
	logread_filter_free(flt);
	return 0;
}
