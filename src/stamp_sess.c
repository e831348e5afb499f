/*
 * stamp_sess: the fixed-size session table (see stamp_sess.h).
 *
 * Entries live in one array with an LRU list threaded through them (most
 * recent at the head) and hash chains through a bucket array of the next
 * power of two above the capacity.  Every operation is O(1) but for the
 * chain walk, whose length the keyed hash keeps short.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "stamp_sess.h"

#define NONE UINT32_MAX

struct stamp_sessions {
	struct stamp_session *v;
	uint32_t *buckets;
	uint32_t capacity, nbuckets;   /* nbuckets: a power of two */
	uint32_t used;                 /* entries handed out so far (free: the rest) */
	uint32_t head, tail;           /* LRU */
	uint64_t idle_ns;
	uint8_t seed[STAMP_SESS_SEED_LEN];
	struct stamp_sess_counters c;
};

static uint32_t buckets_for(uint32_t capacity)
{
	uint32_t n = 1;
	while (n < capacity && n < (1u << 30))
		n <<= 1;
	return n;
}

size_t stamp_sessions_memory(uint32_t capacity)
{
	return sizeof(struct stamp_sessions) + (size_t)capacity * sizeof(struct stamp_session) +
	       (size_t)buckets_for(capacity) * sizeof(uint32_t);
}

struct stamp_sessions *stamp_sessions_new(uint32_t capacity, uint64_t idle_ns,
					  const uint8_t seed[STAMP_SESS_SEED_LEN])
{
	if (capacity == 0) {
		errno = EINVAL;
		return NULL;
	}
	struct stamp_sessions *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->capacity = capacity;
	t->nbuckets = buckets_for(capacity);
	t->v = calloc(capacity, sizeof *t->v);
	t->buckets = malloc((size_t)t->nbuckets * sizeof *t->buckets);
	if (!t->v || !t->buckets) {
		stamp_sessions_free(t);
		errno = ENOMEM;
		return NULL;
	}
	memset(t->buckets, 0xff, (size_t)t->nbuckets * sizeof *t->buckets);
	t->head = t->tail = NONE;
	t->idle_ns = idle_ns;
	memcpy(t->seed, seed, STAMP_SESS_SEED_LEN);
	return t;
}

void stamp_sessions_free(struct stamp_sessions *t)
{
	if (!t)
		return;
	free(t->v);
	free(t->buckets);
	free(t);
}

void stamp_sessions_set_idle(struct stamp_sessions *t, uint64_t idle_ns)
{
	t->idle_ns = idle_ns;
}

uint32_t stamp_sessions_capacity(const struct stamp_sessions *t)
{
	return t->capacity;
}

const struct stamp_sess_counters *stamp_sessions_counters(const struct stamp_sessions *t)
{
	return &t->c;
}

static uint32_t bucket_of(const struct stamp_sessions *t, const uint8_t *key)
{
	return (uint32_t)ratelimit_siphash(t->seed, key, STAMP_SESS_KEY_LEN) & (t->nbuckets - 1);
}

static void lru_unlink(struct stamp_sessions *t, uint32_t i)
{
	struct stamp_session *s = &t->v[i];
	if (s->prev != NONE)
		t->v[s->prev].next = s->next;
	else
		t->head = s->next;
	if (s->next != NONE)
		t->v[s->next].prev = s->prev;
	else
		t->tail = s->prev;
	s->prev = s->next = NONE;
}

static void lru_push(struct stamp_sessions *t, uint32_t i)
{
	struct stamp_session *s = &t->v[i];
	s->prev = NONE;
	s->next = t->head;
	if (t->head != NONE)
		t->v[t->head].prev = i;
	t->head = i;
	if (t->tail == NONE)
		t->tail = i;
}

static void hash_unlink(struct stamp_sessions *t, uint32_t i)
{
	uint32_t *p = &t->buckets[bucket_of(t, t->v[i].key)];
	while (*p != NONE && *p != i)
		p = &t->v[*p].hnext;
	if (*p == i)
		*p = t->v[i].hnext;
}

static bool idle(const struct stamp_sessions *t, const struct stamp_session *s, uint64_t now)
{
	return now >= s->last_ns && now - s->last_ns >= t->idle_ns;
}

/* A session starting over: the key stays, the rest is zero. */
static void restart(struct stamp_session *s, uint64_t now)
{
	s->next_seq = 0;
	s->rx = s->tx = 0;
	s->fu_valid = false;
	s->gen++;
	s->last_ns = now;
}

struct stamp_session *stamp_sessions_get(struct stamp_sessions *t,
					 const uint8_t key[STAMP_SESS_KEY_LEN], uint64_t now_ns,
					 bool *created)
{
	uint32_t b = bucket_of(t, key);

	*created = false;
	for (uint32_t i = t->buckets[b]; i != NONE; i = t->v[i].hnext) {
		struct stamp_session *s = &t->v[i];
		if (memcmp(s->key, key, STAMP_SESS_KEY_LEN) != 0)
			continue;
		if (idle(t, s, now_ns)) {
			t->c.expired++;
			t->c.created++;
			restart(s, now_ns);
			*created = true;
		}
		s->last_ns = now_ns;
		lru_unlink(t, i);
		lru_push(t, i);
		return s;
	}

	uint32_t i;
	if (t->used < t->capacity) {
		i = t->used++;
		t->c.active++;
	} else {
		i = t->tail;
		if (i == NONE || !idle(t, &t->v[i], now_ns)) {
			t->c.refused++;
			return NULL;
		}
		t->c.expired++;
		hash_unlink(t, i);
		lru_unlink(t, i);
	}
	struct stamp_session *s = &t->v[i];
	memcpy(s->key, key, STAMP_SESS_KEY_LEN);
	restart(s, now_ns);
	s->used = true;
	s->hnext = t->buckets[b];
	t->buckets[b] = i;
	s->prev = s->next = NONE;
	lru_push(t, i);
	t->c.created++;
	*created = true;
	return s;
}

uint32_t stamp_sessions_index(const struct stamp_sessions *t, const struct stamp_session *s)
{
	return (uint32_t)(s - t->v);
}

struct stamp_session *stamp_sessions_at(struct stamp_sessions *t, uint32_t idx, uint32_t gen)
{
	if (idx >= t->used || !t->v[idx].used || t->v[idx].gen != gen)
		return NULL;
	return &t->v[idx];
}
