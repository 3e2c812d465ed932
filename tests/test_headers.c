/*
 * test_headers.c - Authentication-Results and Received-SPF bodies, their
 * sanitising and folding, and recognition of our authserv-id.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "tap.h"

static struct spf_response
resp(enum spf_result r, enum spf_identity id, const char *sender,
    const char *domain, const char *mech)
{
	struct spf_response s;

	memset(&s, 0, sizeof(s));
	s.result = r;
	s.identity = id;
	s.sender = (char *)sender;
	s.domain = (char *)domain;
	s.mechanism = (char *)mech;
	return s;
}

/* lines_ok - every line under 998 octets, continuation lines start with a
 * tab, no CR, no bare control characters */
static bool
lines_ok(const char *s, size_t first)
{
	size_t col = first;

	for (; *s != '\0'; s++) {
		if (*s == '\n') {
			if (s[1] != '\t')
				return false;
			col = 0;
			continue;
		}
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
		if (++col > 998)
			return false;
	}
	return true;
}

/* unfold - the field as a reader sees it: "\n\t" becomes " " */
static char *
unfold(char *s)
{
	char *r = s, *w = s;

	while (*r != '\0') {
		if (r[0] == '\n' && r[1] == '\t') {
			*w++ = ' ';
			r += 2;
		} else
			*w++ = *r++;
	}
	*w = '\0';
	return s;
}

int
main(void)
{
	struct headers_in in;
	struct spf_response r;
	char *h;

	memset(&in, 0, sizeof(in));
	in.authserv_id = "mx.example.org";
	in.receiver = "mx.example.org";
	in.client_ip = "192.0.2.1";
	in.helo = "mail.example.com";
	in.spf = &r;

	r = resp(SPF_PASS, SPF_ID_MAILFROM, "user@example.com", "example.com",
	    "ip4:192.0.2.0/24");
	h = unfold(headers_auth_results(&in));
	TAP_OK(strcmp(h,
		   "mx.example.org; spf=pass "
		   "smtp.mailfrom=user@example.com") == 0,
	    "AR pass: %s", h);
	free(h);
	h = headers_received_spf(&in);
	TAP_OK(lines_ok(h, 14) && strstr(h, "\n\t") != NULL,
	    "Received-SPF folded into short lines");
	unfold(h);
	TAP_OK(strncmp(h,
		   "pass (mx.example.org: domain of user@example.com "
		   "designates 192.0.2.1 as permitted sender)",
		   84) == 0 &&
		strstr(h, "client-ip=192.0.2.1;") != NULL &&
		strstr(h, "envelope-from=\"user@example.com\";") != NULL &&
		strstr(h, "helo=mail.example.com;") != NULL &&
		strstr(h, "receiver=mx.example.org;") != NULL &&
		strstr(h, "identity=mailfrom;") != NULL &&
		strstr(h, "mechanism=\"ip4:192.0.2.0/24\";") != NULL,
	    "Received-SPF pass: %s", h);
	free(h);

	r = resp(SPF_FAIL, SPF_ID_HELO, "postmaster@mail.example.com",
	    "mail.example.com", "-all");
	h = headers_auth_results(&in);
	TAP_OK(strcmp(h,
		   "mx.example.org; spf=fail "
		   "smtp.helo=mail.example.com") == 0,
	    "AR helo identity: %s", h);
	free(h);

	/* a quoted local part: only the domain goes into smtp.mailfrom */
	r = resp(SPF_SOFTFAIL, SPF_ID_MAILFROM, "\"a b\"@example.com",
	    "example.com", "~all");
	h = unfold(headers_auth_results(&in));
	TAP_OK(strcmp(h,
		   "mx.example.org; spf=softfail "
		   "smtp.mailfrom=example.com") == 0,
	    "AR with odd local part: %s", h);
	free(h);
	h = unfold(headers_received_spf(&in));
	TAP_OK(strstr(h, "envelope-from=\"\\\"a b\\\"@example.com\";") != NULL,
	    "Received-SPF quotes the odd sender: %s", h);
	free(h);

	/* header injection through HELO and sender */
	in.helo = "evil.example\r\nX-Injected: yes";
	r = resp(SPF_PERMERROR, SPF_ID_MAILFROM,
	    "x\r\nBcc: victim@example.net@example.com", "example.com", NULL);
	r.problem = (char *)"syntax error (\"\r\n\")";
	h = headers_received_spf(&in);
	TAP_OK(strchr(h, '\r') == NULL && strstr(h, "\nX-Injected") == NULL &&
		strstr(h, "\nBcc") == NULL && lines_ok(h, 14),
	    "no CR/LF from HELO, sender or problem reach Received-SPF: %s", h);
	free(h);
	h = headers_auth_results(&in);
	TAP_OK(strchr(h, '\r') == NULL && strstr(h, "\nBcc") == NULL,
	    "nor Authentication-Results: %s", h);
	free(h);

	/* a long value folds into short lines */
	{
		char longhelo[400];

		memset(longhelo, 'a', sizeof(longhelo) - 1);
		longhelo[sizeof(longhelo) - 1] = '\0';
		in.helo = longhelo;
		r = resp(SPF_NEUTRAL, SPF_ID_MAILFROM, "user@example.com",
		    "example.com", "?all");
		h = headers_received_spf(&in);
		TAP_OK(lines_ok(h, 14) && strstr(h, "\n\t") != NULL,
		    "long Received-SPF folded, every line < 998");
		free(h);
	}

	/* our authserv-id in an incoming field */
	TAP_OK(headers_ar_is_ours("mx.example.org; spf=pass", "mx.example.org"),
	    "ours");
	TAP_OK(headers_ar_is_ours(" (comment) MX.Example.ORG ; spf=pass",
		   "mx.example.org"),
	    "ours after a comment, any case");
	TAP_OK(headers_ar_is_ours("\"mx.example.org\"; spf=pass",
		   "mx.example.org"),
	    "ours quoted");
	TAP_OK(headers_ar_is_ours("mx.example.org 1; spf=pass",
		   "mx.example.org"),
	    "ours with a version");
	TAP_OK(!headers_ar_is_ours("other.example; dkim=pass",
		   "mx.example.org"),
	    "somebody else's");
	TAP_OK(!headers_ar_is_ours("mx.example.org.evil; spf=pass",
		   "mx.example.org"),
	    "a longer id is not ours");
	TAP_OK(!headers_ar_is_ours("", "mx.example.org"), "empty");
	TAP_DONE();
}
