/* util: the out-of-line part of util.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

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

/* ---- the string index ---- */

uint64_t str_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;   /* FNV-1a 64-bit offset basis */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

void str_index_init(struct str_index *ix, const char *(*name_of)(const void *ctx, uint32_t pos),
		    const void *ctx)
{
	ix->slot = NULL;
	ix->cap = 0;
	ix->name_of = name_of;
	ix->ctx = ctx;
}

static uint32_t *probe_slot(uint32_t *slot, size_t cap, const char *name,
			    const struct str_index *ix)
{
	size_t mask = cap - 1, i = (size_t)str_hash(name) & mask;

	while (slot[i] != 0 && strcmp(ix->name_of(ix->ctx, slot[i] - 1), name) != 0)
		i = (i + 1) & mask;
	return &slot[i];
}

int str_index_reserve(struct str_index *ix, size_t n)
{
	size_t cap = ix->cap ? ix->cap : 16;
	uint32_t *slot;

	if (n > SIZE_MAX / 4 || n >= UINT32_MAX) {
		errno = ENOMEM;
		return -1;
	}
	while (cap < n * 2)
		cap *= 2;
	if (cap == ix->cap)
		return 0;
	slot = calloc(cap, sizeof *slot);
	if (slot == NULL)
		return -1;
	for (size_t i = 0; i < ix->cap; i++)
		if (ix->slot[i] != 0)
			*probe_slot(slot, cap, ix->name_of(ix->ctx, ix->slot[i] - 1), ix) =
				ix->slot[i];
	free(ix->slot);
	ix->slot = slot;
	ix->cap = cap;
	return 0;
}

uint32_t *str_index_slot(const struct str_index *ix, const char *name)
{
	return probe_slot(ix->slot, ix->cap, name, ix);
}

int64_t str_index_find(const struct str_index *ix, const char *name)
{
	if (ix->cap == 0)
		return -1;
	uint32_t v = *str_index_slot(ix, name);
	return v ? (int64_t)v - 1 : -1;
}

void str_index_free(struct str_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->cap = 0;
}

/* ---- randomness ---- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void random_bytes(void *buf, size_t n)
{
	static uint64_t state;
	unsigned char *p = buf;
	ssize_t got = getrandom(buf, n, GRND_NONBLOCK);

	if (got == (ssize_t)n)
		return;
	if (state == 0)
		state = mono_ns() ^ wall_ns() ^ ((uint64_t)getpid() << 32) ^
			(uint64_t)(uintptr_t)&state;
	for (size_t i = got > 0 ? (size_t)got : 0; i < n; i++)
		p[i] = (unsigned char)splitmix64(&state);
}

uint64_t random_u64(void)
{
	uint64_t v;

	random_bytes(&v, sizeof v);
	return v;
}
