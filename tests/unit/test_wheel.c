/* wheel: the timing wheel alone (pure: no clock, no loop). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "util.h"
#include "wheel.h"

#define TICK 1000000ULL  /* 1 ms */
#define T0 (1000ULL * 1000 * TICK)

struct item {
	struct wheel_node node;
	int fired;
	uint64_t relink;             /* wake again this much later (0: no) */
};

static struct wheel w;

static void fire(struct wheel_node *n, void *arg)
{
	struct item *it = container_of(n, struct item, node);
	int *count = arg;

	it->fired++;
	(*count)++;
	if (it->relink) {
		wheel_add(&w, n, n->wake + it->relink);
		it->relink = 0;
	}
}

Test(wheel, empty)
{
	int count = 0;

	wheel_init(&w, TICK, T0);
	cr_assert_eq(wheel_next(&w, T0), UINT64_MAX);
	wheel_run(&w, T0 + 5 * TICK, fire, &count);
	cr_assert_eq(count, 0);
}

Test(wheel, runs_due_entries_in_their_ticks_only)
{
	struct item a = { 0 }, b = { 0 }, c = { 0 };
	int count = 0;

	wheel_init(&w, TICK, T0);
	wheel_node_init(&a.node);
	cr_assert_not(wheel_linked(&a.node));
	wheel_add(&w, &a.node, T0 + 3 * TICK + 10);
	wheel_add(&w, &b.node, T0 + 3 * TICK + 500);
	wheel_add(&w, &c.node, T0 + 7 * TICK);
	cr_assert(wheel_linked(&a.node));
	cr_assert_eq(w.count, 3);
	/* The earliest, exactly (not rounded to the tick). */
	cr_assert_eq(wheel_next(&w, T0), T0 + 3 * TICK + 10);
	/* Due a: b, later in the same tick, stays. */
	wheel_run(&w, T0 + 3 * TICK + 100, fire, &count);
	cr_assert_eq(a.fired, 1);
	cr_assert_eq(b.fired, 0);
	cr_assert_not(wheel_linked(&a.node));
	cr_assert(wheel_linked(&b.node));
	cr_assert_eq(wheel_next(&w, T0 + 3 * TICK + 100), T0 + 3 * TICK + 500);
	/* Already due: next is now. */
	cr_assert_eq(wheel_next(&w, T0 + 3 * TICK + 600), T0 + 3 * TICK + 600);
	wheel_run(&w, T0 + 8 * TICK, fire, &count);
	cr_assert_eq(b.fired, 1);
	cr_assert_eq(c.fired, 1);
	cr_assert_eq(count, 3);
	cr_assert_eq(w.count, 0);
}

Test(wheel, entries_rotations_away_wait_in_their_slot)
{
	struct item far = { 0 }, near = { 0 };
	int count = 0;

	wheel_init(&w, TICK, T0);
	/* Same slot as T0 + 2 ticks, one rotation later. */
	wheel_add(&w, &far.node, T0 + (WHEEL_SLOTS + 2) * TICK);
	/* Nothing in the coming rotation: look again a rotation later. */
	cr_assert_eq(wheel_next(&w, T0), T0 + WHEEL_SLOTS * TICK);
	wheel_run(&w, T0 + 2 * TICK, fire, &count);
	cr_assert_eq(far.fired, 0);
	cr_assert(wheel_linked(&far.node));
	wheel_add(&w, &near.node, T0 + 5 * TICK);
	cr_assert_eq(wheel_next(&w, T0 + 2 * TICK), T0 + 5 * TICK);
	wheel_run(&w, T0 + (WHEEL_SLOTS + 2) * TICK, fire, &count);
	cr_assert_eq(far.fired, 1);
	cr_assert_eq(near.fired, 1);
}

Test(wheel, stall_longer_than_a_rotation_runs_everything_once)
{
	struct item it[50];
	int count = 0;

	wheel_init(&w, TICK, T0);
	for (int i = 0; i < 50; i++) {
		it[i] = (struct item){ 0 };
		wheel_add(&w, &it[i].node, T0 + (uint64_t)i * 37 * TICK);
	}
	wheel_run(&w, T0 + 5 * WHEEL_SLOTS * TICK, fire, &count);
	cr_assert_eq(count, 50);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(it[i].fired, 1);
}

Test(wheel, relinked_during_run_into_same_slot_not_run_twice)
{
	struct item a = { 0 }, b = { 0 };
	int count = 0;

	wheel_init(&w, TICK, T0);
	a.relink = WHEEL_SLOTS * TICK; /* back into the slot being run */
	wheel_add(&w, &a.node, T0 + TICK);
	wheel_add(&w, &b.node, T0 + TICK + 1);
	wheel_run(&w, T0 + 2 * TICK, fire, &count);
	cr_assert_eq(a.fired, 1);
	cr_assert_eq(b.fired, 1);
	cr_assert(wheel_linked(&a.node));
	wheel_del(&w, &a.node);
	wheel_del(&w, &a.node); /* twice: harmless */
	cr_assert_eq(w.count, 0);
}
