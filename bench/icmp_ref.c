/*
 * icmp_ref: the least a pinger can do per probe, for bench/icmp to measure
 * beacond against.
 *
 * It sends what beacond sends, the way beacond sends it -- one ICMP socket
 * (datagram, or raw with -r), kernel receive and transmit timestamps on,
 * N loopback targets 127.1.x.y at a fixed interval, first sends spread
 * over the interval on a grid of G ms, each grid step sent as one batch --
 * and then does nothing with the answers but count them: replies and
 * transmit stamps are read with recvmmsg() and dropped.  No sequence map,
 * no statistics, no timeouts, no logging, no event loop (it sleeps with
 * clock_nanosleep).  Its CPU per probe is therefore the kernel's share
 * (send, loopback echo, receive, timestamps) plus a wake-up per batch: the
 * floor under any pinger on this machine.
 *
 *   icmp_ref [-n TARGETS] [-i INTERVAL_MS] [-g GRID_MS] [-s SECONDS] [-r] [-P]
 *
 * Defaults: 10000 targets, 1000 ms, 4 ms, 60 s, datagram socket.  Prints
 * "sent N received N stamps N" on stdout at the end.  Run it only where the
 * targets are your own loopback (bench/icmp runs it in a namespace).
 *
 * -P also prints, on stderr, the mean wall time of sendto() by the send's
 * position in its batch (0 = the first after the sleep), and the process's
 * CPU per probe.  A flood is "-i 20 -g 1" (500 sends per 1 ms step, more
 * than one CPU can send, so it never sleeps).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 56
#define POSITIONS 64   /* -P: positions timed; later ones count as the last */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
			       .tv_nsec = (long)(t % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint16_t checksum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Read and drop everything queued; returns how many datagrams. */
static long drain(int fd, int flags)
{
	static uint8_t buf[BATCH][256];
	static char ctrl[BATCH][192];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	long total = 0;

	for (;;) {
		int n;

		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ buf[i], sizeof buf[i] };
			memset(&m[i], 0, sizeof m[i]);
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
			m[i].msg_hdr.msg_control = ctrl[i];
			m[i].msg_hdr.msg_controllen = sizeof ctrl[i];
		}
		n = recvmmsg(fd, m, BATCH, flags | MSG_DONTWAIT, NULL);
		if (n <= 0)
			return total;
		total += n;
	}
}

int main(int argc, char **argv)
{
	long n_targets = 10000, interval_ms = 1000, grid_ms = 4, seconds = 60;
	int raw = 0, timing = 0, opt, fd, on = 1, rcvbuf = 32 << 20;
	static uint64_t pos_ns[POSITIONS], pos_n[POSITIONS];
	int ts = SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_SOFTWARE |
		 SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
	long sent = 0, received = 0, stamps = 0, n_slots;
	uint8_t pkt[8 + PAYLOAD];
	uint64_t grid, t0, end;

	while ((opt = getopt(argc, argv, "n:i:g:s:rP")) != -1) {
		switch (opt) {
		case 'n': n_targets = atol(optarg); break;
		case 'i': interval_ms = atol(optarg); break;
		case 'g': grid_ms = atol(optarg); break;
		case 's': seconds = atol(optarg); break;
		case 'r': raw = 1; break;
		case 'P': timing = 1; break;
		default:
			fprintf(stderr, "usage: icmp_ref [-n N] [-i MS] [-g MS] [-s S] [-r] [-P]\n");
			return 64;
		}
	}
	if (n_targets < 1 || n_targets > 62500 || interval_ms < 1 || grid_ms < 1 ||
	    interval_ms % grid_ms != 0 || seconds < 1) {
		fprintf(stderr, "icmp_ref: bad arguments\n");
		return 64;
	}
	fd = socket(AF_INET, (raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_NONBLOCK, IPPROTO_ICMP);
	if (fd < 0) {
		perror("icmp_ref: socket");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &ts, sizeof ts) < 0) {
		perror("icmp_ref: timestamps");
		return 1;
	}
	/* Target k goes out in grid step k * steps / N of each interval, as
	 * beacond spreads first sends. */
	n_slots = interval_ms / grid_ms;
	grid = (uint64_t)grid_ms * 1000000u;
	t0 = (now_ns() / grid + 1) * grid;
	end = t0 + (uint64_t)seconds * 1000000000u;
	memset(pkt, 0, sizeof pkt);
	pkt[0] = ICMP_ECHO;
	for (uint64_t step = 0;; step++) {
		uint64_t at = t0 + step * grid;
		long slot = (long)(step % (uint64_t)n_slots);
		long from = slot * n_targets / n_slots, to = (slot + 1) * n_targets / n_slots;

		if (at >= end)
			break;
		sleep_until(at);
		for (long k = from; k < to; k++) {
			struct sockaddr_in dst = { .sin_family = AF_INET };
			uint32_t i = (uint32_t)k;
			uint16_t c;

			dst.sin_addr.s_addr = htonl(0x7f010000u | (i / 250) << 8 | (i % 250 + 1));
			pkt[2] = pkt[3] = 0;
			pkt[4] = 0x12;
			pkt[5] = 0x34;
			pkt[6] = (uint8_t)(sent >> 8);
			pkt[7] = (uint8_t)sent;
			c = checksum(pkt, sizeof pkt);
			pkt[2] = (uint8_t)(c >> 8);
			pkt[3] = (uint8_t)c;
			uint64_t before = timing ? now_ns() : 0;

			if (sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&dst, sizeof dst) ==
			    (ssize_t)sizeof pkt)
				sent++;
			if (timing) {
				long i_pos = k - from < POSITIONS ? k - from : POSITIONS - 1;

				pos_ns[i_pos] += now_ns() - before;
				pos_n[i_pos]++;
			}
		}
		received += drain(fd, 0);
		stamps += drain(fd, MSG_ERRQUEUE);
	}
	received += drain(fd, 0);
	stamps += drain(fd, MSG_ERRQUEUE);
	printf("sent %ld received %ld stamps %ld\n", sent, received, stamps);
	if (timing) {
		struct rusage ru;

		fprintf(stderr, "sendto us by position in batch:");
		for (int i = 0; i < POSITIONS; i++)
			if (pos_n[i])
				fprintf(stderr, " %d:%.2f", i, (double)pos_ns[i] / 1e3 / (double)pos_n[i]);
		getrusage(RUSAGE_SELF, &ru);
		fprintf(stderr, "\ncpu us/probe %.2f\n",
			((double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
			 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec)) / (double)(sent ? sent : 1));
	}
	close(fd);
	return 0;
}
