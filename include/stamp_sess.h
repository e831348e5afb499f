/*
 * stamp_sess: the stateful reflector's sessions, in a table of fixed size.
 *
 * A session is keyed by its SSID and 4-tuple (STAMP_SESS_KEY_LEN bytes the
 * service builds) and keeps the reflector's own sequence counter, so a
 * sender sees its lost requests as gaps; also the counters of the Direct
 * Measurement TLV and the previous reply's transmit time for Follow-Up
 * Telemetry.  All memory is allocated by stamp_sessions_new.  When the
 * table is full, the session idle longest is reused if it has been idle
 * for the expiry time; otherwise the new session is refused (counted), so
 * a flood of spoofed sources cannot push live sessions out.  Lookup is a
 * SipHash under a random key; no system calls (time is passed in).
 */
#ifndef BEACOND_STAMP_SESS_H
#define BEACOND_STAMP_SESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAMP_SESS_KEY_LEN 40
#define STAMP_SESS_SEED_LEN 16

struct stamp_session {
	uint8_t key[STAMP_SESS_KEY_LEN];
	uint64_t last_ns;        /* CLOCK_MONOTONIC of the last request */
	uint32_t next_seq;       /* reflector sequence number of the next reply */
	uint32_t rx, tx;         /* requests received, replies sent */
	uint32_t gen;            /* bumped on each reuse, for late TX stamps */
	bool fu_valid;           /* fu_seq / fu_ns hold the previous reply */
	uint32_t fu_seq;
	uint64_t fu_ns;          /* its kernel transmit time, CLOCK_REALTIME ns */
	/* table links (indexes, UINT32_MAX = none) */
	uint32_t prev, next, hnext;
	bool used;
};

struct stamp_sessions;

struct stamp_sess_counters {
	uint64_t active;
	uint64_t created;
	uint64_t expired;        /* idle sessions dropped or reused */
	uint64_t refused;        /* table full of live sessions */
};

/* NULL with errno (EINVAL for capacity 0, ENOMEM). */
struct stamp_sessions *stamp_sessions_new(uint32_t capacity, uint64_t idle_ns,
					  const uint8_t seed[STAMP_SESS_SEED_LEN]);
void stamp_sessions_free(struct stamp_sessions *t);
void stamp_sessions_set_idle(struct stamp_sessions *t, uint64_t idle_ns);
uint32_t stamp_sessions_capacity(const struct stamp_sessions *t);
const struct stamp_sess_counters *stamp_sessions_counters(const struct stamp_sessions *t);
size_t stamp_sessions_memory(uint32_t capacity);

/* The session for key at now: found (idle ones restart from zero), or new;
 * NULL when refused.  *created tells a new (or restarted) session. */
struct stamp_session *stamp_sessions_get(struct stamp_sessions *t,
					 const uint8_t key[STAMP_SESS_KEY_LEN], uint64_t now_ns,
					 bool *created);
/* Index of a session, and the session at an index if it is in use with
 * generation gen (NULL otherwise): for transmit stamps that arrive later. */
uint32_t stamp_sessions_index(const struct stamp_sessions *t, const struct stamp_session *s);
struct stamp_session *stamp_sessions_at(struct stamp_sessions *t, uint32_t idx, uint32_t gen);

#endif
