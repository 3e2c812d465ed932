/*
 * reputation.h - what the site has learnt about senders, kept in the
 * store (store.h): sender history, greylisting and rate limits.
 *
 * Each function is one decision over the store, given the current time,
 * and returns 0 or 1 for its answer or -1 when the store failed (the
 * reason in err); the caller maps a failure to the configured fail-open or
 * fail-closed answer. Nothing here logs.
 *
 * Keys (under the store's prefix), all lower case:
 *   h:DOMAIN              history of a sender domain
 *   hn:DOMAIN/NET         history of a domain from one client network
 *   g:SOURCE/SENDER/RCPT  a greylist triplet (SOURCE: d:DOMAIN when SPF
 *                         passed, else n:NET)
 *   ga:SOURCE             a source that retried correctly
 *   r:LIMIT:SUBJECT:N     rate limit LIMIT, window number N
 * Keys longer than the store allows are replaced by a digest of them.
 */
#ifndef SPFGUARD_REPUTATION_H
#define SPFGUARD_REPUTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dnsbl.h"
#include "policy.h"
#include "spf.h"
#include "store.h"

/* Settings, from the configuration. */
struct rep_history_opts {
	unsigned established_messages; /* validated, delivered */
	unsigned established_age;      /* seconds since the first */
	unsigned bad_refusals;	       /* validated, refused */
	unsigned bad_percent;	       /* of validated mail refused */
	unsigned expiry;	       /* seconds a record lives unused */
};

struct rep_greylist_opts {
	unsigned delay;	 /* seconds before a retry is accepted */
	unsigned window; /* seconds after the delay to retry in */
	unsigned expiry; /* seconds a passed source is remembered */
};

enum rate_key {
	RATE_IP,	    /* client address */
	RATE_NET,	    /* client network (/24, /64) */
	RATE_SENDER_DOMAIN, /* MAIL FROM domain */
	RATE_AUTH_USER,	    /* SMTP AUTH user */
};

struct rate_limit {
	char *name;
	enum rate_key key;
	unsigned limit;	 /* most in a window */
	unsigned window; /* seconds */
	bool per_rcpt;	 /* count recipients, not messages */
	/* the default action is a policy pre-rule "ratelimit:NAME" */
};

/* The network of a client: "192.0.2.0/24", "2001:db8::/64" (IPv4-mapped
 * addresses as IPv4). 0, or -1 for what is not an address. */
int rep_network(const char *ip, unsigned v4_prefix, unsigned v6_prefix,
    char *out, size_t outlen);

/* A sender domain's record, and the class it gives. */
struct rep_history {
	bool found;			   /* a record exists */
	int64_t counts[SPF_PERMERROR + 1]; /* MAIL FROM results seen */
	int64_t delivered, refused;	   /* validated (pass) messages */
	int64_t first, last;		   /* of validated mail, unix time */
	enum policy_history class;
};

/* Read the record of a domain (key "h:DOMAIN") or of a domain and network
 * (net != NULL). Class: bad, established or new (no record: new). */
int rep_history_read(struct store *, const struct rep_history_opts *,
    const char *domain, const char *net, time_t now, struct rep_history *,
    char *err, size_t errlen);

/* An established domain whose SPF now fails (fail or softfail). */
bool rep_history_anomaly(const struct rep_history *, enum spf_result);

/*
 * Record one message: SPF pass (validated) mail creates and feeds both
 * records, with whether it was delivered or refused (reject); other
 * results are only counted on a domain record that exists already, so a
 * forger builds no history, and never count towards a class.
 */
int rep_history_record(struct store *, const struct rep_history_opts *,
    const char *domain, const char *net, enum spf_result, bool delivered,
    bool refused, time_t now, char *err, size_t errlen);

/*
 * Greylisting of one triplet: 1 to defer (retry_s: seconds until a retry
 * passes), 0 to let it through (the source had passed before, or this is
 * a retry inside the window). Source: "d:DOMAIN" or "n:NET".
 */
int rep_greylist(struct store *, const struct rep_greylist_opts *,
    const char *source, const char *sender, const char *rcpt, time_t now,
    unsigned *retry_s, char *err, size_t errlen);

/*
 * Count n events for a subject under a limit and tell whether it is over:
 * 1 over, 0 not. The rate is a sliding window estimated from two fixed
 * windows (the current one's count plus the previous one's weighted by
 * the share of it still inside the sliding window); *rate gets it.
 */
int rep_rate(struct store *, const struct rate_limit *, const char *subject,
    unsigned n, time_t now, double *rate, char *err, size_t errlen);

/* The reputation facts of one message, for the decision log. Borrowed. */
struct rep_rate_state {
	const struct rate_limit *limit;
	bool checked; /* counted (the subject exists) */
	bool over;
	double rate;
};

struct rep_facts {
	const struct dnsbl_result *const *lists; /* DNSBL and RHSBL */
	size_t nlists;
	bool have_history;
	const struct rep_history *history;     /* the domain's */
	const struct rep_history *net_history; /* domain and network */
	const char *net;
	bool anomaly;
	const struct rep_rate_state *rates;
	size_t nrates;
	const char *store_error; /* the first failure, or NULL */
};

const char *rep_rate_key_name(enum rate_key);
int rep_rate_key_parse(const char *, enum rate_key *);

#endif
