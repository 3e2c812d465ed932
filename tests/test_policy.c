/*
 * test_policy.c - the rule engine, table-driven: facts in, verdict out.
 *
 * The policy is built here in C (the loader has its own tests), so each
 * case reads as: these rules, these facts, this action / rule / reply.
 */
#include "autoconf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "tap.h"
#include "xalloc.h"

static char *pats_a[] = {"*.bank.example", "bank.example"};
static char *pats_rcpt[] = {"strict.example"};
static char *pats_local[] = {"bounce-*"};

static struct policy_rule rules0[8];
static struct policy_rule rules1[2];
static struct policy_set sets[2];
static struct policy_cidr trusted[2];
static struct policy_cidr partners[1];
static struct policy pol;

static void
rule(struct policy_rule *r, const char *name, enum policy_action a)
{
	memset(r, 0, sizeof(*r));
	r->name = (char *)name;
	r->action = a;
	r->match.null_sender = POLICY_ANY;
	r->match.authenticated = POLICY_ANY;
	r->match.anomaly = POLICY_ANY;
}

/*
 * Reputation facts: a policy of its own. Rules: a DNSBL reject, an RHSBL
 * tempfail, greylisting of new senders, a rate limit as a pre-rule, an
 * anomaly tag, and accept.
 */
static char *rep_any[] = {"*"};
static char *rep_zen[] = {"zen"};
static char *rep_dbl[] = {"dbl"};
static char *rep_limit[] = {"per-ip"};
static struct policy_rule rep_pre[1];
static struct policy_rule rep_rules[6];
static struct policy_set rep_set;
static struct policy rep_pol;

static void
build_rep(void)
{
	rule(&rep_pre[0], "ratelimit:per-ip", ACT_TEMPFAIL);
	rep_pre[0].match.rate_over.pat = rep_limit;
	rep_pre[0].match.rate_over.n = 1;
	rule(&rep_rules[0], "zen", ACT_REJECT);
	rep_rules[0].match.dnsbl.pat = rep_zen;
	rep_rules[0].match.dnsbl.n = 1;
	rule(&rep_rules[1], "bl-unknown", ACT_TEMPFAIL);
	rep_rules[1].match.dnsbl_unknown.pat = rep_any;
	rep_rules[1].match.dnsbl_unknown.n = 1;
	rule(&rep_rules[2], "dbl", ACT_REJECT);
	rep_rules[2].match.rhsbl.pat = rep_dbl;
	rep_rules[2].match.rhsbl.n = 1;
	rule(&rep_rules[3], "anomaly", ACT_TAG);
	rep_rules[3].match.anomaly = 1;
	rule(&rep_rules[4], "grey-new", ACT_GREYLIST);
	rep_rules[4].match.history = 1u << HISTORY_NEW;
	rule(&rep_rules[5], "default", ACT_ACCEPT);
	rep_set.name = (char *)"default";
	rep_set.mode = POLICY_ANY;
	rep_set.rules = rep_rules;
	rep_set.nrules = 6;
	rep_pol.sets = &rep_set;
	rep_pol.nsets = 1;
	rep_pol.pre_rules = rep_pre;
	rep_pol.npre_rules = 1;
}

static int grey_calls;

static int grey_answer = 1;

static int
grey_stub(void *arg, const struct policy_facts *f, unsigned *retry_s)
{
	grey_calls++;
	*retry_s = 123;
	return grey_answer;
}

static void
rep_facts(struct policy_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->client_ip = "192.0.2.7";
	f->helo = "mail.sender.example";
	f->sender = "a@sender.example";
	f->from_domain = "sender.example";
	f->rcpt = "b@rcpt.example";
	f->rcpt_domain = "rcpt.example";
	f->have_spf_mfrom = true;
	f->spf_mfrom = SPF_PASS;
	policy_spf(f);
	f->spf_domain = "sender.example";
	f->have_history = true;
	f->history = HISTORY_ESTABLISHED;
	f->greylist = grey_stub;
}

static void
test_reputation(void)
{
	static const char *zen[] = {"spamcop", "zen"};
	static const char *dbl[] = {"dbl"};
	static const char *over[] = {"per-ip"};
	struct policy_facts f;
	struct policy_verdict v;

	build_rep();

	rep_facts(&f);
	f.dnsbl = zen;
	f.ndnsbl = 2;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_REJECT && v.rule == &rep_rules[0] &&
		v.code == 550 && strcmp(v.xcode, "5.7.1") == 0 &&
		v.text != NULL &&
		strcmp(v.text,
		    "Client host [192.0.2.7] blocked using spamcop, zen") == 0,
	    "dnsbl: listed on zen -> reject naming the lists: %d %s \"%s\"",
	    v.code, v.xcode, v.text != NULL ? v.text : "");
	policy_verdict_free(&v);

	rep_facts(&f);
	f.dnsbl = zen;
	f.ndnsbl = 1; /* spamcop only */
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_ACCEPT && v.rule == &rep_rules[5] &&
		v.ntrace > 1 &&
		strcmp(v.trace[1].why, "dnsbl: listed on spamcop") == 0,
	    "dnsbl: a list the rule does not name does not match (%s)",
	    v.ntrace > 1 ? v.trace[1].why : "");
	policy_verdict_free(&v);

	rep_facts(&f);
	f.dnsbl_unknown = zen;
	f.ndnsbl_unknown = 1;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_TEMPFAIL && v.rule == &rep_rules[1],
	    "dnsbl_unknown = \"*\": a list that timed out is a fact rules "
	    "see (%s)",
	    policy_action_name(v.action));
	policy_verdict_free(&v);

	rep_facts(&f);
	f.rhsbl = dbl;
	f.nrhsbl = 1;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_REJECT && v.rule == &rep_rules[2] &&
		v.text != NULL && strstr(v.text, "sender.example") != NULL &&
		strstr(v.text, "dbl") != NULL,
	    "rhsbl: reject naming domain and list: \"%s\"",
	    v.text != NULL ? v.text : "");
	policy_verdict_free(&v);

	rep_facts(&f);
	f.rate_over = over;
	f.nrate_over = 1;
	f.dnsbl = zen;
	f.ndnsbl = 2;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_TEMPFAIL && v.rule == &rep_pre[0] &&
		v.code == 451 && v.text != NULL &&
		strstr(v.text, "per-ip") != NULL,
	    "rate limit pre-rule is tried before the set's rules: %d \"%s\"",
	    v.code, v.text != NULL ? v.text : "");
	policy_verdict_free(&v);

	rep_facts(&f);
	f.spf_mfrom = SPF_FAIL;
	policy_spf(&f);
	f.anomaly = true;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_TAG && v.rule == &rep_rules[3],
	    "anomaly = true matches an established domain failing SPF");
	policy_verdict_free(&v);

	/* greylisting: the oracle decides; passing goes on to later rules */
	rep_facts(&f);
	f.history = HISTORY_NEW;
	grey_calls = 0;
	grey_answer = 1;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_GREYLIST && v.rule == &rep_rules[4] &&
		grey_calls == 1 && v.code == 451 &&
		strcmp(v.xcode, "4.7.1") == 0 && v.retry_s == 123 &&
		v.text != NULL && strstr(v.text, "123 seconds") != NULL &&
		policy_action_refuses(v.action),
	    "greylist: deferred 451 4.7.1 with the retry time: \"%s\"",
	    v.text != NULL ? v.text : "");
	policy_verdict_free(&v);

	grey_answer = 0;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_ACCEPT && v.rule == &rep_rules[5] &&
		v.greylist_pass && grey_calls == 2,
	    "greylist: a source that passed goes on to the next rule (%s)",
	    v.rule != NULL ? v.rule->name : "none");
	policy_verdict_free(&v);

	grey_answer = -1;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_ACCEPT && v.rule == &rep_rules[5] &&
		!v.greylist_pass && v.ntrace > 5 &&
		strcmp(v.trace[5].why, "greylist: not applied") == 0,
	    "greylist not applied (trusted, store failing open): next rule, "
	    "not logged as passed");
	policy_verdict_free(&v);

	f.greylist = NULL;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_GREYLIST,
	    "greylist without an oracle (replay) defers");
	policy_verdict_free(&v);

	rep_facts(&f);
	f.history = HISTORY_NEW;
	grey_calls = 0;
	rep_pol.mode = MODE_MONITOR;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.action == ACT_ACCEPT && v.would == ACT_GREYLIST &&
		grey_calls == 0,
	    "greylist in monitor mode: would greylist, the store is not "
	    "asked");
	policy_verdict_free(&v);
	rep_pol.mode = MODE_ENFORCE;

	rep_facts(&f);
	f.have_history = false;
	policy_evaluate(&rep_pol, &f, &v);
	TAP_OK(v.rule == &rep_rules[5] && v.ntrace > 5 &&
		strcmp(v.trace[5].why, "history is unknown") == 0,
	    "history unknown (store down) matches no class: %s",
	    v.ntrace > 5 ? v.trace[5].why : "");
	policy_verdict_free(&v);
}

static void
build(void)
{
	(void)policy_cidr_parse("127.0.0.0/8", &trusted[0]);
	(void)policy_cidr_parse("::1/128", &trusted[1]);
	(void)policy_cidr_parse("198.51.100.0/24", &partners[0]);

	rule(&rules0[0], "local", ACT_ACCEPT);
	rules0[0].match.has_client = true;
	rules0[0].match.client_trusted = true;
	rule(&rules0[1], "auth", ACT_ACCEPT);
	rules0[1].match.authenticated = 1;
	rule(&rules0[2], "bank-spoof", ACT_REJECT);
	rules0[2].match.from_domain.pat = pats_a;
	rules0[2].match.from_domain.n = 2;
	rules0[2].match.spf =
	    1u << SPF_FAIL | 1u << SPF_SOFTFAIL | 1u << SPF_NONE;
	rules0[2].reply = (char *)"{domain} mail from {ip} refused ({rule})";
	rule(&rules0[3], "partner-fail", ACT_TAG);
	rules0[3].match.has_client = true;
	rules0[3].match.nets = partners;
	rules0[3].match.nnets = 1;
	rules0[3].match.spf = 1u << SPF_FAIL;
	rule(&rules0[4], "spf-fail", ACT_REJECT);
	rules0[4].match.spf = 1u << SPF_FAIL;
	rule(&rules0[5], "spf-temp", ACT_TEMPFAIL);
	rules0[5].match.spf = 1u << SPF_TEMPERROR;
	rule(&rules0[6], "soft-shadow", ACT_QUARANTINE);
	rules0[6].match.spf = 1u << SPF_SOFTFAIL;
	rules0[6].shadow = true;
	rule(&rules0[7], "bounces", ACT_REJECT);
	rules0[7].match.from_localpart.pat = pats_local;
	rules0[7].match.from_localpart.n = 1;
	rules0[7].code = 554;
	rules0[7].xcode = (char *)"5.7.0";

	rule(&rules1[0], "soft-reject", ACT_REJECT);
	rules1[0].match.spf = 1u << SPF_SOFTFAIL;
	rule(&rules1[1], "perm-temp", ACT_TEMPFAIL);
	rules1[1].match.spf = 1u << SPF_PERMERROR;

	sets[0].name = (char *)"default";
	sets[0].mode = POLICY_ANY;
	sets[0].rules = rules0;
	sets[0].nrules = 8;
	sets[1].name = (char *)"strict";
	sets[1].mode = POLICY_ANY;
	sets[1].rcpt_domains.pat = pats_rcpt;
	sets[1].rcpt_domains.n = 1;
	sets[1].rules = rules1;
	sets[1].nrules = 2;
	pol.mode = MODE_ENFORCE;
	pol.trusted = trusted;
	pol.ntrusted = 2;
	pol.sets = sets;
	pol.nsets = 2;
}

struct tcase {
	const char *label;
	const char *ip;
	const char *from_domain;
	const char *local;
	const char *rcpt_domain;
	const char *auth;
	int helo; /* -1: not checked, else enum spf_result */
	int mfrom;
	const char *want_rule; /* NULL: none matched */
	enum policy_action want;
	int want_code;
	const char *want_xcode;
	const char *want_text; /* substring, or NULL */
};

static const struct tcase cases[] = {
    {"trusted client", "127.0.0.1", "x.example", "u", "d.example", NULL, -1, -1,
	"local", ACT_ACCEPT, 0, NULL, NULL},
    {"ipv4-mapped trusted client", "::ffff:127.0.0.1", "x.example", "u",
	"d.example", NULL, -1, -1, "local", ACT_ACCEPT, 0, NULL, NULL},
    {"authenticated", "192.0.2.1", "x.example", "u", "d.example", "alice", -1,
	-1, "auth", ACT_ACCEPT, 0, NULL, NULL},
    {"spf fail rejects 5.7.23", "192.0.2.1", "x.example", "u", "d.example",
	NULL, SPF_PASS, SPF_FAIL, "spf-fail", ACT_REJECT, 550, "5.7.23",
	"SPF fail"},
    {"helo fail decides over mail from pass", "192.0.2.1", "x.example", "u",
	"d.example", NULL, SPF_FAIL, SPF_PASS, "spf-fail", ACT_REJECT, 550,
	"5.7.23", NULL},
    {"helo pass does not hide a mail from fail", "192.0.2.1", "x.example", "u",
	"d.example", NULL, SPF_PASS, SPF_FAIL, "spf-fail", ACT_REJECT, 550,
	"5.7.23", NULL},
    {"temperror tempfails 4.7.24", "192.0.2.1", "x.example", "u", "d.example",
	NULL, -1, SPF_TEMPERROR, "spf-temp", ACT_TEMPFAIL, 451, "4.7.24",
	"try again"},
    {"subdomain wildcard with own template", "192.0.2.1", "www.bank.example",
	"u", "d.example", NULL, -1, SPF_SOFTFAIL, "bank-spoof", ACT_REJECT, 550,
	"5.7.1", "www.bank.example mail from 192.0.2.1 refused (bank-spoof)"},
    {"exact domain of the list", "192.0.2.1", "BANK.example", "u", "d.example",
	NULL, -1, SPF_NONE, "bank-spoof", ACT_REJECT, 550, "5.7.1", NULL},
    {"wildcard is not a suffix match", "192.0.2.1", "notbank.example", "u",
	"d.example", NULL, -1, SPF_NONE, NULL, ACT_ACCEPT, 0, NULL, NULL},
    {"named network list", "198.51.100.7", "x.example", "u", "d.example", NULL,
	-1, SPF_FAIL, "partner-fail", ACT_TAG, 0, NULL, NULL},
    {"shadow rule goes on", "192.0.2.1", "x.example", "u", "d.example", NULL,
	-1, SPF_SOFTFAIL, NULL, ACT_ACCEPT, 0, NULL, NULL},
    {"glob local part and own code", "192.0.2.1", "x.example", "bounce-77",
	"d.example", NULL, -1, SPF_PASS, "bounces", ACT_REJECT, 554, "5.7.0",
	NULL},
    {"policy set by recipient domain", "192.0.2.1", "x.example", "u",
	"strict.example", NULL, -1, SPF_SOFTFAIL, "soft-reject", ACT_REJECT,
	550, "5.7.1", NULL},
    {"other recipient, default set", "192.0.2.1", "x.example", "u",
	"other.example", NULL, -1, SPF_SOFTFAIL, NULL, ACT_ACCEPT, 0, NULL,
	NULL},
    {"tempfail with permerror default 4.7.1", "192.0.2.1", "x.example", "u",
	"strict.example", NULL, -1, SPF_PERMERROR, "perm-temp", ACT_TEMPFAIL,
	451, "4.7.1", NULL},
    {"no SPF facts: spf rules do not match", "192.0.2.1", "x.example", "u",
	"d.example", NULL, -1, -1, NULL, ACT_ACCEPT, 0, NULL, NULL},
    {"no client address", NULL, "x.example", "u", "d.example", NULL, -1, -1,
	NULL, ACT_ACCEPT, 0, NULL, NULL},
};

static void
facts_for(const struct tcase *t, struct policy_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->client_ip = t->ip;
	f->helo = "mail.x.example";
	f->sender = "u@x.example";
	f->from_localpart = t->local;
	f->from_domain = t->from_domain;
	f->rcpt = "r@d.example";
	f->rcpt_domain = t->rcpt_domain;
	f->auth_user = t->auth;
	if (t->helo >= 0) {
		f->have_spf_helo = true;
		f->spf_helo = (enum spf_result)t->helo;
	}
	if (t->mfrom >= 0) {
		f->have_spf_mfrom = true;
		f->spf_mfrom = (enum spf_result)t->mfrom;
	}
	policy_spf(f);
	f->spf_domain = f->have_spf && f->spf_identity == SPF_ID_HELO
	    ? "mail.x.example"
	    : t->from_domain;
}

int
main(void)
{
	struct policy_facts f;
	struct policy_verdict v;
	size_t i;
	bool ok;
	char err[200];

	build();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *t = &cases[i];

		facts_for(t, &f);
		policy_evaluate(&pol, &f, &v);
		ok = v.action == t->want &&
		    ((t->want_rule == NULL && v.rule == NULL) ||
			(t->want_rule != NULL && v.rule != NULL &&
			    strcmp(v.rule->name, t->want_rule) == 0));
		if (t->want_code != 0)
			ok = ok && v.code == t->want_code &&
			    strcmp(v.xcode, t->want_xcode) == 0;
		if (t->want_text != NULL)
			ok = ok && v.text != NULL &&
			    strstr(v.text, t->want_text) != NULL;
		TAP_OK(ok, "%s: %s by %s %d %s \"%s\"", t->label,
		    policy_action_name(v.action),
		    v.rule != NULL ? v.rule->name : "(none)", v.code, v.xcode,
		    v.text != NULL ? v.text : "");
		policy_verdict_free(&v);
	}

	/* shadow and trace */
	facts_for(&cases[11], &f);
	policy_evaluate(&pol, &f, &v);
	TAP_OK(v.nshadows == 1 &&
		strcmp(v.shadows[0].rule, "soft-shadow") == 0 &&
		v.shadows[0].action == ACT_QUARANTINE && v.ntrace == 8,
	    "shadow recorded with its action; all %zu rules traced", v.ntrace);
	TAP_OK(v.ntrace > 4 && !v.trace[4].matched &&
		strcmp(v.trace[4].why, "spf is softfail, wants fail") == 0,
	    "trace says why a rule did not match: %s",
	    v.ntrace > 4 ? v.trace[4].why : "");
	policy_verdict_free(&v);

	/* monitor mode decides but never refuses */
	pol.mode = MODE_MONITOR;
	facts_for(&cases[3], &f);
	policy_evaluate(&pol, &f, &v);
	TAP_OK(v.monitor && v.action == ACT_ACCEPT && v.would == ACT_REJECT &&
		v.code == 550,
	    "monitor: would reject, accepts");
	policy_verdict_free(&v);
	pol.mode = MODE_ENFORCE;

	/* reply texts are escaped: no control characters from facts */
	{
		struct tcase t = cases[7];

		t.from_domain = "evil\r\n250 ok.bank.example";
		facts_for(&t, &f);
		policy_evaluate(&pol, &f, &v);
		TAP_OK(v.text != NULL && strpbrk(v.text, "\r\n") == NULL,
		    "CR/LF from the sender never reach the reply: \"%s\"",
		    v.text != NULL ? v.text : "");
		policy_verdict_free(&v);
	}

	test_reputation();

	/* templates */
	TAP_OK(policy_template_check("from {ip} via {helo}: {{literal}}", err,
		   sizeof(err)) == 0,
	    "template with known placeholders");
	TAP_OK(policy_template_check("{nosuch}", err, sizeof(err)) != 0 &&
		strstr(err, "nosuch") != NULL,
	    "unknown placeholder: %s", err);
	TAP_OK(policy_template_check("open {ip", err, sizeof(err)) != 0,
	    "unterminated placeholder: %s", err);

	/* cidrs */
	{
		struct policy_cidr c;

		TAP_OK(policy_cidr_parse("192.0.2.0/24", &c) == 0 &&
			c.bits == 24 &&
			policy_cidr_parse("2001:db8::/129", &c) != 0 &&
			policy_cidr_parse("192.0.2.1/", &c) != 0 &&
			policy_cidr_parse("x", &c) != 0 &&
			policy_cidr_parse("::/0", &c) == 0 && c.bits == 0,
		    "cidr parsing");
		(void)policy_cidr_parse("2001:db8::/32", &c);
		TAP_OK(policy_cidr_contains(&c, 1, "2001:db8:1::5") &&
			!policy_cidr_contains(&c, 1, "2001:db9::1") &&
			!policy_cidr_contains(&c, 1, "192.0.2.1") &&
			!policy_cidr_contains(&c, 1, NULL),
		    "cidr matching by family");
	}
	TAP_DONE();
}
