/*
 * conf_policy.c - the policy part of the configuration: mode,
 * trusted_networks, lists (named CIDR lists), rules and policy_sets, read
 * from libconfig's tree into the snapshot's struct policy (conf_impl.h
 * says who calls what). Blocklists and rate limits, which rules name, are
 * conf_rep.c's. Errors are gathered in the loader's state with file:line;
 * nothing here logs or exits.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_impl.h"
#include "dnsbl.h"
#include "reputation.h"
#include "spf.h"
#include "spf_macro.h"
#include "xalloc.h"

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

	if ((v = conf_get_str(ld, s, what)) == NULL)
		return POLICY_ANY;
	if (strcasecmp(v, "enforce") == 0)
		return MODE_ENFORCE;
	if (strcasecmp(v, "monitor") == 0)
		return MODE_MONITOR;
	bad(ld, s, "%s: %s is neither \"enforce\" nor \"monitor\"", what,
	    conf_esc(v, q, sizeof(q)));
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
		    conf_esc(v, q, sizeof(q)));
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
		    what, conf_esc(v, q, sizeof(q)), PATTERN_MAX_LEN);
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
	    what, conf_esc(v, q, sizeof(q)));
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
		    what, conf_esc(v, q, sizeof(q)));
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
		    conf_esc(v, q, sizeof(q)),
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
		    conf_esc(v, q, sizeof(q)));
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

	conf_cut(what, sizeof(what), "%s: match", rule);
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
		(void)conf_label(lbl, sizeof(lbl), what, k->name);
		field = (char *)m + k->off;
		switch (k->kind) {
		case MK_CLIENT:
			m->has_client = true;
			conf_each_string(ld, c, lbl, true, add_client, m);
			break;
		case MK_PATTERNS:
			conf_each_string(ld, c, lbl, true, add_pattern, field);
			break;
		case MK_BOOL:
			if (conf_get_bool(ld, c, lbl, &b) == 0)
				*(int *)field = b;
			break;
		case MK_SPF:
			conf_each_string(ld, c, lbl, true, add_result, field);
			break;
		case MK_DNSBL:
		case MK_RHSBL:
		case MK_LIMIT:
			na.ld = ld;
			na.kind = k->kind;
			na.out = (struct policy_patterns *)(void *)field;
			conf_each_string(ld, c, lbl, true, add_list_name, &na);
			break;
		case MK_HISTORY:
			conf_each_string(ld, c, lbl, true, add_history, field);
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

/* conf_read_codes - code, xcode and reply, which only refusals have */
void
conf_read_codes(struct ld *ld, const config_setting_t *s, struct policy_rule *r,
    const char *what, bool action_ok)
{
	bool refuses = action_ok && policy_action_refuses(r->action);
	int cls = r->action == ACT_REJECT ? 5 : 4;
	char lbl[WHAT_LEN], err[200], q[80];
	const config_setting_t *c;
	const char *v;
	long long n;

	if ((c = config_setting_get_member(s, "code")) != NULL &&
	    conf_get_int(ld, c, conf_label(lbl, sizeof(lbl), what, "code"), 400,
		599, &n) == 0 &&
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
	    (v = conf_get_str(ld, c,
		 conf_label(lbl, sizeof(lbl), what, "xcode"))) != NULL) {
		if (!xcode_ok(v))
			bad(ld, c,
			    "%s: %s is not an enhanced status code 4.X.Y or "
			    "5.X.Y (RFC 3463)",
			    lbl, conf_esc(v, q, sizeof(q)));
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
	    (v = conf_get_str(ld, c,
		 conf_label(lbl, sizeof(lbl), what, "reply"))) != NULL) {
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

/* conf_read_name - a rule's or set's name: NULL (reported) when bad */
const char *
conf_read_name(struct ld *ld, const config_setting_t *s, const char *what,
    const config_setting_t **at)
{
	char lbl[WHAT_LEN], q[80];
	const char *v;

	if ((*at = config_setting_get_member(s, "name")) == NULL) {
		bad(ld, s, "%s: missing name", what);
		return NULL;
	}
	if ((v = conf_get_str(ld, *at,
		 conf_label(lbl, sizeof(lbl), what, "name"))) == NULL)
		return NULL;
	if (!name_ok(v)) {
		bad(ld, *at,
		    "%s: %s is not a name (1..%d letters, digits or -_.:)", lbl,
		    conf_esc(v, q, sizeof(q)), NAME_MAX_LEN);
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
	r->file = conf_file_name(ld, config_setting_source_file(s));
	r->line = (int)config_setting_source_line(s);
	conf_cut(what, sizeof(what), "%srule #%zu", where, set->nrules);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { name = ...; action = ...; }",
		    what);
		return;
	}
	if ((v = conf_read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < set->nrules; i++) {
			const struct policy_rule *o = &set->rules[i];

			if (o->name == NULL || strcasecmp(o->name, v) != 0)
				continue;
			if (strcmp(o->file, r->file) == 0)
				conf_cut(place, sizeof(place), "line %d",
				    o->line);
			else
				conf_cut(place, sizeof(place), "%s:%d", o->file,
				    o->line);
			bad(ld, c, "%sduplicate rule name \"%s\" (first at %s)",
			    where, v, place);
		}
		r->name = xstrdup(v);
		conf_cut(what, sizeof(what), "%srule \"%s\"", where, v);
	}
	conf_known_keys(ld, s, what, rule_keys, NELEM(rule_keys));
	if ((c = config_setting_get_member(s, "action")) == NULL)
		bad(ld, s, "%s: missing action", what);
	else if ((v = conf_get_str(ld, c,
		      conf_label(lbl, sizeof(lbl), what, "action"))) == NULL)
		;
	else if (policy_action_parse(v, &r->action) != 0)
		bad(ld, c,
		    "%s: %s is not an action (accept, tag, quarantine, "
		    "tempfail, greylist, reject)",
		    lbl, conf_esc(v, q, sizeof(q)));
	else
		action_ok = true;
	if ((c = config_setting_get_member(s, "shadow")) != NULL)
		(void)conf_get_bool(ld, c,
		    conf_label(lbl, sizeof(lbl), what, "shadow"), &r->shadow);
	conf_read_codes(ld, s, r, what, action_ok);
	if ((c = config_setting_get_member(s, "match")) != NULL)
		read_match(ld, c, &r->match, what);
}

/* conf_is_list - ( ... ), or an empty [ ] that means the same */
bool
conf_is_list(const config_setting_t *s)
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

	if (!conf_is_list(s)) {
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
	conf_cut(what, sizeof(what), "policy set #%zu", p->nsets - 1);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { name = ...; ... }", what);
		return;
	}
	if ((v = conf_read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < p->nsets; i++)
			if (p->sets[i].name != NULL &&
			    strcasecmp(p->sets[i].name, v) == 0)
				bad(ld, c, "duplicate policy set name \"%s\"",
				    v);
		set->name = xstrdup(v);
		conf_cut(what, sizeof(what), "policy set \"%s\"", v);
	}
	conf_known_keys(ld, s, what, set_keys, NELEM(set_keys));
	if ((c = config_setting_get_member(s, "recipient_domains")) == NULL)
		bad(ld, s, "%s: missing recipient_domains", what);
	else {
		conf_each_string(ld, c,
		    conf_label(lbl, sizeof(lbl), what, "recipient_domains"),
		    true, add_pattern, &set->rcpt_domains);
		domains_unique(ld, c, p);
	}
	if ((c = config_setting_get_member(s, "mode")) != NULL)
		set->mode = read_mode(ld, c,
		    conf_label(lbl, sizeof(lbl), what, "mode"));
	conf_cut(where, sizeof(where), "%.150s: ", what);
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
		(void)conf_label(lbl, sizeof(lbl), "lists", l->name);
		if (strcmp(l->name, "trusted") == 0)
			bad(ld, c,
			    "%s: \"trusted\" is reserved for trusted_networks",
			    lbl);
		conf_each_string(ld, c, lbl, false, add_list_cidr, l);
	}
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
		conf_each_string(ld, s, "trusted_networks", false, add_cidr,
		    &c);
		return;
	}
	/* the default: the strings between quotes of the table's text */
	for (d = conf_opt_default("trusted_networks");
	     (d = strchr(d, '"')) != NULL; d = e + 1) {
		e = strchr(++d, '"');
		conf_cut(tmp, sizeof(tmp), "%.*s", (int)(e - d), d);
		if (policy_cidr_parse(tmp, &net) == 0)
			push_cidrs(&c, &net, 1);
	}
}

void
conf_load_policy(struct ld *ld, const config_setting_t *root)
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
	conf_read_reputation(ld, root, p);
	if ((sets = config_setting_get_member(root, "policy_sets")) != NULL) {
		if (conf_is_list(sets))
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
	conf_finish_reputation(ld->conf);
}

/* conf_describe_policy - the keys of rules, match groups and sets */
void
conf_describe_policy(struct buf *out)
{
	const struct match_key *m;

	conf_describe_keys(out,
	    "A rule, in rules and in a policy set's rules:", rule_keys,
	    NELEM(rule_keys));
	buf_adds(out,
	    "Conditions of a rule's match group, all of which must hold; each "
	    "takes a\nstring or a list of strings (any may match) unless it "
	    "says boolean:\n\n");
	for (m = match_keys; m < match_keys + NELEM(match_keys); m++)
		buf_addf(out, "  %s\n\t%s\n\n", m->name, m->meaning);
	conf_describe_keys(out, "A policy set, in policy_sets:", set_keys,
	    NELEM(set_keys));
}
