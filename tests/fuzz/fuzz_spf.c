/*
 * fuzz_spf.c - a whole SPF evaluation (spf_check()) against a zone made
 * from the input, answered from memory (dns_create_fn()).
 *
 * Built twice: fuzz_spf for the builtin engine, fuzz_spf_libspf2 (with
 * -DFUZZ_ENGINE='"libspf2"') for the libspf2 engine.
 *
 * Input, lines:
 *	1 the client address	2 HELO		3 MAIL FROM
 *	4 options: 'h' checks the HELO identity; "e:TEXT" (the rest of the
 *	  line) is the default explanation; 'l' a lookup limit of 3
 *	5... the zone, one record a line: NAME TYPE DATA, TYPE one of
 *	  TXT (DATA the record; \xNN is a byte, \\ a backslash), A, AAAA,
 *	  MX ("PREF NAME"), PTR (a name), NODATA (the name exists),
 *	  TEMPFAIL (DATA empty, or the one type that fails). NAME "*"
 *	  answers for every name not given. Other names: NXDOMAIN.
 *
 * Invariants: the result is a known one; an explanation only for fail,
 * printable ASCII, at most SPF_MAX_EXPLANATION octets.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "fuzz.h"
#include "spf.h"
#include "xalloc.h"

#ifndef FUZZ_ENGINE
#define FUZZ_ENGINE "builtin"
#endif

#define MAX_ZONE 128 /* records */

struct rec {
	char *name;
	char *type;
	char *data; /* decoded */
	size_t len;
};

struct zone {
	struct rec r[MAX_ZONE];
	size_t n;
};

static const struct spf_engine *engine;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	if ((engine = spf_engine_find(FUZZ_ENGINE)) == NULL)
		fuzz_fail("no such engine", FUZZ_ENGINE);
	return 0;
}

static int
hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* unescape - \xNN and \\ in TXT data */
static char *
unescape(const char *s, size_t *len)
{
	char *out = xmalloc(strlen(s) + 1);
	size_t o = 0;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] == 'x' && hex(s[2]) >= 0 &&
		    hex(s[3]) >= 0) {
			out[o++] = (char)(hex(s[2]) << 4 | hex(s[3]));
			s += 4;
		} else if (s[0] == '\\' && s[1] == '\\') {
			out[o++] = '\\';
			s += 2;
		} else
			out[o++] = *s++;
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* parse_line - "NAME TYPE DATA" into a record; -1 if it is not one */
static int
parse_line(char *line, struct rec *r)
{
	char *type, *data;

	if ((type = strchr(line, ' ')) == NULL)
		return -1;
	*type++ = '\0';
	if ((data = strchr(type, ' ')) != NULL)
		*data++ = '\0';
	else
		data = type + strlen(type);
	r->name = xstrdup(line);
	r->type = xstrdup(type);
	r->data = unescape(data, &r->len);
	return 0;
}

static void
add_rr(struct dns_answer *out, const struct rec *r)
{
	struct dns_rr rr;
	char name[300];
	unsigned pref;

	memset(&rr, 0, sizeof(rr));
	switch (out->type) {
	case DNS_T_TXT:
		rr.data = xmalloc(r->len + 1);
		memcpy(rr.data, r->data, r->len + 1);
		rr.len = r->len;
		break;
	case DNS_T_A:
		if (inet_pton(AF_INET, r->data, &rr.addr.v4) != 1)
			return;
		break;
	case DNS_T_AAAA:
		if (inet_pton(AF_INET6, r->data, &rr.addr.v6) != 1)
			return;
		break;
	case DNS_T_MX:
		if (sscanf(r->data, "%u %299s", &pref, name) != 2)
			return;
		rr.pref = (uint16_t)pref;
		rr.data = xstrdup(name);
		rr.len = strlen(name);
		break;
	case DNS_T_PTR:
		rr.data = xstrdup(r->data);
		rr.len = strlen(rr.data);
		break;
	}
	dns_answer_add(out, &rr);
}

/* answer - the zone's answer to one query */
static void
answer(void *arg, const char *name, enum dns_type type, struct dns_answer *out)
{
	const struct zone *z = arg;
	const char *tname = dns_type_name(type), *want = name;
	bool known = false;
	size_t i;

	for (i = 0; i < z->n; i++)
		if (strcasecmp(z->r[i].name, name) == 0)
			break;
	if (i == z->n)
		want = "*";
	for (i = 0; i < z->n; i++) {
		const struct rec *r = &z->r[i];

		if (strcasecmp(r->name, want) != 0)
			continue;
		known = true;
		if (strcmp(r->type, "TEMPFAIL") == 0 &&
		    (r->data[0] == '\0' || strcmp(r->data, tname) == 0)) {
			dns_answer_free(out);
			out->status = DNS_TEMPFAIL;
			out->why = "fuzzed";
			return;
		}
		if (strcmp(r->type, tname) == 0)
			add_rr(out, r);
	}
	if (out->count == 0)
		out->status = known ? DNS_NODATA : DNS_NXDOMAIN;
}

static void
check(const struct spf_response *resp)
{
	if (resp->result < SPF_NONE || resp->result > SPF_PERMERROR)
		fuzz_fail("result", spf_result_name(resp->result));
	if (resp->explanation == NULL)
		return;
	if (resp->result != SPF_FAIL)
		fuzz_fail("explanation for a result other than fail",
		    resp->explanation);
	if (strlen(resp->explanation) > SPF_MAX_EXPLANATION)
		fuzz_fail("explanation too long", resp->explanation);
	fuzz_check_printable("explanation", resp->explanation);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spf_request req;
	struct spf_response resp;
	struct fuzz_fields f;
	struct dns_ctx *dns;
	struct zone z;
	const char *opt, *exp;
	size_t i, nopt;

	fuzz_split(data, size, '\n', 4 + MAX_ZONE, &f);
	if (f.n < 3) {
		fuzz_fields_free(&f);
		return 0;
	}
	memset(&z, 0, sizeof(z));
	for (i = 4; i < f.n; i++)
		if (parse_line(f.v[i], &z.r[z.n]) == 0)
			z.n++;

	memset(&req, 0, sizeof(req));
	req.ip = f.v[0];
	req.helo = f.v[1];
	req.sender = f.v[2];
	opt = fuzz_field(&f, 3) != NULL ? f.v[3] : "";
	if ((exp = strstr(opt, "e:")) != NULL) {
		req.default_exp = exp + 2;
		nopt = (size_t)(exp - opt);
	} else
		nopt = strlen(opt);
	req.identity =
	    memchr(opt, 'h', nopt) != NULL ? SPF_ID_HELO : SPF_ID_MAILFROM;
	req.max_lookups = memchr(opt, 'l', nopt) != NULL ? 3 : 0;
	req.receiver = "receiver.example";
	req.deadline_ms = 5000;

	dns = dns_create_fn(answer, &z);
	memset(&resp, 0, sizeof(resp));
	spf_check(engine, dns, &req, &resp);
	check(&resp);
	spf_response_free(&resp);
	dns_destroy(dns);

	for (i = 0; i < z.n; i++) {
		free(z.r[i].name);
		free(z.r[i].type);
		free(z.r[i].data);
	}
	fuzz_fields_free(&f);
	return 0;
}
