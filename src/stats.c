/*
 * stats: see include/stats.h.  Every event is counted in the run totals and
 * in the current summary window at the same time, so a window never needs
 * to be subtracted from anything.
 */
#include <math.h>
#include <string.h>
#include "stats.h"

void stats_rtt_init(struct stats_rtt *r)
{
	memset(r, 0, sizeof *r);
	r->min_us = UINT32_MAX;
	r->jitter_x16 = STATS_NO_JITTER;
}

void stats_init(struct stats *s)
{
	memset(s, 0, sizeof *s);
	stats_rtt_init(&s->run.rtt);
	stats_rtt_init(&s->window.rtt);
	s->last_rtt_ns = STATS_NO_RTT;
}

void stats_window_reset(struct stats *s)
{
	memset(&s->window.c, 0, sizeof s->window.c);
	stats_rtt_init(&s->window.rtt);
}

void stats_window(const struct stats *s, struct stats_period *out)
{
	const struct stats_wcounts *w = &s->window.c;

	out->c = (struct stats_counts){
		.sent = w->sent, .received = w->received, .lost = w->lost,
		.late = w->late, .duplicates = w->duplicates, .errors = w->errors,
	};
	out->rtt = s->window.rtt;
}

static void inc32(uint32_t *v)
{
	if (*v < UINT32_MAX)
		(*v)++;
}

void stats_sent(struct stats *s)
{
	s->run.c.sent++;
	inc32(&s->window.c.sent);
}

void stats_send_failed(struct stats *s)
{
	stats_sent(s);
	stats_lost(s);
	stats_error(s);
}

static unsigned __int128 sum_sq(const struct stats_rtt *r)
{
	return (unsigned __int128)r->sum_sq[1] << 64 | r->sum_sq[0];
}

void stats_rtt_add(struct stats_rtt *r, uint64_t rtt_ns)
{
	unsigned __int128 sq = sum_sq(r) + (unsigned __int128)rtt_ns * rtt_ns;
	uint64_t us = rtt_ns / 1000 + (rtt_ns % 1000 >= 500);
	uint32_t us32 = us < UINT32_MAX ? (uint32_t)us : UINT32_MAX - 1;

	if (us32 < r->min_us)
		r->min_us = us32;
	if (us32 > r->max_us)
		r->max_us = us32;
	r->sum_ns += rtt_ns;
	r->sum_sq[0] = (uint64_t)sq;
	r->sum_sq[1] = (uint64_t)(sq >> 64);
}

void stats_rtt_add_jitter(struct stats_rtt *r, uint64_t abs_d_ns)
{
	if (r->jitter_x16 == STATS_NO_JITTER)
		r->jitter_x16 = abs_d_ns * 16;
	else
		r->jitter_x16 = r->jitter_x16 + abs_d_ns - ((r->jitter_x16 + 8) >> 4);
}

void stats_received(struct stats *s, uint64_t rtt_ns)
{
	s->run.c.received++;
	inc32(&s->window.c.received);
	stats_rtt_add(&s->run.rtt, rtt_ns);
	stats_rtt_add(&s->window.rtt, rtt_ns);
	if (s->last_rtt_ns != STATS_NO_RTT) {
		uint64_t d = rtt_ns > s->last_rtt_ns ? rtt_ns - s->last_rtt_ns
						     : s->last_rtt_ns - rtt_ns;
		stats_rtt_add_jitter(&s->run.rtt, d);
		stats_rtt_add_jitter(&s->window.rtt, d);
	}
	s->last_rtt_ns = rtt_ns;
}

void stats_lost(struct stats *s)
{
	s->run.c.lost++;
	inc32(&s->window.c.lost);
}

void stats_late(struct stats *s)
{
	s->run.c.late++;
	inc32(&s->window.c.late);
}

void stats_duplicate(struct stats *s)
{
	s->run.c.duplicates++;
	inc32(&s->window.c.duplicates);
}

void stats_error(struct stats *s)
{
	s->run.c.errors++;
	inc32(&s->window.c.errors);
}

uint64_t stats_rtt_avg_ns(const struct stats_rtt *r, uint64_t n)
{
	if (n == 0)
		return 0;
	return (r->sum_ns + n / 2) / n;
}

static uint64_t isqrt128(unsigned __int128 x)
{
	unsigned __int128 res = 0, bit = (unsigned __int128)1 << 126;

	while (bit > x)
		bit >>= 2;
	while (bit) {
		if (x >= res + bit) {
			x -= res + bit;
			res = (res >> 1) + bit;
		} else {
			res >>= 1;
		}
		bit >>= 2;
	}
	return (uint64_t)res;
}

uint64_t stats_rtt_mdev_ns(const struct stats_rtt *r, uint64_t n)
{
	unsigned __int128 n_sq, sum2, sq = sum_sq(r);

	if (n < 2)
		return 0;
	/* n^2 * variance = n * sum(x^2) - sum(x)^2, exact while it fits. */
	if (!__builtin_mul_overflow((unsigned __int128)n, sq, &n_sq)) {
		sum2 = (unsigned __int128)r->sum_ns * r->sum_ns;
		if (n_sq >= sum2)
			return (isqrt128(n_sq - sum2) + n / 2) / n;
		return 0;
	}
	{
		long double nf = (long double)n;
		long double mean = (long double)r->sum_ns / nf;
		long double var = (long double)sq / nf - mean * mean;

		return var > 0 ? (uint64_t)(sqrtl(var) + 0.5L) : 0;
	}
}

bool stats_rtt_has_jitter(const struct stats_rtt *r)
{
	return r->jitter_x16 != STATS_NO_JITTER;
}

uint64_t stats_rtt_jitter_ns(const struct stats_rtt *r)
{
	return stats_rtt_has_jitter(r) ? (r->jitter_x16 + 8) >> 4 : 0;
}

uint64_t stats_loss_milli_pct(const struct stats_counts *c)
{
	unsigned __int128 resolved = (unsigned __int128)c->received + c->lost;

	if (resolved == 0)
		return 0;
	return (uint64_t)(((unsigned __int128)c->lost * 100000 + resolved / 2) / resolved);
}

const char *health_state_name(enum health_state st)
{
	switch (st) {
	case HEALTH_UP: return "up";
	case HEALTH_DOWN: return "down";
	default: return "unknown";
	}
}

void health_init(struct health *h)
{
	h->state = HEALTH_UNKNOWN;
	h->ok_run = 0;
	h->lost_run = 0;
}

struct health_change health_update(struct health *h, bool ok, uint32_t down_after,
				   uint32_t up_after)
{
	struct health_change ch = { .changed = false, .from = h->state, .to = h->state };

	if (ok) {
		h->lost_run = 0;
		if (h->ok_run < UINT16_MAX)
			h->ok_run++;
		if (h->state != HEALTH_UP && h->ok_run >= up_after) {
			ch.changed = true;
			ch.to = HEALTH_UP;
			ch.run = h->ok_run;
		}
	} else {
		h->ok_run = 0;
		if (h->lost_run < UINT16_MAX)
			h->lost_run++;
		if (h->state != HEALTH_DOWN && h->lost_run >= down_after) {
			ch.changed = true;
			ch.to = HEALTH_DOWN;
			ch.run = h->lost_run;
		}
	}
	h->state = (uint8_t)ch.to;
	return ch;
}
