/*
 * test_ctx_rep.c - the transaction driver with reputation: blocklists
 * from a memory DNS zone, greylisting, rate limits and history in an LMDB
 * store in a temporary directory, and a store that fails (a Redis store
 * with no server), fail open and fail closed.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "ctx.h"
#include "declog.h"
#include "reputation.h"
#include "store.h"
#include "tap.h"
#include "xalloc.h"

static int bl_queries; /* queries under the blocklist zones */

static void
add_txt(struct dns_answer *out, const char *txt)
{
	struct dns_rr rr;

	memset(&rr, 0, sizeof(rr));
	rr.data = xstrdup(txt);
	rr.len = strlen(txt);
	dns_answer_add(out, &rr);
}

static void
add_a(struct dns_answer *out, const char *ip)
{
	struct dns_rr rr;

	memset(&rr, 0, sizeof(rr));
	(void)inet_pton(AF_INET, ip, &rr.addr.v4);
	dns_answer_add(out, &rr);
}

static bool
ends(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);

	return n >= k && strcasecmp(name + n - k, suffix) == 0;
}

/* zone - SPF records, a DNSBL, a broken DNSBL and an RHSBL */
static void
zone(void *arg, const char *name, enum dns_type type, struct dns_answer *out)
{
	out->status = DNS_NXDOMAIN;
	if (ends(name, ".bl.test") || ends(name, ".broken.test") ||
	    ends(name, ".dbl.test"))
		bl_queries++;
	if (type == DNS_T_A) {
		if (strcasecmp(name, "66.2.0.192.bl.test") == 0) {
			out->status = DNS_OK;
			add_a(out, "127.0.0.2");
		} else if (ends(name, ".broken.test")) {
			out->status = DNS_TEMPFAIL;
			out->why = "SERVFAIL";
		} else if (strcasecmp(name, "spammer.example.dbl.test") == 0) {
			out->status = DNS_OK;
			add_a(out, "127.0.1.2");
		}
		return;
	}
	if (type != DNS_T_TXT)
		return;
	if (strcasecmp(name, "pass.example") == 0 ||
	    strcasecmp(name, "spammer.example") == 0 ||
	    strcasecmp(name, "forged.example") == 0) {
		out->status = DNS_OK;
		add_txt(out, "v=spf1 ip4:192.0.2.0/24 -all");
	} else if (strcasecmp(name, "soft.example") == 0) {
		out->status = DNS_OK;
		add_txt(out, "v=spf1 ~all");
	}
}

static const char policy_fmt[] =
    "headers = { authserv_id = \"mx.test.example\"; tag_header = "
    "\"X-Tag\"; };\n"
    "spf = { receiver = \"mx.test.example\"; deadline_ms = 2000; "
    "helo_check = false; };\n"
    "store = { backend = \"%s\"; path = \"%s/store\"; redis_port = %d; "
    "timeout_ms = 100; on_error = \"%s\"; };\n"
    "history = { enabled = true; established_messages = 2; "
    "established_hours = 0; };\n"
    "greylist = { delay = 1; retry_window = 60; };\n"
    "trusted_networks = [ \"127.0.0.0/8\" ];\n"
    "dnsbl = ( { name = \"bl\"; zone = \"bl.test\"; codes = \"127.0.0.2\"; "
    "},\n  { name = \"broken\"; zone = \"broken.test\"; } );\n"
    "rhsbl = ( { name = \"dbl\"; zone = \"dbl.test\"; mask = 2; } );\n"
    "ratelimits = ( { name = \"per-ip\"; key = \"ip\"; limit = 3; window = "
    "3600; action = \"tempfail\"; } );\n"
    "rules = (\n"
    " { name = \"trusted\"; match = { client = \"trusted\"; }; action = "
    "\"accept\"; },\n"
    " { name = \"bl\"; match = { dnsbl = \"bl\"; }; action = \"reject\"; "
    "},\n"
    " { name = \"dbl\"; match = { rhsbl = \"*\"; }; action = \"reject\"; "
    "},\n"
    " { name = \"fail\"; match = { spf = \"fail\"; }; action = \"reject\"; "
    "},\n"
    " { name = \"grey\"; match = { spf = \"softfail\"; }; action = "
    "\"greylist\"; },\n"
    " { name = \"est\"; match = { history = \"established\"; }; action = "
    "\"tag\"; },\n"
    " { name = \"default\"; action = \"accept\"; }\n"
    ");\n";

static struct runtime rt;
static char dir[] = "/tmp/spfguard-rep.XXXXXX";
static char logpath[300];

static struct conf *
config(const char *backend, int port, const char *on_error)
{
	char cf[300];
	struct buf errs;
	struct conf *c;
	FILE *fp;

	(void)snprintf(cf, sizeof(cf), "%s/t.conf", dir);
	if ((fp = fopen(cf, "w")) == NULL)
		return NULL;
	(void)fprintf(fp, policy_fmt, backend, dir, port, on_error);
	(void)fclose(fp);
	buf_init(&errs);
	if ((c = conf_load(cf, &errs)) == NULL)
		(void)printf("Bail out! %s\n", buf_str(&errs));
	buf_free(&errs);
	(void)unlink(cf);
	return c;
}

/* one - a whole transaction from a client, one recipient; the reply */
static void
one(const char *ip, const char *sender, const char *rcpt, struct ctx_reply *r,
    char *text, size_t len)
{
	struct conn *c;
	struct ctx_eom e;
	char from[300], to[300];

	(void)snprintf(from, sizeof(from), "<%s>", sender);
	(void)snprintf(to, sizeof(to), "<%s>", rcpt);
	c = ctx_connect(&rt, ip, NULL);
	ctx_helo(c, "client.example");
	ctx_mail(c, from, NULL, NULL);
	ctx_rcpt(c, to, r);
	(void)snprintf(text, len, "%d %s %s", r->refuse ? r->code : 250,
	    r->refuse ? r->xcode : "", r->text != NULL ? r->text : "");
	if (!r->refuse) {
		ctx_eom(c, &e);
		if (e.tag_name != NULL)
			(void)snprintf(text, len, "250 tag %s", e.tag_value);
		ctx_eom_done(c);
	}
	ctx_close(c);
}

/* last_line - the last line of the decision log */
static void
last_line(char *out, size_t len)
{
	FILE *fp = fopen(logpath, "r");

	out[0] = '\0';
	if (fp == NULL)
		return;
	while (fgets(out, (int)len, fp) != NULL)
		;
	(void)fclose(fp);
}

static void
store_on(void)
{
	struct store_opts o;
	char err[256];

	conf_store_opts(rt.conf, &o);
	rt.store = store_open(&o, err, sizeof(err));
	if (rt.store == NULL)
		(void)printf("Bail out! store: %s\n", err);
}

int
main(void)
{
	struct ctx_reply r;
	struct rep_history h;
	char text[600], line[8192], err[256];
	int i;

	if (mkdtemp(dir) == NULL)
		return 1;
	(void)snprintf(logpath, sizeof(logpath), "%s/decisions.log", dir);
	memset(&rt, 0, sizeof(rt));
	(void)pthread_mutex_init(&rt.mu, NULL);
	if ((rt.conf = config("lmdb", 6379, "accept")) == NULL)
		return 1;
	store_on();
	if (rt.store == NULL)
		return 1;
	rt.dns = dns_create_fn(zone, NULL);
	rt.jobs = jobs_create(4);
	rt.declog = declog_open(logpath, err, sizeof(err));

	/* DNSBL: listed client refused, the reply names the list */
	one("192.0.2.66", "a@pass.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(r.refuse && r.code == 550 && strstr(text, "using bl") != NULL,
	    "client on DNSBL bl: %s", text);
	last_line(line, sizeof(line));
	TAP_OK(strstr(line, "\"list\":\"bl\"") != NULL &&
		strstr(line, "\"status\":\"listed\",\"codes\":\"127.0.0.2\"") !=
		    NULL &&
		strstr(line,
		    "\"list\":\"broken\",\"kind\":\"dnsbl\","
		    "\"subject\":\"192.0.2.66\",\"status\":"
		    "\"unknown\"") != NULL,
	    "decision log: the hit with its code, the broken list unknown");

	/* RHSBL on the sender domain (mask 2 matches 127.0.1.2) */
	one("192.0.2.67", "a@spammer.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(r.refuse && strstr(text, "spammer.example") != NULL &&
		strstr(text, "dbl") != NULL,
	    "sender domain on RHSBL dbl: %s", text);

	/* trusted: no blocklist lookups */
	i = bl_queries;
	one("127.0.0.1", "a@spammer.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(!r.refuse && bl_queries == i,
	    "trusted client: accepted, %d blocklist queries", bl_queries - i);

	/* greylisting: deferred, deferred too early, passed after the delay,
	   and the source is remembered for another recipient */
	one("192.0.2.68", "a@soft.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(r.refuse && r.code == 451 && strcmp(r.xcode, "4.7.1") == 0 &&
		strstr(text, "try again in 1 seconds") != NULL,
	    "greylist: first attempt %s", text);
	last_line(line, sizeof(line));
	TAP_OK(strstr(line, "\"greylist\":{\"state\":\"deferred\"") != NULL,
	    "decision log: greylist deferred");
	one("192.0.2.68", "a@soft.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(r.refuse && r.code == 451, "greylist: retry too early: %s",
	    text);
	(void)usleep(1100 * 1000);
	one("192.0.2.68", "a@soft.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(!r.refuse, "greylist: retry after the delay: %s", text);
	one("192.0.2.69", "b@soft.example", "v@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(!r.refuse,
	    "greylist: the source (network 192.0.2.0/24) is remembered: %s",
	    text);

	/* rate limit: per-ip, 3 messages an hour, the fourth is over
	   (192.0.2.70 is new; earlier clients counted on their own) */
	for (i = 0; i < 3; i++)
		one("192.0.2.70", "a@pass.example", "u@dest.example", &r, text,
		    sizeof(text));
	TAP_OK(!r.refuse, "rate limit: third message accepted");
	one("192.0.2.70", "a@pass.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(r.refuse && r.code == 451 && strstr(text, "per-ip") != NULL,
	    "rate limit: fourth message over: %s", text);
	last_line(line, sizeof(line));
	TAP_OK(strstr(line, "\"rule\":\"ratelimit:per-ip\"") != NULL &&
		strstr(line, "\"over\":true") != NULL,
	    "decision log: the limit and its rate");

	/* history: pass.example delivered three times so far, refused once
	   by the DNSBL (a tempfail over the limit counts neither way) */
	i = rep_history_read(rt.store, &rt.conf->hist, "pass.example", NULL,
	    time(NULL), &h, err, sizeof(err));
	TAP_OK(i == 0 && h.found && h.delivered == 3 && h.refused == 1 &&
		h.class == HISTORY_ESTABLISHED,
	    "history of pass.example: delivered %lld refused %lld class %s",
	    (long long)h.delivered, (long long)h.refused,
	    policy_history_name(h.class));
	one("192.0.2.71", "a@pass.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(!r.refuse && strstr(text, "tag est") != NULL,
	    "established sender tagged by the history rule: %s", text);
	last_line(line, sizeof(line));
	TAP_OK(strstr(line,
		   "\"history\":{\"domain\":{\"class\":"
		   "\"established\"") != NULL &&
		strstr(line, "\"network\":\"192.0.2.0/24\"") != NULL,
	    "decision log: history class and network");

	/* a forger builds no history */
	for (i = 0; i < 3; i++)
		one("203.0.113.9", "ceo@forged.example", "u@dest.example", &r,
		    text, sizeof(text));
	i = rep_history_read(rt.store, &rt.conf->hist, "forged.example", NULL,
	    time(NULL), &h, err, sizeof(err));
	TAP_OK(r.refuse && r.code == 550 && i == 0 && !h.found,
	    "forged sender: refused, no record made");

	/* an end of message with no MAIL before it (libmilter's state
	 * machine sends none; found by fuzz_ctx): no sender domain to read
	 * history or count a rate by, nothing to add */
	{
		struct conn *c = ctx_connect(&rt, "192.0.2.90", NULL);
		struct ctx_eom e;

		ctx_eom(c, &e);
		TAP_OK(e.auth_results == NULL && e.tag_name == NULL &&
			e.quarantine == NULL,
		    "end of message without MAIL, history and rate limits on: "
		    "nothing added");
		ctx_eom_done(c);
		ctx_close(c);
	}

	/* the store fails: fail open accepts, fail closed tempfails */
	store_close(rt.store);
	conf_unref(rt.conf);
	rt.conf = config("redis", 1, "accept");
	store_on();
	one("192.0.2.80", "a@pass.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(!r.refuse && rt.store_failures > 0,
	    "store down, on_error accept: %s (%lu failures counted)", text,
	    rt.store_failures);
	last_line(line, sizeof(line));
	TAP_OK(strstr(line, "\"store_error\":\"redis") != NULL,
	    "decision log says why: %.80s",
	    strstr(line, "\"store_error\"") != NULL
		? strstr(line, "\"store_error\"")
		: "(missing)");
	one("192.0.2.81", "a@soft.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(!r.refuse, "store down, fail open: nobody greylisted: %s", text);
	last_line(line, sizeof(line));
	TAP_OK(strstr(line, "\"greylist\":null") != NULL,
	    "decision log: the greylist was not applied (not \"passed\")");
	conf_unref(rt.conf);
	rt.conf = config("redis", 1, "tempfail");
	one("192.0.2.80", "a@pass.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(r.refuse && r.code == 451 && strcmp(r.xcode, "4.3.0") == 0,
	    "store down, on_error tempfail: %s", text);
	last_line(line, sizeof(line));
	TAP_OK(strstr(line, "\"rule\":\"store-error\"") != NULL,
	    "decision log: rule store-error");
	one("192.0.2.81", "a@soft.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(r.refuse && r.code == 451 && strcmp(r.xcode, "4.3.0") == 0,
	    "store down, on_error tempfail, a greylist rule matching: the "
	    "store's answer, not a greylisting: %s",
	    text);
	one("127.0.0.1", "a@pass.example", "u@dest.example", &r, text,
	    sizeof(text));
	TAP_OK(!r.refuse, "store down: trusted clients unaffected");

	store_close(rt.store);
	jobs_destroy(rt.jobs);
	dns_destroy(rt.dns);
	declog_close(rt.declog);
	conf_unref(rt.conf);
	{
		char cmd[400];

		(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			(void)printf("# could not remove %s\n", dir);
	}
	TAP_DONE();
}
