/*
 * udp_ref: the bare UDP echo server the benchmark compares beacond with.
 *
 * One nonblocking socket in a level-triggered epoll loop: on readiness,
 * recvmmsg() up to 64 datagrams, sendmmsg() them straight back to their
 * sources, and repeat until the socket is empty.  A reply the kernel will
 * not take now is dropped (and counted on exit), never buffered.
 *
 * Usage: udp_ref [-a ADDR] [-p PORT]
 * Prints "listen addr=ADDR port=PORT" on stdout once bound.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM_MAX 65536

static uint8_t bufs[BATCH][DGRAM_MAX];
static struct mmsghdr msgs[BATCH];
static struct iovec iovs[BATCH];
static struct sockaddr_storage peers[BATCH];

static void usage(void)
{
	fprintf(stderr, "usage: udp_ref [-a ADDR] [-p PORT]\n");
	exit(2);
}

/* Echo until the socket is empty.  Returns the datagrams dropped. */
static uint64_t echo_batches(int fd)
{
	uint64_t dropped = 0;

	for (;;) {
		int n, sent = 0;

		for (int i = 0; i < BATCH; i++) {
			iovs[i].iov_base = bufs[i];
			iovs[i].iov_len = DGRAM_MAX;
			msgs[i].msg_hdr = (struct msghdr){
				.msg_name = &peers[i], .msg_namelen = sizeof(peers[i]),
				.msg_iov = &iovs[i], .msg_iovlen = 1,
			};
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return dropped;
		for (int i = 0; i < n; i++)
			iovs[i].iov_len = msgs[i].msg_len;
		while (sent < n) {
			int w = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), MSG_DONTWAIT);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				/* Drop the one the kernel refused and go on with the rest. */
				dropped++;
				sent++;
				continue;
			}
			sent += w;
		}
		if (n < BATCH)
			return dropped;
	}
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, opt, fd, epfd, sfd;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct epoll_event ev = { .events = EPOLLIN }, events[2];
	sigset_t mask;
	uint64_t dropped = 0;

	while ((opt = getopt(argc, argv, "a:p:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		default: usage();
		}
	}
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1 || port < 0 || port > 65535)
		usage();
	sin.sin_port = htons((uint16_t)port);

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) < 0) {
		perror("udp_ref: bind");
		return 1;
	}
	/* SIGTERM through a signalfd so the drop count can be printed on exit. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = fd;
	if (sfd < 0 || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("udp_ref: epoll");
		return 1;
	}
	ev.data.fd = sfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0) {
		perror("udp_ref: epoll");
		return 1;
	}
	printf("listen addr=%s port=%u\n", addr, ntohs(sin.sin_port));
	fflush(stdout);

	for (;;) {
		int n = epoll_wait(epfd, events, 2, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("udp_ref: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (events[i].data.fd == sfd) {
				fprintf(stderr, "udp_ref: exit dropped=%llu\n",
					(unsigned long long)dropped);
				return 0;
			}
			dropped += echo_batches(fd);
		}
	}
}
