/*
 * conf_rep.c - the reputation part of the configuration: the dnsbl and
 * rhsbl lists and the ratelimits (a limit with an action becomes a rule
 * tried before the policy's own), and the history and greylisting
 * settings derived from the option table once everything is read.
 * Errors are gathered in the loader's state with file:line (conf_impl.h).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_impl.h"
#include "dnsbl.h"
#include "reputation.h"
#include "xalloc.h"

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
		    conf_esc(v, q, sizeof(q)));
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
		    conf_esc(v, q, sizeof(q)));
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
	} else if (conf_get_int(ld, c, what, 1, 255, &n) == 0)
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

	conf_cut(what, sizeof(what), "%s #%zu", group, ld->conf->ndnsbls + 1);
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
	if ((v = conf_read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < ld->conf->ndnsbls; i++)
			if (strcmp(ld->conf->dnsbls[i].name, v) == 0)
				bad(ld, c, "%s: duplicate list name \"%s\"",
				    group, v);
		conf_cut(what, sizeof(what), "%s \"%s\"", group, v);
	}
	l->name = xstrdup(v != NULL ? v : "?");
	conf_known_keys(ld, s, what, list_keys,
	    kind == DNSBL_DOMAIN ? NELEM(list_keys) : NELEM(list_keys) - 1);
	if ((c = config_setting_get_member(s, "zone")) == NULL)
		bad(ld, s, "%s: missing zone", what);
	else if ((v = conf_get_str(ld, c,
		      conf_label(lbl, sizeof(lbl), what, "zone"))) != NULL) {
		n = strlen(v);
		if (n > 0 && v[n - 1] == '.')
			n--;
		conf_cut(zone, sizeof(zone), "%.*s", (int)n, v);
		if (n == 0 || n > DNS_MAX_NAME - 10 || !dns_name_ok(zone))
			bad(ld, c, "%s: %s is not a DNS zone", lbl,
			    conf_esc(v, q, sizeof(q)));
		else
			l->zone = xstrdup(zone);
	}
	if ((c = config_setting_get_member(s, "codes")) != NULL)
		conf_each_string(ld, c,
		    conf_label(lbl, sizeof(lbl), what, "codes"), true, add_code,
		    l);
	if ((c = config_setting_get_member(s, "mask")) != NULL) {
		read_mask(ld, c, conf_label(lbl, sizeof(lbl), what, "mask"), l);
		if (l->ncodes > 0)
			bad(ld, c, "%s: codes or mask, not both", what);
	}
	if (kind == DNSBL_DOMAIN) {
		if ((c = config_setting_get_member(s, "identities")) != NULL)
			conf_each_string(ld, c,
			    conf_label(lbl, sizeof(lbl), what, "identities"),
			    true, add_identity, l);
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
	if (!conf_is_list(s)) {
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

	conf_cut(what, sizeof(what), "ratelimits #%zu", cf->nlimits + 1);
	if (!config_setting_is_group(s)) {
		bad(ld, s, "%s: expected a group { name = ...; key = ...; }",
		    what);
		return;
	}
	cf->limits =
	    xreallocarray(cf->limits, cf->nlimits + 1, sizeof(*cf->limits));
	l = &cf->limits[cf->nlimits++];
	memset(l, 0, sizeof(*l));
	if ((v = conf_read_name(ld, s, what, &c)) != NULL) {
		for (i = 0; i + 1 < cf->nlimits; i++)
			if (strcmp(cf->limits[i].name, v) == 0)
				bad(ld, c,
				    "ratelimits: duplicate limit name \"%s\"",
				    v);
		conf_cut(what, sizeof(what), "ratelimits \"%s\"", v);
	}
	l->name = xstrdup(v != NULL ? v : "?");
	conf_known_keys(ld, s, what, limit_keys, NELEM(limit_keys));
	if ((c = config_setting_get_member(s, "key")) == NULL)
		bad(ld, s, "%s: missing key", what);
	else if ((v = conf_get_str(ld, c,
		      conf_label(lbl, sizeof(lbl), what, "key"))) != NULL &&
	    rep_rate_key_parse(v, &l->key) != 0)
		bad(ld, c, "%s: %s is not ip, net, sender_domain or auth_user",
		    lbl, conf_esc(v, q, sizeof(q)));
	if ((c = config_setting_get_member(s, "limit")) == NULL)
		bad(ld, s, "%s: missing limit", what);
	else if (conf_get_int(ld, c,
		     conf_label(lbl, sizeof(lbl), what, "limit"), 1, 100000000,
		     &n) == 0)
		l->limit = (unsigned)n;
	if ((c = config_setting_get_member(s, "window")) == NULL)
		bad(ld, s, "%s: missing window", what);
	else if (conf_get_int(ld, c,
		     conf_label(lbl, sizeof(lbl), what, "window"), 1,
		     31 * 86400, &n) == 0)
		l->window = (unsigned)n;
	if ((c = config_setting_get_member(s, "count")) != NULL &&
	    (v = conf_get_str(ld, c,
		 conf_label(lbl, sizeof(lbl), what, "count"))) != NULL) {
		if (strcmp(v, "recipients") == 0)
			l->per_rcpt = true;
		else if (strcmp(v, "messages") != 0)
			bad(ld, c, "%s: %s is neither messages nor recipients",
			    lbl, conf_esc(v, q, sizeof(q)));
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
	conf_cut(name, sizeof(name), "ratelimit:%s", l->name);
	r->name = xstrdup(name);
	r->file = conf_file_name(ld, config_setting_source_file(s));
	r->line = (int)config_setting_source_line(s);
	r->match.rate_over.pat = xcalloc(1, sizeof(char *));
	r->match.rate_over.pat[0] = xstrdup(l->name);
	r->match.rate_over.n = 1;
	if ((v = conf_get_str(ld, c,
		 conf_label(lbl, sizeof(lbl), what, "action"))) == NULL)
		return;
	if (policy_action_parse(v, &r->action) != 0 ||
	    r->action == ACT_GREYLIST)
		bad(ld, c,
		    "%s: %s is not an action for a limit (accept, tag, "
		    "quarantine, tempfail, reject)",
		    lbl, conf_esc(v, q, sizeof(q)));
	else
		conf_read_codes(ld, s, r, what, true);
}

static void
read_limits(struct ld *ld, const config_setting_t *root, struct policy *p)
{
	const config_setting_t *s;
	int i, n;

	if ((s = config_setting_get_member(root, "ratelimits")) == NULL)
		return;
	if (!conf_is_list(s)) {
		bad(ld, s, "ratelimits: expected a list ( { ... }, { ... } )");
		return;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++)
		read_limit(ld, config_setting_get_elem(s, (unsigned)i), p);
}

/* conf_read_reputation - dnsbl, rhsbl and ratelimits (their actions
 * become p's pre-rules) */
void
conf_read_reputation(struct ld *ld, const config_setting_t *root,
    struct policy *p)
{
	read_lists_of(ld, root, "dnsbl", DNSBL_IP);
	read_lists_of(ld, root, "rhsbl", DNSBL_DOMAIN);
	read_limits(ld, root, p);
}

/* conf_finish_reputation - derived settings, once everything is read */
void
conf_finish_reputation(struct conf *c)
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

/* conf_describe_reputation - the keys of a list and of a limit */
void
conf_describe_reputation(struct buf *out)
{
	conf_describe_keys(out, "A list, in dnsbl and rhsbl:", list_keys,
	    NELEM(list_keys));
	conf_describe_keys(out, "A limit, in ratelimits:", limit_keys,
	    NELEM(limit_keys));
}
