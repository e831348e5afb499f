/*
 * stats: pure accumulation of probe results and the up/down state machine.
 * No clocks, no I/O: callers pass RTTs in nanoseconds and outcomes as they
 * happen.  Integer nanoseconds throughout; the only floating point is the
 * final square root of mdev when the exact 128-bit form would overflow.
 *
 * Counters (struct stats_counts), event by event:
 *   sent        a request was handed to the kernel, or the attempt failed
 *               (a failed send also counts lost and errors)
 *   received    a reply in time to an outstanding request (RTT recorded)
 *   lost        a request timed out, was refused by an ICMP error, or could
 *               not be sent
 *   late        a reply after its request was already counted lost
 *   duplicates  a second (third, ...) reply to an answered request
 *   errors      ICMP errors attributed to the probe, plus failed sends
 * received, late and duplicates are disjoint: a reply is counted in exactly
 * one of them.  Requests neither received nor lost are in flight.
 */
#ifndef BEACOND_STATS_H
#define BEACOND_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct stats_counts {
	uint64_t sent, received, lost, late, duplicates, errors;
};

/* A summary window's counters: 32 bits and saturating.  A window lasts at
 * most summary_interval (<= 1 day) at one request per >= 10 ms, so 8.64
 * million requests; with summaries off there is no window to print. */
struct stats_wcounts {
	uint32_t sent, received, lost, late, duplicates, errors;
};

/* RTT accumulator of one period; its sample count is the period's
 * `received`, so it is not stored twice.  Exact sums (the square sum in
 * 128 bits) so mean and mdev need no floating point, plus an RFC 3550
 * jitter estimator fed the difference between consecutive RTTs.
 * Minimum and maximum are kept in microseconds, rounded the way the log
 * prints them (rtt_*_ms has three decimals), so nothing shown is lost; an
 * RTT is at most the timeout (<= 1 h), well inside 32 bits of them.  The
 * square sum is two 64-bit halves rather than an __int128 so the struct
 * needs no 16-byte alignment.  Every probe holds two of these: 10 000
 * probes in a big setup. */
struct stats_rtt {
	uint32_t min_us, max_us;  /* min_us is UINT32_MAX while empty */
	uint64_t sum_ns;
	uint64_t sum_sq[2];       /* [0] low, [1] high half */
	uint64_t jitter_x16;      /* J scaled by 16 (RFC 3550 A.8); STATS_NO_JITTER
				   * until the first difference */
};
#define STATS_NO_JITTER UINT64_MAX
#define STATS_NO_RTT UINT64_MAX

/* One period: the whole run, or (widened by stats_window) a window. */
struct stats_period {
	struct stats_counts c;
	struct stats_rtt rtt;
};

struct stats {
	struct stats_period run;
	struct {
		struct stats_wcounts c;
		struct stats_rtt rtt;
	} window;                 /* since the last stats_window_reset() */
	uint64_t last_rtt_ns;     /* previous reply's RTT, for jitter;
				   * STATS_NO_RTT before the first reply */
};

void stats_init(struct stats *s);
/* Start a new summary window (the run totals are kept). */
void stats_window_reset(struct stats *s);
/* The current window as a period, for printing. */
void stats_window(const struct stats *s, struct stats_period *out);

void stats_sent(struct stats *s);
/* A failed send: sent, lost and errors, all at once. */
void stats_send_failed(struct stats *s);
void stats_received(struct stats *s, uint64_t rtt_ns);
void stats_lost(struct stats *s);
void stats_late(struct stats *s);
void stats_duplicate(struct stats *s);
void stats_error(struct stats *s);

/* Accumulator maths, exposed for tests and for periods.  n is the number
 * of RTTs added (the period's received count). */
void stats_rtt_init(struct stats_rtt *r);
void stats_rtt_add(struct stats_rtt *r, uint64_t rtt_ns);
/* Feed |D|, the absolute difference between consecutive RTTs.  The first
 * difference seeds J (instead of RFC 3550's zero start), so a short window
 * does not report a jitter biased towards zero; afterwards
 * J += (|D| - J) / 16. */
void stats_rtt_add_jitter(struct stats_rtt *r, uint64_t abs_d_ns);

uint64_t stats_rtt_avg_ns(const struct stats_rtt *r, uint64_t n);
/* Population standard deviation (what ping calls mdev): sqrt(E[x^2]-E[x]^2). */
uint64_t stats_rtt_mdev_ns(const struct stats_rtt *r, uint64_t n);
/* False until a first difference was fed. */
bool stats_rtt_has_jitter(const struct stats_rtt *r);
/* J in ns; 0 without a difference yet. */
uint64_t stats_rtt_jitter_ns(const struct stats_rtt *r);

/* lost / (received + lost) in per-mille-of-percent units: 3.3% -> 3300.
 * Requests in flight are not counted either way.  0 when nothing resolved. */
uint64_t stats_loss_milli_pct(const struct stats_counts *c);

/* ---- up/down state with hysteresis ---- */

enum health_state { HEALTH_UNKNOWN = 0, HEALTH_UP, HEALTH_DOWN };

/* Runs count up to 65535 and stay there: the thresholds are <= 1000. */
struct health {
	uint16_t ok_run;          /* consecutive replies */
	uint16_t lost_run;        /* consecutive losses */
	uint8_t state;            /* enum health_state */
};

struct health_change {
	bool changed;
	enum health_state from, to;
	uint32_t run;             /* the consecutive count that triggered it */
};

const char *health_state_name(enum health_state st);
void health_init(struct health *h);
/* Feed one resolved request (ok = reply in time, !ok = lost).  unknown and
 * up go down after down_after consecutive losses; unknown and down go up
 * after up_after consecutive replies. */
struct health_change health_update(struct health *h, bool ok, uint32_t down_after,
				   uint32_t up_after);

#endif
