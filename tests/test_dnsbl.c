/*
 * test_dnsbl.c - DNS blocklists: query names, what answers mean, lookups
 * through an in-memory DNS backend, and lookups as jobs on a real worker
 * pool (in parallel, outliving the caller's list, past their deadline,
 * cancelled). Hermetic: no network.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dnsbl.h"
#include "jobs.h"
#include "tap.h"
#include "xalloc.h"

#define MAXANS 10

static bool
streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "(null)";
}

static uint32_t
ip4(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1) {
		(void)printf("Bail out! bad address %s\n", s);
		exit(1);
	}
	return ntohl(a.s_addr);
}

static long
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1)
		;
}

/* v6_want - the RFC 5782 2.4 name computed apart from dnsbl.c: the bytes
 * of inet_pton(), last first, low nibble before high nibble */
static void
v6_want(const char *addr, const char *zone, char *out, size_t outlen)
{
	struct in6_addr a;
	size_t used = 0;
	int i;

	if (inet_pton(AF_INET6, addr, &a) != 1) {
		(void)printf("Bail out! bad address %s\n", addr);
		exit(1);
	}
	for (i = 15; i >= 0; i--)
		used += (size_t)snprintf(out + used, outlen - used, "%x.%x.",
		    a.s6_addr[i] & 0xf, a.s6_addr[i] >> 4);
	(void)snprintf(out + used, outlen - used, "%s", zone);
}

/* label - n bytes of c */
static char *
label(char *p, size_t n, char c)
{
	memset(p, c, n);
	return p + n;
}

/* long_name - a name of exactly len octets: 60-octet labels and the rest */
static void
long_name(char *out, size_t len)
{
	char *p = out;
	size_t left = len, n;

	while (left > 0) {
		n = left > 61 ? 60 : left;
		p = label(p, n, 'a');
		left -= n;
		if (left > 0) {
			*p++ = '.';
			left--;
		}
	}
	*p = '\0';
}

struct name_row {
	const char *label;
	enum dnsbl_kind kind;
	const char *zone;
	const char *subject;
	const char *want; /* NULL: -1 */
};

static const struct name_row name_rows[] = {
    {"v4", DNSBL_IP, "zen.example", "192.0.2.1", "1.2.0.192.zen.example"},
    {"v4 zone with final dot", DNSBL_IP, "zen.example.", "192.0.2.1",
	"1.2.0.192.zen.example"},
    {"v4 RFC 5782 test point", DNSBL_IP, "zen.example", "127.0.0.2",
	"2.0.0.127.zen.example"},
    {"v4 255s", DNSBL_IP, "zen.example", "255.254.253.10",
	"10.253.254.255.zen.example"},
    {"v6 RFC 5782 example", DNSBL_IP, "bl.example", "2001:db8:1:2:3:4:567:89ab",
	"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2."
	"bl.example"},
    {"v4-mapped v6", DNSBL_IP, "zen.example", "::ffff:192.0.2.1",
	"1.2.0.192.zen.example"},
    {"v4-mapped v6, hex form", DNSBL_IP, "zen.example", "::FFFF:c000:0201",
	"1.2.0.192.zen.example"},
    {"domain", DNSBL_DOMAIN, "dbl.example", "example.com",
	"example.com.dbl.example"},
    {"domain uppercase", DNSBL_DOMAIN, "dbl.example", "Mail.EXAMPLE.Com",
	"mail.example.com.dbl.example"},
    {"domain final dot", DNSBL_DOMAIN, "dbl.example.", "example.com.",
	"example.com.dbl.example"},
    {"domain hyphen, underscore, digits", DNSBL_DOMAIN, "dbl.example",
	"mx-1._x.123.example.net", "mx-1._x.123.example.net.dbl.example"},
    {"domain single label", DNSBL_DOMAIN, "dbl.example", "localhost",
	"localhost.dbl.example"},
    {"v4: empty", DNSBL_IP, "zen.example", "", NULL},
    {"v4: a name", DNSBL_IP, "zen.example", "example.com", NULL},
    {"v4: three octets", DNSBL_IP, "zen.example", "192.0.2", NULL},
    {"v4: octet 256", DNSBL_IP, "zen.example", "192.0.2.256", NULL},
    {"v4: literal", DNSBL_IP, "zen.example", "[192.0.2.1]", NULL},
    {"v4: space", DNSBL_IP, "zen.example", " 192.0.2.1", NULL},
    {"v6: scope", DNSBL_IP, "zen.example", "fe80::1%eth0", NULL},
    {"v6: prefix", DNSBL_IP, "zen.example", "2001:db8::/32", NULL},
    {"v6: IPv6: tag", DNSBL_IP, "zen.example", "IPv6:2001:db8::1", NULL},
    {"empty zone", DNSBL_IP, "", "192.0.2.1", NULL},
    {"zone only a dot", DNSBL_IP, ".", "192.0.2.1", NULL},
    {"zone two final dots", DNSBL_IP, "zen.example..", "192.0.2.1", NULL},
    {"zone empty label", DNSBL_IP, "zen..example", "192.0.2.1", NULL},
    {"domain: empty", DNSBL_DOMAIN, "dbl.example", "", NULL},
    {"domain: only a dot", DNSBL_DOMAIN, "dbl.example", ".", NULL},
    {"domain: empty label", DNSBL_DOMAIN, "dbl.example", "a..example.com",
	NULL},
    {"domain: leading dot", DNSBL_DOMAIN, "dbl.example", ".example.com", NULL},
    {"domain: two final dots", DNSBL_DOMAIN, "dbl.example", "example.com..",
	NULL},
    {"domain: v4 literal", DNSBL_DOMAIN, "dbl.example", "[192.0.2.1]", NULL},
    {"domain: v6 literal", DNSBL_DOMAIN, "dbl.example", "[IPv6:2001:db8::1]",
	NULL},
    {"domain: bare v4", DNSBL_DOMAIN, "dbl.example", "192.0.2.1", NULL},
    {"domain: bare v4, final dot", DNSBL_DOMAIN, "dbl.example", "192.0.2.1.",
	NULL},
    {"domain: bare v6", DNSBL_DOMAIN, "dbl.example", "2001:db8::1", NULL},
    {"domain: numeric last label", DNSBL_DOMAIN, "dbl.example", "host.123",
	NULL},
    {"domain: space", DNSBL_DOMAIN, "dbl.example", "exa mple.com", NULL},
    {"domain: at sign", DNSBL_DOMAIN, "dbl.example", "user@example.com", NULL},
    {"domain: 8-bit", DNSBL_DOMAIN, "dbl.example", "ex\xc3\xa4mple.com", NULL},
    {"domain: CR LF", DNSBL_DOMAIN, "dbl.example", "example.com\r\n", NULL},
};

static void
test_names(void)
{
	struct dnsbl_list l;
	char out[DNS_MAX_NAME + 1], want[300], subj[300], zone[300];
	const char *v6[] = {"2001:db8::1", "2001:DB8::ABCD:ef01", "::1",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "fe80::200:5eff:fe00:5301"};
	size_t i;
	int rc;

	memset(&l, 0, sizeof(l));
	for (i = 0; i < sizeof(name_rows) / sizeof(name_rows[0]); i++) {
		const struct name_row *r = &name_rows[i];

		l.kind = r->kind;
		l.zone = (char *)r->zone;
		memset(out, 'X', sizeof(out));
		rc = dnsbl_query_name(&l, r->subject, out, sizeof(out));
		if (r->want == NULL)
			TAP_OK(rc == -1, "name %s: -1 (rc %d)", r->label, rc);
		else
			TAP_OK(rc == 0 && streq(out, r->want), "name %s: %s",
			    r->label, rc == 0 ? out : "-1");
	}

	/* IPv6: against names computed from inet_pton()'s bytes */
	l.kind = DNSBL_IP;
	l.zone = "v6.example.";
	for (i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		v6_want(v6[i], "v6.example", want, sizeof(want));
		rc = dnsbl_query_name(&l, v6[i], out, sizeof(out));
		TAP_OK(rc == 0 && streq(out, want) && strlen(out) == 64 + 10,
		    "name v6 %s: %s", v6[i], rc == 0 ? out : "-1");
	}

	/* the 253-octet limit, for names and for v6 under a long zone */
	l.kind = DNSBL_DOMAIN;
	l.zone = "z.example"; /* 9 octets: the subject may have 243 */
	long_name(subj, 243);
	rc = dnsbl_query_name(&l, subj, out, sizeof(out));
	TAP_OK(rc == 0 && strlen(out) == 253, "name: 253 octets is allowed");
	long_name(subj, 244);
	rc = dnsbl_query_name(&l, subj, out, sizeof(out));
	TAP_OK(rc == -1, "name: 254 octets is -1");
	long_name(subj, 290);
	rc = dnsbl_query_name(&l, subj, out, sizeof(out));
	TAP_OK(rc == -1, "name: a 290-octet subject is -1");
	(void)strcpy(subj, "example.com");
	*label(subj + 8, 64, 'b') = '\0';
	rc = dnsbl_query_name(&l, subj, out, sizeof(out));
	TAP_OK(rc == -1, "name: a 64-octet label is -1");
	*label(subj + 8, 63, 'b') = '\0';
	rc = dnsbl_query_name(&l, subj, out, sizeof(out));
	TAP_OK(rc == 0, "name: a 63-octet label is allowed");

	l.kind = DNSBL_IP;
	l.zone = zone;
	long_name(zone, 189); /* 63 + 1 + 189 = 253 */
	rc = dnsbl_query_name(&l, "2001:db8::1", out, sizeof(out));
	TAP_OK(rc == 0 && strlen(out) == 253, "name: v6 under a 189 zone");
	long_name(zone, 190);
	rc = dnsbl_query_name(&l, "2001:db8::1", out, sizeof(out));
	TAP_OK(rc == -1, "name: v6 under a 190 zone is -1");

	l.zone = "zen.example";
	rc = dnsbl_query_name(&l, "192.0.2.1", out, 21);
	TAP_OK(rc == -1, "name: an out buffer too small is -1");
	rc = dnsbl_query_name(&l, "192.0.2.1", out, 22);
	TAP_OK(rc == 0 && streq(out, "1.2.0.192.zen.example"),
	    "name: an out buffer just large enough");
	rc = dnsbl_query_name(&l, NULL, out, sizeof(out));
	TAP_OK(rc == -1, "name: NULL subject is -1");
}

struct class_row {
	const char *label;
	const char *codes[3]; /* the list's; none: mask or any */
	uint32_t mask;
	enum dns_status dstatus;
	const char *dwhy;
	const char *ans[MAXANS];
	enum dnsbl_status want;
	const char *want_codes; /* dnsbl_codes_text() */
	const char *want_why;
};

#define REFUSED(x) "list refused the query (127.255.255." x ")"
#define IGNORED	   "answers outside 127/8 ignored"
#define OK	   DNS_OK

static const struct class_row class_rows[] = {
    {"any: one", {NULL}, 0, OK, NULL, {"127.0.0.2"}, DNSBL_LISTED, "127.0.0.2",
	NULL},
    {"any: two", {NULL}, 0, OK, NULL, {"127.0.0.2", "127.0.0.10"}, DNSBL_LISTED,
	"127.0.0.2,127.0.0.10", NULL},
    {"any: 127.1.2.3", {NULL}, 0, OK, NULL, {"127.1.2.3"}, DNSBL_LISTED,
	"127.1.2.3", NULL},
    {"any: 127.255.254.255 is not a refusal", {NULL}, 0, OK, NULL,
	{"127.255.254.255"}, DNSBL_LISTED, "127.255.254.255", NULL},
    {"codes: match", {"127.0.0.2", "127.0.0.3"}, 0, OK, NULL, {"127.0.0.3"},
	DNSBL_LISTED, "127.0.0.3", NULL},
    {"codes: no match", {"127.0.0.2", "127.0.0.3"}, 0, OK, NULL, {"127.0.0.4"},
	DNSBL_CLEAN, "", NULL},
    {"codes: only the matching ones count", {"127.0.0.2", "127.0.0.3"}, 0, OK,
	NULL, {"127.0.0.4", "127.0.0.2", "127.0.0.11"}, DNSBL_LISTED,
	"127.0.0.2", NULL},
    {"codes: a code outside 127/8 never lists", {"192.0.2.2"}, 0, OK, NULL,
	{"192.0.2.2"}, DNSBL_CLEAN, "", IGNORED},
    {"mask 0x02: 127.0.1.2", {NULL}, 0x02, OK, NULL, {"127.0.1.2"},
	DNSBL_LISTED, "127.0.1.2", NULL},
    {"mask 0x02: 127.0.1.4", {NULL}, 0x02, OK, NULL, {"127.0.1.4"}, DNSBL_CLEAN,
	"", NULL},
    {"mask 0x02: 127.0.1.6", {NULL}, 0x02, OK, NULL, {"127.0.1.6"},
	DNSBL_LISTED, "127.0.1.6", NULL},
    {"mask 0x0c: two of three", {NULL}, 0x0c, OK, NULL,
	{"127.0.0.8", "127.0.0.3", "127.0.0.4"}, DNSBL_LISTED,
	"127.0.0.8,127.0.0.4", NULL},
    {"mask looks at the last octet only", {NULL}, 0x02, OK, NULL, {"127.2.2.1"},
	DNSBL_CLEAN, "", NULL},
    {"codes and mask: code", {"127.0.0.10"}, 0x02, OK, NULL, {"127.0.0.10"},
	DNSBL_LISTED, "127.0.0.10", NULL},
    {"codes and mask: mask", {"127.0.0.10"}, 0x02, OK, NULL, {"127.0.0.2"},
	DNSBL_LISTED, "127.0.0.2", NULL},
    {"codes and mask: neither", {"127.0.0.10"}, 0x02, OK, NULL, {"127.0.0.4"},
	DNSBL_CLEAN, "", NULL},
    {"refused 254", {NULL}, 0, OK, NULL, {"127.255.255.254"}, DNSBL_UNKNOWN, "",
	REFUSED("254")},
    {"refused 252, with codes", {"127.0.0.2"}, 0, OK, NULL, {"127.255.255.252"},
	DNSBL_UNKNOWN, "", REFUSED("252")},
    {"refused 255, with mask", {NULL}, 0xff, OK, NULL, {"127.255.255.255"},
	DNSBL_UNKNOWN, "", REFUSED("255")},
    {"refused 0", {NULL}, 0, OK, NULL, {"127.255.255.0"}, DNSBL_UNKNOWN, "",
	REFUSED("0")},
    {"refusal wins over a listing", {NULL}, 0, OK, NULL,
	{"127.0.0.2", "127.255.255.254"}, DNSBL_UNKNOWN, "", REFUSED("254")},
    {"outside 127/8 only", {NULL}, 0, OK, NULL, {"192.0.2.1"}, DNSBL_CLEAN, "",
	IGNORED},
    {"outside 127/8: 126.255.255.255 and 128.0.0.2", {NULL}, 0, OK, NULL,
	{"126.255.255.255", "128.0.0.2"}, DNSBL_CLEAN, "", IGNORED},
    {"outside 127/8 with a listing", {NULL}, 0, OK, NULL,
	{"198.51.100.7", "127.0.0.4"}, DNSBL_LISTED, "127.0.0.4", IGNORED},
    {"outside 127/8 matching the mask", {NULL}, 0x02, OK, NULL, {"10.0.0.2"},
	DNSBL_CLEAN, "", IGNORED},
    {"ten listings: eight recorded", {NULL}, 0, OK, NULL,
	{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5",
	    "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9", "127.0.0.10"},
	DNSBL_LISTED,
	"127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,"
	"127.0.0.7,127.0.0.8",
	NULL},
    {"NXDOMAIN", {NULL}, 0, DNS_NXDOMAIN, NULL, {NULL}, DNSBL_CLEAN, "", NULL},
    {"NODATA", {NULL}, 0, DNS_NODATA, NULL, {NULL}, DNSBL_CLEAN, "", NULL},
    {"TEMPFAIL timeout", {NULL}, 0, DNS_TEMPFAIL, "timeout", {NULL},
	DNSBL_UNKNOWN, "", "timeout"},
    {"TEMPFAIL SERVFAIL", {"127.0.0.2"}, 0, DNS_TEMPFAIL, "SERVFAIL", {NULL},
	DNSBL_UNKNOWN, "", "SERVFAIL"},
    {"TEMPFAIL no reason", {NULL}, 0, DNS_TEMPFAIL, NULL, {NULL}, DNSBL_UNKNOWN,
	"", "server failure"},
};

/* answer_of - a dns_answer as dns_query() would return it */
static void
answer_of(struct dns_answer *a, enum dns_status st, const char *why,
    const char *const *ans, size_t nans)
{
	struct dns_rr rr;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->type = DNS_T_A;
	a->status = st;
	a->why = why;
	for (i = 0; i < nans && ans[i] != NULL; i++) {
		memset(&rr, 0, sizeof(rr));
		rr.addr.v4.s_addr = htonl(ip4(ans[i]));
		dns_answer_add(a, &rr);
	}
}

static void
test_classify(void)
{
	struct dnsbl_list l;
	struct dnsbl_result r;
	struct dns_answer a;
	uint32_t codes[3];
	char text[200];
	size_t i, j;

	for (i = 0; i < sizeof(class_rows) / sizeof(class_rows[0]); i++) {
		const struct class_row *c = &class_rows[i];

		memset(&l, 0, sizeof(l));
		l.zone = "zen.example";
		for (j = 0; j < 3 && c->codes[j] != NULL; j++)
			codes[j] = ip4(c->codes[j]);
		l.codes = j > 0 ? codes : NULL;
		l.ncodes = j;
		l.mask = c->mask;
		answer_of(&a, c->dstatus, c->dwhy, c->ans, MAXANS);
		memset(&r, 0xa5, sizeof(r));
		r.subject = NULL;
		dnsbl_classify(&l, &a, &r);
		dnsbl_codes_text(&r, text, sizeof(text));
		TAP_OK(r.status == c->want && streq(text, c->want_codes) &&
			streq(r.why, c->want_why) && r.list == &l,
		    "classify %s: %s [%s] why %s", c->label,
		    dnsbl_status_name(r.status), text, nz(r.why));
		dns_answer_free(&a);
	}
}

/* The in-memory zone: every other name is NXDOMAIN. */
struct zrow {
	const char *name;
	enum dns_status status;
	const char *why;
	unsigned sleep_ms;
	const char *ans[3];
};

static const struct zrow zrows[] = {
    {"2.0.0.127.zen.example", DNS_OK, NULL, 0, {"127.0.0.2", "127.0.0.4"}},
    {"3.0.0.127.zen.example", DNS_OK, NULL, 0, {"127.255.255.254"}},
    {"9.2.0.192.zen.example", DNS_TEMPFAIL, "SERVFAIL", 0, {NULL}},
    {"8.2.0.192.zen.example", DNS_OK, NULL, 0, {"192.0.2.99"}},
    {"7.2.0.192.zen.example", DNS_NODATA, NULL, 0, {NULL}},
    {"dbltest.com.dbl.example", DNS_OK, NULL, 0, {"127.0.1.2"}},
    {"5.2.0.192.slow.example", DNS_OK, NULL, 400, {"127.0.0.2", "127.0.0.4"}},
    {"6.2.0.192.slow.example", DNS_OK, NULL, 300, {"127.0.0.2"}},
    {"slow.test.slowdbl.example", DNS_OK, NULL, 300, {"127.0.1.2"}},
    {"1.0.0.127.slow.example", DNS_NXDOMAIN, NULL, 300, {NULL}},
};

static unsigned long backend_queries;

static void
backend(void *arg, const char *name, enum dns_type type, struct dns_answer *out)
{
	const struct zrow *z;
	size_t i;

	(void)__atomic_fetch_add(&backend_queries, 1, __ATOMIC_RELAXED);
	out->status = DNS_NXDOMAIN;
	for (i = 0; i < sizeof(zrows) / sizeof(zrows[0]); i++) {
		z = &zrows[i];
		if (strcasecmp(name, z->name) != 0)
			continue;
		if (z->sleep_ms > 0)
			sleep_ms(z->sleep_ms);
		if (type != DNS_T_A) {
			out->status = DNS_NODATA;
			return;
		}
		if (z->status == DNS_OK)
			answer_of(out, DNS_OK, NULL, z->ans, 3);
		else {
			out->status = z->status;
			out->why = z->why;
		}
		return;
	}
}

static void
list_init(struct dnsbl_list *l, const char *name, const char *zone,
    enum dnsbl_kind kind)
{
	memset(l, 0, sizeof(*l));
	l->name = (char *)name;
	l->zone = (char *)zone;
	l->kind = kind;
}

struct lookup_row {
	const char *label;
	const char *zone;
	enum dnsbl_kind kind;
	const char *code; /* the list's one code, or none */
	const char *subject;
	enum dnsbl_status want;
	const char *want_codes;
	const char *want_why;
	int queries; /* sent to the backend */
};

static const struct lookup_row lookup_rows[] = {
    {"listed", "zen.example", DNSBL_IP, NULL, "127.0.0.2", DNSBL_LISTED,
	"127.0.0.2,127.0.0.4", NULL, 1},
    {"listed, one code", "zen.example", DNSBL_IP, "127.0.0.4", "127.0.0.2",
	DNSBL_LISTED, "127.0.0.4", NULL, 1},
    {"listed, v4-mapped", "zen.example.", DNSBL_IP, NULL, "::ffff:127.0.0.2",
	DNSBL_LISTED, "127.0.0.2,127.0.0.4", NULL, 1},
    {"clean: NXDOMAIN", "zen.example", DNSBL_IP, NULL, "192.0.2.1", DNSBL_CLEAN,
	"", NULL, 1},
    {"clean: NODATA", "zen.example", DNSBL_IP, NULL, "192.0.2.7", DNSBL_CLEAN,
	"", NULL, 1},
    {"clean: v6 NXDOMAIN", "zen.example", DNSBL_IP, NULL, "2001:db8::1",
	DNSBL_CLEAN, "", NULL, 1},
    {"backend TEMPFAIL: unknown", "zen.example", DNSBL_IP, NULL, "192.0.2.9",
	DNSBL_UNKNOWN, "", "SERVFAIL", 1},
    {"refused: unknown", "zen.example", DNSBL_IP, NULL, "127.0.0.3",
	DNSBL_UNKNOWN, "", REFUSED("254"), 1},
    {"wildcarding zone: clean, noted", "zen.example", DNSBL_IP, NULL,
	"192.0.2.8", DNSBL_CLEAN, "", IGNORED, 1},
    {"RHSBL listed", "dbl.example", DNSBL_DOMAIN, NULL, "DBLtest.com.",
	DNSBL_LISTED, "127.0.1.2", NULL, 1},
    {"RHSBL clean", "dbl.example", DNSBL_DOMAIN, NULL, "example.com",
	DNSBL_CLEAN, "", NULL, 1},
    {"not an address: no query", "zen.example", DNSBL_IP, NULL, "unknown",
	DNSBL_CLEAN, "", "not checkable", 0},
    {"IP literal HELO: no query", "dbl.example", DNSBL_DOMAIN, NULL,
	"[192.0.2.1]", DNSBL_CLEAN, "", "not checkable", 0},
    {"bare address HELO: no query", "dbl.example", DNSBL_DOMAIN, NULL,
	"192.0.2.1", DNSBL_CLEAN, "", "not checkable", 0},
    {"NULL subject: no query", "dbl.example", DNSBL_DOMAIN, NULL, NULL,
	DNSBL_CLEAN, "", "not checkable", 0},
};

static void
test_lookup(struct dns_ctx *dns)
{
	struct dnsbl_list l;
	struct dnsbl_result r;
	struct dns_stats st0, st1;
	struct timespec dl;
	unsigned long q0;
	uint32_t code;
	char text[200];
	long t0, ms;
	size_t i;

	for (i = 0; i < sizeof(lookup_rows) / sizeof(lookup_rows[0]); i++) {
		const struct lookup_row *c = &lookup_rows[i];

		list_init(&l, "l", c->zone, c->kind);
		if (c->code != NULL) {
			code = ip4(c->code);
			l.codes = &code;
			l.ncodes = 1;
		}
		q0 = backend_queries;
		dns_get_stats(dns, &st0);
		dns_deadline(&dl, 5000);
		dnsbl_lookup(dns, &l, c->subject, &dl, &r);
		dns_get_stats(dns, &st1);
		dnsbl_codes_text(&r, text, sizeof(text));
		TAP_OK(r.status == c->want && streq(text, c->want_codes) &&
			streq(r.why, c->want_why),
		    "lookup %s: %s [%s] why %s", c->label,
		    dnsbl_status_name(r.status), text, nz(r.why));
		TAP_OK(backend_queries - q0 == (unsigned long)c->queries &&
			st1.queries - st0.queries == (unsigned long)c->queries,
		    "lookup %s: %d queries (backend %lu, dns layer %lu)",
		    c->label, c->queries, backend_queries - q0,
		    st1.queries - st0.queries);
		TAP_OK(r.list == &l && streq(r.subject, c->subject) &&
			(c->subject == NULL || r.subject != c->subject),
		    "lookup %s: list given back, subject copied", c->label);
		dnsbl_result_free(&r);
		TAP_OK(r.subject == NULL, "lookup %s: result freed", c->label);
	}

	/* deadlines: one passed before, one passed while the backend slept */
	list_init(&l, "l", "zen.example", DNSBL_IP);
	dns_deadline(&dl, 0);
	q0 = backend_queries;
	dnsbl_lookup(dns, &l, "127.0.0.2", &dl, &r);
	TAP_OK(r.status == DNSBL_UNKNOWN && streq(r.why, "deadline") &&
		backend_queries == q0,
	    "lookup: passed deadline: unknown, nothing sent (%s, %s)",
	    dnsbl_status_name(r.status), nz(r.why));
	dnsbl_result_free(&r);

	list_init(&l, "l", "slow.example", DNSBL_IP);
	dns_deadline(&dl, 100);
	t0 = now_ms();
	dnsbl_lookup(dns, &l, "192.0.2.6", &dl, &r);
	ms = now_ms() - t0;
	TAP_OK(r.status == DNSBL_UNKNOWN && streq(r.why, "deadline"),
	    "lookup: listed answer after the deadline is unknown (%s, %s, "
	    "%ld ms)",
	    dnsbl_status_name(r.status), nz(r.why), ms);
	dnsbl_result_free(&r);

	dnsbl_lookup(dns, &l, "192.0.2.6", NULL, &r);
	TAP_OK(r.status == DNSBL_LISTED, "lookup: no deadline: slow is %s",
	    dnsbl_status_name(r.status));
	dnsbl_result_free(&r);
}

static bool
wait_ms(struct job *j, unsigned ms)
{
	struct timespec until;

	dns_deadline(&until, ms);
	return job_wait(j, &until);
}

/* test_parallel - three lists at once on a pool of four: they overlap */
static void
test_parallel(struct dns_ctx *dns)
{
	struct jobs *pool = jobs_create(4);
	struct dnsbl_list zen, dbl, coded;
	struct job *j[4];
	const struct dnsbl_result *r[4];
	uint32_t code = ip4("127.0.0.4");
	char text[200];
	long t0, ms;
	size_t i;

	list_init(&zen, "zen", "slow.example", DNSBL_IP);
	list_init(&dbl, "dbl", "slowdbl.example", DNSBL_DOMAIN);
	list_init(&coded, "coded", "slow.example.", DNSBL_IP);
	coded.codes = &code;
	coded.ncodes = 1;
	t0 = now_ms();
	j[0] = dnsbl_job_start(pool, dns, &zen, "192.0.2.6", 3000);
	j[1] = dnsbl_job_start(pool, dns, &dbl, "SLOW.test", 3000);
	j[2] = dnsbl_job_start(pool, dns, &coded, "192.0.2.5", 3000);
	j[3] = dnsbl_job_start(pool, dns, &zen, "127.0.0.1", 3000);
	for (i = 0; i < 4; i++) {
		TAP_OK(wait_ms(j[i], 5000), "jobs: job %zu done", i);
		r[i] = dnsbl_job_result(j[i]);
	}
	ms = now_ms() - t0;
	dnsbl_codes_text(r[0], text, sizeof(text));
	TAP_OK(r[0]->status == DNSBL_LISTED && r[0]->list == &zen &&
		streq(text, "127.0.0.2") && streq(r[0]->subject, "192.0.2.6"),
	    "jobs: zen lists 192.0.2.6 [%s]", text);
	dnsbl_codes_text(r[1], text, sizeof(text));
	TAP_OK(r[1]->status == DNSBL_LISTED && r[1]->list == &dbl &&
		streq(text, "127.0.1.2") && streq(r[1]->subject, "SLOW.test"),
	    "jobs: dbl lists slow.test [%s]", text);
	dnsbl_codes_text(r[2], text, sizeof(text));
	TAP_OK(r[2]->status == DNSBL_LISTED && r[2]->list == &coded &&
		streq(text, "127.0.0.4"),
	    "jobs: coded list counts its code only [%s]", text);
	TAP_OK(r[3]->status == DNSBL_CLEAN && r[3]->list == &zen,
	    "jobs: zen: 127.0.0.1 is %s", dnsbl_status_name(r[3]->status));
	/* each takes 300-400 ms alone; in series over 1300 */
	TAP_OK(ms < 1000, "jobs: four slow lookups overlap (%ld ms)", ms);
	for (i = 0; i < 4; i++)
		job_release(j[i]);
	jobs_destroy(pool);
}

/* test_freed_list - the caller's list (and its strings) go right after
 * the start; the job runs later, behind a busy worker, on its own copy.
 * Under ASan any read of the freed list would stop the test. */
static void
test_freed_list(struct dns_ctx *dns)
{
	struct jobs *pool = jobs_create(1);
	struct dnsbl_list *l, slow;
	struct job *busy, *j;
	const struct dnsbl_result *r;
	char text[200];

	l = xcalloc(1, sizeof(*l));
	l->name = xstrdup("coded");
	l->zone = xstrdup("zen.example");
	l->kind = DNSBL_IP;
	l->codes = xcalloc(1, sizeof(*l->codes));
	l->codes[0] = ip4("127.0.0.4");
	l->ncodes = 1;
	list_init(&slow, "slow", "slow.example", DNSBL_IP);
	busy = dnsbl_job_start(pool, dns, &slow, "192.0.2.6", 3000);
	j = dnsbl_job_start(pool, dns, l, "127.0.0.2", 3000);
	dnsbl_list_free(l);
	free(l);

	TAP_OK(wait_ms(j, 5000), "freed list: job done");
	r = dnsbl_job_result(j);
	dnsbl_codes_text(r, text, sizeof(text));
	TAP_OK(r->status == DNSBL_LISTED && streq(text, "127.0.0.4") &&
		streq(r->subject, "127.0.0.2"),
	    "freed list: listed by the copied zone and code [%s]", text);
	TAP_OK(wait_ms(busy, 5000) &&
		dnsbl_job_result(busy)->status == DNSBL_LISTED,
	    "freed list: the job ahead of it was listed");
	job_release(j);
	job_release(busy);
	jobs_destroy(pool);
}

/* test_deadline - a lookup past its deadline is unknown; the deadline
 * runs from the start, so time queued behind a busy worker counts */
static void
test_deadline(struct dns_ctx *dns)
{
	struct jobs *pool = jobs_create(1);
	struct dnsbl_list slow;
	struct job *j, *busy, *queued;
	const struct dnsbl_result *r;
	struct timespec until;
	long t0, ms;

	list_init(&slow, "slow", "slow.example", DNSBL_IP);
	t0 = now_ms();
	j = dnsbl_job_start(pool, dns, &slow, "192.0.2.5", 150);
	until = *job_started(j);
	until.tv_nsec += 150 * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	TAP_OK(!job_wait(j, &until),
	    "deadline: a caller waiting until the deadline gives up");
	TAP_OK(wait_ms(j, 5000), "deadline: the job ends anyway");
	ms = now_ms() - t0;
	r = dnsbl_job_result(j);
	TAP_OK(r->status == DNSBL_UNKNOWN && streq(r->why, "deadline") &&
		r->list == &slow,
	    "deadline: backend slept past it: %s (%s, %ld ms)",
	    dnsbl_status_name(r->status), nz(r->why), ms);
	job_release(j);

	busy = dnsbl_job_start(pool, dns, &slow, "192.0.2.6", 3000);
	queued = dnsbl_job_start(pool, dns, &slow, "127.0.0.2", 100);
	TAP_OK(wait_ms(queued, 5000), "deadline: queued job done");
	r = dnsbl_job_result(queued);
	TAP_OK(r->status == DNSBL_UNKNOWN && streq(r->why, "deadline"),
	    "deadline: queued past it: %s (%s)", dnsbl_status_name(r->status),
	    nz(r->why));
	TAP_OK(wait_ms(busy, 5000) &&
		dnsbl_job_result(busy)->status == DNSBL_LISTED,
	    "deadline: the job ahead of it was listed");
	job_release(queued);
	job_release(busy);
	jobs_destroy(pool);
}

/* test_cancel - a job still queued when the pool goes is unknown */
static void
test_cancel(struct dns_ctx *dns)
{
	struct jobs *pool = jobs_create(1);
	struct dnsbl_list slow;
	struct job *busy, *j;
	const struct dnsbl_result *r;

	list_init(&slow, "slow", "slow.example", DNSBL_IP);
	busy = dnsbl_job_start(pool, dns, &slow, "192.0.2.6", 3000);
	j = dnsbl_job_start(pool, dns, &slow, "127.0.0.2", 3000);
	jobs_destroy(pool);
	TAP_OK(job_wait(j, NULL), "cancel: done once the pool is gone");
	r = dnsbl_job_result(j);
	TAP_OK(r->status == DNSBL_UNKNOWN && streq(r->why, "not run") &&
		r->list == &slow && streq(r->subject, "127.0.0.2"),
	    "cancel: %s (%s)", dnsbl_status_name(r->status), nz(r->why));
	job_release(j);
	job_release(busy);
}

static void
test_text(void)
{
	struct dnsbl_result r;
	struct dnsbl_list l;
	char out[64];

	memset(&r, 0, sizeof(r));
	dnsbl_codes_text(&r, out, sizeof(out));
	TAP_OK(streq(out, ""), "codes text: none is empty");
	r.codes[0] = ip4("127.0.0.2");
	r.codes[1] = ip4("127.255.0.10");
	r.ncodes = 2;
	dnsbl_codes_text(&r, out, sizeof(out));
	TAP_OK(streq(out, "127.0.0.2,127.255.0.10"), "codes text: %s", out);
	dnsbl_codes_text(&r, out, 20);
	TAP_OK(streq(out, "127.0.0.2"), "codes text: whole codes only: %s",
	    out);
	dnsbl_codes_text(&r, out, 5);
	TAP_OK(streq(out, ""), "codes text: nothing fits: empty");
	TAP_OK(streq(dnsbl_status_name(DNSBL_CLEAN), "clean") &&
		streq(dnsbl_status_name(DNSBL_LISTED), "listed") &&
		streq(dnsbl_status_name(DNSBL_UNKNOWN), "unknown"),
	    "status names");

	memset(&l, 0, sizeof(l));
	l.name = xstrdup("x");
	l.zone = xstrdup("x.example");
	l.codes = xcalloc(2, sizeof(*l.codes));
	l.ncodes = 2;
	dnsbl_list_free(&l);
	TAP_OK(l.name == NULL && l.zone == NULL && l.codes == NULL &&
		l.ncodes == 0,
	    "list free: contents gone");
	dnsbl_list_free(&l);
	dnsbl_list_free(NULL);
	dnsbl_result_free(NULL);
}

int
main(void)
{
	struct dns_ctx *dns;

	test_names();
	test_classify();
	dns = dns_create_fn(backend, NULL);
	test_lookup(dns);
	test_parallel(dns);
	test_freed_list(dns);
	test_deadline(dns);
	test_cancel(dns);
	dns_destroy(dns);
	test_text();
	TAP_DONE();
}
