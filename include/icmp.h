/*
 * icmp: pure encode/decode and checksum for ICMPv4 and ICMPv6 echo and the
 * error messages that quote an echo request.  No sockets, no logging, no
 * allocation: every function works on caller buffers and checks every
 * length before reading.
 *
 * What a socket hands us differs by kind:
 *   - raw IPv4 sockets deliver the IPv4 header in front of the ICMP message;
 *   - datagram IPv4 sockets and every IPv6 socket deliver the ICMP message
 *     alone.
 * icmp4_decode() takes a flag for the first case.
 */
#ifndef BEACOND_ICMP_H
#define BEACOND_ICMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ICMP_ECHO_HDR_LEN 8        /* type, code, checksum, ident, seq */
#define ICMP_COOKIE_LEN 8          /* per-process cookie at payload start */
#define ICMP_MAX_PAYLOAD 65000

/* Types we use, by family (the system headers spell them differently). */
#define ICMP4_ECHO_REPLY        0
#define ICMP4_DEST_UNREACH      3
#define ICMP4_ECHO_REQUEST      8
#define ICMP4_TIME_EXCEEDED     11
#define ICMP4_PARAM_PROBLEM     12
#define ICMP6_DEST_UNREACH_T    1
#define ICMP6_PACKET_TOO_BIG_T  2
#define ICMP6_TIME_EXCEEDED_T   3
#define ICMP6_PARAM_PROBLEM_T   4
#define ICMP6_ECHO_REQUEST_T    128
#define ICMP6_ECHO_REPLY_T      129

/* Why a router or host refused or dropped one of our echo requests. */
enum icmp_reason {
	ICMP_REASON_NONE = 0,
	ICMP_REASON_NET_UNREACHABLE,
	ICMP_REASON_HOST_UNREACHABLE,
	ICMP_REASON_PROTOCOL_UNREACHABLE,
	ICMP_REASON_PORT_UNREACHABLE,
	ICMP_REASON_FRAG_NEEDED,
	ICMP_REASON_SOURCE_ROUTE_FAILED,
	ICMP_REASON_NET_UNKNOWN,
	ICMP_REASON_HOST_UNKNOWN,
	ICMP_REASON_ADMIN_PROHIBITED,
	ICMP_REASON_NO_ROUTE,
	ICMP_REASON_BEYOND_SCOPE,
	ICMP_REASON_ADDRESS_UNREACHABLE,
	ICMP_REASON_SOURCE_POLICY,
	ICMP_REASON_REJECT_ROUTE,
	ICMP_REASON_UNREACHABLE,           /* a code we do not name */
	ICMP_REASON_TTL_EXCEEDED,
	ICMP_REASON_REASSEMBLY_TIMEOUT,
	ICMP_REASON_PACKET_TOO_BIG,
	ICMP_REASON_PARAM_PROBLEM,
	ICMP_REASON_OTHER,                 /* an error type we do not name */
	ICMP_REASON_COUNT_
};

/* "host-unreachable", "ttl-exceeded", ...: stable, used as log values. */
const char *icmp_reason_name(enum icmp_reason reason);
/* The reason for an ICMP (family 4) or ICMPv6 (family 6) error type/code;
 * ICMP_REASON_NONE when type is not an error we report. */
enum icmp_reason icmp_reason_from(int family, uint8_t type, uint8_t code);

enum icmp_status {
	ICMP_OK = 0,             /* out is filled */
	ICMP_TRUNCATED,          /* a header or quoted header is cut short */
	ICMP_BAD_IP_HEADER,      /* version or IHL nonsense, wrong protocol */
	ICMP_BAD_CHECKSUM,
	ICMP_UNSOLICITED,        /* a type we never asked for (echo request, ...) */
	ICMP_NOT_ECHO,           /* an error that quotes something else */
	ICMP_STATUS_COUNT_
};
const char *icmp_status_name(enum icmp_status st);

enum icmp_kind {
	ICMP_KIND_ECHO_REPLY,
	ICMP_KIND_ERROR,         /* an error quoting one of our echo requests */
};

struct icmp_msg {
	enum icmp_kind kind;
	uint8_t type, code;
	uint16_t ident, seq;     /* host byte order; from the quoted request for errors */
	enum icmp_reason reason; /* errors only */
	uint32_t mtu;            /* frag-needed / packet-too-big, else 0 */
	/* Errors: destination of the quoted request (4 or 16 bytes). */
	uint8_t orig_dst[16];
	/* Raw IPv4 only: the outer header's source (the replier or router). */
	uint8_t outer_src[4];
	bool has_outer_src;
	/* Echo replies: the payload after the 8-byte header. */
	const uint8_t *payload;
	size_t payload_len;
};

/* The Internet checksum (RFC 1071) of buf, ready to store as is (the result
 * is in network byte order when written with memcpy). */
uint16_t icmp_checksum(const void *buf, size_t len);

/* Build an echo request into buf: header, then payload_size bytes of which
 * the first ICMP_COOKIE_LEN carry cookie (when payload_size allows) and the
 * rest a fixed pattern.  family 4 fills in the checksum (raw sockets need
 * it; datagram sockets recompute it anyway); family 6 leaves it zero for the
 * kernel, which always computes the ICMPv6 checksum.  Returns the length,
 * or 0 if cap is too small or payload_size exceeds ICMP_MAX_PAYLOAD. */
size_t icmp_echo_encode(int family, uint8_t *buf, size_t cap, uint16_t ident,
			uint16_t seq, uint64_t cookie, size_t payload_size);

/* The one's complement sum of an encoded request (len bytes) without its
 * checksum, ident and seq fields: all icmp_echo_set_seq() needs to fix the
 * IPv4 checksum in O(1), whatever the payload size. */
uint16_t icmp_echo_base(const uint8_t *pkt, size_t len);

/* Rewrite ident and seq in an encoded request, and its IPv4 checksum from
 * base (icmp_echo_base of that request), so the send path builds a request
 * once per payload size and only patches it for each send. */
void icmp_echo_set_seq(int family, uint8_t *pkt, uint16_t base, uint16_t ident,
		       uint16_t seq);

/* Decode an ICMPv4 message.  with_ip_header: buf starts with the IPv4
 * header (raw sockets).  verify_checksum: check the ICMP checksum (raw
 * sockets; the kernel has verified it for datagram sockets). */
enum icmp_status icmp4_decode(const uint8_t *buf, size_t len, bool with_ip_header,
			      bool verify_checksum, struct icmp_msg *out);
/* Decode an ICMPv6 message (no IPv6 header; the kernel checked the sum). */
enum icmp_status icmp6_decode(const uint8_t *buf, size_t len, struct icmp_msg *out);

/* True when the payload carries cookie in its first ICMP_COOKIE_LEN bytes.
 * A payload too short to hold a cookie is accepted (the request carried
 * none either, see icmp_echo_encode). */
bool icmp_payload_has_cookie(const struct icmp_msg *m, size_t sent_payload,
			     uint64_t cookie);

#endif
