/* Unit tests for the ICMP/ICMPv6 encoder and decoder with crafted packets. */
#include <criterion/criterion.h>
#include <string.h>
#include "icmp.h"

static const uint8_t SRC4[4] = { 192, 0, 2, 1 };
static const uint8_t DST4[4] = { 198, 51, 100, 7 };
static const uint8_t ROUTER4[4] = { 203, 0, 113, 9 };
static const uint64_t COOKIE = 0x1122334455667788ULL;

/* An IPv4 header of ihl_words 32-bit words (options filled with NOPs). */
static size_t put_ip4(uint8_t *p, unsigned ihl_words, uint8_t proto, const uint8_t *src,
		      const uint8_t *dst, size_t total)
{
	size_t ihl = ihl_words * 4;

	memset(p, 1, ihl < 20 ? 20 : ihl); /* 1 = IPv4 NOP option */
	p[0] = (uint8_t)(0x40 | (ihl_words & 0x0f));
	p[1] = 0;
	p[2] = (uint8_t)(total >> 8);
	p[3] = (uint8_t)total;
	p[4] = p[5] = p[6] = p[7] = 0;
	p[8] = 64;
	p[9] = proto;
	p[10] = p[11] = 0;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	return ihl < 20 ? 20 : ihl;
}

static void fix_sum4(uint8_t *icmp, size_t len)
{
	uint16_t ck;

	icmp[2] = icmp[3] = 0;
	ck = icmp_checksum(icmp, len);
	memcpy(icmp + 2, &ck, 2);
}

/* An echo reply (ICMP only) with 56 bytes of payload. */
static size_t make_reply4(uint8_t *buf, uint16_t ident, uint16_t seq)
{
	size_t n = icmp_echo_encode(4, buf, 256, ident, seq, COOKIE, 56);

	cr_assert_eq(n, 64);
	buf[0] = ICMP4_ECHO_REPLY;
	fix_sum4(buf, 64);
	return 64;
}

/* A destination-unreachable error from ROUTER4 quoting our echo request,
 * optionally behind an outer IPv4 header.  quoted_ihl in words. */
static size_t make_error4(uint8_t *buf, bool outer, uint8_t type, uint8_t code,
			  unsigned quoted_ihl, uint16_t ident, uint16_t seq)
{
	size_t off = outer ? 20 : 0, q, len;
	uint8_t *icmp = buf + off;

	memset(icmp, 0, 8);
	icmp[0] = type;
	icmp[1] = code;
	if (type == ICMP4_DEST_UNREACH && code == 4) {
		icmp[6] = 0x05;
		icmp[7] = 0xdc; /* MTU 1500 */
	}
	q = put_ip4(icmp + 8, quoted_ihl, 1, SRC4, DST4, 84);
	icmp_echo_encode(4, icmp + 8 + q, 8, ident, seq, COOKIE, 0);
	len = 8 + q + 8;
	fix_sum4(icmp, len);
	if (outer)
		put_ip4(buf, 5, 1, ROUTER4, SRC4, off + len);
	return off + len;
}

Test(icmp, checksum_rfc1071_vector)
{
	const uint8_t v[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	uint16_t ck = icmp_checksum(v, sizeof v);
	uint8_t b[2];

	memcpy(b, &ck, 2);
	cr_assert_eq(b[0], 0x22);
	cr_assert_eq(b[1], 0x0d);
}

Test(icmp, checksum_odd_length_and_self_check)
{
	const uint8_t one[1] = { 0x01 };
	uint16_t ck = icmp_checksum(one, 1);
	uint8_t b[2];
	uint8_t pkt[64];
	size_t n;

	memcpy(b, &ck, 2);
	cr_assert_eq(b[0], 0xfe);
	cr_assert_eq(b[1], 0xff);
	cr_assert_eq(icmp_checksum("", 0), 0xffff);
	n = icmp_echo_encode(4, pkt, sizeof pkt, 0xbeef, 7, COOKIE, 21); /* odd */
	cr_assert_eq(n, 29);
	cr_assert_eq(icmp_checksum(pkt, n), 0, "a correct message sums to zero");
}

Test(icmp, encode_v4)
{
	uint8_t pkt[128];
	uint64_t c;
	size_t n = icmp_echo_encode(4, pkt, sizeof pkt, 0x1234, 0xabcd, COOKIE, 56);

	cr_assert_eq(n, 64);
	cr_assert_eq(pkt[0], 8);
	cr_assert_eq(pkt[1], 0);
	cr_assert_eq(pkt[4], 0x12);
	cr_assert_eq(pkt[5], 0x34);
	cr_assert_eq(pkt[6], 0xab);
	cr_assert_eq(pkt[7], 0xcd);
	memcpy(&c, pkt + 8, 8);
	cr_assert_eq(c, COOKIE);
	cr_assert_eq(icmp_checksum(pkt, n), 0);

	icmp_echo_set_seq(4, pkt, icmp_echo_base(pkt, n), 0x1234, 0xabce);
	cr_assert_eq(pkt[7], 0xce);
	cr_assert_eq(icmp_checksum(pkt, n), 0, "set_seq keeps the checksum right");
}

Test(icmp, patched_request_equals_a_fresh_one)
{
	static uint8_t a[ICMP_ECHO_HDR_LEN + ICMP_MAX_PAYLOAD], b[sizeof a];
	const size_t sizes[] = { 0, 1, 7, 8, 9, 55, 56, 57, 1472, 9000, ICMP_MAX_PAYLOAD };
	uint32_t x = 12345;

	/* Built once per size, patched for every (ident, seq): byte for byte
	 * what encoding from scratch gives, for odd and even lengths, with and
	 * without room for the cookie. */
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		for (int family = 4; family <= 6; family += 2) {
			size_t n = icmp_echo_encode(family, a, sizeof a, 0, 0, COOKIE, sizes[k]);
			uint16_t base = icmp_echo_base(a, n);

			cr_assert_eq(n, ICMP_ECHO_HDR_LEN + sizes[k]);
			for (int i = 0; i < 200; i++) {
				uint16_t ident, seq;

				x = x * 1103515245u + 12345u;
				ident = (uint16_t)(x >> 16);
				seq = (uint16_t)x;
				if (i == 0)
					ident = seq = 0xffff;
				icmp_echo_set_seq(family, a, base, ident, seq);
				cr_assert_eq(icmp_echo_encode(family, b, sizeof b, ident, seq, COOKIE,
							      sizes[k]), n);
				cr_assert_eq(memcmp(a, b, n), 0, "size %zu family %d ident %04x seq %04x",
					     sizes[k], family, ident, seq);
				if (family == 4)
					cr_assert_eq(icmp_checksum(a, n), 0);
			}
		}
	}
}

Test(icmp, encode_v6_and_limits)
{
	uint8_t pkt[128];
	size_t n = icmp_echo_encode(6, pkt, sizeof pkt, 1, 2, COOKIE, 56);

	cr_assert_eq(n, 64);
	cr_assert_eq(pkt[0], 128);
	cr_assert_eq(pkt[2], 0);
	cr_assert_eq(pkt[3], 0, "the kernel computes ICMPv6 sums");
	cr_assert_eq(icmp_echo_encode(4, pkt, 63, 1, 2, COOKIE, 56), 0, "cap too small");
	cr_assert_eq(icmp_echo_encode(4, pkt, sizeof pkt, 1, 2, COOKIE, 0), 8);
	cr_assert_eq(icmp_echo_encode(4, pkt, sizeof pkt, 1, 2, COOKIE, 5), 13, "no cookie");
	cr_assert_eq(pkt[8], 0x20);
	cr_assert_eq(icmp_echo_encode(4, pkt, SIZE_MAX, 1, 2, COOKIE, ICMP_MAX_PAYLOAD + 1), 0);
}

Test(icmp, decode_reply_v4_without_ip_header)
{
	uint8_t pkt[128];
	struct icmp_msg m;
	size_t n = make_reply4(pkt, 0x4242, 17);

	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_OK);
	cr_assert_eq(m.kind, ICMP_KIND_ECHO_REPLY);
	cr_assert_eq(m.ident, 0x4242);
	cr_assert_eq(m.seq, 17);
	cr_assert_eq(m.payload_len, 56);
	cr_assert_eq(m.payload, pkt + 8);
	cr_assert(!m.has_outer_src);
	cr_assert(icmp_payload_has_cookie(&m, 56, COOKIE));
	cr_assert(!icmp_payload_has_cookie(&m, 56, COOKIE + 1), "another instance's cookie");
	/* Wrong ident and seq are reported as they are, for the caller to reject. */
	n = make_reply4(pkt, 0x4243, 18);
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_OK);
	cr_assert_eq(m.ident, 0x4243);
	cr_assert_eq(m.seq, 18);
}

Test(icmp, decode_reply_v4_bad_checksum)
{
	uint8_t pkt[128];
	struct icmp_msg m;
	size_t n = make_reply4(pkt, 1, 1);

	pkt[20] ^= 0x40;
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_BAD_CHECKSUM);
	/* Datagram sockets: the kernel verified it, we do not look. */
	cr_assert_eq(icmp4_decode(pkt, n, false, false, &m), ICMP_OK);
}

Test(icmp, decode_reply_v4_with_ip_header_and_options)
{
	uint8_t pkt[256];
	struct icmp_msg m;

	for (unsigned ihl = 5; ihl <= 15; ihl++) {
		size_t off = ihl * 4;
		size_t n = make_reply4(pkt + off, 7, 9);

		put_ip4(pkt, ihl, 1, DST4, SRC4, off + n);
		cr_assert_eq(icmp4_decode(pkt, off + n, true, true, &m), ICMP_OK, "ihl %u", ihl);
		cr_assert_eq(m.seq, 9);
		cr_assert_eq(m.payload_len, 56);
		cr_assert(m.has_outer_src);
		cr_assert_eq(memcmp(m.outer_src, DST4, 4), 0);
	}
}

Test(icmp, decode_v4_ip_header_nonsense)
{
	uint8_t pkt[256];
	struct icmp_msg m;
	size_t n = make_reply4(pkt + 20, 7, 9);

	put_ip4(pkt, 5, 1, DST4, SRC4, 20 + n);
	pkt[0] = 0x44; /* IHL 4 words: below the minimum */
	cr_assert_eq(icmp4_decode(pkt, 20 + n, true, true, &m), ICMP_BAD_IP_HEADER);
	pkt[0] = 0x40;
	cr_assert_eq(icmp4_decode(pkt, 20 + n, true, true, &m), ICMP_BAD_IP_HEADER);
	pkt[0] = 0x65; /* version 6 */
	cr_assert_eq(icmp4_decode(pkt, 20 + n, true, true, &m), ICMP_BAD_IP_HEADER);
	pkt[0] = 0x4f; /* 60-byte header in a 40-byte packet */
	cr_assert_eq(icmp4_decode(pkt, 40, true, true, &m), ICMP_TRUNCATED);
	pkt[0] = 0x45;
	pkt[9] = 17; /* UDP */
	cr_assert_eq(icmp4_decode(pkt, 20 + n, true, true, &m), ICMP_BAD_IP_HEADER);
	pkt[9] = 1;
	pkt[2] = 0;
	pkt[3] = 10; /* total length shorter than the header */
	cr_assert_eq(icmp4_decode(pkt, 20 + n, true, true, &m), ICMP_BAD_IP_HEADER);
	pkt[2] = 0xff; /* claims more than was received */
	cr_assert_eq(icmp4_decode(pkt, 20 + n, true, true, &m), ICMP_TRUNCATED);
}

Test(icmp, decode_v4_trailing_padding_is_trimmed)
{
	uint8_t pkt[256];
	struct icmp_msg m;
	size_t n = make_reply4(pkt + 20, 7, 9);

	put_ip4(pkt, 5, 1, DST4, SRC4, 20 + n);
	memset(pkt + 20 + n, 0xaa, 6);
	cr_assert_eq(icmp4_decode(pkt, 20 + n + 6, true, true, &m), ICMP_OK);
	cr_assert_eq(m.payload_len, 56);
}

Test(icmp, decode_v4_truncated_at_every_length)
{
	uint8_t pkt[256], copy[256];
	struct icmp_msg m;
	size_t n = make_reply4(pkt + 20, 7, 9);

	put_ip4(pkt, 5, 1, DST4, SRC4, 20 + n);
	for (size_t len = 0; len < 20 + n; len++) {
		/* A fresh copy of exactly len bytes so ASan catches over-reads. */
		uint8_t *p = malloc(len ? len : 1);

		memcpy(p, pkt, len);
		cr_assert_eq(icmp4_decode(p, len, true, true, &m), ICMP_TRUNCATED, "len %zu", len);
		free(p);
	}
	/* Without the IP header, a cut reply is short or fails its checksum. */
	n = make_reply4(copy, 7, 9);
	for (size_t len = 0; len < n; len++) {
		uint8_t *p = malloc(len ? len : 1);
		enum icmp_status st;

		memcpy(p, copy, len);
		st = icmp4_decode(p, len, false, true, &m);
		cr_assert_eq(st, len < 8 ? ICMP_TRUNCATED : ICMP_BAD_CHECKSUM, "len %zu", len);
		free(p);
	}
}

Test(icmp, decode_v4_unsolicited)
{
	uint8_t pkt[128];
	struct icmp_msg m;
	size_t n = icmp_echo_encode(4, pkt, sizeof pkt, 7, 9, COOKIE, 56);

	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_UNSOLICITED, "echo request");
	for (uint8_t t = 4; t <= 18; t++) {
		if (t == ICMP4_ECHO_REQUEST || t == ICMP4_TIME_EXCEEDED || t == ICMP4_PARAM_PROBLEM)
			continue;
		pkt[0] = t;
		fix_sum4(pkt, n);
		cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_UNSOLICITED, "type %u", t);
	}
}

Test(icmp, decode_v4_error_quoting_our_echo)
{
	uint8_t pkt[256];
	struct icmp_msg m;

	for (int outer = 0; outer <= 1; outer++) {
		for (unsigned qihl = 5; qihl <= 15; qihl += 5) {
			size_t n = make_error4(pkt, outer, ICMP4_DEST_UNREACH, 1, qihl, 0x77, 300);
			size_t want = (outer ? 20 : 0) + 8 + qihl * 4 + 8;

			cr_assert_eq(n, want);
			cr_assert_eq(icmp4_decode(pkt, n, outer, true, &m), ICMP_OK,
				     "outer %d qihl %u", outer, qihl);
			cr_assert_eq(m.kind, ICMP_KIND_ERROR);
			cr_assert_eq(m.ident, 0x77);
			cr_assert_eq(m.seq, 300);
			cr_assert_eq(m.reason, ICMP_REASON_HOST_UNREACHABLE);
			cr_assert_str_eq(icmp_reason_name(m.reason), "host-unreachable");
			cr_assert_eq(memcmp(m.orig_dst, DST4, 4), 0);
			cr_assert_eq(m.has_outer_src, outer == 1);
			if (outer)
				cr_assert_eq(memcmp(m.outer_src, ROUTER4, 4), 0);
		}
	}
}

Test(icmp, decode_v4_error_reasons)
{
	uint8_t pkt[256];
	struct icmp_msg m;
	size_t n;

	n = make_error4(pkt, true, ICMP4_DEST_UNREACH, 4, 5, 1, 2);
	cr_assert_eq(icmp4_decode(pkt, n, true, true, &m), ICMP_OK);
	cr_assert_eq(m.reason, ICMP_REASON_FRAG_NEEDED);
	cr_assert_eq(m.mtu, 1500);
	n = make_error4(pkt, true, ICMP4_TIME_EXCEEDED, 0, 5, 1, 2);
	cr_assert_eq(icmp4_decode(pkt, n, true, true, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "ttl-exceeded");
	n = make_error4(pkt, true, ICMP4_DEST_UNREACH, 13, 5, 1, 2);
	cr_assert_eq(icmp4_decode(pkt, n, true, true, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "admin-prohibited");
	n = make_error4(pkt, false, ICMP4_DEST_UNREACH, 0, 5, 1, 2);
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "net-unreachable");
	n = make_error4(pkt, false, ICMP4_DEST_UNREACH, 3, 5, 1, 2);
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "port-unreachable");
	n = make_error4(pkt, false, ICMP4_PARAM_PROBLEM, 0, 5, 1, 2);
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "param-problem");
}

Test(icmp, decode_v4_error_quoting_something_else)
{
	uint8_t pkt[256];
	struct icmp_msg m;
	size_t n = make_error4(pkt, false, ICMP4_DEST_UNREACH, 3, 5, 1, 2);

	pkt[8 + 9] = 17; /* quoted UDP */
	fix_sum4(pkt, n);
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_NOT_ECHO);
	pkt[8 + 9] = 1;
	pkt[8 + 20] = ICMP4_ECHO_REPLY; /* quoted someone's reply */
	fix_sum4(pkt, n);
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_NOT_ECHO);
	pkt[8 + 20] = ICMP4_ECHO_REQUEST;
	pkt[8] = 0x43; /* bogus quoted IHL */
	fix_sum4(pkt, n);
	cr_assert_eq(icmp4_decode(pkt, n, false, true, &m), ICMP_BAD_IP_HEADER);
}

Test(icmp, decode_v4_error_truncated_at_every_length)
{
	uint8_t pkt[256];
	struct icmp_msg m;

	for (int outer = 0; outer <= 1; outer++) {
		size_t n = make_error4(pkt, outer, ICMP4_DEST_UNREACH, 1, 6, 5, 6);

		for (size_t len = 0; len < n; len++) {
			uint8_t *p = malloc(len ? len : 1);
			enum icmp_status st;

			memcpy(p, pkt, len);
			/* Without checksum verification only the length checks
			 * stand between us and an over-read. */
			st = icmp4_decode(p, len, outer, false, &m);
			cr_assert_eq(st, ICMP_TRUNCATED, "outer %d len %zu: %s", outer, len,
				     icmp_status_name(st));
			free(p);
		}
	}
}

/* ---- ICMPv6 ---- */

static const uint8_t DST6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
static const uint8_t SRC6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

/* An ICMPv6 error quoting our echo request, with `ext` 8-byte hop-by-hop
 * headers between the quoted IPv6 header and the echo header. */
static size_t make_error6(uint8_t *buf, uint8_t type, uint8_t code, int ext,
			  uint16_t ident, uint16_t seq)
{
	uint8_t *ip = buf + 8;
	size_t off = 40;

	memset(buf, 0, 8);
	buf[0] = type;
	buf[1] = code;
	if (type == ICMP6_PACKET_TOO_BIG_T) {
		buf[6] = 0x05;
		buf[7] = 0x00; /* 1280 */
	}
	memset(ip, 0, 40);
	ip[0] = 0x60;
	ip[6] = ext ? 0 : 58;
	ip[7] = 64;
	memcpy(ip + 8, SRC6, 16);
	memcpy(ip + 24, DST6, 16);
	for (int i = 0; i < ext; i++) {
		memset(ip + off, 0, 8);
		ip[off] = i + 1 < ext ? 0 : 58;
		ip[off + 1] = 0; /* (0 + 1) * 8 bytes */
		off += 8;
	}
	icmp_echo_encode(6, ip + off, 8, ident, seq, COOKIE, 0);
	return 8 + off + 8;
}

Test(icmp, decode_v6_reply)
{
	uint8_t pkt[128];
	struct icmp_msg m;
	size_t n = icmp_echo_encode(6, pkt, sizeof pkt, 0x99, 4, COOKIE, 56);

	pkt[0] = ICMP6_ECHO_REPLY_T;
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_OK);
	cr_assert_eq(m.kind, ICMP_KIND_ECHO_REPLY);
	cr_assert_eq(m.ident, 0x99);
	cr_assert_eq(m.seq, 4);
	cr_assert_eq(m.payload_len, 56);
	cr_assert(icmp_payload_has_cookie(&m, 56, COOKIE));
	for (size_t len = 0; len < 8; len++)
		cr_assert_eq(icmp6_decode(pkt, len, &m), ICMP_TRUNCATED);
	/* A reply whose payload was cut cannot carry the cookie. */
	cr_assert_eq(icmp6_decode(pkt, 12, &m), ICMP_OK);
	cr_assert(!icmp_payload_has_cookie(&m, 56, COOKIE));
}

Test(icmp, decode_v6_unsolicited)
{
	uint8_t pkt[64] = { 0 };
	struct icmp_msg m;
	const uint8_t types[] = { ICMP6_ECHO_REQUEST_T, 133, 134, 135, 136, 130, 0, 127, 255 };

	for (size_t i = 0; i < sizeof types; i++) {
		pkt[0] = types[i];
		cr_assert_eq(icmp6_decode(pkt, sizeof pkt, &m), ICMP_UNSOLICITED, "type %u", types[i]);
	}
}

Test(icmp, decode_v6_errors)
{
	uint8_t pkt[256];
	struct icmp_msg m;
	size_t n;

	for (int ext = 0; ext <= 3; ext++) {
		n = make_error6(pkt, ICMP6_DEST_UNREACH_T, 3, ext, 0x1234, 65535);
		cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_OK, "ext %d", ext);
		cr_assert_eq(m.kind, ICMP_KIND_ERROR);
		cr_assert_eq(m.ident, 0x1234);
		cr_assert_eq(m.seq, 65535);
		cr_assert_eq(memcmp(m.orig_dst, DST6, 16), 0);
		cr_assert_str_eq(icmp_reason_name(m.reason), "address-unreachable");
	}
	n = make_error6(pkt, ICMP6_PACKET_TOO_BIG_T, 0, 0, 1, 2);
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_OK);
	cr_assert_eq(m.reason, ICMP_REASON_PACKET_TOO_BIG);
	cr_assert_eq(m.mtu, 1280);
	n = make_error6(pkt, ICMP6_TIME_EXCEEDED_T, 0, 0, 1, 2);
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "ttl-exceeded");
	n = make_error6(pkt, ICMP6_DEST_UNREACH_T, 1, 0, 1, 2);
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "admin-prohibited");
	n = make_error6(pkt, ICMP6_DEST_UNREACH_T, 0, 0, 1, 2);
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "no-route");
	n = make_error6(pkt, ICMP6_PARAM_PROBLEM_T, 0, 0, 1, 2);
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_OK);
	cr_assert_str_eq(icmp_reason_name(m.reason), "param-problem");
}

Test(icmp, decode_v6_error_quoting_something_else)
{
	uint8_t pkt[256];
	struct icmp_msg m;
	size_t n = make_error6(pkt, ICMP6_DEST_UNREACH_T, 4, 0, 1, 2);

	pkt[8 + 6] = 17; /* quoted UDP */
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_NOT_ECHO);
	pkt[8 + 6] = 58;
	pkt[8 + 40] = ICMP6_ECHO_REPLY_T;
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_NOT_ECHO);
	pkt[8 + 40] = ICMP6_ECHO_REQUEST_T;
	pkt[8] = 0x40; /* quoted version 4 */
	cr_assert_eq(icmp6_decode(pkt, n, &m), ICMP_BAD_IP_HEADER);
}

Test(icmp, decode_v6_error_truncated_at_every_length)
{
	uint8_t pkt[256];
	struct icmp_msg m;

	for (int ext = 0; ext <= 2; ext++) {
		size_t n = make_error6(pkt, ICMP6_DEST_UNREACH_T, 3, ext, 5, 6);

		for (size_t len = 0; len < n; len++) {
			uint8_t *p = malloc(len ? len : 1);
			enum icmp_status st;

			memcpy(p, pkt, len);
			st = icmp6_decode(p, len, &m);
			cr_assert_eq(st, ICMP_TRUNCATED, "ext %d len %zu: %s", ext, len,
				     icmp_status_name(st));
			free(p);
		}
	}
}

Test(icmp, reason_names_are_distinct)
{
	for (int i = 0; i < ICMP_REASON_COUNT_; i++) {
		const char *a = icmp_reason_name((enum icmp_reason)i);

		cr_assert_not_null(a);
		cr_assert(strlen(a) > 0);
		cr_assert_null(strchr(a, ' '), "log values carry no spaces");
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(a, icmp_reason_name((enum icmp_reason)j));
	}
	cr_assert_str_eq(icmp_reason_name((enum icmp_reason)999), "other");
	cr_assert_eq(icmp_reason_from(4, ICMP4_ECHO_REPLY, 0), ICMP_REASON_NONE);
	cr_assert_eq(icmp_reason_from(4, ICMP4_DEST_UNREACH, 1), ICMP_REASON_HOST_UNREACHABLE);
	cr_assert_eq(icmp_reason_from(4, ICMP4_DEST_UNREACH, 10), ICMP_REASON_ADMIN_PROHIBITED);
	cr_assert_eq(icmp_reason_from(4, ICMP4_DEST_UNREACH, 15), ICMP_REASON_UNREACHABLE);
	cr_assert_eq(icmp_reason_from(6, ICMP6_DEST_UNREACH_T, 6), ICMP_REASON_REJECT_ROUTE);
	cr_assert_eq(icmp_reason_from(6, ICMP6_TIME_EXCEEDED_T, 1), ICMP_REASON_REASSEMBLY_TIMEOUT);
	cr_assert_eq(icmp_reason_from(6, ICMP6_ECHO_REPLY_T, 0), ICMP_REASON_NONE);
}
