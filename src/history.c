/*
 * history: rounds, tiers and their file format.  See history.h.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "history.h"
#include "util.h"

const uint32_t history_tier_ratio[HISTORY_TIERS] = { 1, 5, 60 };
const uint32_t history_tier_len[HISTORY_TIERS] = { 180, 360, 240 };

/* ---- RTT codes: a 16-bit float with 5 exponent and 11 mantissa bits.
 * Exponent 0 holds 0..2047 ns exactly; exponent e >= 1 holds
 * (2048 + m) << (e - 1).  Monotonic, so sorting codes sorts RTTs. */

uint16_t history_rtt_encode(uint64_t ns)
{
	if (ns < 2048)
		return (uint16_t)ns;
	if (ns >= 4095ULL << 30)
		return UINT16_MAX;
	unsigned e = 1;
	/* Round to nearest at each exponent; a carry moves up one. */
	while (e < 31) {
		uint64_t m = (ns + ((1ULL << (e - 1)) >> 1)) >> (e - 1);
		if (m < 4096)
			return (uint16_t)(e << 11 | (m - 2048));
		e++;
	}
	uint64_t m = (ns + (1ULL << 29)) >> 30;
	return (uint16_t)(31u << 11 | (m - 2048));
}

uint64_t history_rtt_decode(uint16_t code)
{
	unsigned e = code >> 11;
	uint64_t m = code & 0x7ff;
	if (e == 0)
		return m;
	return (2048 + m) << (e - 1);
}

/* ---- rounds */

static void round_set_counts(struct history_round *r, uint32_t sent, uint32_t lost)
{
	r->sent[0] = (uint16_t)sent;
	r->sent[1] = (uint16_t)(sent >> 16);
	r->lost[0] = (uint16_t)lost;
	r->lost[1] = (uint16_t)(lost >> 16);
}

static uint32_t sat_add32(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/* Rounds being combined (a coarse round from finer ones, or a slot written
 * twice after a restart). */
struct round_acc {
	uint32_t sent, lost;
	uint64_t weight;              /* replies */
	uint16_t min, max;
	double sum[HISTORY_Q];
};

static void acc_init(struct round_acc *a)
{
	memset(a, 0, sizeof(*a));
	a->min = UINT16_MAX;
}

static void acc_add(struct round_acc *a, const struct history_round *r)
{
	uint32_t sent = history_round_sent(r), lost = history_round_lost(r);
	if (sent == 0)
		return;
	a->sent = sat_add32(a->sent, sent);
	a->lost = sat_add32(a->lost, lost);
	uint32_t recv = sent - lost;
	if (recv == 0)
		return;
	a->weight += recv;
	if (r->q[0] < a->min)
		a->min = r->q[0];
	if (r->q[HISTORY_Q - 1] > a->max)
		a->max = r->q[HISTORY_Q - 1];
	for (unsigned k = 1; k + 1 < HISTORY_Q; k++)
		a->sum[k] += (double)recv * (double)history_rtt_decode(r->q[k]);
}

static bool acc_round(const struct round_acc *a, struct history_round *out)
{
	memset(out, 0, sizeof(*out));
	if (a->sent == 0)
		return false;
	round_set_counts(out, a->sent, a->lost);
	if (a->weight == 0)
		return true;
	out->q[0] = a->min;
	out->q[HISTORY_Q - 1] = a->max;
	uint16_t prev = a->min;
	for (unsigned k = 1; k + 1 < HISTORY_Q; k++) {
		uint16_t c = history_rtt_encode((uint64_t)(a->sum[k] / (double)a->weight + 0.5));
		/* Rounding can only break the order by one code; keep it. */
		if (c < prev)
			c = prev;
		if (c > a->max)
			c = a->max;
		out->q[k] = prev = c;
	}
	return true;
}

/* ---- tiers */

/* The struct as allocated: rounded up to whole cache lines. */
#define CACHE_LINE 64u
static size_t struct_size(void)
{
	return (sizeof(struct history) + CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);
}

/* Tier k's first round: after the finer tiers'. */
static struct history_round *tier_rounds(const struct history *h, unsigned k)
{
	size_t before = 0;
	for (unsigned i = 0; i < k; i++)
		before += history_tier_len[i];
	return h->rounds + before;
}

static struct history_round *tier_at(const struct history *h, unsigned k, uint64_t slot)
{
	return &tier_rounds(h, k)[slot % history_tier_len[k]];
}

static bool tier_holds(const struct history *h, unsigned k, uint64_t slot)
{
	uint64_t last = h->tier[k].last;
	return last != HISTORY_NONE && slot <= last && last - slot < history_tier_len[k];
}

/* How many slots of tier k make one of tier k + 1. */
static uint32_t tier_sub(unsigned k)
{
	return history_tier_ratio[k + 1] / history_tier_ratio[k];
}

static void tier_put(struct history *h, unsigned k, uint64_t slot, const struct history_round *r);

/* Tier k is about to move from its newest slot to a later one: write the
 * coarse round of the window that slot closes. */
static void tier_rollup(struct history *h, unsigned k, uint64_t new_slot)
{
	uint64_t last = h->tier[k].last;
	if (k + 1 >= HISTORY_TIERS || last == HISTORY_NONE)
		return;
	uint32_t sub = tier_sub(k);
	uint64_t w = last / sub;
	if (new_slot / sub == w)
		return;
	struct round_acc a;
	acc_init(&a);
	for (uint64_t s = w * sub; s <= last; s++)
		if (tier_holds(h, k, s))
			acc_add(&a, tier_at(h, k, s));
	struct history_round out;
	if (acc_round(&a, &out))
		tier_put(h, k + 1, w, &out);
}

static void tier_put(struct history *h, unsigned k, uint64_t slot, const struct history_round *r)
{
	struct history_tier *t = &h->tier[k];
	uint32_t len = history_tier_len[k];
	if (t->last != HISTORY_NONE && slot <= t->last) {
		if (t->last - slot >= len)
			return;           /* older than the tier keeps */
		/* The slot again (a restart within one step): combine. */
		struct history_round *dst = tier_at(h, k, slot);
		struct round_acc a;
		acc_init(&a);
		acc_add(&a, dst);
		acc_add(&a, r);
		acc_round(&a, dst);
		return;
	}
	tier_rollup(h, k, slot);
	if (t->last != HISTORY_NONE) {   /* a fresh tier is all clear (history_init) */
		uint64_t gap = slot - t->last - 1;
		if (gap > len)
			gap = len;
		for (uint64_t i = 1; i <= gap; i++)
			memset(tier_at(h, k, t->last + i), 0, sizeof(struct history_round));
	}
	t->last = slot;
	*tier_at(h, k, slot) = *r;
}

/* ---- the open round */

/* Sort a round's samples (at most HISTORY_SAMPLES_MAX codes).  A round
 * closes once a step for each probe, and qsort's comparison calls cost
 * some 250 instructions per sample of a 60-sample round.  Up to
 * SORT_INSERTION codes an insertion sort (no fixed cost: a round of a few
 * samples is a few instructions); above, an LSD radix sort, two passes of
 * one byte, whose fixed cost (two 257-entry count tables) is then small. */
#define SORT_INSERTION 48u
static void sort_codes(uint16_t *v, uint32_t n)
{
	if (n <= SORT_INSERTION) {
		for (uint32_t i = 1; i < n; i++) {
			uint16_t x = v[i];
			uint32_t j = i;
			for (; j > 0 && v[j - 1] > x; j--)
				v[j] = v[j - 1];
			v[j] = x;
		}
		return;
	}
	uint16_t tmp[HISTORY_SAMPLES_MAX];
	uint16_t *src = v, *dst = tmp;

	for (unsigned shift = 0; shift < 16; shift += 8) {
		uint32_t count[257] = { 0 };
		for (uint32_t i = 0; i < n; i++)
			count[((src[i] >> shift) & 0xff) + 1]++;
		for (unsigned b = 0; b < 256; b++)
			count[b + 1] += count[b];
		for (uint32_t i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & 0xff]++] = src[i];
		uint16_t *t = src;
		src = dst;
		dst = t;
	}
	/* Two passes: the result is back in v. */
}

static void round_close(struct history *h)
{
	if (h->cur_slot == HISTORY_NONE)
		return;
	struct history_round r;
	memset(&r, 0, sizeof(r));
	round_set_counts(&r, h->cur_sent, h->cur_lost);
	if (h->n_samples > 0) {
		sort_codes(h->samples, h->n_samples);
		r.q[0] = h->cur_min;
		r.q[HISTORY_Q - 1] = h->cur_max;
		uint32_t n = h->n_samples;
		for (unsigned k = 1; k + 1 < HISTORY_Q; k++) {
			/* Linear interpolation between closest ranks (the
			 * median of an even count is the mean of the middle
			 * two). */
			uint64_t pos10 = (uint64_t)(n - 1) * k;   /* position x 10 */
			uint32_t i = (uint32_t)(pos10 / 10), f = (uint32_t)(pos10 % 10);
			uint16_t a = h->samples[i], b = h->samples[i + (f ? 1 : 0)];
			uint16_t c = a;   /* on a rank, or between equal ones: no arithmetic */
			if (a != b) {
				uint64_t lo = history_rtt_decode(a), hi = history_rtt_decode(b);
				c = history_rtt_encode((lo * (10 - f) + hi * f + 5) / 10);
			}
			if (c < r.q[k - 1])
				c = r.q[k - 1];
			if (c > h->cur_max)
				c = h->cur_max;
			r.q[k] = c;
		}
	}
	if (h->cur_sent > 0)
		tier_put(h, 0, h->cur_slot, &r);
	h->cur_slot = HISTORY_NONE;
	h->cur_sent = h->cur_lost = h->cur_recv = 0;
	h->n_samples = 0;
	h->cur_min = UINT16_MAX;
	h->cur_max = 0;
}

static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void round_sample(struct history *h, uint16_t code)
{
	h->cur_recv++;
	if (h->n_samples < HISTORY_SAMPLES_MAX) {
		h->samples[h->n_samples++] = code;
		return;
	}
	/* Reservoir: keep it with probability HISTORY_SAMPLES_MAX / received. */
	uint32_t j = xorshift32(&h->rng) % h->cur_recv;
	if (j < HISTORY_SAMPLES_MAX)
		h->samples[j] = code;
}

/* The recent outcomes come first: the rounds may refuse one (the clock
 * stepped back), the ring shows every outcome in the order it came. */
static void recent_add(struct history *h, uint64_t wall_ns, uint64_t rtt_ns)
{
	uint16_t c = HISTORY_RECENT_LOST;
	if (rtt_ns != UINT64_MAX) {
		c = history_rtt_encode(rtt_ns);
		if (c == HISTORY_RECENT_LOST)
			c--;          /* over 73 min: no timeout is that long */
	}
	h->recent[h->recent_next] = c;
	h->recent_next = (uint8_t)((h->recent_next + 1) % HISTORY_RECENT);
	if (h->recent_n < HISTORY_RECENT)
		h->recent_n++;
	h->recent_wall_ns = wall_ns;
}

size_t history_recent(const struct history *h, uint16_t *out)
{
	unsigned first = (h->recent_next + HISTORY_RECENT - h->recent_n) % HISTORY_RECENT;
	for (unsigned i = 0; i < h->recent_n; i++)
		out[i] = h->recent[(first + i) % HISTORY_RECENT];
	return h->recent_n;
}

void history_state_add(struct history *h, uint64_t wall_ns, uint8_t from, uint8_t to)
{
	/* Packed in 8 bytes: microseconds, then 4 bits each of from and to. */
	h->states[h->states_next] = (wall_ns / 1000) << 8 | (uint64_t)(from & 15) << 4 | (to & 15);
	h->states_next = (uint8_t)((h->states_next + 1) % HISTORY_STATES);
	if (h->states_n < HISTORY_STATES)
		h->states_n++;
}

size_t history_states(const struct history *h, struct history_state_change *out)
{
	unsigned first = (h->states_next + HISTORY_STATES - h->states_n) % HISTORY_STATES;
	for (unsigned i = 0; i < h->states_n; i++) {
		uint64_t v = h->states[(first + i) % HISTORY_STATES];
		out[i] = (struct history_state_change){ (v >> 8) * 1000, (uint8_t)(v >> 4 & 15),
							(uint8_t)(v & 15) };
	}
	return h->states_n;
}

bool history_add(struct history *h, uint64_t wall_ns, uint64_t rtt_ns)
{
	recent_add(h, wall_ns, rtt_ns);
	uint64_t slot = wall_ns / h->step_ns;
	if (h->cur_slot != HISTORY_NONE && slot != h->cur_slot) {
		if (slot < h->cur_slot) {
			h->dropped++;
			return false;
		}
		round_close(h);
	}
	if (h->cur_slot == HISTORY_NONE) {
		uint64_t last = h->tier[0].last;
		if (last != HISTORY_NONE && slot < last) {
			h->dropped++;
			return false;
		}
		h->cur_slot = slot;
	}
	h->cur_sent = sat_add32(h->cur_sent, 1);
	if (rtt_ns == UINT64_MAX) {
		h->cur_lost = sat_add32(h->cur_lost, 1);
		return true;
	}
	uint16_t c = history_rtt_encode(rtt_ns);
	if (c < h->cur_min)
		h->cur_min = c;
	if (c > h->cur_max)
		h->cur_max = c;
	round_sample(h, c);
	return true;
}

void history_tick(struct history *h, uint64_t wall_ns, bool force)
{
	if (h->cur_slot == HISTORY_NONE)
		return;
	if (force || wall_ns / h->step_ns > h->cur_slot)
		round_close(h);
}

/* ---- lifetime */

static size_t rounds_total(void)
{
	size_t n = 0;
	for (unsigned k = 0; k < HISTORY_TIERS; k++)
		n += history_tier_len[k];
	return n;
}

_Static_assert(offsetof(struct history, tier) <= HISTORY_HOT_BYTES,
	       "an outcome's fields fit two cache lines");

struct history *history_init(void *head, void *rounds, uint64_t step_ns)
{
	if (step_ns < HISTORY_STEP_MIN_NS || step_ns > HISTORY_STEP_MAX_NS) {
		errno = EINVAL;
		return NULL;
	}
	/* Everything is cleared now, the rounds too (a gap reads as an empty
	 * round): a history's memory is resident from its first outcome, so
	 * the daemon's size is what its targets make it from the start, not a
	 * step up at each tier's first round. */
	struct history *h = head;
	memset(h, 0, offsetof(struct history, samples));
	memset(rounds, 0, history_rounds_size());
	h->step_ns = step_ns;
	h->rounds = rounds;
	for (unsigned k = 0; k < HISTORY_TIERS; k++)
		h->tier[k].last = HISTORY_NONE;
	h->cur_slot = HISTORY_NONE;
	h->cur_min = UINT16_MAX;
	h->rng = 2463534242u;
	return h;
}

struct history *history_new(uint64_t step_ns)
{
	void *mem;
	/* One block: the struct, aligned so that its hot head is exactly two
	 * cache lines, then the rounds. */
	if (posix_memalign(&mem, CACHE_LINE, history_head_size() + history_rounds_size()) != 0) {
		errno = ENOMEM;
		return NULL;
	}
	struct history *h = history_init(mem, (char *)mem + history_head_size(), step_ns);
	if (!h)
		free(mem);   /* a bad step: errno EINVAL */
	return h;
}

struct history *history_copy(void *head, void *rounds, const struct history *h)
{
	/* The samples past n_samples are never read. */
	struct history *g = head;
	memcpy(g, h, offsetof(struct history, samples) + h->n_samples * sizeof(uint16_t));
	g->rounds = rounds;
	memcpy(rounds, h->rounds, history_rounds_size());
	return g;
}

size_t history_head_size(void)
{
	return struct_size();
}

size_t history_rounds_size(void)
{
	return (rounds_total() * sizeof(struct history_round) + CACHE_LINE - 1) &
	       ~(size_t)(CACHE_LINE - 1);
}

void history_free(struct history *h)
{
	free(h);
}

size_t history_memory(const struct history *h)
{
	(void)h;   /* the same for every history */
	return history_head_size() + history_rounds_size();
}

/* ---- reading */

uint64_t history_newest(const struct history *h, unsigned tier)
{
	uint64_t l0 = h->tier[0].last;
	if (l0 == HISTORY_NONE)
		return HISTORY_NONE;
	/* Every tier's open window is the one holding tier 0's newest round. */
	return l0 / history_tier_ratio[tier];
}

bool history_get(const struct history *h, unsigned tier, uint64_t slot,
		 struct history_round *out)
{
	if (tier >= HISTORY_TIERS)
		return false;
	if (tier_holds(h, tier, slot)) {
		*out = *tier_at(h, tier, slot);
		return !history_round_empty(out);
	}
	uint64_t last = h->tier[tier].last;
	if (tier == 0 || (last != HISTORY_NONE && slot <= last))
		return false;
	/* A window not rolled up yet: make it from the finer tier. */
	uint64_t newest = history_newest(h, tier);
	if (newest == HISTORY_NONE || slot > newest)
		return false;
	uint32_t sub = tier_sub(tier - 1);
	struct round_acc a;
	acc_init(&a);
	struct history_round r;
	for (uint64_t s = slot * sub; s < (slot + 1) * sub; s++)
		if (history_get(h, tier - 1, s, &r))
			acc_add(&a, &r);
	return acc_round(&a, out) && !history_round_empty(out);
}

void history_summary(const struct history *h, unsigned tier, uint64_t first,
		     uint64_t last, struct history_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->rtt_min_ns = out->rtt_max_ns = out->rtt_avg_ns = out->rtt_now_ns = UINT64_MAX;
	out->loss_now_pct = -1;
	uint64_t sum = 0, nmed = 0;
	struct history_round r;
	for (uint64_t s = first; s <= last && s != HISTORY_NONE; s++) {
		if (!history_get(h, tier, s, &r))
			continue;
		uint32_t sent = history_round_sent(&r), lost = history_round_lost(&r);
		out->rounds++;
		out->sent += sent;
		out->lost += lost;
		out->loss_now_pct = 100.0 * lost / sent;
		if (sent == lost) {
			out->rtt_now_ns = UINT64_MAX;
			continue;
		}
		uint64_t med = history_rtt_decode(r.q[HISTORY_MEDIAN]);
		out->rtt_now_ns = med;
		if (out->rtt_min_ns == UINT64_MAX || med < out->rtt_min_ns)
			out->rtt_min_ns = med;
		if (out->rtt_max_ns == UINT64_MAX || med > out->rtt_max_ns)
			out->rtt_max_ns = med;
		sum += med;
		nmed++;
	}
	if (nmed)
		out->rtt_avg_ns = sum / nmed;
}

/* ---- files */

static const uint8_t magic[8] = { 'B', 'C', 'N', 'D', 'H', 'I', 'S', 'T' };

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool over;
};

static void put(struct wbuf *w, const void *src, size_t n)
{
	if (w->over || w->cap - w->len < n) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void put_u8(struct wbuf *w, uint8_t v)
{
	put(w, &v, 1);
}

static void put_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put(w, b, 2);
}

static void put_u32(struct wbuf *w, uint32_t v)
{
	put_u16(w, (uint16_t)v);
	put_u16(w, (uint16_t)(v >> 16));
}

static void put_u64(struct wbuf *w, uint64_t v)
{
	put_u32(w, (uint32_t)v);
	put_u32(w, (uint32_t)(v >> 32));
}

#define ROUND_BYTES (4 + 4 + 4 + 2 * HISTORY_Q)

size_t history_encoded_max(const struct history *h, const struct history_ident *id)
{
	(void)h;
	size_t n = 8 + 4 + 4 + 8 + 8 + 4 + 2 + strlen(id->target) + 2 + strlen(id->host) + 4;
	for (unsigned k = 0; k < HISTORY_TIERS; k++)
		n += 4 + 4 + 8 + 4 + (size_t)history_tier_len[k] * ROUND_BYTES;
	return n;
}

static uint32_t tier_count(const struct history *h, unsigned k)
{
	uint32_t n = 0;
	uint64_t last = h->tier[k].last;
	if (last == HISTORY_NONE)
		return 0;
	for (uint32_t age = 0; age < history_tier_len[k] && age <= last; age++)
		if (!history_round_empty(tier_at(h, k, last - age)))
			n++;
	return n;
}

size_t history_encode(const struct history *h, const struct history_ident *id,
		      uint8_t *buf, size_t cap)
{
	size_t tl = strlen(id->target), hl = strlen(id->host);
	if (tl > HISTORY_NAME_MAX || hl > HISTORY_NAME_MAX)
		return 0;
	struct wbuf w = { buf, 0, cap, false };
	put(&w, magic, sizeof(magic));
	put_u32(&w, HISTORY_FILE_VERSION);
	put_u32(&w, 0);                       /* body length, patched below */
	put_u64(&w, h->step_ns);
	put_u64(&w, id->saved_wall_ns);
	put_u8(&w, id->family);
	put_u8(&w, HISTORY_TIERS);
	put_u16(&w, 0);
	put_u16(&w, (uint16_t)tl);
	put(&w, id->target, tl);
	put_u16(&w, (uint16_t)hl);
	put(&w, id->host, hl);
	for (unsigned k = 0; k < HISTORY_TIERS; k++) {
		uint64_t last = h->tier[k].last;
		put_u32(&w, history_tier_ratio[k]);
		put_u32(&w, history_tier_len[k]);
		put_u64(&w, last);
		put_u32(&w, tier_count(h, k));
		if (last == HISTORY_NONE)
			continue;
		uint32_t oldest = history_tier_len[k] - 1;
		if (oldest > last)
			oldest = (uint32_t)last;
		for (uint32_t age = oldest + 1; age-- > 0;) {
			const struct history_round *r = tier_at(h, k, last - age);
			if (history_round_empty(r))
				continue;
			put_u32(&w, age);
			put_u32(&w, history_round_sent(r));
			put_u32(&w, history_round_lost(r));
			for (unsigned q = 0; q < HISTORY_Q; q++)
				put_u16(&w, r->q[q]);
		}
	}
	if (w.over || w.cap - w.len < 4)
		return 0;
	uint32_t body = (uint32_t)(w.len - 16);
	for (unsigned i = 0; i < 4; i++)
		buf[12 + i] = (uint8_t)(body >> (8 * i));
	uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)w.len);
	put_u32(&w, crc);
	return w.len;
}

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool short_;
};

static bool get(struct rbuf *r, void *dst, size_t n)
{
	if (r->short_ || r->len - r->off < n) {
		r->short_ = true;
		memset(dst, 0, n);
		return false;
	}
	memcpy(dst, r->p + r->off, n);
	r->off += n;
	return true;
}

static uint8_t get_u8(struct rbuf *r)
{
	uint8_t v;
	get(r, &v, 1);
	return v;
}

static uint16_t get_u16(struct rbuf *r)
{
	uint8_t b[2];
	get(r, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t get_u32(struct rbuf *r)
{
	uint32_t lo = get_u16(r);
	return lo | (uint32_t)get_u16(r) << 16;
}

static uint64_t get_u64(struct rbuf *r)
{
	uint64_t lo = get_u32(r);
	return lo | (uint64_t)get_u32(r) << 32;
}

static bool get_name(struct rbuf *r, char *dst)
{
	uint16_t n = get_u16(r);
	if (n == 0 || n > HISTORY_NAME_MAX || !get(r, dst, n))
		return false;
	dst[n] = '\0';
	for (uint16_t i = 0; i < n; i++)
		if ((unsigned char)dst[i] < 0x21 || (unsigned char)dst[i] > 0x7e)
			return false;
	return true;
}

/* The envelope (magic, version, length, checksum) and the header up to the
 * tiers; leaves r at the first tier and returns the step, or 0 with err. */
static uint64_t decode_header(struct rbuf *r, const uint8_t *buf, size_t len,
			      bool check_crc, struct history_ident *id,
			      char *err, size_t errlen)
{
	uint8_t m[8];
	if (!get(r, m, sizeof(m)) || memcmp(m, magic, sizeof(m)) != 0) {
		set_err(err, errlen, len < sizeof(m) ? "truncated" : "not a beacond history file");
		return 0;
	}
	uint32_t version = get_u32(r);
	uint32_t body = get_u32(r);
	if (r->short_) {
		set_err(err, errlen, "truncated");
		return 0;
	}
	if (version != HISTORY_FILE_VERSION) {
		set_err(err, errlen, "format version %u, this beacond reads %u",
			version, HISTORY_FILE_VERSION);
		return 0;
	}
	if (len < 16 + 4 || body > len - 16 - 4) {
		set_err(err, errlen, "truncated");
		return 0;
	}
	if (body != len - 16 - 4) {
		set_err(err, errlen, "%zu bytes after the end", len - 16 - 4 - body);
		return 0;
	}
	if (check_crc) {
		uint32_t want = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
				(uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24;
		if ((uint32_t)crc32(0L, buf, (uInt)(len - 4)) != want) {
			set_err(err, errlen, "checksum mismatch");
			return 0;
		}
	}
	r->len = len - 4;   /* the body ends before the CRC */
	uint64_t step = get_u64(r);
	id->saved_wall_ns = get_u64(r);
	id->family = get_u8(r);
	uint8_t tiers = get_u8(r);
	(void)get_u16(r);
	if (r->short_) {
		set_err(err, errlen, "truncated");
		return 0;
	}
	if (step < HISTORY_STEP_MIN_NS || step > HISTORY_STEP_MAX_NS ||
	    (id->family != 4 && id->family != 6) || tiers != HISTORY_TIERS) {
		set_err(err, errlen, "bad header (step %llu ns, family %u, %u tiers)",
			(unsigned long long)step, id->family, tiers);
		return 0;
	}
	if (!get_name(r, id->target) || !get_name(r, id->host)) {
		set_err(err, errlen, r->short_ ? "truncated" : "bad target or host name");
		return 0;
	}
	return step;
}

/* Tier k's rounds into h; 0, or -1 with err. */
static int decode_tier(struct rbuf *r, struct history *h, unsigned k, uint64_t step,
		       char *err, size_t errlen)
{
	uint32_t ratio = get_u32(r), tlen = get_u32(r);
	uint64_t last = get_u64(r);
	uint32_t n = get_u32(r);
	if (r->short_)
		goto truncated;
	if (ratio != history_tier_ratio[k] || tlen != history_tier_len[k]) {
		set_err(err, errlen, "tier %u is %u x %u rounds, not %u x %u", k,
			ratio, tlen, history_tier_ratio[k], history_tier_len[k]);
		return -1;
	}
	if (n > tlen || (last == HISTORY_NONE && n > 0) ||
	    (last != HISTORY_NONE && last > UINT64_MAX / (step * ratio))) {
		set_err(err, errlen, "tier %u: bad round count or slot", k);
		return -1;
	}
	h->tier[k].last = last;
	uint32_t prev_age = UINT32_MAX;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t age = get_u32(r);
		uint32_t sent = get_u32(r), lost = get_u32(r);
		struct history_round rd;
		for (unsigned q = 0; q < HISTORY_Q; q++)
			rd.q[q] = get_u16(r);
		if (r->short_)
			goto truncated;
		if (age >= tlen || age > last || (prev_age != UINT32_MAX && age >= prev_age) ||
		    sent == 0 || lost > sent) {
			set_err(err, errlen, "tier %u round %u: inconsistent", k, i);
			return -1;
		}
		for (unsigned q = 1; q < HISTORY_Q; q++)
			if (rd.q[q] < rd.q[q - 1] || (sent == lost && rd.q[q] != 0)) {
				set_err(err, errlen, "tier %u round %u: quantiles out of order", k, i);
				return -1;
			}
		prev_age = age;
		round_set_counts(&rd, sent, lost);
		*tier_at(h, k, last - age) = rd;
	}
	return 0;
truncated:
	set_err(err, errlen, "truncated");
	return -1;
}

int history_decode(const uint8_t *buf, size_t len, bool check_crc,
		   struct history **out, struct history_ident *id,
		   char *err, size_t errlen)
{
	*out = NULL;
	memset(id, 0, sizeof(*id));
	struct rbuf r = { buf, len, 0, false };
	uint64_t step = decode_header(&r, buf, len, check_crc, id, err, errlen);
	if (step == 0)
		return -1;
	struct history *h = history_new(step);
	if (!h) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned k = 0; k < HISTORY_TIERS; k++)
		if (decode_tier(&r, h, k, step, err, errlen) < 0)
			goto bad;
	/* Coarse tiers can never be ahead of the open window. */
	for (unsigned k = 1; k < HISTORY_TIERS; k++) {
		uint64_t last = h->tier[k].last;
		if (last != HISTORY_NONE && (h->tier[0].last == HISTORY_NONE ||
					     last > h->tier[0].last / history_tier_ratio[k])) {
			set_err(err, errlen, "tier %u is ahead of tier 0", k);
			goto bad;
		}
	}
	if (r.off != r.len) {
		set_err(err, errlen, "%zu unread bytes", r.len - r.off);
		goto bad;
	}
	*out = h;
	return 0;
bad:
	history_free(h);
	return -1;
}
