/*
 * test_record.c - table-driven tests of the SPF record parser.
 */
#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include "spf_record.h"
#include "tap.h"

static const struct {
	const char *label;
	const char *rec;
	bool ok;
	size_t nterms; /* when ok */
} cases[] = {
    {"empty record", "v=spf1", true, 0},
    {"trailing spaces", "v=spf1 -all   ", true, 1},
    {"several spaces", "v=spf1  a   mx  -all", true, 3},
    {"version case", "V=SpF1 ~all", true, 1},
    {"all qualifiers", "v=spf1 +a -a ~a ?a", true, 4},
    {"ip4 cidr 0", "v=spf1 ip4:0.0.0.0/0", true, 1},
    {"ip4 cidr 32", "v=spf1 ip4:192.0.2.1/32", true, 1},
    {"ip4 cidr 33", "v=spf1 ip4:192.0.2.1/33", false, 0},
    {"ip4 leading zero cidr", "v=spf1 ip4:192.0.2.1/024", false, 0},
    {"ip4 leading zero octet", "v=spf1 ip4:192.0.02.1", false, 0},
    {"ip4 three octets", "v=spf1 ip4:192.0.2", false, 0},
    {"ip4 octet 256", "v=spf1 ip4:192.0.2.256", false, 0},
    {"ip4 missing address", "v=spf1 ip4", false, 0},
    {"ip6", "v=spf1 ip6:2001:db8::/32", true, 1},
    {"ip6 cidr 0", "v=spf1 ip6:::/0", true, 1},
    {"ip6 cidr 129", "v=spf1 ip6:2001:db8::/129", false, 0},
    {"ip6 with a v4 address", "v=spf1 ip6:192.0.2.1", false, 0},
    {"ip6 v4-embedded", "v=spf1 ip6:::ffff:192.0.2.1", true, 1},
    {"a dual cidr", "v=spf1 a/24//64", true, 1},
    {"a v6 cidr only", "v=spf1 a//64", true, 1},
    {"a domain and cidr", "v=spf1 a:example.com/24", true, 1},
    {"a empty domain", "v=spf1 a:", false, 0},
    {"a only toplabel", "v=spf1 a:museum", false, 0},
    {"a numeric toplabel", "v=spf1 a:foo.example.123", false, 0},
    {"a dash in toplabel", "v=spf1 a:foo.example-com", true, 1},
    {"a toplabel ends in dash", "v=spf1 a:foo.example-", false, 0},
    {"a dashed toplabel", "v=spf1 a:foo.1-2", true, 1},
    {"a trailing dot", "v=spf1 a:example.com.", true, 1},
    {"a macro end", "v=spf1 a:%{d}", true, 1},
    {"a bad cidr", "v=spf1 a/", false, 0},
    {"mx cidr", "v=spf1 mx/26", true, 1},
    {"ptr with cidr", "v=spf1 ptr/24", false, 0},
    {"ptr domain", "v=spf1 ptr:example.com", true, 1},
    {"include needs domain", "v=spf1 include", false, 0},
    {"include", "v=spf1 include:_spf.example.com", true, 1},
    {"exists needs domain", "v=spf1 exists", false, 0},
    {"exists macro", "v=spf1 exists:%{ir}.%{v}._spf.%{d2}", true, 1},
    {"all with argument", "v=spf1 all:foo", false, 0},
    {"unknown mechanism", "v=spf1 foo", false, 0},
    {"redirect", "v=spf1 redirect=_spf.example.com", true, 0},
    {"two redirects",
	"v=spf1 redirect=a.example.com "
	"redirect=b.example.com",
	false, 0},
    {"two exp", "v=spf1 exp=a.example.com exp=b.example.com", false, 0},
    {"unknown modifier", "v=spf1 moo.cow-far_out=man:dog/cat -all", true, 1},
    {"unknown modifier bad macro", "v=spf1 foo=%{x}", false, 0},
    {"modifier empty name", "v=spf1 =foo", false, 0},
    {"redirect empty", "v=spf1 redirect=", false, 0},
    {"tab is not a separator", "v=spf1\t-all", false, 0},
    {"tab inside", "v=spf1 -all\t", false, 0},
    {"not v=spf10", "v=spf10", false, 0},
    {"non-ascii", "v=spf1 a:caf\xc3\xa9.example.com", false, 0},
    {"macro letter in domain", "v=spf1 a:%{c}.example.com", false, 0},
    {"syntax error after all", "v=spf1 -all foo:bar", false, 0},
};

int
main(void)
{
	struct spf_record r;
	char err[256];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = spf_record_parse(cases[i].rec, strlen(cases[i].rec), &r,
		    err, sizeof(err));
		if (cases[i].ok)
			TAP_OK(rc == 0 && r.nterms == cases[i].nterms,
			    "%s: parses, %zu terms", cases[i].label, r.nterms);
		else
			TAP_OK(rc != 0, "%s: rejected (%s)", cases[i].label,
			    rc != 0 ? err : "accepted");
		if (rc == 0)
			spf_record_free(&r);
	}

	/* details the evaluator relies on */
	{
		const char *rec = "v=spf1 -a:example.com/24//64 "
				  "redirect=x.example.org exp=e.%{d}";

		rc = spf_record_parse(rec, strlen(rec), &r, err, sizeof(err));
	}
	TAP_OK(rc == 0 && r.nterms == 1 && r.terms[0].qualifier == SPF_FAIL &&
		r.terms[0].cidr4 == 24 && r.terms[0].cidr6 == 64 &&
		strcmp(r.terms[0].domain, "example.com") == 0 &&
		strcmp(r.redirect, "x.example.org") == 0 &&
		strcmp(r.exp, "e.%{d}") == 0,
	    "fields of a parsed record");
	if (rc == 0)
		spf_record_free(&r);
	rc = spf_record_parse("v=spf1 ~all", 11, &r, err, sizeof(err));
	TAP_OK(rc == 0 && r.has_all && r.terms[0].qualifier == SPF_SOFTFAIL,
	    "all sets has_all");
	if (rc == 0)
		spf_record_free(&r);
	TAP_OK(spf_record_is_v1("v=spf1", 6) &&
		spf_record_is_v1("v=spf1 a", 8) &&
		!spf_record_is_v1("v=spf10", 7) &&
		!spf_record_is_v1("v=spf", 5),
	    "record selection by version");
	TAP_DONE();
}
