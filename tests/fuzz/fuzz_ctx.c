/*
 * fuzz_ctx.c - envelope and HELO parsing and the transaction driver
 * (ctx.h): SMTP stages in any order with any arguments, as milter.c
 * would call them, against a fixed policy (with a DNSBL and an RHSBL,
 * greylisting, rate limits by each key and sender history in an LMDB
 * store, emptied before every input so that an input's result is its
 * own) and a fixed in-memory zone; plus ctx_address() and ctx_split()
 * directly.
 *
 * Input: NUL-separated commands, each a letter and its arguments (split
 * at \x01; a missing argument is NULL): C ip name (connect), H helo,
 * M sender auth-user queue-id, R rcpt, Q queue-id, X name value (a
 * header), E (end of message), A (abort), Z (close). A command before
 * any connect connects from 192.0.2.1 first. At most 64 commands.
 *
 * Invariants: a refusal has a 4xx/5xx code and printable text; the
 * headers to add are printable ASCII folded with "\n\t" only; a forged
 * Authentication-Results index is one that was given; every decision's
 * log line is one JSON object of printable ASCII, its syslog line
 * printable.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "ctx.h"
#include "declog.h"
#include "fuzz.h"
#include "xalloc.h"

#define MAX_COMMANDS 64

/* the store, in the fuzzer's directory (%s), then the policy */
static const char store_fmt[] =
    "store = { backend = \"lmdb\"; path = \"%s\"; map_size_mb = 16; };\n";
static const char policy[] =
    "history = { enabled = true; established_messages = 1; "
    "established_hours = 0; };\n"
    "greylist = { delay = 0; retry_window = 60; };\n"
    "ratelimits = (\n"
    " { name = \"ip\"; key = \"ip\"; limit = 3; window = 60; action = "
    "\"tempfail\"; },\n"
    " { name = \"net\"; key = \"net\"; limit = 5; window = 60; action = "
    "\"reject\"; reply = \"{ip} {sender} over {rcpt}\"; },\n"
    " { name = \"dom\"; key = \"sender_domain\"; limit = 2; window = 3600;"
    " action = \"quarantine\"; },\n"
    " { name = \"user\"; key = \"auth_user\"; limit = 2; window = 60; "
    "action = \"reject\"; } );\n"
    "headers = { authserv_id = \"mx.fuzz.example\"; tag_header = "
    "\"X-Fuzz-Tag\"; };\n"
    "spf = { receiver = \"mx.fuzz.example\"; deadline_ms = 3000;\n"
    "  default_explanation = \"%{i} is not one of %{d}'s servers\"; };\n"
    "trusted_networks = [ \"127.0.0.0/8\", \"::1/128\" ];\n"
    "dnsbl = ( { name = \"bl\"; zone = \"bl.test\"; codes = [ "
    "\"127.0.0.2\" ]; } );\n"
    "rhsbl = ( { name = \"rhs\"; zone = \"rhs.test\"; identities = [ "
    "\"from\", \"helo\" ]; } );\n"
    "rules = (\n"
    " { name = \"trusted\"; match = { client = \"trusted\"; }; action = "
    "\"accept\"; },\n"
    " { name = \"auth\"; match = { auth_user = \"admin*\"; }; action = "
    "\"accept\"; },\n"
    " { name = \"shadow\"; shadow = true; match = { helo = "
    "\"*.shadow.test\"; }; action = \"reject\"; },\n"
    " { name = \"bl\"; match = { dnsbl = \"bl\"; }; action = \"reject\";"
    " reply = \"{ip} on {dnsbl} ({helo}, {sender})\"; },\n"
    " { name = \"rhs\"; match = { rhsbl = \"*\"; }; action = \"reject\";"
    " reply = \"{domain} on {rhsbl} for {rcpt}\"; },\n"
    " { name = \"unknown\"; match = { dnsbl_unknown = \"*\"; }; action = "
    "\"tempfail\"; },\n"
    " { name = \"fail\"; match = { spf = \"fail\"; }; action = "
    "\"reject\"; reply = \"{explanation} {identity} {result}\"; },\n"
    " { name = \"temp\"; match = { spf = \"temperror\"; }; action = "
    "\"tempfail\"; },\n"
    " { name = \"null\"; match = { null_sender = true; helo = \"q*\"; };"
    " action = \"quarantine\"; },\n"
    " { name = \"soft\"; match = { spf = [ \"softfail\", \"neutral\" ]; };"
    " action = \"tag\"; },\n"
    " { name = \"grey\"; match = { helo = \"g*\"; }; action = "
    "\"greylist\"; },\n"
    " { name = \"est\"; match = { history = \"established\"; helo = "
    "\"e*\"; }; action = \"tag\"; },\n"
    " { name = \"bad\"; match = { history = \"bad\"; }; action = "
    "\"reject\"; },\n"
    " { name = \"over\"; match = { rate_over = \"*\"; helo = \"r*\"; }; "
    "action = \"tag\"; },\n"
    " { name = \"anomaly\"; match = { anomaly = true; }; action = "
    "\"quarantine\"; },\n"
    " { name = \"odd\"; match = { from_localpart = \"*[!a-z]*\"; "
    "client_name = \"unknown\"; }; action = \"tag\"; },\n"
    " { name = \"default\"; action = \"accept\"; }\n"
    ");\n"
    "policy_sets = ( { name = \"strict\"; recipient_domains = [ "
    "\"strict.test\", \"*.strict.test\" ]; mode = \"monitor\"; rules = ( "
    "{ name = \"s\"; match = { spf = [ \"softfail\", \"none\" ]; }; "
    "action = \"reject\"; } ); } );\n";

static struct runtime rt;
static char store_dir[300];

static bool
ends(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);

	return n >= k && strcasecmp(name + n - k, suffix) == 0;
}

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

/* txt_for - the SPF records of the zone, by suffix */
static const char *
txt_for(const char *name)
{
	if (ends(name, "pass.test"))
		return "v=spf1 +all";
	if (ends(name, "fail.test"))
		return "v=spf1 -all exp=exp.test";
	if (ends(name, "exp.test"))
		return "%{s} from %{i} via %{h} %{l} %{o} %{d} %{c} %{r} %{p} "
		       "%{t} %{v}";
	if (ends(name, "soft.test"))
		return "v=spf1 ~all";
	if (ends(name, "perm.test"))
		return "v=spf1 moo";
	if (ends(name, "macro.test"))
		return "v=spf1 exists:%{l1r+-}.%{o}.%{h}.%{ir}.x.test "
		       "a:%{d2}.y.test ptr -all";
	if (ends(name, "mx.test"))
		return "v=spf1 mx:%{h} ip6:2001:db8::/32 ip4:192.0.2.0/24 ~all";
	return NULL;
}

/* zone - a fixed zone: SPF records by suffix, blocklists, A/MX/PTR */
static void
zone(void *arg, const char *name, enum dns_type type, struct dns_answer *out)
{
	const char *txt;

	out->status = DNS_NXDOMAIN;
	if (ends(name, "temp.test")) {
		out->status = DNS_TEMPFAIL;
		out->why = "fuzzed";
		return;
	}
	if (ends(name, ".bl.test") || ends(name, ".rhs.test")) {
		if (type != DNS_T_A)
			return;
		if (strncmp(name, "2.", 2) == 0 ||
		    strncasecmp(name, "bad", 3) == 0)
			add_a(out, "127.0.0.2");
		else if (strncmp(name, "3.", 2) == 0)
			add_a(out, "127.255.255.254");
		return;
	}
	switch (type) {
	case DNS_T_TXT:
		if ((txt = txt_for(name)) != NULL)
			add_txt(out, txt);
		break;
	case DNS_T_A:
		if (name[0] == 'a' || name[0] == 'A')
			add_a(out, "192.0.2.1");
		break;
	case DNS_T_MX: {
		struct dns_rr rr;

		memset(&rr, 0, sizeof(rr));
		rr.pref = 10;
		rr.data = xstrdup("amx.pass.test");
		rr.len = strlen(rr.data);
		dns_answer_add(out, &rr);
		break;
	}
	case DNS_T_PTR:
		add_txt(out, "a.ptr.pass.test");
		break;
	default:
		break;
	}
}

/* on_decision - every decision's log line must be safe */
static void
on_decision(void *arg, const struct decision *d)
{
	struct buf line;
	json_error_t jerr;
	json_t *j;

	buf_init(&line);
	declog_format(d, &line);
	fuzz_check_printable("decision log line", buf_str(&line));
	if ((j = json_loadb(line.data, line.len, 0, &jerr)) == NULL ||
	    !json_is_object(j))
		fuzz_fail("decision log line is not a JSON object",
		    buf_str(&line));
	json_decref(j);
	buf_reset(&line);
	declog_format_syslog(d, &line);
	fuzz_check_printable("syslog line", buf_str(&line));
	buf_free(&line);
}

/* store_reset - an empty store: close it, remove its files, open it */
static void
store_reset(void)
{
	struct store_opts o;
	char err[256], path[sizeof(store_dir) + 16];

	if (rt.store != NULL)
		store_close(rt.store);
	(void)snprintf(path, sizeof(path), "%s/data.mdb", store_dir);
	(void)unlink(path);
	(void)snprintf(path, sizeof(path), "%s/lock.mdb", store_dir);
	(void)unlink(path);
	conf_store_opts(rt.conf, &o);
	if ((rt.store = store_open(&o, err, sizeof(err))) == NULL) {
		(void)dprintf(2, "fuzz_ctx: store: %s\n", err);
		abort();
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct buf errs;
	char path[300];
	struct buf text;

	fuzz_quiet();
	(void)snprintf(store_dir, sizeof(store_dir), "%s/store", fuzz_tmpdir());
	if (mkdir(store_dir, 0700) != 0) {
		perror(store_dir);
		abort();
	}
	buf_init(&text);
	buf_addf(&text, store_fmt, store_dir);
	buf_add(&text, policy, sizeof(policy) - 1);
	fuzz_write_file("ctx.conf", text.data, text.len, path, sizeof(path));
	buf_free(&text);
	buf_init(&errs);
	memset(&rt, 0, sizeof(rt));
	(void)pthread_mutex_init(&rt.mu, NULL);
	if ((rt.conf = conf_load(path, &errs)) == NULL) {
		(void)dprintf(2, "fuzz_ctx: %s", buf_str(&errs));
		abort();
	}
	buf_free(&errs);
	rt.dns = dns_create_fn(zone, NULL);
	store_reset();
	rt.jobs = jobs_create(2);
	rt.on_decision = on_decision;
	return 0;
}

static void
check_reply(const struct ctx_reply *r)
{
	if (!r->refuse)
		return;
	if (r->code < 400 || r->code > 599)
		fuzz_fail("refusal code", r->text);
	fuzz_check_printable("reply xcode", r->xcode);
	fuzz_check_printable("reply text", r->text);
}

static void
check_eom(const struct ctx_eom *e, size_t nar)
{
	size_t i;

	if (e->auth_results != NULL)
		fuzz_check_header("Authentication-Results", e->auth_results,
		    sizeof("Authentication-Results: ") - 1);
	if (e->received_spf != NULL)
		fuzz_check_header("Received-SPF", e->received_spf,
		    sizeof("Received-SPF: ") - 1);
	if (e->tag_value != NULL)
		fuzz_check_header("tag header", e->tag_value,
		    strlen(e->tag_name != NULL ? e->tag_name : "") + 2);
	fuzz_check_printable("quarantine reason", e->quarantine);
	for (i = 0; i < e->nremove_ar; i++)
		if (e->remove_ar[i] < 1 || e->remove_ar[i] > nar ||
		    (i > 0 && e->remove_ar[i] <= e->remove_ar[i - 1]))
			fuzz_fail("forged Authentication-Results index", "");
}

/*
 * settle - wait until every worker is idle: a job outlives the connection
 * that started it (ctx_close() does not wait), and what it frees after
 * this input would count against the next one (libFuzzer then runs a
 * full leak check, which is slow, for every input)
 */
static void
settle(void)
{
	struct timespec pause = {0, 20000};
	struct jobs_stats st;

	for (;;) {
		jobs_get_stats(rt.jobs, &st);
		if (st.queued == 0 && st.idle == st.threads)
			return;
		(void)nanosleep(&pause, NULL);
	}
}

/* envelope - the address helpers on their own */
static void
envelope(const char *arg)
{
	char *addr, *local, *domain;

	addr = ctx_address(arg);
	ctx_split(addr, &local, &domain);
	if (strlen(local) + strlen(domain) > strlen(addr))
		fuzz_fail("split longer than the address", addr);
	free(local);
	free(domain);
	free(addr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields cmds, a;
	struct conn *c = NULL;
	struct ctx_reply r;
	struct ctx_eom e;
	size_t i, nar = 0;

	store_reset();
	fuzz_split(data, size, '\0', MAX_COMMANDS, &cmds);
	for (i = 0; i < cmds.n; i++) {
		const char *cmd = cmds.v[i];

		if (cmd[0] == '\0')
			continue;
		fuzz_split((const uint8_t *)cmd + 1, cmds.len[i] - 1, '\x01', 3,
		    &a);
		if (cmds.len[i] == 1)
			fuzz_fields_free(&a); /* no argument at all: NULL */
		if (c == NULL && cmd[0] != 'C') {
			c = ctx_connect(&rt, "192.0.2.1", NULL);
			nar = 0;
		}
		switch (cmd[0]) {
		case 'C':
			ctx_close(c);
			c = ctx_connect(&rt, fuzz_field(&a, 0),
			    fuzz_field(&a, 1));
			nar = 0;
			break;
		case 'H':
			/* libmilter always gives a string */
			ctx_helo(c, fuzz_field(&a, 0) != NULL ? a.v[0] : "");
			break;
		case 'M':
			if (fuzz_field(&a, 0) != NULL)
				envelope(a.v[0]);
			ctx_mail(c, fuzz_field(&a, 0), fuzz_field(&a, 1),
			    fuzz_field(&a, 2));
			break;
		case 'R':
			if (fuzz_field(&a, 0) != NULL)
				envelope(a.v[0]);
			memset(&r, 0, sizeof(r));
			ctx_rcpt(c, fuzz_field(&a, 0), &r);
			check_reply(&r);
			break;
		case 'Q':
			ctx_queue_id(c, fuzz_field(&a, 0));
			break;
		case 'X':
			if (fuzz_field(&a, 0) != NULL &&
			    strcasecmp(a.v[0], "Authentication-Results") == 0)
				nar++;
			ctx_header(c,
			    fuzz_field(&a, 0) != NULL ? a.v[0] : "Subject",
			    fuzz_field(&a, 1) != NULL ? a.v[1] : "");
			break;
		case 'E':
			memset(&e, 0, sizeof(e));
			ctx_eom(c, &e);
			check_eom(&e, nar);
			ctx_eom_done(c);
			break;
		case 'A':
			ctx_abort(c);
			break;
		case 'Z':
			ctx_close(c);
			c = NULL;
			break;
		default:
			break;
		}
		fuzz_fields_free(&a);
	}
	ctx_close(c);
	settle();
	fuzz_fields_free(&cmds);
	return 0;
}
