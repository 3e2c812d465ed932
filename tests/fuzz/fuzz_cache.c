/*
 * fuzz_cache.c - the DNS answer cache (filter/dns_cache.c) driven by a
 * sequence of operations on one cache with small limits, against a model
 * of what was put.
 *
 * Input: the limits (4 bytes: entries, bytes, TTL cap, negative TTL cap;
 * see read_limits()), then operations until the input ends, each an
 * opcode byte (modulo 4) and its arguments:
 *
 *	0 put	type, NAME, status, TTL (2 bytes), count, count records
 *	1 get	type, NAME
 *	2 clock	2 bytes: that many ms; top bit set: 100 ms steps
 *	3 limits 4 bytes as at the start (the cache is emptied)
 *
 * NAME: a byte b. With its top bit set (and a name seen before): name
 * b % names given before, then a byte t varying it (bits 0-1: final dots,
 * 2-4: case; bit 5: first a sibling in the same shard, from the next byte
 * on: see sibling()); else b & 0x7f characters (0x78 and above: 245 to
 * 259, long names), the first 64 from the input (a NUL cuts the name),
 * the rest filler. Type: a byte (A AAAA MX TXT PTR); status: a byte (OK
 * NODATA NXDOMAIN TEMPFAIL); TTL: 0 to 1023, or one of a few edges
 * (0xfff8 and above). Record: a flags byte (bit 0: data, else none as for
 * A and AAAA; it is the preference too), an address byte, and with data a
 * length byte: under 0x80 that many bytes of input, else (b & 0x7f) * 128
 * bytes of filler (large records: answers over the cache's 8 KiB and its
 * shards' bytes).
 *
 * Invariants: dns_cache_key() refuses exactly the names over 253 octets
 * without one final dot, and keys the others by ASCII lower case; a get
 * returns only an answer put for an equal key (type, name case folded
 * without one final dot), not yet expired, with the same status, count
 * and records (preference, length, bytes, address), never DNS_TEMPFAIL,
 * with a TTL of at least 1, at most the seconds left (rounded up) and at
 * most min(TTL, cap) when put; a miss leaves the answer untouched; a
 * DNS_TEMPFAIL or TTL 0 (after the cap) answer is never kept, so the one
 * before it stays; dns_cache_count() within the limits, and 0 after new
 * limits. A miss is allowed (eviction) unless the model proves the entry
 * is still there: certainly kept when put (its records and name, plus
 * ENTRY_SLACK for the cache's own, within 8 KiB and its shard's bytes),
 * the only answer put for its key since, not expired, and too few puts
 * and hits since its own last put or hit to fill its shard (dns.h: the
 * limits are split evenly over 64 shards) whichever shard they fell in.
 * Answers put are freed at once (the cache keeps its own copy); answers
 * got are freed with dns_answer_free() (LeakSanitizer).
 */
#include "autoconf.h"

#include <sys/random.h>
#include <sys/syscall.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "dns_cache.h"
#include "fuzz.h"
#include "xalloc.h"

#define SHARDS	    64	 /* dns.h: limits split evenly over 64 shards */
#define MAX_ENTRY   8192 /* dns.c: an answer over 8 KiB is not kept */
#define ENTRY_SLACK 256	 /* above the cache's own bytes per entry */
#define NAME_BUF    300
#define NAME_SLOTS  16

/* An answer put that the cache may hold. */
struct known {
	char key[DNS_MAX_NAME + 1]; /* as the cache should key it */
	size_t len;
	enum dns_type type;
	struct dns_answer a; /* our own copy */
	uint32_t ttl;	     /* min(TTL, cap) */
	int64_t expires;     /* ms */
	size_t size;	     /* its entry's bytes at most */
	bool sure;	     /* certainly kept when put */
	bool live;	     /* no answer certainly kept for its key since */
	uint64_t seen, seen_bytes; /* events at its last put or hit */
};

struct model {
	struct known *k;
	size_t n;
	/* puts that may have been kept and hits, and their bytes: each
	   makes one entry of some shard more recent */
	uint64_t events, event_bytes;
	size_t entries, bytes; /* the limits set */
	uint32_t max_ttl, max_neg_ttl;
	int64_t now;
	char names[NAME_SLOTS][NAME_BUF];
	size_t nnames;
};

struct input {
	const uint8_t *p;
	size_t n, pos;
};

static const enum dns_type types[] = {DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TXT,
    DNS_T_PTR};

static bool fixed_random;

/*
 * getrandom - libc's, but a fixed seed for dns_cache_new()'s hash, so that
 * an input puts names in the same shards every time it runs (this
 * definition takes the place of libc's in this program).
 */
ssize_t
getrandom(void *buf, size_t len, unsigned int flags)
{
	if (fixed_random) {
		memset(buf, 0x5a, len);
		return (ssize_t)len;
	}
	return (ssize_t)syscall(SYS_getrandom, buf, len, flags);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static uint8_t
in_byte(struct input *in)
{
	return in->pos < in->n ? in->p[in->pos++] : 0;
}

static uint16_t
in_u16(struct input *in)
{
	uint16_t hi = in_byte(in);

	return (uint16_t)(hi << 8 | in_byte(in));
}

/* read_cap - a TTL cap: 0 to 247 s, or an edge */
static uint32_t
read_cap(struct input *in)
{
	static const uint32_t edge[] = {0, 1, 3600, 86400, 1000000, INT32_MAX,
	    UINT32_MAX - 1, UINT32_MAX};
	uint8_t b = in_byte(in);

	return b < 0xf8 ? b : edge[b & 7];
}

/* read_ttl - an answer's TTL: 0 to 1023 s, or an edge */
static uint32_t
read_ttl(struct input *in)
{
	static const uint32_t edge[] = {0, 1, 999, 3600, 3601, 86400, INT32_MAX,
	    UINT32_MAX};
	uint16_t v = in_u16(in);

	return v >= 0xfff8 ? edge[v & 7] : v % 1024;
}

/* vary - the same name, or one differing only in case or final dots */
static void
vary(char *s, uint8_t t)
{
	size_t len = strlen(s), i;

	if ((t & 3) == 1 || (t & 3) == 3)
		s[len++] = '.';
	if ((t & 3) == 3)
		s[len++] = '.';
	if ((t & 3) == 2 && len > 0 && s[len - 1] == '.')
		len--;
	s[len] = '\0';
	for (i = 0; i < len; i++) {
		bool up = (t & 4) || ((t & 16) && i % 2 == 1);
		bool low = (t & 8) && !up;

		if (up && s[i] >= 'a' && s[i] <= 'z')
			s[i] = (char)(s[i] - 'a' + 'A');
		else if (low && s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
	}
}

/*
 * sibling - a name whose key (for this type) falls in the same shard as
 * name's, so that a few names fill a shard and evict; name itself if none
 * is found. A hint taken from dns_cache.c (shard: the hash modulo 64): the
 * checks never depend on which shard a key is in.
 */
static void
sibling(struct dns_cache *c, char *name, enum dns_type type, uint8_t start)
{
	struct dns_cache_key base, k;
	char cand[NAME_BUF - 2]; /* room for vary()'s two final dots */
	unsigned n;

	if (!dns_cache_key(c, name, type, &base))
		return;
	for (n = start * 128U; n < start * 128U + 1024; n++) {
		(void)snprintf(cand, sizeof(cand), "s%u.%s", n, name);
		if (dns_cache_key(c, cand, type, &k) &&
		    k.hash % SHARDS == base.hash % SHARDS) {
			memcpy(name, cand, strlen(cand) + 1);
			return;
		}
	}
}

static void
remember(struct model *m, const char *name)
{
	memcpy(m->names[m->nnames++ % NAME_SLOTS], name, strlen(name) + 1);
}

/* read_name - a name for a question of this type into buf[NAME_BUF] (the
 * top of the file) */
static void
read_name(struct input *in, struct model *m, struct dns_cache *c,
    enum dns_type type, char *buf)
{
	uint8_t b = in_byte(in), t;
	size_t len, i;

	if ((b & 0x80) && m->nnames > 0) {
		i = (b & 0x7f) %
		    (m->nnames < NAME_SLOTS ? m->nnames : NAME_SLOTS);
		memcpy(buf, m->names[i], strlen(m->names[i]) + 1);
		if ((t = in_byte(in)) & 0x20) {
			sibling(c, buf, type, in_byte(in));
			remember(m, buf);
		}
		vary(buf, t);
		return;
	}
	len = b & 0x7f;
	if (len >= 0x78)
		len = 245 + (len - 0x78) * 2;
	for (i = 0; i < len; i++)
		if (i < 64 && in->pos < in->n)
			buf[i] = (char)in->p[in->pos++];
		else
			buf[i] = i % 8 == 7 ? '.' : (char)('a' + i % 5);
	buf[len] = '\0';
	remember(m, buf);
}

/* read_rr - one record (the top of the file) */
static void
read_rr(struct input *in, struct dns_rr *rr)
{
	uint8_t flags = in_byte(in), b = in_byte(in);
	size_t len, i;

	memset(rr, 0, sizeof(*rr));
	rr->pref = (uint16_t)(flags * 257);
	for (i = 0; i < sizeof(rr->addr.v6); i++)
		rr->addr.v6.s6_addr[i] = (uint8_t)(b + i);
	if (!(flags & 1))
		return;
	b = in_byte(in);
	if (b < 0x80)
		len = b < in->n - in->pos ? b : in->n - in->pos;
	else
		len = (size_t)(b & 0x7f) * 128 + flags / 2;
	rr->data = xmalloc(len + 1);
	if (b < 0x80 && len > 0) {
		memcpy(rr->data, in->p + in->pos, len);
		in->pos += len;
	} else
		memset(rr->data, flags, len); /* not byte by byte: faster */
	rr->data[len] = '\0';
	rr->len = len;
}

/* read_answer - an answer to a question of this type */
static void
read_answer(struct input *in, enum dns_type type, struct dns_answer *a)
{
	enum dns_status status = (enum dns_status)(in_byte(in) % 4);
	size_t n, i;
	struct dns_rr rr;

	memset(a, 0, sizeof(*a));
	a->type = type;
	a->ttl = read_ttl(in);
	n = in_byte(in) % 16;
	for (i = 0; i < n; i++) {
		read_rr(in, &rr);
		dns_answer_add(a, &rr);
	}
	a->status = status; /* whatever the records */
	if (status == DNS_TEMPFAIL)
		a->why = "fuzz";
}

static void
answer_copy(const struct dns_answer *a, struct dns_answer *out)
{
	size_t i;

	*out = *a;
	out->rr = NULL;
	if (a->count == 0)
		return;
	out->rr = xreallocarray(NULL, a->count, sizeof(*out->rr));
	for (i = 0; i < a->count; i++) {
		out->rr[i] = a->rr[i];
		if (a->rr[i].data != NULL) {
			out->rr[i].data = xmalloc(a->rr[i].len + 1);
			memcpy(out->rr[i].data, a->rr[i].data,
			    a->rr[i].len + 1);
		}
	}
}

/* same_answer - the same status and records */
static bool
same_answer(const struct dns_answer *x, const struct dns_answer *y)
{
	const struct dns_rr *a, *b;
	size_t i;

	if (x->status != y->status || x->count != y->count)
		return false;
	for (i = 0; i < x->count; i++) {
		a = &x->rr[i];
		b = &y->rr[i];
		if (a->pref != b->pref || a->len != b->len ||
		    (a->data == NULL) != (b->data == NULL) ||
		    memcmp(&a->addr, &b->addr, sizeof(a->addr)) != 0)
			return false;
		if (a->data != NULL &&
		    memcmp(a->data, b->data, a->len + 1) != 0)
			return false;
	}
	return true;
}

/* model_key - the name as the cache should key it; false if it cannot */
static bool
model_key(const char *name, char *key, size_t *len)
{
	size_t n = strlen(name), i;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n > DNS_MAX_NAME)
		return false;
	for (i = 0; i < n; i++)
		key[i] = name[i] >= 'A' && name[i] <= 'Z'
		    ? (char)(name[i] - 'A' + 'a')
		    : name[i];
	key[n] = '\0';
	*len = n;
	return true;
}

/* check_key - dns_cache_key() as the model says; false if no key */
static bool
check_key(struct dns_cache *c, const char *name, enum dns_type type,
    struct dns_cache_key *k)
{
	char key[DNS_MAX_NAME + 1];
	size_t len;
	bool ok = model_key(name, key, &len);

	if (dns_cache_key(c, name, type, k) != ok)
		fuzz_fail(ok ? "name refused" : "over-long name keyed", name);
	if (ok &&
	    (k->len != len || k->type != type ||
		memcmp(k->name, key, len + 1) != 0))
		fuzz_fail("key not the name folded without a final dot", name);
	return ok;
}

static bool
same_key(const struct known *kn, const struct dns_cache_key *k)
{
	return kn->type == k->type && kn->len == k->len &&
	    memcmp(kn->key, k->name, k->len) == 0;
}

static void
retire(struct known *kn)
{
	kn->live = false;
	dns_answer_free(&kn->a);
}

/* entry_min - the bytes of an entry but the cache's own bookkeeping */
static size_t
entry_min(const struct dns_cache_key *k, const struct dns_answer *a)
{
	size_t size = a->count * sizeof(struct dns_rr) + k->len + 1, i;

	for (i = 0; i < a->count; i++)
		if (a->rr[i].data != NULL)
			size += a->rr[i].len + 1;
	return size;
}

/* shard_room - the largest entry a shard may hold */
static size_t
shard_room(const struct model *m)
{
	return m->bytes / SHARDS < MAX_ENTRY ? m->bytes / SHARDS : MAX_ENTRY;
}

/* model_put - what the cache may hold after a put */
static void
model_put(struct model *m, const struct dns_cache_key *k,
    const struct dns_answer *a)
{
	struct known *kn;
	uint32_t cap;
	size_t lo = entry_min(k, a), i;
	bool sure = lo + ENTRY_SLACK <= shard_room(m);

	if (a->status == DNS_TEMPFAIL)
		return; /* never kept */
	cap = a->status == DNS_OK ? m->max_ttl : m->max_neg_ttl;
	if (a->ttl == 0 || cap == 0)
		return; /* never kept either */
	if (m->entries / SHARDS == 0 || lo > shard_room(m))
		return; /* too big: kept nowhere */
	for (i = 0; sure && i < m->n; i++)
		if (m->k[i].live && same_key(&m->k[i], k))
			retire(&m->k[i]);
	m->k = xreallocarray(m->k, m->n + 1, sizeof(*m->k));
	kn = &m->k[m->n++];
	memset(kn, 0, sizeof(*kn));
	memcpy(kn->key, k->name, k->len + 1);
	kn->len = k->len;
	kn->type = k->type;
	answer_copy(a, &kn->a);
	kn->ttl = a->ttl < cap ? a->ttl : cap;
	kn->expires = m->now + (int64_t)kn->ttl * 1000;
	kn->size = lo + ENTRY_SLACK;
	kn->sure = sure;
	kn->live = true;
	m->events++;
	m->event_bytes += kn->size;
	kn->seen = m->events;
	kn->seen_bytes = m->event_bytes;
}

/* must_hold - the answer the cache cannot have dropped for k, if any */
static const struct known *
must_hold(const struct model *m, const struct dns_cache_key *k)
{
	const struct known *only = NULL;
	size_t i;

	for (i = 0; i < m->n; i++) {
		if (!m->k[i].live || !same_key(&m->k[i], k))
			continue;
		if (only != NULL)
			return NULL; /* which one it holds is unknown */
		only = &m->k[i];
	}
	if (only == NULL || !only->sure || only->expires <= m->now)
		return NULL;
	/* LRU: it goes only once its shard is full of more recent ones */
	if (m->events - only->seen >= m->entries / SHARDS ||
	    only->size + (m->event_bytes - only->seen_bytes) >
		m->bytes / SHARDS)
		return NULL;
	return only;
}

/* match - the answer put that a hit can be; fails if none */
static struct known *
match(struct model *m, const char *name, const struct dns_cache_key *k,
    const struct dns_answer *got)
{
	struct known *kn, *same = NULL;
	int64_t left;
	size_t i;

	for (i = 0; i < m->n; i++) {
		kn = &m->k[i];
		if (!kn->live || kn->expires <= m->now || !same_key(kn, k) ||
		    !same_answer(&kn->a, got))
			continue;
		same = kn;
		left = (kn->expires - m->now + 999) / 1000;
		if (got->ttl <= kn->ttl && (int64_t)got->ttl <= left)
			return kn;
	}
	fuzz_fail(same != NULL ? "TTL beyond what is left"
			       : "an answer not put, or expired",
	    name);
}

static void
op_put(struct dns_cache *c, struct model *m, struct input *in)
{
	char name[NAME_BUF];
	struct dns_cache_key k;
	struct dns_answer a;
	enum dns_type type;

	type = types[in_byte(in) % 5];
	read_name(in, m, c, type, name);
	read_answer(in, type, &a);
	if (check_key(c, name, type, &k)) {
		dns_cache_put(c, &k, m->now, &a);
		model_put(m, &k, &a);
	}
	dns_answer_free(&a); /* the cache has its own copy */
}

static void
op_get(struct dns_cache *c, struct model *m, struct input *in)
{
	char name[NAME_BUF];
	struct dns_cache_key k;
	struct dns_answer got;
	struct known *kn;
	enum dns_type type;
	size_t i;

	type = types[in_byte(in) % 5];
	read_name(in, m, c, type, name);
	if (!check_key(c, name, type, &k))
		return;
	memset(&got, 0, sizeof(got));
	got.type = type;
	got.status = DNS_NODATA;
	if (!dns_cache_get(c, &k, m->now, &got)) {
		if (got.status != DNS_NODATA || got.count != 0 ||
		    got.rr != NULL || got.ttl != 0 || got.type != type)
			fuzz_fail("a miss changed the answer", name);
		if (must_hold(m, &k) != NULL)
			fuzz_fail("a live answer lost", name);
		return;
	}
	if (got.status == DNS_TEMPFAIL || got.ttl == 0 || got.type != type)
		fuzz_fail("a temporary failure, TTL 0 or another type", name);
	kn = match(m, name, &k, &got);
	m->events++;
	m->event_bytes += kn->size;
	for (i = 0; i < m->n; i++)
		if (m->k[i].live && same_key(&m->k[i], &k)) {
			m->k[i].seen = m->events;
			m->k[i].seen_bytes = m->event_bytes;
		}
	dns_answer_free(&got);
}

/* read_limits - limits from 4 bytes: per shard 0 to 15 entries and 0 to
 * 16,256 bytes (finer when small), TTL caps */
static void
read_limits(struct dns_cache *c, struct model *m, struct input *in)
{
	uint8_t e = in_byte(in), b = in_byte(in);
	size_t i, entries, bytes;

	m->entries = (size_t)e * 4;
	m->bytes = (size_t)b * b * 16;
	m->max_ttl = read_cap(in);
	m->max_neg_ttl = read_cap(in);
	dns_cache_set_limits(c, m->entries, m->bytes, m->max_ttl,
	    m->max_neg_ttl);
	for (i = 0; i < m->n; i++)
		if (m->k[i].live)
			retire(&m->k[i]);
	dns_cache_count(c, &entries, &bytes);
	if (entries != 0 || bytes != 0)
		fuzz_fail("entries left after new limits", "");
}

static void
check_count(struct dns_cache *c, const struct model *m)
{
	size_t entries, bytes;

	dns_cache_count(c, &entries, &bytes);
	if (entries > m->entries || bytes > m->bytes)
		fuzz_fail("over the limits", "");
	if ((entries == 0) != (bytes == 0))
		fuzz_fail("entries without bytes, or bytes without entries",
		    "");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size, 0};
	struct model m;
	struct dns_cache *c;
	size_t i;

	memset(&m, 0, sizeof(m));
	fixed_random = true;
	c = dns_cache_new();
	fixed_random = false;
	read_limits(c, &m, &in);
	while (in.pos < in.n) {
		switch (in_byte(&in) % 4) {
		case 0:
			op_put(c, &m, &in);
			break;
		case 1:
			op_get(c, &m, &in);
			break;
		case 2:
			i = in_u16(&in);
			m.now += i & 0x8000 ? (int64_t)(i & 0x7fff) * 100
					    : (int64_t)i;
			break;
		default:
			read_limits(c, &m, &in);
		}
		check_count(c, &m);
	}
	dns_cache_free(c);
	for (i = 0; i < m.n; i++)
		if (m.k[i].live)
			retire(&m.k[i]);
	free(m.k);
	return 0;
}
