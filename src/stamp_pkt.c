/*
 * stamp_pkt: the STAMP packet and TLV codec (see stamp_pkt.h).
 *
 * Nothing here trusts the request: its length decides what is read, every
 * TLV length is checked against what is left before its value is touched,
 * and the reply is never longer than the request but for the short
 * requests RFC 8762 section 4.6 says to answer with a full 44 bytes.
 */
#include <string.h>

#include "stamp_pkt.h"

#define NS_PER_S 1000000000u

enum stamp_kind stamp_classify(const uint8_t *p, size_t len)
{
	if (len < STAMP_MIN_LEN)
		return STAMP_RUNT;
	/* An authenticated sender packet has 12 MBZ bytes where the
	 * unauthenticated one carries T1, its error estimate and the SSID, and
	 * its own timestamp at 16.  A real unauthenticated request never has
	 * a zero T1 (it would be 1900), so this does not take one for the
	 * other. */
	if (len >= STAMP_AUTH_LEN) {
		bool mbz = true, ts = false;
		for (size_t i = 4; i < 16; i++)
			mbz &= p[i] == 0;
		for (size_t i = 16; i < 24; i++)
			ts |= p[i] != 0;
		if (mbz && ts)
			return STAMP_AUTH;
	}
	return len < STAMP_BASE_LEN ? STAMP_SHORT : STAMP_FULL;
}

uint16_t stamp_ssid(const uint8_t *p, size_t len)
{
	return len >= 16 ? stamp_get16(p + 14) : 0;
}

/* Flags of an answered TLV: recognised and well formed; I stays as sent. */
static void tlv_ok(uint8_t *t)
{
	t[0] &= (uint8_t)~(STAMP_TLV_U | STAMP_TLV_M);
}

static void tlv_cos(uint8_t *v, const struct stamp_reflect_info *info,
		    struct stamp_tlv_stats *st)
{
	uint8_t dscp1 = v[0] >> 2;
	uint8_t dscp2 = info->tos >> 2;
	uint8_t ecn = info->tos & 3u;
	/* RP (Reverse Path) 0: the reply carries DSCP1; 1: it does not,
	 * because the reflector's policy keeps its own marking (stamp.c). */
	uint8_t rp = info->cos_apply ? 0 : 1;

	v[0] = (uint8_t)(dscp1 << 2 | dscp2 >> 4);
	v[1] = (uint8_t)((dscp2 & 0xfu) << 4 | ecn << 2 | rp);
	st->cos = true;
	st->cos_dscp1 = dscp1;
}

/* Walk the TLVs of n bytes at p (after the base packet), filling in the
 * ones the reflector implements and flagging the rest. */
static void tlv_walk(uint8_t *p, size_t n, const struct stamp_reflect_info *info,
		     struct stamp_tlv_stats *st)
{
	size_t off = 0;

	while (n - off >= 4) {
		uint8_t *t = p + off;
		uint8_t type = t[1];
		size_t vlen = stamp_get16(t + 2);
		uint8_t *v = t + 4;
		size_t want;

		st->tlvs++;
		if (vlen > n - off - 4) {
			/* Runs past the datagram: flag it, copy the rest as is. */
			t[0] = (uint8_t)((t[0] & ~STAMP_TLV_U) | STAMP_TLV_M);
			st->malformed++;
			return;
		}
		switch (type) {
		case STAMP_TLV_PADDING:
			want = vlen;
			break;
		case STAMP_TLV_TSINFO:
		case STAMP_TLV_COS:
			want = 4;
			break;
		case STAMP_TLV_DIRECT:
			want = 12;
			break;
		case STAMP_TLV_FOLLOWUP:
			want = 16;
			break;
		default:
			/* Unknown, or known but not acted on: Location, Access
			 * Report, HMAC (unauthenticated mode), and RFC 9503's
			 * Destination Node Address and Return Path, which would
			 * have the reflector send its reply somewhere else. */
			t[0] |= STAMP_TLV_U;
			st->unknown++;
			off += 4 + vlen;
			continue;
		}
		if (vlen != want) {
			t[0] = (uint8_t)((t[0] & ~STAMP_TLV_U) | STAMP_TLV_M);
			st->malformed++;
			return;
		}
		tlv_ok(t);
		switch (type) {
		case STAMP_TLV_TSINFO:
			v[0] = info->sync_src;
			v[1] = info->ts_in;
			v[2] = info->sync_src;
			v[3] = info->ts_out;
			break;
		case STAMP_TLV_COS:
			tlv_cos(v, info, st);
			break;
		case STAMP_TLV_DIRECT:
			/* v[0..3]: the sender's transmit counter, kept. */
			stamp_put32(v + 4, info->rx_count);
			stamp_put32(v + 8, info->tx_count);
			break;
		case STAMP_TLV_FOLLOWUP:
			st->followup = true;
			memset(v, 0, 16);
			if (info->followup) {
				stamp_put32(v, info->fu_seq);
				stamp_put64(v + 4, info->fu_time);
				v[12] = info->fu_mode;
			}
			break;
		default:
			break;
		}
		off += 4 + vlen;
	}
	/* One to three bytes that cannot be a TLV header: copied, counted. */
	if (off < n)
		st->malformed++;
}

size_t stamp_reflect(uint8_t *buf, size_t len, size_t cap,
		     const struct stamp_reflect_info *info, struct stamp_tlv_stats *st)
{
	struct stamp_tlv_stats scratch;
	size_t out = len;

	if (!st)
		st = &scratch;
	memset(st, 0, sizeof *st);
	if (len < STAMP_MIN_LEN || cap < STAMP_BASE_LEN)
		return 0;

	uint32_t sseq = stamp_get32(buf);
	uint64_t t1 = stamp_get64(buf + 4);
	uint16_t serr = stamp_get16(buf + 12);
	uint16_t ssid = stamp_ssid(buf, len);

	if (len < STAMP_BASE_LEN) {
		memset(buf + len, 0, STAMP_BASE_LEN - len);
		out = STAMP_BASE_LEN;
	}
	stamp_put32(buf, info->seq);
	stamp_put64(buf + 4, 0);
	stamp_put16(buf + 12, info->error);
	stamp_put16(buf + 14, ssid);
	stamp_put64(buf + 16, info->t2);
	stamp_put32(buf + 24, sseq);
	stamp_put64(buf + 28, t1);
	stamp_put16(buf + 36, serr);
	memset(buf + 38, 0, 6);
	buf[40] = info->ttl;

	if (len > STAMP_BASE_LEN)
		tlv_walk(buf + STAMP_BASE_LEN, len - STAMP_BASE_LEN, info, st);
	return out;
}

void stamp_set_t3(uint8_t *reply, uint64_t t3)
{
	stamp_put64(reply + 4, t3);
}

uint64_t stamp_ntp_from_ns(uint64_t unix_ns)
{
	uint64_t sec = unix_ns / NS_PER_S + STAMP_NTP_UNIX_OFFSET;
	uint64_t frac = ((unix_ns % NS_PER_S) << 32) / NS_PER_S;
	/* The 32-bit seconds wrap in 2036 (NTP era 1), as on the wire. */
	return (sec & 0xffffffffu) << 32 | frac;
}

uint64_t stamp_ntp_to_ns(uint64_t ntp)
{
	uint64_t sec = ntp >> 32;
	uint64_t frac = ntp & 0xffffffffu;

	if (sec < STAMP_NTP_UNIX_OFFSET)
		return 0;
	return (sec - STAMP_NTP_UNIX_OFFSET) * NS_PER_S +
	       ((frac * NS_PER_S + (1u << 31)) >> 32);
}

/* A million seconds: beyond any error worth reporting, and small enough
 * that the arithmetic below cannot overflow. */
#define ERR_MAX_NS (1000000ull * NS_PER_S)

uint16_t stamp_error_estimate(bool synced, uint64_t err_ns)
{
	if (err_ns > ERR_MAX_NS)
		err_ns = ERR_MAX_NS;
	/* In units of 2^-32 s, rounded up. */
	uint64_t units = (err_ns / NS_PER_S) << 32;
	units += (((err_ns % NS_PER_S) << 32) + NS_PER_S - 1) / NS_PER_S;

	unsigned scale = 0;
	uint64_t mult = units;
	while (mult > 255 && scale < 63) {
		scale++;
		mult = (units + (1ull << scale) - 1) >> scale;
	}
	if (mult == 0)
		mult = 1;
	return (uint16_t)((synced ? 0x8000u : 0) | scale << 8 | (unsigned)mult);
}

uint64_t stamp_error_ns(uint16_t e)
{
	unsigned scale = (e >> 8) & 0x3fu;
	uint64_t mult = e & 0xffu;

	if (scale >= 32) {
		unsigned sh = scale - 32;
		if (sh > 26)   /* 255 * 2^26 s in ns is just below 2^64 */
			return UINT64_MAX;
		return (mult << sh) * NS_PER_S;
	}
	return ((mult * NS_PER_S) + (1ull << (32 - scale)) - 1) >> (32 - scale);
}
