/*
 * libFuzzer target: the STAMP request classifier and the in-place reply
 * builder with its TLV walk (src/stamp_pkt.c).  The first byte varies
 * what the reflector reports (follow-up known or not, TTL, TOS); the rest
 * is the datagram.  Besides "no crash, no out-of-bounds access" (ASan on
 * a buffer exactly as large as the reply may be), the reply is never
 * longer than the request but for a short one's 44 bytes, the base fields
 * hold what the request and the reflector said, and the TLV counts are
 * consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stamp_pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size_t len = size - 1;
	size_t cap = len < STAMP_BASE_LEN ? STAMP_BASE_LEN : len;
	uint8_t *pkt = malloc(cap);
	if (!pkt)
		abort();
	memcpy(pkt, data + 1, len);

	struct stamp_reflect_info info = {
		.seq = 0xdeadbeef,
		.t2 = 0x0102030405060708ull,
		.error = 0x8001,
		.ttl = mode,
		.tos = (uint8_t)(mode * 7),
		.sync_src = STAMP_SYNC_FREE_RUNNING,
		.ts_in = STAMP_TSM_SW,
		.ts_out = STAMP_TSM_SW,
		.rx_count = 3,
		.tx_count = 2,
		.followup = mode & 1,
		.fu_seq = 1,
		.fu_time = 99,
		.fu_mode = STAMP_TSM_SW,
	};
	enum stamp_kind kind = stamp_classify(pkt, len);
	uint32_t sseq = len >= 4 ? stamp_get32(data + 1) : 0;
	struct stamp_tlv_stats st;
	size_t out = stamp_reflect(pkt, len, cap, &info, &st);

	if (kind == STAMP_RUNT) {
		if (out != 0)
			abort();
	} else {
		if (out != (len < STAMP_BASE_LEN ? STAMP_BASE_LEN : len))
			abort();
		if (stamp_get32(pkt) != 0xdeadbeef || stamp_get32(pkt + 24) != sseq ||
		    pkt[40] != mode || stamp_get64(pkt + 4) != 0)
			abort();
		if (st.malformed > st.tlvs + 1 || st.unknown > st.tlvs)
			abort();
		/* The TLV area holds at most one TLV per four bytes. */
		if (len > STAMP_BASE_LEN && st.tlvs > (len - STAMP_BASE_LEN) / 4)
			abort();
	}
	free(pkt);
	return 0;
}
