/* icmp_sock: the pure parts (clock pairing, keys, receive buffer sizing). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "icmp_sock.h"

struct reads {
	const uint64_t (*v)[3];
	int n, calls;
};

static void fake_read(void *arg, uint64_t v[3])
{
	struct reads *r = arg;

	cr_assert_lt(r->calls, r->n, "read more often than scripted");
	memcpy(v, r->v[r->calls++], sizeof(uint64_t[3]));
}

Test(icmp_sock, clock_pair_tight_first_read_is_kept)
{
	static const uint64_t v[][3] = { { 1000, 5000000, 1040 } };
	struct reads r = { v, 1, 0 };
	struct icmp_clock_pair c;

	icmp_clock_pair_pick(&c, fake_read, &r);
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(c.mono, 1020);
	cr_assert_eq(c.real, 5000000);
}

Test(icmp_sock, clock_pair_stall_is_read_again)
{
	/* Preempted for 3 ms between the reads, then 1 ms, then tight: the
	 * tight pair wins, the stall never reaches an RTT. */
	static const uint64_t v[][3] = {
		{ 1000000, 9000000, 4000000 },
		{ 4000100, 9500000, 5000100 },
		{ 5000200, 9600000, 5000260 },
	};
	struct reads r = { v, 3, 0 };
	struct icmp_clock_pair c;

	icmp_clock_pair_pick(&c, fake_read, &r);
	cr_assert_eq(r.calls, 3);
	cr_assert_eq(c.mono, 5000230);
	cr_assert_eq(c.real, 9600000);
}

Test(icmp_sock, clock_pair_gives_up_after_four_keeping_the_tightest)
{
	static const uint64_t v[][3] = {
		{ 0, 100, 900000 },
		{ 1000000, 2000000, 1050000 },
		{ 2000000, 3000000, 2800000 },
		{ 3000000, 4000000, 3600000 },
		{ 0, 0, 0 },
	};
	struct reads r = { v, 4, 0 };
	struct icmp_clock_pair c;

	icmp_clock_pair_pick(&c, fake_read, &r);
	cr_assert_eq(r.calls, 4);
	cr_assert_eq(c.mono, 1025000);
	cr_assert_eq(c.real, 2000000);
}

Test(icmp_sock, kernel_time_to_monotonic)
{
	struct icmp_clock_pair c = { .mono = 50 * NSEC_PER_SEC, .real = 1000 * NSEC_PER_SEC };

	cr_assert_eq(icmp_clock_to_mono(1000 * NSEC_PER_SEC - 3 * NSEC_PER_MSEC, &c),
		     50 * NSEC_PER_SEC - 3 * NSEC_PER_MSEC);
	/* From the future (the wall clock was stepped back): unusable. */
	cr_assert_eq(icmp_clock_to_mono(1001 * NSEC_PER_SEC, &c), 0);
	/* Before the monotonic clock's origin: unusable. */
	cr_assert_eq(icmp_clock_to_mono(900 * NSEC_PER_SEC, &c), 0);
	cr_assert_eq(icmp_clock_to_mono(0, &c), 0);
}

Test(icmp_sock, keys)
{
	struct icmp_sock_key a, b;

	memset(&a, 0, sizeof a);
	a.family = 4;
	a.ttl = 64;
	b = a;
	cr_assert(icmp_sock_key_equal(&a, &b));
	b.tos = 4;
	cr_assert_not(icmp_sock_key_equal(&a, &b));
	b = a;
	strcpy(b.ifname, "eth0");
	cr_assert_not(icmp_sock_key_equal(&a, &b));
	b = a;
	b.has_source = true;
	cr_assert_not(icmp_sock_key_equal(&a, &b));
}

Test(icmp_sock, receive_buffer_sizing)
{
	struct icmp_rx *rx = calloc(1, sizeof *rx);
	uint8_t *buf;
	size_t slot, n;

	cr_assert_eq(icmp_rx_prepare(rx, 56, &buf, &slot, &n), 0);
	cr_assert_not_null(buf);
	cr_assert_eq(slot % 64, 0);
	cr_assert_geq(slot, 60 + 8 + 56);
	cr_assert_eq(n, ICMP_RX_MMSG);
	icmp_rx_install(rx, buf, slot, n);
	/* The same size again: nothing to allocate, nothing to install. */
	cr_assert_eq(icmp_rx_prepare(rx, 56, &buf, &slot, &n), 0);
	cr_assert_null(buf);
	icmp_rx_install(rx, buf, slot, n);
	cr_assert_not_null(rx->buf);
	/* The largest payload: fewer, bigger slots. */
	cr_assert_eq(icmp_rx_prepare(rx, 65000, &buf, &slot, &n), 0);
	cr_assert_geq(slot, 65000);
	cr_assert_geq(n, 1);
	cr_assert_lt(n, ICMP_RX_MMSG);
	icmp_rx_install(rx, buf, slot, n);
	cr_assert_eq(rx->slot, slot);
	free(rx->buf);
	free(rx);
}
