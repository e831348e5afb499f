/* Unit tests for the per-source token-bucket table (src/ratelimit.c). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <string.h>

#include "ratelimit.h"
#include "util.h"

static const uint8_t seed[RATELIMIT_SEED_LEN] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
};

/* An IPv4-mapped key for 10.a.b.c, or any 32-bit index. */
static void key4(uint8_t key[RATELIMIT_KEY_LEN], uint32_t n)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(0x0a000000u | (n & 0xffffffu));
	cr_assert(ratelimit_key((struct sockaddr *)&sin, key));
}

static void key6(uint8_t key[RATELIMIT_KEY_LEN], const char *text)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	cr_assert_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
	cr_assert(ratelimit_key((struct sockaddr *)&sin6, key));
}

static unsigned allow_n(struct ratelimit *rl, const uint8_t *key, uint64_t now,
			unsigned tries)
{
	unsigned ok = 0;
	for (unsigned i = 0; i < tries; i++)
		ok += ratelimit_allow(rl, key, now);
	return ok;
}

Test(ratelimit, siphash_reference_vectors)
{
	/* The reference implementation's vectors: key 00..0f, message
	 * 00 01 .. (n-1) for n = 0 and n = 15. */
	uint8_t k[16], m[64];
	for (int i = 0; i < 16; i++)
		k[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		m[i] = (uint8_t)i;
	cr_assert_eq(ratelimit_siphash(k, m, 0), 0x726fdb47dd0e0e31ULL);
	cr_assert_eq(ratelimit_siphash(k, m, 15), 0xa129ca6149be45e5ULL);
	/* Different seeds must spread the same key differently. */
	cr_assert_neq(ratelimit_siphash(k, m, 16), ratelimit_siphash(seed, m, 16));
}

Test(ratelimit, new_source_gets_exactly_burst)
{
	struct ratelimit *rl = ratelimit_new(16, 10, 5, seed);
	uint8_t a[16];
	key4(a, 1);
	cr_assert_eq(allow_n(rl, a, 1000, 100), 5);
	cr_assert_eq(ratelimit_peek(rl, a, 1000), 0);
	ratelimit_free(rl);
}

Test(ratelimit, burst_zero_means_one)
{
	struct ratelimit *rl = ratelimit_new(16, 10, 0, seed);
	uint8_t a[16];
	key4(a, 1);
	cr_assert_eq(allow_n(rl, a, 0, 10), 1);
	ratelimit_free(rl);
}

Test(ratelimit, refill_is_exact_at_the_boundary)
{
	/* 3 tokens/s: the next token is due after 333 333 333.3 ns, i.e. not at
	 * 333 333 333 ns but at 333 333 334 ns. */
	struct ratelimit *rl = ratelimit_new(16, 3, 1, seed);
	uint8_t a[16];
	key4(a, 7);
	uint64_t t0 = 5 * NSEC_PER_SEC;
	cr_assert(ratelimit_allow(rl, a, t0));
	cr_assert_not(ratelimit_allow(rl, a, t0 + 333333333));
	cr_assert(ratelimit_allow(rl, a, t0 + 333333334));
	cr_assert_not(ratelimit_allow(rl, a, t0 + 333333334));
	ratelimit_free(rl);
}

Test(ratelimit, no_drift_over_many_small_steps)
{
	/* 7 tokens/s, burst 2, asked every 1..997 us for 100 simulated seconds.
	 * The bucket never reaches its cap (a token is taken as soon as one is
	 * there), so nothing is clamped away and the number allowed must be
	 * exactly floor((2 s + 7 * T) / 1 s) in token units. */
	struct ratelimit *rl = ratelimit_new(16, 7, 2, seed);
	uint8_t a[16];
	key4(a, 9);
	uint64_t t = 1, start = 1, allowed = 0, x = 12345;
	while (t - start < 100 * NSEC_PER_SEC) {
		allowed += ratelimit_allow(rl, a, t);
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		t += 1000 + (x >> 33) % 996000;
	}
	uint64_t last = t - (1000 + (x >> 33) % 996000);  /* time of the last call */
	uint64_t expect = (2 * NSEC_PER_SEC + 7 * (last - start)) / NSEC_PER_SEC;
	cr_assert_eq(allowed, expect, "allowed %llu expected %llu",
		     (unsigned long long)allowed, (unsigned long long)expect);
	ratelimit_free(rl);
}

Test(ratelimit, refill_caps_at_burst)
{
	struct ratelimit *rl = ratelimit_new(16, 100, 4, seed);
	uint8_t a[16];
	key4(a, 3);
	cr_assert_eq(allow_n(rl, a, 0, 4), 4);
	/* An hour later there are still only 4. */
	cr_assert_eq(ratelimit_peek(rl, a, 3600 * NSEC_PER_SEC), 4);
	cr_assert_eq(allow_n(rl, a, 3600 * NSEC_PER_SEC, 100), 4);
	ratelimit_free(rl);
}

Test(ratelimit, overflow_safe_for_huge_values)
{
	/* Largest rate and burst, an elapsed time close to 2^64 ns: a naive
	 * elapsed * rate would wrap to a small number. */
	struct ratelimit *rl = ratelimit_new(16, UINT32_MAX, UINT32_MAX, seed);
	uint8_t a[16];
	key4(a, 4);
	cr_assert(ratelimit_allow(rl, a, 1));
	cr_assert_eq(ratelimit_peek(rl, a, 1), (int64_t)UINT32_MAX - 1);
	cr_assert_eq(ratelimit_peek(rl, a, UINT64_MAX), (int64_t)UINT32_MAX);
	ratelimit_free(rl);

	/* Slow rate, long wait, elapsed * rate > 2^64 as well. */
	rl = ratelimit_new(16, 1000, 3, seed);
	cr_assert_eq(allow_n(rl, a, 10, 3), 3);
	cr_assert_eq(ratelimit_peek(rl, a, UINT64_MAX / 2), 3);
	cr_assert_eq(allow_n(rl, a, UINT64_MAX / 2, 5), 3);
	ratelimit_free(rl);
}

Test(ratelimit, clock_going_backwards_adds_nothing)
{
	struct ratelimit *rl = ratelimit_new(16, 1, 1, seed);
	uint8_t a[16];
	key4(a, 5);
	cr_assert(ratelimit_allow(rl, a, 10 * NSEC_PER_SEC));
	cr_assert_not(ratelimit_allow(rl, a, 5 * NSEC_PER_SEC));
	cr_assert_not(ratelimit_allow(rl, a, 10 * NSEC_PER_SEC + NSEC_PER_SEC - 1));
	cr_assert(ratelimit_allow(rl, a, 11 * NSEC_PER_SEC));
	ratelimit_free(rl);
}

Test(ratelimit, sources_are_isolated)
{
	struct ratelimit *rl = ratelimit_new(64, 10, 3, seed);
	uint8_t a[16], b[16];
	key4(a, 100);
	key4(b, 101);
	cr_assert_eq(allow_n(rl, a, 0, 50), 3);
	cr_assert_eq(allow_n(rl, b, 0, 50), 3);
	cr_assert_not(ratelimit_allow(rl, a, 0));
	/* 100 ms later each has earned exactly one more. */
	cr_assert_eq(allow_n(rl, a, 100 * NSEC_PER_MSEC, 5), 1);
	cr_assert_eq(allow_n(rl, b, 100 * NSEC_PER_MSEC, 5), 1);
	cr_assert_eq(ratelimit_count(rl), 2);
	ratelimit_free(rl);
}

Test(ratelimit, full_table_evicts_least_recently_seen)
{
	struct ratelimit *rl = ratelimit_new(4, 1, 2, seed);
	uint8_t k[6][16];
	for (int i = 0; i < 6; i++)
		key4(k[i], (uint32_t)(200 + i));

	for (int i = 0; i < 4; i++)
		cr_assert(ratelimit_allow(rl, k[i], (uint64_t)i));
	cr_assert_eq(ratelimit_count(rl), 4);
	cr_assert_eq(ratelimit_evictions(rl), 0);
	/* k0 is used again, so k1 is now the least recently seen. */
	cr_assert(ratelimit_allow(rl, k[0], 10));
	cr_assert_eq(ratelimit_peek(rl, k[0], 10), 0);
	cr_assert(ratelimit_allow(rl, k[4], 11));
	cr_assert_eq(ratelimit_count(rl), 4);
	cr_assert_eq(ratelimit_evictions(rl), 1);
	cr_assert_eq(ratelimit_peek(rl, k[1], 11), -1, "k1 should have been evicted");
	cr_assert_eq(ratelimit_peek(rl, k[0], 11), 0, "k0 must keep its (empty) bucket");
	cr_assert_eq(ratelimit_peek(rl, k[2], 11), 1);
	/* Next to go is k2, then k3. */
	cr_assert(ratelimit_allow(rl, k[5], 12));
	cr_assert_eq(ratelimit_peek(rl, k[2], 12), -1);
	cr_assert_eq(ratelimit_peek(rl, k[3], 12), 1);
	cr_assert_eq(ratelimit_evictions(rl), 2);
	/* An evicted source comes back with a full bucket. */
	cr_assert_eq(allow_n(rl, k[1], 13, 10), 2);
	ratelimit_free(rl);
}

Test(ratelimit, flood_of_distinct_sources_stays_bounded)
{
	const uint32_t cap = 64;
	struct ratelimit *rl = ratelimit_new(cap, 5, 1, seed);
	uint8_t victim[16], k[16];
	key4(victim, 0xfffffe);
	cr_assert(ratelimit_allow(rl, victim, 0));
	cr_assert_not(ratelimit_allow(rl, victim, 0));
	for (uint32_t i = 0; i < 100000; i++) {
		key4(k, i);
		cr_assert(ratelimit_allow(rl, k, 1 + i), "new source %u refused", i);
		cr_assert_leq(ratelimit_count(rl), cap);
	}
	cr_assert_eq(ratelimit_count(rl), cap);
	cr_assert_eq(ratelimit_evictions(rl), 100000 + 1 - cap);
	/* The latest cap sources are all still tracked, older ones are not. */
	for (uint32_t i = 100000 - cap; i < 100000; i++) {
		key4(k, i);
		cr_assert_eq(ratelimit_peek(rl, k, 100001), 0, "source %u lost", i);
	}
	key4(k, 100000 - cap - 1);
	cr_assert_eq(ratelimit_peek(rl, k, 100001), -1);
	cr_assert_eq(ratelimit_peek(rl, victim, 100001), -1);
	/* The memory is what the capacity says, however many sources came. */
	cr_assert_lt(ratelimit_memory(cap), 64 * 64 + 4096);
	ratelimit_free(rl);
}

Test(ratelimit, ipv6_keys)
{
	struct ratelimit *rl = ratelimit_new(16, 1, 1, seed);
	uint8_t a[16], b[16], m[16], v4[16];
	key6(a, "2001:db8::1");
	key6(b, "2001:db8::2");
	cr_assert(ratelimit_allow(rl, a, 0));
	cr_assert_not(ratelimit_allow(rl, a, 0));
	cr_assert(ratelimit_allow(rl, b, 0), "a different IPv6 source has its own bucket");

	/* 10.0.0.42 and ::ffff:10.0.0.42 are the same source. */
	key6(m, "::ffff:10.0.0.42");
	key4(v4, 42);
	cr_assert_eq(memcmp(m, v4, 16), 0);
	cr_assert(ratelimit_allow(rl, v4, 0));
	cr_assert_not(ratelimit_allow(rl, m, 0));

	struct sockaddr_un_like { sa_family_t family; char path[14]; } un = { .family = AF_UNIX };
	cr_assert_not(ratelimit_key((struct sockaddr *)&un, m));
	ratelimit_free(rl);
}

Test(ratelimit, rate_zero_is_off)
{
	struct ratelimit *rl = ratelimit_new(8, 0, 1, seed);
	uint8_t a[16];
	key4(a, 1);
	cr_assert_eq(allow_n(rl, a, 0, 100000), 100000);
	cr_assert_eq(ratelimit_count(rl), 0, "rate 0 must not track sources");
	ratelimit_free(rl);
}

Test(ratelimit, set_rate_keeps_state_and_clamps_burst)
{
	struct ratelimit *rl = ratelimit_new(8, 10, 10, seed);
	uint8_t a[16];
	key4(a, 1);
	cr_assert_eq(allow_n(rl, a, 0, 2), 2);   /* 8 left */
	ratelimit_set_rate(rl, 10, 3);
	cr_assert_eq(ratelimit_peek(rl, a, 0), 3);
	cr_assert_eq(allow_n(rl, a, 0, 10), 3);
	ratelimit_set_rate(rl, 0, 3);
	cr_assert_eq(allow_n(rl, a, 0, 10), 10);
	ratelimit_set_rate(rl, 1, 3);
	cr_assert_not(ratelimit_allow(rl, a, 0), "state survives turning limiting off and on");
	ratelimit_free(rl);
}

Test(ratelimit, rejects_bad_capacity)
{
	cr_assert_null(ratelimit_new(0, 1, 1, seed));
	cr_assert_null(ratelimit_new(UINT32_MAX, 1, 1, seed));
}
