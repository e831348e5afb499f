/*
 * lateness: the histogram of how late sends leave (actual send time minus
 * the scheduled deadline).  Pure: callers pass both times.  Buckets are
 * 10 us wide up to 10 ms, then 1 ms wide up to 1 s; the last takes
 * anything later.  Percentiles are bucket upper bounds ("at most this
 * late"), capped by the worst seen.
 */
#ifndef BEACOND_LATENESS_H
#define BEACOND_LATENESS_H

#include <stdint.h>

#define LATENESS_FINE_NS 10000ULL
#define LATENESS_FINE_N 1000
#define LATENESS_COARSE_NS 1000000ULL
#define LATENESS_BUCKETS (LATENESS_FINE_N + 991)

struct lateness {
	uint64_t counts[LATENESS_BUCKETS];
	uint64_t n, sum_ns, max_ns;
};

/* The upper bounds of every bucket (the last is UINT64_MAX): one table,
 * built on first use. */
const uint64_t *lateness_bounds(void);
void lateness_note(struct lateness *l, uint64_t deadline_ns, uint64_t sent_ns);
/* The upper bound of the bucket holding the q-th quantile (per mille:
 * 500 = median, 990 = p99), capped at the worst seen; 0 when empty. */
uint64_t lateness_quantile_ns(const struct lateness *l, uint32_t per_mille);

#endif
