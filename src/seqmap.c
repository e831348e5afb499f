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
	uint32_t cursor;                 /* next sequence number to try */
	struct seqmap_entry e[SEQMAP_SIZE];
};

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
	return now_ns >= e->send_ns && now_ns - e->send_ns >= m->hold_ns;
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
		e->probe = probe;
		e->send_ns = now_ns;
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
	e->send_ns = send_ns;
	e->linked = 1;
	e->next = 0;
	if (chain->tail >= 0)
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

const struct seqmap_entry *seqmap_get(const struct seqmap *m, uint16_t seq)
{
	return &m->e[seq];
}

void seqmap_set_send_ns(struct seqmap *m, uint16_t seq, uint64_t send_ns)
{
	struct seqmap_entry *e = &m->e[seq];

	if (e->state == SEQ_OUTSTANDING)
		e->send_ns = send_ns;
}

enum seqmap_state seqmap_resolve(struct seqmap *m, uint16_t seq, enum seqmap_state to)
{
	struct seqmap_entry *e = &m->e[seq];
	enum seqmap_state was = e->state;

	if (was == SEQ_OUTSTANDING)
		e->state = (uint8_t)to;
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

	if (chain->head < 0)
		return SEQ_FREE;
	e = &m->e[chain->head];
	was = e->state;
	if (was == SEQ_OUTSTANDING)
		e->state = SEQ_LOST;
	e->linked = 0;
	if (chain->head == chain->tail)
		chain->head = chain->tail = -1;
	else
		chain->head = e->next;
	chain->count--;
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
