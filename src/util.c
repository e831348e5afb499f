/* util: the out-of-line part of util.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util.h"

void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool inet_sa_same_addr(const union inet_sa *a, const union inet_sa *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
	return false;
}

void random_bytes(void *buf, size_t n)
{
	uint8_t *b = buf;

	if (getrandom(buf, n, GRND_NONBLOCK) == (ssize_t)n)
		return;
	for (size_t i = 0; i < n; i++) {
		/* splitmix64 over the clocks and pid: distinct per process and
		 * call, which is all a seed needs here. */
		uint64_t z = mono_ns() ^ wall_ns() ^ ((uint64_t)getpid() << 32) ^
			     (i * 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		b[i] = (uint8_t)(z ^ (z >> 31));
	}
}

uint64_t random_u64(void)
{
	uint64_t v;

	random_bytes(&v, sizeof v);
	return v;
}

uint64_t str_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;   /* FNV-1a 64-bit offset basis */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

uint32_t *str_index_slot(const struct str_index *ix, const char *name)
{
	size_t mask = ix->cap - 1, i = str_hash(name) & mask;

	for (;;) {
		uint32_t *slot = &ix->slot[i];

		if (*slot == 0 || strcmp(ix->name_of(ix->ctx, *slot - 1), name) == 0)
			return slot;
		i = (i + 1) & mask;
	}
}

int str_index_reserve(struct str_index *ix, size_t n)
{
	size_t cap = ix->cap ? ix->cap : 16, old_cap = ix->cap;
	uint32_t *old = ix->slot;

	while (cap < n * 2)
		cap *= 2;
	if (cap == old_cap)
		return 0;
	ix->slot = calloc(cap, sizeof *ix->slot);
	if (!ix->slot) {
		ix->slot = old;
		return -1;
	}
	ix->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			*str_index_slot(ix, ix->name_of(ix->ctx, old[i] - 1)) = old[i];
	free(old);
	return 0;
}

void str_index_free(struct str_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->cap = 0;
}
