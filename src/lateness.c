/* lateness: see include/lateness.h. */
#include "lateness.h"

static uint64_t bound(uint32_t b)
{
	if (b >= LATENESS_BUCKETS - 1)
		return UINT64_MAX;
	return b < LATENESS_FINE_N ? (b + 1) * LATENESS_FINE_NS
		: LATENESS_FINE_N * LATENESS_FINE_NS + (b - LATENESS_FINE_N + 1) * LATENESS_COARSE_NS;
}

const uint64_t *lateness_bounds(void)
{
	static uint64_t table[LATENESS_BUCKETS];

	if (table[0] == 0)
		for (uint32_t b = 0; b < LATENESS_BUCKETS; b++)
			table[b] = bound(b);
	return table;
}

void lateness_note(struct lateness *l, uint64_t deadline_ns, uint64_t sent_ns)
{
	uint64_t late = sent_ns > deadline_ns ? sent_ns - deadline_ns : 0;
	uint64_t b = late / LATENESS_FINE_NS;

	if (b >= LATENESS_FINE_N)
		b = LATENESS_FINE_N + (late - LATENESS_FINE_N * LATENESS_FINE_NS) / LATENESS_COARSE_NS;
	l->counts[b < LATENESS_BUCKETS ? b : LATENESS_BUCKETS - 1]++;
	if (late > l->max_ns)
		l->max_ns = late;
	l->n++;
	l->sum_ns += late;
}

uint64_t lateness_quantile_ns(const struct lateness *l, uint32_t per_mille)
{
	/* The rank of the quantile, rounded up: p50 of 3 is the 2nd, p99 of
	 * 100 the 99th. */
	uint64_t want = l->n - (l->n * (1000 - per_mille)) / 1000, seen = 0;

	if (l->n == 0)
		return 0;
	if (want == 0)
		want = 1;
	for (uint32_t b = 0; b < LATENESS_BUCKETS; b++) {
		seen += l->counts[b];
		if (seen >= want)
			return bound(b) < l->max_ns ? bound(b) : l->max_ns;
	}
	return l->max_ns;
}
