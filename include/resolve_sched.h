/*
 * resolve_sched: when the pinger looks a target's name up again.  Pure
 * arithmetic, kept apart from the pinger so it can be tested alone.
 *
 * A resolved name is looked up again every resolve_interval, or sooner
 * when its records say they expire sooner -- but never more often than
 * once a second, so a TTL of 0 cannot turn into a query storm.  A lookup
 * that failed (or a name that never resolved) is retried with a doubling
 * backoff starting at one second, capped at resolve_interval: a name that
 * appears later is picked up quickly, a name that never will costs one
 * query per resolve_interval.
 */
#ifndef BEACOND_RESOLVE_SCHED_H
#define BEACOND_RESOLVE_SCHED_H

#include <stdint.h>

#define RESOLVE_MIN_NS 1000000000ULL           /* 1 s: floor of both delays */

/* Delay before the next lookup after a successful one.  ttl_s 0 means the
 * TTL is unknown (answers from /etc/hosts). */
static inline uint64_t resolve_sched_next_ns(uint64_t interval_ns, uint32_t ttl_s)
{
	uint64_t ttl_ns = (uint64_t)ttl_s * RESOLVE_MIN_NS;

	if (interval_ns < RESOLVE_MIN_NS)
		interval_ns = RESOLVE_MIN_NS;
	if (ttl_s == 0 || ttl_ns >= interval_ns)
		return interval_ns;
	return ttl_ns < RESOLVE_MIN_NS ? RESOLVE_MIN_NS : ttl_ns;
}

/* Delay before the retry after `failures` consecutive failed lookups
 * (1, 2, 3, ...): 1 s, 2 s, 4 s, ... capped at interval_ns. */
static inline uint64_t resolve_sched_backoff_ns(uint32_t failures, uint64_t interval_ns)
{
	uint32_t shift = failures ? failures - 1 : 0;
	uint64_t d;

	if (interval_ns < RESOLVE_MIN_NS)
		interval_ns = RESOLVE_MIN_NS;
	/* 2^33 s already exceeds any configurable interval (1 day max). */
	if (shift > 33)
		return interval_ns;
	d = RESOLVE_MIN_NS << shift;
	return d < interval_ns ? d : interval_ns;
}

#endif
