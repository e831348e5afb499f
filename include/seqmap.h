/*
 * seqmap: ICMP sequence number -> (probe, send time) for one socket, with
 * reuse protection.  The table covers the whole 16-bit sequence space and is
 * allocated once, so reserving a sequence number on the send path never
 * allocates.
 *
 * Life of a sequence number:
 *   seqmap_reserve()   FREE -> RESERVED      (before sendto, to encode it)
 *   seqmap_commit()    RESERVED -> OUTSTANDING, appended to the probe's chain
 *   seqmap_release()   RESERVED -> FREE      (sendto failed)
 *   seqmap_resolve()   OUTSTANDING -> ANSWERED or LOST (reply, ICMP error)
 *   seqmap_pop()       unlinks the chain head once its timeout passed;
 *                      OUTSTANDING -> LOST (timed out)
 * Each probe owns a chain: the FIFO of its linked sequence numbers in send
 * order.  Because a probe's timeout is constant, its entries expire in chain
 * order, so one timer per probe at (head's send time + timeout) suffices.
 *
 * A sequence number is never reused while it is linked (outstanding, or
 * answered but its timeout not yet passed) nor within `hold` of its send
 * time, so a late reply or a duplicate is recognised as such instead of
 * being matched to a newer request.  ANSWERED, LOST and LATE entries keep
 * their probe and send time until reused, which is what tells a duplicate
 * (another reply to an ANSWERED or LATE entry) from a late reply (the first
 * reply to a LOST one).
 */
#ifndef BEACOND_SEQMAP_H
#define BEACOND_SEQMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEQMAP_SIZE 65536u
/* How many slots seqmap_reserve() examines before giving up. */
#define SEQMAP_SCAN 1024u

enum seqmap_state {
	SEQ_FREE = 0,     /* never used, or released */
	SEQ_RESERVED,     /* handed out, request not sent yet */
	SEQ_OUTSTANDING,  /* sent, awaiting reply */
	SEQ_ANSWERED,     /* reply received in time */
	SEQ_LOST,         /* timed out or refused by an ICMP error */
	SEQ_DEAD,         /* its probe was removed */
	SEQ_LATE,         /* lost, then answered after all (once) */
};

/* One sequence number: 12 bytes, 768 KiB for the whole table.  The send
 * time keeps its low 48 bits (3.2 days of nanoseconds); seqmap_get()
 * restores the rest from the newest time the map has seen, which is exact
 * for any entry younger than that -- and every entry whose time still
 * matters (in flight, or inside its hold) is at most an hour old. */
struct seqmap_entry {
	uint32_t send_lo;             /* send time, bits 0..31 */
	uint16_t send_hi;             /* send time, bits 32..47 */
	uint16_t next;                /* next seq in the probe's chain (when linked) */
	uint32_t probe : 28;          /* < SEQMAP_MAX_PROBES */
	uint32_t state : 3;           /* enum seqmap_state */
	uint32_t linked : 1;
};
#define SEQMAP_MAX_PROBES (1u << 28)

/* What seqmap_get() tells about a sequence number. */
struct seqmap_info {
	uint64_t send_ns;
	uint32_t probe;
	enum seqmap_state state;
};

/* Embedded in each probe: its FIFO of linked sequence numbers. */
struct seqmap_chain {
	uint16_t head, tail;          /* valid when count > 0 */
	uint32_t count;
};

struct seqmap;

struct seqmap *seqmap_new(uint64_t hold_ns);
void seqmap_free(struct seqmap *m);
/* Minimum age before a sequence number may be reused. */
void seqmap_set_hold(struct seqmap *m, uint64_t hold_ns);
uint64_t seqmap_hold(const struct seqmap *m);

static inline void seqmap_chain_init(struct seqmap_chain *c)
{
	c->head = c->tail = 0;
	c->count = 0;
}

/* A reusable sequence number for probe (< SEQMAP_MAX_PROBES), or -1 with
 * errno EBUSY when none is free within SEQMAP_SCAN slots of the cursor.
 * Times passed to the map never go backwards (CLOCK_MONOTONIC). */
int seqmap_reserve(struct seqmap *m, uint32_t probe, uint64_t now_ns);
/* The request went out at send_ns: link seq at the tail of chain. */
void seqmap_commit(struct seqmap *m, struct seqmap_chain *chain, uint16_t seq,
		   uint64_t send_ns);
/* The request could not be sent: seq is free again at once. */
void seqmap_release(struct seqmap *m, uint16_t seq);

struct seqmap_info seqmap_get(const struct seqmap *m, uint16_t seq);
/* Replace an OUTSTANDING entry's send time (a kernel transmit timestamp
 * arriving after the send); other states are left alone. */
void seqmap_set_send_ns(struct seqmap *m, uint16_t seq, uint64_t send_ns);
/* If seq is OUTSTANDING, move it to to (SEQ_ANSWERED or SEQ_LOST).  Returns
 * the state it had, so the caller can tell received/late/duplicate. */
enum seqmap_state seqmap_resolve(struct seqmap *m, uint16_t seq, enum seqmap_state to);

/* A reply came for a LOST entry: mark it LATE so a further reply counts as
 * a duplicate, not as another late reply.  Returns the state it had. */
enum seqmap_state seqmap_mark_late(struct seqmap *m, uint16_t seq);

/* The chain's head, or -1 when empty. */
static inline int seqmap_front(const struct seqmap_chain *c)
{
	return c->count ? c->head : -1;
}
/* Unlink the head.  Returns its state before the call; an OUTSTANDING head
 * becomes LOST (the caller counts it as a timeout). */
enum seqmap_state seqmap_pop(struct seqmap *m, struct seqmap_chain *chain);

/* Mark every entry whose probe gone() says is removed as DEAD and unlinked.
 * One pass over the table; for reloads, not the send path.  Returns how
 * many entries changed. */
size_t seqmap_forget(struct seqmap *m, bool (*gone)(uint32_t probe, void *arg),
		     void *arg);

const char *seqmap_state_name(enum seqmap_state st);

#endif
