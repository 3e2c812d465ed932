/*
 * conf.c - the configuration: one libconfig file (and its @includes) in,
 * one validated, immutable, reference-counted struct conf out.
 *
 * With conf_policy.c and conf_rep.c (conf_impl.h), libconfig's only user.
 * conf_load() reads the whole file, checks the daemon, dns, spf and
 * headers settings against the option table below, the policy (mode,
 * trusted_networks, lists, rules, policy_sets: conf_policy.c) and the
 * blocklists and rate limits (conf_rep.c) with code of their own, and
 * gathers every error as "file:line: message" before it gives up, so
 * that an operator fixes a file in one pass. Unknown keys
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
#include "conf_impl.h"
#include "dns.h"
#include "dnsbl.h"
#include "policy.h"
#include "reputation.h"
#include "spf.h"
#include "spf_macro.h"
#include "xalloc.h"

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

#define NOPTS NELEM(opts)

/* conf_cut - snprintf for texts that are bounded on purpose: labels, reasons */
void
conf_cut(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

/* conf_file_name - a libconfig source file name as the operator can open it */
char *
conf_file_name(const struct ld *ld, const char *f)
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

void
conf_error_at(struct ld *ld, const char *file, int line, const char *fmt, ...)
{
	char *name = conf_file_name(ld, file);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_addf(ld->errors, "%s:%d: %s\n", name, line, msg);
	free(name);
	ld->nerrors++;
}

/* conf_esc - a value quoted for a message: bounded, controls as \xNN */
const char *
conf_esc(const char *v, char *out, size_t len)
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

/* conf_label - "what: key", or "key" alone at the top level */
const char *
conf_label(char *out, size_t len, const char *what, const char *key)
{
	conf_cut(out, len, "%s%s%s", what, *what != '\0' ? ": " : "", key);
	return out;
}

const char *
conf_get_str(struct ld *ld, const config_setting_t *s, const char *what)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		bad(ld, s, "%s: expected a string", what);
		return NULL;
	}
	return config_setting_get_string(s);
}

int
conf_get_int(struct ld *ld, const config_setting_t *s, const char *what,
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

int
conf_get_bool(struct ld *ld, const config_setting_t *s, const char *what,
    bool *v)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		bad(ld, s, "%s: expected true or false", what);
		return -1;
	}
	*v = config_setting_get_bool(s) != 0;
	return 0;
}

/* conf_each_string - call fn for a string, or for each string of a list */
void
conf_each_string(struct ld *ld, const config_setting_t *s, const char *what,
    bool nonempty, conf_elem_fn *fn, void *arg)
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

/* conf_known_keys - every member of group s is one of keys */
void
conf_known_keys(struct ld *ld, const config_setting_t *s, const char *what,
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

/* conf_opt_default - an option's default, as a file writes it */
const char *
conf_opt_default(const char *name)
{
	const struct opt *o = opt_find(name);

	return o != NULL ? o->def : NULL;
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
		bad(ld, s, "%s: %s: %s", what, conf_esc(v, q, sizeof(q)), err);
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
		if ((v = conf_get_str(ld, s, o->name)) == NULL)
			break;
		if (o->check != NULL && o->check(v, err, sizeof(err)) != 0) {
			bad(ld, s, "%s: %s: %s", o->name,
			    conf_esc(v, q, sizeof(q)), err);
			break;
		}
		free(*(char **)(base + o->off));
		*(char **)(base + o->off) = xstrdup(v);
		break;
	case OPT_UINT:
		if (conf_get_int(ld, s, o->name, o->min, o->max, &n) == 0)
			*(unsigned *)(base + o->off) = (unsigned)n;
		break;
	case OPT_BOOL:
		if (conf_get_bool(ld, s, o->name, &b) == 0)
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
		conf_each_string(ld, s, o->name, false, add_str, (void *)o);
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
		conf_cut(name, sizeof(name), "%s%s%s",
		    prefix != NULL ? prefix : "", prefix != NULL ? "." : "",
		    config_setting_name(c));
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
				conf_error_at(ld, label, lineno,
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
			conf_error_at(ld, label, lineno,
			    "@include %s: not a regular file",
			    conf_esc(name, q, sizeof(q)));
		else {
			for (i = 0; i < ch->depth; i++)
				if (ch->dev[i] == st.st_dev &&
				    ch->ino[i] == st.st_ino)
					break;
			if (i < ch->depth)
				conf_error_at(ld, label, lineno,
				    "@include %s: includes itself (a loop)",
				    conf_esc(name, q, sizeof(q)));
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
			conf_error_at(&ld, config_error_file(&cf),
			    config_error_line(&cf), "%s",
			    config_error_text(&cf));
		else {
			load_group(&ld, config_root_setting(&cf), NULL);
			check_socket_options(&ld, config_root_setting(&cf));
			conf_load_policy(&ld, config_root_setting(&cf));
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

void
conf_describe_keys(struct buf *out, const char *title, const struct key *k,
    size_t n)
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
	conf_describe_policy(out);
	conf_describe_reputation(out);
}
