/* Unit tests for the sequence map: matching states, reuse protection, wrap. */
#include <criterion/criterion.h>
#include <errno.h>
#include "seqmap.h"

#define MS 1000000ULL

static struct seqmap *m;

static void setup(void)
{
	m = seqmap_new(2000 * MS);
	cr_assert_not_null(m);
}

static void teardown(void)
{
	seqmap_free(m);
}

TestSuite(seqmap, .init = setup, .fini = teardown);

static uint16_t send_one(struct seqmap_chain *c, uint32_t probe, uint64_t now)
{
	int seq = seqmap_reserve(m, probe, now);

	cr_assert_geq(seq, 0);
	seqmap_commit(m, c, (uint16_t)seq, now);
	return (uint16_t)seq;
}

Test(seqmap, sequential_and_entry_contents)
{
	struct seqmap_chain c;
	struct seqmap_info e;

	seqmap_chain_init(&c);
	cr_assert_eq(send_one(&c, 5, 100), 0);
	cr_assert_eq(send_one(&c, 5, 200), 1);
	e = seqmap_get(m, 1);
	cr_assert_eq(e.probe, 5);
	cr_assert_eq(e.send_ns, 200);
	cr_assert_eq(e.state, SEQ_OUTSTANDING);
	cr_assert_eq(c.count, 2);
}

Test(seqmap, reply_then_duplicate)
{
	struct seqmap_chain c;
	uint16_t s;

	seqmap_chain_init(&c);
	s = send_one(&c, 1, 10);
	cr_assert_eq(seqmap_resolve(m, s, SEQ_ANSWERED), SEQ_OUTSTANDING, "first reply counts");
	cr_assert_eq(seqmap_resolve(m, s, SEQ_ANSWERED), SEQ_ANSWERED, "second is a duplicate");
	cr_assert_eq(seqmap_resolve(m, s, SEQ_ANSWERED), SEQ_ANSWERED, "and so is the third");
	/* The timeout pass finds it answered: not a loss. */
	cr_assert_eq(seqmap_pop(m, &c), SEQ_ANSWERED);
	cr_assert_eq(seqmap_front(&c), -1);
	cr_assert_eq(seqmap_resolve(m, s, SEQ_ANSWERED), SEQ_ANSWERED, "still a duplicate after pop");
}

Test(seqmap, timeout_then_late)
{
	struct seqmap_chain c;
	uint16_t s;

	seqmap_chain_init(&c);
	s = send_one(&c, 1, 10);
	cr_assert_eq(seqmap_pop(m, &c), SEQ_OUTSTANDING, "timed out: caller counts a loss");
	cr_assert_eq(seqmap_get(m, s).state, SEQ_LOST);
	cr_assert_eq(seqmap_resolve(m, s, SEQ_ANSWERED), SEQ_LOST, "a late reply");
	cr_assert_eq(seqmap_get(m, s).state, SEQ_LOST, "late replies never become answered");
	cr_assert_eq(seqmap_mark_late(m, s), SEQ_LOST);
	cr_assert_eq(seqmap_get(m, s).state, SEQ_LATE);
	/* A second late reply is a duplicate, not another late one. */
	cr_assert_eq(seqmap_resolve(m, s, SEQ_ANSWERED), SEQ_LATE);
	cr_assert_eq(seqmap_mark_late(m, s), SEQ_LATE);
	cr_assert_eq(seqmap_get(m, s).state, SEQ_LATE);
	cr_assert_str_eq(seqmap_state_name(SEQ_LATE), "late");
}

Test(seqmap, mark_late_only_from_lost)
{
	struct seqmap_chain c;
	uint16_t s;

	seqmap_chain_init(&c);
	s = send_one(&c, 1, 10);
	cr_assert_eq(seqmap_mark_late(m, s), SEQ_OUTSTANDING);
	cr_assert_eq(seqmap_get(m, s).state, SEQ_OUTSTANDING);
	seqmap_resolve(m, s, SEQ_ANSWERED);
	cr_assert_eq(seqmap_mark_late(m, s), SEQ_ANSWERED);
	cr_assert_eq(seqmap_get(m, s).state, SEQ_ANSWERED);
}

Test(seqmap, error_resolves_lost_and_pop_does_not_recount)
{
	struct seqmap_chain c;
	uint16_t s;

	seqmap_chain_init(&c);
	s = send_one(&c, 1, 10);
	cr_assert_eq(seqmap_resolve(m, s, SEQ_LOST), SEQ_OUTSTANDING);
	cr_assert_eq(seqmap_pop(m, &c), SEQ_LOST);
}

Test(seqmap, unknown_seq_is_free)
{
	cr_assert_eq(seqmap_get(m, 4711).state, SEQ_FREE);
	cr_assert_eq(seqmap_resolve(m, 4711, SEQ_ANSWERED), SEQ_FREE);
	cr_assert_eq(seqmap_get(m, 4711).state, SEQ_FREE);
}

Test(seqmap, release_frees_at_once)
{
	int a = seqmap_reserve(m, 1, 10), b;

	cr_assert_eq(seqmap_get(m, (uint16_t)a).state, SEQ_RESERVED);
	cr_assert_eq(seqmap_resolve(m, (uint16_t)a, SEQ_ANSWERED), SEQ_RESERVED,
		     "a reply to an unsent request does not count");
	seqmap_release(m, (uint16_t)a);
	cr_assert_eq(seqmap_get(m, (uint16_t)a).state, SEQ_FREE);
	b = seqmap_reserve(m, 1, 10);
	cr_assert_eq(b, a + 1, "the cursor moves on");
}

Test(seqmap, chains_are_fifo_per_probe)
{
	struct seqmap_chain a, b;
	uint16_t sa[5], sb[5];

	seqmap_chain_init(&a);
	seqmap_chain_init(&b);
	for (int i = 0; i < 5; i++) {
		sa[i] = send_one(&a, 1, 10 + i);
		sb[i] = send_one(&b, 2, 10 + i);
	}
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(seqmap_front(&a), sa[i]);
		cr_assert_eq(seqmap_get(m, (uint16_t)seqmap_front(&a)).probe, 1);
		seqmap_pop(m, &a);
	}
	cr_assert_eq(a.count, 0);
	cr_assert_eq(seqmap_front(&a), -1);
	cr_assert_eq(seqmap_pop(m, &a), SEQ_FREE, "pop of an empty chain is harmless");
	cr_assert_eq(seqmap_front(&b), sb[0]);
	cr_assert_eq(b.count, 5);
}

Test(seqmap, no_reuse_while_linked_or_within_hold)
{
	struct seqmap_chain c;
	uint64_t t0 = 1000 * MS;

	seqmap_chain_init(&c);
	/* Use every sequence number once. */
	for (uint32_t i = 0; i < SEQMAP_SIZE; i++)
		cr_assert_eq(send_one(&c, 1, t0), (uint16_t)i);
	errno = 0;
	cr_assert_eq(seqmap_reserve(m, 2, t0 + 3600000 * MS), -1, "all outstanding");
	cr_assert_eq(errno, EBUSY);

	/* Answered but still linked (timeout not yet passed): still busy. */
	seqmap_resolve(m, 0, SEQ_ANSWERED);
	cr_assert_eq(seqmap_reserve(m, 2, t0 + 3600000 * MS), -1);

	/* The timeout pass unlinks the first few; the hold still protects them. */
	for (int i = 0; i < 3; i++)
		seqmap_pop(m, &c);
	cr_assert_eq(seqmap_reserve(m, 2, t0 + 2000 * MS - 1), -1, "within hold");
	/* Wrap-around: the cursor went past 65535 back to 0. */
	cr_assert_eq(seqmap_reserve(m, 2, t0 + 2000 * MS), 0);
	cr_assert_eq(seqmap_reserve(m, 2, t0 + 2000 * MS), 1);
	cr_assert_eq(seqmap_reserve(m, 2, t0 + 2000 * MS), 2);
	cr_assert_eq(seqmap_reserve(m, 2, t0 + 2000 * MS), -1, "seq 3 is still linked");
}

Test(seqmap, reserve_skips_busy_slots)
{
	struct seqmap_chain a, b;

	seqmap_chain_init(&a);
	seqmap_chain_init(&b);
	/* seq 0 belongs to a probe still waiting; 1..65535 to one whose
	 * requests all timed out. */
	cr_assert_eq(send_one(&a, 1, 100), 0);
	for (uint32_t i = 1; i < SEQMAP_SIZE; i++)
		send_one(&b, 2, 100);
	while (seqmap_front(&b) >= 0)
		seqmap_pop(m, &b);
	/* The cursor wrapped to 0, which is linked: the next free one is 1. */
	cr_assert_eq(seqmap_reserve(m, 3, 100 + 2000 * MS), 1);
	cr_assert_eq(seqmap_get(m, 0).state, SEQ_OUTSTANDING);
	cr_assert_eq(seqmap_get(m, 1).probe, 3);
	/* A clock reading before the send time never makes an entry look old. */
	cr_assert_eq(seqmap_reserve(m, 3, 50), -1);
}

Test(seqmap, wraps_in_steady_state)
{
	struct seqmap_chain c;
	uint64_t now = 0;

	seqmap_chain_init(&c);
	seqmap_set_hold(m, 10 * MS);
	/* 200 000 sends, 1 ms apart, each popped after 5 ms: the seq space
	 * wraps three times and never runs out. */
	for (uint32_t i = 0; i < 200000; i++) {
		uint16_t s = send_one(&c, 1, now);

		cr_assert_eq(s, (uint16_t)i);
		while (seqmap_front(&c) >= 0 &&
		       seqmap_get(m, (uint16_t)seqmap_front(&c)).send_ns + 5 * MS <= now)
			seqmap_pop(m, &c);
		now += MS;
	}
	cr_assert_leq(c.count, 6);
}

static bool gone_odd(uint32_t probe, void *arg)
{
	(void)arg;
	return probe & 1;
}

Test(seqmap, forget_removed_probes)
{
	struct seqmap_chain c1, c2;
	uint16_t a, b, r;
	size_t n;

	seqmap_chain_init(&c1);
	seqmap_chain_init(&c2);
	a = send_one(&c1, 1, 10);
	b = send_one(&c2, 2, 10);
	r = (uint16_t)seqmap_reserve(m, 3, 10);
	n = seqmap_forget(m, gone_odd, NULL);
	cr_assert_eq(n, 1);
	cr_assert_eq(seqmap_get(m, a).state, SEQ_DEAD);
	cr_assert_eq(seqmap_resolve(m, a, SEQ_ANSWERED), SEQ_DEAD, "replies to removed probes are ignored");
	cr_assert_eq(seqmap_get(m, b).state, SEQ_OUTSTANDING);
	cr_assert_eq(seqmap_get(m, r).state, SEQ_RESERVED);
	cr_assert_str_eq(seqmap_state_name(SEQ_DEAD), "dead");
}

Test(seqmap, send_times_survive_48_bit_storage)
{
	struct seqmap_chain c;
	/* Twenty-odd days of uptime: well past the 48 bits an entry keeps. */
	const uint64_t base = 7 * (UINT64_C(1) << 48) + 12345;
	uint16_t a, b, d;

	seqmap_chain_init(&c);
	seqmap_set_hold(m, 0);
	a = send_one(&c, 1, base);
	b = send_one(&c, 1, base + (UINT64_C(1) << 32) + 5);  /* crosses the low word */
	cr_assert_eq(seqmap_get(m, a).send_ns, base);
	cr_assert_eq(seqmap_get(m, b).send_ns, base + (UINT64_C(1) << 32) + 5);
	/* An hour later (the longest timeout) the oldest is still exact. */
	d = send_one(&c, 1, base + 3600 * 1000 * MS);
	cr_assert_eq(seqmap_get(m, a).send_ns, base);
	cr_assert_eq(seqmap_get(m, d).send_ns, base + 3600 * 1000 * MS);
	/* A kernel transmit stamp moves a send time a little later. */
	seqmap_set_send_ns(m, d, base + 3600 * 1000 * MS + 2500);
	cr_assert_eq(seqmap_get(m, d).send_ns, base + 3600 * 1000 * MS + 2500);
	cr_assert_eq(seqmap_get(m, b).send_ns, base + (UINT64_C(1) << 32) + 5);
}

Test(seqmap, chain_head_may_be_seq_zero)
{
	struct seqmap_chain c;

	seqmap_chain_init(&c);
	cr_assert_eq(seqmap_front(&c), -1, "empty");
	cr_assert_eq(send_one(&c, 9, 10), 0);
	cr_assert_eq(seqmap_front(&c), 0, "seq 0 is a real head");
	cr_assert_eq(send_one(&c, 9, 20), 1);
	cr_assert_eq(seqmap_pop(m, &c), SEQ_OUTSTANDING);
	cr_assert_eq(seqmap_front(&c), 1);
	cr_assert_eq(seqmap_pop(m, &c), SEQ_OUTSTANDING);
	cr_assert_eq(seqmap_front(&c), -1);
	cr_assert_eq(seqmap_pop(m, &c), SEQ_FREE, "popping an empty chain is harmless");
}

Test(seqmap, largest_probe_id)
{
	struct seqmap_chain c;
	uint16_t s;

	seqmap_chain_init(&c);
	s = send_one(&c, SEQMAP_MAX_PROBES - 1, 10);
	cr_assert_eq(seqmap_get(m, s).probe, SEQMAP_MAX_PROBES - 1);
	cr_assert_eq(seqmap_get(m, s).state, SEQ_OUTSTANDING);
}
