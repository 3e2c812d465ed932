/*
 * reputation.c - sender history, greylisting and rate limits over the
 * store (see reputation.h for the keys).
 *
 * Every decision is one or two store_update() calls, each atomic in the
 * store, so that processes on one host (LMDB) or MX hosts of a fleet
 * (Redis) that see the same sender at once neither lose a count nor
 * disagree for longer than one message. Pure apart from the store: no
 * logging, no globals; the caller passes the time.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "reputation.h"
#include "xalloc.h"

#define KEY_MAX 480 /* longer keys become a digest */

static const char *const rate_key_names[] = {
    [RATE_IP] = "ip",
    [RATE_NET] = "net",
    [RATE_SENDER_DOMAIN] = "sender_domain",
    [RATE_AUTH_USER] = "auth_user",
};

/* history fields, one per SPF result in enum order, then the rest */
static const char *const result_fields[] = {
    [SPF_NONE] = "none",
    [SPF_NEUTRAL] = "neutral",
    [SPF_PASS] = "pass",
    [SPF_FAIL] = "fail",
    [SPF_SOFTFAIL] = "softfail",
    [SPF_TEMPERROR] = "temperror",
    [SPF_PERMERROR] = "permerror",
};

const char *
rep_rate_key_name(enum rate_key k)
{
	if ((size_t)k < sizeof(rate_key_names) / sizeof(rate_key_names[0]))
		return rate_key_names[k];
	return "?";
}

int
rep_rate_key_parse(const char *s, enum rate_key *k)
{
	size_t i;

	for (i = 0; i < sizeof(rate_key_names) / sizeof(rate_key_names[0]); i++)
		if (strcasecmp(s, rate_key_names[i]) == 0) {
			*k = (enum rate_key)i;
			return 0;
		}
	return -1;
}

int
rep_network(const char *ip, unsigned v4_prefix, unsigned v6_prefix, char *out,
    size_t outlen)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff};
	uint8_t a[16];
	char text[INET6_ADDRSTRLEN];
	int family = AF_INET6;
	unsigned bits, i;

	if (ip == NULL)
		return -1;
	if (inet_pton(AF_INET, ip, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, ip, a) != 1)
		return -1;
	else if (memcmp(a, mapped, sizeof(mapped)) == 0) {
		memmove(a, a + 12, 4);
		family = AF_INET;
	}
	bits = family == AF_INET ? (v4_prefix > 32 ? 32 : v4_prefix)
				 : (v6_prefix > 128 ? 128 : v6_prefix);
	for (i = 0; i < (family == AF_INET ? 4u : 16u); i++) {
		if (i * 8 >= bits)
			a[i] = 0;
		else if (i * 8 + 8 > bits)
			a[i] &= (uint8_t)(0xff << (8 - (bits - i * 8)));
	}
	if (inet_ntop(family, a, text, sizeof(text)) == NULL)
		return -1;
	if ((size_t)snprintf(out, outlen, "%s/%u", text, bits) >= outlen)
		return -1;
	return 0;
}

/* fnv - 64-bit FNV-1a of s, from a seed */
static uint64_t
fnv(const char *s, uint64_t h)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* make_key - the parts joined, lower case, printable; a digest if long */
static void
make_key(struct buf *k, const char *prefix, const char *const *parts, size_t n)
{
	const char *p;
	size_t i;

	buf_reset(k);
	buf_adds(k, prefix);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_addc(k, '/');
		for (p = parts[i] != NULL ? parts[i] : ""; *p != '\0'; p++)
			buf_addc(k,
			    (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f
				? (char)tolower((unsigned char)*p)
				: '?');
	}
	if (k->len > KEY_MAX) {
		char *whole = buf_release(k);

		buf_init(k);
		buf_addf(k, "%s#%016llx%016llx", prefix,
		    (unsigned long long)fnv(whole, 0xcbf29ce484222325ULL),
		    (unsigned long long)fnv(whole, 0x84222325cbf29ce4ULL));
		free(whole);
	}
}

/* class_of - what a history record makes of its sender */
static enum policy_history
class_of(const struct rep_history_opts *o, const struct rep_history *h,
    time_t now)
{
	int64_t validated = h->delivered + h->refused;

	if (!h->found)
		return HISTORY_NEW;
	if (o->bad_refusals > 0 && h->refused >= (int64_t)o->bad_refusals &&
	    h->refused * 100 >= (int64_t)o->bad_percent * validated)
		return HISTORY_BAD;
	if (h->delivered >= (int64_t)o->established_messages && h->first > 0 &&
	    (int64_t)now - h->first >= o->established_age)
		return HISTORY_ESTABLISHED;
	return HISTORY_NEW;
}

enum { HF_DELIVERED = SPF_PERMERROR + 1, HF_REFUSED, HF_FIRST, HF_LAST, HF_N };

static void
history_ops(struct store_op *ops)
{
	int r;

	memset(ops, 0, HF_N * sizeof(*ops));
	for (r = SPF_NONE; r <= SPF_PERMERROR; r++)
		ops[r].field = result_fields[r];
	ops[HF_DELIVERED].field = "delivered";
	ops[HF_REFUSED].field = "refused";
	ops[HF_FIRST].field = "first";
	ops[HF_LAST].field = "last";
}

static void
history_key(struct buf *k, const char *domain, const char *net)
{
	const char *parts[2] = {domain, net};

	make_key(k, net != NULL ? "hn:" : "h:", parts, net != NULL ? 2 : 1);
}

int
rep_history_read(struct store *st, const struct rep_history_opts *o,
    const char *domain, const char *net, time_t now, struct rep_history *h,
    char *err, size_t errlen)
{
	struct store_op ops[HF_N];
	struct buf k;
	int rc, r, i;

	memset(h, 0, sizeof(*h));
	history_ops(ops);
	for (i = 0; i < HF_N; i++)
		ops[i].kind = STORE_GET;
	buf_init(&k);
	history_key(&k, domain, net);
	rc = store_update(st, buf_str(&k), ops, HF_N, 0, err, errlen);
	buf_free(&k);
	if (rc != 0)
		return -1;
	for (i = 0; i < HF_N; i++)
		h->found |= ops[i].found;
	for (r = SPF_NONE; r <= SPF_PERMERROR; r++)
		h->counts[r] = ops[r].value;
	h->delivered = ops[HF_DELIVERED].value;
	h->refused = ops[HF_REFUSED].value;
	h->first = ops[HF_FIRST].value;
	h->last = ops[HF_LAST].value;
	h->class = class_of(o, h, now);
	return 0;
}

bool
rep_history_anomaly(const struct rep_history *h, enum spf_result r)
{
	return h->class == HISTORY_ESTABLISHED &&
	    (r == SPF_FAIL || r == SPF_SOFTFAIL);
}

/* record_one - one record's update; creates it only for validated mail */
static int
record_one(struct store *st, const struct rep_history_opts *o, const char *key,
    enum spf_result r, bool delivered, bool refused, time_t now, char *err,
    size_t errlen)
{
	struct store_op ops[5], probe;
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	if (r != SPF_PASS) {
		/* only a record that exists counts what is not validated */
		memset(&probe, 0, sizeof(probe));
		probe.kind = STORE_GET;
		probe.field = "first";
		if (store_update(st, key, &probe, 1, 0, err, errlen) != 0)
			return -1;
		if (!probe.found)
			return 0;
	}
	ops[n].kind = STORE_INCR;
	ops[n].field = result_fields[r];
	ops[n++].value = 1;
	if (r == SPF_PASS) {
		if (delivered || refused) {
			ops[n].kind = STORE_INCR;
			ops[n].field = delivered ? "delivered" : "refused";
			ops[n++].value = 1;
		}
		ops[n].kind = STORE_SETNX;
		ops[n].field = "first";
		ops[n++].value = (int64_t)now;
		ops[n].kind = STORE_SET;
		ops[n].field = "last";
		ops[n++].value = (int64_t)now;
	}
	return store_update(st, key, ops, n, o->expiry, err, errlen);
}

int
rep_history_record(struct store *st, const struct rep_history_opts *o,
    const char *domain, const char *net, enum spf_result r, bool delivered,
    bool refused, time_t now, char *err, size_t errlen)
{
	struct buf k;
	int rc;

	if (domain == NULL || *domain == '\0' || r < SPF_NONE ||
	    r > SPF_PERMERROR)
		return 0;
	buf_init(&k);
	history_key(&k, domain, NULL);
	rc = record_one(st, o, buf_str(&k), r, delivered, refused, now, err,
	    errlen);
	if (rc == 0 && net != NULL && r == SPF_PASS) {
		history_key(&k, domain, net);
		rc = record_one(st, o, buf_str(&k), r, delivered, refused, now,
		    err, errlen);
	}
	buf_free(&k);
	return rc;
}

int
rep_greylist(struct store *st, const struct rep_greylist_opts *o,
    const char *source, const char *sender, const char *rcpt, time_t now,
    unsigned *retry_s, char *err, size_t errlen)
{
	const char *parts[3] = {source, sender, rcpt};
	struct store_op ops[2];
	struct buf k;
	int64_t first, elapsed;
	int rc = -1;

	*retry_s = 0;
	buf_init(&k);

	/* a source that retried correctly before passes, and is
	   remembered for another expiry period */
	make_key(&k, "ga:", parts, 1);
	memset(ops, 0, sizeof(ops));
	ops[0].kind = STORE_GET;
	ops[0].field = "passed";
	if (store_update(st, buf_str(&k), ops, 1, 0, err, errlen) != 0)
		goto out;
	if (ops[0].found) {
		ops[0].kind = STORE_SET;
		ops[0].value = (int64_t)now;
		rc = store_update(st, buf_str(&k), ops, 1, o->expiry, err,
			 errlen) == 0
		    ? 0
		    : -1;
		goto out;
	}

	/* the triplet: first seen now unless seen before */
	make_key(&k, "g:", parts, 3);
	memset(ops, 0, sizeof(ops));
	ops[0].kind = STORE_SETNX;
	ops[0].field = "first";
	ops[0].value = (int64_t)now;
	ops[1].kind = STORE_INCR;
	ops[1].field = "tries";
	ops[1].value = 1;
	if (store_update(st, buf_str(&k), ops, 2, o->delay + o->window, err,
		errlen) != 0)
		goto out;
	first = ops[0].value;
	elapsed = (int64_t)now - first;
	if (!ops[0].found || elapsed < 0) {
		*retry_s = o->delay;
		rc = 1;
		goto out;
	}
	if (elapsed < (int64_t)o->delay) {
		*retry_s = (unsigned)((int64_t)o->delay - elapsed);
		rc = 1;
		goto out;
	}
	if (elapsed > (int64_t)o->delay + o->window) {
		/* too late: start again */
		ops[0].kind = STORE_SET;
		ops[0].value = (int64_t)now;
		if (store_update(st, buf_str(&k), ops, 1, o->delay + o->window,
			err, errlen) != 0)
			goto out;
		*retry_s = o->delay;
		rc = 1;
		goto out;
	}

	/* a retry in the window: remember the source */
	make_key(&k, "ga:", parts, 1);
	memset(ops, 0, sizeof(ops));
	ops[0].kind = STORE_SET;
	ops[0].field = "passed";
	ops[0].value = (int64_t)now;
	rc = store_update(st, buf_str(&k), ops, 1, o->expiry, err, errlen) == 0
	    ? 0
	    : -1;
out:
	buf_free(&k);
	return rc;
}

int
rep_rate(struct store *st, const struct rate_limit *l, const char *subject,
    unsigned n, time_t now, double *rate, char *err, size_t errlen)
{
	char cur[32], prev[32];
	const char *parts[3];
	struct store_op op;
	struct buf k;
	int64_t w = l->window > 0 ? l->window : 1, bucket = (int64_t)now / w;
	double share, count;
	int rc = -1;

	*rate = 0;
	(void)snprintf(cur, sizeof(cur), "%lld", (long long)bucket);
	(void)snprintf(prev, sizeof(prev), "%lld", (long long)(bucket - 1));
	parts[0] = l->name;
	parts[1] = subject;
	buf_init(&k);

	parts[2] = cur;
	make_key(&k, "r:", parts, 3);
	memset(&op, 0, sizeof(op));
	op.kind = STORE_INCR;
	op.field = "n";
	op.value = n;
	/* the window now, and the next one, which reads it as previous */
	if (store_update(st, buf_str(&k), &op, 1, (unsigned)(2 * w + 1), err,
		errlen) != 0)
		goto out;
	count = (double)op.value;

	parts[2] = prev;
	make_key(&k, "r:", parts, 3);
	memset(&op, 0, sizeof(op));
	op.kind = STORE_GET;
	op.field = "n";
	if (store_update(st, buf_str(&k), &op, 1, 0, err, errlen) != 0)
		goto out;
	/* the share of the previous window still inside the sliding one */
	share = 1.0 - (double)((int64_t)now - bucket * w) / (double)w;
	*rate = count + (double)op.value * share;
	rc = *rate > (double)l->limit ? 1 : 0;
out:
	buf_free(&k);
	return rc;
}
