/*
 * stats: see include/stats.h.  Every event is counted in the run totals and
 * in the current summary window at the same time, so a window never needs
 * to be subtracted from anything.
 */
#include <math.h>
#include <string.h>
#include "stats.h"

static void period_init(struct stats_period *p)
{
	memset(p, 0, sizeof *p);
	p->rtt.min_ns = UINT64_MAX;
}

void stats_init(struct stats *s)
{
	period_init(&s->run);
	period_init(&s->window);
	s->last_rtt_ns = 0;
	s->have_last_rtt = false;
}

void stats_window_reset(struct stats *s)
{
	period_init(&s->window);
}

void stats_sent(struct stats *s)
{
	s->run.c.sent++;
	s->window.c.sent++;
}

void stats_send_failed(struct stats *s)
{
	stats_sent(s);
	stats_lost(s);
	stats_error(s);
}

void stats_rtt_add(struct stats_rtt *r, uint64_t rtt_ns)
{
	r->n++;
	if (rtt_ns < r->min_ns)
		r->min_ns = rtt_ns;
	if (rtt_ns > r->max_ns)
		r->max_ns = rtt_ns;
	r->sum_ns += rtt_ns;
	r->sum_sq += (unsigned __int128)rtt_ns * rtt_ns;
}

void stats_rtt_add_jitter(struct stats_rtt *r, uint64_t abs_d_ns)
{
	if (r->jitter_n++ == 0)
		r->jitter_x16 = abs_d_ns * 16;
	else
		r->jitter_x16 = r->jitter_x16 + abs_d_ns - ((r->jitter_x16 + 8) >> 4);
}

void stats_received(struct stats *s, uint64_t rtt_ns)
{
	s->run.c.received++;
	s->window.c.received++;
	stats_rtt_add(&s->run.rtt, rtt_ns);
	stats_rtt_add(&s->window.rtt, rtt_ns);
	if (s->have_last_rtt) {
		uint64_t d = rtt_ns > s->last_rtt_ns ? rtt_ns - s->last_rtt_ns
						     : s->last_rtt_ns - rtt_ns;
		stats_rtt_add_jitter(&s->run.rtt, d);
		stats_rtt_add_jitter(&s->window.rtt, d);
	}
	s->last_rtt_ns = rtt_ns;
	s->have_last_rtt = true;
}

void stats_lost(struct stats *s)
{
	s->run.c.lost++;
	s->window.c.lost++;
}

void stats_late(struct stats *s)
{
	s->run.c.late++;
	s->window.c.late++;
}

void stats_duplicate(struct stats *s)
{
	s->run.c.duplicates++;
	s->window.c.duplicates++;
}

void stats_error(struct stats *s)
{
	s->run.c.errors++;
	s->window.c.errors++;
}

uint64_t stats_rtt_avg_ns(const struct stats_rtt *r)
{
	if (r->n == 0)
		return 0;
	return (r->sum_ns + r->n / 2) / r->n;
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

uint64_t stats_rtt_mdev_ns(const struct stats_rtt *r)
{
	unsigned __int128 n_sq, sum2;

	if (r->n < 2)
		return 0;
	/* n^2 * variance = n * sum(x^2) - sum(x)^2, exact while it fits. */
	if (!__builtin_mul_overflow((unsigned __int128)r->n, r->sum_sq, &n_sq)) {
		sum2 = (unsigned __int128)r->sum_ns * r->sum_ns;
		if (n_sq >= sum2)
			return (isqrt128(n_sq - sum2) + r->n / 2) / r->n;
		return 0;
	}
	{
		long double n = (long double)r->n;
		long double mean = (long double)r->sum_ns / n;
		long double var = (long double)r->sum_sq / n - mean * mean;

		return var > 0 ? (uint64_t)(sqrtl(var) + 0.5L) : 0;
	}
}

uint64_t stats_rtt_jitter_ns(const struct stats_rtt *r)
{
	return (r->jitter_x16 + 8) >> 4;
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
		if (h->ok_run < UINT32_MAX)
			h->ok_run++;
		if (h->state != HEALTH_UP && h->ok_run >= up_after) {
			ch.changed = true;
			ch.to = HEALTH_UP;
			ch.run = h->ok_run;
		}
	} else {
		h->ok_run = 0;
		if (h->lost_run < UINT32_MAX)
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
