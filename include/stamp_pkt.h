/*
 * stamp_pkt: the STAMP (RFC 8762) test packet and its RFC 8972 TLVs, as
 * the reflector reads and writes them.  Pure code, no system calls: the
 * service passes in what it measured (T2, TTL, DSCP, counters) and gets
 * the reply built in place, in the request's own buffer.
 *
 * Unauthenticated session-sender packet (44 bytes, then TLVs):
 *    0 sequence number   4 timestamp T1 (8)   12 error estimate
 *   14 SSID             16 MBZ (28)
 * Reflected packet (44 bytes, then the TLVs copied and filled in):
 *    0 reflector sequence number   4 timestamp T3 (8)   12 error estimate
 *   14 SSID                        16 receive timestamp T2 (8)
 *   24 sender sequence number      28 sender timestamp T1 (8)
 *   36 sender error estimate       38 MBZ (2)   40 sender TTL   41 MBZ (3)
 *
 * Every length is checked before it is read; a TLV that does not fit, or
 * whose length is wrong for its type, gets the M flag and everything from
 * it on is left as it came.
 */
#ifndef BEACOND_STAMP_PKT_H
#define BEACOND_STAMP_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAMP_BASE_LEN 44u   /* unauthenticated packet, either direction */
#define STAMP_MIN_LEN  14u   /* TWAMP-Light: sequence, timestamp, error estimate */
#define STAMP_AUTH_LEN 112u  /* authenticated packet (HMAC-SHA-256) */

/* NTP time of 1970-01-01: seconds from 1900. */
#define STAMP_NTP_UNIX_OFFSET 2208988800u

/* TLV flags (RFC 8972 section 4). */
#define STAMP_TLV_U 0x80u    /* unrecognized */
#define STAMP_TLV_M 0x40u    /* malformed */
#define STAMP_TLV_I 0x20u    /* integrity check failed */

enum stamp_tlv_type {
	STAMP_TLV_PADDING = 1,
	STAMP_TLV_LOCATION = 2,
	STAMP_TLV_TSINFO = 3,
	STAMP_TLV_COS = 4,
	STAMP_TLV_DIRECT = 5,
	STAMP_TLV_ACCESS = 6,
	STAMP_TLV_FOLLOWUP = 7,
	STAMP_TLV_HMAC = 8,
	STAMP_TLV_DEST_ADDR = 9,     /* RFC 9503: never acted on */
	STAMP_TLV_RETURN_PATH = 10,  /* RFC 9503: never acted on */
};

/* Synchronisation sources and timestamping methods (Timestamp
 * Information TLV, IANA registries of RFC 8972). */
enum { STAMP_SYNC_NTP = 1, STAMP_SYNC_PTP = 2, STAMP_SYNC_FREE_RUNNING = 5 };
enum { STAMP_TSM_HW = 1, STAMP_TSM_SW = 2, STAMP_TSM_CONTROL = 3 };

enum stamp_kind {
	STAMP_FULL,      /* >= 44 bytes, unauthenticated */
	STAMP_SHORT,     /* 14..43 bytes: a TWAMP-Light sender */
	STAMP_RUNT,      /* under 14 bytes: nothing to reflect */
	STAMP_AUTH,      /* looks authenticated: not supported, dropped */
};

/* What the reflector knows about one received request. */
struct stamp_reflect_info {
	uint32_t seq;            /* reflector sequence number */
	uint64_t t2;             /* receive time, NTP format */
	uint16_t error;          /* the reflector's error estimate */
	uint8_t ttl;             /* received TTL / hop limit */
	uint8_t tos;             /* received DSCP << 2 | ECN */
	uint8_t sync_src;        /* STAMP_SYNC_* for the Timestamp Information TLV */
	uint8_t ts_in;           /* STAMP_TSM_* of T2 */
	uint8_t ts_out;          /* STAMP_TSM_* of T3 */
	bool cos_apply;          /* the reply will carry the DSCP a CoS TLV asks for */
	uint32_t rx_count;       /* Direct Measurement: received, this one included */
	uint32_t tx_count;       /* Direct Measurement: sent before this one */
	bool followup;           /* a previous reply's transmit time is known */
	uint32_t fu_seq;         /* its reflector sequence number */
	uint64_t fu_time;        /* its transmit time, NTP format */
	uint8_t fu_mode;         /* STAMP_TSM_* of fu_time */
};

/* What the TLV walk found. */
struct stamp_tlv_stats {
	unsigned tlvs;           /* TLVs seen (each type counted once per TLV) */
	unsigned unknown;        /* U flag set */
	unsigned malformed;      /* M flag set (0 or 1: the walk stops there) */
	bool followup;           /* a Follow-Up Telemetry TLV was answered */
	bool cos;                /* a Class of Service TLV was answered */
	uint8_t cos_dscp1;       /* its requested DSCP for the reply */
};

enum stamp_kind stamp_classify(const uint8_t *p, size_t len);

/* The request's SSID (0 when the request is too short to carry one). */
uint16_t stamp_ssid(const uint8_t *p, size_t len);

/* Turn the request in buf (len bytes, classified FULL or SHORT) into the
 * reply, in place, and return its length: len for a full packet, 44 for a
 * short one (cap must be >= 44; the bytes after len are zeroed).  T3 is
 * left zero for stamp_set_t3, right before the send.  st may be NULL. */
size_t stamp_reflect(uint8_t *buf, size_t len, size_t cap,
		     const struct stamp_reflect_info *info, struct stamp_tlv_stats *st);

/* Write T3 (NTP format) into a built reply. */
void stamp_set_t3(uint8_t *reply, uint64_t t3);

/* NTP 64-bit timestamps (32.32 fixed point from 1900) from and to
 * CLOCK_REALTIME nanoseconds.  The conversion back rounds to nearest. */
uint64_t stamp_ntp_from_ns(uint64_t unix_ns);
uint64_t stamp_ntp_to_ns(uint64_t ntp);

/* The Error Estimate field (RFC 4656 section 4.1.2): S (synchronised to
 * an external source), Z = 0 (NTP format), and the smallest
 * Scale/Multiplier whose value, Multiplier * 2^(Scale - 32) s, is at
 * least err_ns (Multiplier is never 0).  stamp_error_ns decodes one. */
uint16_t stamp_error_estimate(bool synced, uint64_t err_ns);
uint64_t stamp_error_ns(uint16_t e);

/* Big-endian readers and writers (bounds are the caller's). */
static inline uint32_t stamp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t stamp_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint64_t stamp_get64(const uint8_t *p)
{
	return (uint64_t)stamp_get32(p) << 32 | stamp_get32(p + 4);
}
static inline void stamp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void stamp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void stamp_put64(uint8_t *p, uint64_t v)
{
	stamp_put32(p, (uint32_t)(v >> 32));
	stamp_put32(p + 4, (uint32_t)v);
}

#endif
