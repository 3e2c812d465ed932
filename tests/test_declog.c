/*
 * test_declog.c - the decision log: JSON lines that hostile facts cannot
 * break, whole-line appends from several threads, reopen, and a full disk
 * (/dev/full) that is counted and never blocks.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "declog.h"
#include "tap.h"

#define THREADS	   4
#define PER_THREAD 500

static struct declog *shared;

static void *
writer(void *arg)
{
	char line[300];
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		(void)snprintf(line, sizeof(line),
		    "{\"thread\":%ld,\"i\":%d,"
		    "\"pad\":\"%0200d\"}",
		    (long)(size_t)arg, i, 0);
		declog_write(shared, line, strlen(line));
	}
	return NULL;
}

/* count_lines - lines in a file, and whether each is one whole object */
static int
count_lines(const char *path, bool *whole)
{
	FILE *fp = fopen(path, "r");
	char buf[8192];
	int n = 0;

	*whole = true;
	if (fp == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), fp) != NULL) {
		size_t len = strlen(buf);

		n++;
		if (len < 3 || buf[0] != '{' || buf[len - 1] != '\n' ||
		    buf[len - 2] != '}')
			*whole = false;
	}
	(void)fclose(fp);
	return n;
}

int
main(void)
{
	struct decision d;
	struct policy_verdict v;
	struct policy_facts f;
	struct spf_response r;
	struct declog_stats st;
	struct buf b;
	pthread_t th[THREADS];
	char dir[] = "/tmp/spfguard-declog.XXXXXX", path[300], moved[300];
	char err[256];
	const char *rcpts[] = {"a@x.example", "b\"@x.example"};
	bool whole;
	long i;

	/* format: every hostile byte escaped, one line */
	memset(&d, 0, sizeof(d));
	memset(&v, 0, sizeof(v));
	memset(&f, 0, sizeof(f));
	memset(&r, 0, sizeof(r));
	r.result = SPF_FAIL;
	r.domain = (char *)"x.example";
	r.mechanism = (char *)"-all";
	f.have_spf = true;
	f.spf = SPF_FAIL;
	v.action = v.would = ACT_REJECT;
	v.code = 550;
	(void)strcpy(v.xcode, "5.7.23");
	v.text = (char *)"SPF fail";
	d.client_ip = "192.0.2.1";
	d.helo = "evil\r\n{\"forged\":true}\x01\xff";
	d.sender = "user\0hidden";
	d.rcpts = rcpts;
	d.nrcpts = 2;
	d.spf_mfrom = &r;
	d.facts = &f;
	d.verdict = &v;
	d.mode = "enforce";
	buf_init(&b);
	declog_format(&d, &b);
	TAP_OK(strpbrk(buf_str(&b), "\r\n\x01") == NULL &&
		strstr(buf_str(&b),
		    "\"helo\":\"evil\\u000d\\u000a{\\\"forged\\\""
		    ":true}\\u0001\\u00ff\"") != NULL &&
		strstr(buf_str(&b),
		    "\"recipients\":[\"a@x.example\",\"b\\\"@x."
		    "example\"]") != NULL &&
		strstr(buf_str(&b),
		    "\"reply\":{\"code\":550,\"xcode\":\"5.7.23\"") != NULL,
	    "hostile facts stay inside their JSON strings");
	buf_reset(&b);
	declog_format_syslog(&d, &b);
	TAP_OK(strpbrk(buf_str(&b), "\r\n\x01") == NULL &&
		strstr(buf_str(&b), "action=reject") != NULL,
	    "syslog text: %s", buf_str(&b));
	buf_free(&b);

	/* concurrent whole-line appends */
	if (mkdtemp(dir) == NULL) {
		(void)printf("Bail out! mkdtemp\n");
		return 1;
	}
	(void)snprintf(path, sizeof(path), "%s/decisions.log", dir);
	(void)snprintf(moved, sizeof(moved), "%s/decisions.log.1", dir);
	shared = declog_open(path, err, sizeof(err));
	TAP_OK(shared != NULL, "open %s", path);
	if (shared == NULL)
		TAP_DONE();
	for (i = 0; i < THREADS; i++)
		(void)pthread_create(&th[i], NULL, writer, (void *)(size_t)i);
	for (i = 0; i < THREADS; i++)
		(void)pthread_join(th[i], NULL);
	TAP_OK(count_lines(path, &whole) == THREADS * PER_THREAD && whole,
	    "%d threads x %d lines, every line whole", THREADS, PER_THREAD);

	/* reopen after rotation */
	(void)rename(path, moved);
	writer((void *)(size_t)99);
	TAP_OK(access(path, F_OK) != 0,
	    "before reopen, writes go to the "
	    "rotated file");
	TAP_OK(declog_reopen(shared) == 0, "reopen");
	writer((void *)(size_t)100);
	TAP_OK(count_lines(path, &whole) == PER_THREAD && whole &&
		count_lines(moved, &whole) == (THREADS + 1) * PER_THREAD,
	    "after reopen, lines go to the new file");
	declog_get_stats(shared, &st);
	TAP_OK(st.written == (THREADS + 2) * PER_THREAD && st.failures == 0,
	    "counted %lu written", st.written);
	declog_close(shared);
	(void)unlink(path);
	(void)unlink(moved);
	(void)rmdir(dir);

	/* a full disk: counted, not blocking, not fatal */
	shared = declog_open("/dev/full", err, sizeof(err));
	TAP_OK(shared != NULL, "open /dev/full");
	if (shared != NULL) {
		writer((void *)(size_t)7);
		declog_get_stats(shared, &st);
		TAP_OK(st.written == 0 && st.failures == PER_THREAD,
		    "%lu failed writes counted", st.failures);
		declog_close(shared);
	}
	TAP_OK(declog_open("/nonexistent/dir/x.log", err, sizeof(err)) ==
		    NULL &&
		strstr(err, "/nonexistent/dir/x.log") != NULL,
	    "an unopenable path is an error: %s", err);
	TAP_DONE();
}
