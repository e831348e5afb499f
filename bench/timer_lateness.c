/*
 * timer_lateness: how late the loop runs timers under a pinger-like load.
 *
 *   timer_lateness [-t] [timers] [period_ms] [seconds]
 *
 * Arms `timers` periodic timers (default 1000) with `period_ms` (default
 * 100), their first deadlines spread evenly over one period, so the loop
 * sees timers * 1000 / period_ms expiries per second (10 000 by default).
 * Each callback records how long after its deadline it ran and re-arms for
 * deadline + period (an absolute schedule, like the pinger's).  Prints
 * lateness percentiles.  -t uses the timerfd fallback instead of
 * epoll_pwait2's timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "util.h"

struct periodic {
	struct timer timer;
	uint64_t due;
};

static struct loop *loop;
static uint64_t period_ns;
static uint64_t end_ns;
static uint64_t *lateness;
static size_t n_late, cap_late;

static void on_expire(struct timer *t)
{
	struct periodic *p = container_of(t, struct periodic, timer);
	uint64_t now = mono_ns();

	if (n_late < cap_late)
		lateness[n_late++] = now - p->due;
	if (now >= end_ns) {
		loop_stop(loop);
		return;
	}
	p->due += period_ns;
	loop_timer_arm(loop, t, p->due);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(double p)
{
	size_t i = (size_t)(p * (double)(n_late - 1));

	return (double)lateness[i] / 1e3;
}

int main(int argc, char **argv)
{
	bool use_timerfd = false;
	int argi = 1;

	if (argi < argc && !strcmp(argv[argi], "-t")) {
		use_timerfd = true;
		argi++;
	}
	size_t n = argi < argc ? strtoul(argv[argi++], NULL, 10) : 1000;
	uint64_t period_ms = argi < argc ? strtoull(argv[argi++], NULL, 10) : 100;
	uint64_t seconds = argi < argc ? strtoull(argv[argi++], NULL, 10) : 5;

	if (n == 0 || period_ms == 0 || seconds == 0) {
		fprintf(stderr, "usage: timer_lateness [-t] [timers] [period_ms] [seconds]\n");
		return 2;
	}
	period_ns = period_ms * NSEC_PER_MSEC;
	loop = loop_new();
	if (!loop || (use_timerfd && loop_debug_use_timerfd(loop) < 0)) {
		perror("loop");
		return 1;
	}
	struct periodic *timers = calloc(n, sizeof *timers);
	cap_late = (size_t)(n * seconds * 1000 / period_ms) + n + 16;
	lateness = calloc(cap_late, sizeof *lateness);
	if (!timers || !lateness) {
		perror("calloc");
		return 1;
	}
	uint64_t start = mono_ns() + 50 * NSEC_PER_MSEC;
	end_ns = start + seconds * NSEC_PER_SEC;
	for (size_t i = 0; i < n; i++) {
		timer_init(&timers[i].timer, on_expire);
		timers[i].due = start + (uint64_t)i * period_ns / n;
		loop_timer_arm(loop, &timers[i].timer, timers[i].due);
	}
	if (loop_run(loop) < 0) {
		perror("loop_run");
		return 1;
	}
	qsort(lateness, n_late, sizeof *lateness, cmp_u64);
	printf("%s: %zu timers every %llu ms, %zu expiries: lateness "
	       "p50=%.1fus p90=%.1fus p99=%.1fus p99.9=%.1fus max=%.1fus\n",
	       use_timerfd ? "timerfd" : "epoll_pwait2", n, (unsigned long long)period_ms,
	       n_late, pct_us(0.5), pct_us(0.9), pct_us(0.99), pct_us(0.999),
	       pct_us(1.0));
	loop_free(loop);
	free(timers);
	free(lateness);
	return 0;
}
