/*
 * ctl_test.c - spfguardctl test: the whole policy on one envelope.
 *
 *	spfguardctl test --ip IP --helo NAME --from ADDR [--rcpt ADDR ...]
 *	    [--auth USER] [--client-name NAME] [-c FILE] [--dns HOST:PORT]
 *	    [--json]
 *
 * The envelope goes through the daemon's own transaction driver (ctx.c)
 * with the configuration's rules, blocklists and DNS (or the resolvers
 * given), so what it prints is what the daemon would do: the SPF results,
 * the blocklist answers, each recipient's reply, the headers a delivered
 * message would get, and each decision with the trace of rules tried.
 *
 * Reputation state is never touched: a configuration that keeps state
 * gets an empty store in a temporary directory, removed at exit, so the
 * answer is the one a first-time sender gets (no history, first greylist
 * attempt, first message of every rate window).
 *
 * Exit status: 0 when the envelope was decided, 1 when it could not be
 * (configuration, DNS set-up), 2 on a usage error.
 */
#include "autoconf.h"

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "ctl_policy.h"
#include "ctx.h"
#include "declog.h"
#include "dns.h"
#include "log.h"
#include "store.h"
#include "xalloc.h"

#define MAX_RCPTS     100
#define MAX_RESOLVERS 8

struct out {
	bool json;
	bool facts_shown;
	char *replies; /* text: the RCPT answers and headers */
	size_t replies_len;
	FILE *rf;	      /* writes replies */
	struct buf decisions; /* JSON objects, comma separated */
	size_t ndecisions;
};

/* put - a value for a terminal: printable ASCII, the rest as \xNN */
static void
fput(FILE *fp, const char *v)
{
	const unsigned char *p;

	if (v == NULL) {
		(void)fputs("-", fp);
		return;
	}
	for (p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			(void)putc(*p, fp);
		else if (*p == '\n')
			(void)fputs("\n    ", fp); /* a folded header */
		else if (*p == '\t')
			(void)putc(' ', fp);
		else if (*p != '\r')
			(void)fprintf(fp, "\\x%02x", *p);
	}
}

static void
put(const char *v)
{
	fput(stdout, v);
}

static void
show_spf(const char *what, const struct spf_response *r)
{
	(void)printf("SPF %s: ", what);
	if (r == NULL) {
		(void)puts("not checked");
		return;
	}
	put(spf_result_name(r->result));
	if (r->mechanism != NULL) {
		(void)fputs(" (mechanism ", stdout);
		put(r->mechanism);
		(void)putchar(')');
	}
	if (r->problem != NULL) {
		(void)fputs(" (", stdout);
		put(r->problem);
		(void)putchar(')');
	}
	(void)printf(", %u lookups, %ld ms\n", r->lookups, r->elapsed_ms);
	if (r->explanation != NULL) {
		(void)fputs("  explanation: ", stdout);
		put(r->explanation);
		(void)putchar('\n');
	}
}

/* show_facts - what the decisions of the message were made from */
static void
show_facts(const struct decision *d)
{
	const struct rep_facts *rep = d->rep;
	char codes[DNSBL_MAX_CODES * 16];
	size_t i;

	show_spf("HELO", d->spf_helo);
	show_spf("MAIL FROM", d->spf_mfrom);
	if (d->trusted)
		(void)puts("client: trusted (no lookups)");
	for (i = 0; rep != NULL && i < rep->nlists; i++) {
		const struct dnsbl_result *r = rep->lists[i];

		(void)printf("%s %s: ",
		    r->list->kind == DNSBL_IP ? "DNSBL" : "RHSBL",
		    r->list->name);
		put(r->subject);
		(void)printf(" %s", dnsbl_status_name(r->status));
		dnsbl_codes_text(r, codes, sizeof(codes));
		if (codes[0] != '\0')
			(void)printf(" (%s)", codes);
		if (r->why != NULL)
			(void)printf(" (%s)", r->why);
		(void)putchar('\n');
	}
	if (rep != NULL && rep->have_history)
		(void)printf("history: %s (delivered %lld, refused %lld)%s\n",
		    policy_history_name(rep->history->class),
		    (long long)rep->history->delivered,
		    (long long)rep->history->refused,
		    rep->anomaly ? ", anomaly" : "");
	for (i = 0; rep != NULL && i < rep->nrates; i++)
		if (rep->rates[i].checked)
			(void)printf("rate %s: %.2f of %u%s\n",
			    rep->rates[i].limit->name, rep->rates[i].rate,
			    rep->rates[i].limit->limit,
			    rep->rates[i].over ? " (over)" : "");
	if (rep != NULL && rep->store_error != NULL) {
		(void)fputs("store: ", stdout);
		put(rep->store_error);
		(void)putchar('\n');
	}
}

/* show_decision - one decision and its trace, for people */
static void
show_decision(const struct decision *d)
{
	const struct policy_verdict *v = d->verdict;
	size_t i;

	(void)printf("\ndecision: %s", policy_action_name(v->action));
	if (v->would != v->action)
		(void)printf(" (would %s)", policy_action_name(v->would));
	(void)fputs(" by rule ", stdout);
	put(v->rule != NULL ? v->rule->name : "(none: accept)");
	(void)printf(" in set %s%s\n", v->set != NULL ? v->set->name : "-",
	    v->monitor ? ", monitor mode" : "");
	(void)fputs("  recipients:", stdout);
	for (i = 0; i < d->nrcpts; i++) {
		(void)fputs(" <", stdout);
		put(d->rcpts[i]);
		(void)putchar('>');
	}
	(void)putchar('\n');
	if (v->text != NULL && policy_action_refuses(v->would)) {
		(void)printf("  reply: %d %s ", v->code, v->xcode);
		put(v->text);
		(void)putchar('\n');
	}
	for (i = 0; i < v->nshadows; i++)
		(void)printf("  shadow: %s would %s\n", v->shadows[i].rule,
		    policy_action_name(v->shadows[i].action));
	(void)puts("  rules tried:");
	for (i = 0; i < v->ntrace; i++) {
		(void)printf("    %s %s%s: ", v->trace[i].matched ? "+" : "-",
		    v->trace[i].rule, v->trace[i].shadow ? " (shadow)" : "");
		put(v->trace[i].why);
		(void)putchar('\n');
	}
}

static void
on_decision(void *arg, const struct decision *d)
{
	struct out *o = arg;

	if (o->json) {
		if (o->ndecisions++ > 0)
			buf_addc(&o->decisions, ',');
		declog_format(d, &o->decisions);
		return;
	}
	if (!o->facts_shown) {
		show_facts(d);
		(void)fflush(o->rf);
		(void)fwrite(o->replies, 1, o->replies_len, stdout);
		o->facts_shown = true;
	}
	show_decision(d);
}

/* temp_store - an empty LMDB store in a temporary directory */
static struct store *
temp_store(char *dir, size_t len)
{
	struct store_opts so;
	struct store *st;
	char err[256];

	(void)snprintf(dir, len, "%s/spfguardctl-test.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL) {
		(void)fprintf(stderr, "spfguardctl: cannot make %s\n", dir);
		dir[0] = '\0';
		return NULL;
	}
	memset(&so, 0, sizeof(so));
	so.backend = STORE_LMDB;
	so.path = dir;
	so.map_size_mb = 1;
	if ((st = store_open(&so, err, sizeof(err))) == NULL)
		(void)fprintf(stderr, "spfguardctl: store: %s\n", err);
	return st;
}

static void
temp_store_remove(const char *dir)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char path[PATH_MAX];
	size_t i;

	if (dir[0] == '\0')
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		(void)unlink(path);
	}
	(void)rmdir(dir);
}

static void
json_reply(struct buf *b, const char *rcpt, const struct ctx_reply *r)
{
	buf_adds(b, "{\"rcpt\":");
	buf_add_jsons(b, rcpt);
	if (r->refuse) {
		buf_addf(b, ",\"refuse\":true,\"code\":%d,\"xcode\":", r->code);
		buf_add_jsons(b, r->xcode);
		buf_adds(b, ",\"text\":");
		buf_add_jsons(b, r->text);
	} else
		buf_adds(b, ",\"refuse\":false");
	buf_addc(b, '}');
}

static void
json_header(struct buf *b, bool *first, const char *name, const char *value)
{
	if (value == NULL)
		return;
	buf_adds(b, *first ? "{\"name\":" : ",{\"name\":");
	*first = false;
	buf_add_jsons(b, name);
	buf_adds(b, ",\"value\":");
	buf_add_jsons(b, value);
	buf_addc(b, '}');
}

static void
text_header(FILE *fp, const char *name, const char *value)
{
	if (value == NULL)
		return;
	(void)fprintf(fp, "  %s: ", name);
	fput(fp, value);
	(void)putc('\n', fp);
}

/* run - the transaction, as milter.c drives it */
static void
run(struct runtime *rt, struct out *o, const char *ip, const char *name,
    const char *helo, const char *from, const char *auth, char **rcpts,
    size_t nrcpts)
{
	struct ctx_reply r;
	struct ctx_eom e;
	struct conn *c;
	struct buf replies, arg;
	bool delivered = false, first = true;
	size_t i;

	buf_init(&replies);
	buf_init(&arg);
	c = ctx_connect(rt, ip, name);
	ctx_helo(c, helo);
	ctx_mail(c, from, auth, NULL);
	if (!o->json)
		(void)putc('\n', o->rf);
	for (i = 0; i < nrcpts; i++) {
		buf_reset(&arg);
		buf_addf(&arg, "<%s>", rcpts[i]);
		ctx_rcpt(c, buf_str(&arg), &r);
		delivered |= !r.refuse;
		if (o->json) {
			if (i > 0)
				buf_addc(&replies, ',');
			json_reply(&replies, rcpts[i], &r);
		} else if (r.refuse) {
			(void)fputs("RCPT <", o->rf);
			fput(o->rf, rcpts[i]);
			(void)fprintf(o->rf, ">: %d %s ", r.code, r.xcode);
			fput(o->rf, r.text);
			(void)putc('\n', o->rf);
		} else {
			(void)fputs("RCPT <", o->rf);
			fput(o->rf, rcpts[i]);
			(void)fputs(">: accepted\n", o->rf);
		}
	}
	if (o->json)
		(void)printf("{\"recipients\":[%s],\"headers\":[",
		    buf_str(&replies));
	if (delivered) {
		ctx_eom(c, &e);
		if (o->json) {
			buf_reset(&replies);
			json_header(&replies, &first, "Authentication-Results",
			    e.auth_results);
			json_header(&replies, &first, "Received-SPF",
			    e.received_spf);
			json_header(&replies, &first, e.tag_name, e.tag_value);
			(void)fputs(buf_str(&replies), stdout);
		} else {
			(void)fputs("\nheaders added to the delivered "
				    "message:\n",
			    o->rf);
			text_header(o->rf, "Authentication-Results",
			    e.auth_results);
			text_header(o->rf, "Received-SPF", e.received_spf);
			text_header(o->rf, e.tag_name, e.tag_value);
			if (e.quarantine != NULL)
				(void)fprintf(o->rf,
				    "  (held in the MTA's quarantine: %s)\n",
				    e.quarantine);
		}
		ctx_eom_done(c);
	} else {
		if (!o->json)
			(void)fputs("\nno recipient accepted: the message is "
				    "not delivered\n",
			    o->rf);
		ctx_abort(c);
	}
	ctx_close(c);
	if (o->json)
		(void)printf("],\"decisions\":[%s]}\n", buf_str(&o->decisions));
	buf_free(&replies);
	buf_free(&arg);
}

int
ctl_test_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"ip", required_argument, NULL, 'i'},
	    {"helo", required_argument, NULL, 'h'},
	    {"from", required_argument, NULL, 'f'},
	    {"rcpt", required_argument, NULL, 'r'},
	    {"auth", required_argument, NULL, 'a'},
	    {"client-name", required_argument, NULL, 'n'},
	    {"config", required_argument, NULL, 'c'},
	    {"dns", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	const char *resolvers[MAX_RESOLVERS];
	const char *path = SPFGUARD_CONF, *ip = NULL;
	const char *helo = NULL, *from = NULL, *auth = NULL, *name = NULL;
	char *rcpts[MAX_RCPTS], *deflt = (char *)"postmaster";
	char err[256], dir[PATH_MAX] = "";
	size_t nrcpts = 0, nres = 0;
	struct dns_opts dopts;
	struct runtime rt;
	struct buf errors;
	struct out o;
	int ch, rc = 1;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			ip = optarg;
			break;
		case 'h':
			helo = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 'r':
			if (nrcpts == MAX_RCPTS)
				ctl_usage("at most %d --rcpt", MAX_RCPTS);
			rcpts[nrcpts++] = optarg;
			break;
		case 'a':
			auth = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'c':
			path = optarg;
			break;
		case 'd':
			if (nres == MAX_RESOLVERS)
				ctl_usage("at most %d --dns", MAX_RESOLVERS);
			resolvers[nres++] = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		default:
			ctl_usage("test: unknown option");
		}
	}
	if (optind != argc)
		ctl_usage("unexpected argument \"%.40s\"", argv[optind]);
	if (ip == NULL || helo == NULL || from == NULL)
		ctl_usage("test needs --ip, --helo and --from");
	if (!spf_ip_ok(ip))
		ctl_usage("--ip: \"%.60s\" is not an IPv4 or IPv6 "
			  "address",
		    ip);
	if (nrcpts == 0)
		rcpts[nrcpts++] = deflt;

	log_set_quiet(true);
	memset(&rt, 0, sizeof(rt));
	(void)pthread_mutex_init(&rt.mu, NULL);
	buf_init(&errors);
	buf_init(&o.decisions);
	if ((rt.conf = conf_load(path, &errors)) == NULL) {
		(void)fputs(buf_str(&errors), stderr);
		goto out;
	}
	memset(&dopts, 0, sizeof(dopts));
	dopts.resolvers =
	    nres > 0 ? resolvers : (const char **)rt.conf->resolvers;
	dopts.nresolvers = nres > 0 ? nres : rt.conf->nresolvers;
	dopts.timeout_ms = rt.conf->dns_timeout_ms;
	if ((rt.dns = dns_create(&dopts, err, sizeof(err))) == NULL) {
		(void)fprintf(stderr, "spfguardctl: %s\n", err);
		goto out;
	}
	if (conf_uses_store(rt.conf) &&
	    (rt.store = temp_store(dir, sizeof(dir))) == NULL)
		goto out;
	rt.jobs = jobs_create(rt.conf->workers);
	rt.on_decision = on_decision;
	rt.on_decision_arg = &o;
	if ((o.rf = open_memstream(&o.replies, &o.replies_len)) == NULL) {
		(void)fprintf(stderr, "spfguardctl: out of memory\n");
		goto out;
	}
	if (!o.json)
		(void)printf("configuration: %s%s\n", path,
		    rt.store != NULL ? " (reputation: an empty store, as for "
				       "a first-time sender)"
				     : "");
	run(&rt, &o, ip, name, helo, from, auth, rcpts, nrcpts);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	jobs_destroy(rt.jobs);
	store_close(rt.store);
	temp_store_remove(dir);
	dns_destroy(rt.dns);
	conf_unref(rt.conf);
	buf_free(&errors);
	buf_free(&o.decisions);
	if (o.rf != NULL)
		(void)fclose(o.rf);
	free(o.replies);
	(void)pthread_mutex_destroy(&rt.mu);
	return rc;
}
