/*
 * Unit tests for the loop: the fd lifetime API (watch, unwatch, close,
 * shared and private fds), closing during a batch, deferred frees, timer order and re-arming, signals.  No test asserts an upper
 * bound on time: the machine is shared, only "never early" is checked.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "loop.h"
#include "util.h"

#define US(n) ((uint64_t)(n) * NSEC_PER_USEC)
#define MS(n) ((uint64_t)(n) * NSEC_PER_MSEC)

static struct loop *L;

static void setup(void)
{
	L = loop_new();
	cr_assert_not_null(L, "loop_new: %s", strerror(errno));
}

static void teardown(void)
{
	loop_free(L);
	L = NULL;
}

TestSuite(loop, .init = setup, .fini = teardown, .timeout = 60);

/* A watchdog so a broken loop fails the test instead of hanging it. */
static void guard_expired(struct timer *t)
{
	(void)t;
	cr_assert_fail("guard timer expired: the loop did not stop by itself");
}

static struct timer guard;

static void arm_guard(uint64_t ns)
{
	timer_init(&guard, guard_expired);
	cr_assert_eq(loop_timer_arm(L, &guard, mono_ns() + ns), 0);
}

static void stop_timer_cb(struct timer *t)
{
	(void)t;
	loop_stop(L);
}

/* ---- I/O ---- */

struct pipe_io {
	struct io io;
	int peer;
	int calls;
	uint32_t last_events;
	char got[16];
	size_t got_len;
};

static void echo_reader(struct io *io, uint32_t events)
{
	struct pipe_io *p = container_of(io, struct pipe_io, io);
	ssize_t r = read(io_fd(io), p->got + p->got_len, sizeof p->got - p->got_len);

	p->calls++;
	p->last_events = events;
	if (r > 0)
		p->got_len += (size_t)r;
	if (p->got_len >= 5)
		loop_stop(L);
}

Test(loop, io_dispatch_socketpair)
{
	int sv[2];
	struct pipe_io p = { 0 };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	io_init(&p.io, sv[0], echo_reader, 0);
	cr_assert(!io_watched(&p.io));
	cr_assert_eq(loop_watch(L, &p.io, EPOLLIN), 0);
	cr_assert(io_watched(&p.io));
	cr_assert_eq(io_events(&p.io), EPOLLIN);
	cr_assert_eq(write(sv[1], "hel", 3), 3);
	cr_assert_eq(write(sv[1], "lo", 2), 2);
	arm_guard(MS(5000));
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(p.got_len, 5);
	cr_assert_arr_eq(p.got, "hello", 5);
	cr_assert(p.calls >= 1);
	cr_assert(p.last_events & EPOLLIN);

	/* Watching again changes the mask: a socketpair is writable at once. */
	p.got_len = 5;
	cr_assert_eq(loop_watch(L, &p.io, EPOLLOUT), 0);
	cr_assert_eq(io_events(&p.io), EPOLLOUT);
	p.calls = 0;
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(p.calls, 1);
	cr_assert(p.last_events & EPOLLOUT);

	/* Unwatch keeps the fd open and owned by the io. */
	cr_assert_eq(loop_unwatch(L, &p.io), 0);
	cr_assert(!io_watched(&p.io));
	cr_assert_eq(io_fd(&p.io), sv[0]);
	cr_assert_geq(fcntl(sv[0], F_GETFD), 0);
	cr_assert_eq(loop_unwatch(L, &p.io), 0, "a second unwatch is harmless");

	/* Close closes it; a second close is harmless. */
	loop_close(L, &p.io);
	cr_assert_eq(io_fd(&p.io), -1);
	cr_assert_eq(fcntl(sv[0], F_GETFD), -1, "loop_close left the fd open");
	cr_assert_eq(errno, EBADF);
	loop_close(L, &p.io);
	cr_assert_eq(loop_watch(L, &p.io, EPOLLIN), -1);
	cr_assert_eq(errno, EBADF);
	close(sv[1]);
}

Test(loop, watch_rejects_bad_fd_and_edge_triggering)
{
	struct io io;
	int sv[2];

	io_init(&io, -1, echo_reader, 0);
	cr_assert_eq(loop_watch(L, &io, EPOLLIN), -1);
	cr_assert_eq(errno, EBADF);
	cr_assert(!io_watched(&io));

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	io_init(&io, sv[0], echo_reader, 0);
	cr_assert_eq(loop_watch(L, &io, EPOLLIN | EPOLLET), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert(!io_watched(&io));
	cr_assert_eq(loop_watch(L, &io, EPOLLIN), 0);
	/* A refused change leaves the registered mask as it was. */
	cr_assert_eq(loop_watch(L, &io, EPOLLOUT | EPOLLONESHOT), -1);
	cr_assert(io_watched(&io));
	cr_assert_eq(io_events(&io), EPOLLIN);
	loop_close(L, &io);
	close(sv[1]);
}

/* An fd whose open file is shared (a dup here, PID 1's copy of an inherited
 * socket in real life) stays in the epoll set after close() unless it is
 * deregistered first; loop_close() must do that unless the io is
 * IO_PRIVATE.  A stale registration shows when the io's memory is reused:
 * the stale entry's data.ptr now points at a live watcher of another fd,
 * which gets called although its own fd has nothing to read. */
static int reuse_calls;
static void reuse_cb(struct io *io, uint32_t events)
{
	(void)io;
	(void)events;
	reuse_calls++;
}

static int close_then_reuse(unsigned flags)
{
	int sv[2], quiet[2], dupfd;
	struct io io;
	struct timer stop;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, quiet), 0);
	dupfd = dup(sv[0]);
	cr_assert_geq(dupfd, 0);
	io_init(&io, sv[0], reuse_cb, flags);
	cr_assert_eq(loop_watch(L, &io, EPOLLIN), 0);
	loop_close(L, &io);
	cr_assert_eq(write(sv[1], "x", 1), 1);   /* the shared file is readable */

	io_init(&io, quiet[0], reuse_cb, 0);     /* nothing to read here */
	cr_assert_eq(loop_watch(L, &io, EPOLLIN), 0);
	reuse_calls = 0;
	timer_init(&stop, stop_timer_cb);
	cr_assert_eq(loop_timer_arm(L, &stop, mono_ns() + MS(20)), 0);
	cr_assert_eq(loop_run(L), 0);
	loop_close(L, &io);
	close(quiet[1]);
	close(dupfd);
	close(sv[1]);
	return reuse_calls;
}

Test(loop, close_deregisters_a_shared_fd)
{
	cr_assert_eq(close_then_reuse(0), 0, "stale registration after loop_close");
}

/* The control: IO_PRIVATE skips the deregistration, so on a shared fd
 * (which IO_PRIVATE promises never happens) the stale entry fires.  This
 * is what makes the test above able to fail. */
Test(loop, private_close_skips_epoll_ctl)
{
	cr_assert_gt(close_then_reuse(IO_PRIVATE), 0);
}

/* While a forked child holds copies of our fds, IO_PRIVATE's promise does
 * not hold: loop_close() must deregister those too (the history's writer
 * inherited a control client's socket, and an event for the freed client
 * arrived after the parent closed it). */
Test(loop, private_close_deregisters_while_a_child_lives)
{
	loop_child_started(L);
	int calls = close_then_reuse(IO_PRIVATE);
	loop_child_ended(L);
	cr_assert_eq(calls, 0, "stale registration after loop_close with a child alive");
}

/* ---- deferred calls ---- */

static int chain_ran;
static struct deferred chain[3];

static void chain_fn(struct deferred *d)
{
	int i = (int)(d - chain);

	cr_assert_eq(i, chain_ran, "deferred calls out of order");
	chain_ran++;
	/* The first one defers a third while the second is still queued. */
	if (i == 0) {
		loop_free_later(L, &chain[2], chain_fn);
	}
}

Test(loop, defer_fifo_chain_and_free_runs_pending)
{
	loop_free_later(L, &chain[0], chain_fn);
	loop_free_later(L, &chain[1], chain_fn);
	cr_assert_eq(chain_ran, 0, "deferred ran at once");
	/* loop_free (in teardown) would run them too; do it here to check. */
	loop_free(L);
	L = NULL;
	cr_assert_eq(chain_ran, 3);
}

Test(loop, defer_runs_in_loop)
{
	loop_free_later(L, &chain[0], chain_fn);
	loop_free_later(L, &chain[1], chain_fn);
	struct timer stop;
	timer_init(&stop, stop_timer_cb);
	cr_assert_eq(loop_timer_arm(L, &stop, mono_ns() + MS(1)), 0);
	cr_assert_eq(loop_run(L), 0);
	/* chain[0], chain[1], then chain[2] (deferred from chain[0]). */
	cr_assert_eq(chain_ran, 3);
}

/* ---- timers ---- */

struct ttimer {
	struct timer t;
	uint64_t deadline;
	uint64_t arm_seq;   /* when it was (last) armed */
	int fired;
};

static struct ttimer *ran_tt[1 << 17];
static size_t ran_n;
static size_t ran_expect;

static void record_cb(struct timer *t)
{
	struct ttimer *tt = container_of(t, struct ttimer, t);

	cr_assert(!timer_armed(t), "timer still armed in its callback");
	cr_assert(ran_n < ARRAY_SIZE(ran_tt));
	cr_assert(loop_now(L) >= tt->deadline, "timer ran before its deadline");
	tt->fired++;
	ran_tt[ran_n++] = tt;
	if (ran_n == ran_expect)
		loop_stop(L);
}

static void check_ran_in_order(void)
{
	for (size_t i = 1; i < ran_n; i++) {
		const struct ttimer *a = ran_tt[i - 1], *b = ran_tt[i];
		cr_assert(a->deadline <= b->deadline,
			  "timer %zu ran out of deadline order", i);
		if (a->deadline == b->deadline)
			cr_assert(a->arm_seq < b->arm_seq,
				  "equal deadlines not FIFO at %zu", i);
	}
}

static void timer_order_case(size_t n, uint64_t spread_us, bool past)
{
	struct ttimer *tt = calloc(n, sizeof *tt);
	uint64_t base = mono_ns() + (past ? 0 : MS(2));

	cr_assert_not_null(tt);
	srandom(12345);
	ran_n = 0;
	ran_expect = n;
	for (size_t i = 0; i < n; i++) {
		timer_init(&tt[i].t, record_cb);
		/* Few distinct values, so many deadlines are equal. */
		tt[i].deadline = past ? base - US((uint64_t)random() % spread_us)
				      : base + US((uint64_t)random() % spread_us);
		tt[i].arm_seq = i;
		cr_assert_eq(loop_timer_arm(L, &tt[i].t, tt[i].deadline), 0);
	}
	cr_assert_eq(loop_timer_count(L), n + 1); /* + guard */
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(ran_n, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(tt[i].fired, 1);
	check_ran_in_order();
	free(tt);
}

Test(loop, timers_run_in_deadline_then_fifo_order)
{
	arm_guard(MS(10000));
	timer_order_case(2000, 50, false);
	cr_assert_eq(loop_timer_count(L), 1);
}

Test(loop, timers_already_due_run_in_order)
{
	arm_guard(MS(10000));
	timer_order_case(2000, 30, true);
}

Test(loop, timers_in_order_with_timerfd_fallback)
{
	cr_assert_eq(loop_debug_use_timerfd(L), 0);
	arm_guard(MS(10000));
	timer_order_case(2000, 300, false);
}

/* 100 000 timers at random deadlines, half of them cancelled: the others
 * fire once each, in order, and the cancelled ones never. */
Test(loop, many_timers_cancel_half)
{
	const size_t n = 100000;
	struct ttimer *tt = calloc(n, sizeof *tt);
	uint64_t base = mono_ns() + MS(5);

	cr_assert_not_null(tt);
	srandom(777);
	for (size_t i = 0; i < n; i++) {
		timer_init(&tt[i].t, record_cb);
		tt[i].deadline = base + US((uint64_t)random() % 20000);
		tt[i].arm_seq = i;
		cr_assert_eq(loop_timer_arm(L, &tt[i].t, tt[i].deadline), 0);
	}
	cr_assert_eq(loop_timer_count(L), n);
	/* Cancel a random half (every timer whose coin says so). */
	size_t cancelled = 0;
	for (size_t i = 0; i < n; i++) {
		if (random() & 1) {
			loop_timer_cancel(L, &tt[i].t);
			cr_assert(!timer_armed(&tt[i].t));
			tt[i].fired = -1;
			cancelled++;
		}
	}
	/* Cancelling twice is harmless. */
	for (size_t i = 0; i < n; i++)
		if (tt[i].fired == -1)
			loop_timer_cancel(L, &tt[i].t);
	cr_assert(cancelled > n / 3 && cancelled < 2 * n / 3);
	cr_assert_eq(loop_timer_count(L), n - cancelled);
	ran_n = 0;
	ran_expect = n - cancelled;
	arm_guard(MS(30000));
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(ran_n, n - cancelled);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(tt[i].fired, tt[i].fired == -1 ? -1 : 1, "timer %zu", i);
	check_ran_in_order();
	cr_assert_eq(loop_timer_count(L), 1);
	free(tt);
}

Test(loop, rearm_changes_position)
{
	struct ttimer a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	uint64_t now = mono_ns();
	uint64_t seq = 0;

	timer_init(&a.t, record_cb);
	timer_init(&b.t, record_cb);
	timer_init(&c.t, record_cb);
	timer_init(&d.t, record_cb);
#define ARM(x, at) do { (x).deadline = (at); (x).arm_seq = seq++; \
	cr_assert_eq(loop_timer_arm(L, &(x).t, (x).deadline), 0); } while (0)
	ARM(a, now + US(3000));
	ARM(b, now + US(1000));
	ARM(c, now + US(2000));
	ARM(d, now + US(2000));
	/* b moves from first to last, a from last to first, and c, re-armed
	 * for the same deadline, goes behind d. */
	ARM(b, now + US(4000));
	ARM(a, now + US(500));
	ARM(c, now + US(2000));
#undef ARM
	cr_assert_eq(loop_timer_count(L), 4);
	ran_n = 0;
	ran_expect = 4;
	arm_guard(MS(5000));
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(ran_n, 4);
	cr_assert_eq(ran_tt[0], &a);
	cr_assert_eq(ran_tt[1], &d);
	cr_assert_eq(ran_tt[2], &c);
	cr_assert_eq(ran_tt[3], &b);
	check_ran_in_order();
}

/* A (first) and B are both due; A cancels B, so B must never run. */
static struct ttimer cx_a, cx_b;

static void cancel_other_cb(struct timer *t)
{
	cr_assert_eq(t, &cx_a.t, "cancelled timer ran");
	cx_a.fired++;
	cr_assert(timer_armed(&cx_b.t));
	loop_timer_cancel(L, &cx_b.t);
	cr_assert(!timer_armed(&cx_b.t));
}

Test(loop, cancel_due_timer_from_callback)
{
	uint64_t now = mono_ns();
	struct timer stop;

	timer_init(&cx_a.t, cancel_other_cb);
	timer_init(&cx_b.t, cancel_other_cb);
	timer_init(&stop, stop_timer_cb);
	cr_assert_eq(loop_timer_arm(L, &cx_a.t, now - US(10)), 0);
	cr_assert_eq(loop_timer_arm(L, &cx_b.t, now - US(10)), 0);
	cr_assert_eq(loop_timer_arm(L, &stop, now + MS(2)), 0);
	arm_guard(MS(5000));
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(cx_a.fired, 1);
	cr_assert_eq(cx_b.fired, 0);
	cr_assert_eq(loop_timer_count(L), 1);
}

/* A periodic timer re-armed from its own callback fires N times. */
static struct ttimer per;
static const int per_n = 20;

static void periodic_cb(struct timer *t)
{
	cr_assert(loop_now(L) >= per.deadline, "periodic timer early");
	per.fired++;
	if (per.fired == per_n) {
		loop_stop(L);
		return;
	}
	per.deadline += US(250);
	cr_assert_eq(loop_timer_arm(L, t, per.deadline), 0);
	cr_assert(timer_armed(t));
}

Test(loop, periodic_rearm_from_own_callback)
{
	timer_init(&per.t, periodic_cb);
	per.deadline = mono_ns() + US(250);
	cr_assert_eq(loop_timer_arm(L, &per.t, per.deadline), 0);
	arm_guard(MS(5000));
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(per.fired, per_n);
	cr_assert(!timer_armed(&per.t));
}

/* A timer that re-arms itself into the past must not run twice in one
 * timer pass: a deferred call queued by the callback runs after each pass,
 * so it must always have run before the callback runs again. */
static struct timer spin;
static struct deferred spin_d;
static bool spin_pending;
static int spin_runs;

static void spin_deferred(struct deferred *d)
{
	(void)d;
	spin_pending = false;
}

static void spin_cb(struct timer *t)
{
	cr_assert(!spin_pending, "re-armed timer ran again in the same pass");
	spin_pending = true;
	loop_free_later(L, &spin_d, spin_deferred);
	if (++spin_runs == 50) {
		loop_stop(L);
		return;
	}
	cr_assert_eq(loop_timer_arm(L, t, 0), 0);
}

Test(loop, rearm_into_past_runs_next_pass)
{
	timer_init(&spin, spin_cb);
	cr_assert_eq(loop_timer_arm(L, &spin, 0), 0);
	arm_guard(MS(5000));
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(spin_runs, 50);
}

Test(loop, run_returns_after_stop_from_timer_and_runs_again)
{
	struct timer stop;
	timer_init(&stop, stop_timer_cb);

	for (int round = 0; round < 2; round++) {
		uint64_t deadline = mono_ns() + MS(1);
		cr_assert_eq(loop_timer_arm(L, &stop, deadline), 0);
		cr_assert_eq(loop_run(L), 0);
		cr_assert(!timer_armed(&stop));
		cr_assert(mono_ns() >= deadline);
		cr_assert(loop_now(L) >= deadline);
	}
}

/* Timers are never early, with either wait mechanism.  Offsets are not
 * whole milliseconds, so a millisecond-rounding wait would show. */
static void precision_case(void)
{
	struct ttimer tt[20];
	uint64_t start = mono_ns();

	ran_n = 0;
	ran_expect = ARRAY_SIZE(tt);
	for (size_t i = 0; i < ARRAY_SIZE(tt); i++) {
		timer_init(&tt[i].t, record_cb);
		tt[i].deadline = start + MS(2) + US(37 * i + 1);
		tt[i].arm_seq = i;
		cr_assert_eq(loop_timer_arm(L, &tt[i].t, tt[i].deadline), 0);
	}
	arm_guard(MS(10000));
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(ran_n, ARRAY_SIZE(tt));
	check_ran_in_order();
	/* record_cb asserted loop_now() >= deadline; the real clock too: */
	cr_assert(mono_ns() >= tt[ARRAY_SIZE(tt) - 1].deadline);
}

Test(loop, timer_never_early_pwait2)
{
	precision_case();
}

Test(loop, timer_never_early_timerfd)
{
	cr_assert_eq(loop_debug_use_timerfd(L), 0);
	precision_case();
}

/* ---- signals ---- */

static int sig_seen[3];
static int sig_n;

static void on_signal(struct loop *loop, int signo, void *arg)
{
	cr_assert_eq(loop, L);
	cr_assert_eq(arg, &sig_n);
	cr_assert(sig_n < (int)ARRAY_SIZE(sig_seen));
	sig_seen[sig_n++] = signo;
	loop_stop(loop);
}

static void expect_signal(int signo)
{
	sig_n = 0;
	cr_assert_eq(kill(getpid(), signo), 0);
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(sig_n, 1);
	cr_assert_eq(sig_seen[0], signo, "got signal %d, sent %d", sig_seen[0], signo);
}

Test(loop, signals_delivered_and_sigpipe_ignored)
{
	sigset_t cur;
	int sv[2];

	cr_assert_eq(loop_signals(L, on_signal, &sig_n), 0);
	arm_guard(MS(10000));
	expect_signal(SIGUSR1);
	expect_signal(SIGHUP);
	expect_signal(SIGTERM);
	expect_signal(SIGINT);

	/* Two different signals pending at once: both reported. */
	sig_n = 0;
	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
	cr_assert_eq(kill(getpid(), SIGHUP), 0);
	cr_assert_eq(loop_run(L), 0);
	if (sig_n == 1)
		cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(sig_n, 2);
	cr_assert((sig_seen[0] == SIGUSR1 && sig_seen[1] == SIGHUP) ||
		  (sig_seen[0] == SIGHUP && sig_seen[1] == SIGUSR1));

	/* SIGPIPE is ignored: writing to a closed peer gives EPIPE. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	errno = 0;
	cr_assert_eq(write(sv[0], "x", 1), -1);
	cr_assert_eq(errno, EPIPE);
	close(sv[0]);

	/* loop_free restores the mask. */
	loop_free(L);
	L = NULL;
	cr_assert_eq(sigprocmask(SIG_SETMASK, NULL, &cur), 0);
	cr_assert(!sigismember(&cur, SIGTERM));
	cr_assert(!sigismember(&cur, SIGUSR1));
}

/* loop_budget: spent within an iteration, fresh in the next. */
static struct loop_budget budget_b;
static int budget_runs;
static size_t budget_seen[3];
static struct timer budget_t;

static void budget_cb(struct timer *t)
{
	budget_seen[budget_runs] = loop_budget_left(L, &budget_b);
	loop_budget_spend(&budget_b, 70);
	if (++budget_runs == 3) {
		loop_stop(L);
		return;
	}
	/* Re-armed into the past: runs in the next iteration. */
	loop_timer_arm(L, t, loop_now(L));
}

Test(loop, budget_is_per_iteration)
{
	budget_b = (struct loop_budget){ .cap = 100 };
	cr_assert_eq(loop_budget_left(L, &budget_b), 100);
	loop_budget_spend(&budget_b, 60);
	cr_assert_eq(loop_budget_left(L, &budget_b), 40);
	loop_budget_spend(&budget_b, 50);
	cr_assert_eq(loop_budget_left(L, &budget_b), 0, "overspent is 0, not a wrap");
	arm_guard(MS(5000));
	timer_init(&budget_t, budget_cb);
	cr_assert_eq(loop_timer_arm(L, &budget_t, loop_now(L)), 0);
	cr_assert_eq(loop_run(L), 0);
	cr_assert_eq(budget_runs, 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(budget_seen[i], 100, "iteration %d: %zu left", i, budget_seen[i]);
}

/* loop_budget: no slice starts when a timer falls due within the margin
 * (the ping runs first), and one refused for too long gets a small one. */
static void never_cb(struct timer *t)
{
	(void)t;
	cr_assert_fail("not run in this test");
}

Test(loop, budget_waits_for_a_timer_about_to_fall_due)
{
	struct timer near, far;
	struct loop_budget b = { .cap = 100000 };

	timer_init(&far, never_cb);
	cr_assert_eq(loop_timer_arm(L, &far, mono_ns() + MS(50)), 0);
	cr_assert_eq(loop_budget_left(L, &b), 100000, "the next timer is far: all of it");

	timer_init(&near, never_cb);
	uint64_t due = mono_ns() + LOOP_BUDGET_MARGIN_NS / 2;
	cr_assert_eq(loop_timer_arm(L, &near, due), 0);
	cr_assert_eq(loop_budget_left(L, &b), 0, "a timer due within the margin goes first");
	cr_assert_eq(loop_budget_retry_at(&b), due, "ask again right after it");

	/* Refused since longer than LOOP_BUDGET_STARVE_NS: a small slice. */
	b.refused_since = mono_ns() - LOOP_BUDGET_STARVE_NS - MS(1);
	cr_assert_eq(loop_budget_left(L, &b), LOOP_BUDGET_STARVE_SLICE);
	cr_assert_eq(loop_budget_left(L, &b), 0, "then it waits again");

	loop_timer_cancel(L, &near);
	cr_assert_eq(loop_budget_left(L, &b), 100000, "the near timer is gone");
	loop_timer_cancel(L, &far);
}
