/*
 * stamp_load: the load generator of bench/stamp.  Sends 44-byte STAMP
 * requests over K connected sockets with P in flight in all, and answers
 * every reply with a new request, for a fixed window after a warm-up.
 * The same requests go to the UDP echo (which returns them unchanged) and
 * to the STAMP reflector, so both see the same load; the figure that
 * compares them is replies per second of the server's CPU time, read from
 * /proc/PID/schedstat (ns) at both ends of the window.
 *
 * With --stamp every reply is parsed: its sender sequence number must be
 * one we sent, and T3 - T2 (the reflector's residence time) is recorded;
 * p50 and p99 are reported over the window (up to 4 M samples).
 *
 * Usage: stamp_load --port P [--host 127.0.0.1] [--seconds 3] [--warmup 1]
 *                   [--inflight 64] [--sockets 8] [--pid PID] [--stamp]
 * Prints one key=value line; exit 1 when nothing came back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKS 64
#define BATCH 64
#define PKT 44
#define MAX_SAMPLES (4u << 20)
#define NTP_OFFSET 2208988800ull

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint64_t ntp_ns(uint64_t v)
{
	uint64_t sec = v >> 32, frac = v & 0xffffffffu;
	return (sec - NTP_OFFSET) * 1000000000u + ((frac * 1000000000u) >> 32);
}

static void put_request(uint8_t *p, uint32_t seq)
{
	uint64_t ns = now_ns(CLOCK_REALTIME);
	uint64_t t1 = (ns / 1000000000u + NTP_OFFSET) << 32 |
		      (((ns % 1000000000u) << 32) / 1000000000u);
	memset(p, 0, PKT);
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(seq >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		p[4 + i] = (uint8_t)(t1 >> (56 - 8 * i));
	p[13] = 1;
}

static uint64_t server_cpu_ns(int pid)
{
	char path[64];
	unsigned long long run = 0;
	snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &run) != 1)
		run = 0;
	fclose(f);
	return run;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0, pid = 0, nsock = 8;
	unsigned inflight = 64;
	double seconds = 3, warmup = 1;
	bool stamp = false;
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "sockets", required_argument, NULL, 'k' },
		{ "pid", required_argument, NULL, 'P' },
		{ "stamp", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'i': inflight = (unsigned)atoi(optarg); break;
		case 'k': nsock = atoi(optarg); break;
		case 'P': pid = atoi(optarg); break;
		case 'S': stamp = true; break;
		default: return 2;
		}
	}
	if (port <= 0 || nsock < 1 || nsock > MAX_SOCKS || inflight < (unsigned)nsock ||
	    seconds <= 0 || seconds > 60 || warmup < 0 || warmup > 10) {
		fprintf(stderr, "stamp_load: bad arguments (seconds <= 60, sockets <= 64)\n");
		return 2;
	}

	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, host, &dst.sin_addr);
	int ep = epoll_create1(0);
	int fds[MAX_SOCKS];
	uint32_t seq = 0;
	uint8_t pkt[PKT];
	for (int i = 0; i < nsock; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&dst, sizeof dst) < 0) {
			perror("stamp_load: socket");
			return 1;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
	}
	uint64_t *samples = stamp ? malloc(MAX_SAMPLES * sizeof *samples) : NULL;
	size_t nsamples = 0;
	uint64_t replies = 0, bad = 0, topups = 0, win_replies = 0;
	uint64_t last_rx[MAX_SOCKS];
	unsigned per = inflight / (unsigned)nsock;

	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	uint64_t w_start = t0 + (uint64_t)(warmup * 1e9);
	uint64_t w_end = w_start + (uint64_t)(seconds * 1e9);
	uint64_t cpu0 = 0, cpu1 = 0, r0 = 0, m0 = 0, m1 = 0;
	bool in_window = false;

	for (int i = 0; i < nsock; i++) {
		for (unsigned j = 0; j < per; j++) {
			put_request(pkt, seq++);
			send(fds[i], pkt, PKT, 0);
		}
		last_rx[i] = t0;
	}

	static uint8_t bufs[BATCH][PKT + 64];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	static uint8_t obufs[BATCH][PKT];
	struct mmsghdr omsgs[BATCH];
	struct iovec oiov[BATCH];

	for (;;) {
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		if (!in_window && now >= w_start) {
			in_window = true;
			cpu0 = pid ? server_cpu_ns(pid) : 0;
			r0 = replies;
			m0 = now;
		}
		if (now >= w_end) {
			cpu1 = pid ? server_cpu_ns(pid) : 0;
			m1 = now;
			win_replies = replies - r0;
			break;
		}
		struct epoll_event evs[MAX_SOCKS];
		int n = epoll_wait(ep, evs, MAX_SOCKS, 20);
		now = now_ns(CLOCK_MONOTONIC);
		for (int e = 0; e < n; e++) {
			int i = (int)evs[e].data.u32;
			for (unsigned b = 0; b < BATCH; b++) {
				iov[b] = (struct iovec){ bufs[b], sizeof bufs[b] };
				memset(&msgs[b], 0, sizeof msgs[b]);
				msgs[b].msg_hdr.msg_iov = &iov[b];
				msgs[b].msg_hdr.msg_iovlen = 1;
			}
			int got = recvmmsg(fds[i], msgs, BATCH, MSG_DONTWAIT, NULL);
			if (got <= 0)
				continue;
			last_rx[i] = now;
			for (int b = 0; b < got; b++) {
				replies++;
				if (msgs[b].msg_len != PKT) {
					bad++;
				} else if (stamp && in_window && nsamples < MAX_SAMPLES) {
					uint64_t t3 = ntp_ns(get64(bufs[b] + 4));
					uint64_t t2 = ntp_ns(get64(bufs[b] + 16));
					if (t3 >= t2)
						samples[nsamples++] = t3 - t2;
					else
						bad++;
				}
				put_request(obufs[b], seq++);
				oiov[b] = (struct iovec){ obufs[b], PKT };
				memset(&omsgs[b], 0, sizeof omsgs[b]);
				omsgs[b].msg_hdr.msg_iov = &oiov[b];
				omsgs[b].msg_hdr.msg_iovlen = 1;
			}
			sendmmsg(fds[i], omsgs, (unsigned)got, MSG_DONTWAIT);
		}
		/* A socket whose datagrams were all lost gets its share again. */
		for (int i = 0; i < nsock; i++) {
			if (now - last_rx[i] > 100000000u) {
				for (unsigned j = 0; j < per; j++) {
					put_request(pkt, seq++);
					send(fds[i], pkt, PKT, MSG_DONTWAIT);
				}
				last_rx[i] = now;
				topups++;
			}
		}
	}

	double win_s = (double)(m1 - m0) / 1e9;
	double cpu_s = (double)(cpu1 - cpu0) / 1e9;
	printf("replies=%llu window_s=%.3f rate=%.0f server_cpu_s=%.3f per_cpu_s=%.0f bad=%llu topups=%llu",
	       (unsigned long long)win_replies, win_s, (double)win_replies / win_s, cpu_s,
	       cpu_s > 0 ? (double)win_replies / cpu_s : 0.0, (unsigned long long)bad,
	       (unsigned long long)topups);
	if (stamp && nsamples) {
		qsort(samples, nsamples, sizeof *samples, cmp_u64);
		printf(" samples=%zu res_p50_ns=%llu res_p99_ns=%llu res_max_ns=%llu", nsamples,
		       (unsigned long long)samples[nsamples / 2],
		       (unsigned long long)samples[(size_t)((double)nsamples * 0.99)],
		       (unsigned long long)samples[nsamples - 1]);
	}
	printf("\n");
	free(samples);
	return win_replies ? 0 : 1;
}
