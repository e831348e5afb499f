/*
 * loop: one epoll instance, a timer heap on CLOCK_MONOTONIC and signals
 * through signalfd.  The loop knows nothing of protocols.
 *
 * Every watched fd is owned by a struct that embeds a struct io; epoll's
 * data.ptr points at that io and dispatch is one indirect call.  Owners get
 * themselves back with container_of().
 *
 * Lifetime rule: never free an object from inside its own callback while
 * events for it may still be pending in the current batch.  Call loop_del()
 * (which sets io->fd to -1 so pending events are skipped) and hand the
 * object to loop_defer(); the loop calls the free function after the batch.
 */
#ifndef BEACOND_LOOP_H
#define BEACOND_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct io;

typedef void (*io_fn)(struct io *io, uint32_t events);

struct io {
	int fd;            /* -1 once removed: pending events are skipped */
	uint32_t events;   /* the epoll mask currently registered */
	io_fn on_ready;
};

struct timer;
typedef void (*timer_fn)(struct timer *t);

/* Embedded in its owner; arming a timer never allocates (the heap grows
 * geometrically and is only reallocated when it is full). */
struct timer {
	uint64_t deadline;  /* CLOCK_MONOTONIC ns */
	uint64_t order;     /* tie-break: FIFO among equal deadlines */
	uint32_t slot;      /* index in the heap, TIMER_IDLE when not armed */
	timer_fn on_expire;
};
#define TIMER_IDLE UINT32_MAX

struct deferred {
	struct deferred *next;
	void (*fn)(struct deferred *d);
};

/* Called for SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 (with the signal
 * number); ignore the numbers you do not handle. */
typedef void (*signal_fn)(struct loop *loop, int signo, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Register, change or remove an fd.  Return 0, or -1 with errno set. */
int loop_add(struct loop *loop, struct io *io, uint32_t events);
int loop_mod(struct loop *loop, struct io *io, uint32_t events);
/* Removes io from epoll and sets io->fd = -1; does not close the fd. */
int loop_del(struct loop *loop, struct io *io);

static inline void timer_init(struct timer *t, timer_fn fn)
{
	t->deadline = 0;
	t->order = 0;
	t->slot = TIMER_IDLE;
	t->on_expire = fn;
}
static inline bool timer_armed(const struct timer *t)
{
	return t->slot != TIMER_IDLE;
}
/* Arm or re-arm t for the absolute monotonic deadline; O(log n). */
int loop_timer_arm(struct loop *loop, struct timer *t, uint64_t deadline_ns);
/* Disarm t if armed; safe from any callback, including t's own. */
void loop_timer_cancel(struct loop *loop, struct timer *t);
size_t loop_timer_count(const struct loop *loop);

/* Monotonic time cached after each epoll_wait (and refreshed before timers
 * run).  loop_now_refresh() reads the clock again. */
uint64_t loop_now(const struct loop *loop);
uint64_t loop_now_refresh(struct loop *loop);

/* Run fn(d) after the current event batch (or at once from outside the loop
 * when loop_free() runs).  d must stay valid until then. */
void loop_defer(struct loop *loop, struct deferred *d);

/* Block SIGTERM, SIGINT, SIGHUP, SIGUSR1 (and SIGUSR2), read them via
 * signalfd and call fn once per signal received.  SIGPIPE is ignored.
 * loop_free() discards signals still pending, closes the signalfd and
 * restores the previous mask and SIGPIPE action.  Calling it again only
 * replaces fn and arg.  Return 0 or -1 with errno. */
int loop_signals(struct loop *loop, signal_fn fn, void *arg);

/* Run until loop_stop(); returns 0, or -1 if epoll_wait failed hard (EINTR
 * is not an error).  Each iteration: one wait (bounded by the earliest
 * timer, nanosecond precision), the event batch, deferred calls, every
 * timer due at one snapshot of the clock in (deadline, arm order) order,
 * deferred calls again.  A timer re-armed from a callback for a deadline
 * already past runs in the next iteration, not the current one.
 * loop_run() clears a previous stop on entry, so it may be called again
 * (e.g. to drain connections after the main run). */
int loop_run(struct loop *loop);
/* Make loop_run() return after the current iteration; timers still due in
 * the current timer pass wait for the next loop_run(). */
void loop_stop(struct loop *loop);

/* Tests: use a timerfd instead of epoll_pwait2's timeout, as on kernels
 * older than 5.11 (picked automatically there).  Return 0 or -1. */
int loop_debug_use_timerfd(struct loop *loop);

#endif
