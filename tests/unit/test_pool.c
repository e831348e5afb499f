/* Unit tests for the fixed-size block pool (src/pool.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"

#define BLOCK 24256u   /* a history's size: blocks that straddle pages */

Test(pool, blocks_are_aligned_distinct_and_side_by_side)
{
	struct pool p;
	pool_init(&p, BLOCK - 5);
	cr_assert_eq(p.size, BLOCK, "rounded up to 64");
	enum { N = 3 * POOL_CHUNK_BLOCKS + 1 };   /* four chunks */
	static char *b[N];
	for (unsigned i = 0; i < N; i++) {
		b[i] = pool_get(&p);
		cr_assert_not_null(b[i]);
		cr_assert_eq((uintptr_t)b[i] % 64, 0);
		memset(b[i], (int)(i & 0xff), BLOCK);   /* all of it is ours */
	}
	cr_assert_eq(p.n_used, N);
	cr_assert_eq(p.n_blocks, 4 * POOL_CHUNK_BLOCKS);
	/* Within a chunk, in address order with no gap. */
	for (unsigned i = 1; i < POOL_CHUNK_BLOCKS; i++)
		cr_assert_eq(b[i], b[i - 1] + BLOCK, "block %u", i);
	for (unsigned i = 0; i < N; i++)
		for (unsigned j = 0; j < BLOCK; j += 997)
			cr_assert_eq((unsigned char)b[i][j], i & 0xff, "block %u byte %u", i, j);
	pool_fini(&p);
	cr_assert_eq(p.n_blocks, 0);
}

Test(pool, a_freed_block_is_reused_and_its_pages_given_back)
{
	struct pool p;
	pool_init(&p, BLOCK);
	char *a = pool_get(&p), *b = pool_get(&p);
	memset(a, 0x5a, BLOCK);
	memset(b, 0x5a, BLOCK);
	pool_put(&p, a);
	cr_assert_eq(p.n_used, 1);
	char *c = pool_get(&p);
	cr_assert_eq(c, a, "the last freed block comes back first");
	/* The whole pages inside it went back to the kernel: they read zero
	 * (anonymous memory after MADV_DONTNEED); the neighbour is intact. */
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)c + sizeof(void *) + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)c + BLOCK) & ~(page - 1);
	cr_assert_gt(hi, lo);
	for (uintptr_t q = lo; q < hi; q += 512)
		cr_assert_eq(*(unsigned char *)q, 0);
	for (unsigned j = 0; j < BLOCK; j += 512)
		cr_assert_eq((unsigned char)b[j], 0x5a);
	pool_put(&p, NULL);   /* a no-op, like free(NULL) */
	cr_assert_eq(p.n_used, 2);
	pool_fini(&p);
}
