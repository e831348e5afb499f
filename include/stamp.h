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

/* The counters, as one list (see TCP_COUNTERS in tcp.h). */
#define STAMP_COUNTERS(X) \
	X(received, "test packets received") \
	X(reflected, "test packets reflected") \
	X(bytes_in, "bytes received") \
	X(bytes_out, "bytes reflected") \
	X(short_reflected, "14..43-byte requests answered with 44 bytes") \
	X(drop_truncated, "dropped: truncated (MSG_TRUNC)") \
	X(drop_acl, "dropped: not in allow (checked first)") \
	X(drop_addr, "dropped: broadcast/multicast/unspecified source or destination") \
	X(drop_port, "dropped: source port 0, below 1024 but 862/863, or answering") \
	X(drop_runt, "dropped: under 14 bytes") \
	X(drop_short, "dropped: under 44 bytes with short_requests = drop") \
	X(drop_auth, "dropped: authenticated-mode packet (not supported)") \
	X(drop_rate, "dropped: over rate_limit") \
	X(drop_session, "dropped: stateful session table full of live sessions") \
	X(drop_send, "dropped: EAGAIN/ENOBUFS or another send error") \
	X(tlv_unknown, "TLVs answered with the U flag") \
	X(tlv_malformed, "TLVs answered with the M flag") \
	X(tx_stamps, "stateful: kernel transmit stamps read") \
	X(sessions_active, "stateful: sessions in the table") \
	X(sessions_created, "stateful: sessions created") \
	X(sessions_expired, "stateful: sessions expired") \
	X(rate_evictions, "sources pushed out of the full rate table")

struct stamp_counters {
#define STAMP_COUNTER_FIELD(name, help) uint64_t name;
	STAMP_COUNTERS(STAMP_COUNTER_FIELD)
#undef STAMP_COUNTER_FIELD
	/* State, not counters (not in the table). */
	bool clock_synced;         /* adjtimex: the S bit of our error estimate */
	uint64_t clock_error_ns;   /* the error estimate we send */
};

extern const struct counter_desc stamp_counter_descs[];
extern const size_t stamp_counter_count;

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
