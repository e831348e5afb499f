/*
 * loop: one epoll instance, a binary min-heap of timers keyed by
 * CLOCK_MONOTONIC nanoseconds, deferred calls and signals via signalfd.
 *
 * The process sleeps in exactly one place: epoll_pwait2() with a relative
 * nanosecond timeout computed from the earliest timer.  Kernels without
 * epoll_pwait2 (before 5.11) get one timerfd armed at the earliest absolute
 * deadline instead, so timer precision never degrades to epoll_wait's
 * milliseconds, which would make a 1 ms ping schedule up to 1 ms late.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include "loop.h"
#include "util.h"

/* Events taken per epoll_pwait2 call; more simply wait for the next call. */
#define LOOP_BATCH 256
#define HEAP_MIN_CAP 64
/* See wait_and_dispatch(): waits longer than this are split in two. */
#define LOOP_LONG_WAIT_NS (20 * NSEC_PER_MSEC)
#define LOOP_SLACK_FLOOR_NS (50 * NSEC_PER_USEC)

struct loop {
	int epfd;
	bool stop;
	bool use_pwait2;
	uint64_t now;
	uint64_t iteration;         /* loop_run() passes, for loop_budget */
	/* Forked children alive (loop_child_started): they hold copies of
	 * every fd, IO_PRIVATE ones included. */
	unsigned children;

	/* Min-heap on (deadline, order); each timer knows its slot. */
	struct timer **heap;
	uint32_t heap_len;
	uint32_t heap_cap;
	uint64_t next_order;
	size_t timer_reserved;     /* loop_timer_reserve() since the last _end() */

	/* FIFO of deferred calls; tail points at the last next pointer. */
	struct deferred *defer_head;
	struct deferred **defer_tail;

	/* Fallback when epoll_pwait2 is missing: one timerfd for the earliest
	 * deadline.  tfd_deadline is what it is armed for (0 = disarmed). */
	struct io tfd_io;
	uint64_t tfd_deadline;

	/* Signals: the signalfd, the callback and what to restore. */
	struct io sig_io;
	signal_fn sig_fn;
	void *sig_arg;
	sigset_t sig_old_mask;
	struct sigaction sig_old_pipe;

	struct epoll_event events[LOOP_BATCH];
};

/* ---- timer heap ---- */

static inline bool timer_before(const struct timer *a, const struct timer *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->order < b->order;
}

static inline void heap_place(struct loop *loop, uint32_t i, struct timer *t)
{
	loop->heap[i] = t;
	t->slot = i;
}

static void heap_sift_up(struct loop *loop, uint32_t i)
{
	struct timer *t = loop->heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void heap_sift_down(struct loop *loop, uint32_t i)
{
	struct timer *t = loop->heap[i];
	uint32_t n = loop->heap_len;

	for (;;) {
		uint32_t child = 2 * i + 1;
		if (child >= n)
			break;
		if (child + 1 < n && timer_before(loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_before(loop->heap[child], t))
			break;
		heap_place(loop, i, loop->heap[child]);
		i = child;
	}
	heap_place(loop, i, t);
}

/* Move the element at slot i to where it belongs after its key changed. */
static void heap_fix(struct loop *loop, uint32_t i)
{
	if (i > 0 && timer_before(loop->heap[i], loop->heap[(i - 1) / 2]))
		heap_sift_up(loop, i);
	else
		heap_sift_down(loop, i);
}

static void heap_remove(struct loop *loop, struct timer *t)
{
	uint32_t i = t->slot;
	uint32_t last = --loop->heap_len;

	t->slot = TIMER_IDLE;
	if (i != last) {
		heap_place(loop, i, loop->heap[last]);
		heap_fix(loop, i);
	}
}

/* Grow the heap to hold at least want timers (doubling). */
static int heap_grow(struct loop *loop, size_t want)
{
	uint32_t cap = loop->heap_cap ? loop->heap_cap : HEAP_MIN_CAP;
	struct timer **heap;

	if (want <= loop->heap_cap)
		return 0;
	if (want > UINT32_MAX / 2) {
		errno = ENOMEM;
		return -1;
	}
	while (cap < want)
		cap *= 2;
	heap = realloc(loop->heap, (size_t)cap * sizeof *heap);
	if (!heap)
		return -1;
	loop->heap = heap;
	loop->heap_cap = cap;
	return 0;
}

int loop_timer_reserve(struct loop *loop, size_t n)
{
	if (n > UINT32_MAX || heap_grow(loop, (size_t)loop->heap_len + loop->timer_reserved + n) < 0)
		return -1;
	loop->timer_reserved += n;
	return 0;
}

void loop_timer_reserve_end(struct loop *loop)
{
	loop->timer_reserved = 0;
}

int loop_timer_arm(struct loop *loop, struct timer *t, uint64_t deadline_ns)
{
	t->deadline = deadline_ns;
	/* A fresh order on every arm keeps equal deadlines first-armed,
	 * first-run, and marks timers armed during a timer pass (see
	 * run_timers()). */
	t->order = loop->next_order++;

	if (timer_armed(t)) {
		heap_fix(loop, t->slot);
		return 0;
	}
	if (loop->heap_len == loop->heap_cap &&
	    heap_grow(loop, (size_t)loop->heap_len + 1) < 0)
		return -1;
	loop->heap[loop->heap_len] = t;
	t->slot = loop->heap_len++;
	heap_sift_up(loop, t->slot);
	return 0;
}

void loop_timer_cancel(struct loop *loop, struct timer *t)
{
	if (timer_armed(t))
		heap_remove(loop, t);
}

size_t loop_timer_count(const struct loop *loop)
{
	return loop->heap_len;
}


/*
 * Run every timer due at one snapshot of the clock, in (deadline, order)
 * order.  A timer armed during this pass has an order at or above `limit`;
 * meeting one at the top ends the pass even when it is due, so a callback
 * that re-arms itself into the past cannot keep this pass running forever.
 * The next pass starts after one non-blocking epoll call, so I/O is not
 * starved either.
 */
static void run_timers(struct loop *loop)
{
	uint64_t now = loop_now_refresh(loop);
	uint64_t limit = loop->next_order;

	while (loop->heap_len > 0 && !loop->stop) {
		struct timer *t = loop->heap[0];

		if (t->deadline > now || t->order >= limit)
			break;
		heap_remove(loop, t);
		/* The loop does not touch t after this call: the callback may
		 * re-arm it, or free its owner. */
		t->on_expire(t);
	}
}

/* ---- time ---- */

uint64_t loop_now(const struct loop *loop)
{
	return loop->now;
}

uint64_t loop_now_refresh(struct loop *loop)
{
	loop->now = mono_ns();
	return loop->now;
}

size_t loop_budget_left(struct loop *loop, struct loop_budget *b)
{
	if (b->iter != loop->iteration) {
		b->iter = loop->iteration;
		b->used = 0;
	}
	if (b->used >= b->cap) {
		b->retry_at = loop->now;
		return 0;
	}
	if (loop->heap_len == 0)
		goto grant;
	uint64_t due = loop->heap[0]->deadline;
	uint64_t now = mono_ns();
	if (due > now + LOOP_BUDGET_MARGIN_NS)
		goto grant;
	/* A timer is (nearly) due: let it run first. */
	if (b->refused_since == 0)
		b->refused_since = now;
	if (now - b->refused_since < LOOP_BUDGET_STARVE_NS) {
		b->retry_at = due > now ? due : now;
		return 0;
	}
	b->refused_since = now;   /* starving: one small slice, then wait again */
	return LOOP_BUDGET_STARVE_SLICE < b->cap - b->used ? LOOP_BUDGET_STARVE_SLICE : b->cap - b->used;
grant:
	b->refused_since = 0;
	return b->cap - b->used;
}

/* ---- deferred calls ---- */

void loop_free_later(struct loop *loop, struct deferred *d, deferred_fn fn)
{
	d->fn = fn;
	d->next = NULL;
	*loop->defer_tail = d;
	loop->defer_tail = &d->next;
}

static void run_deferred(struct loop *loop)
{
	while (loop->defer_head) {
		struct deferred *d = loop->defer_head;

		loop->defer_head = d->next;
		if (!loop->defer_head)
			loop->defer_tail = &loop->defer_head;
		/* fn may free d and may defer more; both are fine here. */
		d->fn(d);
	}
}

/* ---- fds ---- */

int loop_watch(struct loop *loop, struct io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (io->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (events & ~IO_EVENTS_MASK) {
		errno = EINVAL;
		return -1;
	}
	if (io->watched) {
		if (io->events == events)
			return 0;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
			return -1;
	} else if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0) {
		return -1;
	}
	io->events = events & IO_EVENTS_MASK;
	io->watched = 1;
	return 0;
}

int loop_unwatch(struct loop *loop, struct io *io)
{
	int rc = 0;

	if (!io->watched)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
		rc = -1;
	/* Even if the kernel refused, pending events in this batch must be
	 * skipped: the owner stopped listening. */
	io->watched = 0;
	io->events = 0;
	return rc;
}

void loop_child_started(struct loop *loop)
{
	loop->children++;
}

void loop_child_ended(struct loop *loop)
{
	if (loop->children > 0)
		loop->children--;
}

void loop_close(struct loop *loop, struct io *io)
{
	if (io->watched && io->private_fd && loop->children == 0) {
		/* close() below removes it from the epoll set. */
		io->watched = 0;
		io->events = 0;
	}
	(void)loop_unwatch(loop, io);
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

/* ---- timerfd fallback ---- */

static void timerfd_on_ready(struct io *io, uint32_t events)
{
	uint64_t expirations;
	(void)events;

	/* Only clears readiness; run_timers() looks at the heap itself. */
	while (read(io->fd, &expirations, sizeof expirations) < 0 && errno == EINTR)
		;
}

static int timerfd_enable(struct loop *loop)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0)
		return -1;
	io_init(&loop->tfd_io, fd, timerfd_on_ready, IO_PRIVATE);
	if (loop_watch(loop, &loop->tfd_io, EPOLLIN) < 0) {
		int e = errno;
		loop_close(loop, &loop->tfd_io);
		errno = e;
		return -1;
	}
	loop->tfd_deadline = 0;
	loop->use_pwait2 = false;
	return 0;
}

int loop_debug_use_timerfd(struct loop *loop)
{
	if (loop->tfd_io.fd >= 0)
		return 0;
	return timerfd_enable(loop);
}

/* Arm the timerfd for `deadline` (0 = disarm) unless it already is. */
static void timerfd_set(struct loop *loop, uint64_t deadline)
{
	struct itimerspec its;

	if (deadline == loop->tfd_deadline)
		return;
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = (time_t)(deadline / NSEC_PER_SEC);
	its.it_value.tv_nsec = (long)(deadline % NSEC_PER_SEC);
	if (timerfd_settime(loop->tfd_io.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		loop->tfd_deadline = deadline;
}

/* ---- waiting and dispatch ---- */

/*
 * Wait for I/O until the earliest timer is due and dispatch one batch.
 * Returns 0, or -1 when the wait failed for a reason other than EINTR.
 */
static int wait_and_dispatch(struct loop *loop)
{
	struct timespec ts, *tsp = NULL;
	bool immediate = false;
	int n;

	if (loop->heap_len > 0) {
		uint64_t deadline = loop->heap[0]->deadline;
		uint64_t now = mono_ns();

		if (deadline <= now) {
			immediate = true;
			ts.tv_sec = 0;
			ts.tv_nsec = 0;
		} else {
			uint64_t rel = deadline - now;
			/* epoll_pwait2's timeout gets select()-style slack: the
			 * larger of the task's timer slack (50 us by default)
			 * and 0.1% of the timeout (0.5% when niced), i.e. up to
			 * 1 ms late on a 1 s wait.  Long waits therefore stop
			 * short by more than that and the loop waits again for
			 * the remainder, whose slack is the small floor.  The
			 * timerfd is armed without slack and needs none of it. */
			if (loop->use_pwait2 && rel > LOOP_LONG_WAIT_NS)
				rel -= rel / 128 + LOOP_SLACK_FLOOR_NS;
			ts.tv_sec = (time_t)(rel / NSEC_PER_SEC);
			ts.tv_nsec = (long)(rel % NSEC_PER_SEC);
		}
		tsp = &ts;
	}

	if (loop->use_pwait2) {
		n = epoll_pwait2(loop->epfd, loop->events, LOOP_BATCH, tsp, NULL);
		/* ENOSYS: kernel before 5.11 (or valgrind).  EPERM: a seccomp
		 * filter that predates the call (SystemCallErrorNumber=EPERM);
		 * epoll_pwait2 has no EPERM of its own. */
		if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
			if (timerfd_enable(loop) < 0)
				return -1;
			return 0;
		}
	} else {
		if (loop->heap_len > 0 && !immediate)
			timerfd_set(loop, loop->heap[0]->deadline);
		else if (loop->heap_len == 0)
			timerfd_set(loop, 0);
		n = epoll_wait(loop->epfd, loop->events, LOOP_BATCH, immediate ? 0 : -1);
	}
	loop_now_refresh(loop);
	if (n < 0)
		return errno == EINTR ? 0 : -1;

	for (int i = 0; i < n; i++) {
		struct io *io = loop->events[i].data.ptr;

		/* Unwatched or closed by an earlier callback of this batch
		 * (its owner is freed only after the batch). */
		if (!io->watched)
			continue;
		io->on_ready(io, loop->events[i].events);
	}
	return 0;
}

int loop_run(struct loop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		loop->iteration++;
		if (wait_and_dispatch(loop) < 0)
			return -1;
		run_deferred(loop);
		run_timers(loop);
		run_deferred(loop);
	}
	return 0;
}

void loop_stop(struct loop *loop)
{
	loop->stop = true;
}

/* ---- signals ---- */

static void signal_on_ready(struct io *io, uint32_t events)
{
	struct loop *loop = container_of(io, struct loop, sig_io);
	struct signalfd_siginfo si[16];
	(void)events;

	for (;;) {
		ssize_t r = read(io->fd, si, sizeof si);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN: all pending signals read */
		}
		if (r < (ssize_t)sizeof si[0])
			return;
		for (size_t i = 0; i < (size_t)r / sizeof si[0]; i++) {
			loop->sig_fn(loop, (int)si[i].ssi_signo, loop->sig_arg);
			/* The callback may have freed nothing of ours, but it may
			 * have stopped listening; check before the next one. */
			if (!io->watched)
				return;
		}
	}
}

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGUSR2);
}

int loop_signals(struct loop *loop, signal_fn fn, void *arg)
{
	struct sigaction ign;
	sigset_t set;
	int fd, e;

	if (loop->sig_io.fd >= 0) {
		/* Already set up: only the callback changes. */
		loop->sig_fn = fn;
		loop->sig_arg = arg;
		return 0;
	}
	signal_set(&set);
	if (sigprocmask(SIG_BLOCK, &set, &loop->sig_old_mask) < 0)
		return -1;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGPIPE, &ign, &loop->sig_old_pipe) < 0)
		goto fail_mask;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		goto fail_pipe;
	loop->sig_fn = fn;
	loop->sig_arg = arg;
	io_init(&loop->sig_io, fd, signal_on_ready, IO_PRIVATE);
	if (loop_watch(loop, &loop->sig_io, EPOLLIN) < 0) {
		e = errno;
		loop_close(loop, &loop->sig_io);
		errno = e;
		goto fail_pipe;
	}
	return 0;

fail_pipe:
	e = errno;
	sigaction(SIGPIPE, &loop->sig_old_pipe, NULL);
	errno = e;
fail_mask:
	e = errno;
	sigprocmask(SIG_SETMASK, &loop->sig_old_mask, NULL);
	errno = e;
	return -1;
}

static void signals_close(struct loop *loop)
{
	struct signalfd_siginfo si[16];
	int fd = loop->sig_io.fd;

	if (fd < 0)
		return;
	loop_unwatch(loop, &loop->sig_io);
	/* Discard what is still pending so unblocking below cannot kill the
	 * process on its way out with a signal we already chose to handle. */
	while (read(fd, si, sizeof si) > 0)
		;
	loop_close(loop, &loop->sig_io);
	sigaction(SIGPIPE, &loop->sig_old_pipe, NULL);
	sigprocmask(SIG_SETMASK, &loop->sig_old_mask, NULL);
}

/* ---- lifetime ---- */

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof *loop);

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int e = errno;
		free(loop);
		errno = e;
		return NULL;
	}
	loop->use_pwait2 = true;
	loop->defer_tail = &loop->defer_head;
	io_init(&loop->tfd_io, -1, timerfd_on_ready, IO_PRIVATE);
	io_init(&loop->sig_io, -1, signal_on_ready, IO_PRIVATE);
	loop_now_refresh(loop);
	return loop;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	run_deferred(loop);
	signals_close(loop);
	loop_close(loop, &loop->tfd_io);
	close(loop->epfd);
	free(loop->heap);
	free(loop);
}
