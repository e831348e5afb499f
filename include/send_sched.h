/*
 * send_sched: where the pinger places sends in time.  Pure arithmetic,
 * kept apart from the pinger so it can be tested alone.
 *
 * Sends sit on a grid of absolute CLOCK_MONOTONIC time, so probes whose
 * evenly spread first sends fall in the same grid step fire in one wake-up
 * and their replies are read with one recvmmsg().  On a virtual machine a
 * wake-up costs more than a send: with 10 000 targets at 1 Hz, forty sends
 * per wake-up instead of ten took 0.78-0.89 of the CPU per probe, measured
 * side by side on separate CPUs (2026-11-21).  The step
 * therefore grows with the send rate until a step holds about
 * SEND_GRID_BATCH sends -- the last of them leaves a few hundred
 * microseconds after the first, well inside a 1 ms lateness budget -- and
 * never beyond SEND_GRID_MAX_NS, so first sends still spread over the
 * interval.  A probe whose interval is not a multiple of the step uses the
 * largest power-of-two part of it that divides the interval, so all its
 * deadlines (first + k * interval) stay on the grid.
 */
#ifndef BEACOND_SEND_SCHED_H
#define BEACOND_SEND_SCHED_H

#include <stdint.h>

#define SEND_GRID_MIN_NS 1000000ULL            /* 1 ms */
#define SEND_GRID_MAX_NS (8 * SEND_GRID_MIN_NS)
#define SEND_GRID_BATCH 64

/* The grid step for a total send rate of rate_mhz (sends per 1000 s,
 * i.e. milli-sends per second): the largest of 1, 2, 4, 8 ms that holds
 * at most SEND_GRID_BATCH sends on average, 1 ms when even that holds
 * more. */
static inline uint64_t send_grid_ns(uint64_t rate_mhz)
{
	uint64_t step = SEND_GRID_MAX_NS;

	/* sends per step = rate_mhz / 1000 * step / 1e9 */
	while (step > SEND_GRID_MIN_NS &&
	       rate_mhz / 1000 * (step / SEND_GRID_MIN_NS) > SEND_GRID_BATCH * 1000ULL)
		step /= 2;
	return step;
}

/* The step one probe's sends use: grid_ns, halved until it divides the
 * probe's interval (1 ms at least). */
static inline uint64_t send_grid_for(uint64_t grid_ns, uint64_t interval_ns)
{
	while (grid_ns > SEND_GRID_MIN_NS && interval_ns % grid_ns != 0)
		grid_ns /= 2;
	return grid_ns;
}

/* The first grid point at or after t. */
static inline uint64_t send_grid_up(uint64_t t, uint64_t grid_ns)
{
	t += grid_ns - 1;
	return t - t % grid_ns;
}

/* Milli-sends per second of one probe sending every interval_ns. */
static inline uint64_t send_rate_mhz(uint64_t interval_ns)
{
	return interval_ns ? 1000000000000ULL / interval_ns : 0;
}

#endif
