/*
 * fuzz_record.c - the SPF record parser (spf_record.h) on any bytes.
 *
 * The input is one TXT record, given as (pointer, length) with nothing
 * after it. Invariants: a parsed record's terms have their text, a known
 * mechanism and qualifier and CIDR lengths in range, and every
 * domain-spec (terms, redirect=, exp=) passes spf_macro_check(), as
 * spf_record.h promises; a failed parse gives a reason.
 */
#include "autoconf.h"

#include <string.h>

#include "fuzz.h"
#include "spf_macro.h"
#include "spf_record.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void
check_spec(const char *what, const char *spec)
{
	char err[256];

	if (spec != NULL &&
	    spf_macro_check(spec, strlen(spec), false, err, sizeof(err)) != 0)
		fuzz_fail(what, spec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spf_record r;
	char err[SPF_TEXT_MAX];
	size_t i;

	(void)spf_record_is_v1((const char *)data, size);
	err[0] = '\0';
	if (spf_record_parse((const char *)data, size, &r, err, sizeof(err)) !=
	    0) {
		if (err[0] == '\0')
			fuzz_fail("parse failed without a reason", "");
		return 0;
	}
	for (i = 0; i < r.nterms; i++) {
		const struct spf_term *t = &r.terms[i];

		if (t->text == NULL || strcmp(spf_mech_name(t->mech), "?") == 0)
			fuzz_fail("term without text or mechanism", t->text);
		if (t->qualifier != SPF_PASS && t->qualifier != SPF_FAIL &&
		    t->qualifier != SPF_SOFTFAIL && t->qualifier != SPF_NEUTRAL)
			fuzz_fail("qualifier", t->text);
		if (t->cidr4 < -1 || t->cidr4 > 32 || t->cidr6 < -1 ||
		    t->cidr6 > 128)
			fuzz_fail("cidr length", t->text);
		check_spec("term domain-spec", t->domain);
		(void)spf_mech_queries_dns(t->mech);
	}
	check_spec("redirect domain-spec", r.redirect);
	check_spec("exp domain-spec", r.exp);
	spf_record_free(&r);
	return 0;
}
