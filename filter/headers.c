/*
 * headers.c - Authentication-Results (RFC 8601) and Received-SPF (RFC 7208
 * section 9.1) field bodies, and recognition of our own authserv-id in an
 * incoming Authentication-Results.
 *
 * Untrusted text (HELO, envelope sender, mechanism from a DNS record) only
 * reaches a header through value() or comment_text(), which keep printable
 * ASCII, quote or strip what the header grammar does not allow, and bound
 * the length. Lines are folded with "\n\t" before 78 columns where
 * possible; libmilter passes the line breaks to the MTA as they are.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "headers.h"
#include "xalloc.h"

#define VALUE_MAX 256 /* characters kept of one value */
#define FOLD_AT	  76

/* atext - RFC 5322 atext */
static bool
atext(int c)
{
	return isalnum(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_dot_atom - can s stand unquoted (RFC 5322 dot-atom-text)? */
static bool
is_dot_atom(const char *s)
{
	const char *p;

	if (*s == '\0' || *s == '.' || s[strlen(s) - 1] == '.' ||
	    strlen(s) > VALUE_MAX)
		return false;
	for (p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (p[1] == '.')
				return false;
		} else if (!atext((unsigned char)*p) ||
		    (unsigned char)*p >= 0x80)
			return false;
	}
	return true;
}

/* local_ok - is s..at a dot-atom local-part? */
static bool
local_ok(const char *s, const char *at)
{
	char tmp[VALUE_MAX + 1];
	size_t n = (size_t)(at - s);

	if (n == 0 || n > VALUE_MAX)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return is_dot_atom(tmp);
}

/* value - a dot-atom as is, anything else as a bounded quoted-string */
static void
value(struct buf *b, const char *s)
{
	size_t n;

	if (s == NULL)
		s = "";
	if (is_dot_atom(s)) {
		buf_adds(b, s);
		return;
	}
	buf_addc(b, '"');
	for (n = 0; *s != '\0' && n < VALUE_MAX; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf_addc(b, '\\');
			buf_addc(b, (char)c);
		} else if (c >= 0x20 && c < 0x7f)
			buf_addc(b, (char)c);
		else
			buf_addc(b, '?');
	}
	buf_addc(b, '"');
}

/* comment_text - text safe inside a comment: no parentheses, no
 * backslashes, printable ASCII, bounded */
static void
comment_text(struct buf *b, const char *s)
{
	size_t n;

	if (s == NULL)
		s = "";
	for (n = 0; *s != '\0' && n < VALUE_MAX; s++, n++) {
		unsigned char c = (unsigned char)*s;

		buf_addc(b,
		    c >= 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\'
			? (char)c
			: '?');
	}
}

/* fold - break a field body into lines at spaces, before FOLD_AT columns
 * where the words allow; the name takes `first` columns of the first line */
static char *
fold(const char *s, size_t first)
{
	struct buf out;
	size_t col = first, i = 0, wlen;

	buf_init(&out);
	while (s[i] != '\0') {
		if (s[i] == ' ') {
			wlen = strcspn(s + i + 1, " ");
			if (col + 1 + wlen > FOLD_AT && col > 8) {
				buf_adds(&out, "\n\t");
				col = 8;
			} else {
				buf_addc(&out, ' ');
				col++;
			}
			i++;
			continue;
		}
		wlen = strcspn(s + i, " ");
		buf_add(&out, s + i, wlen);
		col += wlen;
		i += wlen;
	}
	return buf_release(&out);
}

/* identity_name - what the checked identity names */
static const char *
identity_name(const struct headers_in *in)
{
	if (in->spf->identity == SPF_ID_HELO)
		return in->helo != NULL ? in->helo : in->spf->domain;
	return in->spf->sender;
}

char *
headers_auth_results(const struct headers_in *in)
{
	const struct spf_response *r = in->spf;
	struct buf b;
	const char *at;
	char *s;

	buf_init(&b);
	value(&b, in->authserv_id);
	buf_adds(&b, "; spf=");
	buf_adds(&b, spf_result_name(r->result));
	if (r->identity == SPF_ID_HELO) {
		buf_adds(&b, " smtp.helo=");
		value(&b, in->helo);
	} else {
		buf_adds(&b, " smtp.mailfrom=");
		/* the whole address when it is a plain one, else its domain */
		at = r->sender != NULL ? strrchr(r->sender, '@') : NULL;
		if (at != NULL && local_ok(r->sender, at) &&
		    is_dot_atom(at + 1))
			buf_adds(&b, r->sender);
		else
			value(&b, r->domain);
	}
	s = fold(buf_str(&b), sizeof("Authentication-Results: ") - 1);
	buf_free(&b);
	return s;
}

/* explain_comment - RFC 7208 9.1's suggested comment for a result */
static void
explain_comment(struct buf *b, const struct headers_in *in)
{
	const struct spf_response *r = in->spf;

	buf_addc(b, '(');
	comment_text(b, in->receiver);
	buf_adds(b, ": ");
	switch (r->result) {
	case SPF_PASS:
		buf_adds(b, "domain of ");
		comment_text(b, identity_name(in));
		buf_adds(b, " designates ");
		comment_text(b, in->client_ip);
		buf_adds(b, " as permitted sender");
		break;
	case SPF_FAIL:
		buf_adds(b, "domain of ");
		comment_text(b, identity_name(in));
		buf_adds(b, " does not designate ");
		comment_text(b, in->client_ip);
		buf_adds(b, " as permitted sender");
		break;
	case SPF_SOFTFAIL:
		buf_adds(b, "domain of transitioning ");
		comment_text(b, identity_name(in));
		buf_adds(b, " does not designate ");
		comment_text(b, in->client_ip);
		buf_adds(b, " as permitted sender");
		break;
	case SPF_NEUTRAL:
		comment_text(b, in->client_ip);
		buf_adds(b, " is neither permitted nor denied by domain of ");
		comment_text(b, identity_name(in));
		break;
	case SPF_NONE:
		buf_adds(b, "domain of ");
		comment_text(b, identity_name(in));
		buf_adds(b, " does not designate permitted sender hosts");
		break;
	case SPF_TEMPERROR:
	case SPF_PERMERROR:
		buf_adds(b, "error in processing during lookup of ");
		comment_text(b, identity_name(in));
		break;
	}
	buf_addc(b, ')');
}

char *
headers_received_spf(const struct headers_in *in)
{
	const struct spf_response *r = in->spf;
	struct buf b;
	char *s;

	buf_init(&b);
	buf_adds(&b, spf_result_name(r->result));
	buf_addc(&b, ' ');
	explain_comment(&b, in);
	buf_adds(&b, " client-ip=");
	value(&b, in->client_ip);
	buf_adds(&b, "; envelope-from=");
	value(&b, r->identity == SPF_ID_HELO ? "" : r->sender);
	buf_adds(&b, "; helo=");
	value(&b, in->helo);
	buf_adds(&b, "; receiver=");
	value(&b, in->receiver);
	buf_adds(&b, "; identity=");
	buf_adds(&b, spf_identity_name(r->identity));
	if (r->mechanism != NULL &&
	    (r->result == SPF_PASS || r->result == SPF_FAIL ||
		r->result == SPF_SOFTFAIL || r->result == SPF_NEUTRAL)) {
		buf_adds(&b, "; mechanism=");
		value(&b, r->mechanism);
	}
	if (r->problem != NULL &&
	    (r->result == SPF_TEMPERROR || r->result == SPF_PERMERROR)) {
		buf_adds(&b, "; problem=");
		value(&b, r->problem);
	}
	buf_addc(&b, ';');
	s = fold(buf_str(&b), sizeof("Received-SPF: ") - 1);
	buf_free(&b);
	return s;
}

/* skip_cfws - spaces, line breaks and (nested) comments */
static const char *
skip_cfws(const char *p)
{
	int depth;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		for (depth = 0; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

bool
headers_ar_is_ours(const char *v, const char *authserv_id)
{
	struct buf id;
	const char *p = skip_cfws(v);
	bool ours;

	buf_init(&id);
	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			buf_addc(&id, *p);
		}
	} else {
		while (*p != '\0' && *p != ';' && *p != '(' && *p != ' ' &&
		    *p != '\t' && *p != '\r' && *p != '\n')
			buf_addc(&id, *p++);
	}
	ours = id.len > 0 && strcasecmp(buf_str(&id), authserv_id) == 0;
	buf_free(&id);
	return ours;
}
