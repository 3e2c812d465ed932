/*
 * dns.h - the DNS layer: resolver choice, per-query timeout, per-evaluation
 * deadline, an answer cache (ours, in front of libunbound's), and answers
 * decoded into plain C.
 *
 * One struct dns_ctx serves every thread of the process. dns_query() blocks
 * the calling thread until the answer, the per-query timeout or the
 * caller's deadline, whichever comes first; it never returns "no record"
 * for a failure it could not tell apart from one: those are DNS_TEMPFAIL.
 * Malformed names (empty or over-long labels, over 253 octets) are answered
 * DNS_NXDOMAIN locally, without sending anything. On the libunbound path
 * (dns_create()) answers (never temporary failures) are kept for their TTL
 * and a repeated question is answered on the calling thread; a function
 * backend (dns_create_fn()) is asked every time. Either way the caller
 * owns the answer and frees it with dns_answer_free().
 */
#ifndef SPFGUARD_DNS_H
#define SPFGUARD_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DNS_MAX_NAME  253 /* octets in a name, text form, no final dot */
#define DNS_MAX_LABEL 63

enum dns_type {
	DNS_T_A = 1,
	DNS_T_PTR = 12,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
};

enum dns_status {
	DNS_OK,	      /* at least one record of the type asked */
	DNS_NODATA,   /* the name exists, no record of that type */
	DNS_NXDOMAIN, /* the name does not exist (or cannot) */
	DNS_TEMPFAIL, /* timeout, SERVFAIL, REFUSED, deadline: try later */
};

struct dns_rr {
	uint16_t pref; /* MX preference */
	size_t len;    /* bytes in data (TXT may hold NULs) */
	char *data;    /* TXT strings joined; MX/PTR target
			  name without the final dot; NUL
			  terminated */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr; /* A, AAAA */
};

struct dns_answer {
	enum dns_status status;
	enum dns_type type;
	size_t count;
	struct dns_rr *rr;
	uint32_t ttl;
	const char *why; /* DNS_TEMPFAIL: a static reason */
};

struct dns_opts {
	const char **resolvers; /* "HOST" or "HOST:PORT"; none: the
				   system's resolv.conf */
	size_t nresolvers;
	unsigned timeout_ms; /* per query; 0: 5000 */
};

/* A backend answering from memory, for tests and fuzzing. */
typedef void (*dns_answer_fn)(void *arg, const char *name, enum dns_type type,
    struct dns_answer *out);

/* Upper bounds (ms) of the answer time histogram; one more bucket
 * counts the rest. */
#define DNS_LATENCY_BOUNDS_MS                                                  \
	{                                                                      \
		1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000              \
	}
#define DNS_LATENCY_BUCKETS 12

struct dns_stats {
	unsigned long queries;	  /* dns_query() calls */
	unsigned long sent;	  /* handed to the resolver */
	unsigned long timeouts;	  /* per-query timeout or deadline */
	unsigned long tempfails;  /* all DNS_TEMPFAIL answers */
	unsigned long badnames;	  /* answered locally */
	unsigned long cache_hits; /* answered from our answer cache */
	/* time to answer the queries not answered locally (bad names,
	   cache hits): counts per bucket (not cumulative), and the sum in
	   microseconds */
	unsigned long latency[DNS_LATENCY_BUCKETS];
	unsigned long latency_sum_us;
};

struct dns_ctx *dns_create(const struct dns_opts *, char *err, size_t errlen);
struct dns_ctx *dns_create_fn(dns_answer_fn, void *arg);
void dns_destroy(struct dns_ctx *);

void dns_query(struct dns_ctx *, const char *name, enum dns_type,
    const struct timespec *deadline, struct dns_answer *out);
void dns_answer_free(struct dns_answer *);
void dns_answer_truncate(struct dns_answer *, size_t);
void dns_get_stats(struct dns_ctx *, struct dns_stats *);

/* The answer cache's size now: entries, and bytes (entries, names and
 * records); 0 for a function backend. */
void dns_cache_usage(struct dns_ctx *, size_t *entries, size_t *bytes);
/* Tests only: empty the answer cache and bound it to this many entries and
 * bytes in all (split evenly over its 64 shards: under 64 entries, nothing
 * is kept) and to these TTL caps (positive, negative answers; seconds). */
void dns_cache_limits(struct dns_ctx *, size_t entries, size_t bytes,
    uint32_t max_ttl, uint32_t max_neg_ttl);

bool dns_name_ok(const char *name);

/* A resolver "HOST", "HOST:PORT" or "[V6]:PORT" as libunbound's
 * "ADDR[@PORT]"; 0, or -1 and a reason. */
int dns_resolver_parse(const char *spec, char *out, size_t outlen, char *err,
    size_t errlen);
const char *dns_type_name(enum dns_type);
const char *dns_status_name(enum dns_status);

/* Deadlines are CLOCK_MONOTONIC instants. */
void dns_deadline(struct timespec *, unsigned ms_from_now);
long dns_ms_left(const struct timespec *);

/* Builders for backends: append one record of out->type. */
void dns_answer_add(struct dns_answer *, const struct dns_rr *);

/*
 * libunbound's answer (rcode, rdata in wire format) decoded into out, whose
 * type is set and count 0. Used by the resolver path, and exposed for the
 * fuzzer (tests/fuzz/fuzz_dns.c) only.
 */
struct ub_result;
void dns_decode_result(const struct ub_result *, struct dns_answer *out);

#endif
