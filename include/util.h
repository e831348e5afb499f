/* Small helpers shared by every module: container_of, time, sockaddr, error
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

/* One socket address of either family, with its length. */
struct endpoint {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
};

/* An IPv4 or IPv6 socket address without the room for other families: 28
 * bytes instead of an endpoint's 132, for what is stored per probe (the
 * pinger keeps 10 000 of them).  Its family is sa.sa_family. */
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

/* The one random source: n bytes from getrandom(), or (early at boot,
 * without entropy) mixed from the clocks and the pid -- for hash seeds,
 * idents and cookies, never for secrets. */
void random_bytes(void *buf, size_t n);
uint64_t random_u64(void);

/* The one string index: an open-addressing hash (FNV-1a, linear probing)
 * from a name to a position in the caller's array, which keeps the names.
 * Slots hold position + 1 (0: empty); at most half full. */
struct str_index {
	uint32_t *slot;
	size_t cap;              /* a power of two, or 0 */
	const char *(*name_of)(const void *ctx, uint32_t pos);
	const void *ctx;
};
uint64_t str_hash(const char *s);
/* Room for n names (rehashing what is there); 0, or -1 when out of memory
 * (the index is unchanged). */
int str_index_reserve(struct str_index *ix, size_t n);
/* The slot of name: *slot - 1 is its position, or *slot == 0 where it would
 * go.  The index must have room (str_index_reserve). */
uint32_t *str_index_slot(const struct str_index *ix, const char *name);
void str_index_free(struct str_index *ix);

/* Format a message into the caller's error buffer, as the functions that
 * take (err, errlen) do; nothing when err is NULL or errlen is 0. */
void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
