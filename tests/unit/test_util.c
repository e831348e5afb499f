/*
 * Unit tests for util: the string index (the one every name lookup uses),
 * FNV-1a against its published test vectors, the random source.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* FNV-1a 64 test vectors (the FNV reference, Fowler/Noll/Vo). */
Test(util, str_hash_is_fnv1a_64)
{
	cr_assert_eq(str_hash(""), 0xcbf29ce484222325ULL);
	cr_assert_eq(str_hash("a"), 0xaf63dc4c8601ec8cULL);
	cr_assert_eq(str_hash("foobar"), 0x85944171f73967e8ULL);
}

#define N 5000
static char names[N][16];

static const char *key(const void *ctx, uint32_t pos)
{
	const char (*v)[16] = ctx;
	return v[pos];
}

Test(util, str_index_grows_and_finds_every_name)
{
	struct str_index ix;

	str_index_init(&ix, key, names);
	cr_assert_eq(str_index_find(&ix, "x"), -1, "empty index found a name");
	for (uint32_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "t%u", i * 7919u);
		/* Growing one by one rehashes many times on the way. */
		cr_assert_eq(str_index_reserve(&ix, i + 1), 0);
		cr_assert_geq(ix.cap, 2 * (size_t)(i + 1));
		uint32_t *slot = str_index_slot(&ix, names[i]);
		cr_assert_eq(*slot, 0, "%s already present", names[i]);
		*slot = i + 1;
	}
	for (uint32_t i = 0; i < N; i++)
		cr_assert_eq(str_index_find(&ix, names[i]), (int64_t)i, "%s", names[i]);
	cr_assert_eq(str_index_find(&ix, "t1"), -1);
	cr_assert_eq(str_index_find(&ix, ""), -1);
	/* A duplicate lands on the slot of the first. */
	cr_assert_eq(*str_index_slot(&ix, "t0"), 1);
	str_index_free(&ix);
	cr_assert_eq(str_index_find(&ix, "t0"), -1);
}

Test(util, random_fill_fills_and_differs)
{
	uint8_t a[64] = { 0 }, b[64] = { 0 }, zero[64] = { 0 };

	random_bytes(a, sizeof a);
	random_bytes(b, sizeof b);
	/* 2^-512 chance each of a false failure. */
	cr_assert(memcmp(a, zero, sizeof a) != 0);
	cr_assert(memcmp(a, b, sizeof a) != 0);
	cr_assert_neq(random_u64(), random_u64());
}

#include "tcp.h"
#include "udp.h"

/* The counter tables cover every field of their struct, once, in order,
 * and counter_get() reads the field it names. */
static void check_table(const struct counter_desc *d, size_t n, size_t struct_size)
{
	cr_assert_eq(n * sizeof(uint64_t), struct_size, "table and struct disagree");
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(d[i].offset, i * sizeof(uint64_t), "%s", d[i].name);
		cr_assert(d[i].name[0] && d[i].help[0]);
	}
}

Test(util, counter_tables)
{
	check_table(tcp_counter_descs, tcp_counter_count, sizeof(struct tcp_counters));
	check_table(udp_counter_descs, udp_counter_count, sizeof(struct udp_counters));
	struct tcp_counters c = { .refused_acl = 7, .backpressure = 9 };
	for (size_t i = 0; i < tcp_counter_count; i++) {
		uint64_t want = !strcmp(tcp_counter_descs[i].name, "refused_acl") ? 7
			: !strcmp(tcp_counter_descs[i].name, "backpressure") ? 9 : 0;
		cr_assert_eq(counter_get(&c, &tcp_counter_descs[i]), want, "%s",
			     tcp_counter_descs[i].name);
	}
}
