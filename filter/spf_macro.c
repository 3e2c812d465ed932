/*
 * spf_macro.c - SPF macro strings (RFC 7208 section 7): syntax and
 * expansion.
 *
 * Both entry points walk the string with the same scanner, so what the
 * checker accepts is exactly what the expander can expand. Values are
 * split on the macro's delimiters, optionally reversed, cut to the
 * rightmost N parts and joined with dots; upper-case letters URL-escape
 * the result. Nothing here allocates except the caller's buffer.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spf_macro.h"
#include "xalloc.h"

#define MAX_DIGITS 1000 /* larger transformer values mean "all" */

struct macro {
	char letter;	 /* lower case */
	bool upper;	 /* URL-escape the result */
	unsigned digits; /* 0: all parts */
	bool reverse;
	char delims[8]; /* NUL-terminated; "" means "." */
};

static bool
is_delim(char c)
{
	return strchr(".-+,/_=", c) != NULL && c != '\0';
}

/*
 * scan_macro - parse "%{...}" at s (s[0] == '%', s[1] == '{'); returns the
 * length consumed or 0 with a reason.
 */
static size_t
scan_macro(const char *s, size_t len, bool exp_letters, struct macro *m,
    char *err, size_t errlen)
{
	size_t i = 2, nd = 0;
	char c;

	memset(m, 0, sizeof(*m));
	if (i >= len) {
		(void)snprintf(err, errlen, "unterminated macro");
		return 0;
	}
	c = s[i++];
	m->upper = isupper((unsigned char)c) != 0;
	m->letter = (char)tolower((unsigned char)c);
	if (strchr("slodiphv", m->letter) == NULL || m->letter == '\0') {
		if (strchr("crt", m->letter) == NULL || m->letter == '\0') {
			(void)snprintf(err, errlen, "invalid macro letter '%c'",
			    isprint((unsigned char)c) ? c : '?');
			return 0;
		}
		if (!exp_letters) {
			(void)snprintf(err, errlen,
			    "macro letter '%c' is only allowed in exp= texts",
			    c);
			return 0;
		}
	}
	if (i < len && isdigit((unsigned char)s[i])) {
		unsigned long d = 0;

		while (i < len && isdigit((unsigned char)s[i])) {
			if (d < 1000000)
				d = d * 10 + (unsigned long)(s[i] - '0');
			i++;
		}
		if (d == 0) {
			(void)snprintf(err, errlen,
			    "macro transformer digit must not be zero");
			return 0;
		}
		m->digits = d > MAX_DIGITS ? MAX_DIGITS : (unsigned)d;
	}
	if (i < len && (s[i] == 'r' || s[i] == 'R')) {
		m->reverse = true;
		i++;
	}
	while (i < len && is_delim(s[i])) {
		if (strchr(m->delims, s[i]) == NULL &&
		    nd < sizeof(m->delims) - 1)
			m->delims[nd++] = s[i];
		i++;
	}
	if (i >= len || s[i] != '}') {
		(void)snprintf(err, errlen, "malformed macro");
		return 0;
	}
	return i + 1;
}

/* ip_nibbles - %{i} of an IPv6 address: 32 dot-separated nibbles */
static void
ip_nibbles(const uint8_t *ip, bool upper, char *out)
{
	const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++) {
		*out++ = hex[ip[i] >> 4];
		*out++ = '.';
		*out++ = hex[ip[i] & 0xf];
		*out++ = i == 15 ? '\0' : '.';
	}
}

/* macro_value - the raw value of a macro letter */
static const char *
macro_value(const struct macro *m, const struct spf_macro_env *env, char *tmp,
    size_t tmplen)
{
	switch (m->letter) {
	case 's':
		return env->sender;
	case 'l':
		return env->local;
	case 'o':
		return env->sender_domain;
	case 'd':
		return env->domain;
	case 'h':
		return env->helo;
	case 'v':
		return env->family == AF_INET6 ? "ip6" : "in-addr";
	case 'r':
		return env->receiver != NULL ? env->receiver : "unknown";
	case 't':
		(void)snprintf(tmp, tmplen, "%lld", env->now);
		return tmp;
	case 'p':
		return env->ptr != NULL ? env->ptr(env->ptr_arg) : "unknown";
	case 'i':
		if (env->family == AF_INET6) {
			ip_nibbles(env->ip, env->nibbles_upper, tmp);
			return tmp;
		}
		/* FALLTHROUGH */
	case 'c':
		(void)inet_ntop(env->family, env->ip, tmp, (socklen_t)tmplen);
		return tmp;
	}
	return "";
}

/* url_escape - append v, escaping all but RFC 3986 unreserved characters */
static void
url_escape(struct buf *out, const char *v, size_t n)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)v[i];
		if (isalnum(c) && c < 0x80)
			buf_addc(out, (char)c);
		else if (c == '-' || c == '.' || c == '_' || c == '~')
			buf_addc(out, (char)c);
		else
			buf_addf(out, "%%%02X", c);
	}
}

/* expand_one - split, reverse, cut and join a value, then escape */
static void
expand_one(const struct macro *m, const char *v, struct buf *out)
{
	const char *delims = m->delims[0] != '\0' ? m->delims : ".";
	const char **part = NULL, *p = v, *q;
	size_t *plen = NULL, n = 0, i, first;
	struct buf joined;

	for (;;) {
		q = p + strcspn(p, delims);
		part = xreallocarray(part, n + 1, sizeof(*part));
		plen = xreallocarray(plen, n + 1, sizeof(*plen));
		part[n] = p;
		plen[n] = (size_t)(q - p);
		n++;
		if (*q == '\0')
			break;
		p = q + 1;
	}
	for (i = 0; m->reverse && i < n / 2; i++) {
		const char *ts = part[i];
		size_t tl = plen[i];

		part[i] = part[n - 1 - i];
		plen[i] = plen[n - 1 - i];
		part[n - 1 - i] = ts;
		plen[n - 1 - i] = tl;
	}
	first = m->digits != 0 && m->digits < n ? n - m->digits : 0;
	buf_init(&joined);
	for (i = first; i < n; i++) {
		if (i > first)
			buf_addc(&joined, '.');
		buf_add(&joined, part[i], plen[i]);
	}
	if (m->upper)
		url_escape(out, buf_str(&joined), joined.len);
	else
		buf_add(out, buf_str(&joined), joined.len);
	buf_free(&joined);
	free(part);
	free(plen);
}

/* walk - check (env == NULL) or expand a macro-string */
static int
walk(const char *s, size_t len, bool exp_letters,
    const struct spf_macro_env *env, struct buf *out, char *err, size_t errlen)
{
	struct macro m;
	size_t i = 0, used;
	char tmp[80];
	unsigned char c;

	while (i < len) {
		if (env != NULL && env->max_len != 0 && out->len > env->max_len)
			return 0;
		c = (unsigned char)s[i];
		if (c != '%') {
			/* macro-literal, and SP in explanations */
			if ((c < 0x21 || c > 0x7e) &&
			    !(exp_letters && c == ' ')) {
				(void)snprintf(err, errlen,
				    "invalid character 0x%02x", c);
				return -1;
			}
			if (out != NULL)
				buf_addc(out, (char)c);
			i++;
			continue;
		}
		if (i + 1 >= len) {
			(void)snprintf(err, errlen, "'%%' at end of string");
			return -1;
		}
		switch (s[i + 1]) {
		case '%':
			if (out != NULL)
				buf_addc(out, '%');
			i += 2;
			continue;
		case '_':
			if (out != NULL)
				buf_addc(out, ' ');
			i += 2;
			continue;
		case '-':
			if (out != NULL)
				buf_adds(out, "%20");
			i += 2;
			continue;
		case '{':
			break;
		default:
			(void)snprintf(err, errlen, "invalid '%%' escape");
			return -1;
		}
		if ((used = scan_macro(s + i, len - i, exp_letters, &m, err,
			 errlen)) == 0)
			return -1;
		if (env != NULL)
			expand_one(&m, macro_value(&m, env, tmp, sizeof(tmp)),
			    out);
		i += used;
	}
	return 0;
}

int
spf_macro_check(const char *s, size_t len, bool exp_letters, char *err,
    size_t errlen)
{
	return walk(s, len, exp_letters, NULL, NULL, err, errlen);
}

int
spf_macro_expand(const char *s, size_t len, bool exp_letters,
    const struct spf_macro_env *env, struct buf *out, char *err, size_t errlen)
{
	return walk(s, len, exp_letters, env, out, err, errlen);
}

bool
spf_macro_uses_ptr(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i + 2 < len; i++) {
		if (s[i] == '%' && s[i + 1] == '%') {
			i++;
			continue;
		}
		if (s[i] == '%' && s[i + 1] == '{' &&
		    (s[i + 2] == 'p' || s[i + 2] == 'P'))
			return true;
	}
	return false;
}
