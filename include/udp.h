/*
 * udp: the UDP echo / discard service with recvmmsg/sendmmsg batches and
 * reflection safeguards (bad source ports, broadcast/multicast sources,
 * allow-list, per-source token-bucket rate limit with a bounded table).
 * Two-phase configuration as in tcp.h.
 */
#ifndef BEACOND_UDP_H
#define BEACOND_UDP_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "sd.h"

/* The counters, as one list (see TCP_COUNTERS). */
#define UDP_COUNTERS(X) \
	X(received, "datagrams received") \
	X(echoed, "datagrams echoed") \
	X(bytes_in, "bytes received") \
	X(bytes_out, "bytes echoed") \
	X(drop_truncated, "datagrams dropped: truncated (MSG_TRUNC)") \
	X(drop_port, "datagrams dropped: source port 0 or one that answers back") \
	X(drop_addr, "datagrams dropped: broadcast, multicast or unspecified source") \
	X(drop_acl, "datagrams dropped: not in allow") \
	X(drop_rate, "datagrams dropped: over rate_limit") \
	X(drop_send, "datagrams dropped: EAGAIN/ENOBUFS or another send error") \
	X(rate_evictions, "sources pushed out of the full rate table")

struct udp_counters {
#define UDP_COUNTER_FIELD(name, help) uint64_t name;
	UDP_COUNTERS(UDP_COUNTER_FIELD)
#undef UDP_COUNTER_FIELD
};

extern const struct counter_desc udp_counter_descs[];
extern const size_t udp_counter_count;

struct udp_service;
struct udp_plan;

struct udp_service *udp_new(struct loop *loop, uint8_t *buf, size_t buflen);
struct udp_plan *udp_prepare(struct udp_service *s, const struct config_udp *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen);
void udp_commit(struct udp_service *s, struct udp_plan *plan);
void udp_abort(struct udp_plan *plan);
/* How many listeners the service has once plan is committed. */
size_t udp_plan_listeners(const struct udp_plan *plan);
void udp_stop(struct udp_service *s);
void udp_free(struct udp_service *s);

const struct udp_counters *udp_counters(const struct udp_service *s);
/* As tcp_listen_addrs. */
size_t udp_listen_addrs(const struct udp_service *s, struct endpoint *out, size_t n);

#endif
