/*
 * dnsbl.c - DNSBL and RHSBL lookups: the name to query, what an answer
 * means under a list's rules, and the same lookup as a job on a worker.
 *
 * Nothing here logs or keeps state of its own. A lookup fills a struct
 * dnsbl_result; its subject is a copy the caller frees with
 * dnsbl_result_free(), its list and why are borrowed (why is static). The
 * list is borrowed for the length of a call. A job copies the list and the
 * subject before it is queued, so the caller may free its list, or its
 * whole configuration snapshot, as soon as dnsbl_job_start() returns; the
 * job's copy goes with the job (job_release()).
 *
 * Failure is a value: a timeout, a server failure, a passed deadline, a
 * job never run, or a list refusing the query (127.255.255.0/24) is
 * DNSBL_UNKNOWN, never clean. Answers outside 127.0.0.0/8 (a wildcarding
 * or hijacked zone) never list. A subject that cannot be listed (not an
 * address; not a host name) is clean without a query. Those last two leave
 * a note in why for the caller's log.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl.h"
#include "xalloc.h"

#define REFUSED_NET  0x7fffff00u /* 127.255.255.0/24 */
#define REFUSED_FMT  "list refused the query (127.255.255.%u)"
#define REFUSED_SIZE (sizeof(REFUSED_FMT) + 1) /* "%u": up to "255" */
#define IGNORED_WHY  "answers outside 127/8 ignored"
#define REVERSED_MAX 64 /* 32 nibbles and their dots, and the NUL */

/* One static reason per refusal code: why is never freed by anyone. */
static char refused_why[256][REFUSED_SIZE];
static pthread_once_t refused_once = PTHREAD_ONCE_INIT;

/* A lookup on a worker is a job whose argument is this. */
struct dnsbl_task {
	struct dns_ctx *dns;
	const struct dnsbl_list *caller; /* handed back, never read */
	struct dnsbl_list list;		 /* our own copy */
	char *subject;
	struct timespec deadline;
	struct dnsbl_result res;
};

static void
refused_init(void)
{
	unsigned i;

	for (i = 0; i < 256; i++)
		(void)snprintf(refused_why[i], sizeof(refused_why[i]),
		    REFUSED_FMT, i);
}

static const char *
refused_reason(uint32_t code)
{
	(void)pthread_once(&refused_once, refused_init);
	return refused_why[code & 0xff];
}

/* reversed_ip - 4 reversed octets, or 32 reversed nibbles (RFC 5782
 * 2.1, 2.4); an IPv4-mapped IPv6 address as IPv4; -1: not an address */
static int
reversed_ip(const char *subject, char *out)
{
	static const char hex[] = "0123456789abcdef";
	struct in_addr v4;
	struct in6_addr v6;
	const uint8_t *b;
	char *p = out;
	int i;

	if (inet_pton(AF_INET, subject, &v4) == 1)
		b = (const uint8_t *)&v4.s_addr;
	else if (inet_pton(AF_INET6, subject, &v6) == 1) {
		if (!IN6_IS_ADDR_V4MAPPED(&v6)) {
			for (i = 15; i >= 0; i--) {
				*p++ = hex[v6.s6_addr[i] & 0x0f];
				*p++ = '.';
				*p++ = hex[v6.s6_addr[i] >> 4];
				*p++ = '.';
			}
			p[-1] = '\0';
			return 0;
		}
		b = &v6.s6_addr[12];
	} else
		return -1;
	(void)snprintf(out, REVERSED_MAX, "%u.%u.%u.%u", b[3], b[2], b[1],
	    b[0]);
	return 0;
}

/* host_name - a host name lowercased, without its final dot; -1 for an IP
 * literal, a bare address (a last label all digits) or a byte other than
 * a letter, a digit, '-' or '_' in a label */
static int
host_name(const char *subject, char *out, size_t outlen)
{
	size_t len = strlen(subject), i;
	bool digits = true;
	unsigned char c;

	if (len > 0 && subject[len - 1] == '.')
		len--;
	if (len == 0 || len >= outlen)
		return -1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)subject[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.')
			digits = true;
		else if (c >= '0' && c <= '9')
			;
		else if ((c >= 'a' && c <= 'z') || c == '-' || c == '_')
			digits = false;
		else
			return -1;
		out[i] = (char)c;
	}
	out[len] = '\0';
	if (digits)
		return -1;
	return dns_name_ok(out) ? 0 : -1;
}

int
dnsbl_query_name(const struct dnsbl_list *l, const char *subject, char *out,
    size_t outlen)
{
	char sub[DNS_MAX_NAME + 1], name[DNS_MAX_NAME + 2];
	size_t zlen;
	int n;

	if (subject == NULL || l->zone == NULL)
		return -1;
	zlen = strlen(l->zone);
	if (zlen > 0 && l->zone[zlen - 1] == '.')
		zlen--;
	if (zlen == 0 || zlen > DNS_MAX_NAME)
		return -1;
	if (l->kind == DNSBL_IP) {
		if (reversed_ip(subject, sub) == -1)
			return -1;
	} else if (host_name(subject, sub, sizeof(sub)) == -1)
		return -1;
	n = snprintf(name, sizeof(name), "%s.%.*s", sub, (int)zlen, l->zone);
	if (n < 0 || (size_t)n >= sizeof(name) || (size_t)n >= outlen)
		return -1;
	/* dns_name_ok() forgives one final dot: a zone "x.." must not pass */
	if (name[n - 1] == '.' || !dns_name_ok(name))
		return -1;
	memcpy(out, name, (size_t)n + 1);
	return 0;
}

/* counts - whether a 127/8 answer is a listing under the list's rules:
 * one of its codes, or a bit of its mask; neither given: any answer */
static bool
counts(const struct dnsbl_list *l, uint32_t a)
{
	size_t i;

	if (l->ncodes == 0 && l->mask == 0)
		return true;
	for (i = 0; i < l->ncodes; i++)
		if (a == l->codes[i])
			return true;
	return ((a & 0xff) & l->mask) != 0;
}

/*
 * dnsbl_classify - the result for an A answer. A refusal code wins over
 * any listing in the same answer: the list has said it did not look.
 */
void
dnsbl_classify(const struct dnsbl_list *l, const struct dns_answer *ans,
    struct dnsbl_result *r)
{
	const char *refused = NULL;
	bool listed = false, ignored = false;
	uint32_t a;
	size_t i;

	r->list = l;
	r->status = DNSBL_CLEAN;
	r->ncodes = 0;
	r->why = NULL;
	if (ans->status == DNS_TEMPFAIL) {
		r->status = DNSBL_UNKNOWN;
		r->why = ans->why != NULL ? ans->why : "server failure";
		return;
	}
	if (ans->status != DNS_OK)
		return; /* NXDOMAIN, NODATA: not listed */
	for (i = 0; i < ans->count; i++) {
		a = ntohl(ans->rr[i].addr.v4.s_addr);
		if ((a >> 24) != 127)
			ignored = true;
		else if ((a & 0xffffff00u) == REFUSED_NET) {
			if (refused == NULL)
				refused = refused_reason(a);
		} else if (counts(l, a)) {
			listed = true;
			if (r->ncodes < DNSBL_MAX_CODES)
				r->codes[r->ncodes++] = a;
		}
	}
	if (refused != NULL) {
		r->status = DNSBL_UNKNOWN;
		r->ncodes = 0;
		r->why = refused;
		return;
	}
	if (listed)
		r->status = DNSBL_LISTED;
	if (ignored)
		r->why = IGNORED_WHY;
}

/*
 * dnsbl_lookup - query and classify. An answer that comes after the
 * deadline is not used: the resolver would have cancelled the query, and
 * a caller waiting on a job has given up and counted it unknown. (1 ms of
 * slack, so that an answer right at the deadline is kept.)
 */
void
dnsbl_lookup(struct dns_ctx *dns, const struct dnsbl_list *l,
    const char *subject, const struct timespec *deadline,
    struct dnsbl_result *r)
{
	char name[DNS_MAX_NAME + 1];
	struct dns_answer ans;

	memset(r, 0, sizeof(*r));
	r->list = l;
	r->status = DNSBL_CLEAN;
	r->subject = subject != NULL ? xstrdup(subject) : NULL;
	if (dnsbl_query_name(l, subject, name, sizeof(name)) == -1) {
		r->why = "not checkable";
		return;
	}
	dns_query(dns, name, DNS_T_A, deadline, &ans);
	if (ans.status != DNS_TEMPFAIL && deadline != NULL &&
	    dns_ms_left(deadline) < 0) {
		dns_answer_free(&ans);
		r->status = DNSBL_UNKNOWN;
		r->why = "deadline";
		return;
	}
	dnsbl_classify(l, &ans, r);
	dns_answer_free(&ans);
}

static void
dnsbl_task_run(void *arg)
{
	struct dnsbl_task *t = arg;

	dnsbl_lookup(t->dns, &t->list, t->subject, &t->deadline, &t->res);
	t->res.list = t->caller;
}

static void
dnsbl_task_cancel(void *arg)
{
	struct dnsbl_task *t = arg;

	memset(&t->res, 0, sizeof(t->res));
	t->res.list = t->caller;
	t->res.subject = t->subject != NULL ? xstrdup(t->subject) : NULL;
	t->res.status = DNSBL_UNKNOWN;
	t->res.why = "not run";
}

static void
dnsbl_task_free(void *arg)
{
	struct dnsbl_task *t = arg;

	dnsbl_result_free(&t->res);
	dnsbl_list_free(&t->list);
	free(t->subject);
	free(t);
}

/* dnsbl_job_start - copy what the lookup needs, then queue it; the
 * deadline runs from now, so time spent queued counts */
struct job *
dnsbl_job_start(struct jobs *p, struct dns_ctx *dns, const struct dnsbl_list *l,
    const char *subject, unsigned deadline_ms)
{
	struct dnsbl_task *t;

	t = xcalloc(1, sizeof(*t));
	t->dns = dns;
	t->caller = l;
	t->list = *l;
	t->list.name = l->name != NULL ? xstrdup(l->name) : NULL;
	t->list.zone = l->zone != NULL ? xstrdup(l->zone) : NULL;
	t->list.codes = NULL;
	t->list.ncodes = 0;
	if (l->ncodes > 0 && l->codes != NULL) {
		t->list.codes =
		    xreallocarray(NULL, l->ncodes, sizeof(*l->codes));
		memcpy(t->list.codes, l->codes, l->ncodes * sizeof(*l->codes));
		t->list.ncodes = l->ncodes;
	}
	t->subject = subject != NULL ? xstrdup(subject) : NULL;
	t->res.list = l;
	t->res.status = DNSBL_UNKNOWN;
	t->res.why = "not run";
	dns_deadline(&t->deadline, deadline_ms);
	return job_start(p, dnsbl_task_run, dnsbl_task_cancel, dnsbl_task_free,
	    t);
}

const struct dnsbl_result *
dnsbl_job_result(const struct job *j)
{
	return &((const struct dnsbl_task *)job_arg(j))->res;
}

void
dnsbl_result_free(struct dnsbl_result *r)
{
	if (r == NULL)
		return;
	free(r->subject);
	r->subject = NULL;
}

/* dnsbl_codes_text - the codes as dotted quads; whole codes only, as many
 * as fit */
void
dnsbl_codes_text(const struct dnsbl_result *r, char *out, size_t outlen)
{
	char one[24];
	size_t i, used = 0;
	uint32_t a;
	int n;

	if (outlen == 0)
		return;
	out[0] = '\0';
	for (i = 0; i < r->ncodes && i < DNSBL_MAX_CODES; i++) {
		a = r->codes[i];
		n = snprintf(one, sizeof(one), "%s%u.%u.%u.%u",
		    i > 0 ? "," : "", a >> 24, (a >> 16) & 0xff,
		    (a >> 8) & 0xff, a & 0xff);
		if (n < 0 || used + (size_t)n >= outlen)
			break;
		memcpy(out + used, one, (size_t)n + 1);
		used += (size_t)n;
	}
}

void
dnsbl_list_free(struct dnsbl_list *l)
{
	if (l == NULL)
		return;
	free(l->name);
	free(l->zone);
	free(l->codes);
	l->name = l->zone = NULL;
	l->codes = NULL;
	l->ncodes = 0;
}

const char *
dnsbl_status_name(enum dnsbl_status s)
{
	switch (s) {
	case DNSBL_CLEAN:
		return "clean";
	case DNSBL_LISTED:
		return "listed";
	case DNSBL_UNKNOWN:
		return "unknown";
	}
	return "?";
}
