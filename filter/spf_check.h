/*
 * spf_check.h - the engines behind spf_check() (internal to the spf
 * module).
 */
#ifndef SPFGUARD_SPF_CHECK_H
#define SPFGUARD_SPF_CHECK_H

#include "spf.h"

struct spf_client {
	int		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 ip[16];
};

/* Parse a client address; ::ffff:a.b.c.d becomes IPv4. 0 or -1. */
int	spf_client_parse(const char *, struct spf_client *);

/* Fill resp->identity, ->sender (local@domain) and ->domain from the
 * request, and return the local-part, which the caller frees. */
void	spf_identity_setup(const struct spf_request *, struct spf_response *,
	    char **local);

/* RFC 7208 4.3: may this domain be checked at all? */
bool	spf_domain_checkable(const char *);

extern const struct spf_engine spf_engine_builtin;
#ifdef HAVE_LIBSPF2
extern const struct spf_engine spf_engine_libspf2;
#endif

#endif
