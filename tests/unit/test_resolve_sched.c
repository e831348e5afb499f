/* resolve_sched: re-resolution delays (TTL bounds) and the retry backoff. */
#include <criterion/criterion.h>

#include "resolve_sched.h"

#define S(x) ((uint64_t)(x) * 1000000000ULL)

Test(resolve_sched, unknown_ttl_uses_the_interval)
{
	cr_assert_eq(resolve_sched_next_ns(S(300), 0), S(300));
	cr_assert_eq(resolve_sched_next_ns(S(2), 0), S(2));
}

Test(resolve_sched, shorter_ttl_wins)
{
	cr_assert_eq(resolve_sched_next_ns(S(300), 60), S(60));
	cr_assert_eq(resolve_sched_next_ns(S(2), 1), S(1));
}

Test(resolve_sched, longer_ttl_does_not_stretch_the_interval)
{
	cr_assert_eq(resolve_sched_next_ns(S(300), 3600), S(300));
	cr_assert_eq(resolve_sched_next_ns(S(300), 300), S(300));
	cr_assert_eq(resolve_sched_next_ns(S(86400), UINT32_MAX), S(86400));
}

Test(resolve_sched, never_below_one_second)
{
	/* A TTL of 1 s is the floor; an interval below it (not configurable,
	 * but defended) is lifted too. */
	cr_assert_eq(resolve_sched_next_ns(S(300), 1), S(1));
	cr_assert_eq(resolve_sched_next_ns(S(1) / 2, 0), S(1));
	cr_assert_eq(resolve_sched_next_ns(S(1) / 2, 1), S(1));
}

Test(resolve_sched, backoff_doubles_from_one_second)
{
	uint64_t want[] = { S(1), S(2), S(4), S(8), S(16), S(32), S(64), S(128), S(256), S(300) };

	for (uint32_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_assert_eq(resolve_sched_backoff_ns(i + 1, S(300)), want[i], "failure %u", i + 1);
}

Test(resolve_sched, backoff_capped_at_the_interval)
{
	cr_assert_eq(resolve_sched_backoff_ns(1, S(2)), S(1));
	cr_assert_eq(resolve_sched_backoff_ns(2, S(2)), S(2));
	cr_assert_eq(resolve_sched_backoff_ns(3, S(2)), S(2));
	cr_assert_eq(resolve_sched_backoff_ns(1000, S(86400)), S(86400));
	cr_assert_eq(resolve_sched_backoff_ns(UINT32_MAX, S(5)), S(5));
	/* Zero failures is treated as the first. */
	cr_assert_eq(resolve_sched_backoff_ns(0, S(300)), S(1));
}
