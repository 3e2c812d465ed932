/*
 * hist.c - latency histograms (see hist.h). A value is kept in its
 * bucket; a percentile answers the middle of the bucket it falls in, and
 * the maximum is kept exactly.
 */
#include "hist.h"

#define EXACT 128 /* values below are their own bucket */
#define SUB   64  /* buckets per power of two above */

/* bucket - the bucket of a value */
static unsigned
bucket(uint64_t v)
{
	unsigned e;

	if (v < EXACT)
		return (unsigned)v;
	e = 63U - (unsigned)__builtin_clzll(v); /* 7 and up */
	if (e > 40)
		return HIST_BUCKETS - 1;
	return EXACT + (e - 7) * SUB + (unsigned)((v >> (e - 6)) & (SUB - 1));
}

/* middle - the middle value of a bucket */
static uint64_t
middle(unsigned i)
{
	unsigned e, sub;
	uint64_t lo;

	if (i < EXACT)
		return i;
	e = 7 + (i - EXACT) / SUB;
	sub = (i - EXACT) % SUB;
	lo = (uint64_t)(SUB + sub) << (e - 6);
	return lo + ((1ULL << (e - 6)) >> 1);
}

void
hist_add(struct hist *h, uint64_t us)
{
	h->n++;
	h->sum += us;
	if (us > h->max)
		h->max = us;
	h->b[bucket(us)]++;
}

void
hist_merge(struct hist *h, const struct hist *o)
{
	unsigned i;

	h->n += o->n;
	h->sum += o->sum;
	if (o->max > h->max)
		h->max = o->max;
	for (i = 0; i < HIST_BUCKETS; i++)
		h->b[i] += o->b[i];
}

uint64_t
hist_pct(const struct hist *h, double p)
{
	uint64_t want, seen = 0, v;
	unsigned i;

	if (h->n == 0)
		return 0;
	want = (uint64_t)(p * (double)h->n + 0.999999);
	if (want < 1)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			v = middle(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}
