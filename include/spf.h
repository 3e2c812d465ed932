/*
 * spf.h - SPF (RFC 7208): check one identity of one SMTP transaction.
 *
 * spf_check() evaluates check_host() for the HELO or MAIL FROM identity
 * with the engine chosen by name ("builtin", the default, or "libspf2")
 * and fills a struct spf_response that the caller owns and releases with
 * spf_response_free(). Evaluation is pure apart from DNS: it never logs,
 * never exits, and is bounded by the deadline and the RFC's limits.
 */
#ifndef SPFGUARD_SPF_H
#define SPFGUARD_SPF_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

enum spf_identity {
	SPF_ID_MAILFROM,
	SPF_ID_HELO,
};

#define SPF_MAX_EXPLANATION 256 /* octets kept of an exp= text */
#define SPF_TEXT_MAX	    512 /* mechanism / problem text */

struct spf_request {
	const char *ip;		    /* client address, text (v4, v6,
				       ::ffff:v4) */
	const char *helo;	    /* HELO/EHLO argument */
	const char *sender;	    /* MAIL FROM address, "" or "<>" for
				       the null sender */
	enum spf_identity identity; /* which identity to check */
	const char *receiver;	    /* %{r}; NULL: "unknown" */
	const char *default_exp;    /* explanation when exp= gives none */
	unsigned deadline_ms;	    /* whole evaluation; 0: 20000 */
	unsigned max_lookups;	    /* DNS-querying terms; 0: 10 */
	unsigned max_void;	    /* void lookups; 0: 2 */
};

struct spf_response {
	enum spf_result result;
	enum spf_identity identity;
	char *domain;	   /* the domain checked (NULL: none) */
	char *sender;	   /* the sender as checked */
	char *mechanism;   /* the term that decided, or
			      "default" */
	char *problem;	   /* why temperror / permerror / none */
	char *explanation; /* fail only; sanitised, bounded */
	unsigned lookups;  /* DNS-querying terms evaluated */
	unsigned void_lookups;
	unsigned dns_queries; /* every query the check made */
	long elapsed_ms;
};

struct spf_engine {
	const char *name;
	void (*check)(struct dns_ctx *, const struct spf_request *,
	    struct spf_response *);
};

const struct spf_engine *spf_engine_find(const char *name);
const char *spf_engine_names(void);

void spf_check(const struct spf_engine *, struct dns_ctx *,
    const struct spf_request *, struct spf_response *);
void spf_response_free(struct spf_response *);

bool spf_ip_ok(const char *);
const char *spf_result_name(enum spf_result);
const char *spf_identity_name(enum spf_identity);
int spf_result_parse(const char *, enum spf_result *);

#endif
