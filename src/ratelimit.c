/*
 * ratelimit: per-source token buckets in a fixed-size table with exact LRU
 * eviction.  See include/ratelimit.h for the arithmetic.
 *
 * Layout: `entries` is an array of `capacity` slots filled in order and then
 * recycled; `heads` is a power-of-two array of chain heads (at least as many
 * as slots, so chains average under one entry).  Chains and the LRU list are
 * linked by 32-bit indices, not pointers, which keeps an entry at 48 bytes.
 * Both arrays are allocated in ratelimit_new() and never resized.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "ratelimit.h"
#include "util.h"

#define RL_NONE UINT32_MAX
/* 2^30 slots would already be 48 GiB; config allows at most 2^20. */
#define RL_MAX_CAPACITY (1u << 30)

struct rl_entry {
	uint8_t key[RATELIMIT_KEY_LEN];
	uint64_t credit;    /* token-nanoseconds, <= burst * NSEC_PER_SEC */
	uint64_t last_ns;   /* when credit was last brought up to date */
	uint32_t chain;     /* next entry in the same hash chain */
	uint32_t bucket;    /* index in heads, so eviction needs no rehash */
	uint32_t newer;     /* LRU neighbours */
	uint32_t older;
};

struct ratelimit {
	uint8_t seed[RATELIMIT_SEED_LEN];
	uint32_t rate;
	uint32_t burst;
	uint32_t capacity;
	uint32_t used;      /* slots handed out so far; == capacity once full */
	uint32_t mask;      /* heads has mask + 1 entries */
	uint32_t newest;
	uint32_t oldest;
	uint64_t evictions;
	uint32_t *heads;
	struct rl_entry *entries;
};

/* ---- SipHash-2-4 ------------------------------------------------------------ */

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#define SIPROUND(v0, v1, v2, v3)                                          \
	do {                                                              \
		v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32); \
		v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                      \
		v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                      \
		v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32); \
	} while (0)

uint64_t ratelimit_siphash(const uint8_t key[RATELIMIT_SEED_LEN], const void *data,
			   size_t n)
{
	const uint8_t *p = data;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k1 ^ 0x7465646279746573ULL;
	size_t whole = n & ~(size_t)7;

	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = load_le64(p + i);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	uint64_t b = (uint64_t)n << 56;
	for (size_t i = whole; i < n; i++)
		b |= (uint64_t)p[i] << (8 * (i - whole));
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- table ---------------------------------------------------------------- */

static uint32_t heads_for(uint32_t capacity)
{
	uint32_t n = 1;
	while (n < capacity)
		n <<= 1;
	return n;
}

size_t ratelimit_memory(uint32_t capacity)
{
	return sizeof(struct ratelimit) + (size_t)capacity * sizeof(struct rl_entry) +
	       (size_t)heads_for(capacity) * sizeof(uint32_t);
}

struct ratelimit *ratelimit_new(uint32_t capacity, uint32_t rate, uint32_t burst,
				const uint8_t seed[RATELIMIT_SEED_LEN])
{
	if (capacity == 0 || capacity > RL_MAX_CAPACITY) {
		errno = EINVAL;
		return NULL;
	}
	struct ratelimit *rl = calloc(1, sizeof *rl);
	if (!rl)
		return NULL;
	uint32_t nheads = heads_for(capacity);
	rl->heads = malloc((size_t)nheads * sizeof *rl->heads);
	/* calloc, not malloc: untouched slots stay unbacked zero pages, so a
	 * large table costs resident memory only as sources fill it. */
	rl->entries = calloc(capacity, sizeof *rl->entries);
	if (!rl->heads || !rl->entries) {
		ratelimit_free(rl);
		errno = ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < nheads; i++)
		rl->heads[i] = RL_NONE;
	memcpy(rl->seed, seed, RATELIMIT_SEED_LEN);
	rl->capacity = capacity;
	rl->mask = nheads - 1;
	rl->newest = rl->oldest = RL_NONE;
	ratelimit_set_rate(rl, rate, burst);
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->heads);
	free(rl->entries);
	free(rl);
}

void ratelimit_set_rate(struct ratelimit *rl, uint32_t rate, uint32_t burst)
{
	rl->rate = rate;
	/* A bucket that can hold no whole token would refuse everything. */
	rl->burst = burst ? burst : 1;
}

uint32_t ratelimit_capacity(const struct ratelimit *rl)
{
	return rl->capacity;
}

uint32_t ratelimit_count(const struct ratelimit *rl)
{
	return rl->used;
}

uint64_t ratelimit_evictions(const struct ratelimit *rl)
{
	return rl->evictions;
}

bool ratelimit_key(const struct sockaddr *sa, uint8_t key[RATELIMIT_KEY_LEN])
{
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
		memset(key, 0, 10);
		key[10] = 0xff;
		key[11] = 0xff;
		memcpy(key + 12, &in4->sin_addr, 4);
		return true;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(key, &in6->sin6_addr, RATELIMIT_KEY_LEN);
		return true;
	}
	default:
		return false;
	}
}

/* Credit of e at now_ns.  Exact: elapsed * rate is only computed when it
 * cannot exceed the room left in the bucket, so it cannot overflow (room <=
 * 2^32 * 10^9 < 2^63), and a bucket idle for any length of time, even a
 * wrapped-around eternity, is simply full. */
static uint64_t refill(const struct ratelimit *rl, const struct rl_entry *e,
		       uint64_t now_ns)
{
	uint64_t cap = (uint64_t)rl->burst * NSEC_PER_SEC;
	uint64_t credit = e->credit;

	if (credit >= cap)
		return cap;
	if (now_ns <= e->last_ns)   /* a clock that did not move adds nothing */
		return credit;
	uint64_t elapsed = now_ns - e->last_ns;
	uint64_t room = cap - credit;
	if (elapsed > room / rl->rate)
		return cap;
	/* elapsed <= room / rate, so elapsed * rate <= room. */
	return credit + elapsed * rl->rate;
}

static uint32_t lookup(const struct ratelimit *rl, uint32_t bucket,
		       const uint8_t key[RATELIMIT_KEY_LEN])
{
	for (uint32_t i = rl->heads[bucket]; i != RL_NONE; i = rl->entries[i].chain)
		if (memcmp(rl->entries[i].key, key, RATELIMIT_KEY_LEN) == 0)
			return i;
	return RL_NONE;
}

static void lru_unlink(struct ratelimit *rl, uint32_t i)
{
	struct rl_entry *e = &rl->entries[i];
	if (e->newer != RL_NONE)
		rl->entries[e->newer].older = e->older;
	else
		rl->newest = e->older;
	if (e->older != RL_NONE)
		rl->entries[e->older].newer = e->newer;
	else
		rl->oldest = e->newer;
}

static void lru_push_newest(struct ratelimit *rl, uint32_t i)
{
	struct rl_entry *e = &rl->entries[i];
	e->newer = RL_NONE;
	e->older = rl->newest;
	if (rl->newest != RL_NONE)
		rl->entries[rl->newest].newer = i;
	rl->newest = i;
	if (rl->oldest == RL_NONE)
		rl->oldest = i;
}

static void chain_unlink(struct ratelimit *rl, uint32_t i)
{
	uint32_t *link = &rl->heads[rl->entries[i].bucket];
	while (*link != i)
		link = &rl->entries[*link].chain;
	*link = rl->entries[i].chain;
}

/* A slot for a new source: a fresh one while the table fills, then the
 * least recently seen source's. */
static uint32_t take_slot(struct ratelimit *rl)
{
	if (rl->used < rl->capacity)
		return rl->used++;
	uint32_t i = rl->oldest;
	lru_unlink(rl, i);
	chain_unlink(rl, i);
	rl->evictions++;
	return i;
}

bool ratelimit_allow(struct ratelimit *rl, const uint8_t key[RATELIMIT_KEY_LEN],
		     uint64_t now_ns)
{
	if (rl->rate == 0)
		return true;

	uint32_t bucket = (uint32_t)ratelimit_siphash(rl->seed, key, RATELIMIT_KEY_LEN) &
			  rl->mask;
	uint32_t i = lookup(rl, bucket, key);
	struct rl_entry *e;

	if (i != RL_NONE) {
		e = &rl->entries[i];
		e->credit = refill(rl, e, now_ns);
		if (now_ns > e->last_ns)
			e->last_ns = now_ns;
		if (rl->newest != i) {
			lru_unlink(rl, i);
			lru_push_newest(rl, i);
		}
	} else {
		i = take_slot(rl);
		e = &rl->entries[i];
		memcpy(e->key, key, RATELIMIT_KEY_LEN);
		e->credit = (uint64_t)rl->burst * NSEC_PER_SEC;
		e->last_ns = now_ns;
		e->bucket = bucket;
		e->chain = rl->heads[bucket];
		rl->heads[bucket] = i;
		lru_push_newest(rl, i);
	}

	if (e->credit < NSEC_PER_SEC)
		return false;
	e->credit -= NSEC_PER_SEC;
	return true;
}

int64_t ratelimit_peek(const struct ratelimit *rl, const uint8_t key[RATELIMIT_KEY_LEN],
		       uint64_t now_ns)
{
	uint32_t bucket = (uint32_t)ratelimit_siphash(rl->seed, key, RATELIMIT_KEY_LEN) &
			  rl->mask;
	uint32_t i = lookup(rl, bucket, key);
	if (i == RL_NONE)
		return -1;
	if (rl->rate == 0)
		return (int64_t)(rl->entries[i].credit / NSEC_PER_SEC);
	return (int64_t)(refill(rl, &rl->entries[i], now_ns) / NSEC_PER_SEC);
}
