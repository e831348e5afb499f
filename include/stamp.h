/*
 * stamp: the STAMP (RFC 8762 / RFC 8972) session reflector.  Kernel receive
 * stamps for T2, T3 read right before the send, the received TTL and
 * DSCP/ECN reported, replies with TTL 255, and the reflection safeguards of
 * the UDP echo (reflect.h, ratelimit.h).  Two-phase configuration as in
 * tcp.h: prepare allocates everything, commit cannot fail.
 */
#ifndef BEACOND_STAMP_H
#define BEACOND_STAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "sd.h"

/* The name systemd socket units give STAMP sockets (FileDescriptorName=):
 * such sockets are the reflector's, never the UDP echo's. */
#define STAMP_FD_NAME "stamp"

struct stamp_counters {
	uint64_t received;
	uint64_t reflected;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t short_reflected;  /* 14..43-byte requests answered with 44 bytes */
	uint64_t drop_truncated;   /* MSG_TRUNC */
	uint64_t drop_acl;         /* not in allow (checked first) */
	uint64_t drop_addr;        /* broadcast/multicast/unspecified source or destination */
	uint64_t drop_port;        /* source port 0, below 1024 but 862/863, or answering */
	uint64_t drop_runt;        /* under 14 bytes */
	uint64_t drop_short;       /* under 44 bytes with short_requests = drop */
	uint64_t drop_auth;        /* authenticated-mode packet (not supported) */
	uint64_t drop_rate;        /* over rate_limit */
	uint64_t drop_session;     /* stateful: session table full of live sessions */
	uint64_t drop_send;        /* EAGAIN/ENOBUFS or another send error */
	uint64_t tlv_unknown;      /* TLVs answered with the U flag */
	uint64_t tlv_malformed;    /* TLVs answered with the M flag */
	uint64_t tx_stamps;        /* stateful: kernel transmit stamps read */
	uint64_t sessions_active;  /* stateful: sessions in the table */
	uint64_t sessions_created;
	uint64_t sessions_expired;
	uint64_t rate_evictions;   /* sources pushed out of the full rate table */
	bool clock_synced;         /* adjtimex: the S bit of our error estimate */
	uint64_t clock_error_ns;   /* the error estimate we send */
};

struct stamp_service;
struct stamp_plan;

struct stamp_service *stamp_new(struct loop *loop, uint8_t *buf, size_t buflen);
struct stamp_plan *stamp_prepare(struct stamp_service *s, const struct config_stamp *cfg,
				 struct sd_listen_set *inherited, char *err, size_t errlen);
void stamp_commit(struct stamp_service *s, struct stamp_plan *plan);
void stamp_abort(struct stamp_plan *plan);
void stamp_stop(struct stamp_service *s);
void stamp_free(struct stamp_service *s);

const struct stamp_counters *stamp_counters(const struct stamp_service *s);

#endif
