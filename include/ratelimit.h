/*
 * ratelimit: per-source token buckets in a table of fixed size.
 *
 * The table is allocated once with room for `capacity` sources and never
 * grows: when it is full, the source seen least recently is evicted (exact
 * LRU).  A spoofed flood from a million addresses therefore costs the same
 * memory as one from `capacity` addresses; it can only push old sources out,
 * and an evicted source comes back with a full bucket, which is what it would
 * have had anyway once it had been idle for burst / rate seconds.
 *
 * Sources are hashed with SipHash-2-4 under a random 128-bit key the caller
 * supplies (from getrandom), so a sender cannot choose addresses that collide
 * in one chain.  The module makes no system calls: time is passed in as
 * CLOCK_MONOTONIC nanoseconds, which keeps it pure and testable.
 *
 * Token arithmetic is exact integer arithmetic.  A bucket holds "credit" in
 * token-nanoseconds: one reply costs NSEC_PER_SEC, the bucket holds at most
 * burst * NSEC_PER_SEC, and every elapsed nanosecond adds `rate`.  Nothing is
 * rounded, so there is no drift however the calls are spaced, and refill is
 * overflow-safe for any elapsed time.
 */
#ifndef BEACOND_RATELIMIT_H
#define BEACOND_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RATELIMIT_KEY_LEN 16   /* an IPv6 address; IPv4 as ::ffff:a.b.c.d */
#define RATELIMIT_SEED_LEN 16  /* SipHash key */

struct ratelimit;

/* A table for `capacity` sources (>= 1), with replies limited to `rate` per
 * second and bursts of `burst` (0 is taken as 1).  NULL with errno = ENOMEM
 * or EINVAL.  All memory is allocated here and nowhere else. */
struct ratelimit *ratelimit_new(uint32_t capacity, uint32_t rate, uint32_t burst,
				const uint8_t seed[RATELIMIT_SEED_LEN]);
void ratelimit_free(struct ratelimit *rl);

/* Change rate and burst; tracked sources keep their credit (clamped to the
 * new burst on their next refill).  rate 0 turns limiting off. */
void ratelimit_set_rate(struct ratelimit *rl, uint32_t rate, uint32_t burst);

/* May `key` have one more reply at now_ns?  Consumes a token when it may.
 * Always true when rate is 0 (the table is not touched then). */
bool ratelimit_allow(struct ratelimit *rl, const uint8_t key[RATELIMIT_KEY_LEN],
		     uint64_t now_ns);

/* The key of a socket address: the IPv6 address, or the IPv4 address mapped
 * into IPv6 so that 192.0.2.1 and ::ffff:192.0.2.1 share one bucket.  Returns
 * false for other families. */
bool ratelimit_key(const struct sockaddr *sa, uint8_t key[RATELIMIT_KEY_LEN]);

uint32_t ratelimit_capacity(const struct ratelimit *rl);
uint32_t ratelimit_count(const struct ratelimit *rl);     /* sources tracked */
uint64_t ratelimit_evictions(const struct ratelimit *rl); /* since creation */
/* Bytes allocated by ratelimit_new for this capacity (for docs and tests). */
size_t ratelimit_memory(uint32_t capacity);

/* Tokens `key` has left at now_ns, rounded down, without consuming any or
 * refreshing its LRU position; -1 when the source is not tracked.  For tests
 * and diagnostics. */
int64_t ratelimit_peek(const struct ratelimit *rl, const uint8_t key[RATELIMIT_KEY_LEN],
		       uint64_t now_ns);

/* SipHash-2-4 (Aumasson and Bernstein) of n bytes under a 128-bit key. */
uint64_t ratelimit_siphash(const uint8_t key[RATELIMIT_SEED_LEN], const void *data,
			   size_t n);

#endif
