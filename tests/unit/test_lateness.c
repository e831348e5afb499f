/* lateness: the send lateness histogram (pure). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lateness.h"

Test(lateness, buckets_sum_max_and_quantiles)
{
	struct lateness *l = calloc(1, sizeof *l);
	const uint64_t *b = lateness_bounds();

	cr_assert_eq(lateness_quantile_ns(l, 500), 0);
	/* 98 on time (or early), one at 25 us, one at 3.5 ms. */
	for (int i = 0; i < 97; i++)
		lateness_note(l, 1000, 1000);
	lateness_note(l, 1000, 900);
	lateness_note(l, 1000, 1000 + 25000);
	lateness_note(l, 1000, 1000 + 3500000);
	cr_assert_eq(l->n, 100);
	cr_assert_eq(l->sum_ns, 25000 + 3500000);
	cr_assert_eq(l->max_ns, 3500000);
	cr_assert_eq(l->counts[0], 98);
	cr_assert_eq(l->counts[2], 1);     /* [20, 30) us */
	cr_assert_eq(l->counts[350], 1);   /* [3.5, 3.51) ms */
	cr_assert_eq(lateness_quantile_ns(l, 500), b[0]);
	cr_assert_eq(lateness_quantile_ns(l, 990), b[2]);
	/* Capped by the worst seen. */
	cr_assert_eq(lateness_quantile_ns(l, 1000), 3500000);
	free(l);
}

Test(lateness, coarse_and_overflow_buckets)
{
	struct lateness *l = calloc(1, sizeof *l);
	const uint64_t *b = lateness_bounds();

	lateness_note(l, 0, 10 * 1000000ULL + 1);         /* just past the fine part */
	lateness_note(l, 0, 5ULL * 1000000000ULL);        /* 5 s: the last bucket */
	cr_assert_eq(l->counts[LATENESS_FINE_N], 1);
	cr_assert_eq(l->counts[LATENESS_BUCKETS - 1], 1);
	cr_assert_eq(b[LATENESS_FINE_N - 1], 10 * 1000000ULL);
	cr_assert_eq(b[LATENESS_FINE_N], 11 * 1000000ULL);
	cr_assert_eq(b[LATENESS_BUCKETS - 1], UINT64_MAX);
	for (int i = 1; i < LATENESS_BUCKETS; i++)
		cr_assert_gt(b[i], b[i - 1]);
	cr_assert_eq(lateness_quantile_ns(l, 990), 5ULL * 1000000000ULL);
	free(l);
}
