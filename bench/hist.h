/*
 * hist.h - latency histograms for the benchmarks: log-linear buckets of
 * microseconds (exact below 128 us, then 64 buckets per power of two, so
 * a percentile is within 1.6 %), fixed size, no allocation.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_BUCKETS (128 + 34 * 64)

struct hist {
	uint64_t n;
	uint64_t max;
	uint64_t sum;
	uint32_t b[HIST_BUCKETS];
};

void hist_add(struct hist *, uint64_t us);
void hist_merge(struct hist *, const struct hist *);
/* the value (us) at or below which a fraction p (0..1) of samples lie */
uint64_t hist_pct(const struct hist *, double p);

#endif
