/*
 * spf_record.c - SPF record selection and strict parsing (RFC 7208 4.5,
 * 4.6, 5, 6 and the ABNF of section 12).
 *
 * A record is parsed whole before anything is evaluated: RFC 7208 4.6 makes
 * any syntax error anywhere a permerror, even after a mechanism that would
 * have matched. The parser owns nothing it does not return; the caller
 * frees a parsed record with spf_record_free(), and a failed parse leaves
 * nothing to free.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spf_macro.h"
#include "spf_record.h"
#include "xalloc.h"

static const struct {
	const char *name;
	enum spf_mech mech;
} mechs[] = {
    {"all", SPF_M_ALL},
    {"include", SPF_M_INCLUDE},
    {"a", SPF_M_A},
    {"mx", SPF_M_MX},
    {"ptr", SPF_M_PTR},
    {"ip4", SPF_M_IP4},
    {"ip6", SPF_M_IP6},
    {"exists", SPF_M_EXISTS},
};

const char *
spf_mech_name(enum spf_mech m)
{
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (mechs[i].mech == m)
			return mechs[i].name;
	return "?";
}

/* spf_mech_queries_dns - does the term count towards the 10-lookup limit */
bool
spf_mech_queries_dns(enum spf_mech m)
{
	return m == SPF_M_INCLUDE || m == SPF_M_A || m == SPF_M_MX ||
	    m == SPF_M_PTR || m == SPF_M_EXISTS;
}

bool
spf_record_is_v1(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 &&
	    (len == 6 || txt[6] == ' ');
}

/* toplabel_ok - RFC 7208 toplabel: alphanumerics with a letter, or with
 * inner hyphens */
static bool
toplabel_ok(const char *s, size_t n)
{
	size_t i;
	bool alpha = false, hyphen = false;

	if (n == 0 || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80)
			return false;
		if (isalpha(c))
			alpha = true;
		else if (c == '-')
			hyphen = true;
		else if (!isdigit(c))
			return false;
	}
	return alpha || hyphen;
}

/* domain_spec_ok - macro-string domain-end (RFC 7208 7.1) */
static int
domain_spec_ok(const char *s, size_t n, char *err, size_t errlen)
{
	size_t i = 0, lit = 0; /* lit: start of the trailing literals */
	bool ends_macro = false;
	const char *dot;

	if (n == 0) {
		(void)snprintf(err, errlen, "empty domain-spec");
		return -1;
	}
	if (spf_macro_check(s, n, false, err, errlen) != 0)
		return -1;
	while (i < n) {
		if (s[i] != '%') {
			i++;
			ends_macro = false;
			continue;
		}
		if (s[i + 1] == '{')
			i = (size_t)((const char *)memchr(s + i, '}', n - i) -
				s) +
			    1;
		else
			i += 2;
		ends_macro = true;
		lit = i;
	}
	if (ends_macro)
		return 0;
	if (n > lit && s[n - 1] == '.')
		n--;
	dot = NULL;
	for (i = n; i > lit; i--) {
		if (s[i - 1] == '.') {
			dot = s + i - 1;
			break;
		}
	}
	if (dot == NULL || !toplabel_ok(dot + 1, (size_t)(s + n - dot - 1))) {
		(void)snprintf(err, errlen, "invalid domain-spec \"%.*s\"",
		    (int)(n > 80 ? 80 : n), s);
		return -1;
	}
	return 0;
}

/* cidr_value - ("0" / %x31-39 0*(maxdigits-1)DIGIT) up to max; -1 if bad */
static int
cidr_value(const char *s, size_t n, int max)
{
	int v = 0;
	size_t i;

	if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* ip4_ok - qnum "." qnum "." qnum "." qnum, no leading zeros */
static bool
ip4_ok(const char *s, size_t n, uint8_t *out)
{
	char tmp[16];
	size_t i, digits = 0, dots = 0;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (digits == 0)
				return false;
			dots++;
			digits = 0;
		} else if (isdigit((unsigned char)s[i])) {
			if (digits > 0 && s[i - digits] == '0')
				return false;
			if (++digits > 3)
				return false;
		} else
			return false;
	}
	if (dots != 3 || digits == 0)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET, tmp, out) == 1;
}

/* split_cidr - take a dual-cidr-length off the end of s[0..*n] */
static int
split_cidr(const char *s, size_t *n, int *c4, int *c6, bool dual)
{
	size_t i;

	*c4 = *c6 = -1;
	/* "//" ip6-cidr */
	for (i = *n; i > 0 && isdigit((unsigned char)s[i - 1]); i--)
		;
	if (dual && i < *n && i >= 2 && s[i - 1] == '/' && s[i - 2] == '/') {
		if ((*c6 = cidr_value(s + i, *n - i, 128)) < 0)
			return -1;
		*n = i - 2;
		for (i = *n; i > 0 && isdigit((unsigned char)s[i - 1]); i--)
			;
	}
	if (i < *n && i >= 1 && s[i - 1] == '/') {
		if ((*c4 = cidr_value(s + i, *n - i, 32)) < 0)
			return -1;
		*n = i - 1;
	}
	return 0;
}

static void
term_free(struct spf_term *t)
{
	free(t->domain);
	free(t->text);
}

void
spf_record_free(struct spf_record *r)
{
	size_t i;

	for (i = 0; i < r->nterms; i++)
		term_free(&r->terms[i]);
	free(r->terms);
	free(r->redirect);
	free(r->exp);
	memset(r, 0, sizeof(*r));
}

/* parse_directive - [qualifier] mechanism */
static int
parse_directive(const char *s, size_t n, struct spf_term *t, char *err,
    size_t errlen)
{
	size_t i = 0, namelen, mi, arglen;
	const char *arg;
	bool found = false;

	memset(t, 0, sizeof(*t));
	t->cidr4 = t->cidr6 = -1;
	t->qualifier = SPF_PASS;
	switch (s[0]) {
	case '+':
		i = 1;
		break;
	case '-':
		t->qualifier = SPF_FAIL;
		i = 1;
		break;
	case '~':
		t->qualifier = SPF_SOFTFAIL;
		i = 1;
		break;
	case '?':
		t->qualifier = SPF_NEUTRAL;
		i = 1;
		break;
	}
	for (namelen = 0;
	     i + namelen < n && s[i + namelen] != ':' && s[i + namelen] != '/';
	     namelen++)
		;
	for (mi = 0; mi < sizeof(mechs) / sizeof(mechs[0]); mi++) {
		if (strlen(mechs[mi].name) == namelen &&
		    strncasecmp(s + i, mechs[mi].name, namelen) == 0) {
			found = true;
			break;
		}
	}
	if (!found) {
		(void)snprintf(err, errlen, "unknown mechanism \"%.*s\"",
		    (int)(n > 80 ? 80 : n), s);
		return -1;
	}
	t->mech = mechs[mi].mech;
	arg = s + i + namelen;
	arglen = n - i - namelen;

	switch (t->mech) {
	case SPF_M_ALL:
		if (arglen != 0)
			goto bad;
		break;
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
		if (arglen < 2 || arg[0] != ':')
			goto bad;
		if (domain_spec_ok(arg + 1, arglen - 1, err, errlen) != 0)
			return -1;
		t->domain = xstrndup(arg + 1, arglen - 1);
		break;
	case SPF_M_A:
	case SPF_M_MX:
	case SPF_M_PTR:
		if (t->mech != SPF_M_PTR &&
		    split_cidr(arg, &arglen, &t->cidr4, &t->cidr6, true) != 0)
			goto bad;
		if (arglen == 0)
			break;
		if (arg[0] != ':' || arglen < 2)
			goto bad;
		if (domain_spec_ok(arg + 1, arglen - 1, err, errlen) != 0)
			return -1;
		t->domain = xstrndup(arg + 1, arglen - 1);
		break;
	case SPF_M_IP4:
		if (split_cidr(arg, &arglen, &t->cidr4, &t->cidr6, false) != 0)
			goto bad;
		if (arglen < 2 || arg[0] != ':' ||
		    !ip4_ok(arg + 1, arglen - 1, t->addr))
			goto bad;
		break;
	case SPF_M_IP6: {
		char tmp[INET6_ADDRSTRLEN + 1];
		const char *slash;

		if (arglen < 2 || arg[0] != ':')
			goto bad;
		slash = memchr(arg, '/', arglen);
		if (slash != NULL) {
			t->cidr6 = cidr_value(slash + 1,
			    (size_t)(arg + arglen - slash - 1), 128);
			if (t->cidr6 < 0)
				goto bad;
			arglen = (size_t)(slash - arg);
		}
		if (arglen - 1 >= sizeof(tmp))
			goto bad;
		memcpy(tmp, arg + 1, arglen - 1);
		tmp[arglen - 1] = '\0';
		if (inet_pton(AF_INET6, tmp, t->addr) != 1)
			goto bad;
		break;
	}
	}
	t->text = xstrndup(s, n);
	return 0;
bad:
	(void)snprintf(err, errlen, "invalid mechanism \"%.*s\"",
	    (int)(n > 80 ? 80 : n), s);
	free(t->domain);
	t->domain = NULL;
	return -1;
}

/* modifier_name - length of a modifier name followed by '=', or 0 */
static size_t
modifier_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !isalpha((unsigned char)s[0]))
		return 0;
	for (i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '=')
			return i;
		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return 0;
	}
	return 0;
}

/* parse_modifier - redirect=, exp= or an unknown name=macro-string */
static int
parse_modifier(const char *s, size_t n, size_t namelen, struct spf_record *r,
    char *err, size_t errlen)
{
	const char *v = s + namelen + 1;
	size_t vlen = n - namelen - 1;
	char **slot = NULL;

	if (namelen == 8 && strncasecmp(s, "redirect", 8) == 0)
		slot = &r->redirect;
	else if (namelen == 3 && strncasecmp(s, "exp", 3) == 0)
		slot = &r->exp;
	if (slot == NULL) {
		/* unknown modifiers are ignored, but must be well formed */
		return spf_macro_check(v, vlen, false, err, errlen);
	}
	if (*slot != NULL) {
		(void)snprintf(err, errlen, "duplicate %.*s= modifier",
		    (int)namelen, s);
		return -1;
	}
	if (domain_spec_ok(v, vlen, err, errlen) != 0)
		return -1;
	*slot = xstrndup(v, vlen);
	return 0;
}

int
spf_record_parse(const char *txt, size_t len, struct spf_record *r, char *err,
    size_t errlen)
{
	size_t i, start, n, namelen, cap = 0;
	struct spf_term t;

	memset(r, 0, sizeof(*r));
	if (!spf_record_is_v1(txt, len)) {
		(void)snprintf(err, errlen, "not an SPF version 1 record");
		return -1;
	}
	for (i = 6; i < len;) {
		if (txt[i] == ' ') {
			i++;
			continue;
		}
		start = i;
		while (i < len && txt[i] != ' ')
			i++;
		n = i - start;
		if ((namelen = modifier_name(txt + start, n)) > 0) {
			if (parse_modifier(txt + start, n, namelen, r, err,
				errlen) != 0)
				goto fail;
			continue;
		}
		if (parse_directive(txt + start, n, &t, err, errlen) != 0)
			goto fail;
		if (t.mech == SPF_M_ALL)
			r->has_all = true;
		if (r->nterms == cap) {
			/* doubling: a record of thousands of terms costs
			   linear, not quadratic, memory and time */
			cap = cap > 0 ? cap * 2 : 8;
			r->terms =
			    xreallocarray(r->terms, cap, sizeof(*r->terms));
		}
		r->terms[r->nterms++] = t;
	}
	return 0;
fail:
	spf_record_free(r);
	return -1;
}
