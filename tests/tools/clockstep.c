/*
 * clockstep: an LD_PRELOAD shim that steps the wall clock of one process.
 *
 * A real step of CLOCK_REALTIME (settimeofday, an NTP step) changes the
 * whole machine's clock, which a test must not do.  This shim gives one
 * process the same view instead:
 *
 *   CLOCKSTEP_OFFSET_S  signed size of the step, in seconds
 *   CLOCKSTEP_AFTER_S   the step happens this many seconds after the
 *                       process starts, or
 *   CLOCKSTEP_TRIGGER   a path: the step happens at the first read of the
 *                       wall clock after this file exists (so a test can
 *                       step while the process is stopped, with packets
 *                       waiting in its sockets)
 *
 * Or, with CLOCKSTEP_STALL_US set, no step but stalls: every other
 * CLOCK_REALTIME read that directly follows a CLOCK_MONOTONIC read in the
 * same thread sleeps that long first, as if the thread had been preempted
 * between reading the two clocks (a busy host stops a vCPU for
 * milliseconds).  The clocks themselves stay right.
 *
 * From the step on, clock_gettime(CLOCK_REALTIME and _COARSE),
 * gettimeofday() and time() return the real value plus the offset.  The
 * kernel stamps packets with CLOCK_REALTIME too (SO_TIMESTAMP,
 * SO_TIMESTAMPNS, SO_TIMESTAMPING), so recvmsg() and recvmmsg() shift every
 * such stamp that was taken after the step, and leave earlier ones alone,
 * exactly as a real step would: a packet stamped just before the step and
 * read just after it shows the discontinuity, as it would for real.
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME are untouched.
 *
 * Limits: system calls made without going through these libc functions
 * (syscall(2), the vDSO called directly) and absolute CLOCK_REALTIME timers
 * (timerfd, clock_nanosleep) do not see the step.  A test tool, not for
 * production.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/errqueue.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *restrict, void *restrict);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);
typedef int (*recvmmsg_fn)(int, struct mmsghdr *, unsigned int, int, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static gettimeofday_fn real_gettimeofday;
static recvmsg_fn real_recvmsg;
static recvmmsg_fn real_recvmmsg;

/* Real CLOCK_REALTIME value (ns) at which the step happens, and its size.
 * Until the constructor has run there is no step. */
static int64_t step_at = INT64_MAX;
static int64_t step_ns;
static const char *trigger;
static long stall_us;                    /* CLOCKSTEP_STALL_US, 0: off */
static __thread clockid_t last_clock = -1;
static __thread unsigned long stall_turn;

static void *next_symbol(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL)
		abort();
	return p;
}

static void resolve(void)
{
	if (real_clock_gettime == NULL)
		real_clock_gettime = (clock_gettime_fn)next_symbol("clock_gettime");
	if (real_gettimeofday == NULL)
		real_gettimeofday = (gettimeofday_fn)next_symbol("gettimeofday");
	if (real_recvmsg == NULL)
		real_recvmsg = (recvmsg_fn)next_symbol("recvmsg");
	if (real_recvmmsg == NULL)
		real_recvmmsg = (recvmmsg_fn)next_symbol("recvmmsg");
}

__attribute__((constructor)) static void clockstep_init(void)
{
	const char *after = getenv("CLOCKSTEP_AFTER_S");
	const char *offset = getenv("CLOCKSTEP_OFFSET_S");
	struct timespec now;

	resolve();
	if (getenv("CLOCKSTEP_STALL_US") != NULL)
		stall_us = strtol(getenv("CLOCKSTEP_STALL_US"), NULL, 10);
	if (offset == NULL)
		return;
	step_ns = (int64_t)(strtod(offset, NULL) * 1e9);
	trigger = getenv("CLOCKSTEP_TRIGGER");
	if (after == NULL)
		return;
	real_clock_gettime(CLOCK_REALTIME, &now);
	step_at = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec +
		  (int64_t)(strtod(after, NULL) * 1e9);
}

/* The stepped view of a real time. */
static int64_t shifted(int64_t real_ns)
{
	return real_ns >= step_at ? real_ns + step_ns : real_ns;
}

/* A read of the wall clock by the process: the moment a pending trigger
 * takes effect. */
static void check_trigger(const struct timespec *real)
{
	if (trigger != NULL && step_at == INT64_MAX && access(trigger, F_OK) == 0)
		step_at = (int64_t)real->tv_sec * 1000000000 + real->tv_nsec;
}

static void shift_timespec(struct timespec *ts)
{
	int64_t ns = shifted((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);

	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
}

static void shift_timeval(struct timeval *tv)
{
	int64_t ns = shifted((int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000);

	tv->tv_sec = (time_t)(ns / 1000000000);
	tv->tv_usec = (suseconds_t)(ns % 1000000000 / 1000);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int r;

	resolve();
	if (stall_us > 0 && id == CLOCK_REALTIME && last_clock == CLOCK_MONOTONIC &&
	    stall_turn++ % 2 == 0) {
		struct timespec d = { stall_us / 1000000, stall_us % 1000000 * 1000 };

		while (nanosleep(&d, &d) != 0)
			;
	}
	last_clock = id;
	r = real_clock_gettime(id, ts);
	if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
		check_trigger(ts);
		shift_timespec(ts);
	}
	return r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	int r;

	resolve();
	r = real_gettimeofday(tv, tz);
	if (r == 0) {
		struct timespec ts = { tv->tv_sec, (long)tv->tv_usec * 1000 };

		check_trigger(&ts);
		shift_timeval(tv);
	}
	return r;
}

time_t time(time_t *out)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (out != NULL)
		*out = ts.tv_sec;
	return ts.tv_sec;
}

/* Shift the kernel's timestamps in one received message's control data. */
static void shift_cmsgs(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
			struct timespec ts;

			memcpy(&ts, CMSG_DATA(c), sizeof ts);
			shift_timespec(&ts);
			memcpy(CMSG_DATA(c), &ts, sizeof ts);
		} else if (c->cmsg_type == SCM_TIMESTAMP &&
			   c->cmsg_len >= CMSG_LEN(sizeof(struct timeval))) {
			struct timeval tv;

			memcpy(&tv, CMSG_DATA(c), sizeof tv);
			shift_timeval(&tv);
			memcpy(CMSG_DATA(c), &tv, sizeof tv);
		} else if (c->cmsg_type == SCM_TIMESTAMPING &&
			   c->cmsg_len >= CMSG_LEN(sizeof(struct scm_timestamping))) {
			struct scm_timestamping st;

			memcpy(&st, CMSG_DATA(c), sizeof st);
			/* ts[0] software, ts[2] hardware (a different clock,
			 * left alone); zero means "not present". */
			if (st.ts[0].tv_sec != 0 || st.ts[0].tv_nsec != 0)
				shift_timespec(&st.ts[0]);
			memcpy(CMSG_DATA(c), &st, sizeof st);
		}
	}
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t r;

	resolve();
	r = real_recvmsg(fd, msg, flags);
	if (r >= 0)
		shift_cmsgs(msg);
	return r;
}

int recvmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags, struct timespec *timeout)
{
	int r;

	resolve();
	r = real_recvmmsg(fd, msgs, n, flags, timeout);
	for (int i = 0; i < r; i++)
		shift_cmsgs(&msgs[i].msg_hdr);
	return r;
}
