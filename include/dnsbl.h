/*
 * dnsbl.h - DNS blocklists: the client address against DNSBLs, and the
 * sender domain (and HELO name, where asked) against RHSBLs.
 *
 * A list is declared in the configuration with a zone, the answers that
 * count as a listing (exact codes, or a bit mask over the last octet of a
 * 127.0.0.0/8 answer; neither: any 127.0.0.0/8 answer) and a name used in
 * rules and logs. A lookup runs on the worker threads (jobs.c) under the
 * same DNS layer and deadline as SPF. Its outcome is one of three: clean,
 * listed (with the answer codes), or unknown: a timeout, a server failure,
 * or an answer in 127.255.255.0/24, which lists use to say the query was
 * refused (Spamhaus: "query via public resolver", "excessive queries").
 * Unknown is never reported as clean.
 */
#ifndef SPFGUARD_DNSBL_H
#define SPFGUARD_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "jobs.h"

enum dnsbl_kind {
	DNSBL_IP,     /* reversed client address under the zone */
	DNSBL_DOMAIN, /* a domain name under the zone (RHSBL) */
};

struct dnsbl_list {
	char *name; /* for rules and logs */
	char *zone;
	enum dnsbl_kind kind;
	uint32_t *codes; /* listed answers, IPv4 in host order */
	size_t ncodes;
	uint32_t mask;	 /* nonzero: listed when the answer's last
			    octet has one of these bits */
	bool check_from; /* DNSBL_DOMAIN: the MAIL FROM domain */
	bool check_helo; /* DNSBL_DOMAIN: the HELO name */
};

enum dnsbl_status {
	DNSBL_CLEAN,
	DNSBL_LISTED,
	DNSBL_UNKNOWN, /* could not tell: a temporary fact */
};

#define DNSBL_MAX_CODES 8

struct dnsbl_result {
	const struct dnsbl_list *list; /* borrowed from the caller */
	char *subject;		       /* the address or name checked */
	enum dnsbl_status status;
	uint32_t codes[DNSBL_MAX_CODES]; /* DNSBL_LISTED: the answers
					    that counted */
	size_t ncodes;
	const char *why; /* DNSBL_UNKNOWN: a static reason; CLEAN,
			    LISTED: NULL or a static note to log
			    ("not checkable", "answers outside
			    127/8 ignored") */
};

/*
 * The name to query for a subject: 2.0.0.192.zone for 192.0.2.2; 32
 * reversed nibbles for an IPv6 address; IPv4-mapped IPv6 as IPv4; a domain
 * as "domain.zone". 0, or -1 when the subject cannot be listed (not an
 * address, not a valid name, the result over 253 octets).
 */
int dnsbl_query_name(const struct dnsbl_list *, const char *subject, char *out,
    size_t outlen);

/* What an A answer for the query name means under the list's rules. */
void dnsbl_classify(const struct dnsbl_list *, const struct dns_answer *,
    struct dnsbl_result *);

/*
 * Look a subject up (blocking, until the deadline). A subject that cannot
 * be listed is clean, without a query.
 */
void
dnsbl_lookup(struct dns_ctx *, const struct dnsbl_list *, const char *subject,
    const struct timespec *deadline, struct dnsbl_result *);

/* The same on a worker; the result is valid once job_wait() is true. The
 * job works on its own copy of the list (a connection may end and its
 * configuration snapshot go while the lookup still runs); result->list is
 * the pointer given here, for the caller. */
struct job *dnsbl_job_start(struct jobs *, struct dns_ctx *,
    const struct dnsbl_list *, const char *subject, unsigned deadline_ms);
const struct dnsbl_result *dnsbl_job_result(const struct job *);

void dnsbl_result_free(struct dnsbl_result *);

/* "127.0.0.2,127.0.0.4" for the decision log; out is NUL-terminated. */
void dnsbl_codes_text(const struct dnsbl_result *, char *out, size_t outlen);

void dnsbl_list_free(struct dnsbl_list *); /* the contents */

const char *dnsbl_status_name(enum dnsbl_status);

#endif
