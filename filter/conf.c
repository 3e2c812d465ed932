/*
 * conf.c - the configuration: one libconfig file (and its @includes) in,
 * one validated, immutable, reference-counted struct conf out.
 *
 * The only libconfig user. conf_load() reads the whole file, checks the
 * daemon, dns, spf and headers settings against the option table below
 * and the policy (mode, trusted_networks, lists, rules, policy_sets) with
 * code of its own, and gathers every error as "file:line: message" before
 * it gives up, so that an operator fixes a file in one pass. Unknown keys
 * are errors: a typo never silently means "the default". The same table
 * gives the defaults, frees the snapshot and is conf_describe()'s text.
 *
 * The snapshot owns every string and its policy (freed with policy_free
 * when the last conf_unref() drops it). Nothing here logs or exits; the
 * caller gets the errors. The reference count is atomic: sessions on
 * several threads share a snapshot while a reload swaps in another.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "conf_check.h"
#include "dns.h"
#include "dnsbl.h"
#include "policy.h"
#include "reputation.h"
#include "spf.h"
#include "spf_macro.h"
#include "xalloc.h"

#define NAME_MAX_LEN	64  /* rule and set names */
#define PATTERN_MAX_LEN 255 /* one domain, host or user pattern */
#define LETTERS		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define NAME_CHARS	LETTERS "0123456789-_."
#define WHAT_LEN	160 /* "rule \"name\": match: client" */

enum opt_type {
	OPT_GROUP,  /* a group holding the options "NAME.*" */
	OPT_STR,    /* a string */
	OPT_UINT,   /* an integer in min..max */
	OPT_BOOL,   /* true or false */
	OPT_STRS,   /* a string or a list of strings */
	OPT_OCTAL,  /* permissions as an octal string */
	OPT_POLICY, /* read by the policy code below */
};

#define F_HOSTNAME 0x01 /* default: this host's name */

struct opt {
	const char *name; /* "dns.timeout_ms": key timeout_ms in group dns */
	enum opt_type type;
	const char *def;  /* default, as a file writes it; NULL: none */
	long min, max;	  /* OPT_UINT */
	size_t off, noff; /* the struct conf field (OPT_STRS: and count) */
	int (*check)(const char *, char *, size_t); /* 0 or -1 and why */
	int flags;
	const char *syntax; /* OPT_POLICY: what the value looks like */
	const char *meaning;
};

/* Table rows: STR(name, default, field, checker, flags, meaning) etc. */
#define F(field) offsetof(struct conf, field)
/* clang-format off */
#define STR(n, d, f, chk, fl, m) \
	{n, OPT_STR, d, 0, 0, F(f), 0, chk, fl, NULL, m}
#define UINT(n, d, lo, hi, f, m) \
	{n, OPT_UINT, d, lo, hi, F(f), 0, NULL, 0, NULL, m}
#define BOOL(n, d, f, m) {n, OPT_BOOL, d, 0, 0, F(f), 0, NULL, 0, NULL, m}
#define GROUP(n, m) {n, OPT_GROUP, NULL, 0, 0, 0, 0, NULL, 0, NULL, m}
#define POLICY(n, d, syn, m) {n, OPT_POLICY, d, 0, 0, 0, 0, NULL, 0, syn, m}
/* clang-format on */

static const struct opt opts[] = {
    STR("socket", CONF_DEFAULT_SOCKET, socket, conf_check_socket, 0,
	"Where the MTA connects: inet:PORT@HOST, inet6:PORT@HOST or unix:PATH "
	"(a unix socket is best for Sendmail)."),
    STR("pidfile", NULL, pidfile, conf_check_path, 0,
	"File the daemon writes its process id to; unset: none."),
    STR("user", NULL, user, conf_check_account, 0,
	"User the daemon runs as once its socket is open; unset: it stays who "
	"started it."),
    STR("group", NULL, group, conf_check_account, 0,
	"Group the daemon runs as; unset: the user's own group."),
    {"socket_mode", OPT_OCTAL, NULL, 0, 0777, F(socket_mode), 0, NULL, 0, NULL,
	"Permissions of a unix socket, an octal string such as \"0660\"; "
	"unset: what the umask leaves."},
    STR("socket_group", NULL, socket_group, conf_check_account, 0,
	"Group of a unix socket (the MTA's, e.g. postfix); unset: the "
	"daemon's."),
    STR("decision_log", NULL, decision_log, conf_check_path, 0,
	"Decision log file, one JSON object per decision (reopened on "
	"SIGUSR1); unset: none."),
    STR("syslog_facility", "mail", syslog_facility, conf_check_facility, 0,
	"Syslog facility: mail, daemon or local0 to local7."),
    UINT("workers", "1024", 1, 4096, workers,
	"Most SPF checks and blocklist lookups in flight at once, each on "
	"a thread of its own: threads start when needed and leave after a "
	"minute idle. A check waiting for a slow DNS zone holds its "
	"thread, so set this well above the checks of a busy second "
	"times the DNS timeout in seconds."),
    GROUP("dns", "DNS settings."),
    {"dns.resolvers", OPT_STRS, NULL, 0, 0, F(resolvers), F(nresolvers),
	conf_check_resolver, 0, NULL,
	"Resolvers to ask, IP addresses: \"IP\", \"IPv4:PORT\" or "
	"\"[IPv6]:PORT\"; unset: those of /etc/resolv.conf."},
    UINT("dns.timeout_ms", "5000", 100, 60000, dns_timeout_ms,
	"Time allowed for one DNS query, in milliseconds."),
    GROUP("spf", "SPF settings."),
    STR("spf.engine", "builtin", spf_engine, conf_check_engine, 0,
	"SPF evaluator: builtin (RFC 7208 complete), or libspf2 where built."),
    UINT("spf.deadline_ms", "20000", 500, 120000, spf_deadline_ms,
	"Time allowed for one whole SPF evaluation, in milliseconds (RFC 7208 "
	"4.6.4: at least 20 seconds)."),
    STR("spf.receiver", NULL, receiver, conf_check_hostname, F_HOSTNAME,
	"This host's name, for the %{r} macro and Received-SPF receiver=."),
    STR("spf.default_explanation", NULL, default_explanation,
	conf_check_explanation, 0,
	"Explanation of an SPF fail when the domain gives none (an SPF "
	"macro-string); unset: none."),
    BOOL("spf.helo_check", "true", helo_check,
	"Check the HELO identity too (RFC 7208 2.3); a HELO fail decides "
	"before MAIL FROM."),
    GROUP("headers", "Headers added to delivered mail."),
    STR("headers.authserv_id", NULL, authserv_id, conf_check_token, F_HOSTNAME,
	"authserv-id of Authentication-Results (RFC 8601); incoming copies "
	"carrying it are forged."),
    BOOL("headers.auth_results", "true", add_auth_results,
	"Add an Authentication-Results header."),
    BOOL("headers.received_spf", "true", add_received_spf,
	"Add a Received-SPF header (RFC 7208 9.1)."),
    BOOL("headers.remove_forged", "true", remove_forged_ar,
	"Remove incoming Authentication-Results headers that carry our "
	"authserv-id."),
    STR("headers.tag_header", "X-Spfguard-Tag", tag_header,
	conf_check_header_name, 0,
	"Header a tag rule adds (its value names the rule)."),
    GROUP("metrics", "The Prometheus metrics page."),
    STR("metrics.listen", NULL, metrics_listen, conf_check_metrics_listen, 0,
	"Address of the metrics page (http://ADDRESS/metrics), a loopback "
	"address: 127.0.0.1:PORT or [::1]:PORT; unset: no page. Read at "
	"start."),
    GROUP("store",
	"Where reputation state (history, greylisting, rate limits) is kept."),
    STR("store.backend", "lmdb", store_backend, conf_check_store_backend, 0,
	"lmdb: a database file on this host, shared by its processes, kept "
	"across restarts; redis: a Redis server shared by several MX hosts."),
    STR("store.path", "/var/lib/spfguard", store_path, conf_check_path, 0,
	"LMDB: the directory of the database (created, owned by the daemon's "
	"user)."),
    UINT("store.map_size_mb", "64", 1, 65536, store_map_size_mb,
	"LMDB: largest size of the database, in MiB."),
    STR("store.redis_host", "127.0.0.1", redis_host, conf_check_redis_host, 0,
	"Redis: server name or address, or unix:/PATH."),
    UINT("store.redis_port", "6379", 1, 65535, redis_port, "Redis: port."),
    STR("store.redis_password", NULL, redis_password, NULL, 0,
	"Redis: password for AUTH; unset: none."),
    UINT("store.redis_db", "0", 0, 1023, redis_db,
	"Redis: database number (SELECT)."),
    UINT("store.redis_pool", "8", 1, 256, redis_pool,
	"Redis: most connections open at once."),
    UINT("store.timeout_ms", "250", 10, 10000, store_timeout_ms,
	"Redis: time allowed to connect and for one command, in "
	"milliseconds."),
    STR("store.prefix", "spfguard:", store_prefix, conf_check_key_prefix, 0,
	"Put before every key (several sites can share a Redis)."),
    STR("store.on_error", "accept", store_on_error, conf_check_on_error, 0,
	"When the store fails: accept (fail open: reputation facts unknown, "
	"nobody greylisted) or tempfail (fail closed: 451 4.3.0). Logged and "
	"counted either way."),
    GROUP("reputation",
	"Reputation settings shared by history, greylisting "
	"and rate limits."),
    UINT("reputation.v4_prefix", "24", 8, 32, v4_prefix,
	"Bits of an IPv4 client address that make its network."),
    UINT("reputation.v6_prefix", "64", 16, 128, v6_prefix,
	"Bits of an IPv6 client address that make its network."),
    GROUP("history", "Sender history: what this site has seen from a domain."),
    BOOL("history.enabled", "false", history,
	"Keep history and give rules the history and anomaly facts."),
    UINT("history.established_messages", "5", 1, 1000000,
	hist_established_messages,
	"SPF-validated messages delivered before a domain is established."),
    UINT("history.established_hours", "24", 0, 87600, hist_established_hours,
	"Hours since its first validated message before a domain is "
	"established."),
    UINT("history.bad_refusals", "3", 0, 1000000, hist_bad_refusals,
	"Validated messages refused (reject) before a domain can be bad; 0: "
	"never."),
    UINT("history.bad_percent", "50", 1, 100, hist_bad_percent,
	"Share of validated messages refused that makes a domain bad."),
    UINT("history.expiry_days", "180", 1, 3650, hist_expiry_days,
	"Days a domain's record is kept after its last message."),
    GROUP("greylist", "Greylisting, for rules whose action is greylist."),
    UINT("greylist.delay", "300", 0, 86400, grey_delay,
	"Seconds before a retry is accepted."),
    UINT("greylist.retry_window", "172800", 60, 2592000, grey_window,
	"Seconds after the delay in which a retry is accepted."),
    UINT("greylist.expiry_days", "35", 1, 365, grey_expiry_days,
	"Days a source that retried correctly is remembered (and not "
	"greylisted again)."),
    POLICY("dnsbl", NULL, "list of lists",
	"DNS blocklists of client addresses: ( { name = \"NAME\"; zone = "
	"\"ZONE\"; codes = [ \"127.0.0.2\", ... ]; or mask = \"127.0.0.N\"; "
	"} ); neither codes nor mask: any 127.0.0.0/8 answer lists."),
    POLICY("rhsbl", NULL, "list of lists",
	"Domain blocklists, as dnsbl, with identities = [ \"from\", "
	"\"helo\" ] (default: from): which names are checked."),
    POLICY("ratelimits", NULL, "list of limits",
	"Rate limits: ( { name = \"NAME\"; key = \"ip\" | \"net\" | "
	"\"sender_domain\" | \"auth_user\"; limit = N; window = SECONDS; "
	"count = \"messages\" | \"recipients\"; action = ...; reply, code, "
	"xcode as a rule's } ); without action a limit only gives rules the "
	"rate_over fact."),
    POLICY("mode", "\"enforce\"", "string",
	"enforce, or monitor: decide and log, never refuse or quarantine."),
    POLICY("trusted_networks", "[ \"127.0.0.0/8\", \"::1/128\" ]",
	"address, CIDR or a list of them",
	"Clients a rule's client = \"trusted\" matches."),
    POLICY("lists", NULL, "group of NAME = [ CIDR, ... ]",
	"Named address lists, for a rule's client condition."),
    POLICY("rules", NULL, "list of rules",
	"The default policy set: ordered rules, the first that matches "
	"decides; none matching (or no rules): accept."),
    POLICY("policy_sets", NULL, "list of sets",
	"Policy sets chosen by recipient domain, each with rules of its own; "
	"the first whose recipient_domains match is used."),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NOPTS	 NELEM(opts)

struct key {
	const char *name;
	const char *syntax;
	const char *meaning;
};

static const struct key rule_keys[] = {
    {"name", "string", "Required, unique in its set; logged and traced."},
    {"action", "string",
	"Required: accept, tag, quarantine, tempfail, greylist or reject."},
    {"match", "group", "Conditions that must all hold; none: always."},
    {"shadow", "boolean",
	"Log what the rule would do, then go on to the next (default false)."},
    {"reply", "string",
	"Reply text of a tempfail, greylist or reject rule; placeholders "
	"{sender} {domain} {ip} {helo} {result} {rule} {rcpt} {explanation} "
	"{identity} {dnsbl} {rhsbl} {rate} {retry}."},
    {"code", "integer",
	"SMTP code: 4xx for tempfail and greylist, 5xx for reject."},
    {"xcode", "string", "Enhanced status code D.D.D of the code's class."},
};

static const struct key set_keys[] = {
    {"name", "string", "Required, unique; \"default\" is the top level's."},
    {"recipient_domains", "pattern or list",
	"Required: the recipient domains this set decides for."},
    {"mode", "string", "enforce or monitor; unset: the top-level mode."},
    {"rules", "list of rules", "The set's rules."},
};

enum match_kind {
	MK_CLIENT,
	MK_PATTERNS,
	MK_BOOL,
	MK_SPF,
	MK_DNSBL, /* names of dnsbl lists, or patterns */
	MK_RHSBL,
	MK_LIMIT, /* names of rate limits */
	MK_HISTORY,
};

static const struct match_key {
	const char *name;
	enum match_kind kind;
	size_t off;
	const char *meaning;
} match_keys[] = {
#define M(field) offsetof(struct policy_match, field)
    {"client", MK_CLIENT, 0,
	"\"trusted\", an address or CIDR, or the name of a list"},
    {"client_name", MK_PATTERNS, M(client_name),
	"client host name (\"unknown\": none)"},
    {"helo", MK_PATTERNS, M(helo), "HELO/EHLO name"},
    {"from_domain", MK_PATTERNS, M(from_domain), "MAIL FROM domain"},
    {"from_localpart", MK_PATTERNS, M(from_localpart), "MAIL FROM local part"},
    {"rcpt_domain", MK_PATTERNS, M(rcpt_domain), "recipient domain"},
    {"auth_user", MK_PATTERNS, M(auth_user), "SMTP AUTH user"},
    {"null_sender", MK_BOOL, M(null_sender), "MAIL FROM:<> (boolean)"},
    {"authenticated", MK_BOOL, M(authenticated),
	"the client used SMTP AUTH (boolean)"},
    {"spf", MK_SPF, M(spf), "SPF result of the deciding identity"},
    {"spf_helo", MK_SPF, M(spf_helo), "SPF result of the HELO identity"},
    {"spf_mfrom", MK_SPF, M(spf_mfrom), "SPF result of MAIL FROM"},
    {"dnsbl", MK_DNSBL, M(dnsbl),
	"names of DNSBLs (\"*\": any) the client is listed on"},
    {"dnsbl_unknown", MK_DNSBL, M(dnsbl_unknown),
	"names of DNSBLs that could not tell (timeout, refused query)"},
    {"rhsbl", MK_RHSBL, M(rhsbl),
	"names of RHSBLs the sender domain or HELO is listed on"},
    {"rhsbl_unknown", MK_RHSBL, M(rhsbl_unknown),
	"names of RHSBLs that could not tell"},
    {"rate_over", MK_LIMIT, M(rate_over),
	"names of rate limits (\"*\": any) the transaction is over"},
    {"history", MK_HISTORY, M(history),
	"class of the sender domain: new, established or bad (needs "
	"history.enabled)"},
    {"anomaly", MK_BOOL, M(anomaly),
	"an established domain whose SPF now fails or softfails (boolean)"},
#undef M
};

struct named_list {
	const char *name; /* borrowed from libconfig */
	struct policy_cidr *nets;
	size_t n;
};

/* The loader's state: one per conf_load() call. */
struct ld {
	struct buf *errors;
	int nerrors;
	const char *path;
	char *dir; /* @include is relative to it */
	struct conf *conf;
	struct named_list *lists;
	size_t nlists;
};

static void
cut(char *, size_t, const char *, ...) __attribute__((format(printf, 3, 4)));

/* cut - snprintf for texts that are bounded on purpose: labels, reasons */
static void
cut(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

/* file_name - a libconfig source file name as the operator can open it */
static char *
file_name(const struct ld *ld, const char *f)
{
	struct buf b;

	if (f == NULL)
		return xstrdup(ld->path);
	if (f[0] == '/' || strcmp(f, ld->path) == 0 ||
	    strcmp(ld->dir, ".") == 0)
		return xstrdup(f);
	/* libconfig 1.5 opens an @include as include_dir/NAME */
	buf_init(&b);
	buf_addf(&b, "%s/%s", ld->dir, f);
	return buf_release(&b);
}

static void error_at(struct ld *, const char *, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));

static void
error_at(struct ld *ld, const char *file, int line, const char *fmt, ...)
{
	char *name = file_name(ld, file);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_addf(ld->errors, "%s:%d: %s\n", name, line, msg);
	free(name);
	ld->nerrors++;
}

/* bad - an error about a setting, at its file and line */
#define bad(ld, s, ...)                                                        \
	error_at((ld), config_setting_source_file(s),                          \
	    (int)config_setting_source_line(s), __VA_ARGS__)

/* esc - a value quoted for a message: bounded, controls as \xNN */
static const char *
esc(const char *v, char *out, size_t len)
{
	size_t o = 0, i;

	out[o++] = '"';
	for (i = 0; v[i] != '\0' && o + 8 < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (v[i] != '\0') {
		(void)memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

/* label - "what: key", or "key" alone at the top level */
static const char *
label(char *out, size_t len, const char *what, const char *key)
{
	cut(out, len, "%s%s%s", what, *what != '\0' ? ": " : "", key);
	return out;
}

static const char *
get_str(struct ld *ld, const config_setting_t *s, const char *what)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		bad(ld, s, "%s: expected a string", what);
		return NULL;
	}
	return config_setting_get_string(s);
}

static int
get_int(struct ld *ld, const config_setting_t *s, const char *what,
    long long min, long long max, long long *v)
{
	int t = config_setting_type(s);

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		bad(ld, s, "%s: expected an integer", what);
		return -1;
	}
	*v = config_setting_get_int64(s);
	if (*v < min || *v > max) {
		bad(ld, s, "%s: %lld is out of range (%lld..%lld)", what, *v,
		    min, max);
		return -1;
	}
	return 0;
}

static int
get_bool(struct ld *ld, const config_setting_t *s, const char *what, bool *v)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		bad(ld, s, "%s: expected true or false", what);
		return -1;
	}
	*v = config_setting_get_bool(s) != 0;
	return 0;
}

typedef void elem_fn(struct ld *, const config_setting_t *, const char *what,
    const char *value, void *arg);

/* each_string - call fn for a string, or for each string of a list */
static void
each_string(struct ld *ld, const config_setting_t *s, const char *what,
    bool nonempty, elem_fn *fn, void *arg)
{
	const config_setting_t *e;
	int i, n;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		fn(ld, s, what, config_setting_get_string(s), arg);
		return;
	}
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		bad(ld, s, "%s: expected a string or a list of strings", what);
		return;
	}
	if ((n = config_setting_length(s)) == 0 && nonempty)
		bad(ld, s, "%s: empty list", what);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			bad(ld, e, "%s: expected a string or a list of strings",
			    what);
			return;
		}
		fn(ld, e, what, config_setting_get_string(e), arg);
	}
}

/* check_keys - every member of group s is one of keys */
static void
check_keys(struct ld *ld, const config_setting_t *s, const char *what,
    const struct key *keys, size_t nkeys)
{
	const config_setting_t *c;
	size_t k;
	int i;

	for (i = 0; (c = config_setting_get_elem(s, (unsigned)i)) != NULL;
	     i++) {
		for (k = 0; k < nkeys; k++)
			if (strcmp(config_setting_name(c), keys[k].name) == 0)
				break;
		if (k == nkeys)
			bad(ld, c, "%s: unknown key \"%.64s\"", what,
			    config_setting_name(c));
	}
}

/*
 * The option table applied.
 */

static const struct opt *
opt_find(const char *name)
{
	size_t i;

	for (i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

static char *
host_name(void)
{
	char h[256];

	if (gethostname(h, sizeof(h)) != 0 || h[0] == '\0')
		return xstrdup("localhost");
	h[sizeof(h) - 1] = '\0';
	return xstrdup(h);
}

/* set_defaults - every table option to its default */
static void
set_defaults(struct conf *c)
{
	const struct opt *o;
	char *base = (char *)c;

	for (o = opts; o < opts + NOPTS; o++) {
		switch (o->type) {
		case OPT_STR:
			*(char **)(base + o->off) = (o->flags & F_HOSTNAME)
			    ? host_name()
			    : o->def != NULL ? xstrdup(o->def)
					     : NULL;
			break;
		case OPT_UINT:
			*(unsigned *)(base + o->off) =
			    (unsigned)strtoul(o->def, NULL, 10);
			break;
		case OPT_BOOL:
			*(bool *)(base + o->off) = strcmp(o->def, "true") == 0;
			break;
		case OPT_OCTAL:
			*(int *)(base + o->off) = -1;
			break;
		default: /* OPT_STRS: none; groups and policy: no field */
			break;
		}
	}
}

static void
add_str(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	const struct opt *o = arg;
	char *base = (char *)ld->conf, err[200], q[80];
	char ***vec = (char ***)(base + o->off);
	size_t *n = (size_t *)(base + o->noff);

	if (o->check != NULL && o->check(v, err, sizeof(err)) != 0) {
		bad(ld, s, "%s: %s: %s", what, esc(v, q, sizeof(q)), err);
		return;
	}
	*vec = xreallocarray(*vec, *n + 1, sizeof(**vec));
	(*vec)[(*n)++] = xstrdup(v);
}

/* load_opt - one table option from its setting */
static void
load_opt(struct ld *ld, const struct opt *o, const config_setting_t *s)
{
	char *base = (char *)ld->conf, err[200], q[80], *end;
	const char *v;
	long long n;
	long mode;
	bool b;

	switch (o->type) {
	case OPT_STR:
		if ((v = get_str(ld, s, o->name)) == NULL)
			break;
		if (o->check != NULL && o->check(v, err, sizeof(err)) != 0) {
			bad(ld, s, "%s: %s: %s", o->name, esc(v, q, sizeof(q)),
			    err);
			break;
		}
		free(*(char **)(base + o->off));
		*(char **)(base + o->off) = xstrdup(v);
		break;
	case OPT_UINT:
		if (get_int(ld, s, o->name, o->min, o->max, &n) == 0)
			*(unsigned *)(base + o->off) = (unsigned)n;
		break;
	case OPT_BOOL:
		if (get_bool(ld, s, o->name, &b) == 0)
			*(bool *)(base + o->off) = b;
		break;
	case OPT_OCTAL:
		v = config_setting_type(s) == CONFIG_TYPE_STRING
		    ? config_setting_get_string(s)
		    : "";
		mode = strtol(v, &end, 8);
		if (*v == '\0' || *end != '\0' || strlen(v) > 4 ||
		    strspn(v, "01234567") != strlen(v) || mode > 0777) {
			bad(ld, s,
			    "%s: expected an octal string such as \"0660\"",
			    o->name);
			break;
		}
		*(int *)(base + o->off) = (int)mode;
		break;
	case OPT_STRS:
		each_string(ld, s, o->name, false, add_str, (void *)o);
		break;
	default:
		break;
	}
}

/* home_of - the option of another group named key, for a hint */
static const struct opt *
home_of(const char *key)
{
	size_t i, n = strlen(key), l;

	for (i = 0; i < NOPTS; i++) {
		l = strlen(opts[i].name);
		if (l > n && opts[i].name[l - n - 1] == '.' &&
		    strcmp(opts[i].name + l - n, key) == 0)
			return &opts[i];
	}
	return NULL;
}

/* load_group - the table options in a group (root: prefix NULL) */
static void
load_group(struct ld *ld, const config_setting_t *g, const char *prefix)
{
	const config_setting_t *c;
	const struct opt *o, *home;
	char name[128];
	int k;

	for (k = 0; (c = config_setting_get_elem(g, (unsigned)k)) != NULL;
	     k++) {
		cut(name, sizeof(name), "%s%s%s", prefix != NULL ? prefix : "",
		    prefix != NULL ? "." : "", config_setting_name(c));
		if ((o = opt_find(name)) == NULL) {
			home = home_of(config_setting_name(c));
			bad(ld, c, "%s%sunknown key \"%.64s\"%s%s%s",
			    prefix != NULL ? prefix : "",
			    prefix != NULL ? ": " : "", config_setting_name(c),
			    home != NULL ? " (did you mean " : "",
			    home != NULL ? home->name : "",
			    home != NULL ? "?)" : "");
		} else if (o->type == OPT_GROUP) {
			if (!config_setting_is_group(c))
				bad(ld, c, "%s: expected a group { ... }",
				    o->name);
			else
				load_group(ld, c, o->name);
		} else if (o->type != OPT_POLICY)
			load_opt(ld, o, c);
	}
}

/* check_socket_options - socket_mode and socket_group need unix: */
static void
check_socket_options(struct ld *ld, const config_setting_t *root)
{
	static const char *const names[] = {"socket_mode", "socket_group"};
	const config_setting_t *s;
	const char *v;
	size_t i;

	/* as written: a bad unix: socket is an error of its own already */
	s = config_setting_get_member(root, "socket");
	v = s != NULL ? config_setting_get_string(s) : NULL;
	if (strncmp(v != NULL ? v : ld->conf->socket, "unix:", 5) == 0)
		return;
	for (i = 0; i < NELEM(names); i++)
		if ((s = config_setting_get_member(root, names[i])) != NULL)
			bad(ld, s, "%s: only for a unix: socket", names[i]);
}

/*
 * The policy: mode, trusted_networks, lists, rules and policy_sets.
 */

/* name_ok - rule and set names: short tokens for logs and traces */
static bool
name_ok(const char *v)
{
	size_t n = strlen(v);

	return n > 0 && n <= NAME_MAX_LEN && strspn(v, NAME_CHARS ":") == n;
}

static int
read_mode(struct ld *ld, const config_setting_t *s, const char *what)
{
	const char *v;
	char q[80];

	if ((v = get_str(ld, s, what)) == NULL)
		return POLICY_ANY;
	if (strcasecmp(v, "enforce") == 0)
		return MODE_ENFORCE;
	if (strcasecmp(v, "monitor") == 0)
		return MODE_MONITOR;
	bad(ld, s, "%s: %s is neither \"enforce\" nor \"monitor\"", what,
	    esc(v, q, sizeof(q)));
	return POLICY_ANY;
}

struct cidrs {
	struct policy_cidr **v;
	size_t *n;
};

static void
push_cidrs(struct cidrs *c, const struct policy_cidr *nets, size_t n)
{
	if (n == 0) /* an empty named list: nets may be NULL */
		return;
	*c->v = xreallocarray(*c->v, *c->n + n, sizeof(**c->v));
	(void)memcpy(*c->v + *c->n, nets, n * sizeof(*nets));
	*c->n += n;
}

static void
add_cidr(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	struct policy_cidr net;
	char q[80];

	if (policy_cidr_parse(v, &net) != 0) {
		bad(ld, s, "%s: %s is not an address or CIDR", what,
		    esc(v, q, sizeof(q)));
		return;
	}
	push_cidrs(arg, &net, 1);
}

static void
add_pattern(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	struct policy_patterns *p = arg;
	const char *c;
	char q[80];

	for (c = v; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			break;
	if (c == v || *c != '\0' || c - v > PATTERN_MAX_LEN) {
		bad(ld, s,
		    "%s: %s is not a pattern (1..%d printable characters, no "
		    "spaces)",
		    what, esc(v, q, sizeof(q)), PATTERN_MAX_LEN);
		return;
	}
	p->pat = xreallocarray(p->pat, p->n + 1, sizeof(*p->pat));
	p->pat[p->n++] = xstrdup(v);
}

static void
add_client(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	struct policy_match *m = arg;
	struct cidrs c = {&m->nets, &m->nnets};
	struct policy_cidr net;
	char q[80];
	size_t i;

	if (strcmp(v, "trusted") == 0) {
		m->client_trusted = true;
		return;
	}
	if (policy_cidr_parse(v, &net) == 0) {
		push_cidrs(&c, &net, 1);
		return;
	}
	for (i = 0; i < ld->nlists; i++)
		if (strcmp(ld->lists[i].name, v) == 0) {
			push_cidrs(&c, ld->lists[i].nets, ld->lists[i].n);
			return;
		}
	bad(ld, s,
	    "%s: %s is not \"trusted\", an address, a CIDR or a list defined "
	    "in lists",
	    what, esc(v, q, sizeof(q)));
}

static void
add_result(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	enum spf_result r;
	char q[80];

	if (spf_result_parse(v, &r) != 0) {
		bad(ld, s,
		    "%s: %s is not an SPF result (pass, fail, softfail, "
		    "neutral, none, temperror, permerror)",
		    what, esc(v, q, sizeof(q)));
		return;
	}
	*(unsigned *)arg |= 1u << r;
}

/* add_list_name - a DNSBL/RHSBL or limit name a rule names; it must be
 * declared, unless it is a pattern ("*") */
struct names_arg {
	struct ld *ld;
	enum match_kind kind;
	struct policy_patterns *out;
};

static bool
declared(const struct ld *ld, enum match_kind kind, const char *v)
{
	const struct conf *c = ld->conf;
	size_t i;

	if (kind == MK_LIMIT) {
		for (i = 0; i < c->nlimits; i++)
			if (strcmp(c->limits[i].name, v) == 0)
				return true;
		return false;
	}
	for (i = 0; i < c->ndnsbls; i++)
		if (strcmp(c->dnsbls[i].name, v) == 0 &&
		    (c->dnsbls[i].kind == DNSBL_IP) == (kind == MK_DNSBL))
			return true;
	return false;
}

static void
add_list_name(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	struct names_arg *a = arg;
	char q[80];

	if (strpbrk(v, "*?[") == NULL && !declared(ld, a->kind, v)) {
		bad(ld, s, "%s: %s is not the name of %s", what,
		    esc(v, q, sizeof(q)),
		    a->kind == MK_LIMIT	      ? "a limit in ratelimits"
			: a->kind == MK_DNSBL ? "a list in dnsbl"
					      : "a list in rhsbl");
		return;
	}
	add_pattern(ld, s, what, v, a->out);
}

static void
add_history(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	enum policy_history h;
	char q[80];

	if (policy_history_parse(v, &h) != 0) {
		bad(ld, s, "%s: %s is not new, established or bad", what,
		    esc(v, q, sizeof(q)));
		return;
	}
	*(unsigned *)arg |= 1u << h;
}

static void
read_match(struct ld *ld, const config_setting_t *s, struct policy_match *m,
    const char *rule)
{
	struct names_arg na;
	const struct match_key *k;
	const config_setting_t *c;
	char what[WHAT_LEN], lbl[WHAT_LEN];
	char *field;
	bool b;
	int i;

	cut(what, sizeof(what), "%s: match", rule);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { ... }", what);
		return;
	}
	for (i = 0; (c = config_setting_get_elem(s, (unsigned)i)) != NULL;
	     i++) {
		for (k = match_keys; k < match_keys + NELEM(match_keys); k++)
			if (strcmp(config_setting_name(c), k->name) == 0)
				break;
		if (k == match_keys + NELEM(match_keys)) {
			bad(ld, c, "%s: unknown key \"%.64s\"", what,
			    config_setting_name(c));
			continue;
		}
		(void)label(lbl, sizeof(lbl), what, k->name);
		field = (char *)m + k->off;
		switch (k->kind) {
		case MK_CLIENT:
			m->has_client = true;
			each_string(ld, c, lbl, true, add_client, m);
			break;
		case MK_PATTERNS:
			each_string(ld, c, lbl, true, add_pattern, field);
			break;
		case MK_BOOL:
			if (get_bool(ld, c, lbl, &b) == 0)
				*(int *)field = b;
			break;
		case MK_SPF:
			each_string(ld, c, lbl, true, add_result, field);
			break;
		case MK_DNSBL:
		case MK_RHSBL:
		case MK_LIMIT:
			na.ld = ld;
			na.kind = k->kind;
			na.out = (struct policy_patterns *)(void *)field;
			each_string(ld, c, lbl, true, add_list_name, &na);
			break;
		case MK_HISTORY:
			each_string(ld, c, lbl, true, add_history, field);
			break;
		}
		if ((k->kind == MK_HISTORY ||
			strcmp(k->name, "anomaly") == 0) &&
		    !ld->conf->history)
			bad(ld, c, "%s: needs history.enabled = true", lbl);
	}
}

/* xcode_ok - an RFC 3463 code of a refusal: 4.X.Y or 5.X.Y */
static bool
xcode_ok(const char *v)
{
	unsigned a, b, d;
	int end = 0;

	return strspn(v, "0123456789.") == strlen(v) &&
	    sscanf(v, "%1u.%3u.%3u%n", &a, &b, &d, &end) == 3 &&
	    (size_t)end == strlen(v) && (a == 4 || a == 5);
}

/* read_codes - code, xcode and reply, which only refusals have */
static void
read_codes(struct ld *ld, const config_setting_t *s, struct policy_rule *r,
    const char *what, bool action_ok)
{
	bool refuses = action_ok && policy_action_refuses(r->action);
	int cls = r->action == ACT_REJECT ? 5 : 4;
	char lbl[WHAT_LEN], err[200], q[80];
	const config_setting_t *c;
	const char *v;
	long long n;

	if ((c = config_setting_get_member(s, "code")) != NULL &&
	    get_int(ld, c, label(lbl, sizeof(lbl), what, "code"), 400, 599,
		&n) == 0 &&
	    action_ok) {
		if (!refuses)
			bad(ld, c,
			    "%s: only tempfail, greylist and reject rules send "
			    "a "
			    "code",
			    lbl);
		else if (n / 100 != cls)
			bad(ld, c, "%s: a %s rule needs a %dxx code", lbl,
			    policy_action_name(r->action), cls);
		else
			r->code = (int)n;
	}
	if ((c = config_setting_get_member(s, "xcode")) != NULL &&
	    (v = get_str(ld, c, label(lbl, sizeof(lbl), what, "xcode"))) !=
		NULL) {
		if (!xcode_ok(v))
			bad(ld, c,
			    "%s: %s is not an enhanced status code 4.X.Y or "
			    "5.X.Y (RFC 3463)",
			    lbl, esc(v, q, sizeof(q)));
		else if (action_ok && !refuses)
			bad(ld, c,
			    "%s: only tempfail, greylist and reject rules send "
			    "a "
			    "code",
			    lbl);
		else if (action_ok && v[0] - '0' != cls)
			bad(ld, c,
			    "%s: %s does not match the %dxx code of a %s rule",
			    lbl, v, cls, policy_action_name(r->action));
		else
			r->xcode = xstrdup(v);
	}
	if ((c = config_setting_get_member(s, "reply")) != NULL &&
	    (v = get_str(ld, c, label(lbl, sizeof(lbl), what, "reply"))) !=
		NULL) {
		if (policy_template_check(v, err, sizeof(err)) != 0)
			bad(ld, c, "%s: %s", lbl, err);
		else if (action_ok && !refuses)
			bad(ld, c,
			    "%s: only tempfail, greylist and reject rules send "
			    "a "
			    "reply",
			    lbl);
		else
			r->reply = xstrdup(v);
	}
}

/* read_name - a rule's or set's name: NULL (reported) when bad */
static const char *
read_name(struct ld *ld, const config_setting_t *s, const char *what,
    const config_setting_t **at)
{
	char lbl[WHAT_LEN], q[80];
	const char *v;

	if ((*at = config_setting_get_member(s, "name")) == NULL) {
		bad(ld, s, "%s: missing name", what);
		return NULL;
	}
	if ((v = get_str(ld, *at, label(lbl, sizeof(lbl), what, "name"))) ==
	    NULL)
		return NULL;
	if (!name_ok(v)) {
		bad(ld, *at,
		    "%s: %s is not a name (1..%d letters, digits or -_.:)", lbl,
		    esc(v, q, sizeof(q)), NAME_MAX_LEN);
		return NULL;
	}
	return v;
}

/* read_rule - one rule of a set; the set's array has room for it */
static void
read_rule(struct ld *ld, const config_setting_t *s, struct policy_set *set,
    const char *where)
{
	struct policy_rule *r = &set->rules[set->nrules++];
	const config_setting_t *c;
	char what[WHAT_LEN], lbl[WHAT_LEN], q[80], place[PATH_MAX + 16];
	bool action_ok = false;
	const char *v;
	size_t i;

	r->match.null_sender = r->match.authenticated = POLICY_ANY;
	r->match.anomaly = POLICY_ANY;
	r->file = file_name(ld, config_setting_source_file(s));
	r->line = (int)config_setting_source_line(s);
	cut(what, sizeof(what), "%srule #%zu", where, set->nrules);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { name = ...; action = ...; }",
		    what);
		return;
	}
	if ((v = read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < set->nrules; i++) {
			const struct policy_rule *o = &set->rules[i];

			if (o->name == NULL || strcasecmp(o->name, v) != 0)
				continue;
			if (strcmp(o->file, r->file) == 0)
				cut(place, sizeof(place), "line %d", o->line);
			else
				cut(place, sizeof(place), "%s:%d", o->file,
				    o->line);
			bad(ld, c, "%sduplicate rule name \"%s\" (first at %s)",
			    where, v, place);
		}
		r->name = xstrdup(v);
		cut(what, sizeof(what), "%srule \"%s\"", where, v);
	}
	check_keys(ld, s, what, rule_keys, NELEM(rule_keys));
	if ((c = config_setting_get_member(s, "action")) == NULL)
		bad(ld, s, "%s: missing action", what);
	else if ((v = get_str(ld, c,
		      label(lbl, sizeof(lbl), what, "action"))) == NULL)
		;
	else if (policy_action_parse(v, &r->action) != 0)
		bad(ld, c,
		    "%s: %s is not an action (accept, tag, quarantine, "
		    "tempfail, greylist, reject)",
		    lbl, esc(v, q, sizeof(q)));
	else
		action_ok = true;
	if ((c = config_setting_get_member(s, "shadow")) != NULL)
		(void)get_bool(ld, c, label(lbl, sizeof(lbl), what, "shadow"),
		    &r->shadow);
	read_codes(ld, s, r, what, action_ok);
	if ((c = config_setting_get_member(s, "match")) != NULL)
		read_match(ld, c, &r->match, what);
}

/* is_list - ( ... ), or an empty [ ] that means the same */
static bool
is_list(const config_setting_t *s)
{
	return config_setting_is_list(s) ||
	    (config_setting_is_array(s) && config_setting_length(s) == 0);
}

/* read_rules - a list of rules into a set */
static void
read_rules(struct ld *ld, const config_setting_t *s, struct policy_set *set,
    const char *where)
{
	int i, n;

	if (!is_list(s)) {
		bad(ld, s, "%srules: expected a list ( { ... }, { ... } )",
		    where);
		return;
	}
	n = config_setting_length(s);
	set->rules = xcalloc((size_t)n, sizeof(*set->rules));
	for (i = 0; i < n; i++)
		read_rule(ld, config_setting_get_elem(s, (unsigned)i), set,
		    where);
}

/* domains_unique - a recipient domain pattern chooses one set only */
static void
domains_unique(struct ld *ld, const config_setting_t *s, struct policy *p)
{
	const struct policy_set *set = &p->sets[p->nsets - 1], *o;
	size_t i, j, k;

	for (i = 0; i < set->rcpt_domains.n; i++)
		for (o = &p->sets[1]; o < set; o++)
			for (j = 0, k = 0; j < o->rcpt_domains.n && k == 0; j++)
				if (strcasecmp(o->rcpt_domains.pat[j],
					set->rcpt_domains.pat[i]) == 0) {
					bad(ld, s,
					    "recipient domain \"%s\" is "
					    "already in policy set \"%s\"",
					    set->rcpt_domains.pat[i],
					    o->name != NULL ? o->name : "?");
					k = 1;
				}
}

/* read_set - one entry of policy_sets; p->sets has room for it */
static void
read_set(struct ld *ld, const config_setting_t *s, struct policy *p)
{
	struct policy_set *set = &p->sets[p->nsets++];
	const config_setting_t *c;
	char what[WHAT_LEN], lbl[WHAT_LEN], where[WHAT_LEN];
	const char *v;
	size_t i;

	set->mode = POLICY_ANY;
	cut(what, sizeof(what), "policy set #%zu", p->nsets - 1);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { name = ...; ... }", what);
		return;
	}
	if ((v = read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < p->nsets; i++)
			if (p->sets[i].name != NULL &&
			    strcasecmp(p->sets[i].name, v) == 0)
				bad(ld, c, "duplicate policy set name \"%s\"",
				    v);
		set->name = xstrdup(v);
		cut(what, sizeof(what), "policy set \"%s\"", v);
	}
	check_keys(ld, s, what, set_keys, NELEM(set_keys));
	if ((c = config_setting_get_member(s, "recipient_domains")) == NULL)
		bad(ld, s, "%s: missing recipient_domains", what);
	else {
		each_string(ld, c,
		    label(lbl, sizeof(lbl), what, "recipient_domains"), true,
		    add_pattern, &set->rcpt_domains);
		domains_unique(ld, c, p);
	}
	if ((c = config_setting_get_member(s, "mode")) != NULL)
		set->mode =
		    read_mode(ld, c, label(lbl, sizeof(lbl), what, "mode"));
	cut(where, sizeof(where), "%.150s: ", what);
	if ((c = config_setting_get_member(s, "rules")) != NULL)
		read_rules(ld, c, set, where);
}

static void
add_list_cidr(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	struct named_list *l = arg;
	struct cidrs c = {&l->nets, &l->n};

	add_cidr(ld, s, what, v, &c);
}

/* read_lists - lists = { NAME = [ CIDR, ... ]; ... } */
static void
read_lists(struct ld *ld, const config_setting_t *s)
{
	const config_setting_t *c;
	struct named_list *l;
	char lbl[WHAT_LEN];
	int i, n;

	if (!config_setting_is_group(s)) {
		bad(ld, s, "lists: expected a group { NAME = [ ... ]; }");
		return;
	}
	n = config_setting_length(s);
	ld->lists = xcalloc((size_t)n, sizeof(*ld->lists));
	for (i = 0; i < n; i++) {
		c = config_setting_get_elem(s, (unsigned)i);
		l = &ld->lists[ld->nlists++];
		l->name = config_setting_name(c);
		(void)label(lbl, sizeof(lbl), "lists", l->name);
		if (strcmp(l->name, "trusted") == 0)
			bad(ld, c,
			    "%s: \"trusted\" is reserved for trusted_networks",
			    lbl);
		each_string(ld, c, lbl, false, add_list_cidr, l);
	}
}

static const struct key list_keys[] = {
    {"name", "string", "Required, unique: what rules and logs call it."},
    {"zone", "string", "Required: the list's DNS zone."},
    {"codes", "address or list",
	"Answers that count as listed, 127.0.0.0/8 addresses."},
    {"mask", "address or integer",
	"Listed when the last octet of an answer has one of these bits "
	"(\"127.0.0.6\" or 6)."},
    {"identities", "string or list",
	"rhsbl only: \"from\" (MAIL FROM domain) and/or \"helo\"."},
};

static const struct key limit_keys[] = {
    {"name", "string", "Required, unique: the rate_over fact names it."},
    {"key", "string",
	"Required: what is counted per: ip, net (reputation.v4_prefix/"
	"v6_prefix), sender_domain or auth_user."},
    {"limit", "integer",
	"Required: most messages (or recipients) in the "
	"window."},
    {"window", "integer", "Required: the sliding window, in seconds."},
    {"count", "string", "messages (default) or recipients."},
    {"action", "string",
	"The default action over the limit (tried before every rule); unset: "
	"none, rules decide with rate_over."},
    {"reply", "string", "As a rule's."},
    {"code", "integer", "As a rule's."},
    {"xcode", "string", "As a rule's."},
};

/* list_code - a 127.0.0.0/8 address, in host order; -1 if not */
static int
list_code(const char *v, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, v, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

static void
add_code(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	struct dnsbl_list *l = arg;
	uint32_t code;
	char q[80];

	if (list_code(v, &code) != 0) {
		bad(ld, s, "%s: %s is not an address in 127.0.0.0/8", what,
		    esc(v, q, sizeof(q)));
		return;
	}
	l->codes = xreallocarray(l->codes, l->ncodes + 1, sizeof(*l->codes));
	l->codes[l->ncodes++] = code;
}

static void
add_identity(struct ld *ld, const config_setting_t *s, const char *what,
    const char *v, void *arg)
{
	struct dnsbl_list *l = arg;
	char q[80];

	if (strcmp(v, "from") == 0)
		l->check_from = true;
	else if (strcmp(v, "helo") == 0)
		l->check_helo = true;
	else
		bad(ld, s, "%s: %s is neither \"from\" nor \"helo\"", what,
		    esc(v, q, sizeof(q)));
}

/* read_mask - mask = 6 or "127.0.0.6": bits of the last octet */
static void
read_mask(struct ld *ld, const config_setting_t *c, const char *what,
    struct dnsbl_list *l)
{
	uint32_t code;
	long long n;

	if (config_setting_type(c) == CONFIG_TYPE_STRING) {
		if (list_code(config_setting_get_string(c), &code) != 0 ||
		    (code & 0xff) == 0)
			bad(ld, c, "%s: expected 127.0.0.N with N 1..255",
			    what);
		else
			l->mask = code & 0xff;
	} else if (get_int(ld, c, what, 1, 255, &n) == 0)
		l->mask = (uint32_t)n;
}

/* read_list - one entry of dnsbl or rhsbl */
static void
read_list(struct ld *ld, const config_setting_t *s, enum dnsbl_kind kind,
    const char *group)
{
	struct dnsbl_list *l;
	const config_setting_t *c;
	char what[WHAT_LEN], lbl[WHAT_LEN], q[80], zone[DNS_MAX_NAME + 2];
	const char *v;
	size_t i, n;

	cut(what, sizeof(what), "%s #%zu", group, ld->conf->ndnsbls + 1);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { name = ...; zone = ...; }",
		    what);
		return;
	}
	ld->conf->dnsbls = xreallocarray(ld->conf->dnsbls,
	    ld->conf->ndnsbls + 1, sizeof(*ld->conf->dnsbls));
	l = &ld->conf->dnsbls[ld->conf->ndnsbls++];
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	if ((v = read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < ld->conf->ndnsbls; i++)
			if (strcmp(ld->conf->dnsbls[i].name, v) == 0)
				bad(ld, c, "%s: duplicate list name \"%s\"",
				    group, v);
		cut(what, sizeof(what), "%s \"%s\"", group, v);
	}
	l->name = xstrdup(v != NULL ? v : "?");
	check_keys(ld, s, what, list_keys,
	    kind == DNSBL_DOMAIN ? NELEM(list_keys) : NELEM(list_keys) - 1);
	if ((c = config_setting_get_member(s, "zone")) == NULL)
		bad(ld, s, "%s: missing zone", what);
	else if ((v = get_str(ld, c, label(lbl, sizeof(lbl), what, "zone"))) !=
	    NULL) {
		n = strlen(v);
		if (n > 0 && v[n - 1] == '.')
			n--;
		cut(zone, sizeof(zone), "%.*s", (int)n, v);
		if (n == 0 || n > DNS_MAX_NAME - 10 || !dns_name_ok(zone))
			bad(ld, c, "%s: %s is not a DNS zone", lbl,
			    esc(v, q, sizeof(q)));
		else
			l->zone = xstrdup(zone);
	}
	if ((c = config_setting_get_member(s, "codes")) != NULL)
		each_string(ld, c, label(lbl, sizeof(lbl), what, "codes"), true,
		    add_code, l);
	if ((c = config_setting_get_member(s, "mask")) != NULL) {
		read_mask(ld, c, label(lbl, sizeof(lbl), what, "mask"), l);
		if (l->ncodes > 0)
			bad(ld, c, "%s: codes or mask, not both", what);
	}
	if (kind == DNSBL_DOMAIN) {
		if ((c = config_setting_get_member(s, "identities")) != NULL)
			each_string(ld, c,
			    label(lbl, sizeof(lbl), what, "identities"), true,
			    add_identity, l);
		else
			l->check_from = true;
	}
}

/* read_lists_of - dnsbl = ( ... ) or rhsbl = ( ... ) */
static void
read_lists_of(struct ld *ld, const config_setting_t *root, const char *group,
    enum dnsbl_kind kind)
{
	const config_setting_t *s;
	int i, n;

	if ((s = config_setting_get_member(root, group)) == NULL)
		return;
	if (!is_list(s)) {
		bad(ld, s, "%s: expected a list ( { ... }, { ... } )", group);
		return;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++)
		read_list(ld, config_setting_get_elem(s, (unsigned)i), kind,
		    group);
}

/* read_limit - one entry of ratelimits; its action becomes a pre-rule */
static void
read_limit(struct ld *ld, const config_setting_t *s, struct policy *p)
{
	struct conf *cf = ld->conf;
	struct rate_limit *l;
	struct policy_rule *r;
	const config_setting_t *c;
	char what[WHAT_LEN], lbl[WHAT_LEN], q[80], name[NAME_MAX_LEN + 16];
	const char *v;
	long long n;
	size_t i;

	cut(what, sizeof(what), "ratelimits #%zu", cf->nlimits + 1);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { name = ...; key = ...; }",
		    what);
		return;
	}
	cf->limits =
	    xreallocarray(cf->limits, cf->nlimits + 1, sizeof(*cf->limits));
	l = &cf->limits[cf->nlimits++];
	memset(l, 0, sizeof(*l));
	if ((v = read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < cf->nlimits; i++)
			if (strcmp(cf->limits[i].name, v) == 0)
				bad(ld, c,
				    "ratelimits: duplicate limit name \"%s\"",
				    v);
		cut(what, sizeof(what), "ratelimits \"%s\"", v);
	}
	l->name = xstrdup(v != NULL ? v : "?");
	check_keys(ld, s, what, limit_keys, NELEM(limit_keys));
	if ((c = config_setting_get_member(s, "key")) == NULL)
		bad(ld, s, "%s: missing key", what);
	else if ((v = get_str(ld, c, label(lbl, sizeof(lbl), what, "key"))) !=
		NULL &&
	    rep_rate_key_parse(v, &l->key) != 0)
		bad(ld, c, "%s: %s is not ip, net, sender_domain or auth_user",
		    lbl, esc(v, q, sizeof(q)));
	if ((c = config_setting_get_member(s, "limit")) == NULL)
		bad(ld, s, "%s: missing limit", what);
	else if (get_int(ld, c, label(lbl, sizeof(lbl), what, "limit"), 1,
		     100000000, &n) == 0)
		l->limit = (unsigned)n;
	if ((c = config_setting_get_member(s, "window")) == NULL)
		bad(ld, s, "%s: missing window", what);
	else if (get_int(ld, c, label(lbl, sizeof(lbl), what, "window"), 1,
		     31 * 86400, &n) == 0)
		l->window = (unsigned)n;
	if ((c = config_setting_get_member(s, "count")) != NULL &&
	    (v = get_str(ld, c, label(lbl, sizeof(lbl), what, "count"))) !=
		NULL) {
		if (strcmp(v, "recipients") == 0)
			l->per_rcpt = true;
		else if (strcmp(v, "messages") != 0)
			bad(ld, c, "%s: %s is neither messages nor recipients",
			    lbl, esc(v, q, sizeof(q)));
	}
	if ((c = config_setting_get_member(s, "action")) == NULL) {
		if (config_setting_get_member(s, "reply") != NULL ||
		    config_setting_get_member(s, "code") != NULL ||
		    config_setting_get_member(s, "xcode") != NULL)
			bad(ld, s, "%s: reply, code and xcode need an action",
			    what);
		return;
	}
	p->pre_rules = xreallocarray(p->pre_rules, p->npre_rules + 1,
	    sizeof(*p->pre_rules));
	r = &p->pre_rules[p->npre_rules++];
	memset(r, 0, sizeof(*r));
	r->match.null_sender = r->match.authenticated = POLICY_ANY;
	r->match.anomaly = POLICY_ANY;
	cut(name, sizeof(name), "ratelimit:%s", l->name);
	r->name = xstrdup(name);
	r->file = file_name(ld, config_setting_source_file(s));
	r->line = (int)config_setting_source_line(s);
	r->match.rate_over.pat = xcalloc(1, sizeof(char *));
	r->match.rate_over.pat[0] = xstrdup(l->name);
	r->match.rate_over.n = 1;
	if ((v = get_str(ld, c, label(lbl, sizeof(lbl), what, "action"))) ==
	    NULL)
		return;
	if (policy_action_parse(v, &r->action) != 0 ||
	    r->action == ACT_GREYLIST)
		bad(ld, c,
		    "%s: %s is not an action for a limit (accept, tag, "
		    "quarantine, tempfail, reject)",
		    lbl, esc(v, q, sizeof(q)));
	else
		read_codes(ld, s, r, what, true);
}

static void
read_limits(struct ld *ld, const config_setting_t *root, struct policy *p)
{
	const config_setting_t *s;
	int i, n;

	if ((s = config_setting_get_member(root, "ratelimits")) == NULL)
		return;
	if (!is_list(s)) {
		bad(ld, s, "ratelimits: expected a list ( { ... }, { ... } )");
		return;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++)
		read_limit(ld, config_setting_get_elem(s, (unsigned)i), p);
}

/* finish_reputation - derived settings, once everything is read */
static void
finish_reputation(struct conf *c)
{
	size_t i, j;

	c->hist.established_messages = c->hist_established_messages;
	c->hist.established_age = c->hist_established_hours * 3600;
	c->hist.bad_refusals = c->hist_bad_refusals;
	c->hist.bad_percent = c->hist_bad_percent;
	c->hist.expiry = c->hist_expiry_days * 86400;
	c->grey.delay = c->grey_delay;
	c->grey.window = c->grey_window;
	c->grey.expiry = c->grey_expiry_days * 86400;
	for (i = 0; i < c->policy->nsets; i++)
		for (j = 0; j < c->policy->sets[i].nrules; j++)
			if (c->policy->sets[i].rules[j].action == ACT_GREYLIST)
				c->uses_greylist = true;
}

/* read_trusted - trusted_networks, or the table's default */
static void
read_trusted(struct ld *ld, const config_setting_t *root, struct policy *p)
{
	struct cidrs c = {&p->trusted, &p->ntrusted};
	struct policy_cidr net;
	const config_setting_t *s;
	const char *d, *e;
	char tmp[64];

	if ((s = config_setting_get_member(root, "trusted_networks")) != NULL) {
		each_string(ld, s, "trusted_networks", false, add_cidr, &c);
		return;
	}
	/* the default: the strings between quotes of the table's text */
	for (d = opt_find("trusted_networks")->def;
	     (d = strchr(d, '"')) != NULL; d = e + 1) {
		e = strchr(++d, '"');
		cut(tmp, sizeof(tmp), "%.*s", (int)(e - d), d);
		if (policy_cidr_parse(tmp, &net) == 0)
			push_cidrs(&c, &net, 1);
	}
}

static void
load_policy(struct ld *ld, const config_setting_t *root)
{
	struct policy *p = xcalloc(1, sizeof(*p));
	const config_setting_t *s, *sets;
	int i, n = 0, mode;

	ld->conf->policy = p;
	p->mode = MODE_ENFORCE;
	if ((s = config_setting_get_member(root, "mode")) != NULL &&
	    (mode = read_mode(ld, s, "mode")) != POLICY_ANY)
		p->mode = (enum policy_mode)mode;
	read_trusted(ld, root, p);
	if ((s = config_setting_get_member(root, "lists")) != NULL)
		read_lists(ld, s);
	read_lists_of(ld, root, "dnsbl", DNSBL_IP);
	read_lists_of(ld, root, "rhsbl", DNSBL_DOMAIN);
	read_limits(ld, root, p);
	if ((sets = config_setting_get_member(root, "policy_sets")) != NULL) {
		if (is_list(sets))
			n = config_setting_length(sets);
		else
			bad(ld, sets,
			    "policy_sets: expected a list ( { ... }, { ... } "
			    ")");
	}
	p->sets = xcalloc((size_t)n + 1, sizeof(*p->sets));
	p->nsets = 1;
	p->sets[0].name = xstrdup("default");
	p->sets[0].mode = POLICY_ANY;
	if ((s = config_setting_get_member(root, "rules")) != NULL)
		read_rules(ld, s, &p->sets[0], "");
	for (i = 0; i < n; i++)
		read_set(ld, config_setting_get_elem(sets, (unsigned)i), p);
	finish_reputation(ld->conf);
}

static void
conf_free(struct conf *c)
{
	const struct opt *o;
	char *base = (char *)c;
	size_t i, n;
	char **v;

	for (o = opts; o < opts + NOPTS; o++) {
		if (o->type == OPT_STR)
			free(*(char **)(base + o->off));
		else if (o->type == OPT_STRS) {
			v = *(char ***)(base + o->off);
			n = *(size_t *)(base + o->noff);
			for (i = 0; i < n; i++)
				free(v[i]);
			free(v);
		}
	}
	for (i = 0; i < c->ndnsbls; i++)
		dnsbl_list_free(&c->dnsbls[i]);
	free(c->dnsbls);
	for (i = 0; i < c->nlimits; i++)
		free(c->limits[i].name);
	free(c->limits);
	policy_free(c->policy);
	free(c->file);
	free(c);
}

/* dir_of - the directory of a path, "." for a bare name */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/*
 * include_name - the file name of an "@include" line, as libconfig 1.5's
 * scanner reads it (\\ and \" escaped), or NULL when the line is not one
 */
static char *
include_name(const char *line)
{
	static const char kw[] = "@include";
	struct buf b;
	const char *p = line + strspn(line, " \t");

	if (strncmp(p, kw, sizeof(kw) - 1) != 0)
		return NULL;
	p += sizeof(kw) - 1;
	if (*p != ' ' && *p != '\t')
		return NULL;
	p += strspn(p, " \t");
	if (*p++ != '"')
		return NULL;
	buf_init(&b);
	for (; *p != '"'; p++) {
		if (*p == '\0' || *p == '\n') {
			buf_free(&b);
			return NULL;
		}
		if (*p == '\\' && (p[1] == '\\' || p[1] == '"'))
			p++;
		buf_addc(&b, *p);
	}
	return buf_release(&b);
}

/* The files being read, outermost first: an @include loop is one of them
 * again. */
struct include_chain {
	dev_t dev[12];
	ino_t ino[12];
	int depth;   /* entries */
	int total;   /* @include lines followed, in all the files */
	bool capped; /* said once */
};

#define MAX_INCLUDES 256

/*
 * check_includes - refuse an @include of anything but a regular file, a
 * loop, and more @include lines than MAX_INCLUDES in all.
 * libconfig 1.5 opens include_dir/NAME with fopen(): a directory (`@include
 * ""` names the configuration's own) opens, and its first read ends the
 * process from inside the scanner (flex's "input in flex scanner failed",
 * exit 2), on a reload too; a FIFO or a device would block or never end. A
 * file that includes itself N times is read N^10 times before libconfig's
 * nesting limit (10) stops it: minutes for N = 4 (found by the fuzzer).
 * Files that do not exist are left to libconfig ("cannot open include
 * file"). label is the file's name for messages, NULL for the main file.
 */
static void
check_includes(struct ld *ld, struct include_chain *ch, const char *file,
    const char *label)
{
	struct stat st;
	char *line = NULL, *name, *full, q[160];
	size_t cap = 0;
	int lineno = 0, i;
	FILE *fp;

	/* libconfig's own limit is 10 levels: it reports deeper ones */
	if (ch->depth > 10 || (fp = fopen(file, "r")) == NULL)
		return;
	if (fstat(fileno(fp), &st) == 0) {
		ch->dev[ch->depth] = st.st_dev;
		ch->ino[ch->depth] = st.st_ino;
	}
	ch->depth++;
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		if ((name = include_name(line)) == NULL)
			continue;
		if (++ch->total > MAX_INCLUDES) {
			if (!ch->capped)
				error_at(ld, label, lineno,
				    "more than %d @include lines in all",
				    MAX_INCLUDES);
			ch->capped = true;
			free(name);
			break;
		}
		full = xmalloc(strlen(ld->dir) + strlen(name) + 2);
		(void)sprintf(full, "%s/%s", ld->dir, name);
		if (stat(full, &st) != 0)
			; /* libconfig says it cannot open it */
		else if (!S_ISREG(st.st_mode))
			error_at(ld, label, lineno,
			    "@include %s: not a regular file",
			    esc(name, q, sizeof(q)));
		else {
			for (i = 0; i < ch->depth; i++)
				if (ch->dev[i] == st.st_dev &&
				    ch->ino[i] == st.st_ino)
					break;
			if (i < ch->depth)
				error_at(ld, label, lineno,
				    "@include %s: includes itself (a loop)",
				    esc(name, q, sizeof(q)));
			else
				check_includes(ld, ch, full, name);
		}
		free(full);
		free(name);
	}
	ch->depth--;
	free(line);
	(void)fclose(fp);
}

struct conf *
conf_load(const char *path, struct buf *errors)
{
	struct ld ld;
	struct include_chain chain;
	struct stat st;
	config_t cf;
	FILE *fp;
	size_t i;

	memset(&ld, 0, sizeof(ld));
	ld.errors = errors;
	ld.path = path;
	ld.dir = dir_of(path);
	ld.conf = xcalloc(1, sizeof(*ld.conf));
	ld.conf->refs = 1;
	ld.conf->file = xstrdup(path);
	set_defaults(ld.conf);
	config_init(&cf);
	config_set_include_dir(&cf, ld.dir);
	/*
	 * libconfig says only "file I/O error": ask for the reason first. A
	 * directory opens and its first read would end the process (see
	 * check_includes()).
	 */
	if ((fp = fopen(path, "r")) == NULL) {
		buf_addf(errors, "%s: %s\n", path, strerror(errno));
		ld.nerrors++;
	} else {
		if (fstat(fileno(fp), &st) == 0 && !S_ISREG(st.st_mode)) {
			buf_addf(errors, "%s: not a regular file\n", path);
			ld.nerrors++;
		}
		(void)fclose(fp);
	}
	if (ld.nerrors == 0) {
		memset(&chain, 0, sizeof(chain));
		check_includes(&ld, &chain, path, NULL);
	}
	if (ld.nerrors == 0) {
		if (config_read_file(&cf, path) != CONFIG_TRUE)
			error_at(&ld, config_error_file(&cf),
			    config_error_line(&cf), "%s",
			    config_error_text(&cf));
		else {
			load_group(&ld, config_root_setting(&cf), NULL);
			check_socket_options(&ld, config_root_setting(&cf));
			load_policy(&ld, config_root_setting(&cf));
		}
	}
	config_destroy(&cf);
	for (i = 0; i < ld.nlists; i++)
		free(ld.lists[i].nets);
	free(ld.lists);
	free(ld.dir);
	if (ld.nerrors > 0) {
		conf_free(ld.conf);
		return NULL;
	}
	return ld.conf;
}

bool
conf_uses_store(const struct conf *c)
{
	return c->history || c->nlimits > 0 || c->uses_greylist;
}

void
conf_store_opts(const struct conf *c, struct store_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->backend =
	    strcmp(c->store_backend, "redis") == 0 ? STORE_REDIS : STORE_LMDB;
	o->path = c->store_path;
	o->map_size_mb = c->store_map_size_mb;
	o->host = c->redis_host;
	o->port = c->redis_port;
	o->password = c->redis_password;
	o->db = c->redis_db;
	o->pool = c->redis_pool;
	o->timeout_ms = c->store_timeout_ms;
	o->prefix = c->store_prefix;
}

static bool
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool
conf_same_store(const struct conf *a, const struct conf *b)
{
	struct store_opts x, y;

	conf_store_opts(a, &x);
	conf_store_opts(b, &y);
	return x.backend == y.backend && same_str(x.path, y.path) &&
	    x.map_size_mb == y.map_size_mb && same_str(x.host, y.host) &&
	    x.port == y.port && same_str(x.password, y.password) &&
	    x.db == y.db && x.pool == y.pool && x.timeout_ms == y.timeout_ms &&
	    same_str(x.prefix, y.prefix);
}

bool
conf_store_fail_closed(const struct conf *c)
{
	return strcmp(c->store_on_error, "tempfail") == 0;
}

struct conf *
conf_ref(struct conf *c)
{
	(void)__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void
conf_unref(struct conf *c)
{
	if (c != NULL && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		conf_free(c);
}

static void
describe_keys(struct buf *out, const char *title, const struct key *k, size_t n)
{
	size_t i;

	buf_addf(out, "%s\n\n", title);
	for (i = 0; i < n; i++)
		buf_addf(out, "  %s (%s)\n\t%s\n\n", k[i].name, k[i].syntax,
		    k[i].meaning);
}

void
conf_describe(struct buf *out)
{
	static const char *const types[] = {[OPT_GROUP] = "group",
	    [OPT_STR] = "string",
	    [OPT_UINT] = "integer",
	    [OPT_BOOL] = "boolean",
	    [OPT_STRS] = "string or list of strings",
	    [OPT_OCTAL] = "octal string"};
	const struct match_key *m;
	const struct opt *o;

	for (o = opts; o < opts + NOPTS; o++) {
		buf_addf(out, "%s (%s", o->name,
		    o->type == OPT_POLICY ? o->syntax : types[o->type]);
		if (o->type == OPT_UINT)
			buf_addf(out, " %ld..%ld", o->min, o->max);
		if (o->flags & F_HOSTNAME)
			buf_adds(out, ", default: the host name");
		else if (o->def != NULL && o->type == OPT_STR)
			buf_addf(out, ", default \"%s\"", o->def);
		else if (o->def != NULL)
			buf_addf(out, ", default %s", o->def);
		buf_addf(out, ")\n\t%s\n\n", o->meaning);
	}
	describe_keys(out,
	    "A rule, in rules and in a policy set's rules:", rule_keys,
	    NELEM(rule_keys));
	buf_adds(out,
	    "Conditions of a rule's match group, all of which must hold; each "
	    "takes a\nstring or a list of strings (any may match) unless it "
	    "says boolean:\n\n");
	for (m = match_keys; m < match_keys + NELEM(match_keys); m++)
		buf_addf(out, "  %s\n\t%s\n\n", m->name, m->meaning);
	describe_keys(out, "A policy set, in policy_sets:", set_keys,
	    NELEM(set_keys));
	describe_keys(out, "A list, in dnsbl and rhsbl:", list_keys,
	    NELEM(list_keys));
	describe_keys(out, "A limit, in ratelimits:", limit_keys,
	    NELEM(limit_keys));
}
