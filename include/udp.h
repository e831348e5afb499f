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

struct udp_counters {
	uint64_t received;
	uint64_t echoed;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t drop_truncated;   /* MSG_TRUNC */
	uint64_t drop_port;        /* source port 0 or a port that answers back */
	uint64_t drop_addr;        /* broadcast/multicast/unspecified source */
	uint64_t drop_acl;         /* not in allow */
	uint64_t drop_rate;        /* over rate_limit */
	uint64_t drop_send;        /* EAGAIN/ENOBUFS or another send error */
	uint64_t rate_evictions;   /* sources pushed out of the full rate table */
};

struct udp_service;
struct udp_plan;

struct udp_service *udp_new(struct loop *loop, uint8_t *buf, size_t buflen);
struct udp_plan *udp_prepare(struct udp_service *s, const struct config_udp *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen);
void udp_commit(struct udp_service *s, struct udp_plan *plan);
void udp_abort(struct udp_plan *plan);
void udp_stop(struct udp_service *s);
void udp_free(struct udp_service *s);

const struct udp_counters *udp_counters(const struct udp_service *s);
/* As tcp_listen_addrs. */
size_t udp_listen_addrs(const struct udp_service *s, struct endpoint *out, size_t n);

#endif
