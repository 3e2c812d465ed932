/*
 * spfguardctl.c - the operator tool.
 *
 *	spfguardctl spf --ip IP --helo NAME --from ADDR [--dns HOST:PORT]
 *	    [--receiver NAME] [--default-explanation TEXT]
 *	    [--engine builtin|libspf2] [--timeout MS] [--deadline MS] [--json]
 *	spfguardctl check [-c FILE]
 *	spfguardctl options
 *	spfguardctl test ... (ctl_test.c)
 *	spfguardctl replay ... (ctl_replay.c)
 *	spfguardctl log|report ... (ctl_log.c, ctl_report.c)
 *
 * spf: exit status 0 when a result was computed (whatever it is), 1 when
 * the tool could not run (resolver set-up), 2 on a usage error.
 * check: 0 and "configuration OK", or 1 and every error as file:line.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "ctl.h"
#include "ctl_policy.h"
#include "dns.h"
#include "spf.h"
#include "xalloc.h"

#define EXIT_USAGE    2
#define MAX_RESOLVERS 8

static void __attribute__((noreturn)) usage(void)
{
	(void)fprintf(stderr,
	    "usage: spfguardctl spf --ip IP --helo NAME --from ADDR "
	    "[--dns HOST:PORT]\n"
	    "                       [--receiver NAME] "
	    "[--default-explanation TEXT]\n"
	    "                       [--engine builtin|libspf2] "
	    "[--timeout MS] [--deadline MS] [--json]\n"
	    "       spfguardctl check [-c FILE]\n"
	    "       spfguardctl options\n"
	    "       spfguardctl test --ip IP --helo NAME --from ADDR "
	    "[--rcpt ADDR ...]\n"
	    "                        [--auth USER] [--client-name NAME] "
	    "[-c FILE]\n"
	    "                        [--dns HOST:PORT] [--json]\n"
	    "       spfguardctl log [--json] [--width N] [filters] [FILE ...]\n"
	    "       spfguardctl report [--top N] [--json | --html FILE] "
	    "[filters] [FILE ...]\n"
	    "       spfguardctl replay -c NEW.conf [--json] [--all] [filters] "
	    "LOG ...\n"
	    "       (filters: spfguardctl log --help)\n");
	exit(EXIT_USAGE);
}

void
ctl_usage(const char *fmt, ...)
{
	va_list ap;

	(void)fputs("spfguardctl: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
	usage();
}

/* parse_ms - a positive number of milliseconds, at most one hour */
static unsigned
parse_ms(const char *opt, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 1 || v > 3600000)
		ctl_usage("%s: expected milliseconds (1..3600000), got "
			  "\"%.40s\"",
		    opt, s);
	return (unsigned)v;
}

/* put_text - one "key: value" line, non-printable bytes as \xNN */
static void
put_text(const char *key, const char *v)
{
	const unsigned char *p;

	if (v == NULL)
		return;
	(void)printf("%s: ", key);
	for (p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			(void)putchar(*p);
		else
			(void)printf("\\x%02x", *p);
	}
	(void)putchar('\n');
}

static void
print_text(const struct spf_response *r)
{
	put_text("result", spf_result_name(r->result));
	put_text("identity", spf_identity_name(r->identity));
	put_text("sender", r->sender);
	put_text("domain", r->domain);
	put_text("mechanism", r->mechanism);
	put_text("problem", r->problem);
	put_text("explanation", r->explanation);
	(void)printf("lookups: %u\nvoid_lookups: %u\ndns_queries: %u\n"
		     "elapsed_ms: %ld\n",
	    r->lookups, r->void_lookups, r->dns_queries, r->elapsed_ms);
}

static void
print_json(const struct spf_response *r, const char *engine)
{
	struct buf b;

	buf_init(&b);
	buf_adds(&b, "{\"result\":");
	buf_add_jsons(&b, spf_result_name(r->result));
	buf_adds(&b, ",\"identity\":");
	buf_add_jsons(&b, spf_identity_name(r->identity));
	buf_adds(&b, ",\"sender\":");
	buf_add_jsons(&b, r->sender);
	buf_adds(&b, ",\"domain\":");
	buf_add_jsons(&b, r->domain);
	buf_adds(&b, ",\"mechanism\":");
	buf_add_jsons(&b, r->mechanism);
	buf_adds(&b, ",\"problem\":");
	buf_add_jsons(&b, r->problem);
	buf_adds(&b, ",\"explanation\":");
	buf_add_jsons(&b, r->explanation);
	buf_adds(&b, ",\"engine\":");
	buf_add_jsons(&b, engine);
	buf_addf(&b,
	    ",\"lookups\":%u,\"void_lookups\":%u,\"dns_queries\":%u"
	    ",\"elapsed_ms\":%ld}\n",
	    r->lookups, r->void_lookups, r->dns_queries, r->elapsed_ms);
	(void)fputs(buf_str(&b), stdout);
	buf_free(&b);
}

static int
cmd_spf(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"ip", required_argument, NULL, 'i'},
	    {"helo", required_argument, NULL, 'h'},
	    {"from", required_argument, NULL, 'f'},
	    {"dns", required_argument, NULL, 'd'},
	    {"receiver", required_argument, NULL, 'r'},
	    {"default-explanation", required_argument, NULL, 'x'},
	    {"engine", required_argument, NULL, 'e'},
	    {"timeout", required_argument, NULL, 't'},
	    {"deadline", required_argument, NULL, 'D'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	const char *resolvers[MAX_RESOLVERS];
	struct dns_opts dopts;
	struct spf_request req;
	struct spf_response resp;
	const struct spf_engine *eng = spf_engine_find(NULL);
	struct dns_ctx *dns;
	char err[256];
	bool json = false, have_from = false;
	int ch;

	memset(&dopts, 0, sizeof(dopts));
	memset(&req, 0, sizeof(req));
	dopts.resolvers = resolvers;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			req.ip = optarg;
			break;
		case 'h':
			req.helo = optarg;
			break;
		case 'f':
			req.sender = optarg;
			have_from = true;
			break;
		case 'd':
			if (dopts.nresolvers == MAX_RESOLVERS)
				ctl_usage("at most %d --dns options",
				    MAX_RESOLVERS);
			resolvers[dopts.nresolvers++] = optarg;
			break;
		case 'r':
			req.receiver = optarg;
			break;
		case 'x':
			req.default_exp = optarg;
			break;
		case 'e':
			if ((eng = spf_engine_find(optarg)) == NULL)
				ctl_usage("unknown engine \"%.40s\" (this "
					  "build has: %s)",
				    optarg, spf_engine_names());
			break;
		case 't':
			dopts.timeout_ms = parse_ms("--timeout", optarg);
			break;
		case 'D':
			req.deadline_ms = parse_ms("--deadline", optarg);
			break;
		case 'j':
			json = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		ctl_usage("unexpected argument \"%.40s\"", argv[optind]);
	if (req.ip == NULL || req.helo == NULL || !have_from)
		ctl_usage("spf needs --ip, --helo and --from");
	if (!spf_ip_ok(req.ip))
		ctl_usage("--ip: \"%.60s\" is not an IPv4 or IPv6 address",
		    req.ip);
	req.identity = (req.sender[0] == '\0' || strcmp(req.sender, "<>") == 0)
	    ? SPF_ID_HELO
	    : SPF_ID_MAILFROM;

	if ((dns = dns_create(&dopts, err, sizeof(err))) == NULL) {
		(void)fprintf(stderr, "spfguardctl: %s\n", err);
		return 1;
	}
	spf_check(eng, dns, &req, &resp);
	if (json)
		print_json(&resp, eng->name);
	else
		print_text(&resp);
	spf_response_free(&resp);
	dns_destroy(dns);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* cmd_check - load a configuration: "configuration OK", or its errors */
static int
cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = SPFGUARD_CONF;
	struct conf *conf;
	struct buf errors;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			ctl_usage("usage: spfguardctl check [-c FILE]");
		}
	}
	if (optind != argc)
		ctl_usage("unexpected argument \"%.40s\"", argv[optind]);
	buf_init(&errors);
	if ((conf = conf_load(path, &errors)) == NULL) {
		(void)fputs(buf_str(&errors), stderr);
		buf_free(&errors);
		return 1;
	}
	conf_unref(conf);
	buf_free(&errors);
	(void)puts("configuration OK");
	return fflush(stdout) == 0 ? 0 : 1;
}

/* cmd_options - every configuration option, from the loader's own table */
static int
cmd_options(int argc, char **argv)
{
	struct buf b;

	if (argc != 1)
		ctl_usage("usage: spfguardctl options");
	(void)argv;
	buf_init(&b);
	conf_describe(&b);
	(void)fputs(buf_str(&b), stdout);
	buf_free(&b);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "spf") == 0)
		return cmd_spf(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "options") == 0)
		return cmd_options(argc - 1, argv + 1);
	if (strcmp(argv[1], "test") == 0)
		return ctl_test_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "log") == 0)
		return ctl_log_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "report") == 0)
		return ctl_report_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "replay") == 0)
		return ctl_replay_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
		usage();
	ctl_usage("unknown command \"%.40s\"", argv[1]);
}
