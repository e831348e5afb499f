/*
 * loop: one epoll instance, a timer heap on CLOCK_MONOTONIC and signals
 * through signalfd.  The loop knows nothing of protocols.
 *
 * Every watched fd is owned by a struct that embeds a struct io; epoll's
 * data.ptr points at that io and dispatch is one indirect call.  Owners get
 * themselves back with container_of().
 *
 * The fd lifetime API, the only code that writes struct io's fields:
 *   io_init()      the io takes the fd (not watched yet);
 *   loop_watch()   register it, or change the mask of a registered one;
 *   loop_unwatch() deregister, keep the fd open (pausing a listener, or a
 *                  socket someone else closes, like c-ares');
 *   loop_close()   deregister if needed and close the fd.
 * After loop_unwatch() or loop_close(), events still pending for the io in
 * the current batch are skipped.  Owners read the fd with io_fd().
 *
 * Lifetime rule: never free an object from inside its own callback while
 * events for it may still be pending in the current batch.  Every owner
 * embeds one struct deferred and hands it to loop_free_later() after
 * loop_close(); the loop calls the free function after the batch.  Nothing
 * on that path allocates, so an object can always be retired, even when
 * memory is short.
 */
#ifndef BEACOND_LOOP_H
#define BEACOND_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct io;

typedef void (*io_fn)(struct io *io, uint32_t events);

/* Written only by the functions below (owners read io_fd()).  16 bytes:
 * a TCP connection's size depends on it. */
struct io {
	int fd;                  /* -1 once closed */
	uint32_t events : 24;    /* the mask registered while watched */
	uint32_t watched : 1;    /* in the epoll set: its events are dispatched */
	uint32_t private_fd : 1; /* IO_PRIVATE: see io_init() */
	io_fn on_ready;
};

/* The event bits a watcher may ask for: level-triggered readiness only
 * (EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE and EPOLLWAKEUP are refused). */
#define IO_EVENTS_MASK 0xffffffu

/* io_init() flags.  IO_PRIVATE: the fd is never duplicated or passed on (an
 * accepted connection), so close() alone removes it from the epoll set and
 * loop_close() saves the EPOLL_CTL_DEL -- except while a forked child of the
 * daemon is alive (loop_child_started: the history's writer), which holds a
 * copy of every fd, so loop_close() deregisters then too.  Without it (a socket
 * from systemd, whose copy stays open in PID 1, or one a library may dup),
 * loop_close() deregisters first: epoll forgets an fd only when the last
 * descriptor of its open file is closed, and a stale registration would
 * deliver events to a freed owner. */
#define IO_PRIVATE 1u

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

struct deferred;
typedef void (*deferred_fn)(struct deferred *d);

/* Embedded in its owner; queueing it never allocates. */
struct deferred {
	struct deferred *next;
	deferred_fn fn;
};

/* Called for SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 (with the signal
 * number); ignore the numbers you do not handle. */
typedef void (*signal_fn)(struct loop *loop, int signo, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Take fd (may be -1: nothing yet) with the callback; not watched. */
static inline void io_init(struct io *io, int fd, io_fn fn, unsigned flags)
{
	io->fd = fd;
	io->events = 0;
	io->watched = 0;
	io->private_fd = (flags & IO_PRIVATE) != 0;
	io->on_ready = fn;
}
static inline int io_fd(const struct io *io)
{
	return io->fd;
}
static inline bool io_watched(const struct io *io)
{
	return io->watched;
}
static inline uint32_t io_events(const struct io *io)
{
	return io->events;
}

/* Register io for events, or change the mask if it is registered (no
 * system call when the mask is unchanged).  Returns 0, or -1 with errno:
 * EBADF when io has no fd, EINVAL for bits outside IO_EVENTS_MASK, else
 * epoll_ctl's; on failure io keeps its previous state. */
int loop_watch(struct loop *loop, struct io *io, uint32_t events);
/* Deregister io if it is registered; the fd stays open and owned by io.
 * Pending events of this batch are skipped.  Returns 0, or -1 with errno
 * when the kernel refused (io counts as unwatched all the same). */
int loop_unwatch(struct loop *loop, struct io *io);
/* Deregister (see IO_PRIVATE) and close io's fd, if any; io->fd becomes -1.
 * Pending events of this batch are skipped.  Never fails. */
void loop_close(struct loop *loop, struct io *io);
/* A fork()ed child that shares our fds started / was reaped: while one is
 * alive, loop_close() deregisters IO_PRIVATE fds too (see IO_PRIVATE). */
void loop_child_started(struct loop *loop);
void loop_child_ended(struct loop *loop);


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
/* Make room for n more armed timers than now, on top of what the earlier
 * reservations since loop_timer_reserve_end() asked for, so that many
 * loop_timer_arm() calls of idle timers cannot fail: each prepare of a
 * reload reserves what its own commit arms, and together they hold.
 * Returns 0, or -1 with errno (ENOMEM; the reservation is not counted). */
int loop_timer_reserve(struct loop *loop, size_t n);
/* The commits (or aborts) are done: later reservations start afresh. */
void loop_timer_reserve_end(struct loop *loop);
/* Disarm t if armed; safe from any callback, including t's own. */
void loop_timer_cancel(struct loop *loop, struct timer *t);
size_t loop_timer_count(const struct loop *loop);

/* Monotonic time cached after each epoll_wait (and refreshed before timers
 * run).  loop_now_refresh() reads the clock again. */
uint64_t loop_now(const struct loop *loop);
uint64_t loop_now_refresh(struct loop *loop);

/* A per-iteration budget for producing long replies (ctl, web): a module
 * produces at most cap bytes in one loop iteration, then waits for the
 * next one, so the timers (the pings) run between slices of a large reply.
 * The budget is also spent when a timer falls due within
 * LOOP_BUDGET_MARGIN_NS: a slice never starts when it could make that
 * timer late, and the reply goes on once the timer has run.  So that
 * replies progress however dense the timers, a budget refused for longer
 * than LOOP_BUDGET_STARVE_NS grants one LOOP_BUDGET_STARVE_SLICE anyway.
 * Zero-initialise, set cap, then loop_budget_left() (what remains now; 0
 * when spent) and loop_budget_spend().  loop_budget_retry_at() says when
 * asking again makes sense: the due timer's deadline (arm a timer for it,
 * it runs right after that one), or now (the next iteration). */
#define LOOP_BUDGET_MARGIN_NS (250 * NSEC_PER_USEC)
#define LOOP_BUDGET_STARVE_NS (5 * NSEC_PER_MSEC)
#define LOOP_BUDGET_STARVE_SLICE 4096u
struct loop_budget {
	uint64_t iter;
	size_t used;
	size_t cap;
	uint64_t refused_since;    /* mono ns; 0 = granted last time */
	uint64_t retry_at;         /* mono ns, set when refused */
};
size_t loop_budget_left(struct loop *loop, struct loop_budget *b);
static inline void loop_budget_spend(struct loop_budget *b, size_t n)
{
	b->used += n;
}
static inline uint64_t loop_budget_retry_at(const struct loop_budget *b)
{
	return b->retry_at;
}

/* Run fn(d) after the current event batch (and the timer pass), or from
 * loop_free().  d must stay valid until then; fn may free d's owner.  This
 * is the one way an owner is freed once it has been in the loop. */
void loop_free_later(struct loop *loop, struct deferred *d, deferred_fn fn);

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
