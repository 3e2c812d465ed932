/*
 * policy.c - the rule engine: first-match rules over the facts of one
 * transaction and one recipient, with monitor mode, shadow rules, policy
 * sets by recipient domain, RFC 7372 replies and a trace of rules tried.
 *
 * Pure: no I/O, no logging, no globals. The policy is borrowed and never
 * changed; the verdict owns the strings it holds (policy_verdict_free).
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy.h"
#include "xalloc.h"

#define REPLY_MAX 400 /* characters of reply text */
#define VALUE_MAX 200 /* characters of one placeholder's value */

static const char *const action_names[] = {
    [ACT_ACCEPT] = "accept",
    [ACT_TAG] = "tag",
    [ACT_QUARANTINE] = "quarantine",
    [ACT_TEMPFAIL] = "tempfail",
    [ACT_REJECT] = "reject",
    [ACT_GREYLIST] = "greylist",
};

static const char *const history_names[] = {
    [HISTORY_NEW] = "new",
    [HISTORY_ESTABLISHED] = "established",
    [HISTORY_BAD] = "bad",
};

enum ph {
	PH_SENDER,
	PH_DOMAIN,
	PH_IP,
	PH_HELO,
	PH_RESULT,
	PH_RULE,
	PH_RCPT,
	PH_EXPLANATION,
	PH_IDENTITY,
	PH_DNSBL,
	PH_RHSBL,
	PH_RATE,
	PH_RETRY,
};

/* reply placeholders, in the order of enum ph */
static const char *const placeholders[] = {
    "sender",
    "domain",
    "ip",
    "helo",
    "result",
    "rule",
    "rcpt",
    "explanation",
    "identity",
    "dnsbl",
    "rhsbl",
    "rate",
    "retry",
};

/* What a reply template may name beyond the facts. */
struct reply_ctx {
	const char *rule;
	unsigned retry_s;
};

const char *
policy_action_name(enum policy_action a)
{
	if ((size_t)a < sizeof(action_names) / sizeof(action_names[0]))
		return action_names[a];
	return "?";
}

int
policy_action_parse(const char *s, enum policy_action *a)
{
	size_t i;

	for (i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
		if (strcasecmp(s, action_names[i]) == 0) {
			*a = (enum policy_action)i;
			return 0;
		}
	}
	return -1;
}

bool
policy_action_refuses(enum policy_action a)
{
	return a == ACT_TEMPFAIL || a == ACT_REJECT || a == ACT_GREYLIST;
}

const char *
policy_history_name(enum policy_history h)
{
	if ((size_t)h < sizeof(history_names) / sizeof(history_names[0]))
		return history_names[h];
	return "?";
}

int
policy_history_parse(const char *s, enum policy_history *h)
{
	size_t i;

	for (i = 0; i < sizeof(history_names) / sizeof(history_names[0]); i++) {
		if (strcasecmp(s, history_names[i]) == 0) {
			*h = (enum policy_history)i;
			return 0;
		}
	}
	return -1;
}

int
policy_cidr_parse(const char *s, struct policy_cidr *c)
{
	char tmp[INET6_ADDRSTRLEN + 8], *slash, *end;
	long bits;
	size_t n = strlen(s);

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n + 1);
	if ((slash = strchr(tmp, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, tmp, c->addr) == 1) {
		c->family = AF_INET;
		c->bits = 32;
	} else if (inet_pton(AF_INET6, tmp, c->addr) == 1) {
		c->family = AF_INET6;
		c->bits = 128;
	} else
		return -1;
	if (slash != NULL) {
		if (!isdigit((unsigned char)slash[1]))
			return -1;
		bits = strtol(slash + 1, &end, 10);
		if (*end != '\0' || bits < 0 || bits > c->bits)
			return -1;
		c->bits = (int)bits;
	}
	return 0;
}

/* addr_parse - a client address; ::ffff:a.b.c.d is IPv4 */
static bool
addr_parse(const char *ip, int *family, uint8_t *addr)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff};

	if (ip == NULL)
		return false;
	if (inet_pton(AF_INET, ip, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, ip, addr) != 1)
		return false;
	*family = AF_INET6;
	if (memcmp(addr, mapped, sizeof(mapped)) == 0) {
		memmove(addr, addr + 12, 4);
		*family = AF_INET;
	}
	return true;
}

static bool
prefix_match(const uint8_t *a, const uint8_t *net, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, net, (size_t)full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ net[full]) & (0xff << (8 - rest))) == 0;
}

bool
policy_cidr_contains(const struct policy_cidr *nets, size_t n, const char *ip)
{
	uint8_t addr[16];
	int family;
	size_t i;

	if (!addr_parse(ip, &family, addr))
		return false;
	for (i = 0; i < n; i++)
		if (nets[i].family == family &&
		    prefix_match(addr, nets[i].addr, nets[i].bits))
			return true;
	return false;
}

/* pattern_one - see policy.h for the forms */
static bool
pattern_one(const char *pat, const char *s)
{
	size_t ls, lp;

	if (pat[0] == '*' && pat[1] == '.') {
		ls = strlen(s);
		lp = strlen(pat + 1); /* ".example.org" */
		return ls > lp && strcasecmp(s + ls - lp, pat + 1) == 0;
	}
	if (strpbrk(pat, "*?[") != NULL)
		return fnmatch(pat, s, FNM_CASEFOLD) == 0;
	return strcasecmp(pat, s) == 0;
}

bool
policy_pattern_match(const struct policy_patterns *p, const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < p->n; i++)
		if (pattern_one(p->pat[i], s))
			return true;
	return false;
}

const struct policy_set *
policy_set_for(const struct policy *pol, const char *rcpt_domain)
{
	size_t i;

	if (rcpt_domain != NULL)
		for (i = 1; i < pol->nsets; i++)
			if (policy_pattern_match(&pol->sets[i].rcpt_domains,
				rcpt_domain))
				return &pol->sets[i];
	return &pol->sets[0];
}

void
policy_spf(struct policy_facts *f)
{
	f->have_spf = false;
	if (f->have_spf_helo && f->spf_helo == SPF_FAIL) {
		f->have_spf = true;
		f->spf = SPF_FAIL;
		f->spf_identity = SPF_ID_HELO;
	} else if (f->have_spf_mfrom) {
		f->have_spf = true;
		f->spf = f->spf_mfrom;
		f->spf_identity = SPF_ID_MAILFROM;
	} else if (f->have_spf_helo) {
		f->have_spf = true;
		f->spf = f->spf_helo;
		f->spf_identity = SPF_ID_HELO;
	}
}

/* safe_value - a placeholder's value: printable ASCII, bounded */
static void
safe_value(struct buf *out, const char *v)
{
	size_t n;

	if (v == NULL || *v == '\0')
		v = "unknown";
	for (n = 0; *v != '\0' && n < VALUE_MAX; v++, n++)
		buf_addc(out,
		    (unsigned char)*v >= 0x20 && (unsigned char)*v < 0x7f
			? *v
			: '?');
}

/* names_value - "a, b" of a list of names, bounded */
static void
names_value(struct buf *out, const char *const *names, size_t n)
{
	size_t i;

	if (n == 0) {
		buf_adds(out, "none");
		return;
	}
	for (i = 0; i < n && i < 4; i++) {
		if (i > 0)
			buf_adds(out, ", ");
		safe_value(out, names[i]);
	}
}

/* placeholder - append the value of {name}; -1 if there is no such name.
 * Without facts (f == NULL) only the name is checked. */
static int
placeholder(const char *name, size_t n, const struct policy_facts *f,
    const struct reply_ctx *rc, struct buf *out)
{
	const char *v = NULL;
	char num[24];
	size_t i;

	for (i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
		if (strlen(placeholders[i]) == n &&
		    strncmp(name, placeholders[i], n) == 0)
			break;
	if (i == sizeof(placeholders) / sizeof(placeholders[0]))
		return -1;
	if (f == NULL || out == NULL)
		return 0;
	switch ((enum ph)i) {
	case PH_SENDER:
		v = f->sender != NULL && *f->sender != '\0' ? f->sender : "<>";
		break;
	case PH_DOMAIN:
		v = f->spf_domain != NULL ? f->spf_domain : f->from_domain;
		break;
	case PH_IP:
		v = f->client_ip;
		break;
	case PH_HELO:
		v = f->helo;
		break;
	case PH_RESULT:
		v = f->have_spf ? spf_result_name(f->spf) : "none";
		break;
	case PH_RULE:
		v = rc->rule;
		break;
	case PH_RCPT:
		v = f->rcpt;
		break;
	case PH_EXPLANATION:
		if (f->spf_explanation == NULL || *f->spf_explanation == '\0')
			return 0;
		v = f->spf_explanation;
		break;
	case PH_IDENTITY:
		v = f->have_spf ? spf_identity_name(f->spf_identity) : "none";
		break;
	case PH_DNSBL:
		names_value(out, f->dnsbl, f->ndnsbl);
		return 0;
	case PH_RHSBL:
		names_value(out, f->rhsbl, f->nrhsbl);
		return 0;
	case PH_RATE:
		names_value(out, f->rate_over, f->nrate_over);
		return 0;
	case PH_RETRY:
		(void)snprintf(num, sizeof(num), "%u", rc->retry_s);
		v = num;
		break;
	}
	safe_value(out, v);
	return 0;
}

/* expand - a reply template; out == NULL only checks it */
static int
expand(const char *t, const struct policy_facts *f, const struct reply_ctx *rc,
    struct buf *out, char *err, size_t errlen)
{
	const char *end;

	for (; *t != '\0'; t++) {
		if ((t[0] == '{' && t[1] == '{') ||
		    (t[0] == '}' && t[1] == '}')) {
			if (out != NULL)
				buf_addc(out, *t);
			t++;
			continue;
		}
		if (*t == '}') {
			(void)snprintf(err, errlen, "unmatched '}' in reply");
			return -1;
		}
		if (*t != '{') {
			if (out != NULL)
				buf_addc(out,
				    (unsigned char)*t >= 0x20 &&
					    (unsigned char)*t < 0x7f
					? *t
					: '?');
			continue;
		}
		if ((end = strchr(t, '}')) == NULL) {
			(void)snprintf(err, errlen,
			    "unterminated '{' in reply");
			return -1;
		}
		if (placeholder(t + 1, (size_t)(end - t - 1), f, rc, out) !=
		    0) {
			(void)snprintf(err, errlen,
			    "unknown placeholder {%.*s} in reply (known: "
			    "sender domain ip helo result rule rcpt "
			    "explanation identity dnsbl rhsbl rate retry)",
			    (int)(end - t - 1 > 40 ? 40 : end - t - 1), t + 1);
			return -1;
		}
		t = end;
	}
	return 0;
}

int
policy_template_check(const char *t, char *err, size_t errlen)
{
	if (strlen(t) > REPLY_MAX) {
		(void)snprintf(err, errlen, "reply longer than %d characters",
		    REPLY_MAX);
		return -1;
	}
	return expand(t, NULL, NULL, NULL, err, errlen);
}

/* default_reply - RFC 7372 codes and a plain text for a refusal; a rule
 * about a blocklist or a rate limit says so rather than talk about SPF */
static void
default_reply(const struct policy_facts *f, const struct policy_rule *rule,
    enum policy_action a, int *code, char *xcode, const char **tmpl)
{
	const struct policy_match *m = &rule->match;
	enum spf_result r = f->have_spf ? f->spf : SPF_NONE;

	if (a == ACT_GREYLIST) {
		*code = 451;
		(void)strcpy(xcode, "4.7.1");
		*tmpl = "Greylisted: please try again in {retry} seconds";
	} else if (m->dnsbl.n > 0 && f->ndnsbl > 0) {
		*code = a == ACT_REJECT ? 550 : 451;
		(void)strcpy(xcode, a == ACT_REJECT ? "5.7.1" : "4.7.1");
		*tmpl = "Client host [{ip}] blocked using {dnsbl}";
	} else if (m->rhsbl.n > 0 && f->nrhsbl > 0) {
		*code = a == ACT_REJECT ? 550 : 451;
		(void)strcpy(xcode, a == ACT_REJECT ? "5.7.1" : "4.7.1");
		*tmpl = "Sender {domain} blocked using {rhsbl}";
	} else if (m->rate_over.n > 0 && f->nrate_over > 0) {
		*code = a == ACT_REJECT ? 550 : 451;
		(void)strcpy(xcode, a == ACT_REJECT ? "5.7.1" : "4.7.1");
		*tmpl = "Too much mail from this source ({rate}), try again "
			"later";
	} else if (a == ACT_REJECT) {
		*code = 550;
		if (r == SPF_FAIL) {
			(void)strcpy(xcode, "5.7.23");
			*tmpl = f->spf_explanation != NULL &&
				*f->spf_explanation != '\0'
			    ? "SPF fail: {explanation}"
			    : "SPF fail: {domain} does not allow {ip} to send "
			      "its mail";
		} else if (r == SPF_PERMERROR) {
			(void)strcpy(xcode, "5.7.24");
			*tmpl = "SPF permerror: the SPF record of {domain} is "
				"invalid";
		} else {
			(void)strcpy(xcode, "5.7.1");
			*tmpl = "Message refused by policy ({rule})";
		}
	} else {
		*code = 451;
		if (r == SPF_TEMPERROR) {
			(void)strcpy(xcode, "4.7.24");
			*tmpl = "SPF temperror: could not check {domain}, try "
				"again later";
		} else {
			(void)strcpy(xcode, "4.7.1");
			*tmpl =
			    "Message deferred by policy ({rule}), try again "
			    "later";
		}
	}
}

static void
make_reply(const struct policy_facts *f, const struct policy_rule *rule,
    struct policy_verdict *v)
{
	const char *tmpl;
	struct buf out;
	char err[160];
	struct reply_ctx rc;

	rc.rule = rule->name;
	rc.retry_s = v->retry_s;
	default_reply(f, rule, v->would, &v->code, v->xcode, &tmpl);
	if (rule->code != 0)
		v->code = rule->code;
	if (rule->xcode != NULL)
		(void)snprintf(v->xcode, sizeof(v->xcode), "%s", rule->xcode);
	if (rule->reply != NULL)
		tmpl = rule->reply;
	buf_init(&out);
	if (expand(tmpl, f, &rc, &out, err, sizeof(err)) != 0) {
		buf_reset(&out);
		buf_adds(&out, "Message refused by policy");
	}
	if (out.len > REPLY_MAX)
		out.data[out.len = REPLY_MAX] = '\0';
	v->text = buf_release(&out);
}

static void
trace_add(struct policy_verdict *v, const struct policy_rule *r, bool matched,
    char *why)
{
	struct policy_trace *t;

	v->trace = xreallocarray(v->trace, v->ntrace + 1, sizeof(*v->trace));
	t = &v->trace[v->ntrace++];
	t->rule = r->name;
	t->matched = matched;
	t->shadow = r->shadow;
	t->why = why;
}

static char *fmt(const char *, ...) __attribute__((format(printf, 1, 2)));

static char *
fmt(const char *f, ...)
{
	char tmp[512];
	va_list ap;

	va_start(ap, f);
	(void)vsnprintf(tmp, sizeof(tmp), f, ap);
	va_end(ap);
	return xstrdup(tmp);
}

/* str - a fact for a trace message */
static const char *
str(const char *s)
{
	return s != NULL ? s : "(none)";
}

/* results_text - "fail|softfail" from a bitmask */
static void
results_text(unsigned mask, char *out, size_t len)
{
	int r;

	out[0] = '\0';
	for (r = SPF_NONE; r <= SPF_PERMERROR; r++) {
		if ((mask & (1u << r)) == 0)
			continue;
		if (out[0] != '\0')
			(void)strncat(out, "|", len - strlen(out) - 1);
		(void)strncat(out, spf_result_name((enum spf_result)r),
		    len - strlen(out) - 1);
	}
}

static char *
spf_mismatch(const char *what, bool have, enum spf_result r, unsigned mask)
{
	char want[100];

	results_text(mask, want, sizeof(want));
	if (!have)
		return fmt("%s not checked, wants %s", what, want);
	return fmt("%s is %s, wants %s", what, spf_result_name(r), want);
}

/* names_match - is one of the names (lists, limits) among the patterns? */
static bool
names_match(const struct policy_patterns *p, const char *const *names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (policy_pattern_match(p, names[i]))
			return true;
	return false;
}

static char *
names_mismatch(const char *what, const char *verb, const char *const *names,
    size_t n)
{
	struct buf b;
	char *s;

	buf_init(&b);
	names_value(&b, names, n);
	s = fmt("%s: %s %s", what, verb, buf_str(&b));
	buf_free(&b);
	return s;
}

/* mismatch - the first condition of m that f fails, or NULL if all hold */
static char *
mismatch(const struct policy *pol, const struct policy_match *m,
    const struct policy_facts *f)
{
	const char *name;

	if (m->has_client &&
	    !(m->client_trusted &&
		policy_cidr_contains(pol->trusted, pol->ntrusted,
		    f->client_ip)) &&
	    !policy_cidr_contains(m->nets, m->nnets, f->client_ip))
		return fmt("client %s not in the client list",
		    str(f->client_ip));
	name = f->client_name != NULL && *f->client_name != '\0'
	    ? f->client_name
	    : "unknown";
	if (m->client_name.n > 0 &&
	    !policy_pattern_match(&m->client_name, name))
		return fmt("client name %s does not match", str(name));
	if (m->helo.n > 0 && !policy_pattern_match(&m->helo, f->helo))
		return fmt("helo %s does not match", str(f->helo));
	if (m->null_sender != POLICY_ANY &&
	    (f->sender == NULL || *f->sender == '\0') != m->null_sender)
		return fmt("null_sender is %s",
		    m->null_sender ? "false" : "true");
	if (m->from_domain.n > 0 &&
	    !policy_pattern_match(&m->from_domain, f->from_domain))
		return fmt("from_domain %s does not match",
		    str(f->from_domain));
	if (m->from_localpart.n > 0 &&
	    !policy_pattern_match(&m->from_localpart, f->from_localpart))
		return fmt("from_localpart %s does not match",
		    str(f->from_localpart));
	if (m->rcpt_domain.n > 0 &&
	    !policy_pattern_match(&m->rcpt_domain, f->rcpt_domain))
		return fmt("rcpt_domain %s does not match",
		    str(f->rcpt_domain));
	if (m->authenticated != POLICY_ANY &&
	    (f->auth_user != NULL) != m->authenticated)
		return fmt("authenticated is %s",
		    f->auth_user != NULL ? "true" : "false");
	if (m->auth_user.n > 0 &&
	    !policy_pattern_match(&m->auth_user, f->auth_user))
		return fmt("auth_user %s does not match", str(f->auth_user));
	if (m->spf_helo != 0 &&
	    (!f->have_spf_helo || (m->spf_helo & (1u << f->spf_helo)) == 0))
		return spf_mismatch("spf_helo", f->have_spf_helo, f->spf_helo,
		    m->spf_helo);
	if (m->spf_mfrom != 0 &&
	    (!f->have_spf_mfrom || (m->spf_mfrom & (1u << f->spf_mfrom)) == 0))
		return spf_mismatch("spf_mfrom", f->have_spf_mfrom,
		    f->spf_mfrom, m->spf_mfrom);
	if (m->spf != 0 && (!f->have_spf || (m->spf & (1u << f->spf)) == 0))
		return spf_mismatch("spf", f->have_spf, f->spf, m->spf);
	if (m->dnsbl.n > 0 && !names_match(&m->dnsbl, f->dnsbl, f->ndnsbl))
		return names_mismatch("dnsbl", "listed on", f->dnsbl,
		    f->ndnsbl);
	if (m->dnsbl_unknown.n > 0 &&
	    !names_match(&m->dnsbl_unknown, f->dnsbl_unknown,
		f->ndnsbl_unknown))
		return names_mismatch("dnsbl_unknown", "unknown on",
		    f->dnsbl_unknown, f->ndnsbl_unknown);
	if (m->rhsbl.n > 0 && !names_match(&m->rhsbl, f->rhsbl, f->nrhsbl))
		return names_mismatch("rhsbl", "listed on", f->rhsbl,
		    f->nrhsbl);
	if (m->rhsbl_unknown.n > 0 &&
	    !names_match(&m->rhsbl_unknown, f->rhsbl_unknown,
		f->nrhsbl_unknown))
		return names_mismatch("rhsbl_unknown", "unknown on",
		    f->rhsbl_unknown, f->nrhsbl_unknown);
	if (m->rate_over.n > 0 &&
	    !names_match(&m->rate_over, f->rate_over, f->nrate_over))
		return names_mismatch("rate_over", "over", f->rate_over,
		    f->nrate_over);
	if (m->history != 0 &&
	    (!f->have_history || (m->history & (1u << f->history)) == 0))
		return fmt("history is %s",
		    f->have_history ? policy_history_name(f->history)
				    : "unknown");
	if (m->anomaly != POLICY_ANY && f->anomaly != m->anomaly)
		return fmt("anomaly is %s", f->anomaly ? "true" : "false");
	return NULL;
}

void
policy_evaluate(const struct policy *pol, const struct policy_facts *f,
    struct policy_verdict *v)
{
	const struct policy_set *set;
	const struct policy_rule *r;
	enum policy_mode mode;
	char *why;
	size_t i;
	int grey;

	memset(v, 0, sizeof(*v));
	set = policy_set_for(pol, f->rcpt_domain);
	mode =
	    set->mode != POLICY_ANY ? (enum policy_mode)set->mode : pol->mode;
	v->set = set;
	v->monitor = mode == MODE_MONITOR;
	v->would = ACT_ACCEPT;
	for (i = 0; i < pol->npre_rules + set->nrules; i++) {
		r = i < pol->npre_rules ? &pol->pre_rules[i]
					: &set->rules[i - pol->npre_rules];
		if ((why = mismatch(pol, &r->match, f)) != NULL) {
			trace_add(v, r, false, why);
			continue;
		}
		if (r->action == ACT_GREYLIST && !r->shadow && !v->monitor &&
		    f->greylist != NULL &&
		    (grey = f->greylist(f->greylist_arg, f, &v->retry_s)) <=
			0) {
			/* the source retried in time, or greylisting does not
			   apply: not this rule's mail */
			trace_add(v, r, false,
			    xstrdup(grey == 0 ? "greylist: the source passed"
					      : "greylist: not applied"));
			v->greylist_pass = grey == 0;
			continue;
		}
		trace_add(v, r, true, xstrdup("all conditions hold"));
		if (r->shadow) {
			v->shadows = xreallocarray(v->shadows, v->nshadows + 1,
			    sizeof(*v->shadows));
			v->shadows[v->nshadows].rule = r->name;
			v->shadows[v->nshadows].action = r->action;
			v->nshadows++;
			continue;
		}
		v->rule = r;
		v->would = r->action;
		break;
	}
	if (v->rule != NULL && policy_action_refuses(v->would))
		make_reply(f, v->rule, v);
	/* monitor: decide and log, but deliver as if nothing matched */
	v->action = v->monitor ? ACT_ACCEPT : v->would;
}

void
policy_verdict_free(struct policy_verdict *v)
{
	size_t i;

	for (i = 0; i < v->ntrace; i++)
		free(v->trace[i].why);
	free(v->trace);
	free(v->shadows);
	free(v->text);
	memset(v, 0, sizeof(*v));
}

static void
patterns_free(struct policy_patterns *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->pat[i]);
	free(p->pat);
	p->pat = NULL;
	p->n = 0;
}

static void
rule_free(struct policy_rule *r)
{
	struct policy_match *m = &r->match;

	free(r->name);
	free(r->file);
	free(r->xcode);
	free(r->reply);
	free(m->nets);
	patterns_free(&m->dnsbl);
	patterns_free(&m->dnsbl_unknown);
	patterns_free(&m->rhsbl);
	patterns_free(&m->rhsbl_unknown);
	patterns_free(&m->rate_over);
	patterns_free(&m->client_name);
	patterns_free(&m->helo);
	patterns_free(&m->from_domain);
	patterns_free(&m->from_localpart);
	patterns_free(&m->rcpt_domain);
	patterns_free(&m->auth_user);
}

void
policy_free(struct policy *pol)
{
	size_t i, j;

	if (pol == NULL)
		return;
	for (i = 0; i < pol->nsets; i++) {
		for (j = 0; j < pol->sets[i].nrules; j++)
			rule_free(&pol->sets[i].rules[j]);
		free(pol->sets[i].rules);
		free(pol->sets[i].name);
		patterns_free(&pol->sets[i].rcpt_domains);
	}
	for (j = 0; j < pol->npre_rules; j++)
		rule_free(&pol->pre_rules[j]);
	free(pol->pre_rules);
	free(pol->sets);
	free(pol->trusted);
	free(pol);
}
