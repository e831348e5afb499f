/*
 * pool: fixed-size blocks carved from large anonymous mappings, for the
 * one kind of object the daemon has ten thousand of and touches on every
 * probe outcome: a latency history (24 KB each).  From malloc, each such
 * block sat in the small-object heap between the small allocations made
 * with it, so every probe's history entry and history head were a page of
 * their own: two TLB entries an outcome, 20 000 distinct pages a second at
 * 10 000 targets.  Here the blocks lie side by side in chunks of
 * POOL_CHUNK_BLOCKS, and the heap keeps the entries dense
 * (bench/history, paired rounds on a 2-CPU VM: CPU per probe with the
 * history over without it 1.06 before, 1.04 with the pool).
 *
 * A free block goes on a LIFO list, and the whole pages inside it are
 * given back to the kernel (MADV_DONTNEED), so removing targets returns
 * their memory; the chunks themselves are unmapped only by pool_fini.
 * Blocks are 64-byte aligned.  Single-threaded, like the loop.
 */
#ifndef BEACOND_POOL_H
#define BEACOND_POOL_H

#include <stddef.h>

#define POOL_CHUNK_BLOCKS 64

struct pool_chunk;

struct pool {
	size_t size;                 /* block size, a multiple of 64 */
	void *free;                  /* free blocks, linked through their first bytes */
	struct pool_chunk *chunks;
	size_t n_blocks, n_used;     /* carved so far, handed out now */
};

/* A pool of blocks of size bytes (rounded up to 64). */
void pool_init(struct pool *p, size_t size);
/* A block (contents undefined), or NULL with errno ENOMEM. */
void *pool_get(struct pool *p);
void pool_put(struct pool *p, void *block);
/* Unmap every chunk: every block is gone, used or not. */
void pool_fini(struct pool *p);

#endif
