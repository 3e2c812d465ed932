/*
 * policy.h - the rule engine: named, ordered, first-match rules over the
 * facts of one SMTP transaction and one recipient.
 *
 * A struct policy is built by the configuration loader (conf.c) and is
 * immutable afterwards; policy_evaluate() is pure: facts and policy in,
 * verdict and trace out, no I/O, no globals. A verdict owns its strings
 * and is released with policy_verdict_free().
 */
#ifndef SPFGUARD_POLICY_H
#define SPFGUARD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "spf.h"

enum policy_action {
	ACT_ACCEPT,	/* deliver (SPF headers added) */
	ACT_TAG,	/* deliver, with the tag header */
	ACT_QUARANTINE, /* deliver to the MTA's hold queue */
	ACT_TEMPFAIL,	/* 4xx at RCPT */
	ACT_REJECT,	/* 5xx at RCPT */
	ACT_GREYLIST,	/* 451 4.7.1 until the source retries */
};

enum policy_mode {
	MODE_ENFORCE,
	MODE_MONITOR, /* decide and log, never refuse or quarantine */
};

struct policy_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int bits;
};

/*
 * A pattern: "example.org" matches that name (any case); "*.example.org"
 * matches its subdomains only; a text with '*' or '?' elsewhere is a shell
 * glob (any case); "unknown" as a client name matches a client without
 * one.
 */
struct policy_patterns {
	char **pat;
	size_t n;
};

#define POLICY_ANY -1 /* a tri-state condition not given */

struct policy_match {
	bool client_trusted;	  /* client = "trusted" among others */
	struct policy_cidr *nets; /* client CIDRs and named lists */
	size_t nnets;
	bool has_client; /* any client condition given */
	struct policy_patterns client_name;
	struct policy_patterns helo;
	struct policy_patterns from_domain;
	struct policy_patterns from_localpart;
	struct policy_patterns rcpt_domain;
	struct policy_patterns auth_user;
	int null_sender;   /* POLICY_ANY, 0 or 1 */
	int authenticated; /* POLICY_ANY, 0 or 1 */
	unsigned spf;	   /* bit (1 << result); 0: any */
	unsigned spf_helo;
	unsigned spf_mfrom;
	/* reputation: list and limit names ("*": any) */
	struct policy_patterns dnsbl;
	struct policy_patterns dnsbl_unknown;
	struct policy_patterns rhsbl;
	struct policy_patterns rhsbl_unknown;
	struct policy_patterns rate_over;
	unsigned history; /* bit (1 << enum policy_history); 0: any */
	int anomaly;	  /* POLICY_ANY, 0 or 1 */
};

/* Sender history classes (reputation.c decides which applies). */
enum policy_history {
	HISTORY_NEW,
	HISTORY_ESTABLISHED,
	HISTORY_BAD,
};

struct policy_rule {
	char *name;
	char *file; /* where it was defined, for messages */
	int line;
	struct policy_match match;
	enum policy_action action;
	bool shadow; /* log what it would do, go on */
	int code;    /* SMTP code; 0: the default */
	char *xcode; /* enhanced code; NULL: the default */
	char *reply; /* reply text template; NULL: the default */
};

struct policy_set {
	char *name;
	struct policy_patterns rcpt_domains; /* empty for the default set */
	int mode;			     /* POLICY_ANY: the global mode */
	struct policy_rule *rules;
	size_t nrules;
};

struct policy {
	enum policy_mode mode;
	struct policy_cidr *trusted;
	size_t ntrusted;
	/* rules tried before every set's own: the default actions of rate
	   limits ("ratelimit:NAME") */
	struct policy_rule *pre_rules;
	size_t npre_rules;
	struct policy_set *sets; /* sets[0]: the default set */
	size_t nsets;
};

/* The facts of one transaction, for one recipient. Strings are borrowed. */
struct policy_facts {
	const char *client_ip;	 /* NULL or unparseable: no address */
	const char *client_name; /* PTR name as the MTA gave it, or NULL */
	const char *helo;
	const char *sender; /* MAIL FROM address, "" for <> */
	const char *from_localpart;
	const char *from_domain;
	const char *rcpt; /* NULL before RCPT */
	const char *rcpt_domain;
	const char *auth_user; /* NULL: not authenticated */
	bool have_spf_helo, have_spf_mfrom;
	enum spf_result spf_helo, spf_mfrom;
	/* the deciding identity, as policy_spf() computes it */
	bool have_spf;
	enum spf_result spf;
	enum spf_identity spf_identity;
	const char *spf_domain;	     /* domain of the deciding identity */
	const char *spf_explanation; /* for fail, or NULL */

	/* reputation (names of lists and limits); NULL/0: none */
	const char *const *dnsbl; /* the client is listed on */
	size_t ndnsbl;
	const char *const *dnsbl_unknown; /* could not tell */
	size_t ndnsbl_unknown;
	const char *const *rhsbl; /* the sender domain or HELO is
				     listed on */
	size_t nrhsbl;
	const char *const *rhsbl_unknown;
	size_t nrhsbl_unknown;
	const char *const *rate_over; /* limits over */
	size_t nrate_over;
	bool have_history; /* false: history off, unknown, or none
			      of the sender's mail validated */
	enum policy_history history;
	bool anomaly; /* established domain, SPF now fails */

	/*
	 * Greylisting: asked when a greylist rule matches (enforce mode, not
	 * shadow). Returns 1 to defer, with the seconds until a retry is
	 * accepted; 0 when the source passed; -1 when greylisting does not
	 * apply (a trusted or authenticated client, a failed store failing
	 * open). On 0 and -1 the next rules decide. NULL: always defer (as
	 * for replay or tests without a store).
	 */
	int (*greylist)(void *arg, const struct policy_facts *,
	    unsigned *retry_s);
	void *greylist_arg;
};

struct policy_trace {
	const char *rule; /* borrowed from the policy */
	bool matched;
	bool shadow;
	char *why; /* the condition that failed, or what matched */
};

struct policy_shadow {
	const char *rule;
	enum policy_action action;
};

struct policy_verdict {
	const struct policy_set *set;
	const struct policy_rule *rule; /* deciding rule; NULL: none matched */
	enum policy_action action;	/* what to do (monitor: never refuse) */
	enum policy_action would;	/* what the rule says */
	bool monitor;
	int code;	    /* SMTP reply for a refusal (and for
			       monitor, what it would be) */
	unsigned retry_s;   /* ACT_GREYLIST: seconds until a retry
			       passes */
	bool greylist_pass; /* a greylist rule matched and the
			       source had passed it */
	char xcode[16];
	char *text; /* reply text, expanded and escaped */
	struct policy_shadow *shadows;
	size_t nshadows;
	struct policy_trace *trace;
	size_t ntrace;
};

/* The deciding SPF identity (RFC 7208 2.3): HELO when it fails, else MAIL
 * FROM (the null sender's MAIL FROM is the HELO identity). */
void policy_spf(struct policy_facts *);

void policy_evaluate(const struct policy *, const struct policy_facts *,
    struct policy_verdict *);
void policy_verdict_free(struct policy_verdict *);

/* Pick the set for a recipient domain (NULL: the default set). */
const struct policy_set *
policy_set_for(const struct policy *, const char *rcpt_domain);

const char *policy_action_name(enum policy_action);
const char *policy_history_name(enum policy_history);
int policy_history_parse(const char *, enum policy_history *);
int policy_action_parse(const char *, enum policy_action *);
bool policy_action_refuses(enum policy_action);

/* Parse "192.0.2.0/24", "2001:db8::/32" or a bare address. 0 or -1. */
int policy_cidr_parse(const char *, struct policy_cidr *);
bool policy_cidr_contains(const struct policy_cidr *, size_t n, const char *ip);

/* Is a reply template valid (known placeholders, bounded)? 0 or -1. */
int policy_template_check(const char *, char *err, size_t errlen);

bool policy_pattern_match(const struct policy_patterns *, const char *);

void policy_free(struct policy *);

#endif
