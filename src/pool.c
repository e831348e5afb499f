/* pool: fixed-size blocks in anonymous mappings (see include/pool.h). */
#include "pool.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

struct pool_chunk {
	struct pool_chunk *next;
	void *base;
	size_t len;
};

void pool_init(struct pool *p, size_t size)
{
	*p = (struct pool){ .size = (size + 63) & ~(size_t)63 };
	if (p->size < sizeof(void *))
		p->size = 64;
}

/* A new chunk: its blocks go on the free list, the first one last so that
 * blocks are handed out in address order. */
static int pool_grow(struct pool *p)
{
	struct pool_chunk *c = malloc(sizeof(*c));
	if (!c)
		return -1;
	c->len = p->size * POOL_CHUNK_BLOCKS;
	c->base = mmap(NULL, c->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->base == MAP_FAILED) {
		free(c);
		errno = ENOMEM;
		return -1;
	}
	c->next = p->chunks;
	p->chunks = c;
	for (size_t i = POOL_CHUNK_BLOCKS; i-- > 0;) {
		void **b = (void **)(void *)((char *)c->base + i * p->size);
		*b = p->free;
		p->free = b;
	}
	p->n_blocks += POOL_CHUNK_BLOCKS;
	return 0;
}

void *pool_get(struct pool *p)
{
	if (!p->free && pool_grow(p) < 0)
		return NULL;
	void **b = p->free;
	p->free = *b;
	p->n_used++;
	return b;
}

void pool_put(struct pool *p, void *block)
{
	if (!block)
		return;
	/* Give back the whole pages inside the block; the first one keeps
	 * the link. */
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)block + sizeof(void *) + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)block + p->size) & ~(page - 1);
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
	void **b = block;
	*b = p->free;
	p->free = b;
	p->n_used--;
}

void pool_fini(struct pool *p)
{
	for (struct pool_chunk *c = p->chunks, *next; c; c = next) {
		next = c->next;
		munmap(c->base, c->len);
		free(c);
	}
	*p = (struct pool){ .size = p->size };
}
