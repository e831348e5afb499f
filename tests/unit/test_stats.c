/* Unit tests for the statistics maths and the up/down state machine. */
#include <criterion/criterion.h>
#include <math.h>
#include "stats.h"

#define US 1000ULL
#define MS 1000000ULL

Test(stats, mean_min_max_mdev)
{
	struct stats s;

	stats_init(&s);
	for (uint64_t i = 1; i <= 4; i++) {
		stats_sent(&s);
		stats_received(&s, i * MS);
	}
	cr_assert_eq(s.run.rtt.min_us, 1000);
	cr_assert_eq(s.run.rtt.max_us, 4000);
	cr_assert_eq(stats_rtt_avg_ns(&s.run.rtt, s.run.c.received), 2500 * US);
	/* Population variance of 1,2,3,4 ms is 1.25 ms^2; sqrt = 1.1180340 ms. */
	cr_assert_eq(stats_rtt_mdev_ns(&s.run.rtt, s.run.c.received), 1118034);
	cr_assert_eq(s.run.c.sent, 4);
	cr_assert_eq(s.run.c.received, 4);
}

Test(stats, empty_and_single)
{
	struct stats s;

	stats_init(&s);
	cr_assert_eq(stats_rtt_avg_ns(&s.run.rtt, s.run.c.received), 0);
	cr_assert_eq(stats_rtt_mdev_ns(&s.run.rtt, s.run.c.received), 0);
	cr_assert_eq(stats_rtt_jitter_ns(&s.run.rtt), 0);
	cr_assert_eq(stats_loss_milli_pct(&s.run.c), 0);
	stats_received(&s, 777);
	cr_assert_eq(stats_rtt_mdev_ns(&s.run.rtt, s.run.c.received), 0);
	cr_assert_eq(stats_rtt_jitter_ns(&s.run.rtt), 0, "no difference yet");
	cr_assert_not(stats_rtt_has_jitter(&s.run.rtt));
	cr_assert_eq(s.run.rtt.min_us, 1, "777 ns rounds to 1 us");
}

Test(stats, constant_rtt_has_zero_mdev_and_jitter)
{
	struct stats s;

	stats_init(&s);
	for (int i = 0; i < 100; i++)
		stats_received(&s, 412 * US);
	cr_assert_eq(stats_rtt_mdev_ns(&s.run.rtt, s.run.c.received), 0);
	cr_assert_eq(stats_rtt_jitter_ns(&s.run.rtt), 0);
	cr_assert(stats_rtt_has_jitter(&s.run.rtt), "a zero jitter is still a jitter");
	cr_assert_eq(stats_rtt_avg_ns(&s.run.rtt, s.run.c.received), 412 * US);
}

Test(stats, jitter_by_hand)
{
	struct stats s;

	stats_init(&s);
	/* RTTs 10, 30, 20, 50 us: |D| = 20, 10, 30 us.
	 * J = 20 (seed); J = 20 + (10 - 20)/16 = 19.375;
	 * J = 19.375 + (30 - 19.375)/16 = 20.0390625 us. */
	stats_received(&s, 10 * US);
	stats_received(&s, 30 * US);
	cr_assert_eq(stats_rtt_jitter_ns(&s.run.rtt), 20000);
	stats_received(&s, 20 * US);
	cr_assert_eq(stats_rtt_jitter_ns(&s.run.rtt), 19375);
	stats_received(&s, 50 * US);
	cr_assert_eq(stats_rtt_jitter_ns(&s.run.rtt), 20039);
}

Test(stats, jitter_tracks_float_recurrence)
{
	struct stats s;
	double j = 0;
	uint64_t prev = 0, x = 12345;

	stats_init(&s);
	for (int i = 0; i < 5000; i++) {
		uint64_t rtt;

		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		rtt = 100 * US + (x >> 40) % (500 * US);
		stats_received(&s, rtt);
		if (i > 0) {
			double d = fabs((double)rtt - (double)prev);

			j = i == 1 ? d : j + (d - j) / 16.0;
		}
		prev = rtt;
	}
	cr_assert(fabs((double)stats_rtt_jitter_ns(&s.run.rtt) - j) <= 2.0,
		  "integer %llu vs float %.1f", (unsigned long long)stats_rtt_jitter_ns(&s.run.rtt), j);
}

Test(stats, mdev_matches_double_on_random_data)
{
	struct stats_rtt r;
	double sum = 0, sq = 0;
	uint64_t x = 99;
	int n = 10000;

	stats_rtt_init(&r);

	for (int i = 0; i < n; i++) {
		uint64_t v;

		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		v = 20 * MS + (x >> 33) % (5 * MS);
		stats_rtt_add(&r, v);
		sum += (double)v;
		sq += (double)v * (double)v;
	}
	{
		double mean = sum / n, sd = sqrt(sq / n - mean * mean);

		cr_assert(fabs((double)stats_rtt_mdev_ns(&r, (uint64_t)n) - sd) < 2.0, "%llu vs %.1f",
			  (unsigned long long)stats_rtt_mdev_ns(&r, (uint64_t)n), sd);
		cr_assert(fabs((double)stats_rtt_avg_ns(&r, (uint64_t)n) - mean) <= 0.5);
	}
}

Test(stats, mdev_of_huge_values_uses_fallback)
{
	struct stats_rtt r;

	/* RTTs near an hour: n * sum(x^2) overflows 128 bits only for huge n,
	 * so simulate it with a forged accumulator. */
	stats_rtt_init(&r);
	r.sum_ns = 10;
	r.sum_sq[0] = UINT64_MAX;
	r.sum_sq[1] = UINT64_MAX / 2;
	cr_assert_gt(stats_rtt_mdev_ns(&r, 4), 0);
	/* Two samples 1 h and 1 h + 2 s: mdev 1 s exactly. */
	stats_rtt_init(&r);
	stats_rtt_add(&r, 3600 * 1000 * MS);
	stats_rtt_add(&r, 3602 * 1000 * MS);
	cr_assert_eq(stats_rtt_mdev_ns(&r, 2), 1000 * MS);
}

Test(stats, loss_percent)
{
	struct stats_counts c = { .sent = 61, .received = 58, .lost = 2 };

	cr_assert_eq(stats_loss_milli_pct(&c), 3333, "2 of 60 resolved; 1 in flight");
	c.received = 0;
	cr_assert_eq(stats_loss_milli_pct(&c), 100000);
	c.lost = 0;
	cr_assert_eq(stats_loss_milli_pct(&c), 0);
}

Test(stats, late_and_duplicates_never_double_counted)
{
	struct stats s;

	stats_init(&s);
	stats_sent(&s);
	stats_received(&s, 1 * MS);
	stats_duplicate(&s);
	stats_duplicate(&s);
	stats_sent(&s);
	stats_lost(&s);
	stats_late(&s);
	cr_assert_eq(s.run.c.sent, 2);
	cr_assert_eq(s.run.c.received, 1);
	cr_assert_eq(s.run.c.lost, 1);
	cr_assert_eq(s.run.c.duplicates, 2);
	cr_assert_eq(s.run.c.late, 1);
	cr_assert_eq(s.run.rtt.sum_ns, 1 * MS, "only the in-time reply has an RTT");
	cr_assert_eq(stats_loss_milli_pct(&s.run.c), 50000);
}

Test(stats, send_failure_counts_sent_lost_error)
{
	struct stats s;

	stats_init(&s);
	stats_send_failed(&s);
	cr_assert_eq(s.run.c.sent, 1);
	cr_assert_eq(s.run.c.lost, 1);
	cr_assert_eq(s.run.c.errors, 1);
	cr_assert_eq(s.window.c.errors, 1);
}

Test(stats, window_reset_keeps_run)
{
	struct stats s;

	stats_init(&s);
	stats_sent(&s);
	stats_received(&s, 5 * MS);
	stats_sent(&s);
	stats_received(&s, 9 * MS);
	stats_window_reset(&s);
	cr_assert_eq(s.window.c.sent, 0);
	cr_assert_eq(s.window.c.received, 0);
	cr_assert_eq(s.window.rtt.sum_ns, 0);
	cr_assert_eq(s.window.rtt.min_us, UINT32_MAX);
	cr_assert_not(stats_rtt_has_jitter(&s.window.rtt));
	stats_sent(&s);
	stats_received(&s, 7 * MS);
	cr_assert_eq(s.window.c.received, 1);
	cr_assert_eq(s.window.rtt.min_us, 7000);
	cr_assert_eq(stats_rtt_jitter_ns(&s.window.rtt), 2 * MS,
		     "the window's first difference is against the last RTT before it");
	cr_assert_eq(s.run.c.received, 3);
	cr_assert_eq(s.run.rtt.min_us, 5000);
	cr_assert_eq(s.run.rtt.max_us, 9000);
	cr_assert_eq(stats_rtt_avg_ns(&s.run.rtt, s.run.c.received), 7 * MS);
}

Test(stats, min_max_kept_in_microseconds_rounded_as_logged)
{
	struct stats_rtt r;

	/* log_fixed(ns, 1 ms, 3 decimals) rounds half up to the microsecond;
	 * the stored value must be what it would have printed. */
	stats_rtt_init(&r);
	stats_rtt_add(&r, 1499);
	stats_rtt_add(&r, 2500);
	cr_assert_eq(r.min_us, 1);
	cr_assert_eq(r.max_us, 3);
	stats_rtt_add(&r, 499);
	cr_assert_eq(r.min_us, 0);
	/* An hour, the longest timeout, fits. */
	stats_rtt_add(&r, 3600ULL * 1000 * MS);
	cr_assert_eq(r.max_us, 3600000000u);
	cr_assert_eq(r.sum_ns, 1499 + 2500 + 499 + 3600ULL * 1000 * MS, "sums stay in ns");
}

Test(stats, window_widens_to_a_period_and_saturates)
{
	struct stats s;
	struct stats_period w;

	stats_init(&s);
	stats_sent(&s);
	stats_received(&s, 3 * MS);
	stats_sent(&s);
	stats_lost(&s);
	stats_window(&s, &w);
	cr_assert_eq(w.c.sent, 2);
	cr_assert_eq(w.c.received, 1);
	cr_assert_eq(w.c.lost, 1);
	cr_assert_eq(w.rtt.min_us, 3000);
	cr_assert_eq(stats_loss_milli_pct(&w.c), 50000);
	/* 32-bit window counters stop at the top instead of wrapping to 0. */
	s.window.c.duplicates = UINT32_MAX - 1;
	stats_duplicate(&s);
	stats_duplicate(&s);
	cr_assert_eq(s.window.c.duplicates, UINT32_MAX);
	cr_assert_eq(s.run.c.duplicates, 2, "the run counts in 64 bits");
}

/* ---- state machine ---- */

static const char *feed(struct health *h, const char *seq, uint32_t down_after,
			uint32_t up_after, char *out)
{
	/* seq: 'r' reply, 'l' loss.  out gets one char per step: '.' for no
	 * change, 'U' for a transition to up, 'D' to down. */
	size_t i = 0;

	for (; seq[i]; i++) {
		struct health_change c = health_update(h, seq[i] == 'r', down_after, up_after);

		out[i] = !c.changed ? '.' : c.to == HEALTH_UP ? 'U' : 'D';
		if (c.changed)
			cr_assert_neq(c.from, c.to);
	}
	out[i] = 0;
	return out;
}

Test(health, starts_unknown_and_goes_up)
{
	struct health h;
	char out[64];

	health_init(&h);
	cr_assert_eq(h.state, HEALTH_UNKNOWN);
	cr_assert_str_eq(feed(&h, "rrrr", 3, 2, out), ".U..");
	cr_assert_eq(h.state, HEALTH_UP);
}

Test(health, unknown_goes_down)
{
	struct health h;
	char out[64];

	health_init(&h);
	cr_assert_str_eq(feed(&h, "llll", 3, 2, out), "..D.");
	cr_assert_str_eq(health_state_name(h.state), "down");
}

Test(health, hysteresis)
{
	struct health h;
	char out[64];

	health_init(&h);
	/* Two losses then a reply resets the loss run: no flap. */
	cr_assert_str_eq(feed(&h, "rrllrllrll", 3, 2, out), ".U........");
	cr_assert_eq(h.state, HEALTH_UP);
	cr_assert_str_eq(feed(&h, "l", 3, 2, out), "D");
	/* One reply is not enough to come back with up_after = 2. */
	cr_assert_str_eq(feed(&h, "rlrlrr", 3, 2, out), ".....U");
	cr_assert_str_eq(feed(&h, "lllrrr", 3, 2, out), "..D.U.");
}

Test(health, thresholds_of_one)
{
	struct health h;
	char out[64];
	struct health_change c;

	health_init(&h);
	cr_assert_str_eq(feed(&h, "rlrl", 1, 1, out), "UDUD");
	health_init(&h);
	for (int i = 0; i < 999; i++)
		health_update(&h, false, 1000, 1);
	cr_assert_eq(h.state, HEALTH_UNKNOWN);
	c = health_update(&h, false, 1000, 1);
	cr_assert(c.changed);
	cr_assert_eq(c.run, 1000);
	cr_assert_eq(c.from, HEALTH_UNKNOWN);
	cr_assert_eq(c.to, HEALTH_DOWN);
}

Test(health, long_runs_saturate_without_flapping)
{
	struct health h;
	struct health_change ch;

	health_init(&h);
	for (int i = 0; i < 70000; i++) {
		ch = health_update(&h, false, 3, 2);
		cr_assert(i == 2 ? ch.changed : !ch.changed, "loss %d", i);
	}
	cr_assert_eq(h.lost_run, UINT16_MAX);
	cr_assert_eq(h.state, HEALTH_DOWN);
	ch = health_update(&h, true, 3, 2);
	cr_assert_not(ch.changed);
	ch = health_update(&h, true, 3, 2);
	cr_assert(ch.changed);
	cr_assert_eq(ch.to, HEALTH_UP);
	cr_assert_eq(ch.run, 2);
}
