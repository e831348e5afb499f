/* Unit tests for the history rounds, tiers and file format. */
#include <math.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "history.h"

#define MS 1000000ULL
#define S 1000000000ULL
#define LOST UINT64_MAX
#define T0 (1699999200ULL * S)   /* a wall clock aligned to an hour */

static struct history *h_new(uint64_t step)
{
	struct history *h = history_new(step);
	cr_assert_not_null(h);
	return h;
}

/* Decoded codes are within 1/4096 of what went in. */
static bool near(uint64_t got, uint64_t want)
{
	uint64_t d = got > want ? got - want : want - got;
	return d * 4096 <= want;
}

static uint64_t med_ns(const struct history_round *r)
{
	return history_rtt_decode(r->q[HISTORY_MEDIAN]);
}

Test(history, rtt_codes_are_monotonic_and_close)
{
	uint16_t prev = 0;
	for (uint64_t ns = 0; ns < 4000ULL * S; ns = ns < 5000 ? ns + 1 : ns + ns / 997) {
		uint16_t c = history_rtt_encode(ns);
		cr_assert_geq(c, prev, "code of %llu", (unsigned long long)ns);
		prev = c;
		uint64_t back = history_rtt_decode(c);
		uint64_t diff = back > ns ? back - ns : ns - back;
		if (ns < 2048)
			cr_assert_eq(back, ns);
		else
			cr_assert_leq(diff * 4096, ns, "%llu -> %llu", (unsigned long long)ns,
				      (unsigned long long)back);
	}
	cr_assert_eq(history_rtt_encode(UINT64_MAX - 1), 0xffff, "saturates");
}

Test(history, one_round_counts_and_quantiles)
{
	struct history *h = h_new(60 * S);
	/* 1..10 ms and two losses in the first minute. */
	for (uint64_t i = 1; i <= 10; i++)
		cr_assert(history_add(h, T0 + i * S, i * MS));
	history_add(h, T0 + 20 * S, LOST);
	history_add(h, T0 + 21 * S, LOST);
	struct history_round r;
	cr_assert_not(history_get(h, 0, T0 / (60 * S), &r), "still open");
	history_tick(h, T0 + 59 * S, false);
	cr_assert_not(history_get(h, 0, T0 / (60 * S), &r), "still open at 59 s");
	history_tick(h, T0 + 60 * S, false);
	cr_assert(history_get(h, 0, T0 / (60 * S), &r));
	cr_assert_eq(history_round_sent(&r), 12);
	cr_assert_eq(history_round_lost(&r), 2);
	cr_assert(near(history_rtt_decode(r.q[0]), 1 * MS), "min");
	cr_assert(near(history_rtt_decode(r.q[10]), 10 * MS), "max");
	/* Median of 1..10 is 5.5 ms; the code is within 0.025 %. */
	cr_assert_lt(llabs((long long)med_ns(&r) - (long long)(5500 * 1000)), 2000);
	/* The 10 % quantile interpolates 1.9 ms. */
	cr_assert_lt(llabs((long long)history_rtt_decode(r.q[1]) - 1900000), 1000);
	for (unsigned k = 1; k < HISTORY_Q; k++)
		cr_assert_geq(r.q[k], r.q[k - 1]);
	history_free(h);
}

Test(history, all_lost_round_has_no_rtts)
{
	struct history *h = h_new(S);
	for (int i = 0; i < 5; i++)
		history_add(h, T0 + (uint64_t)i * 100 * MS, LOST);
	history_tick(h, T0 + S, false);
	struct history_round r;
	cr_assert(history_get(h, 0, T0 / S, &r));
	cr_assert_eq(history_round_sent(&r), 5);
	cr_assert_eq(history_round_lost(&r), 5);
	for (unsigned k = 0; k < HISTORY_Q; k++)
		cr_assert_eq(r.q[k], 0);
	history_free(h);
}

Test(history, gaps_stay_empty)
{
	struct history *h = h_new(S);
	history_add(h, T0, 1 * MS);
	history_add(h, T0 + 10 * S, 2 * MS);
	history_tick(h, T0 + 11 * S, false);
	struct history_round r;
	cr_assert(history_get(h, 0, T0 / S, &r));
	for (uint64_t s = 1; s < 10; s++)
		cr_assert_not(history_get(h, 0, T0 / S + s, &r), "gap at +%llu", (unsigned long long)s);
	cr_assert(history_get(h, 0, T0 / S + 10, &r));
	cr_assert(near(med_ns(&r), 2 * MS));
	/* A gap longer than the whole tier clears it. */
	history_add(h, T0 + 1000 * S, 3 * MS);
	history_tick(h, T0 + 1001 * S, false);
	cr_assert_not(history_get(h, 0, T0 / S + 10, &r));
	cr_assert(history_get(h, 0, T0 / S + 1000, &r));
	history_free(h);
}

Test(history, tiers_consolidate_like_smokeping)
{
	struct history *h = h_new(S);
	/* Five 1-s rounds: medians 10, 10, 10, 30, 30 ms, each 10 sent; the
	 * last two lose 2 of 10. */
	uint64_t base = T0 / S / 5 * 5 * S;   /* a 5-s window boundary */
	for (int s = 0; s < 5; s++) {
		uint64_t rtt = s < 3 ? 10 * MS : 30 * MS;
		for (int i = 0; i < 10; i++) {
			uint64_t t = base + (uint64_t)s * S + (uint64_t)i * 50 * MS;
			history_add(h, t, (s >= 3 && i < 2) ? LOST : rtt + (uint64_t)i * 100000);
		}
	}
	history_tick(h, base + 5 * S, false);
	uint64_t w = base / S / 5;
	struct history_round r;
	/* The window is still tier 1's open one: made on the fly. */
	cr_assert_eq(h->tier[1].last, HISTORY_NONE);
	cr_assert(history_get(h, 1, w, &r));
	cr_assert_eq(history_round_sent(&r), 50);
	cr_assert_eq(history_round_lost(&r), 4);
	cr_assert(near(history_rtt_decode(r.q[0]), 10 * MS));
	cr_assert_lt(llabs((long long)history_rtt_decode(r.q[10]) - (long long)(30 * MS + 900000)), 10000);
	/* Weighted median: (3 x 10 x 10.45 + 2 x 8 x 30.55) / 46 ms. */
	double want = (30.0 * 10.45 + 16.0 * 30.55) / 46.0 * 1e6;
	cr_assert_lt(llabs((long long)med_ns(&r) - (long long)want), 10000, "median %llu",
		     (unsigned long long)med_ns(&r));
	/* Moving on rolls it up for real, with the same figures. */
	history_add(h, base + 5 * S, 1 * MS);
	history_tick(h, base + 6 * S, false);
	cr_assert_eq(h->tier[1].last, w);
	struct history_round r2;
	cr_assert(history_get(h, 1, w, &r2));
	cr_assert_eq(memcmp(&r, &r2, sizeof(r)), 0);
	/* And tier 2's open window (60 s) sees it through tier 1. */
	cr_assert(history_get(h, 2, base / S / 60, &r2) || base / S / 60 != (base + 5 * S) / S / 60);
	history_free(h);
}

Test(history, tier_two_after_an_hour_of_rounds)
{
	struct history *h = h_new(60 * S);
	for (uint64_t m = 0; m < 130; m++)
		history_add(h, T0 + m * 60 * S, (m % 60 + 1) * MS);
	history_tick(h, T0 + 130 * 60 * S, false);
	uint64_t hour0 = T0 / (3600 * S);
	struct history_round r;
	cr_assert_eq(h->tier[2].last, hour0 + 1, "two full hours rolled up");
	cr_assert(history_get(h, 2, hour0, &r));
	cr_assert_eq(history_round_sent(&r), 60);
	cr_assert(history_get(h, 2, hour0 + 2, &r), "the open hour, on the fly");
	cr_assert_eq(history_round_sent(&r), 10);
	history_free(h);
}

Test(history, many_replies_keep_exact_extremes)
{
	struct history *h = h_new(60 * S);
	for (uint64_t i = 0; i < 6000; i++)
		history_add(h, T0 + i * 10 * MS, (1 + i % 100) * MS);
	cr_assert_eq(h->n_samples, HISTORY_SAMPLES_MAX, "a reservoir, not every reply");
	history_tick(h, T0 + 60 * S, false);
	struct history_round r;
	cr_assert(history_get(h, 0, T0 / (60 * S), &r));
	cr_assert_eq(history_round_sent(&r), 6000);
	cr_assert(near(history_rtt_decode(r.q[0]), 1 * MS));
	cr_assert(near(history_rtt_decode(r.q[10]), 100 * MS));
	/* A sample of 256 out of a uniform 1..100 ms: median near 50 ms. */
	cr_assert_lt(llabs((long long)med_ns(&r) - 50 * (long long)MS), 10 * (long long)MS);
	history_free(h);
}

Test(history, memory_goal)
{
	struct history *h = h_new(60 * S);
	/* The worst case: a full sample buffer, both rings full. */
	for (uint64_t i = 0; i < 1000; i++)
		history_add(h, T0 + i * 10 * MS, MS);
	for (uint64_t i = 0; i < 2 * HISTORY_STATES; i++)
		history_state_add(h, T0 + i * S, 1, 2);
	cr_assert_eq(h->n_samples, HISTORY_SAMPLES_MAX);
	cr_assert_eq(sizeof(struct history_round), 30);
	cr_assert_leq(history_memory(h), 24 * 1024, "%zu bytes", history_memory(h));
	/* What include/history.h says it is (LP64). */
	if (sizeof(void *) == 8)
		cr_assert_eq(history_memory(h), 24256, "%zu bytes", history_memory(h));
	history_free(h);
}

Test(history, recent_outcomes_oldest_first)
{
	struct history *h = h_new(S);
	uint16_t out[HISTORY_RECENT];
	cr_assert_eq(history_recent(h, out), 0);
	cr_assert_eq(h->recent_wall_ns, 0);
	history_add(h, T0 + 1 * S, 1 * MS);
	history_add(h, T0 + 2 * S, LOST);
	history_add(h, T0 + 3 * S, 3 * MS);
	cr_assert_eq(history_recent(h, out), 3);
	cr_assert(near(history_rtt_decode(out[0]), 1 * MS));
	cr_assert_eq(out[1], HISTORY_RECENT_LOST);
	cr_assert(near(history_rtt_decode(out[2]), 3 * MS));
	cr_assert_eq(h->recent_wall_ns, T0 + 3 * S);
	/* A full ring forgets the oldest: after 40 more, the 32 newest. */
	for (uint64_t i = 0; i < 40; i++)
		history_add(h, T0 + (10 + i) * S, i % 5 == 4 ? LOST : (100 + i) * MS);
	cr_assert_eq(history_recent(h, out), HISTORY_RECENT);
	for (uint64_t k = 0; k < HISTORY_RECENT; k++) {
		uint64_t i = 40 - HISTORY_RECENT + k;
		if (i % 5 == 4)
			cr_assert_eq(out[k], HISTORY_RECENT_LOST, "entry %llu", (unsigned long long)k);
		else
			cr_assert(near(history_rtt_decode(out[k]), (100 + i) * MS),
				  "entry %llu", (unsigned long long)k);
	}
	cr_assert_eq(h->recent_wall_ns, T0 + 49 * S);
	/* One the rounds drop (the clock stepped back) is still shown. */
	cr_assert_not(history_add(h, T0, 7 * MS));
	cr_assert_eq(history_recent(h, out), HISTORY_RECENT);
	cr_assert(near(history_rtt_decode(out[HISTORY_RECENT - 1]), 7 * MS));
	cr_assert_eq(h->recent_wall_ns, T0);
	history_free(h);
}

Test(history, recent_never_mistakes_a_huge_rtt_for_a_loss)
{
	struct history *h = h_new(S);
	uint16_t out[HISTORY_RECENT];
	history_add(h, T0, UINT64_MAX - 1);
	cr_assert_eq(history_recent(h, out), 1);
	cr_assert_neq(out[0], HISTORY_RECENT_LOST);
	cr_assert_gt(history_rtt_decode(out[0]), 4000ULL * S);
	history_free(h);
}

Test(history, state_changes_oldest_first)
{
	struct history *h = h_new(S);
	struct history_state_change out[HISTORY_STATES];
	cr_assert_eq(history_states(h, out), 0);
	history_state_add(h, T0 + 1000, 0, 1);
	history_state_add(h, T0 + 2999, 1, 2);   /* kept to the microsecond */
	cr_assert_eq(history_states(h, out), 2);
	cr_assert_eq(out[0].wall_ns, T0 + 1000);
	cr_assert_eq(out[0].from, 0);
	cr_assert_eq(out[0].to, 1);
	cr_assert_eq(out[1].wall_ns, T0 + 2000);
	cr_assert_eq(out[1].from, 1);
	cr_assert_eq(out[1].to, 2);
	for (uint64_t i = 3; i <= 20; i++)
		history_state_add(h, T0 + i * 1000, (uint8_t)(i % 2 ? 2 : 1), (uint8_t)(i % 2 ? 1 : 2));
	cr_assert_eq(history_states(h, out), HISTORY_STATES);
	for (unsigned k = 0; k < HISTORY_STATES; k++) {
		uint64_t i = 20 - HISTORY_STATES + 1 + k;
		cr_assert_eq(out[k].wall_ns, T0 + i * 1000, "entry %u", k);
		cr_assert_eq(out[k].to, i % 2 ? 1 : 2, "entry %u", k);
	}
	/* Recording states does not touch the rounds. */
	cr_assert_eq(history_newest(h, 0), HISTORY_NONE);
	history_free(h);
}

Test(history, clock_going_back_drops_and_counts)
{
	struct history *h = h_new(S);
	history_add(h, T0 + 5 * S, MS);
	history_tick(h, T0 + 6 * S, false);
	cr_assert_not(history_add(h, T0 + 2 * S, MS));
	cr_assert_eq(h->dropped, 1);
	/* The same slot again (a restart within a step) is combined. */
	cr_assert(history_add(h, T0 + 5 * S + 500 * MS, 3 * MS));
	history_tick(h, T0 + 6 * S, false);
	struct history_round r;
	cr_assert(history_get(h, 0, T0 / S + 5, &r));
	cr_assert_eq(history_round_sent(&r), 2);
	cr_assert(near(history_rtt_decode(r.q[0]), MS));
	cr_assert(near(history_rtt_decode(r.q[10]), 3 * MS));
	history_free(h);
}

Test(history, bad_step_is_refused)
{
	cr_assert_null(history_new(S - 1));
	cr_assert_null(history_new(HISTORY_STEP_MAX_NS + 1));
}

/* ---- files */

static struct history *filled(void)
{
	struct history *h = h_new(S);
	for (uint64_t i = 0; i < 2000; i++)
		history_add(h, T0 + i * 250 * MS, i % 7 == 0 ? LOST : (10 + i % 13) * MS);
	history_tick(h, T0 + 2000 * S, true);
	return h;
}

static uint8_t *encode(const struct history *h, size_t *len)
{
	struct history_ident id = { .family = 4, .saved_wall_ns = T0 + 600 * S };
	strcpy(id.target, "gw");
	strcpy(id.host, "192.0.2.1");
	size_t cap = history_encoded_max(h, &id);
	uint8_t *buf = malloc(cap);
	cr_assert_not_null(buf);
	*len = history_encode(h, &id, buf, cap);
	cr_assert_gt(*len, 0);
	cr_assert_eq(history_encode(h, &id, buf, *len - 1), 0, "too small a buffer is refused");
	*len = history_encode(h, &id, buf, cap);
	return buf;
}

/* g holds the rounds h holds, tier by tier, slot by slot. */
static void assert_same_rounds(const struct history *h, const struct history *g)
{
	for (unsigned k = 0; k < HISTORY_TIERS; k++) {
		cr_assert_eq(g->tier[k].last, h->tier[k].last);
		uint64_t newest = history_newest(h, k);
		for (uint64_t s = newest - history_tier_len[k]; s <= newest; s++) {
			struct history_round a, b;
			bool ha = history_get(h, k, s, &a), hb = history_get(g, k, s, &b);
			cr_assert_eq(ha, hb, "tier %u slot %llu", k, (unsigned long long)s);
			if (ha)
				cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
		}
	}
}

Test(history, file_round_trip)
{
	struct history *h = filled();
	size_t len;
	uint8_t *buf = encode(h, &len);
	struct history *g;
	struct history_ident id;
	char err[128];
	cr_assert_eq(history_decode(buf, len, true, &g, &id, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(id.target, "gw");
	cr_assert_str_eq(id.host, "192.0.2.1");
	cr_assert_eq(id.family, 4);
	cr_assert_eq(id.saved_wall_ns, T0 + 600 * S);
	cr_assert_eq(g->step_ns, h->step_ns);
	/* The recent outcomes and state changes are not in the file. */
	uint16_t rec[HISTORY_RECENT];
	struct history_state_change sc[HISTORY_STATES];
	cr_assert_eq(history_recent(h, rec), HISTORY_RECENT);
	cr_assert_eq(history_recent(g, rec), 0);
	cr_assert_eq(history_states(g, sc), 0);
	cr_assert_eq(g->recent_wall_ns, 0);
	assert_same_rounds(h, g);
	free(buf);
	history_free(h);
	history_free(g);
}

Test(history, every_truncation_and_bit_flip_is_refused)
{
	struct history *h = filled();
	size_t len;
	uint8_t *buf = encode(h, &len);
	struct history *g;
	struct history_ident id;
	char err[128];
	for (size_t n = 0; n < len; n++) {
		cr_assert_eq(history_decode(buf, n, true, &g, &id, err, sizeof(err)), -1, "length %zu", n);
		cr_assert_null(g);
	}
	for (size_t i = 0; i < len; i += 7) {
		buf[i] ^= 0x10;
		cr_assert_eq(history_decode(buf, len, true, &g, &id, err, sizeof(err)), -1, "flip at %zu", i);
		buf[i] ^= 0x10;
	}
	memcpy(buf, "PNG\r\n\x1a\n\0", 8);
	cr_assert_eq(history_decode(buf, len, true, &g, &id, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "not a beacond history file");
	free(buf);
	history_free(h);
}

Test(history, structure_is_checked_without_the_crc)
{
	struct history *h = filled();
	size_t len;
	uint8_t *buf = encode(h, &len);
	struct history *g;
	struct history_ident id;
	char err[128];
	/* The first round's lost count above its sent count. */
	size_t hdr = 8 + 4 + 4 + 8 + 8 + 4 + 2 + 2 + 2 + 9;
	size_t first_round = hdr + 4 + 4 + 8 + 4;
	uint32_t big = 0xffffff;
	memcpy(buf + first_round + 8, &big, 4);
	cr_assert_eq(history_decode(buf, len, false, &g, &id, err, sizeof(err)), -1);
	cr_assert(strstr(err, "inconsistent"), "%s", err);
	free(buf);
	history_free(h);
}

/* Replies out of order, few (the insertion sort) and many (the radix
 * sort): the quantiles are those of the sorted values. */
Test(history, quantiles_of_shuffled_replies)
{
	static const uint32_t counts[] = { 7, 40, 211 };
	for (unsigned c = 0; c < 3; c++) {
		uint32_t n = counts[c];
		struct history *h = h_new(3600 * S);
		/* i * 97 mod n runs over 0..n-1 once (97 is prime, no count is
		 * a multiple of it): (1 + that) ms, shuffled. */
		for (uint32_t i = 0; i < n; i++)
			cr_assert(history_add(h, T0 + i * 10 * MS, (1 + (i * 97) % n) * MS));
		history_tick(h, T0 + 3600 * S, true);
		struct history_round r;
		cr_assert(history_get(h, 0, T0 / (3600 * S), &r));
		for (unsigned k = 0; k < HISTORY_Q; k++) {
			/* Rank (n - 1) * k / 10 of 1..n ms, interpolated. */
			double want = 1e6 * (1.0 + (double)(n - 1) * k / 10.0);
			double got = (double)history_rtt_decode(r.q[k]);
			cr_assert_lt(fabs(got - want), want * 0.001 + 1000, "n=%u q%u: %.0f vs %.0f",
				     n, k, got, want);
		}
		history_free(h);
	}
}

Test(history, a_copy_in_two_parts_is_whole_and_goes_on_alone)
{
	struct history *h = h_new(60 * S);
	for (unsigned i = 0; i < 4000; i++)   /* 66 min: all three tiers start */
		history_add(h, T0 + i * S, (1 + i % 7) * MS);
	void *head = aligned_alloc(64, history_head_size());
	void *rounds = aligned_alloc(64, history_rounds_size());
	cr_assert_null(history_init(head, rounds, 0), "a bad step");
	struct history *g = history_copy(head, rounds, h);
	for (unsigned k = 0; k < HISTORY_TIERS; k++)
		cr_assert_neq(history_newest(h, k), HISTORY_NONE, "tier %u", k);
	assert_same_rounds(h, g);
	history_free(h);
	cr_assert(history_add(g, T0 + 4000 * S, 5 * MS));
	free(rounds);
	free(head);
}
