/*
 * spf_check.h - the engines behind spf_check() (internal to the spf
 * module).
 */
#ifndef SPFGUARD_SPF_CHECK_H
#define SPFGUARD_SPF_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "spf.h"

struct spf_client {
	int family; /* AF_INET or AF_INET6 */
	uint8_t ip[16];
};

/* Parse a client address; ::ffff:a.b.c.d becomes IPv4. 0 or -1. */
int spf_client_parse(const char *, struct spf_client *);

/* Fill resp->identity, ->sender (local@domain) and ->domain from the
 * request, and return the local-part, which the caller frees. */
void spf_identity_setup(const struct spf_request *, struct spf_response *,
    char **local);

/* RFC 7208 4.3: may this domain be checked at all? */
bool spf_domain_checkable(const char *);

/* Printable ASCII of an explanation, bounded; the caller frees it. */
char *spf_sanitise(const char *, size_t);

/* A name as queried: no final dot, cut from the left to 253 octets. */
char *spf_query_name(const char *, size_t);

struct spf_macro_env;
void spf_macro_env_init(struct spf_macro_env *, const struct spf_request *,
    const struct spf_response *, const char *local, const struct spf_client *,
    const char *domain);

extern const struct spf_engine spf_engine_builtin;
#ifdef HAVE_LIBSPF2
extern const struct spf_engine spf_engine_libspf2;
#endif

#endif
