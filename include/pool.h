/*
 * pool: fixed-size blocks carved from large anonymous mappings, for the
 * one kind of object the daemon has ten thousand of and touches on every
 * probe outcome: a latency history.  From malloc, each history (24 KB)
 * sat in the small-object heap between the small allocations made with
 * it, so every probe's history entry and history struct were pages of
 * their own: 20 000 distinct pages touched a second at 10 000 targets,
 * which on this class of VM costs more in TLB misses than the history's
 * own work.  history_svc keeps the structs (832 bytes) in one pool and
 * their rounds (23 424 bytes) in another: structs side by side, and the
 * heap keeps the entries dense (bench/history, paired rounds on a 2-CPU
 * VM: CPU per probe with the history over without it 1.06 from malloc,
 * 1.03-1.04 with one pool, 1.03 with the two).
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
