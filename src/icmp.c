/*
 * icmp: pure encode/decode of ICMP and ICMPv6 echo messages and the errors
 * that quote them.  Everything a peer sends is untrusted: each header is
 * bounds-checked against the bytes actually received before any field of it
 * is read, and multi-byte fields are assembled byte by byte, so neither
 * alignment nor host byte order matters.
 */
#include <string.h>
#include "icmp.h"

static const char *const reason_names[ICMP_REASON_COUNT_] = {
	[ICMP_REASON_NONE] = "none",
	[ICMP_REASON_NET_UNREACHABLE] = "net-unreachable",
	[ICMP_REASON_HOST_UNREACHABLE] = "host-unreachable",
	[ICMP_REASON_PROTOCOL_UNREACHABLE] = "protocol-unreachable",
	[ICMP_REASON_PORT_UNREACHABLE] = "port-unreachable",
	[ICMP_REASON_FRAG_NEEDED] = "frag-needed",
	[ICMP_REASON_SOURCE_ROUTE_FAILED] = "source-route-failed",
	[ICMP_REASON_NET_UNKNOWN] = "net-unknown",
	[ICMP_REASON_HOST_UNKNOWN] = "host-unknown",
	[ICMP_REASON_ADMIN_PROHIBITED] = "admin-prohibited",
	[ICMP_REASON_NO_ROUTE] = "no-route",
	[ICMP_REASON_BEYOND_SCOPE] = "beyond-scope",
	[ICMP_REASON_ADDRESS_UNREACHABLE] = "address-unreachable",
	[ICMP_REASON_SOURCE_POLICY] = "source-policy",
	[ICMP_REASON_REJECT_ROUTE] = "reject-route",
	[ICMP_REASON_UNREACHABLE] = "unreachable",
	[ICMP_REASON_TTL_EXCEEDED] = "ttl-exceeded",
	[ICMP_REASON_REASSEMBLY_TIMEOUT] = "reassembly-timeout",
	[ICMP_REASON_PACKET_TOO_BIG] = "packet-too-big",
	[ICMP_REASON_PARAM_PROBLEM] = "param-problem",
	[ICMP_REASON_OTHER] = "other",
};

const char *icmp_reason_name(enum icmp_reason reason)
{
	if ((unsigned)reason >= ICMP_REASON_COUNT_)
		return "other";
	return reason_names[reason];
}

static const char *const status_names[ICMP_STATUS_COUNT_] = {
	[ICMP_OK] = "ok",
	[ICMP_TRUNCATED] = "truncated",
	[ICMP_BAD_IP_HEADER] = "bad-ip-header",
	[ICMP_BAD_CHECKSUM] = "bad-checksum",
	[ICMP_UNSOLICITED] = "unsolicited",
	[ICMP_NOT_ECHO] = "not-echo",
};

const char *icmp_status_name(enum icmp_status st)
{
	if ((unsigned)st >= ICMP_STATUS_COUNT_)
		return "unknown";
	return status_names[st];
}

static enum icmp_reason reason4(uint8_t type, uint8_t code)
{
	switch (type) {
	case ICMP4_DEST_UNREACH:
		switch (code) {
		case 0: case 11: return ICMP_REASON_NET_UNREACHABLE;
		case 1: case 12: return ICMP_REASON_HOST_UNREACHABLE;
		case 2: return ICMP_REASON_PROTOCOL_UNREACHABLE;
		case 3: return ICMP_REASON_PORT_UNREACHABLE;
		case 4: return ICMP_REASON_FRAG_NEEDED;
		case 5: return ICMP_REASON_SOURCE_ROUTE_FAILED;
		case 6: return ICMP_REASON_NET_UNKNOWN;
		case 7: return ICMP_REASON_HOST_UNKNOWN;
		case 9: case 10: case 13: return ICMP_REASON_ADMIN_PROHIBITED;
		default: return ICMP_REASON_UNREACHABLE;
		}
	case ICMP4_TIME_EXCEEDED:
		return code == 1 ? ICMP_REASON_REASSEMBLY_TIMEOUT : ICMP_REASON_TTL_EXCEEDED;
	case ICMP4_PARAM_PROBLEM:
		return ICMP_REASON_PARAM_PROBLEM;
	default:
		return ICMP_REASON_NONE;
	}
}

static enum icmp_reason reason6(uint8_t type, uint8_t code)
{
	switch (type) {
	case ICMP6_DEST_UNREACH_T:
		switch (code) {
		case 0: return ICMP_REASON_NO_ROUTE;
		case 1: return ICMP_REASON_ADMIN_PROHIBITED;
		case 2: return ICMP_REASON_BEYOND_SCOPE;
		case 3: return ICMP_REASON_ADDRESS_UNREACHABLE;
		case 4: return ICMP_REASON_PORT_UNREACHABLE;
		case 5: return ICMP_REASON_SOURCE_POLICY;
		case 6: return ICMP_REASON_REJECT_ROUTE;
		default: return ICMP_REASON_UNREACHABLE;
		}
	case ICMP6_PACKET_TOO_BIG_T:
		return ICMP_REASON_PACKET_TOO_BIG;
	case ICMP6_TIME_EXCEEDED_T:
		return code == 1 ? ICMP_REASON_REASSEMBLY_TIMEOUT : ICMP_REASON_TTL_EXCEEDED;
	case ICMP6_PARAM_PROBLEM_T:
		return ICMP_REASON_PARAM_PROBLEM;
	default:
		return ICMP_REASON_NONE;
	}
}

enum icmp_reason icmp_reason_from(int family, uint8_t type, uint8_t code)
{
	return family == 6 ? reason6(type, code) : reason4(type, code);
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Summing native 16-bit words gives the byte-swapped one's complement sum
 * on little-endian hosts, and storing the result natively swaps it back
 * (RFC 1071, section 2(B)), so no byte order conversion is needed. */
static uint64_t sum_words(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	uint16_t w;

	while (len >= 2) {
		memcpy(&w, p, 2);
		sum += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint8_t last[2] = { p[0], 0 };
		memcpy(&w, last, 2);
		sum += w;
	}
	return sum;
}

static uint16_t fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint16_t icmp_checksum(const void *buf, size_t len)
{
	return (uint16_t)~fold(sum_words(buf, len));
}

size_t icmp_echo_encode(int family, uint8_t *buf, size_t cap, uint16_t ident,
			uint16_t seq, uint64_t cookie, size_t payload_size)
{
	size_t len = ICMP_ECHO_HDR_LEN + payload_size;
	size_t i = 0;

	if (payload_size > ICMP_MAX_PAYLOAD || cap < len)
		return 0;
	memset(buf, 0, ICMP_ECHO_HDR_LEN);
	buf[0] = family == 6 ? ICMP6_ECHO_REQUEST_T : ICMP4_ECHO_REQUEST;
	if (payload_size >= ICMP_COOKIE_LEN) {
		memcpy(buf + ICMP_ECHO_HDR_LEN, &cookie, ICMP_COOKIE_LEN);
		i = ICMP_COOKIE_LEN;
	}
	/* A recognisable fill pattern helps when reading packet captures. */
	for (; i < payload_size; i++)
		buf[ICMP_ECHO_HDR_LEN + i] = (uint8_t)(0x20 + i % 64);
	icmp_echo_set_seq(family, buf, icmp_echo_base(buf, len), ident, seq);
	return len;
}

uint16_t icmp_echo_base(const uint8_t *pkt, size_t len)
{
	/* Type and code, then the payload: bytes 2..7 (checksum, ident, seq)
	 * are left out. */
	if (len < ICMP_ECHO_HDR_LEN)
		return 0;
	return fold(sum_words(pkt, 2) + sum_words(pkt + ICMP_ECHO_HDR_LEN, len - ICMP_ECHO_HDR_LEN));
}

void icmp_echo_set_seq(int family, uint8_t *pkt, uint16_t base, uint16_t ident, uint16_t seq)
{
	put16(pkt + 4, ident);
	put16(pkt + 6, seq);
	pkt[2] = pkt[3] = 0;
	if (family != 6) {
		uint16_t ck = (uint16_t)~fold(base + sum_words(pkt + 4, 4));

		memcpy(pkt + 2, &ck, 2);
	}
}

/*
 * Validate an IPv4 header at p (n bytes available).  On success *ihl is the
 * header length in bytes (20..60), already checked to fit in n.
 */
static enum icmp_status ip4_header(const uint8_t *p, size_t n, size_t *ihl)
{
	if (n < 20)
		return ICMP_TRUNCATED;
	if (p[0] >> 4 != 4)
		return ICMP_BAD_IP_HEADER;
	*ihl = (size_t)(p[0] & 0x0f) * 4;
	if (*ihl < 20)
		return ICMP_BAD_IP_HEADER;
	if (n < *ihl)
		return ICMP_TRUNCATED;
	return ICMP_OK;
}

enum icmp_status icmp4_decode(const uint8_t *buf, size_t len, bool with_ip_header,
			      bool verify_checksum, struct icmp_msg *out)
{
	const uint8_t *icmp = buf;
	size_t ilen = len;
	enum icmp_status st;

	memset(out, 0, sizeof *out);
	if (with_ip_header) {
		size_t ihl, tot;

		st = ip4_header(buf, len, &ihl);
		if (st != ICMP_OK)
			return st;
		if (buf[9] != 1)
			return ICMP_BAD_IP_HEADER;
		tot = get16(buf + 2);
		if (tot < ihl)
			return ICMP_BAD_IP_HEADER;
		if (tot > len)
			return ICMP_TRUNCATED;
		/* Link-layer padding may follow the datagram: trust the IP length. */
		len = tot;
		memcpy(out->outer_src, buf + 12, 4);
		out->has_outer_src = true;
		icmp = buf + ihl;
		ilen = len - ihl;
	}
	if (ilen < ICMP_ECHO_HDR_LEN)
		return ICMP_TRUNCATED;
	if (verify_checksum && icmp_checksum(icmp, ilen) != 0)
		return ICMP_BAD_CHECKSUM;

	out->type = icmp[0];
	out->code = icmp[1];
	switch (icmp[0]) {
	case ICMP4_ECHO_REPLY:
		out->kind = ICMP_KIND_ECHO_REPLY;
		out->ident = get16(icmp + 4);
		out->seq = get16(icmp + 6);
		out->payload = icmp + ICMP_ECHO_HDR_LEN;
		out->payload_len = ilen - ICMP_ECHO_HDR_LEN;
		return ICMP_OK;
	case ICMP4_DEST_UNREACH:
	case ICMP4_TIME_EXCEEDED:
	case ICMP4_PARAM_PROBLEM: {
		const uint8_t *in = icmp + ICMP_ECHO_HDR_LEN;
		size_t in_len = ilen - ICMP_ECHO_HDR_LEN, ihl;
		const uint8_t *q;

		st = ip4_header(in, in_len, &ihl);
		if (st != ICMP_OK)
			return st;
		if (in[9] != 1)
			return ICMP_NOT_ECHO;
		/* RFC 792 promises the quoted header plus 64 bits of data:
		 * exactly the echo header we need. */
		if (in_len - ihl < ICMP_ECHO_HDR_LEN)
			return ICMP_TRUNCATED;
		q = in + ihl;
		if (q[0] != ICMP4_ECHO_REQUEST)
			return ICMP_NOT_ECHO;
		out->kind = ICMP_KIND_ERROR;
		out->ident = get16(q + 4);
		out->seq = get16(q + 6);
		memcpy(out->orig_dst, in + 16, 4);
		out->reason = reason4(icmp[0], icmp[1]);
		if (icmp[0] == ICMP4_DEST_UNREACH && icmp[1] == 4)
			out->mtu = get16(icmp + 6);
		return ICMP_OK;
	}
	default:
		return ICMP_UNSOLICITED;
	}
}

/* IPv6 extension headers that may sit between the quoted fixed header and
 * the quoted ICMPv6 header; each starts with (next header, length). */
static bool ip6_is_ext(uint8_t nh)
{
	return nh == 0 || nh == 43 || nh == 60;
}

enum icmp_status icmp6_decode(const uint8_t *buf, size_t len, struct icmp_msg *out)
{
	memset(out, 0, sizeof *out);
	if (len < ICMP_ECHO_HDR_LEN)
		return ICMP_TRUNCATED;
	out->type = buf[0];
	out->code = buf[1];
	switch (buf[0]) {
	case ICMP6_ECHO_REPLY_T:
		out->kind = ICMP_KIND_ECHO_REPLY;
		out->ident = get16(buf + 4);
		out->seq = get16(buf + 6);
		out->payload = buf + ICMP_ECHO_HDR_LEN;
		out->payload_len = len - ICMP_ECHO_HDR_LEN;
		return ICMP_OK;
	case ICMP6_DEST_UNREACH_T:
	case ICMP6_PACKET_TOO_BIG_T:
	case ICMP6_TIME_EXCEEDED_T:
	case ICMP6_PARAM_PROBLEM_T: {
		const uint8_t *in = buf + ICMP_ECHO_HDR_LEN;
		size_t in_len = len - ICMP_ECHO_HDR_LEN, off = 40;
		uint8_t nh;
		int hops = 0;

		if (in_len < 40)
			return ICMP_TRUNCATED;
		if (in[0] >> 4 != 6)
			return ICMP_BAD_IP_HEADER;
		nh = in[6];
		while (ip6_is_ext(nh)) {
			size_t ext_len;

			if (++hops > 8)
				return ICMP_NOT_ECHO;
			if (in_len - off < 2)
				return ICMP_TRUNCATED;
			ext_len = ((size_t)in[off + 1] + 1) * 8;
			if (in_len - off < ext_len)
				return ICMP_TRUNCATED;
			nh = in[off];
			off += ext_len;
		}
		if (nh != 58)
			return ICMP_NOT_ECHO;
		if (in_len - off < ICMP_ECHO_HDR_LEN)
			return ICMP_TRUNCATED;
		if (in[off] != ICMP6_ECHO_REQUEST_T)
			return ICMP_NOT_ECHO;
		out->kind = ICMP_KIND_ERROR;
		out->ident = get16(in + off + 4);
		out->seq = get16(in + off + 6);
		memcpy(out->orig_dst, in + 24, 16);
		out->reason = reason6(buf[0], buf[1]);
		if (buf[0] == ICMP6_PACKET_TOO_BIG_T)
			out->mtu = get32(buf + 4);
		return ICMP_OK;
	}
	default:
		return ICMP_UNSOLICITED;
	}
}

bool icmp_payload_has_cookie(const struct icmp_msg *m, size_t sent_payload,
			     uint64_t cookie)
{
	if (sent_payload < ICMP_COOKIE_LEN)
		return true;
	if (m->payload_len < ICMP_COOKIE_LEN || m->payload == NULL)
		return false;
	return memcmp(m->payload, &cookie, ICMP_COOKIE_LEN) == 0;
}
