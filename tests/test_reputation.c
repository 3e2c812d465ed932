/*
 * test_reputation.c - history classes, greylisting and rate limits
 * (reputation.c) over an LMDB store in a temporary directory, with the
 * time given by the test so that windows and delays need no sleeping.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reputation.h"
#include "store.h"
#include "tap.h"

static const struct {
	const char *ip;
	unsigned v4, v6;
	const char *want; /* NULL: not an address */
} nets[] = {
    {"192.0.2.77", 24, 64, "192.0.2.0/24"},
    {"192.0.2.77", 32, 64, "192.0.2.77/32"},
    {"198.51.100.200", 20, 64, "198.51.96.0/20"},
    {"::ffff:192.0.2.77", 24, 64, "192.0.2.0/24"},
    {"2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
    {"2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"},
    {"2001:db8:1:2:3:4:5:6", 24, 56, "2001:db8:1::/56"},
    {"2001:db8:1:2ff:3:4:5:6", 24, 56, "2001:db8:1:200::/56"},
    {"mail.example", 24, 64, NULL},
    {"", 24, 64, NULL},
};

static struct store *
open_lmdb(const char *dir)
{
	struct store_opts o;
	char err[256];
	struct store *st;

	memset(&o, 0, sizeof(o));
	o.backend = STORE_LMDB;
	o.path = dir;
	if ((st = store_open(&o, err, sizeof(err))) == NULL)
		(void)printf("Bail out! %s\n", err);
	return st;
}

static void
test_networks(void)
{
	char out[64];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
		rc = rep_network(nets[i].ip, nets[i].v4, nets[i].v6, out,
		    sizeof(out));
		if (nets[i].want == NULL)
			TAP_OK(rc == -1, "network of \"%s\": not an address",
			    nets[i].ip);
		else
			TAP_OK(rc == 0 && strcmp(out, nets[i].want) == 0,
			    "network of %s /%u /%u: %s", nets[i].ip, nets[i].v4,
			    nets[i].v6, rc == 0 ? out : "(error)");
	}
}

static void
test_history(struct store *st)
{
	struct rep_history_opts o = {2, 3600, 2, 50, 86400};
	struct rep_history h;
	char err[256];
	time_t t0 = 1700000000;
	int rc, i;

	rc = rep_history_read(st, &o, "new.example", NULL, t0, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && !h.found && h.class == HISTORY_NEW,
	    "no record: class new");

	/* forged mail makes nothing */
	for (i = 0; i < 3; i++)
		(void)rep_history_record(st, &o, "new.example", "192.0.2.0/24",
		    SPF_FAIL, true, false, t0, err, sizeof(err));
	(void)rep_history_record(st, &o, "new.example", "192.0.2.0/24",
	    SPF_SOFTFAIL, true, false, t0, err, sizeof(err));
	rc = rep_history_read(st, &o, "new.example", NULL, t0, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && !h.found,
	    "fail and softfail mail of an unknown domain create no record");

	/* validated mail: established after 2 delivered and an hour */
	(void)rep_history_record(st, &o, "good.example", "192.0.2.0/24",
	    SPF_PASS, true, false, t0, err, sizeof(err));
	rc = rep_history_read(st, &o, "good.example", NULL, t0, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.found && h.delivered == 1 &&
		h.counts[SPF_PASS] == 1 && h.first == t0 &&
		h.class == HISTORY_NEW,
	    "one validated message: new (delivered %lld)",
	    (long long)h.delivered);
	(void)rep_history_record(st, &o, "good.example", "192.0.2.0/24",
	    SPF_PASS, true, false, t0 + 60, err, sizeof(err));
	rc = rep_history_read(st, &o, "good.example", NULL, t0 + 60, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.delivered == 2 && h.first == t0 &&
		h.last == t0 + 60 && h.class == HISTORY_NEW,
	    "two messages within the first hour: still new");
	rc = rep_history_read(st, &o, "good.example", NULL, t0 + 3600, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.class == HISTORY_ESTABLISHED,
	    "an hour after the first: established");
	rc = rep_history_read(st, &o, "good.example", "192.0.2.0/24", t0 + 3600,
	    &h, err, sizeof(err));
	TAP_OK(rc == 0 && h.found && h.delivered == 2,
	    "the (domain, network) record counts the same mail");
	rc = rep_history_read(st, &o, "good.example", "198.51.100.0/24",
	    t0 + 3600, &h, err, sizeof(err));
	TAP_OK(rc == 0 && !h.found && h.class == HISTORY_NEW,
	    "from another network: new there");

	/* failing mail of an established domain is counted, changes no
	   class, and is an anomaly */
	(void)rep_history_record(st, &o, "good.example", "203.0.113.0/24",
	    SPF_FAIL, false, true, t0 + 3600, err, sizeof(err));
	rc = rep_history_read(st, &o, "good.example", NULL, t0 + 3600, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.counts[SPF_FAIL] == 1 && h.refused == 0 &&
		h.class == HISTORY_ESTABLISHED,
	    "a forged message of an established domain: counted as fail, not "
	    "as refused");
	TAP_OK(rep_history_anomaly(&h, SPF_FAIL) &&
		rep_history_anomaly(&h, SPF_SOFTFAIL) &&
		!rep_history_anomaly(&h, SPF_PASS) &&
		!rep_history_anomaly(&h, SPF_TEMPERROR),
	    "anomaly: established and now fail or softfail");
	rc = rep_history_read(st, &o, "good.example", "203.0.113.0/24",
	    t0 + 3600, &h, err, sizeof(err));
	TAP_OK(rc == 0 && !h.found,
	    "the forger's network gets no record of its own");

	/* bad: validated mail refused, twice and half of it */
	(void)rep_history_record(st, &o, "spam.example", NULL, SPF_PASS, false,
	    true, t0, err, sizeof(err));
	rc = rep_history_read(st, &o, "spam.example", NULL, t0 + 7200, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.refused == 1 && h.class == HISTORY_NEW,
	    "one refusal: not yet bad");
	(void)rep_history_record(st, &o, "spam.example", NULL, SPF_PASS, false,
	    true, t0, err, sizeof(err));
	rc = rep_history_read(st, &o, "spam.example", NULL, t0 + 7200, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.class == HISTORY_BAD, "two refusals: bad");
	for (i = 0; i < 3; i++)
		(void)rep_history_record(st, &o, "spam.example", NULL, SPF_PASS,
		    true, false, t0, err, sizeof(err));
	rc = rep_history_read(st, &o, "spam.example", NULL, t0 + 7200, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.class == HISTORY_ESTABLISHED,
	    "2 refused of 5: under 50%%, established again");
	rc = rep_history_read(st, &o, "SPAM.Example", NULL, t0 + 7200, &h, err,
	    sizeof(err));
	TAP_OK(rc == 0 && h.found, "domains are case-insensitive");
}

static void
test_greylist(struct store *st)
{
	struct rep_greylist_opts o = {300, 3600, 86400};
	time_t t0 = 1700000000;
	unsigned retry;
	char err[256];
	int rc;

	rc = rep_greylist(st, &o, "n:192.0.2.0/24", "a@x.example",
	    "u@dest.example", t0, &retry, err, sizeof(err));
	TAP_OK(rc == 1 && retry == 300, "first attempt: deferred, retry 300");
	rc = rep_greylist(st, &o, "n:192.0.2.0/24", "a@x.example",
	    "u@dest.example", t0 + 100, &retry, err, sizeof(err));
	TAP_OK(rc == 1 && retry == 200, "100 s later: deferred, retry %u",
	    retry);
	rc = rep_greylist(st, &o, "n:192.0.2.0/24", "A@X.example",
	    "u@dest.example", t0 + 300, &retry, err, sizeof(err));
	TAP_OK(rc == 0, "after the delay (sender in other case): passes");
	rc = rep_greylist(st, &o, "n:192.0.2.0/24", "b@y.example",
	    "w@dest.example", t0 + 400, &retry, err, sizeof(err));
	TAP_OK(rc == 0, "the source is remembered: another triplet passes");

	rc = rep_greylist(st, &o, "d:slow.example", "a@slow.example",
	    "u@dest.example", t0, &retry, err, sizeof(err));
	rc = rep_greylist(st, &o, "d:slow.example", "a@slow.example",
	    "u@dest.example", t0 + 300 + 3601, &retry, err, sizeof(err));
	TAP_OK(rc == 1 && retry == 300,
	    "a retry after the window: deferred again, from the start");
	rc = rep_greylist(st, &o, "d:slow.example", "a@slow.example",
	    "u@dest.example", t0 + 300 + 3601 + 300, &retry, err, sizeof(err));
	TAP_OK(rc == 0, "then a retry in the new window passes");
	rc = rep_greylist(st, &o, "d:other.example", "a@other.example",
	    "u@dest.example", t0 + 300, &retry, err, sizeof(err));
	TAP_OK(rc == 1, "another source is greylisted on its own");
}

static void
test_rate(struct store *st)
{
	struct rate_limit l = {(char *)"per-ip", RATE_IP, 3, 60, false};
	time_t base = 1700000040 - 1700000040 % 60; /* a window's start */
	char err[256];
	double rate;
	int rc, i;

	for (i = 1; i <= 3; i++) {
		rc = rep_rate(st, &l, "192.0.2.1", 1, base + 30, &rate, err,
		    sizeof(err));
		TAP_OK(rc == 0 && rate == i, "message %d: rate %.2f, not over",
		    i, rate);
	}
	rc = rep_rate(st, &l, "192.0.2.1", 1, base + 30, &rate, err,
	    sizeof(err));
	TAP_OK(rc == 1 && rate == 4, "message 4: rate %.2f, over", rate);
	rc = rep_rate(st, &l, "192.0.2.2", 1, base + 30, &rate, err,
	    sizeof(err));
	TAP_OK(rc == 0 && rate == 1, "another subject counts on its own");

	/* half way into the next window, half the last one still counts:
	   1 + 4 * 0.5 = 3 (not over), then 2 + 2 = 4 (over) */
	rc = rep_rate(st, &l, "192.0.2.1", 1, base + 90, &rate, err,
	    sizeof(err));
	TAP_OK(rc == 0 && rate == 3.0,
	    "sliding: next window, half way: rate %.2f", rate);
	rc = rep_rate(st, &l, "192.0.2.1", 1, base + 90, &rate, err,
	    sizeof(err));
	TAP_OK(rc == 1 && rate == 4.0, "sliding: over again at %.2f", rate);
	rc = rep_rate(st, &l, "192.0.2.1", 1, base + 180, &rate, err,
	    sizeof(err));
	TAP_OK(rc == 0 && rate == 1.0,
	    "two windows later only the new count: %.2f", rate);
}

static void
test_failure(void)
{
	struct store_opts o;
	struct rep_history_opts ho = {2, 0, 2, 50, 86400};
	struct rep_greylist_opts go = {300, 3600, 86400};
	struct rate_limit l = {(char *)"x", RATE_IP, 3, 60, false};
	struct rep_history h;
	struct store *st;
	char err[256];
	unsigned retry;
	double rate;

	memset(&o, 0, sizeof(o));
	o.backend = STORE_REDIS;
	o.host = "127.0.0.1";
	o.port = 1; /* nothing listens */
	o.timeout_ms = 100;
	if ((st = store_open(&o, err, sizeof(err))) == NULL) {
		TAP_OK(false, "redis store handle: %s", err);
		return;
	}
	err[0] = '\0';
	TAP_OK(rep_history_read(st, &ho, "a.example", NULL, 0, &h, err,
		   sizeof(err)) == -1 &&
		strstr(err, "redis") != NULL,
	    "history read, store down: -1 (%s)", err);
	TAP_OK(rep_history_record(st, &ho, "a.example", NULL, SPF_PASS, true,
		   false, 0, err, sizeof(err)) == -1,
	    "history record, store down: -1");
	TAP_OK(rep_greylist(st, &go, "n:x", "a", "b", 0, &retry, err,
		   sizeof(err)) == -1,
	    "greylist, store down: -1");
	TAP_OK(rep_rate(st, &l, "192.0.2.1", 1, 0, &rate, err, sizeof(err)) ==
		-1,
	    "rate, store down: -1");
	store_close(st);
}

int
main(void)
{
	char dir[] = "/tmp/spfguard-reputation.XXXXXX", cmd[200];
	struct store *st;

	test_networks();
	if (mkdtemp(dir) == NULL || (st = open_lmdb(dir)) == NULL)
		return 1;
	test_history(st);
	test_greylist(st);
	test_rate(st);
	store_close(st);
	test_failure();
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		(void)printf("# could not remove %s\n", dir);
	TAP_DONE();
}
