/*
 * headers.h - the header fields spfguard adds (Authentication-Results,
 * RFC 8601; Received-SPF, RFC 7208 9.1) and recognises (a forged
 * Authentication-Results carrying our authserv-id).
 *
 * Every value that came from the network is sanitised here: no control
 * characters, no line breaks except the folding this module inserts
 * ("\n\t"), quoted where it is not a plain token, bounded in length.
 * Returned strings are the field bodies (without the name); the caller
 * frees them.
 */
#ifndef SPFGUARD_HEADERS_H
#define SPFGUARD_HEADERS_H

#include <stdbool.h>

#include "spf.h"

struct headers_in {
	const char *authserv_id;
	const char *receiver; /* Received-SPF receiver= */
	const char *client_ip;
	const char *helo;
	const struct spf_response *spf; /* the deciding identity's result */
};

char *headers_auth_results(const struct headers_in *);
char *headers_received_spf(const struct headers_in *);

/* Does this Authentication-Results body carry the given authserv-id? */
bool headers_ar_is_ours(const char *value, const char *authserv_id);

#endif
