/* Unit tests for the STAMP packet and TLV codec (src/stamp_pkt.c) and the
 * session table (src/stamp_sess.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "stamp_pkt.h"
#include "stamp_sess.h"

static const struct stamp_reflect_info INFO = {
	.seq = 0x01020304,
	.t2 = 0x1111111122222222ull,
	.error = 0x8123,
	.ttl = 61,
	.tos = 46 << 2 | 2,
	.sync_src = STAMP_SYNC_NTP,
	.ts_in = STAMP_TSM_SW,
	.ts_out = STAMP_TSM_SW,
	.rx_count = 9,
	.tx_count = 8,
	.followup = true,
	.fu_seq = 7,
	.fu_time = 0xaaaaaaaabbbbbbbbull,
	.fu_mode = STAMP_TSM_SW,
};

/* A sender packet: seq, T1, error estimate, SSID, 28 MBZ, then tlvs. */
static size_t make_request(uint8_t *buf, uint32_t seq, uint64_t t1, uint16_t err,
			   uint16_t ssid, const uint8_t *tlvs, size_t tlen)
{
	memset(buf, 0, STAMP_BASE_LEN);
	stamp_put32(buf, seq);
	stamp_put64(buf + 4, t1);
	stamp_put16(buf + 12, err);
	stamp_put16(buf + 14, ssid);
	if (tlen)
		memcpy(buf + STAMP_BASE_LEN, tlvs, tlen);
	return STAMP_BASE_LEN + tlen;
}

static size_t put_tlv(uint8_t *p, uint8_t flags, uint8_t type, uint16_t len)
{
	p[0] = flags;
	p[1] = type;
	stamp_put16(p + 2, len);
	memset(p + 4, 0x5a, len);
	return 4u + len;
}

Test(stamp_pkt, classify)
{
	uint8_t b[200] = { 0 };
	cr_assert_eq(stamp_classify(b, 0), STAMP_RUNT);
	cr_assert_eq(stamp_classify(b, 13), STAMP_RUNT);
	cr_assert_eq(stamp_classify(b, 14), STAMP_SHORT);
	cr_assert_eq(stamp_classify(b, 43), STAMP_SHORT);
	cr_assert_eq(stamp_classify(b, 44), STAMP_FULL);
	/* 112 bytes: MBZ at 4..15 and a timestamp at 16 is the
	 * authenticated layout; a T1 at 4 is not. */
	b[16] = 0xe0;
	cr_assert_eq(stamp_classify(b, 112), STAMP_AUTH);
	cr_assert_eq(stamp_classify(b, 111), STAMP_FULL, "too short to be authenticated");
	b[4] = 0xe0;
	cr_assert_eq(stamp_classify(b, 112), STAMP_FULL);
}

Test(stamp_pkt, reflect_base_fields)
{
	uint8_t b[128];
	size_t n = make_request(b, 42, 0x9999999988888888ull, 0x0105, 0xbeef, NULL, 0);
	struct stamp_tlv_stats st;

	cr_assert_eq(stamp_reflect(b, n, sizeof b, &INFO, &st), 44);
	cr_assert_eq(stamp_get32(b), INFO.seq);
	cr_assert_eq(stamp_get64(b + 4), 0, "T3 is written at send time");
	cr_assert_eq(stamp_get16(b + 12), INFO.error);
	cr_assert_eq(stamp_get16(b + 14), 0xbeef);
	cr_assert_eq(stamp_get64(b + 16), INFO.t2);
	cr_assert_eq(stamp_get32(b + 24), 42);
	cr_assert_eq(stamp_get64(b + 28), 0x9999999988888888ull);
	cr_assert_eq(stamp_get16(b + 36), 0x0105);
	cr_assert_eq(stamp_get16(b + 38), 0);
	cr_assert_eq(b[40], 61);
	cr_assert_eq(b[41] | b[42] | b[43], 0);
	cr_assert_eq(st.tlvs, 0);
	stamp_set_t3(b, 0x123456789abcdef0ull);
	cr_assert_eq(stamp_get64(b + 4), 0x123456789abcdef0ull);
}

Test(stamp_pkt, short_request_padded_to_44)
{
	uint8_t b[64];
	memset(b, 0xee, sizeof b);
	stamp_put32(b, 5);
	stamp_put64(b + 4, 77);
	stamp_put16(b + 12, 3);
	cr_assert_eq(stamp_reflect(b, 14, sizeof b, &INFO, NULL), 44);
	cr_assert_eq(stamp_get32(b + 24), 5);
	cr_assert_eq(stamp_get64(b + 28), 77);
	cr_assert_eq(stamp_get16(b + 36), 3);
	cr_assert_eq(stamp_get16(b + 14), 0, "no SSID in 14 bytes");
	cr_assert_eq(b[41] | b[42] | b[43], 0, "the padding is zeroed");
	cr_assert_eq(stamp_reflect(b, 13, sizeof b, &INFO, NULL), 0, "runt");
	cr_assert_eq(stamp_reflect(b, 20, 43, &INFO, NULL), 0, "no room for 44");
}

Test(stamp_pkt, implemented_tlvs)
{
	uint8_t t[128], b[256];
	size_t tl = 0;
	tl += put_tlv(t + tl, STAMP_TLV_U, STAMP_TLV_PADDING, 6);
	size_t tsi = tl;
	tl += put_tlv(t + tl, STAMP_TLV_U, STAMP_TLV_TSINFO, 4);
	size_t cos = tl;
	tl += put_tlv(t + tl, 0, STAMP_TLV_COS, 4);
	t[cos + 4] = 12 << 2;                    /* DSCP1 = 12 */
	size_t dm = tl;
	tl += put_tlv(t + tl, 0, STAMP_TLV_DIRECT, 12);
	stamp_put32(t + dm + 4, 1234);
	size_t fu = tl;
	tl += put_tlv(t + tl, 0, STAMP_TLV_FOLLOWUP, 16);
	size_t n = make_request(b, 1, 2, 3, 4, t, tl);
	struct stamp_tlv_stats st;

	cr_assert_eq(stamp_reflect(b, n, sizeof b, &INFO, &st), n);
	uint8_t *r = b + STAMP_BASE_LEN;
	cr_assert_eq(st.tlvs, 5);
	cr_assert_eq(st.unknown, 0);
	cr_assert_eq(st.malformed, 0);
	cr_assert_eq(r[0], 0, "U cleared on a recognised TLV");
	cr_assert_eq(r[4], 0x5a, "padding copied");
	cr_assert_eq(r[tsi], 0);
	cr_assert_eq(r[tsi + 4], STAMP_SYNC_NTP);
	cr_assert_eq(r[tsi + 5], STAMP_TSM_SW);
	cr_assert_eq(r[tsi + 6], STAMP_SYNC_NTP);
	cr_assert_eq(r[tsi + 7], STAMP_TSM_SW);
	cr_assert_eq(r[cos + 4] >> 2, 12, "DSCP1 kept");
	cr_assert_eq((r[cos + 4] & 3) << 4 | r[cos + 5] >> 4, 46, "DSCP2 received");
	cr_assert_eq((r[cos + 5] >> 2) & 3, 2, "ECN received");
	cr_assert_eq(r[cos + 5] & 3, 1, "RP: DSCP1 not applied");
	cr_assert(st.cos);
	cr_assert_eq(st.cos_dscp1, 12);
	/* class_of_service = apply: RP = 0. */
	struct stamp_reflect_info apply = INFO;
	apply.cos_apply = true;
	uint8_t b2[256];
	size_t n2 = make_request(b2, 1, 2, 3, 4, t, tl);
	stamp_reflect(b2, n2, sizeof b2, &apply, NULL);
	cr_assert_eq(b2[STAMP_BASE_LEN + cos + 5] & 3, 0, "RP: DSCP1 applied");
	cr_assert_eq(stamp_get32(r + dm + 4), 1234, "sender's counter kept");
	cr_assert_eq(stamp_get32(r + dm + 8), 9);
	cr_assert_eq(stamp_get32(r + dm + 12), 8);
	cr_assert_eq(stamp_get32(r + fu + 4), 7);
	cr_assert_eq(stamp_get64(r + fu + 8), INFO.fu_time);
	cr_assert_eq(r[fu + 16], STAMP_TSM_SW);
	cr_assert_eq(r[fu + 17] | r[fu + 18] | r[fu + 19], 0);

	/* Without a previous reply the Follow-Up is all zero. */
	struct stamp_reflect_info none = INFO;
	none.followup = false;
	n = make_request(b, 1, 2, 3, 4, t, tl);
	stamp_reflect(b, n, sizeof b, &none, &st);
	for (size_t i = 4; i < 20; i++)
		cr_assert_eq(b[STAMP_BASE_LEN + fu + i], 0);
}

Test(stamp_pkt, unknown_and_redirecting_tlvs_get_u)
{
	uint8_t t[64], b[128];
	size_t tl = 0;
	uint8_t types[] = { STAMP_TLV_LOCATION, STAMP_TLV_HMAC, STAMP_TLV_DEST_ADDR,
			    STAMP_TLV_RETURN_PATH, 200 };
	for (size_t i = 0; i < sizeof types; i++)
		tl += put_tlv(t + tl, 0, types[i], 3);
	size_t n = make_request(b, 1, 2, 3, 4, t, tl);
	struct stamp_tlv_stats st;
	stamp_reflect(b, n, sizeof b, &INFO, &st);
	cr_assert_eq(st.unknown, sizeof types);
	for (size_t i = 0; i < sizeof types; i++) {
		const uint8_t *r = b + STAMP_BASE_LEN + i * 7;
		cr_assert_eq(r[0], STAMP_TLV_U, "type %u", types[i]);
		cr_assert_eq(r[4], 0x5a, "value copied");
	}
}

Test(stamp_pkt, malformed_tlvs_get_m_and_the_rest_is_copied)
{
	uint8_t t[64], b[128], want[128];
	size_t tl = put_tlv(t, 0, STAMP_TLV_TSINFO, 8);   /* wrong length */
	tl += put_tlv(t + tl, 0, STAMP_TLV_DIRECT, 12);
	size_t n = make_request(b, 1, 2, 3, 4, t, tl);
	struct stamp_tlv_stats st;
	stamp_reflect(b, n, sizeof b, &INFO, &st);
	cr_assert_eq(st.malformed, 1);
	cr_assert_eq(b[STAMP_BASE_LEN], STAMP_TLV_M);
	memcpy(want, t, tl);
	cr_assert_eq(memcmp(b + STAMP_BASE_LEN + 1, want + 1, tl - 1), 0, "nothing else touched");

	/* Running past the end. */
	tl = put_tlv(t, STAMP_TLV_U, STAMP_TLV_PADDING, 4);
	t[tl] = 0;
	t[tl + 1] = STAMP_TLV_COS;
	stamp_put16(t + tl + 2, 1000);
	tl += 4;
	n = make_request(b, 1, 2, 3, 4, t, tl);
	stamp_reflect(b, n, sizeof b, &INFO, &st);
	cr_assert_eq(st.tlvs, 2);
	cr_assert_eq(st.malformed, 1);
	cr_assert_eq(b[STAMP_BASE_LEN + 8], STAMP_TLV_M);

	/* Trailing bytes that cannot be a header. */
	n = make_request(b, 1, 2, 3, 4, (const uint8_t *)"\x01\x02", 2);
	stamp_reflect(b, n, sizeof b, &INFO, &st);
	cr_assert_eq(st.tlvs, 0);
	cr_assert_eq(st.malformed, 1);
	cr_assert_eq(b[44], 1);
	cr_assert_eq(b[45], 2);
}

Test(stamp_pkt, ntp_conversion)
{
	cr_assert_eq(stamp_ntp_from_ns(0), (uint64_t)STAMP_NTP_UNIX_OFFSET << 32);
	cr_assert_eq(stamp_ntp_from_ns(500000000), ((uint64_t)STAMP_NTP_UNIX_OFFSET << 32) | 0x80000000u);
	uint64_t samples[] = { 1, 999999999, 1764633600123456789ull, 2085978495999999999ull };
	for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
		uint64_t back = stamp_ntp_to_ns(stamp_ntp_from_ns(samples[i]));
		cr_assert(back <= samples[i] && samples[i] - back <= 1, "%lu -> %lu",
			  (unsigned long)samples[i], (unsigned long)back);
	}
	cr_assert_eq(stamp_ntp_to_ns(0), 0, "before 1970");
	/* Monotone: a later time never encodes smaller (within the era). */
	uint64_t prev = 0;
	for (uint64_t ns = 1764633600000000000ull; ns < 1764633600000000000ull + 5000; ns += 7) {
		uint64_t v = stamp_ntp_from_ns(ns);
		cr_assert_geq(v, prev);
		prev = v;
	}
}

Test(stamp_pkt, error_estimate)
{
	uint16_t e = stamp_error_estimate(true, 0);
	cr_assert_eq(e, 0x8001, "S, scale 0, multiplier 1 (never 0)");
	cr_assert_eq(stamp_error_estimate(false, 0) & 0x8000, 0);
	uint64_t errs[] = { 1, 1000, 50000, 1000000, 16000000000ull, 2000000000000000ull };
	for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
		e = stamp_error_estimate(false, errs[i]);
		cr_assert_eq(e & 0x4000, 0, "Z = 0 (NTP)");
		cr_assert_neq(e & 0xff, 0);
		uint64_t back = stamp_error_ns(e);
		uint64_t want = errs[i] > 1000000000000000ull ? 1000000000000000ull : errs[i];
		cr_assert_geq(back, want, "never claims better than it is: %lu", (unsigned long)errs[i]);
		/* Eight bits of mantissa: within 1/128 above, or a few ns. */
		cr_assert_leq(back, want + want / 100 + 2, "%lu -> %lu", (unsigned long)want,
			      (unsigned long)back);
	}
	/* 1 ms: 4294967.296 units of 2^-32 s -> scale 15, multiplier 132. */
	e = stamp_error_estimate(true, 1000000);
	cr_assert_eq((e >> 8) & 0x3f, 15);
	cr_assert_eq(e & 0xff, 132);
	cr_assert_eq(stamp_error_ns(0x3fff), UINT64_MAX, "huge scales saturate");
}

/* ---- sessions ------------------------------------------------------------ */

static const uint8_t SEED[STAMP_SESS_SEED_LEN] = { 1, 2, 3 };

static void key_of(uint8_t k[STAMP_SESS_KEY_LEN], unsigned n)
{
	memset(k, 0, STAMP_SESS_KEY_LEN);
	memcpy(k, &n, sizeof n);
}

Test(stamp_sess, counters_per_session)
{
	struct stamp_sessions *t = stamp_sessions_new(4, 1000, SEED);
	uint8_t a[STAMP_SESS_KEY_LEN], b[STAMP_SESS_KEY_LEN];
	bool created;
	key_of(a, 1);
	key_of(b, 2);
	struct stamp_session *s = stamp_sessions_get(t, a, 10, &created);
	cr_assert(created);
	cr_assert_eq(s->next_seq++, 0);
	s = stamp_sessions_get(t, a, 20, &created);
	cr_assert_not(created);
	cr_assert_eq(s->next_seq++, 1);
	struct stamp_session *s2 = stamp_sessions_get(t, b, 30, &created);
	cr_assert(created);
	cr_assert_neq(s, s2);
	cr_assert_eq(s2->next_seq, 0);
	uint32_t idx = stamp_sessions_index(t, s), gen = s->gen;
	cr_assert_eq(stamp_sessions_at(t, idx, gen), s);
	cr_assert_null(stamp_sessions_at(t, idx, gen + 1));
	cr_assert_null(stamp_sessions_at(t, 3, 0), "never handed out");
	/* Idle past the expiry: the same key starts over. */
	s = stamp_sessions_get(t, a, 20 + 1000, &created);
	cr_assert(created);
	cr_assert_eq(s->next_seq, 0);
	cr_assert_null(stamp_sessions_at(t, idx, gen), "late stamps find nothing");
	cr_assert_eq(stamp_sessions_counters(t)->expired, 1);
	stamp_sessions_free(t);
}

Test(stamp_sess, full_table_refuses_live_and_reuses_idle)
{
	struct stamp_sessions *t = stamp_sessions_new(3, 100, SEED);
	uint8_t k[STAMP_SESS_KEY_LEN];
	bool created;
	for (unsigned i = 0; i < 3; i++) {
		key_of(k, i);
		cr_assert_not_null(stamp_sessions_get(t, k, i, &created));
	}
	key_of(k, 99);
	cr_assert_null(stamp_sessions_get(t, k, 50, &created), "all live");
	cr_assert_eq(stamp_sessions_counters(t)->refused, 1);
	/* Key 0 was last seen at 0: idle at 100, and the longest idle. */
	cr_assert_not_null(stamp_sessions_get(t, k, 100, &created));
	cr_assert_eq(stamp_sessions_counters(t)->active, 3);
	key_of(k, 0);
	cr_assert_null(stamp_sessions_get(t, k, 100, &created), "its slot went to 99");
	key_of(k, 1);
	cr_assert_not_null(stamp_sessions_get(t, k, 101, &created), "still known");
	cr_assert(created, "but idle, so restarted");
	/* Many keys through a small table: never more than its capacity. */
	for (unsigned i = 1000; i < 5000; i++) {
		key_of(k, i);
		stamp_sessions_get(t, k, 1000 + (uint64_t)i * 100, &created);
	}
	cr_assert_eq(stamp_sessions_counters(t)->active, 3);
	cr_assert_leq(stamp_sessions_memory(3), 4096);
	stamp_sessions_free(t);
	cr_assert_null(stamp_sessions_new(0, 1, SEED));
}
