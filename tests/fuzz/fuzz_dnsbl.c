/*
 * fuzz_dnsbl.c - DNS blocklist query names and answer classification
 * (dnsbl_query_name(), dnsbl_classify(), dnsbl_codes_text()).
 *
 * Input: a flags byte (bit 0: RHSBL, bits 1-3: how many codes, bits 4-5:
 * the answer's status, bits 6-7: which output buffer size), a mask byte,
 * then NUL-separated fields: the zone, the subject, the codes (IPv4
 * text), and the answer's A records (4 bytes each, the rest of the input).
 *
 * Invariants: a query name is a sendable name that fits its buffer;
 * dnsbl_classify() keeps at most DNSBL_MAX_CODES codes, gives a reason
 * when it cannot tell, and reports only codes that were in the answer.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl.h"
#include "fuzz.h"
#include "xalloc.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void
check_name(const struct dnsbl_list *l, const char *subject)
{
	static const size_t sizes[] = {8, 64, 254, 300};
	char out[300];
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(out, 'X', sizeof(out));
		if (dnsbl_query_name(l, subject, out, sizes[i]) != 0)
			continue;
		if (memchr(out, '\0', sizes[i]) == NULL)
			fuzz_fail("query name not terminated in its buffer",
			    subject);
		if (!dns_name_ok(out))
			fuzz_fail("query name not sendable", out);
	}
}

static void
check_result(const struct dns_answer *a, const struct dnsbl_result *r)
{
	size_t i, j;

	if (r->ncodes > DNSBL_MAX_CODES)
		fuzz_fail("too many codes", "");
	if (r->status == DNSBL_UNKNOWN && r->why == NULL)
		fuzz_fail("unknown without a reason", "");
	if (r->status != DNSBL_LISTED && r->ncodes > 0)
		fuzz_fail("codes without a listing", "");
	for (i = 0; i < r->ncodes; i++) {
		for (j = 0; j < a->count; j++)
			if (ntohl(a->rr[j].addr.v4.s_addr) == r->codes[i])
				break;
		if (j == a->count)
			fuzz_fail("a code that was not in the answer", "");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum dns_status statuses[] = {DNS_OK, DNS_NODATA,
	    DNS_NXDOMAIN, DNS_TEMPFAIL};
	struct dnsbl_list l;
	struct dnsbl_result r;
	struct dns_answer a;
	struct fuzz_fields f;
	uint32_t codes[7];
	char text[64];
	size_t ncodes, i, k;
	const char *rest;
	size_t restlen;

	if (size < 2)
		return 0;
	ncodes = (data[0] >> 1) & 7;
	fuzz_split(data + 2, size - 2, '\0', 3 + ncodes, &f);
	memset(&l, 0, sizeof(l));
	l.name = (char *)"fuzz";
	l.zone = (char *)(fuzz_field(&f, 0) != NULL ? f.v[0] : "bl.example");
	l.kind = (data[0] & 1) ? DNSBL_DOMAIN : DNSBL_IP;
	l.mask = data[1];
	l.check_from = l.check_helo = true;
	for (i = 0, k = 0; i < ncodes && i < sizeof(codes) / sizeof(codes[0]);
	     i++) {
		struct in_addr v4;
		const char *c = fuzz_field(&f, 2 + i);

		if (c != NULL && inet_pton(AF_INET, c, &v4) == 1)
			codes[k++] = ntohl(v4.s_addr);
	}
	l.codes = k > 0 ? codes : NULL;
	l.ncodes = k;

	check_name(&l, fuzz_field(&f, 1) != NULL ? f.v[1] : "192.0.2.1");

	memset(&a, 0, sizeof(a));
	a.type = DNS_T_A;
	a.status = statuses[(data[0] >> 4) & 3];
	if (a.status == DNS_TEMPFAIL)
		a.why = "fuzzed";
	rest = f.n == 3 + ncodes ? f.v[f.n - 1] : "";
	restlen = f.n == 3 + ncodes ? f.len[f.n - 1] : 0;
	if (a.status == DNS_OK) {
		for (i = 0; i + 4 <= restlen && i < 4 * 64; i += 4) {
			struct dns_rr rr;

			memset(&rr, 0, sizeof(rr));
			memcpy(&rr.addr.v4, rest + i, 4);
			dns_answer_add(&a, &rr);
		}
		if (a.count == 0)
			a.status = DNS_NODATA;
	}
	memset(&r, 0, sizeof(r));
	dnsbl_classify(&l, &a, &r);
	check_result(&a, &r);
	for (i = 0; i < sizeof(text); i += 13) {
		dnsbl_codes_text(&r, text, sizeof(text) - i);
		if (memchr(text, '\0', sizeof(text) - i) == NULL)
			fuzz_fail("codes text not terminated", "");
	}
	(void)dnsbl_status_name(r.status);
	dnsbl_result_free(&r);
	dns_answer_free(&a);
	fuzz_fields_free(&f);
	return 0;
}
