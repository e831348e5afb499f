/* send_sched: the send grid step for a send rate, per-probe steps, rounding. */
#include <criterion/criterion.h>

#include "send_sched.h"

#define MS 1000000ULL
#define S(x) ((uint64_t)(x) * 1000000000ULL)

/* Total milli-sends per second of n probes at one interval. */
static uint64_t rate(uint64_t n, uint64_t interval_ns)
{
	return n * send_rate_mhz(interval_ns);
}

Test(send_sched, rate_of_one_probe)
{
	cr_assert_eq(send_rate_mhz(S(1)), 1000);
	cr_assert_eq(send_rate_mhz(10 * MS), 100000);
	cr_assert_eq(send_rate_mhz(S(3600)), 0, "below one milli-send per second");
	cr_assert_eq(send_rate_mhz(0), 0);
}

Test(send_sched, few_probes_use_the_widest_step)
{
	cr_assert_eq(send_grid_ns(0), 8 * MS);
	cr_assert_eq(send_grid_ns(rate(2, S(1))), 8 * MS);
	cr_assert_eq(send_grid_ns(rate(8000, S(1))), 8 * MS, "8000/s * 8 ms = 64 sends");
}

Test(send_sched, the_step_keeps_a_batch_near_64)
{
	/* 10 000 probes at 1 Hz: 8 ms would hold 80, 4 ms holds 40. */
	cr_assert_eq(send_grid_ns(rate(10000, S(1))), 4 * MS);
	cr_assert_eq(send_grid_ns(rate(20000, S(1))), 2 * MS);
	cr_assert_eq(send_grid_ns(rate(64000, S(1))), 1 * MS);
	cr_assert_eq(send_grid_ns(rate(1000000, S(1))), 1 * MS, "never below 1 ms");
	/* 500 probes every 10 ms are 50 000 a second: 1 ms holds 50. */
	cr_assert_eq(send_grid_ns(rate(500, 10 * MS)), 1 * MS);
	/* Batches never exceed 64 on average above the 1 ms floor. */
	for (uint64_t n = 1; n < 64000; n += 997) {
		uint64_t g = send_grid_ns(rate(n, S(1)));

		cr_assert_leq(n * g / S(1), 64, "%llu probes: step %llu ns",
			      (unsigned long long)n, (unsigned long long)g);
	}
}

Test(send_sched, a_probe_step_divides_its_interval)
{
	cr_assert_eq(send_grid_for(4 * MS, S(1)), 4 * MS);
	cr_assert_eq(send_grid_for(8 * MS, 10 * MS), 2 * MS);
	cr_assert_eq(send_grid_for(8 * MS, 12 * MS), 4 * MS);
	cr_assert_eq(send_grid_for(8 * MS, 15 * MS), 1 * MS);
	cr_assert_eq(send_grid_for(8 * MS, 15 * MS + 1), 1 * MS, "off any grid: 1 ms");
}

Test(send_sched, rounding_up_to_the_grid)
{
	cr_assert_eq(send_grid_up(0, 4 * MS), 0);
	cr_assert_eq(send_grid_up(1, 4 * MS), 4 * MS);
	cr_assert_eq(send_grid_up(4 * MS, 4 * MS), 4 * MS);
	cr_assert_eq(send_grid_up(S(100) + 1, 8 * MS), S(100) + 8 * MS);
	/* Every deadline of a probe placed on its grid stays on the grid. */
	for (uint64_t k = 0; k < 100; k++)
		cr_assert_eq((send_grid_up(S(7) + 3, send_grid_for(8 * MS, 10 * MS)) + k * 10 * MS) %
			     (2 * MS), 0);
}
