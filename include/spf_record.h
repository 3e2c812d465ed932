/*
 * spf_record.h - the SPF record parser (RFC 7208 sections 4.5, 4.6, 5, 6).
 *
 * spf_record_parse() checks a whole record strictly against the RFC's ABNF
 * and, on success, fills a struct spf_record the caller releases with
 * spf_record_free(). Domain-specs are kept unexpanded; their macro syntax
 * has been checked. Parsing is pure: no DNS, no logging.
 */
#ifndef SPFGUARD_SPF_RECORD_H
#define SPFGUARD_SPF_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spf.h"

enum spf_mech {
	SPF_M_ALL,
	SPF_M_INCLUDE,
	SPF_M_A,
	SPF_M_MX,
	SPF_M_PTR,
	SPF_M_IP4,
	SPF_M_IP6,
	SPF_M_EXISTS,
};

struct spf_term {
	enum spf_mech mech;
	enum spf_result qualifier; /* PASS, FAIL, SOFTFAIL, NEUTRAL */
	char *domain;		   /* domain-spec, unexpanded; NULL:
				      the current domain */
	int cidr4;		   /* -1 when not given */
	int cidr6;
	uint8_t addr[16]; /* ip4 (first 4 bytes) / ip6 */
	char *text;	  /* the term as written */
};

struct spf_record {
	struct spf_term *terms;
	size_t nterms;
	char *redirect; /* domain-spec or NULL */
	char *exp;	/* domain-spec or NULL */
	bool has_all;
};

/* Is this TXT string an SPF version 1 record at all (RFC 7208 4.5)? */
bool spf_record_is_v1(const char *txt, size_t len);

/* 0 and a filled record, or -1 and a reason in err (permerror). */
int spf_record_parse(const char *txt, size_t len, struct spf_record *,
    char *err, size_t errlen);
void spf_record_free(struct spf_record *);

const char *spf_mech_name(enum spf_mech);
bool spf_mech_queries_dns(enum spf_mech);

#endif
