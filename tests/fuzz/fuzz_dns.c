/*
 * fuzz_dns.c - DNS answer handling: libunbound's result (rcode and the
 * rdata of each record, in wire format) decoded by dns_decode_result(),
 * then truncated and freed as dns_query() and its callers do; and the
 * text helpers dns_name_ok() and dns_resolver_parse() on the input.
 *
 * Input: the type asked (byte 0: 0 A, 1 AAAA, 2 MX, 3 TXT, 4 PTR, other:
 * that value), the rcode (byte 1), havedata (byte 2), the TTL (byte 3),
 * then records, each a 2-byte big-endian length and its rdata (the last
 * one takes what is left). Each rdata is an exact-size copy, so a read
 * past its end is seen.
 *
 * Invariants: DNS_OK has records, other statuses have none; TXT data is
 * NUL-terminated after len bytes; MX and PTR names are len characters.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "dns.h"
#include "fuzz.h"
#include "xalloc.h"

#define MAX_RECORDS 64

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void
text_helpers(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1), out[128], err[128];

	memcpy(s, data, size);
	s[size] = '\0';
	(void)dns_name_ok(s);
	if (dns_resolver_parse(s, out, sizeof(out), err, sizeof(err)) == 0 &&
	    memchr(out, '\0', sizeof(out)) == NULL)
		fuzz_fail("resolver not NUL-terminated", s);
	free(s);
}

static void
check(const struct dns_answer *a)
{
	size_t i;

	if ((a->status == DNS_OK) != (a->count > 0))
		fuzz_fail("status and count disagree",
		    dns_status_name(a->status));
	for (i = 0; i < a->count; i++) {
		const struct dns_rr *rr = &a->rr[i];

		switch (a->type) {
		case DNS_T_TXT:
			if (rr->data == NULL || rr->data[rr->len] != '\0')
				fuzz_fail("TXT data not terminated", "");
			break;
		case DNS_T_MX:
		case DNS_T_PTR:
			if (rr->data == NULL || strlen(rr->data) != rr->len)
				fuzz_fail("name length", rr->data);
			break;
		default:
			if (rr->data != NULL)
				fuzz_fail("address with data", rr->data);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum dns_type types[] = {DNS_T_A, DNS_T_AAAA, DNS_T_MX,
	    DNS_T_TXT, DNS_T_PTR};
	char *rdata[MAX_RECORDS + 1];
	int lens[MAX_RECORDS + 1];
	struct ub_result res;
	struct dns_answer a;
	size_t pos = 4, n = 0, i, len;

	text_helpers(data, size);
	if (size < 4)
		return 0;
	memset(&res, 0, sizeof(res));
	memset(&a, 0, sizeof(a));
	a.type = data[0] < 5 ? types[data[0]] : (enum dns_type)data[0];
	a.status = DNS_NODATA;
	res.qtype = (int)a.type;
	res.rcode = data[1];
	res.havedata = data[2] & 1;
	res.ttl = (int8_t)data[3];
	while (pos < size && n < MAX_RECORDS) {
		len = pos + 2 <= size ? (size_t)(data[pos] << 8 | data[pos + 1])
				      : 0;
		pos = pos + 2 <= size ? pos + 2 : size;
		if (len > size - pos)
			len = size - pos;
		rdata[n] = xmalloc(len > 0 ? len : 1);
		if (len > 0)
			memcpy(rdata[n], data + pos, len);
		lens[n++] = (int)len;
		pos += len;
	}
	rdata[n] = NULL;
	lens[n] = 0;
	res.data = res.havedata ? rdata : NULL;
	res.len = res.havedata ? lens : NULL;

	dns_decode_result(&res, &a);
	if (a.status != DNS_OK)
		dns_answer_free(&a);
	check(&a);
	if (a.count > 1) {
		dns_answer_truncate(&a, (a.count + 1) / 2);
		check(&a);
	}
	dns_answer_free(&a);

	for (i = 0; i < n; i++)
		free(rdata[i]);
	return 0;
}
