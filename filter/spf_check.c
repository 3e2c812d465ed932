/*
 * spf_check.c - the builtin engine: check_host() of RFC 7208 section 4,
 * mechanisms of section 5, modifiers of section 6, limits of 4.6.4.
 *
 * One struct eval carries an evaluation: the client, the sender, the
 * deadline, and the counters that the RFC's limits apply to over the whole
 * evaluation (includes and redirects share them). Every DNS answer is
 * match, no match, or an error that becomes temperror or permerror; a
 * temporary failure is never read as "no record".
 *
 * Nothing here logs or keeps state between calls; the response's strings
 * are allocated here and freed by spf_response_free().
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "spf.h"
#include "spf_check.h"
#include "spf_macro.h"
#include "spf_record.h"
#include "xalloc.h"

#define DEFAULT_DEADLINE_MS 20000
#define DEFAULT_MAX_LOOKUPS 10
#define DEFAULT_MAX_VOID    2
#define MAX_MX_NAMES	    10
#define MAX_PTR_NAMES	    10
#define MAX_EXP_EXPANSION   4096 /* stop expanding an exp= text here */

enum match {
	M_NO,
	M_YES,
	M_TEMPERROR,
	M_PERMERROR,
};

struct eval {
	struct dns_ctx *dns;
	const struct spf_request *req;
	struct spf_response *resp;
	struct spf_client client;
	struct timespec deadline;
	const char *local;
	unsigned max_lookups;
	unsigned max_void;
	char *ptr_name;	  /* %{p}, once computed */
	char *ptr_domain; /* <domain> it was for */
	struct buf problem;
};

/* problem - record why the evaluation ends in an error (first one wins) */
static void problem(struct eval *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
problem(struct eval *e, const char *fmt, ...)
{
	char tmp[SPF_TEXT_MAX];
	va_list ap;

	if (e->problem.len > 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_adds(&e->problem, tmp);
}

/* query - one DNS query, counted */
static void
query(struct eval *e, const char *name, enum dns_type type,
    struct dns_answer *a)
{
	e->resp->dns_queries++;
	dns_query(e->dns, name, type, &e->deadline, a);
}

/* count_lookup - one more DNS-querying term; false past the limit (the
 * term over the limit is not counted: it sends nothing) */
static bool
count_lookup(struct eval *e, const char *term)
{
	if (e->resp->lookups < e->max_lookups) {
		e->resp->lookups++;
		return true;
	}
	problem(e, "more than %u DNS-querying terms (at \"%.200s\")",
	    e->max_lookups, term);
	return false;
}

/* count_void - one more void lookup; false past the limit */
static bool
count_void(struct eval *e, const char *name)
{
	if (++e->resp->void_lookups <= e->max_void)
		return true;
	problem(e, "more than %u void lookups (at \"%.200s\")", e->max_void,
	    name);
	return false;
}

static bool
addr_in(const uint8_t *a, const uint8_t *net, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, net, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ net[full]) & (0xff << (8 - rest))) == 0;
}

/* rr_matches - does an A/AAAA record hold the client within the cidr */
static bool
rr_matches(const struct eval *e, const struct dns_rr *rr, int c4, int c6)
{
	if (e->client.family == AF_INET)
		return addr_in(e->client.ip, (const uint8_t *)&rr->addr.v4,
		    c4 < 0 ? 32 : c4);
	return addr_in(e->client.ip, (const uint8_t *)&rr->addr.v6,
	    c6 < 0 ? 128 : c6);
}

static enum dns_type
addr_type(const struct eval *e)
{
	return e->client.family == AF_INET ? DNS_T_A : DNS_T_AAAA;
}

/* name_under - is name equal to or a subdomain of domain (no case) */
static bool
name_under(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (d > 0 && domain[d - 1] == '.')
		d--;
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n < d || strncasecmp(name + n - d, domain, d) != 0)
		return false;
	return n == d || name[n - d - 1] == '.';
}

/* reverse_name - the in-addr.arpa / ip6.arpa name of the client */
static void
reverse_name(const struct eval *e, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *ip = e->client.ip;
	size_t o = 0;
	int i;

	if (e->client.family == AF_INET) {
		(void)snprintf(out, len, "%u.%u.%u.%u.in-addr.arpa", ip[3],
		    ip[2], ip[1], ip[0]);
		return;
	}
	for (i = 15; i >= 0 && o + 4 < len; i--) {
		out[o++] = hex[ip[i] & 0xf];
		out[o++] = '.';
		out[o++] = hex[ip[i] >> 4];
		out[o++] = '.';
	}
	(void)snprintf(out + o, len - o, "ip6.arpa");
}

/* validated - does a name's A/AAAA set hold the client (RFC 7208 5.5);
 * errors while looking up skip the name */
static bool
validated(struct eval *e, const char *name)
{
	struct dns_answer a;
	size_t i;
	bool ok = false;

	query(e, name, addr_type(e), &a);
	for (i = 0; i < a.count && !ok; i++)
		ok = rr_matches(e, &a.rr[i], -1, -1);
	dns_answer_free(&a);
	return ok;
}

/*
 * ptr_names - the client's PTR names (at most MAX_PTR_NAMES), or NULL on
 * an error or no answer. A failed PTR lookup means no match, never an
 * error (RFC 7208 5.5).
 */
static bool
ptr_names(struct eval *e, struct dns_answer *a, bool count_void_lookup)
{
	char rev[80];

	reverse_name(e, rev, sizeof(rev));
	query(e, rev, DNS_T_PTR, a);
	if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA) {
		if (count_void_lookup && !count_void(e, rev))
			return false;
		return false;
	}
	if (a->status != DNS_OK)
		return false;
	dns_answer_truncate(a, MAX_PTR_NAMES); /* the rest are ignored */
	return true;
}

/* macro_ptr - the %{p} value: a validated name, preferring <domain> */
static const char *
macro_ptr(void *arg)
{
	struct eval *e = arg;
	struct dns_answer a;
	size_t i, pass;

	if (e->ptr_name != NULL)
		return e->ptr_name;
	if (ptr_names(e, &a, false)) {
		/* pass 0: <domain> itself; 1: its subdomains; 2: any */
		for (pass = 0; pass < 3 && e->ptr_name == NULL; pass++) {
			for (i = 0; i < a.count; i++) {
				const char *n = a.rr[i].data;

				if ((pass == 0 &&
					strcasecmp(n, e->ptr_domain) != 0) ||
				    (pass == 1 &&
					!name_under(n, e->ptr_domain)))
					continue;
				if (validated(e, n)) {
					e->ptr_name = xstrdup(n);
					break;
				}
			}
		}
	}
	dns_answer_free(&a);
	if (e->ptr_name == NULL)
		e->ptr_name = xstrdup("unknown");
	return e->ptr_name;
}

static void
macro_env(struct eval *e, const char *domain, struct spf_macro_env *env)
{
	spf_macro_env_init(env, e->req, e->resp, e->local, &e->client, domain);
	env->ptr = macro_ptr;
	env->ptr_arg = e;
	if (e->ptr_domain == NULL || strcasecmp(e->ptr_domain, domain) != 0) {
		/* %{p} prefers the current domain: recompute for another */
		free(e->ptr_name);
		free(e->ptr_domain);
		e->ptr_name = NULL;
		e->ptr_domain = xstrdup(domain);
	}
}

/*
 * target_name - expand a domain-spec (or take the current domain) into a
 * name to query: trailing dot removed, cut from the left to 253 octets
 * (RFC 7208 7.3). NULL on a macro error.
 */
static char *
target_name(struct eval *e, const char *spec, const char *domain)
{
	struct spf_macro_env env;
	struct buf out;
	char err[128], *name;

	if (spec == NULL)
		return xstrdup(domain);
	macro_env(e, domain, &env);
	buf_init(&out);
	if (spf_macro_expand(spec, strlen(spec), false, &env, &out, err,
		sizeof(err)) != 0) {
		problem(e, "macro error in \"%.200s\": %s", spec, err);
		buf_free(&out);
		return NULL;
	}
	name = spf_query_name(buf_str(&out), out.len);
	buf_free(&out);
	return name;
}

static enum spf_result
check_host(struct eval *, const char *domain, int depth, bool want_exp);

/*
 * term_query - a mechanism's DNS query: M_YES with records in *a, M_NO for
 * a void answer (counted when count_as_void), or an error.
 */
static enum match
term_query(struct eval *e, const char *name, enum dns_type type,
    struct dns_answer *a, bool count_as_void)
{
	query(e, name, type, a);
	switch (a->status) {
	case DNS_TEMPFAIL:
		problem(e, "DNS %s looking up %s %.200s", a->why,
		    dns_type_name(type), name);
		return M_TEMPERROR;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		if (count_as_void && !count_void(e, name))
			return M_PERMERROR;
		return M_NO;
	case DNS_OK:
		break;
	}
	return M_YES;
}

/* mech_a - "a" and, per exchange, "mx": any address within the cidr */
static enum match
mech_a(struct eval *e, const char *name, int c4, int c6, bool from_mx)
{
	struct dns_answer a;
	enum match m;
	size_t i;

	if ((m = term_query(e, name, addr_type(e), &a, !from_mx)) != M_YES)
		return m;
	for (i = 0, m = M_NO; i < a.count && m == M_NO; i++)
		if (rr_matches(e, &a.rr[i], c4, c6))
			m = M_YES;
	dns_answer_free(&a);
	return m;
}

static enum match
mech_mx(struct eval *e, const char *name, int c4, int c6)
{
	struct dns_answer mx;
	enum match m;
	size_t i;

	if ((m = term_query(e, name, DNS_T_MX, &mx, true)) != M_YES)
		return m;
	if (mx.count > MAX_MX_NAMES) {
		problem(e, "more than %d MX names for %.200s", MAX_MX_NAMES,
		    name);
		dns_answer_free(&mx);
		return M_PERMERROR;
	}
	for (i = 0, m = M_NO; i < mx.count && m == M_NO; i++) {
		if (mx.rr[i].data[0] == '\0')
			continue; /* null MX (RFC 7505) */
		m = mech_a(e, mx.rr[i].data, c4, c6, true);
	}
	dns_answer_free(&mx);
	return m;
}

static enum match
mech_ptr(struct eval *e, const char *target)
{
	struct dns_answer a;
	enum match m = M_NO;
	size_t i;

	if (!ptr_names(e, &a, true)) {
		dns_answer_free(&a);
		return e->resp->void_lookups > e->max_void ? M_PERMERROR : M_NO;
	}
	for (i = 0; i < a.count && m == M_NO; i++)
		if (name_under(a.rr[i].data, target) &&
		    validated(e, a.rr[i].data))
			m = M_YES;
	dns_answer_free(&a);
	return m;
}

static enum match
mech_exists(struct eval *e, const char *name)
{
	struct dns_answer a;
	enum match m;

	m = term_query(e, name, DNS_T_A, &a, true);
	dns_answer_free(&a);
	return m;
}

static enum match
mech_include(struct eval *e, const char *name, int depth)
{
	switch (check_host(e, name, depth + 1, false)) {
	case SPF_PASS:
		return M_YES;
	case SPF_FAIL:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL:
		return M_NO;
	case SPF_TEMPERROR:
		return M_TEMPERROR;
	case SPF_NONE:
		problem(e, "include:%.200s has no SPF record", name);
		return M_PERMERROR;
	case SPF_PERMERROR:
		break;
	}
	return M_PERMERROR;
}

/* evaluate - one directive against the client */
static enum match
evaluate(struct eval *e, const struct spf_term *t, const char *domain,
    int depth)
{
	enum match m;
	char *target;

	switch (t->mech) {
	case SPF_M_ALL:
		return M_YES;
	case SPF_M_IP4:
		return e->client.family == AF_INET &&
			addr_in(e->client.ip, t->addr,
			    t->cidr4 < 0 ? 32 : t->cidr4)
		    ? M_YES
		    : M_NO;
	case SPF_M_IP6:
		return e->client.family == AF_INET6 &&
			addr_in(e->client.ip, t->addr,
			    t->cidr6 < 0 ? 128 : t->cidr6)
		    ? M_YES
		    : M_NO;
	default:
		break;
	}
	if (!count_lookup(e, t->text))
		return M_PERMERROR;
	if ((target = target_name(e, t->domain, domain)) == NULL)
		return M_PERMERROR;
	switch (t->mech) {
	case SPF_M_A:
		m = mech_a(e, target, t->cidr4, t->cidr6, false);
		break;
	case SPF_M_MX:
		m = mech_mx(e, target, t->cidr4, t->cidr6);
		break;
	case SPF_M_PTR:
		m = mech_ptr(e, target);
		break;
	case SPF_M_EXISTS:
		m = mech_exists(e, target);
		break;
	case SPF_M_INCLUDE:
		m = mech_include(e, target, depth);
		break;
	default:
		m = M_PERMERROR;
		break;
	}
	free(target);
	return m;
}

/* expand_exp - macro-expand an explanation text; NULL if it is invalid */
static char *
expand_exp(struct eval *e, const char *txt, size_t len, const char *domain)
{
	struct spf_macro_env env;
	struct buf out;
	char err[128], *s;

	macro_env(e, domain, &env);
	env.max_len = MAX_EXP_EXPANSION;
	buf_init(&out);
	if (spf_macro_expand(txt, len, true, &env, &out, err, sizeof(err)) !=
	    0) {
		buf_free(&out);
		return NULL;
	}
	s = spf_sanitise(buf_str(&out), out.len);
	buf_free(&out);
	return s;
}

/*
 * explain - the explanation of a fail (RFC 7208 6.2): exp= if it yields
 * exactly one valid text, else the receiver's default. Errors here never
 * change the result.
 */
static void
explain(struct eval *e, const struct spf_record *r, const char *domain)
{
	struct dns_answer a;
	char *target;

	free(e->resp->explanation);
	e->resp->explanation = NULL;
	if (r->exp != NULL &&
	    (target = target_name(e, r->exp, domain)) != NULL) {
		query(e, target, DNS_T_TXT, &a);
		if (a.status == DNS_OK && a.count == 1)
			e->resp->explanation =
			    expand_exp(e, a.rr[0].data, a.rr[0].len, domain);
		dns_answer_free(&a);
		free(target);
	}
	if (e->resp->explanation == NULL && e->req->default_exp != NULL) {
		e->resp->explanation = expand_exp(e, e->req->default_exp,
		    strlen(e->req->default_exp), domain);
		if (e->resp->explanation == NULL)
			e->resp->explanation = spf_sanitise(e->req->default_exp,
			    strlen(e->req->default_exp));
	}
}

/* fetch_record - the one SPF record of a domain: SPF_PASS as "found" */
static enum spf_result
fetch_record(struct eval *e, const char *domain, struct spf_record *r)
{
	struct dns_answer a;
	const struct dns_rr *found = NULL;
	size_t i;
	char err[SPF_TEXT_MAX];

	query(e, domain, DNS_T_TXT, &a);
	switch (a.status) {
	case DNS_TEMPFAIL:
		problem(e, "DNS %s looking up TXT %.200s", a.why, domain);
		return SPF_TEMPERROR;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		problem(e, "no SPF record at %.200s", domain);
		return SPF_NONE;
	case DNS_OK:
		break;
	}
	for (i = 0; i < a.count; i++) {
		if (!spf_record_is_v1(a.rr[i].data, a.rr[i].len))
			continue;
		if (found != NULL) {
			problem(e, "more than one SPF record at %.200s",
			    domain);
			dns_answer_free(&a);
			return SPF_PERMERROR;
		}
		found = &a.rr[i];
	}
	if (found == NULL) {
		problem(e, "no SPF record at %.200s", domain);
		dns_answer_free(&a);
		return SPF_NONE;
	}
	if (spf_record_parse(found->data, found->len, r, err, sizeof(err)) !=
	    0) {
		problem(e, "%s in the SPF record of %.200s", err, domain);
		dns_answer_free(&a);
		return SPF_PERMERROR;
	}
	dns_answer_free(&a);
	return SPF_PASS;
}

static void
set_mechanism(struct eval *e, const char *text)
{
	free(e->resp->mechanism);
	e->resp->mechanism = xstrdup(text);
}

/* check_host - RFC 7208 section 4 for one domain */
static enum spf_result
check_host(struct eval *e, const char *domain, int depth, bool want_exp)
{
	struct spf_record r;
	enum spf_result res;
	enum match m = M_NO;
	size_t i;
	char *target;

	if (!spf_domain_checkable(domain)) {
		problem(e, "invalid domain \"%.200s\"", domain);
		return SPF_NONE;
	}
	if ((res = fetch_record(e, domain, &r)) != SPF_PASS)
		return res;
	for (i = 0; i < r.nterms; i++) {
		m = evaluate(e, &r.terms[i], domain, depth);
		if (m != M_NO)
			break;
	}
	switch (m) {
	case M_YES:
		res = r.terms[i].qualifier;
		set_mechanism(e, r.terms[i].text);
		if (res == SPF_FAIL && want_exp)
			explain(e, &r, domain);
		break;
	case M_TEMPERROR:
		res = SPF_TEMPERROR;
		set_mechanism(e, r.terms[i].text);
		break;
	case M_PERMERROR:
		res = SPF_PERMERROR;
		set_mechanism(e, r.terms[i].text);
		break;
	case M_NO:
		if (r.redirect == NULL || r.has_all) {
			res = SPF_NEUTRAL;
			set_mechanism(e, "default");
			break;
		}
		if (!count_lookup(e, "redirect")) {
			res = SPF_PERMERROR;
			break;
		}
		if ((target = target_name(e, r.redirect, domain)) == NULL) {
			res = SPF_PERMERROR;
			break;
		}
		res = check_host(e, target, depth + 1, want_exp);
		if (res == SPF_NONE) {
			problem(e, "redirect=%.200s has no SPF record", target);
			res = SPF_PERMERROR;
		}
		free(target);
		break;
	}
	spf_record_free(&r);
	return res;
}

static void
builtin_check(struct dns_ctx *dns, const struct spf_request *req,
    struct spf_response *resp)
{
	struct eval e;
	char *local;

	memset(&e, 0, sizeof(e));
	e.dns = dns;
	e.req = req;
	e.resp = resp;
	e.max_lookups =
	    req->max_lookups != 0 ? req->max_lookups : DEFAULT_MAX_LOOKUPS;
	e.max_void = req->max_void != 0 ? req->max_void : DEFAULT_MAX_VOID;
	buf_init(&e.problem);
	dns_deadline(&e.deadline,
	    req->deadline_ms != 0 ? req->deadline_ms : DEFAULT_DEADLINE_MS);

	spf_identity_setup(req, resp, &local);
	e.local = local;
	if (spf_client_parse(req->ip, &e.client) != 0) {
		resp->result = SPF_PERMERROR;
		problem(&e, "invalid client address");
	} else
		resp->result = check_host(&e, resp->domain, 0, true);
	if (resp->result != SPF_FAIL) {
		free(resp->explanation);
		resp->explanation = NULL;
	}
	if (e.problem.len > 0 && resp->result != SPF_PASS &&
	    resp->result != SPF_FAIL && resp->result != SPF_SOFTFAIL &&
	    resp->result != SPF_NEUTRAL)
		resp->problem = buf_release(&e.problem);
	buf_free(&e.problem);
	free(e.ptr_name);
	free(e.ptr_domain);
	free(local);
}

const struct spf_engine spf_engine_builtin = {
    .name = "builtin",
    .check = builtin_check,
};
