/*
 * test_ctx.c - the transaction driver (ctx.c) without an MTA: a memory DNS
 * backend that counts queries, a configuration from a file, and the SMTP
 * stages called in order, as milter.c calls them.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "ctx.h"
#include "declog.h"
#include "tap.h"
#include "xalloc.h"

static int queries;	   /* every DNS query */
static int sender_queries; /* queries for names under sender.example */

static void
add_txt(struct dns_answer *out, const char *txt)
{
	struct dns_rr rr;

	memset(&rr, 0, sizeof(rr));
	rr.data = xstrdup(txt);
	rr.len = strlen(txt);
	dns_answer_add(out, &rr);
}

/* zone - a few names, answered from memory */
static void
zone(void *arg, const char *name, enum dns_type type, struct dns_answer *out)
{
	size_t n = strlen(name);

	queries++;
	if (n >= 14 && strcasecmp(name + n - 14, "sender.example") == 0)
		sender_queries++;
	out->status = DNS_NXDOMAIN;
	if (type != DNS_T_TXT)
		return;
	if (strcasecmp(name, "sender.example") == 0)
		add_txt(out, "v=spf1 ip4:192.0.2.0/24 -all");
	else if (strcasecmp(name, "soft.example") == 0)
		add_txt(out, "v=spf1 ip4:192.0.2.0/24 ~all");
	else if (strcasecmp(name, "mail.sender.example") == 0)
		add_txt(out, "v=spf1 ip4:192.0.2.0/24 -all");
}

static const char policy[] =
    "headers = { authserv_id = \"mx.test.example\"; tag_header = "
    "\"X-Tag\"; };\n"
    "spf = { receiver = \"mx.test.example\"; deadline_ms = 2000; };\n"
    "trusted_networks = [ \"127.0.0.0/8\" ];\n"
    "rules = (\n"
    " { name = \"trusted\"; match = { client = \"trusted\"; }; action = "
    "\"accept\"; },\n"
    " { name = \"auth\"; match = { authenticated = true; }; action = "
    "\"accept\"; },\n"
    " { name = \"fail\"; match = { spf = \"fail\"; }; action = "
    "\"reject\"; },\n"
    " { name = \"soft\"; match = { spf = \"softfail\"; }; action = "
    "\"tag\"; },\n"
    " { name = \"default\"; action = \"accept\"; }\n"
    ");\n"
    "policy_sets = ( { name = \"strict\"; recipient_domains = [ "
    "\"strict.example\" ]; rules = ( { name = \"soft-reject\"; match = { "
    "spf = \"softfail\"; }; action = \"reject\"; } ); } );\n";

static int
lines(const char *path)
{
	FILE *fp = fopen(path, "r");
	int c, n = 0;

	if (fp == NULL)
		return 0;
	while ((c = getc(fp)) != EOF)
		if (c == '\n')
			n++;
	(void)fclose(fp);
	return n;
}

int
main(void)
{
	struct runtime rt;
	struct conn *c;
	struct ctx_reply r;
	struct ctx_eom e;
	struct buf errs;
	char dir[] = "/tmp/spfguard-ctx.XXXXXX", cf[300], log[300], err[200];
	FILE *fp;
	int before;

	if (mkdtemp(dir) == NULL)
		return 1;
	(void)snprintf(cf, sizeof(cf), "%s/t.conf", dir);
	(void)snprintf(log, sizeof(log), "%s/decisions.log", dir);
	if ((fp = fopen(cf, "w")) == NULL)
		return 1;
	(void)fputs(policy, fp);
	(void)fclose(fp);
	buf_init(&errs);
	memset(&rt, 0, sizeof(rt));
	(void)pthread_mutex_init(&rt.mu, NULL);
	rt.conf = conf_load(cf, &errs);
	if (rt.conf == NULL) {
		(void)printf("Bail out! %s\n", buf_str(&errs));
		return 1;
	}
	rt.dns = dns_create_fn(zone, NULL);
	rt.jobs = jobs_create(4);
	rt.declog = declog_open(log, err, sizeof(err));

	/* pass: accepted, headers for the deciding identity */
	c = ctx_connect(&rt, "192.0.2.10", "mail.sender.example");
	ctx_helo(c, "mail.sender.example");
	ctx_mail(c, "<user@sender.example>", NULL, NULL);
	ctx_rcpt(c, "<a@dest.example>", &r);
	TAP_OK(!r.refuse, "SPF pass: recipient accepted");
	ctx_header(c, "Authentication-Results",
	    "mx.test.example; spf=pass smtp.mailfrom=forged@bank.example");
	ctx_header(c, "Authentication-Results", "other.example; dkim=pass");
	ctx_header(c, "authentication-results", " MX.TEST.EXAMPLE; spf=pass");
	ctx_queue_id(c, "ABC123");
	ctx_eom(c, &e);
	TAP_OK(e.auth_results != NULL &&
		strstr(e.auth_results, "spf=pass") != NULL &&
		strstr(e.auth_results, "smtp.mailfrom=user@sender.example") !=
		    NULL,
	    "Authentication-Results: %s", e.auth_results);
	TAP_OK(e.received_spf != NULL &&
		strncmp(e.received_spf, "pass ", 5) == 0,
	    "Received-SPF added");
	TAP_OK(e.nremove_ar == 2 && e.remove_ar[0] == 1 && e.remove_ar[1] == 3,
	    "forged Authentication-Results 1 and 3 removed, 2 kept");
	TAP_OK(e.tag_name == NULL && e.quarantine == NULL, "no tag, no hold");
	ctx_eom_done(c);
	TAP_OK(lines(log) == 1, "one decision, one log line");

	/* fail: 550 5.7.23; MAIL twice resets the message */
	ctx_mail(c, "<user@sender.example>", NULL, NULL);
	ctx_mail(c, "<other@sender.example>", NULL, NULL);
	ctx_close(c);
	c = ctx_connect(&rt, "203.0.113.5", NULL);
	ctx_helo(c, "[203.0.113.5]");
	ctx_mail(c, "<user@sender.example>", NULL, NULL);
	ctx_rcpt(c, "<a@dest.example>", &r);
	TAP_OK(r.refuse && r.code == 550 && strcmp(r.xcode, "5.7.23") == 0,
	    "SPF fail: %d %s %s", r.code, r.xcode, r.text);
	ctx_rcpt(c, "<b@dest.example>", &r);
	ctx_abort(c);
	TAP_OK(lines(log) == 2, "two refused recipients, one log line");
	ctx_close(c);

	/* two policy sets in one transaction */
	c = ctx_connect(&rt, "203.0.113.5", NULL);
	ctx_helo(c, "client.example");
	ctx_mail(c, "<user@soft.example>", NULL, NULL);
	ctx_rcpt(c, "<a@strict.example>", &r);
	TAP_OK(r.refuse && r.code == 550,
	    "softfail to strict.example: "
	    "refused (%d %s)",
	    r.code, r.xcode);
	ctx_rcpt(c, "<b@other.example>", &r);
	TAP_OK(!r.refuse, "softfail to other.example: accepted");
	ctx_eom(c, &e);
	TAP_OK(e.tag_name != NULL && strcmp(e.tag_name, "X-Tag") == 0 &&
		strncmp(e.tag_value, "soft;", 5) == 0,
	    "tag header: %s: %s", e.tag_name != NULL ? e.tag_name : "",
	    e.tag_value);
	ctx_eom_done(c);
	TAP_OK(lines(log) == 4, "different answers, one line each");
	ctx_close(c);

	/* trusted: no lookups at all */
	before = queries;
	c = ctx_connect(&rt, "127.0.0.1", "localhost");
	ctx_helo(c, "mail.sender.example");
	ctx_mail(c, "<user@sender.example>", NULL, NULL);
	ctx_rcpt(c, "<a@dest.example>", &r);
	ctx_eom(c, &e);
	TAP_OK(!r.refuse && queries == before && e.auth_results == NULL,
	    "trusted client: accepted, %d queries, no SPF headers",
	    queries - before);
	ctx_close(c);

	/* authenticated: no MAIL FROM lookups */
	before = sender_queries;
	c = ctx_connect(&rt, "203.0.113.5", NULL);
	ctx_helo(c, "laptop");
	ctx_mail(c, "<user@sender.example>", "alice", NULL);
	ctx_rcpt(c, "<a@dest.example>", &r);
	TAP_OK(!r.refuse && sender_queries == before,
	    "authenticated: accepted without a lookup of the sender's domain");
	ctx_close(c);

	/* the null sender is checked as postmaster@HELO, once */
	before = queries;
	c = ctx_connect(&rt, "203.0.113.5", NULL);
	ctx_helo(c, "mail.sender.example");
	ctx_mail(c, "<>", NULL, NULL);
	ctx_rcpt(c, "<a@dest.example>", &r);
	TAP_OK(r.refuse && r.code == 550 && queries - before == 1,
	    "null sender: the HELO result decides, one query (%d)",
	    queries - before);
	ctx_close(c);

	/* hostile envelopes get an answer */
	{
		char big[3000];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		big[1] = '@';
		c = ctx_connect(&rt, "::ffff:203.0.113.5", NULL);
		ctx_helo(c, big);
		ctx_mail(c, big, NULL, NULL);
		ctx_rcpt(c, "no-at-sign", &r);
		TAP_OK(true,
		    "3000-character HELO and sender, RCPT without "
		    "'@': answered %s",
		    r.refuse ? "refuse" : "continue");
		ctx_rcpt(c, NULL, &r);
		ctx_header(c, "Authentication-Results", "");
		ctx_eom(c, &e);
		ctx_eom_done(c);
		ctx_close(c);
		c = ctx_connect(&rt, NULL, NULL);
		ctx_rcpt(c, "<x@dest.example>", &r);
		TAP_OK(!r.refuse,
		    "no client address, RCPT before MAIL: "
		    "accepted");
		ctx_close(c);
		ctx_close(NULL);
		TAP_OK(true, "ctx_close(NULL)");
	}

	jobs_destroy(rt.jobs);
	dns_destroy(rt.dns);
	declog_close(rt.declog);
	conf_unref(rt.conf);
	buf_free(&errs);
	(void)unlink(log);
	(void)unlink(cf);
	(void)rmdir(dir);
	TAP_DONE();
}
