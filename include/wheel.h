/*
 * wheel: a hashed timing wheel of WHEEL_SLOTS one-tick lists with the node
 * embedded in its owner, so scheduling allocates nothing.  Pure: no clock,
 * no loop; the owner arms one loop timer for wheel_next().
 *
 * Why not the loop's heap: 10 000 probes at 1 Hz meant 10 000 heap root
 * removals a second for the sends alone, each walking ~14 levels of timers
 * scattered over as many probe structs (12 % of the daemon's CPU in a
 * profile), and as many timeout timers armed and cancelled.  Here an entry
 * is linked into the slot of its tick; an entry due whole rotations later
 * simply stays in its slot until its time comes.
 */
#ifndef BEACOND_WHEEL_H
#define BEACOND_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WHEEL_SLOTS 1024

struct wheel_node {
	struct wheel_node *next, **pprev;   /* pprev NULL: not on the wheel */
	uint64_t wake;                       /* CLOCK_MONOTONIC ns */
};

struct wheel {
	struct wheel_node *slot[WHEEL_SLOTS];
	uint64_t tick_ns;
	uint64_t tick;       /* ticks before this one have been run */
	size_t count;
};

void wheel_init(struct wheel *w, uint64_t tick_ns, uint64_t now_ns);
static inline void wheel_node_init(struct wheel_node *n)
{
	n->next = NULL;
	n->pprev = NULL;
}
static inline bool wheel_linked(const struct wheel_node *n)
{
	return n->pprev != NULL;
}
/* Link n (not linked) to wake at wake_ns. */
void wheel_add(struct wheel *w, struct wheel_node *n, uint64_t wake_ns);
/* Unlink n if linked (from wheel_run's fn: only fn's own node). */
void wheel_del(struct wheel *w, struct wheel_node *n);
/* When to run next: the earliest wake in the coming rotation (at least
 * now), a rotation later when every entry is further away, UINT64_MAX when
 * the wheel is empty. */
uint64_t wheel_next(const struct wheel *w, uint64_t now_ns);
/* Call fn for every entry whose wake is <= now, unlinked first (fn may
 * link it again, even into the slot being run: it is not seen twice; it
 * must not unlink other nodes).
 * Every tick since the last run is visited, one rotation at most: after a
 * longer stall each slot is visited once, which covers every entry. */
void wheel_run(struct wheel *w, uint64_t now_ns,
	       void (*fn)(struct wheel_node *n, void *arg), void *arg);

#endif
