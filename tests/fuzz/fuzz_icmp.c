/*
 * libFuzzer target: the ICMP/ICMPv6 reply decoder, with and without the
 * IPv4 header a raw socket delivers.  The first byte picks the mode; the
 * rest is the packet.  Besides "no crash, no out-of-bounds read" (ASan), a
 * decoded message must point inside the input and name a known reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "icmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0] % 4;
	/* A private copy, exactly as long as the packet, so ASan sees any read
	 * past its end. */
	size_t len = size - 1;
	uint8_t *pkt = malloc(len ? len : 1);
	if (!pkt)
		abort();
	memcpy(pkt, data + 1, len);

	struct icmp_msg m;
	enum icmp_status st;
	switch (mode) {
	case 0:
		st = icmp4_decode(pkt, len, false, false, &m);
		break;
	case 1:
		st = icmp4_decode(pkt, len, true, true, &m);
		break;
	case 2:
		st = icmp4_decode(pkt, len, true, false, &m);
		break;
	default:
		st = icmp6_decode(pkt, len, &m);
		break;
	}
	if (st >= ICMP_STATUS_COUNT_ || !icmp_status_name(st))
		abort();
	if (st == ICMP_OK) {
		if (m.kind == ICMP_KIND_ECHO_REPLY && m.payload_len &&
		    (m.payload < pkt || m.payload + m.payload_len > pkt + len))
			abort();
		if (m.kind == ICMP_KIND_ERROR &&
		    (m.reason == ICMP_REASON_NONE || m.reason >= ICMP_REASON_COUNT_ ||
		     !icmp_reason_name(m.reason)))
			abort();
		(void)icmp_payload_has_cookie(&m, 56, 0x0123456789abcdefULL);
	}

	/* The encoder must produce what the decoder accepts. */
	if (len >= 4) {
		uint8_t out[256];
		size_t plen = data[1] % 200;
		uint16_t ident = (uint16_t)(data[2] << 8 | data[3]);
		size_t n = icmp_echo_encode(4, out, sizeof out, ident, 7, 42, plen);
		if (n != ICMP_ECHO_HDR_LEN + plen)
			abort();
		out[0] = ICMP4_ECHO_REPLY;     /* turn it into a reply, fix the sum */
		out[2] = out[3] = 0;
		uint16_t sum = icmp_checksum(out, n);
		memcpy(out + 2, &sum, 2);
		if (icmp4_decode(out, n, false, true, &m) != ICMP_OK ||
		    m.ident != ident || m.seq != 7 || m.payload_len != plen)
			abort();
	}
	free(pkt);
	return 0;
}
