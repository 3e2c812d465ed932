/*
 * spf_libspf2.c - the "libspf2" engine: check_host() evaluated by libspf2
 * (Debian's 1.2.10) on our DNS layer, for comparison with the builtin
 * engine and as an alternative to it.
 *
 * Every evaluation owns its own libspf2 objects: an SPF_server_t, an
 * SPF_request_t and a custom SPF_dns_server_t whose hook is the struct
 * l2eval of this evaluation (deadline, counters, the dns_ctx). libspf2 has
 * no other mutable global state than its four log handlers, which are set
 * once, so engines may run in several threads at once. Our DNS layer is
 * the only one below libspf2: no libspf2 cache layer is created (it would
 * keep answers regardless of their TTLs); libunbound's cache, which honours
 * TTLs, is the only cache.
 *
 * DNS: libspf2's queries go through l2_lookup() and dns_query(), bounded by
 * the per-query timeout and the evaluation's deadline. DNS_NXDOMAIN,
 * DNS_NODATA and DNS_TEMPFAIL become HOST_NOT_FOUND, NO_DATA and TRY_AGAIN.
 * libspf2 asks for type SPF (99) before TXT; RFC 7208 3.1 has verifiers use
 * TXT only, so type 99 is answered NO_DATA here without a query. Names are
 * cut from the left to 253 octets (RFC 7208 7.3), which libspf2 omits.
 *
 * Counters: dns_queries counts every query sent to dns_query(), exactly.
 * libspf2 does not count lookups for us, so "lookups" is approximated in
 * the callback: each TXT query after the first (include, redirect), each
 * MX and PTR query, and each A/AAAA query that does not resolve one of the
 * names of the MX or PTR answer before it. A %{p} macro's PTR query counts
 * too, although RFC 7208 4.6.4 does not count it. void_lookups counts
 * NXDOMAIN/NODATA answers to those same term queries. libspf2 applies its
 * own term limit per record level only (an include starts again at zero),
 * with one term too many allowed, and has no void lookup limit; so that
 * nested includes cannot multiply the queries, an evaluation may send at
 * most max_lookups * 12 + 16 queries (more than any evaluation within RFC
 * 7208 4.6.4's limits needs) and ends in permerror past that.
 *
 * THE EXP CRASH. libspf2 compiles macro-strings with SPF_c_parse_macro()
 * (spf_compile.c). Every string literal starts with ds_avail = data_avail -
 * data_used - sizeof(SPF_data_t), in size_t (Debian's CVE-2021-20314 patch
 * added the header's 4 bytes); the compiled length is checked against the
 * 511 bytes allowed (SPF_ADD_LEN_TO, and the 255-byte literal limit) only
 * once a literal has been copied. When the compiled data stands at 508
 * bytes, e.g. after 127 "%{l}" (4 bytes each), 511 - 508 - 4 wraps to
 * SIZE_MAX and the literal that follows is copied without any bound.
 * SPF_record_compile_macro() compiles an exp= TXT text that way into an
 * on-stack buffer of sizeof(SPF_macro_t) + SPF_MAX_MOD_LEN (519 bytes), so
 * "%{l}" x 127 + "abcd" (512 bytes) or "%{l}a" x 43 writes past it, over
 * the stack canary: "*** stack smashing detected ***", abort(). ("%{l}" x
 * 128 alone does not: it fails at the 128th macro, no literal follows.)
 * Any published exp= TXT gets there: SPF_i_done() ->
 * SPF_i_set_smtp_comment() -> SPF_i_set_explanation() ->
 * SPF_request_get_exp() -> SPF_record_compile_macro(), for fail,
 * softfail, neutral and none, inside include: too. The same slip in
 * SPF_c_mech_add() and SPF_c_mod_add() (4096-byte stack buffers) is
 * reached by an SPF record itself when the literal after that point is
 * longer than some 2 KB: "v=spf1 exists:" + "%{l}" x 127 + "A" x 4000
 * (a 4.5 KB TXT record, over TCP) aborts as well. The expansion,
 * SPF_record_expand_data(), sizes its heap buffer first and is fine.
 *
 * The guards. (1) Our DNS server sets get_exp, which SPF_request_get_exp()
 * calls instead of looking the exp= TXT up and compiling it: l2_get_exp()
 * queries the TXT through our layer and expands it with the builtin macro
 * expander (spf_macro.h), bounded, then sanitised to printable ASCII and
 * SPF_MAX_EXPLANATION octets; no explanation from DNS reaches libspf2's
 * compiler. It does so only for a top-level fail, as the builtin engine
 * does; otherwise it answers "none" without a query. (2) The receiver's
 * default explanation, the other text SPF_record_compile_macro() sees
 * (SPF_server_set_explanation()), is handed over only when it cannot
 * reach the overflow: at most 160 bytes, which compile to at most 2.75 *
 * 160 + 7 = 447 < 508 bytes, valid RFC 7208 syntax, and no %{p} (libspf2
 * expands its default for every fail, softfail, neutral and none; so it
 * never queries DNS for that). Otherwise libspf2 gets a fixed placeholder
 * and the default text is expanded here with the builtin expander when the
 * result is fail. (3) An SPF record with a literal (a run without a space
 * or "%{") of over 1024 octets is replaced with one that libspf2 rejects:
 * permerror, as libspf2 gives for any literal over 255 compiled bytes when
 * it does not crash. 1024 literal octets compile to at most 1536 bytes
 * ("%-" makes 3 of 2), far from the 4096-byte buffers. This also covers
 * exp-text=, a pre-RFC modifier that libspf2 still honours.
 *
 * Failures: libspf2 calls abort() on internal errors (SPF_ASSERT_*, a NULL
 * from the DNS layer); its error handler is set to log one line (never to
 * stdout) before that abort. Its warnings, info and debug messages are
 * dropped. Out of memory in libspf2 ends the evaluation as temperror.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/nameser.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <spf2/spf.h>

#include "buf.h"
#include "log.h"
#include "spf.h"
#include "spf_check.h"
#include "spf_macro.h"
#include "xalloc.h"

#define DEFAULT_DEADLINE_MS  20000
#define DEFAULT_MAX_LOOKUPS  10
#define MAX_HOST_NAMES	     10	  /* libspf2's MX / PTR names used */
#define MAX_EXP_EXPANSION    4096 /* stop expanding an exp= text here */
#define MAX_SAFE_DEFAULT_EXP 160  /* see the top comment */
#define MAX_SAFE_LITERAL     1024 /* see the top comment */
#define EXP_PLACEHOLDER	     "spfguard-default-explanation"
#define REFUSED_RECORD	     "v=spf1 spfguard-refused-oversized-literal"

struct l2eval {
	struct dns_ctx *dns;
	const struct spf_request *req;
	struct spf_response *resp;
	struct spf_client client;
	struct timespec deadline;
	const char *local;
	SPF_request_t *sreq;   /* cur_dom and %{p} for exp= */
	SPF_response_t *sresp; /* the top-level response */
	unsigned max_queries;
	unsigned txt_queries;	    /* SPF record fetches */
	unsigned owed_hosts;	    /* A/AAAA queries of the names
				       of the last MX/PTR answer */
	bool in_exp;		    /* not a term's query */
	bool capped;		    /* max_queries reached */
	char dns_why[SPF_TEXT_MAX]; /* last failure */
	char refused[SPF_TEXT_MAX]; /* a record withheld */
};

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

/* clean_copy - printable ASCII of s, at most max octets, in out */
static void
clean_copy(char *out, size_t outlen, const char *s, size_t max)
{
	size_t i, o = 0;

	for (i = 0; s[i] != '\0' && o + 1 < outlen && o < max; i++)
		if ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f)
			out[o++] = s[i];
	out[o] = '\0';
}

/* lib_error - libspf2's fatal error handler: one log line, then abort()
 * as libspf2 expects (its handler type is noreturn) */
static void __attribute__((noreturn))
lib_error(const char *file, int line, const char *msg)
{
	char clean[SPF_TEXT_MAX];

	clean_copy(clean, sizeof(clean), msg != NULL ? msg : "?",
	    sizeof(clean));
	log_warnx("libspf2 internal error (%s:%d): %s; aborting",
	    file != NULL ? file : "?", line, clean);
	abort();
}

static void
lib_quiet(const char *file, int line, const char *msg)
{
}

/* install_handlers - libspf2's log handlers: nothing on stdout */
static void
install_handlers(void)
{
	SPF_error_handler = lib_error;
	SPF_warning_handler = lib_quiet;
	SPF_info_handler = lib_quiet;
	SPF_debug_handler = lib_quiet;
}

/* query - one DNS query, counted; refused once the cap is reached */
static void
query(struct l2eval *e, const char *name, enum dns_type type,
    struct dns_answer *a)
{
	if (e->capped || e->resp->dns_queries >= e->max_queries) {
		e->capped = true;
		memset(a, 0, sizeof(*a));
		a->type = type;
		a->status = DNS_TEMPFAIL;
		a->why = "query limit";
		return;
	}
	e->resp->dns_queries++;
	dns_query(e->dns, name, type, &e->deadline, a);
	if (a->status == DNS_TEMPFAIL) /* the last one ends libspf2 */
		(void)snprintf(e->dns_why, sizeof(e->dns_why),
		    "DNS %s looking up %s %.200s",
		    a->why != NULL ? a->why : "failure", dns_type_name(type),
		    name);
}

/* dns_type_of - our type for libspf2's, false for types we never ask */
static bool
dns_type_of(ns_type t, enum dns_type *out)
{
	switch (t) {
	case ns_t_a:
		*out = DNS_T_A;
		return true;
	case ns_t_aaaa:
		*out = DNS_T_AAAA;
		return true;
	case ns_t_mx:
		*out = DNS_T_MX;
		return true;
	case ns_t_ptr:
		*out = DNS_T_PTR;
		return true;
	case ns_t_txt:
		*out = DNS_T_TXT;
		return true;
	default:
		return false; /* ns_t_spf (99) and anything else */
	}
}

/* is_term_query - does this query start a term (see the top comment)? */
static bool
is_term_query(struct l2eval *e, enum dns_type type)
{
	if (e->in_exp)
		return false;
	switch (type) {
	case DNS_T_TXT:
		e->owed_hosts = 0;
		return e->txt_queries++ > 0;
	case DNS_T_MX:
	case DNS_T_PTR:
		e->owed_hosts = 0;
		return true;
	case DNS_T_A:
	case DNS_T_AAAA:
		if (e->owed_hosts > 0) {
			e->owed_hosts--;
			return false;
		}
		return true;
	}
	return true;
}

/* rr_size - bytes of libspf2 RR data one of our records needs */
static size_t
rr_size(enum dns_type type, const struct dns_rr *rr)
{
	switch (type) {
	case DNS_T_A:
		return sizeof(struct in_addr);
	case DNS_T_AAAA:
		return sizeof(struct in6_addr);
	case DNS_T_MX:
	case DNS_T_PTR:
	case DNS_T_TXT:
		break;
	}
	return rr->len + 1;
}

/*
 * literal_too_long - is this an SPF record (as libspf2 sees one) holding a
 * term with a string literal (a run without a space or a macro) of over
 * MAX_SAFE_LITERAL octets? See the top comment.
 */
static bool
literal_too_long(const char *s, size_t len)
{
	size_t i, run = 0;

	if (len < 6 || strncasecmp(s, "v=spf1", 6) != 0 ||
	    (len > 6 && s[6] != ' '))
		return false;
	for (i = 6; i < len; i++) {
		if (s[i] == ' ')
			run = 0;
		else if (s[i] == '%' && i + 1 < len && s[i + 1] == '{') {
			/* a macro, delimiters and all, as libspf2 skips it */
			while (
			    i + 1 < len && s[i + 1] != '}' && s[i + 1] != ' ')
				i++;
			run = 0;
		} else if (++run > MAX_SAFE_LITERAL)
			return true;
	}
	return false;
}

/*
 * make_rr - our answer as libspf2's SPF_dns_rr_t. Null MX names (RFC 7505)
 * are left out; NULs inside TXT data become DEL, so that libspf2's C
 * strings hold the whole record and such a record stays invalid. An SPF
 * record that could overflow libspf2's record compiler is replaced with
 * one that it rejects (permerror, as the original would give if it did
 * not crash).
 */
static SPF_dns_rr_t *
make_rr(struct l2eval *e, SPF_dns_server_t *srv, const char *name,
    ns_type rr_type, const struct dns_answer *a)
{
	SPF_dns_rr_t *rr;
	SPF_dns_stat_t herrno;
	size_t i, j;
	int n = 0;

	switch (a->status) {
	case DNS_OK:
		herrno = NETDB_SUCCESS;
		break;
	case DNS_NODATA:
		herrno = NO_DATA;
		break;
	case DNS_NXDOMAIN:
		herrno = HOST_NOT_FOUND;
		break;
	case DNS_TEMPFAIL:
	default:
		herrno = TRY_AGAIN;
		break;
	}
	rr = SPF_dns_rr_new_init(srv, name, rr_type,
	    a->ttl > INT_MAX ? INT_MAX : (int)a->ttl, herrno);
	if (rr == NULL || a->status != DNS_OK)
		return rr;
	for (i = 0; i < a->count; i++) {
		const struct dns_rr *d = &a->rr[i];
		struct dns_rr refused;

		if (a->type == DNS_T_MX && d->data[0] == '\0')
			continue;
		if (a->type == DNS_T_TXT && literal_too_long(d->data, d->len)) {
			(void)snprintf(e->refused, sizeof(e->refused),
			    "the SPF record of %.200s has a literal of over %d "
			    "octets, which libspf2 cannot compile safely",
			    name, MAX_SAFE_LITERAL);
			memset(&refused, 0, sizeof(refused));
			refused.data = (char *)REFUSED_RECORD;
			refused.len = strlen(REFUSED_RECORD);
			d = &refused;
		}
		if (SPF_dns_rr_buf_realloc(rr, n, rr_size(a->type, d)) !=
		    SPF_E_SUCCESS) {
			/* out of memory: no partial answers */
			rr->herrno = TRY_AGAIN;
			n = 0;
			break;
		}
		switch (a->type) {
		case DNS_T_A:
			rr->rr[n]->a = d->addr.v4;
			break;
		case DNS_T_AAAA:
			rr->rr[n]->aaaa = d->addr.v6;
			break;
		case DNS_T_MX:
		case DNS_T_PTR:
		case DNS_T_TXT:
			memcpy(rr->rr[n]->txt, d->data, d->len);
			for (j = 0; j < d->len; j++)
				if (rr->rr[n]->txt[j] == '\0')
					rr->rr[n]->txt[j] = 0x7f;
			rr->rr[n]->txt[d->len] = '\0';
			break;
		}
		n++;
	}
	rr->num_rr = n;
	return rr;
}

/* l2_lookup - libspf2's DNS lookup, answered by dns_query() */
static SPF_dns_rr_t *
l2_lookup(SPF_dns_server_t *srv, const char *domain, ns_type rr_type,
    int should_cache)
{
	struct l2eval *e = srv->hook;
	struct dns_answer a;
	enum dns_type type;
	SPF_dns_rr_t *rr;
	char *name;
	bool term;
	size_t i, hosts = 0;

	if (domain == NULL)
		domain = "";
	if (!dns_type_of(rr_type, &type))
		return SPF_dns_rr_new_init(srv, domain, rr_type, 0, NO_DATA);
	name = spf_query_name(domain, strlen(domain));
	if ((term = is_term_query(e, type)))
		e->resp->lookups++;
	query(e, name, type, &a);
	if (term && type != DNS_T_TXT &&
	    (a.status == DNS_NXDOMAIN || a.status == DNS_NODATA))
		e->resp->void_lookups++;
	if (!e->in_exp && a.status == DNS_OK &&
	    (type == DNS_T_MX || type == DNS_T_PTR)) {
		for (i = 0; i < a.count; i++)
			if (a.rr[i].data[0] != '\0')
				hosts++;
		e->owed_hosts =
		    hosts < MAX_HOST_NAMES ? (unsigned)hosts : MAX_HOST_NAMES;
	}
	rr = make_rr(e, srv, name, rr_type, &a);
	dns_answer_free(&a);
	free(name);
	return rr;
}

/* macro_ptr - %{p} for the builtin expander: libspf2's validated name */
static const char *
macro_ptr(void *arg)
{
	struct l2eval *e = arg;
	const char *p;

	p = SPF_request_get_client_dom(e->sreq);
	return p != NULL ? p : "unknown";
}

/* expand_text - macro-expand an explanation with the builtin expander;
 * NULL if it is not a valid explain-string */
static char *
expand_text(struct l2eval *e, const char *txt, size_t len, const char *domain)
{
	struct spf_macro_env env;
	struct buf out;
	char err[128], *s;
	bool in_exp = e->in_exp;

	spf_macro_env_init(&env, e->req, e->resp, e->local, &e->client, domain);
	env.ptr = macro_ptr;
	env.ptr_arg = e;
	env.max_len = MAX_EXP_EXPANSION;
	buf_init(&out);
	e->in_exp = true; /* %{p} queries are not terms */
	if (spf_macro_expand(txt, len, true, &env, &out, err, sizeof(err)) !=
	    0) {
		e->in_exp = in_exp;
		buf_free(&out);
		return NULL;
	}
	e->in_exp = in_exp;
	s = spf_sanitise(buf_str(&out), out.len);
	buf_free(&out);
	return s;
}

/*
 * l2_get_exp - the exp= text of <domain> (already expanded by libspf2),
 * for SPF_request_get_exp(): queried and expanded here, never compiled by
 * libspf2 (see the top comment). Anything but exactly one valid TXT
 * record gives no text, and then the default explanation applies.
 */
static SPF_errcode_t
l2_get_exp(SPF_server_t *srv, const char *domain, char **bufp, size_t *buflenp)
{
	struct l2eval *e = srv->resolver->hook;
	struct dns_answer a;
	const char *cur;
	char *name, *text = NULL, *nb;
	size_t n;

	if (e->sresp == NULL || e->sresp->result != SPF_RESULT_FAIL)
		return SPF_E_NOT_SPF; /* not the top-level fail */
	if (domain == NULL)
		domain = "";
	name = spf_query_name(domain, strlen(domain));
	e->in_exp = true;
	query(e, name, DNS_T_TXT, &a);
	if (a.status == DNS_OK && a.count == 1) {
		cur = e->sreq->cur_dom != NULL ? e->sreq->cur_dom
					       : e->resp->domain;
		text = expand_text(e, a.rr[0].data, a.rr[0].len, cur);
	}
	e->in_exp = false;
	dns_answer_free(&a);
	free(name);
	if (text == NULL)
		return SPF_E_NOT_SPF;
	n = strlen(text) + 1;
	if (*buflenp < n) {
		if ((nb = realloc(*bufp, n)) == NULL) {
			free(text);
			return SPF_E_NO_MEMORY;
		}
		*bufp = nb;
		*buflenp = n;
	}
	memcpy(*bufp, text, n);
	free(text);
	return SPF_E_SUCCESS;
}

/* default_exp_for_libspf2 - the default explanation in libspf2's syntax
 * (spaces as %_), or NULL when it must not be handed over */
static char *
default_exp_for_libspf2(const char *exp)
{
	struct buf b;
	char err[128];
	size_t len, i;

	if (exp == NULL)
		return NULL;
	len = strlen(exp);
	if (len > MAX_SAFE_DEFAULT_EXP ||
	    spf_macro_check(exp, len, true, err, sizeof(err)) != 0 ||
	    spf_macro_uses_ptr(exp, len))
		return NULL;
	buf_init(&b);
	for (i = 0; i < len; i++) {
		if (exp[i] == ' ')
			buf_adds(&b, "%_");
		else
			buf_addc(&b, exp[i]);
	}
	return buf_release(&b);
}

/* set_default_exp - the receiver's default explanation, or the
 * placeholder that stands for it */
static void
set_default_exp(SPF_server_t *srv, const char *exp)
{
	SPF_response_t *r = NULL;
	SPF_errcode_t err = SPF_E_NOT_CONFIG;
	char *conv;

	if ((conv = default_exp_for_libspf2(exp)) != NULL)
		err = SPF_server_set_explanation(srv, conv, &r);
	if (err != SPF_E_SUCCESS)
		(void)SPF_server_set_explanation(srv, EXP_PLACEHOLDER, &r);
	if (r != NULL)
		SPF_response_free(r);
	free(conv);
}

/* map_result - our result for libspf2's */
static enum spf_result
map_result(SPF_result_t r, SPF_errcode_t err)
{
	switch (r) {
	case SPF_RESULT_NEUTRAL:
		return SPF_NEUTRAL;
	case SPF_RESULT_PASS:
		return SPF_PASS;
	case SPF_RESULT_FAIL:
		return SPF_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return SPF_SOFTFAIL;
	case SPF_RESULT_NONE:
		return SPF_NONE;
	case SPF_RESULT_TEMPERROR:
		return SPF_TEMPERROR;
	case SPF_RESULT_PERMERROR:
	case SPF_RESULT_INVALID:
	default:
		break;
	}
	/* "invalid": the top-level record was not evaluated; libspf2 leaves
	 * it so when that record's TXT lookup failed temporarily, too */
	if (err == SPF_E_DNS_ERROR || err == SPF_E_NO_MEMORY)
		return SPF_TEMPERROR;
	return SPF_PERMERROR;
}

/* mechanism_of - what libspf2's reason tells of the deciding term */
static const char *
mechanism_of(SPF_reason_t reason)
{
	switch (reason) {
	case SPF_REASON_MECH:
		return "unknown"; /* libspf2 does not say which */
	case SPF_REASON_DEFAULT:
		return "default";
	case SPF_REASON_LOCALHOST:
		return "localhost"; /* libspf2 passes 127/8 and ::1 */
	case SPF_REASON_LOCAL_POLICY:
		return "local-policy";
	default:
		return NULL;
	}
}

/* lib_problem - libspf2's error messages, or its error code's text */
static char *
lib_problem(SPF_response_t *sr, SPF_errcode_t err)
{
	struct buf b;
	SPF_error_t *m;
	char clean[SPF_TEXT_MAX];
	int i, n;

	buf_init(&b);
	n = SPF_response_messages(sr);
	for (i = 0; i < n && b.len < SPF_TEXT_MAX; i++) {
		if ((m = SPF_response_message(sr, i)) == NULL ||
		    !SPF_error_errorp(m) || SPF_error_message(m) == NULL)
			continue;
		clean_copy(clean, sizeof(clean), SPF_error_message(m),
		    SPF_TEXT_MAX - 1 - b.len);
		if (b.len > 0)
			buf_adds(&b, "; ");
		buf_adds(&b, clean);
	}
	if (b.len == 0 && err != SPF_E_SUCCESS) {
		clean_copy(clean, sizeof(clean), SPF_strerror(err),
		    sizeof(clean));
		buf_adds(&b, clean);
	}
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	if (b.len >= SPF_TEXT_MAX) {
		b.data[SPF_TEXT_MAX - 1] = '\0';
		b.len = SPF_TEXT_MAX - 1;
	}
	return buf_release(&b);
}

/* finish - fill resp from libspf2's response */
static void
finish(struct l2eval *e, SPF_errcode_t err)
{
	struct spf_response *resp = e->resp;
	SPF_response_t *sr = e->sresp;
	const char *exp, *mech;

	if (sr == NULL) {
		resp->result = SPF_TEMPERROR;
		resp->problem = xstrdup("libspf2: out of memory");
		return;
	}
	resp->result = map_result(SPF_response_result(sr),
	    err != SPF_E_SUCCESS ? err : SPF_response_errcode(sr));
	if ((mech = mechanism_of(SPF_response_reason(sr))) != NULL)
		resp->mechanism = xstrdup(mech);
	if (e->capped) {
		resp->result = SPF_PERMERROR;
		free(resp->mechanism);
		resp->mechanism = NULL;
		resp->problem = xmalloc(SPF_TEXT_MAX);
		(void)snprintf(resp->problem, SPF_TEXT_MAX,
		    "more than %u DNS queries (libspf2 applies no lookup "
		    "limit across include:)",
		    e->max_queries);
		return;
	}
	switch (resp->result) {
	case SPF_FAIL:
		exp = SPF_response_get_explanation(sr);
		if (exp != NULL && strcmp(exp, EXP_PLACEHOLDER) != 0)
			resp->explanation = spf_sanitise(exp, strlen(exp));
		else if (e->req->default_exp != NULL) {
			resp->explanation = expand_text(e, e->req->default_exp,
			    strlen(e->req->default_exp), resp->domain);
			if (resp->explanation == NULL)
				resp->explanation =
				    spf_sanitise(e->req->default_exp,
					strlen(e->req->default_exp));
		}
		break;
	case SPF_TEMPERROR:
		if (e->dns_why[0] != '\0') {
			resp->problem = xstrdup(e->dns_why);
			break;
		}
		resp->problem = lib_problem(sr, SPF_response_errcode(sr));
		break;
	case SPF_PERMERROR:
		if (e->refused[0] != '\0') {
			resp->problem = xstrdup(e->refused);
			break;
		}
		/* FALLTHROUGH */
	case SPF_NONE:
		resp->problem = lib_problem(sr,
		    err != SPF_E_SUCCESS ? err : SPF_response_errcode(sr));
		break;
	default:
		break;
	}
}

/* evaluate - one check_host() by libspf2 on our DNS layer */
static void
evaluate(struct l2eval *e)
{
	SPF_dns_server_t dsrv;
	SPF_server_t *srv;
	SPF_errcode_t err = SPF_E_NO_MEMORY;
	struct in_addr a4;
	struct in6_addr a6;
	unsigned max_lookups;

	max_lookups = e->req->max_lookups != 0 ? e->req->max_lookups
					       : DEFAULT_MAX_LOOKUPS;
	e->max_queries = max_lookups * 12 + 16;

	memset(&dsrv, 0, sizeof(dsrv));
	dsrv.destroy = NULL; /* ours, on this stack */
	dsrv.lookup = l2_lookup;
	dsrv.get_exp = l2_get_exp;
	dsrv.name = "spfguard";
	dsrv.hook = e;

	if ((srv = SPF_server_new_dns(&dsrv, 0)) == NULL) {
		finish(e, err);
		return;
	}
	(void)SPF_server_set_rec_dom(srv,
	    e->req->receiver != NULL ? e->req->receiver : "unknown");
	set_default_exp(srv, e->req->default_exp);
	(void)SPF_server_set_max_dns_mech(srv, (int)max_lookups);

	if ((e->sreq = SPF_request_new(srv)) != NULL) {
		if (e->client.family == AF_INET) {
			memcpy(&a4, e->client.ip, sizeof(a4));
			(void)SPF_request_set_ipv4(e->sreq, a4);
		} else {
			memcpy(&a6, e->client.ip, sizeof(a6));
			(void)SPF_request_set_ipv6(e->sreq, a6);
		}
		if (SPF_request_set_helo_dom(e->sreq,
			e->req->helo != NULL ? e->req->helo : "") ==
			SPF_E_SUCCESS &&
		    SPF_request_set_env_from(e->sreq, e->resp->sender) ==
			SPF_E_SUCCESS)
			err = SPF_request_query_mailfrom(e->sreq, &e->sresp);
	}
	finish(e, err);
	if (e->sresp != NULL)
		SPF_response_free(e->sresp);
	if (e->sreq != NULL)
		SPF_request_free(e->sreq);
	SPF_server_free(srv);
}

/* libspf2_check - the engine's entry point, as builtin_check() */
static void
libspf2_check(struct dns_ctx *dns, const struct spf_request *req,
    struct spf_response *resp)
{
	struct l2eval e;
	char *local;

	(void)pthread_once(&handlers_once, install_handlers);
	memset(&e, 0, sizeof(e));
	e.dns = dns;
	e.req = req;
	e.resp = resp;
	dns_deadline(&e.deadline,
	    req->deadline_ms != 0 ? req->deadline_ms : DEFAULT_DEADLINE_MS);

	spf_identity_setup(req, resp, &local);
	e.local = local;
	if (spf_client_parse(req->ip, &e.client) != 0) {
		resp->result = SPF_PERMERROR;
		resp->problem = xstrdup("invalid client address");
	} else if (!spf_domain_checkable(resp->domain)) {
		resp->result = SPF_NONE;
		resp->problem = xmalloc(SPF_TEXT_MAX);
		(void)snprintf(resp->problem, SPF_TEXT_MAX,
		    "invalid domain \"%.200s\"", resp->domain);
	} else
		evaluate(&e);
	free(local);
}

const struct spf_engine spf_engine_libspf2 = {
    .name = "libspf2",
    .check = libspf2_check,
};
