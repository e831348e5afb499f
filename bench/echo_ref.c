/*
 * echo_ref: the bare TCP echo server the benchmark compares beacond with.
 *
 * It is the "limit" a general-purpose daemon can approach, not a product:
 * one level-triggered epoll loop, one read per readiness event into a single
 * process-wide buffer, the bytes written straight back.  Only what the peer
 * would not take right away is copied into a per-connection buffer; while
 * that buffer is non-empty the connection is not read (so memory is bounded
 * by one read per connection).  An idle connection costs one 24-byte struct.
 *
 * Usage: echo_ref [-a ADDR] [-p PORT] [-b BACKLOG]
 * With port 0 the kernel picks one.  Once listening it prints
 * "listen addr=ADDR port=PORT" on stdout so a script can wait for it.
 * SIGTERM/SIGINT end it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF_SIZE (64 * 1024)
#define MAX_EVENTS 256

struct ref_conn {
	int fd;
	uint32_t pend_len;  /* bytes in pend not yet written */
	uint8_t *pend;      /* NULL unless the peer was slower than us */
};

static uint8_t read_buf[READ_BUF_SIZE];
static struct ref_conn listener;
static int epfd;

static void conn_close(struct ref_conn *c)
{
	/* close() also removes the fd from the epoll set. */
	close(c->fd);
	free(c->pend);
	free(c);
}

static int conn_watch(struct ref_conn *c, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	return epoll_ctl(epfd, op, c->fd, &ev);
}

static void conn_send_pending(struct ref_conn *c)
{
	ssize_t w = send(c->fd, c->pend, c->pend_len, MSG_NOSIGNAL);

	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(c);
		return;
	}
	if ((uint32_t)w < c->pend_len) {
		memmove(c->pend, c->pend + w, c->pend_len - (size_t)w);
		c->pend_len -= (uint32_t)w;
		return;
	}
	free(c->pend);
	c->pend = NULL;
	c->pend_len = 0;
	if (conn_watch(c, EPOLLIN, EPOLL_CTL_MOD) < 0)
		conn_close(c);
}

static void conn_on_readable(struct ref_conn *c)
{
	ssize_t n = read(c->fd, read_buf, sizeof(read_buf));
	ssize_t w;

	if (n == 0) {
		conn_close(c);
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(c);
		return;
	}
	w = send(c->fd, read_buf, (size_t)n, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			conn_close(c);
			return;
		}
		w = 0;
	}
	if (w == n)
		return;
	/* The peer is behind: keep the rest and stop reading until it drains. */
	c->pend_len = (uint32_t)(n - w);
	c->pend = malloc(c->pend_len);
	if (c->pend == NULL) {
		conn_close(c);
		return;
	}
	memcpy(c->pend, read_buf + w, c->pend_len);
	if (conn_watch(c, EPOLLOUT, EPOLL_CTL_MOD) < 0)
		conn_close(c);
}

static void listener_accept(void)
{
	static const int one = 1;

	for (;;) {
		int fd = accept4(listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ref_conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				/* A benchmark sizes its load to fit; say so and go on. */
				fprintf(stderr, "echo_ref: accept: %s\n", strerror(errno));
			}
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (conn_watch(c, EPOLLIN, EPOLL_CTL_ADD) < 0)
			conn_close(c);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: echo_ref [-a ADDR] [-p PORT] [-b BACKLOG]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, backlog = 4096, opt;
	const int one = 1;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct epoll_event events[MAX_EVENTS];

	while ((opt = getopt(argc, argv, "a:p:b:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'b': backlog = atoi(optarg); break;
		default: usage();
		}
	}
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1 || port < 0 || port > 65535)
		usage();
	sin.sin_port = htons((uint16_t)port);
	signal(SIGPIPE, SIG_IGN);

	listener.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener.fd < 0 ||
	    setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(listener.fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(listener.fd, backlog) < 0 ||
	    getsockname(listener.fd, (struct sockaddr *)&sin, &slen) < 0) {
		perror("echo_ref: listen");
		return 1;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || conn_watch(&listener, EPOLLIN, EPOLL_CTL_ADD) < 0) {
		perror("echo_ref: epoll");
		return 1;
	}
	printf("listen addr=%s port=%u\n", addr, ntohs(sin.sin_port));
	fflush(stdout);

	for (;;) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("echo_ref: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct ref_conn *c = events[i].data.ptr;

			if (c == &listener)
				listener_accept();
			else if (c->pend != NULL)
				conn_send_pending(c);
			else
				conn_on_readable(c);
		}
	}
}
