/*
 * fuzz_headers.c - Authentication-Results and Received-SPF building, and
 * recognising our authserv-id (headers.h).
 *
 * Input: a result byte (bits 0-5: the result modulo 7, bit 6: no
 * explanation, bit 7: the HELO identity), a byte whose bits make fields
 * 0-7 NULL, then NUL-separated fields:
 * authserv-id, receiver, client address, HELO, domain, sender, mechanism,
 * problem, explanation, an Authentication-Results body to recognise.
 *
 * Invariants: both bodies are printable ASCII folded only with "\n\t",
 * lines at most 998 octets with the field name; a body we built with a
 * host-name-like authserv-id is recognised as ours, and not as another
 * id's.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "headers.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/* hostlike - letters, digits, dots and hyphens, 1..200 of them */
static bool
hostlike(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n > 0 && n <= 200 &&
	    strspn(s,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"0123456789.-") == n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spf_response r;
	struct headers_in in;
	struct fuzz_fields f;
	const char *v[10];
	char *ar, *rspf;
	size_t i;

	if (size < 2)
		return 0;
	fuzz_split(data + 2, size - 2, '\0', 10, &f);
	for (i = 0; i < 10; i++) {
		v[i] = fuzz_field(&f, i);
		if (i < 8 && (data[1] & (1u << i)) != 0)
			v[i] = NULL;
	}
	if ((data[0] & 0x40) != 0)
		v[8] = NULL;
	memset(&r, 0, sizeof(r));
	r.result = (enum spf_result)((data[0] & 0x3f) % 7);
	r.identity = (data[0] & 0x80) ? SPF_ID_HELO : SPF_ID_MAILFROM;
	r.domain = (char *)v[4];
	r.sender = (char *)v[5];
	r.mechanism = (char *)v[6];
	r.problem = (char *)v[7];
	r.explanation = (char *)v[8];
	memset(&in, 0, sizeof(in));
	in.authserv_id = v[0];
	in.receiver = v[1];
	in.client_ip = v[2];
	in.helo = v[3];
	in.spf = &r;

	ar = headers_auth_results(&in);
	fuzz_check_header("Authentication-Results", ar,
	    sizeof("Authentication-Results: ") - 1);
	if (hostlike(in.authserv_id)) {
		if (!headers_ar_is_ours(ar, in.authserv_id))
			fuzz_fail("our own header not recognised", ar);
		if (headers_ar_is_ours(ar, "other.invalid") &&
		    strcasecmp(in.authserv_id, "other.invalid") != 0)
			fuzz_fail("our header taken for another id's", ar);
	}
	rspf = headers_received_spf(&in);
	fuzz_check_header("Received-SPF", rspf, sizeof("Received-SPF: ") - 1);
	if (v[9] != NULL)
		(void)headers_ar_is_ours(v[9], v[0] != NULL ? v[0] : "mx");
	free(ar);
	free(rspf);
	fuzz_fields_free(&f);
	return 0;
}
