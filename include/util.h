/* Small helpers shared by every module: container_of, time, the one
 * address type, the one string index, the one random source, error
 * messages. */
#ifndef BEACOND_UTIL_H
#define BEACOND_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define NSEC_PER_USEC 1000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC  1000000000ULL

static inline uint64_t timespec_to_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * NSEC_PER_SEC + (uint64_t)ts->tv_nsec;
}

/* CLOCK_MONOTONIC in nanoseconds: every schedule and every RTT uses it. */
static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return timespec_to_ns(&ts);
}

/* CLOCK_REALTIME in nanoseconds: only for printing and for what outlives
 * the process (timestamps in metrics, history, state changes). */
static inline uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return timespec_to_ns(&ts);
}

/* The one address type: an IPv4 or IPv6 socket address, 28 bytes (no
 * sockaddr_storage), so a target, a probe or a receive slot can embed it
 * (the pinger keeps 10 000 of them).  Its family is sa.sa_family.  A
 * longer address (AF_UNIX from getsockname) is truncated; only its family
 * is looked at then. */
union inet_sa {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};
static inline socklen_t inet_sa_len(const union inet_sa *a)
{
	return a->sa.sa_family == AF_INET6 ? sizeof a->in6 : sizeof a->in4;
}
/* Same family and address (ports and scope are not compared). */
bool inet_sa_same_addr(const union inet_sa *a, const union inet_sa *b);

/* The same with its length, for what the socket calls fill in. */
struct endpoint {
	union inet_sa u;
	socklen_t len;
};

/* One counter of a struct of uint64_t counters, for tables generated from
 * a service's X-macro list (TCP_COUNTERS, UDP_COUNTERS): whoever prints
 * counters (the stats log line, metrics) walks the table. */
struct counter_desc {
	const char *name;
	const char *help;
	size_t offset;
};
#define COUNTER_DESC(type, name, help) { #name, help, offsetof(type, name) },
static inline uint64_t counter_get(const void *counters, const struct counter_desc *d)
{
	return *(const uint64_t *)(const void *)((const char *)counters + d->offset);
}

/* The one random source: getrandom(), and if that ever fails (early at
 * boot without entropy, a seccomp filter), a splitmix64 stream seeded from
 * the clocks, the pid and an address -- for hash seeds, idents and
 * cookies, never for secrets. */
void random_bytes(void *buf, size_t n);
uint64_t random_u64(void);

/* FNV-1a, 64 bits, of a NUL-terminated string (offset basis
 * 14695981039346656037, prime 1099511628211). */
uint64_t str_hash(const char *s);

/*
 * The one string index: open addressing (FNV-1a, linear probing) from a
 * name to a position in the caller's array, which keeps the names.  Slots
 * hold position + 1 (0 = empty); name_of(ctx, pos) returns the name at pos.
 * Capacity is a power of two at least twice the number of entries, so
 * probes stay short.  Nothing is ever removed: rebuild for a new set.
 */
struct str_index {
	uint32_t *slot;
	size_t cap;                  /* 0 or a power of two */
	const char *(*name_of)(const void *ctx, uint32_t pos);
	const void *ctx;
};
void str_index_init(struct str_index *ix, const char *(*name_of)(const void *ctx, uint32_t pos),
		    const void *ctx);
/* Room for n names (rehashing what is there).  Returns 0, or -1 with errno
 * (ENOMEM); the index is unchanged on failure. */
int str_index_reserve(struct str_index *ix, size_t n);
/* The slot of name: *slot - 1 is its position when *slot != 0, else it is
 * the empty slot where name goes (store position + 1 there).  The index
 * must have room (str_index_reserve). */
uint32_t *str_index_slot(const struct str_index *ix, const char *name);
/* The position of name, or -1. */
int64_t str_index_find(const struct str_index *ix, const char *name);
void str_index_free(struct str_index *ix);

/* Format a message into the caller's error buffer, as the functions that
 * take (err, errlen) do; nothing when err is NULL or errlen is 0. */
void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
