/*
 * history: per-probe latency rounds and their consolidated tiers, and the
 * on-disk form of both.  Pure: no clocks, no I/O.  The caller passes the
 * wall-clock time of each outcome (rounds are aligned to multiples of the
 * step in CLOCK_REALTIME, like RRD, so that they mean the same thing after
 * a restart) and reads and writes byte buffers.
 *
 * A round is `step` long (history_step, 60 s by default).  It records how
 * many requests were resolved in it (sent), how many of those were lost,
 * and the distribution of the RTTs received: HISTORY_Q quantiles at 0, 10,
 * ..., 100 % (so q[0] is the minimum, q[5] the median, q[10] the maximum),
 * each as a 16-bit code (history_rtt_encode: exact below 2048 ns, then
 * 11 significant bits, a relative error under 0.025 %).  An outcome belongs
 * to the round in which it was resolved: a reply when it arrived, a loss
 * when its timeout passed.
 *
 * Tiers, like an RRD's archives (ratios to the step, rounds kept):
 *   tier 0   1 x step   180 rounds   (3 h at 1 min)
 *   tier 1   5 x step   360 rounds   (30 h at 5 min)
 *   tier 2  60 x step   240 rounds   (10 d at 1 h)
 * A coarse round is made from the finer tier's rounds of its window when
 * the finer tier moves past that window: sent and lost are summed, the
 * minimum and maximum are the extremes, every other quantile is the mean of
 * the finer rounds' quantile weighted by their replies (SmokePing's AVERAGE
 * of each sorted rank).  Reading the newest, still open window of a coarse
 * tier computes it the same way on the fly, so coarse graphs do not lag.
 *
 * Besides the rounds, a history keeps what `beaconctl target NAME` shows
 * of the probe's recent past: the last HISTORY_RECENT outcomes in order
 * (RTT codes, or HISTORY_RECENT_LOST) with the wall-clock time of the
 * newest, and the last HISTORY_STATES up/down changes.  Neither is in the
 * file: after a restart they start empty (the rounds carry the long view).
 *
 * Memory with the defaults, in two parts: the struct (832 bytes on LP64
 * in whole cache lines: about 120 of counters and pointers, 32 x 2 bytes
 * of recent outcomes, 16 x 8 bytes of state changes and
 * HISTORY_SAMPLES_MAX x 2 bytes of samples for the open round) and 780
 * rounds x 30 bytes (struct history_round, 23 424 in whole cache lines) =
 * 24 256 bytes per probe; with the daemon's entry for it (history_svc.c:
 * about 170 bytes with the names and malloc's headers) under the goal of
 * 24 KiB, 24 576.  Everything an outcome touches -- the open round's
 * counters, the recent ring, the samples -- is in the struct, three or
 * four cache lines of it; history_new puts the rounds right after it,
 * history_svc keeps structs and rounds in pools of their own (pool.h).
 * A round
 * with more replies than HISTORY_SAMPLES_MAX keeps a uniform random sample
 * of them (reservoir sampling, deterministic) for its interior quantiles;
 * its minimum, maximum and counts stay exact.
 */
#ifndef BEACOND_HISTORY_H
#define BEACOND_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HISTORY_Q 11                  /* quantiles 0, 10, ..., 100 % */
#define HISTORY_MEDIAN 5
#define HISTORY_TIERS 3
#define HISTORY_SAMPLES_MAX 256
#define HISTORY_NONE UINT64_MAX       /* no slot yet */
#define HISTORY_STEP_MIN_NS 1000000000ULL          /* 1 s */
#define HISTORY_STEP_MAX_NS (3600ULL * 1000000000ULL) /* 1 h */
#define HISTORY_STEP_DEFAULT_NS (60ULL * 1000000000ULL)
#define HISTORY_RECENT 32             /* outcomes kept in order */
#define HISTORY_RECENT_LOST UINT16_MAX /* a lost one among them (no RTT code is
				       * this: replies are clamped below it) */
#define HISTORY_STATES 16             /* up/down changes kept */

/* Ratio of each tier's round to the step, and rounds kept. */
extern const uint32_t history_tier_ratio[HISTORY_TIERS];
extern const uint32_t history_tier_len[HISTORY_TIERS];

/* 16-bit words only, so the struct is 30 bytes with no padding. */
struct history_round {
	uint16_t q[HISTORY_Q];        /* RTT codes; all 0 when nothing was received */
	uint16_t sent[2], lost[2];    /* 32-bit counts, low word first */
};

/* The tiers' rounds are one array (tier 0's, then 1's, then 2's; slot s of
 * tier k at its s % len), apart from the struct: history_new puts it right
 * after, history_svc in a pool of its own, so that the structs, which
 * every outcome touches, lie close together. */
struct history_tier {
	uint64_t last;                /* newest slot stored, or HISTORY_NONE */
};

/* One up/down change: the probe's enum health_state values (stats.h;
 * the history does not interpret them, but keeps 4 bits of each) and the
 * time, kept to the microsecond. */
struct history_state_change {
	uint64_t wall_ns;             /* CLOCK_REALTIME */
	uint8_t from, to;
};

struct history {
	/* What every outcome touches comes first, in HISTORY_HOT_BYTES
	 * (history_new aligns the struct to a cache line): an outcome then
	 * costs two cache lines of it, not four, and with 10 000 probes each
	 * line is a miss. */
	uint64_t step_ns;
	/* The open round. */
	uint64_t cur_slot;            /* HISTORY_NONE: none open */
	uint32_t cur_sent, cur_lost, cur_recv;
	uint16_t cur_min, cur_max;
	uint16_t n_samples;
	uint32_t rng;
	/* Rings: the oldest of n entries is at next - n (mod the size). */
	uint64_t recent_wall_ns;      /* the newest outcome's time; 0 before the first */
	uint8_t recent_n, recent_next;
	uint8_t states_n, states_next;
	uint16_t recent[HISTORY_RECENT];
	/* What closing a round and the readers use. */
	struct history_tier tier[HISTORY_TIERS];
	struct history_round *rounds; /* history_rounds_size() bytes */
	uint64_t dropped;             /* outcomes older than the newest round (clock stepped back) */
	uint64_t states[HISTORY_STATES];   /* us << 8 | from << 4 | to */
	/* The open round's RTT codes in arrival order (a reservoir sample
	 * once there are more); sorted when it closes. */
	uint16_t samples[HISTORY_SAMPLES_MAX];
};
#define HISTORY_HOT_BYTES 128

/* A round's counts as plain numbers. */
static inline uint32_t history_round_sent(const struct history_round *r)
{
	return (uint32_t)r->sent[0] | (uint32_t)r->sent[1] << 16;
}
static inline uint32_t history_round_lost(const struct history_round *r)
{
	return (uint32_t)r->lost[0] | (uint32_t)r->lost[1] << 16;
}
static inline bool history_round_empty(const struct history_round *r)
{
	return history_round_sent(r) == 0;
}

uint16_t history_rtt_encode(uint64_t ns);
uint64_t history_rtt_decode(uint16_t code);

/* A fresh history (step within HISTORY_STEP_MIN_NS..MAX).  NULL on ENOMEM
 * or a bad step (errno EINVAL). */
struct history *history_new(uint64_t step_ns);
void history_free(struct history *h);
/* For a caller that places histories itself (history_svc's pools): the
 * bytes of the struct and of its rounds (multiples of 64; their sum is
 * history_memory), making one in head and rounds (both 64-byte aligned;
 * NULL and errno EINVAL on a bad step), and copying one.  Such a history
 * is not history_free()d: its two parts are the caller's. */
size_t history_head_size(void);
size_t history_rounds_size(void);
struct history *history_init(void *head, void *rounds, uint64_t step_ns);
struct history *history_copy(void *head, void *rounds, const struct history *h);
/* Bytes the history holds (for the memory goal and the bench). */
size_t history_memory(const struct history *h);

/* One outcome at wall-clock wall_ns: rtt_ns, or STATS_NO_RTT (UINT64_MAX)
 * when the request was lost.  Closes the open round first when wall_ns is
 * past its end.  Returns false when the outcome was older than the newest
 * round (dropped and counted). */
bool history_add(struct history *h, uint64_t wall_ns, uint64_t rtt_ns);
/* Close the open round if wall_ns is past its end (force: in any case, as
 * at stop, so a partial round is kept). */
void history_tick(struct history *h, uint64_t wall_ns, bool force);

/* The last outcomes history_add saw (dropped ones too: the order of
 * arrival is what they show), oldest first, into out[HISTORY_RECENT]:
 * RTT codes or HISTORY_RECENT_LOST.  Returns how many. */
size_t history_recent(const struct history *h, uint16_t *out);
/* Record an up/down change at wall_ns (the oldest of HISTORY_STATES is
 * forgotten). */
void history_state_add(struct history *h, uint64_t wall_ns, uint8_t from, uint8_t to);
/* The changes kept, oldest first, into out[HISTORY_STATES]; how many. */
size_t history_states(const struct history *h, struct history_state_change *out);

/* Slot length of a tier, in ns. */
static inline uint64_t history_tier_step(const struct history *h, unsigned tier)
{
	return h->step_ns * history_tier_ratio[tier];
}
/* The newest slot a tier can answer for (its own, or the open window made
 * from the finer tiers); HISTORY_NONE when the history is empty. */
uint64_t history_newest(const struct history *h, unsigned tier);
/* The round of tier `tier` at slot `slot`; false when there is none (a gap,
 * or too old). */
bool history_get(const struct history *h, unsigned tier, uint64_t slot,
		 struct history_round *out);

/*
 * Files.  One file per probe:
 *   magic "BCNDHIST", u32 version (1), u32 body length,
 *   u64 step_ns, u64 saved_wall_ns, u8 family, u8 tiers (3), u16 0,
 *   u16 target length, target, u16 host length, host,
 *   per tier: u32 ratio, u32 len, u64 last slot, u32 rounds,
 *             then that many { u32 age (last - slot), u32 sent, u32 lost,
 *             u16 q[11] } oldest first,
 *   u32 CRC-32 (zlib) of everything before it.
 * Little-endian throughout.  Only non-empty rounds are written.
 */
#define HISTORY_FILE_VERSION 1
#define HISTORY_NAME_MAX 255

struct history_ident {
	char target[HISTORY_NAME_MAX + 1];
	char host[HISTORY_NAME_MAX + 1];
	uint8_t family;
	uint64_t saved_wall_ns;
};

/* An upper bound of the encoded size. */
size_t history_encoded_max(const struct history *h, const struct history_ident *id);
/* Encode into buf (cap >= history_encoded_max); returns the length, or 0
 * when it does not fit. */
size_t history_encode(const struct history *h, const struct history_ident *id,
		      uint8_t *buf, size_t cap);
/* Decode a file.  check_crc false skips the checksum (the fuzzer, so it
 * reaches the structure).  0 and *out, *id set; -1 with a reason in err
 * (truncated, bad magic, version, checksum, inconsistent content). */
int history_decode(const uint8_t *buf, size_t len, bool check_crc,
		   struct history **out, struct history_ident *id,
		   char *err, size_t errlen);

/* Totals of one round (used by JSON and the renderers). */
struct history_stats {
	uint64_t sent, lost;
	uint64_t rtt_min_ns, rtt_max_ns, rtt_avg_ns, rtt_now_ns;  /* medians' avg; STATS_NO_RTT when none */
	double loss_now_pct;          /* the newest round's loss; < 0 when none */
	size_t rounds;                /* non-empty rounds */
};
/* Summary over slots [first, last] of a tier: avg/min/max of the median,
 * the newest median and loss. */
void history_summary(const struct history *h, unsigned tier, uint64_t first,
		     uint64_t last, struct history_stats *out);

#endif
