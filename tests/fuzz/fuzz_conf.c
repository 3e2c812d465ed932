/*
 * fuzz_conf.c - the configuration loader (conf_load(), libconfig) on a
 * fuzzed file, and the rule engine (policy_evaluate()) over the policy
 * it loaded, for a few fixed transactions.
 *
 * The input is written to spfguard.conf in the private temporary
 * directory, next to inc.conf (a rule) that it may @include. An @include
 * of anything but a plain file name ([A-Za-z0-9_.-], not starting with a
 * dot) is not run: the fuzzer must not read files outside its directory
 * (/dev/zero would never end).
 *
 * Invariants: a refused file has its errors in the buffer; a loaded
 * policy has a default set; verdicts of refusals carry a 4xx/5xx code
 * and printable reply text.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "conf.h"
#include "fuzz.h"
#include "policy.h"

static const char inc[] =
    "rules = ( { name = \"inc\"; match = { spf = \"fail\"; }; "
    "action = \"reject\"; reply = \"{domain} {ip}\"; } );\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[300];

	fuzz_quiet();
	fuzz_write_file("inc.conf", inc, sizeof(inc) - 1, path, sizeof(path));
	return 0;
}

/* includes_ok - every @include names a plain file of our directory */
static bool
includes_ok(const uint8_t *data, size_t size)
{
	static const char kw[] = "@include";
	size_t i, k = sizeof(kw) - 1;

	for (i = 0; i + k <= size; i++) {
		if (strncasecmp((const char *)data + i, kw, k) != 0)
			continue;
		i += k;
		while (i < size && (data[i] == ' ' || data[i] == '\t'))
			i++;
		if (i >= size || data[i] != '"' || i + 1 >= size ||
		    data[i + 1] == '.')
			return false;
		for (i++; i < size && data[i] != '"'; i++)
			if (!isalnum(data[i]) && data[i] != '_' &&
			    data[i] != '.' && data[i] != '-')
				return false;
	}
	return true;
}

static void
evaluate(const struct policy *pol, const char *ip, const char *helo,
    const char *sender, const char *rcpt_domain, const char *auth,
    enum spf_result helo_r, enum spf_result mfrom_r)
{
	static const char *const lists[] = {"zen", "dbl"};
	struct policy_facts f;
	struct policy_verdict v;
	const char *at = strrchr(sender, '@');

	memset(&f, 0, sizeof(f));
	f.client_ip = ip;
	f.client_name = "mail.example.org";
	f.helo = helo;
	f.sender = sender;
	f.from_localpart = "user";
	f.from_domain = at != NULL ? at + 1 : "";
	f.rcpt = "rcpt@x";
	f.rcpt_domain = rcpt_domain;
	f.auth_user = auth;
	f.have_spf_helo = f.have_spf_mfrom = true;
	f.spf_helo = helo_r;
	f.spf_mfrom = mfrom_r;
	f.spf_explanation = "explained";
	f.dnsbl = lists;
	f.ndnsbl = 1;
	f.rhsbl_unknown = lists + 1;
	f.nrhsbl_unknown = 1;
	f.have_history = true;
	f.history = HISTORY_NEW;
	policy_spf(&f);
	memset(&v, 0, sizeof(v));
	policy_evaluate(pol, &f, &v);
	if (policy_action_refuses(v.action)) {
		if (v.code < 400 || v.code > 599)
			fuzz_fail("refusal code", v.text);
		fuzz_check_printable("reply text", v.text);
	}
	policy_verdict_free(&v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf errs;
	struct conf *c;
	char path[300];

	if (!includes_ok(data, size))
		return 0;
	fuzz_write_file("spfguard.conf", data, size, path, sizeof(path));
	buf_init(&errs);
	c = conf_load(path, &errs);
	if (c == NULL) {
		if (errs.len == 0)
			fuzz_fail("refused without an error", "");
		buf_free(&errs);
		return 0;
	}
	if (c->policy == NULL || c->policy->nsets == 0)
		fuzz_fail("no default policy set", "");
	(void)conf_uses_store(c);
	(void)conf_same_store(c, c);
	(void)conf_store_fail_closed(c);
	evaluate(c->policy, "192.0.2.1", "mx.example.org", "user@example.org",
	    "example.com", NULL, SPF_NONE, SPF_FAIL);
	evaluate(c->policy, "2001:db8::1", "[192.0.2.1]", "", "strict.example",
	    "alice", SPF_FAIL, SPF_PASS);
	evaluate(c->policy, "127.0.0.1", "localhost", "a@b.bank.example",
	    "sub.example.net", NULL, SPF_SOFTFAIL, SPF_TEMPERROR);
	evaluate(c->policy, "::ffff:10.1.2.3", "x", "postmaster@x", "", NULL,
	    SPF_PERMERROR, SPF_NEUTRAL);
	conf_unref(c);
	buf_free(&errs);
	return 0;
}
