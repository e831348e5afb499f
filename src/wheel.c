/* wheel: see include/wheel.h. */
#include "wheel.h"

void wheel_init(struct wheel *w, uint64_t tick_ns, uint64_t now_ns)
{
	for (size_t i = 0; i < WHEEL_SLOTS; i++)
		w->slot[i] = NULL;
	w->tick_ns = tick_ns;
	w->tick = now_ns / tick_ns;
	w->count = 0;
}

void wheel_add(struct wheel *w, struct wheel_node *n, uint64_t wake_ns)
{
	struct wheel_node **head = &w->slot[(wake_ns / w->tick_ns) & (WHEEL_SLOTS - 1)];

	n->wake = wake_ns;
	n->next = *head;
	if (*head)
		(*head)->pprev = &n->next;
	*head = n;
	n->pprev = head;
	w->count++;
}

void wheel_del(struct wheel *w, struct wheel_node *n)
{
	if (!n->pprev)
		return;
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	n->next = NULL;
	n->pprev = NULL;
	w->count--;
}

uint64_t wheel_next(const struct wheel *w, uint64_t now_ns)
{
	uint64_t tick = now_ns / w->tick_ns;

	if (w->count == 0)
		return UINT64_MAX;
	for (uint64_t t = tick; t < tick + WHEEL_SLOTS; t++) {
		uint64_t end = (t + 1) * w->tick_ns, best = UINT64_MAX;

		for (const struct wheel_node *n = w->slot[t & (WHEEL_SLOTS - 1)]; n; n = n->next)
			if (n->wake < end && n->wake < best)
				best = n->wake;
		if (best != UINT64_MAX)
			return best > now_ns ? best : now_ns;
	}
	return (tick + WHEEL_SLOTS) * w->tick_ns;
}

void wheel_run(struct wheel *w, uint64_t now_ns,
	       void (*fn)(struct wheel_node *n, void *arg), void *arg)
{
	uint64_t tick = now_ns / w->tick_ns, from = w->tick;

	if (from > tick || tick - from >= WHEEL_SLOTS)
		from = tick - (WHEEL_SLOTS - 1);
	for (uint64_t t = from; t <= tick; t++) {
		struct wheel_node **head = &w->slot[t & (WHEEL_SLOTS - 1)];
		struct wheel_node *list = *head, *next;

		/* Detach the slot: entries linked into it again (a wake whole
		 * rotations away) are not seen twice in this pass.  The
		 * detached list stays well formed (its head is `list`, whose
		 * address the first node's pprev holds), so wheel_del() from fn
		 * on any of its nodes is safe. */
		*head = NULL;
		if (list)
			list->pprev = &list;
		for (struct wheel_node *n = list; n; n = next) {
			next = n->next;
			wheel_del(w, n);
			if (n->wake <= now_ns)
				fn(n, arg);
			else
				wheel_add(w, n, n->wake);
		}
	}
	/* The current tick may still hold wake times later in it. */
	w->tick = tick;
}
