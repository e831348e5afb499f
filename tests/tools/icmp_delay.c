/*
 * icmp_delay: answer ICMP and ICMPv6 echo requests after a fixed delay.
 *
 * This kernel has no netem, so the namespace tests need their own way to
 * add latency.  Run inside the target namespace with the kernel's own echo
 * replies switched off there (net.ipv4.icmp_echo_ignore_all=1,
 * net.ipv6.icmp.echo_ignore_all=1): every echo request read on the raw
 * sockets is answered exactly DELAY ms after it arrived.  "Arrived" is the
 * kernel's receive timestamp (SO_TIMESTAMPNS), not the moment we got round
 * to reading it, so a slow wake-up here does not add to the delay twice.
 *
 *   icmp_delay -d MS [-t MAX_SECONDS] [-4] [-6]
 *
 * Prints "ready" on stdout once its sockets are open; exits after
 * MAX_SECONDS (default 60) or on SIGTERM/SIGINT.  At exit it prints one line
 * per reply sent, "reply FAMILY IDENT SEQ LATE_NS" (how much later than
 * DELAY the reply really left: on a loaded machine even a real-time thread
 * can wake late, and a test should hold the pinger to the delay actually
 * applied), then its counters on stderr.  A test tool: it trusts nothing in
 * the packets but their length.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* From <linux/icmp.h>, which clashes with <netinet/ip_icmp.h>. */
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
struct icmp_filter {
	uint32_t data;
};
#endif

#define QUEUE_CAP 8192
#define PKT_MAX 65536

/* One reply waiting for its deadline. */
struct pending {
	uint64_t due_ns;              /* CLOCK_MONOTONIC */
	int family;
	struct sockaddr_storage to;   /* the requester */
	socklen_t to_len;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} from;                       /* the address the request was sent to */
	int ifindex;
	size_t len;
	unsigned char *msg;           /* the ICMP message, already turned into a reply */
};

/* Ring of pending replies kept sorted by deadline.  With one fixed delay
 * arrivals are nearly in deadline order already, so insertion walks back
 * from the tail a step or two at most. */
static struct pending queue[QUEUE_CAP];
static size_t q_head, q_len;
static volatile sig_atomic_t stop_flag;

static unsigned long n_answered, n_dropped, n_late_us_max;

/* What each reply really got, printed at exit. */
struct sent_rec {
	uint8_t family;
	uint16_t ident, seq;
	uint64_t late_ns;
};
#define SENT_CAP 65536
static struct sent_rec *sent_log;
static size_t n_sent_log;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct pending *q_at(size_t i)
{
	return &queue[(q_head + i) % QUEUE_CAP];
}

static struct pending *q_insert(uint64_t due)
{
	size_t i;

	if (q_len == QUEUE_CAP)
		return NULL;
	i = q_len++;
	while (i > 0 && q_at(i - 1)->due_ns > due) {
		*q_at(i) = *q_at(i - 1);
		i--;
	}
	q_at(i)->due_ns = due;
	return q_at(i);
}

static uint16_t inet_cksum(const unsigned char *p, size_t len)
{
	uint32_t sum = 0;

	while (len > 1) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int open_socket(int family)
{
	int one = 1, fd;

	if (family == AF_INET) {
		struct icmp_filter filt = { .data = ~(1U << ICMP_ECHO) };

		fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
		if (fd < 0)
			return -1;
		if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filt, sizeof filt) < 0 ||
		    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0)
			goto fail;
	} else {
		struct icmp6_filter filt;

		fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
		if (fd < 0)
			return -1;
		ICMP6_FILTER_SETBLOCKALL(&filt);
		ICMP6_FILTER_SETPASS(ICMP6_ECHO_REQUEST, &filt);
		if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filt, sizeof filt) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) < 0)
			goto fail;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* Read every queued request on fd and schedule its reply. */
static void drain(int fd, int family, uint64_t delay_ns)
{
	static unsigned char buf[PKT_MAX];

	for (;;) {
		union {
			char buf[512];
			struct cmsghdr align;
		} ctl;
		struct sockaddr_storage from;
		struct iovec iov = { buf, sizeof buf };
		struct msghdr mh = {
			.msg_name = &from, .msg_namelen = sizeof from,
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf,
		};
		struct timespec *rx_ts = NULL;
		struct in_pktinfo *pi4 = NULL;
		struct in6_pktinfo *pi6 = NULL;
		unsigned char *icmp;
		size_t icmp_len;
		uint64_t arrival, now_mono, now_real, rx_real;
		struct pending *pe;
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				perror("icmp_delay: recvmsg");
			return;
		}
		now_mono = clock_ns(CLOCK_MONOTONIC);
		now_real = clock_ns(CLOCK_REALTIME);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS)
				rx_ts = (struct timespec *)(void *)CMSG_DATA(c);
			else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
				pi4 = (struct in_pktinfo *)(void *)CMSG_DATA(c);
			else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
				pi6 = (struct in6_pktinfo *)(void *)CMSG_DATA(c);
		}
		if (family == AF_INET) {
			/* IPv4 raw sockets hand us the IP header too. */
			size_t ihl;

			if (n < 20 || !pi4)
				continue;
			ihl = (size_t)(buf[0] & 0x0f) * 4;
			if (ihl < 20 || (size_t)n < ihl + 8)
				continue;
			icmp = buf + ihl;
			icmp_len = (size_t)n - ihl;
			if (icmp[0] != ICMP_ECHO)
				continue;
		} else {
			if (n < 8 || !pi6)
				continue;
			icmp = buf;
			icmp_len = (size_t)n;
			if (icmp[0] != ICMP6_ECHO_REQUEST)
				continue;
		}
		/* Convert the kernel's wall-clock receive stamp to the monotonic
		 * clock through the offset between the two sampled just now. */
		arrival = now_mono;
		if (rx_ts) {
			rx_real = (uint64_t)rx_ts->tv_sec * 1000000000ULL + (uint64_t)rx_ts->tv_nsec;
			if (rx_real <= now_real && now_real - rx_real < now_mono)
				arrival = now_mono - (now_real - rx_real);
		}
		pe = q_insert(arrival + delay_ns);
		if (!pe) {
			n_dropped++;
			continue;
		}
		pe->msg = malloc(icmp_len);
		if (!pe->msg) {
			n_dropped++;
			/* The slot stays queued but empty; it is skipped when due. */
			pe->len = 0;
			continue;
		}
		memcpy(pe->msg, icmp, icmp_len);
		pe->len = icmp_len;
		pe->family = family;
		memcpy(&pe->to, &from, sizeof from);
		pe->to_len = mh.msg_namelen;
		if (family == AF_INET) {
			pe->from.v4 = pi4->ipi_addr;
			pe->ifindex = pi4->ipi_ifindex;
			pe->msg[0] = ICMP_ECHOREPLY;
			pe->msg[2] = pe->msg[3] = 0;
			uint16_t ck = inet_cksum(pe->msg, icmp_len);
			pe->msg[2] = (unsigned char)(ck >> 8);
			pe->msg[3] = (unsigned char)ck;
		} else {
			pe->from.v6 = pi6->ipi6_addr;
			pe->ifindex = (int)pi6->ipi6_ifindex;
			/* The kernel fills the ICMPv6 checksum on raw ICMPv6 sockets. */
			pe->msg[0] = ICMP6_ECHO_REPLY;
			pe->msg[2] = pe->msg[3] = 0;
		}
	}
}

static void send_reply(int fd4, int fd6, struct pending *pe, uint64_t late_ns)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { pe->msg, pe->len };
	struct msghdr mh = {
		.msg_name = &pe->to, .msg_namelen = pe->to_len,
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf,
	};
	struct cmsghdr *c;
	int fd;

	memset(&ctl, 0, sizeof ctl);
	c = (struct cmsghdr *)(void *)ctl.buf;
	if (pe->family == AF_INET) {
		struct in_pktinfo pi = { .ipi_spec_dst = pe->from.v4 };

		fd = fd4;
		mh.msg_controllen = CMSG_SPACE(sizeof pi);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof pi);
		memcpy(CMSG_DATA(c), &pi, sizeof pi);
	} else {
		struct in6_pktinfo pi = { .ipi6_addr = pe->from.v6 };

		fd = fd6;
		/* Link-local peers need the interface they came in on. */
		if (IN6_IS_ADDR_LINKLOCAL(&pe->from.v6))
			pi.ipi6_ifindex = (unsigned)pe->ifindex;
		mh.msg_controllen = CMSG_SPACE(sizeof pi);
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof pi);
		memcpy(CMSG_DATA(c), &pi, sizeof pi);
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		perror("icmp_delay: sendmsg");
		return;
	}
	n_answered++;
	if (sent_log && n_sent_log < SENT_CAP) {
		struct sent_rec *r = &sent_log[n_sent_log++];

		r->family = pe->family == AF_INET ? 4 : 6;
		r->ident = (uint16_t)(pe->msg[4] << 8 | pe->msg[5]);
		r->seq = (uint16_t)(pe->msg[6] << 8 | pe->msg[7]);
		r->late_ns = late_ns;
	}
}

static void arm(int tfd)
{
	struct itimerspec its = { 0 };

	if (q_len) {
		uint64_t due = q_at(0)->due_ns;

		its.it_value.tv_sec = (time_t)(due / 1000000000ULL);
		its.it_value.tv_nsec = (long)(due % 1000000000ULL);
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void usage(void)
{
	fprintf(stderr, "usage: icmp_delay -d MS [-t MAX_SECONDS] [-4] [-6]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	double delay_ms = -1, max_s = 60;
	bool want4 = false, want6 = false;
	int fd4 = -1, fd6 = -1, tfd, opt;
	uint64_t delay_ns, end_ns;
	struct sigaction sa = { .sa_handler = on_signal };

	while ((opt = getopt(argc, argv, "d:t:46")) != -1) {
		switch (opt) {
		case 'd': delay_ms = strtod(optarg, NULL); break;
		case 't': max_s = strtod(optarg, NULL); break;
		case '4': want4 = true; break;
		case '6': want6 = true; break;
		default: usage();
		}
	}
	if (delay_ms < 0 || delay_ms > 60000 || max_s <= 0 || optind != argc)
		usage();
	if (!want4 && !want6)
		want4 = want6 = true;
	delay_ns = (uint64_t)(delay_ms * 1e6);

	/* Default timer slack (50 us) would show up in every reply, and on a
	 * busy machine an ordinary thread can wake milliseconds after its
	 * deadline.  A modest real-time priority keeps the delay exact; the
	 * process only ever sleeps in poll(), so it cannot starve anyone.
	 * Without the privilege it still runs, just less precisely. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	{
		struct sched_param sp = { .sched_priority = 10 };

		if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
			perror("icmp_delay: SCHED_FIFO (continuing without)");
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (want4 && (fd4 = open_socket(AF_INET)) < 0) {
		perror("icmp_delay: IPv4 raw socket");
		return 1;
	}
	if (want6 && (fd6 = open_socket(AF_INET6)) < 0) {
		perror("icmp_delay: IPv6 raw socket");
		return 1;
	}
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0) {
		perror("icmp_delay: timerfd_create");
		return 1;
	}
	sent_log = malloc(SENT_CAP * sizeof *sent_log);
	end_ns = clock_ns(CLOCK_MONOTONIC) + (uint64_t)(max_s * 1e9);
	printf("ready\n");
	fflush(stdout);

	while (!stop_flag) {
		struct pollfd pfd[3] = {
			{ .fd = tfd, .events = POLLIN },
			{ .fd = fd4, .events = POLLIN },
			{ .fd = fd6, .events = POLLIN },
		};
		uint64_t now = clock_ns(CLOCK_MONOTONIC);
		int left_ms;

		if (now >= end_ns)
			break;
		left_ms = (int)((end_ns - now) / 1000000ULL) + 1;
		if (poll(pfd, 3, left_ms) < 0) {
			if (errno == EINTR)
				continue;
			perror("icmp_delay: poll");
			return 1;
		}
		if (pfd[1].revents & POLLIN)
			drain(fd4, AF_INET, delay_ns);
		if (pfd[2].revents & POLLIN)
			drain(fd6, AF_INET6, delay_ns);
		now = clock_ns(CLOCK_MONOTONIC);
		while (q_len && q_at(0)->due_ns <= now) {
			struct pending *pe = q_at(0);
			unsigned long late_us = (unsigned long)((now - pe->due_ns) / 1000);

			if (late_us > n_late_us_max)
				n_late_us_max = late_us;
			if (pe->len)
				send_reply(fd4, fd6, pe, now - pe->due_ns);
			free(pe->msg);
			pe->msg = NULL;
			q_head = (q_head + 1) % QUEUE_CAP;
			q_len--;
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t expirations;

			if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
				perror("icmp_delay: timerfd read");
		}
		arm(tfd);
	}
	for (size_t i = 0; i < n_sent_log; i++)
		printf("reply %u %u %u %llu\n", sent_log[i].family, sent_log[i].ident,
		       sent_log[i].seq, (unsigned long long)sent_log[i].late_ns);
	fflush(stdout);
	free(sent_log);
	fprintf(stderr, "icmp_delay: answered=%lu dropped=%lu pending=%zu max_late_us=%lu\n",
		n_answered, n_dropped, q_len, n_late_us_max);
	return 0;
}
