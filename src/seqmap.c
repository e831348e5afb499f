/*
 * seqmap: see include/seqmap.h.  The table is one calloc'd array indexed by
 * sequence number; the kernel only backs the pages that sequence numbers
 * actually touched, so a map with few probes stays small in practice.
 */
#include <errno.h>
#include <stdlib.h>
#include "seqmap.h"

struct seqmap {
	uint64_t hold_ns;
	uint64_t clock;                  /* newest time written to an entry */
	uint32_t cursor;                 /* next sequence number to try */
	struct seqmap_entry e[SEQMAP_SIZE];
};

#define TIME_BITS 48
#define TIME_MASK ((UINT64_C(1) << TIME_BITS) - 1)

static void set_time(struct seqmap *m, struct seqmap_entry *e, uint64_t ns)
{
	e->send_lo = (uint32_t)ns;
	e->send_hi = (uint16_t)(ns >> 32);
	if (ns > m->clock)
		m->clock = ns;
}

/* The full time of an entry written at most 2^48 ns before m->clock. */
static uint64_t get_time(const struct seqmap *m, const struct seqmap_entry *e)
{
	uint64_t low = (uint64_t)e->send_hi << 32 | e->send_lo;

	return m->clock - ((m->clock - low) & TIME_MASK);
}

struct seqmap *seqmap_new(uint64_t hold_ns)
{
	struct seqmap *m = calloc(1, sizeof *m);

	if (m)
		m->hold_ns = hold_ns;
	return m;
}

void seqmap_free(struct seqmap *m)
{
	free(m);
}

void seqmap_set_hold(struct seqmap *m, uint64_t hold_ns)
{
	m->hold_ns = hold_ns;
}

uint64_t seqmap_hold(const struct seqmap *m)
{
	return m->hold_ns;
}

static bool reusable(const struct seqmap *m, const struct seqmap_entry *e,
		     uint64_t now_ns)
{
	if (e->state == SEQ_FREE)
		return true;
	if (e->linked || e->state == SEQ_RESERVED || e->state == SEQ_OUTSTANDING)
		return false;
	/* A clock that went nowhere (or a send time in the future, which
	 * cannot happen with CLOCK_MONOTONIC) must not make the age wrap. */
	uint64_t sent = get_time(m, e);

	return now_ns >= sent && now_ns - sent >= m->hold_ns;
}

int seqmap_reserve(struct seqmap *m, uint32_t probe, uint64_t now_ns)
{
	for (uint32_t i = 0; i < SEQMAP_SCAN; i++) {
		uint32_t seq = (m->cursor + i) & (SEQMAP_SIZE - 1);
		struct seqmap_entry *e = &m->e[seq];

		if (!reusable(m, e, now_ns))
			continue;
		e->state = SEQ_RESERVED;
		e->linked = 0;
		e->probe = probe & (SEQMAP_MAX_PROBES - 1);
		set_time(m, e, now_ns);
		m->cursor = (seq + 1) & (SEQMAP_SIZE - 1);
		return (int)seq;
	}
	errno = EBUSY;
	return -1;
}

void seqmap_commit(struct seqmap *m, struct seqmap_chain *chain, uint16_t seq,
		   uint64_t send_ns)
{
	struct seqmap_entry *e = &m->e[seq];

	e->state = SEQ_OUTSTANDING;
	set_time(m, e, send_ns);
	e->linked = 1;
	e->next = 0;
	if (chain->count)
		m->e[chain->tail].next = seq;
	else
		chain->head = seq;
	chain->tail = seq;
	chain->count++;
}

void seqmap_release(struct seqmap *m, uint16_t seq)
{
	struct seqmap_entry *e = &m->e[seq];

	if (e->state == SEQ_RESERVED)
		e->state = SEQ_FREE;
}

struct seqmap_info seqmap_get(const struct seqmap *m, uint16_t seq)
{
	const struct seqmap_entry *e = &m->e[seq];

	return (struct seqmap_info){
		.send_ns = get_time(m, e), .probe = e->probe, .state = e->state,
	};
}

void seqmap_set_send_ns(struct seqmap *m, uint16_t seq, uint64_t send_ns)
{
	struct seqmap_entry *e = &m->e[seq];

	if (e->state == SEQ_OUTSTANDING)
		set_time(m, e, send_ns);
}

enum seqmap_state seqmap_resolve(struct seqmap *m, uint16_t seq, enum seqmap_state to)
{
	struct seqmap_entry *e = &m->e[seq];
	enum seqmap_state was = e->state;

	if (was == SEQ_OUTSTANDING)
		e->state = to & 7;
	return was;
}

enum seqmap_state seqmap_mark_late(struct seqmap *m, uint16_t seq)
{
	struct seqmap_entry *e = &m->e[seq];
	enum seqmap_state was = e->state;

	if (was == SEQ_LOST)
		e->state = SEQ_LATE;
	return was;
}

enum seqmap_state seqmap_pop(struct seqmap *m, struct seqmap_chain *chain)
{
	struct seqmap_entry *e;
	enum seqmap_state was;

	if (chain->count == 0)
		return SEQ_FREE;
	e = &m->e[chain->head];
	was = e->state;
	if (was == SEQ_OUTSTANDING)
		e->state = SEQ_LOST;
	e->linked = 0;
	if (--chain->count)
		chain->head = e->next;
	return was;
}

size_t seqmap_forget(struct seqmap *m, bool (*gone)(uint32_t probe, void *arg),
		     void *arg)
{
	size_t n = 0;

	for (uint32_t i = 0; i < SEQMAP_SIZE; i++) {
		struct seqmap_entry *e = &m->e[i];

		if (e->state == SEQ_FREE || e->state == SEQ_DEAD)
			continue;
		if (!gone(e->probe, arg))
			continue;
		/* A reserved entry is mid-send and owned by the caller. */
		if (e->state == SEQ_RESERVED)
			continue;
		e->state = SEQ_DEAD;
		e->linked = 0;
		n++;
	}
	return n;
}

const char *seqmap_state_name(enum seqmap_state st)
{
	static const char *const names[] = {
		[SEQ_FREE] = "free", [SEQ_RESERVED] = "reserved",
		[SEQ_OUTSTANDING] = "outstanding", [SEQ_ANSWERED] = "answered",
		[SEQ_LOST] = "lost", [SEQ_DEAD] = "dead", [SEQ_LATE] = "late",
	};

	if ((unsigned)st >= sizeof names / sizeof names[0])
		return "unknown";
	return names[st];
}
