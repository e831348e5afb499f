/*
 * tcp: the TCP echo (RFC 862) and discard (RFC 863) service.
 *
 * Memory is the design constraint.  An idle connection is one small struct
 * (56 bytes, a 64-byte malloc chunk): reads go into the loop-wide buffer and
 * are sent straight back; only what the peer's socket would not take is
 * copied into a per-connection pending buffer, allocated then and freed as
 * soon as it drains.  Reads are sized so pending never exceeds max_pending,
 * and a connection whose pending buffer is full is not read until the peer
 * drains it, so a client that sends and never reads costs at most
 * max_pending bytes of daemon memory (the rest waits in its kernel buffers).
 *
 * Fairness comes from level-triggered epoll: each wakeup reads a bounded
 * amount from one connection and accepts a bounded number of connections
 * from one listener, and whatever is left is reported again by the next
 * epoll_wait, after everyone else had their turn.
 *
 * Idle timeouts use one list ordered by last activity: activity moves a
 * connection to the tail in O(1), expiry pops from the head, and one timer
 * is armed for the head's deadline.  The timer is not moved when the head
 * becomes active; it fires early, finds nothing expired and re-arms.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen_set.h"
#include "log.h"
#include "tcp.h"
#include "util.h"

#define TCP_DESC(name, help) COUNTER_DESC(struct tcp_counters, name, help)
const struct counter_desc tcp_counter_descs[] = { TCP_COUNTERS(TCP_DESC) };
const size_t tcp_counter_count = ARRAY_SIZE(tcp_counter_descs);
#undef TCP_DESC

/* Connections accepted per listener per wakeup before others get a turn. */
#define TCP_ACCEPTS_PER_WAKEUP 64
/* Bytes and reads per connection per wakeup, for the same reason. */
#define TCP_READ_BUDGET (1u << 20)
#define TCP_READS_PER_WAKEUP 16
/* Largest single read in discard mode (echo reads are bounded by
 * max_pending); keeps the part of the shared buffer we touch small. */
#define TCP_DISCARD_READ_MAX (256u * 1024)
/* Listeners pause this long when accept() fails in a way the spare fd
 * cannot absorb (no spare, ENOBUFS, ENOMEM). */
#define TCP_ACCEPT_RETRY_NS (100 * NSEC_PER_MSEC)
/* At most one line per second for each rate-limited event. */
#define TCP_LOG_INTERVAL_NS NSEC_PER_SEC
/* Idle times are kept in 32-bit milliseconds with wrapping arithmetic,
 * which is exact for ages below 2^31 ms (24.8 days); longer timeouts are
 * clamped to that. */
#define TCP_IDLE_MAX_MS ((uint32_t)INT32_MAX)

enum conn_flag {
	CONN_EOF = 1 << 0,      /* the peer sent FIN: never read again */
	CONN_PAUSED = 1 << 1,   /* pending reached max_pending: not reading */
	CONN_DISCARD = 1 << 2,  /* accepted in discard mode (kept across reloads) */
};

enum close_reason {
	CLOSE_EOF,
	CLOSE_TIMEOUT,
	CLOSE_ERROR,
	CLOSE_SHUTDOWN,
};

static const char *const close_reason_names[] = {
	[CLOSE_EOF] = "eof",
	[CLOSE_TIMEOUT] = "timeout",
	[CLOSE_ERROR] = "error",
	[CLOSE_SHUTDOWN] = "shutdown",
};

/* Bytes the peer has not accepted yet: data[off, off + len). */
struct tcp_pending {
	uint32_t off;
	uint32_t len;
	uint32_t cap;
	uint8_t data[];
};

struct tcp_conn {
	struct io io;
	struct tcp_service *svc;
	union {
		/* While open: the idle list, oldest activity first. */
		struct {
			struct tcp_conn *prev;
			struct tcp_conn *next;
		} idle;
		/* Once closed (and off the list): waiting to be freed. */
		struct deferred defer;
	};
	struct tcp_pending *pending;  /* NULL whenever nothing is owed */
	uint32_t last_ms;             /* last activity, monotonic ms mod 2^32 */
	uint8_t flags;
};

/* If this grows past 56 bytes, malloc hands out 80-byte chunks instead of
 * 64 and every idle connection costs 25% more. */
_Static_assert(sizeof(struct tcp_conn) <= 56, "struct tcp_conn grew");

/* The settings the service runs with; owns its copy of the allow-list so
 * the daemon may free the config it came from. */
struct tcp_settings {
	bool enabled;
	enum svc_mode mode;
	uint32_t max_connections;
	uint32_t idle_ms;       /* 0 = never */
	uint32_t max_pending;
	uint32_t backlog;
	bool nodelay;
	bool keepalive;
	struct acl allow;
};

struct tcp_plan {
	struct listen_plan listeners;
	struct tcp_settings set;
};

struct tcp_service {
	struct loop *loop;
	uint8_t *buf;
	size_t buflen;
	struct tcp_settings set;
	struct listen_set listeners;
	bool accept_paused;
	struct tcp_conn *idle_head;
	struct tcp_conn *idle_tail;
	struct timer idle_timer;
	struct timer accept_timer;
	int spare_fd;           /* /dev/null, given up to shed one connection */
	struct tcp_counters counters;
	struct log_rate log_limit;
	struct log_rate log_acl;
	struct log_rate log_accept;
};

static void conn_on_ready(struct io *io, uint32_t events);
static void listener_on_ready(struct io *io, uint32_t events);

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static uint32_t now_ms(const struct tcp_service *s)
{
	return (uint32_t)(loop_now(s->loop) / NSEC_PER_MSEC);
}

/* A rate-limited line: the first of its kind in each interval is logged
 * and carries the number suppressed since the previous one. */
static struct logline *ratelog_begin(struct tcp_service *s, struct log_rate *r,
				     enum log_level level, const char *event)
{
	return log_begin_rate(r, loop_now(s->loop), TCP_LOG_INTERVAL_NS, level, event, "tcp");
}

/* ---- idle list ------------------------------------------------------- */

static void idle_link_tail(struct tcp_service *s, struct tcp_conn *c)
{
	c->idle.next = NULL;
	c->idle.prev = s->idle_tail;
	if (s->idle_tail)
		s->idle_tail->idle.next = c;
	else
		s->idle_head = c;
	s->idle_tail = c;
}

static void idle_unlink(struct tcp_service *s, struct tcp_conn *c)
{
	if (c->idle.prev)
		c->idle.prev->idle.next = c->idle.next;
	else
		s->idle_head = c->idle.next;
	if (c->idle.next)
		c->idle.next->idle.prev = c->idle.prev;
	else
		s->idle_tail = c->idle.prev;
	c->idle.prev = c->idle.next = NULL;
}

/* Arm the idle timer for the head's deadline, or disarm it. */
static void idle_arm(struct tcp_service *s)
{
	struct tcp_conn *head = s->idle_head;

	if (s->set.idle_ms == 0 || head == NULL) {
		loop_timer_cancel(s->loop, &s->idle_timer);
		return;
	}
	uint32_t age = now_ms(s) - head->last_ms;
	uint64_t left = age >= s->set.idle_ms ? 0
		: (uint64_t)(s->set.idle_ms - age) * NSEC_PER_MSEC;
	loop_timer_arm(s->loop, &s->idle_timer, loop_now(s->loop) + left);
}

static void conn_touch(struct tcp_service *s, struct tcp_conn *c)
{
	c->last_ms = now_ms(s);
	if (s->idle_tail != c) {
		idle_unlink(s, c);
		idle_link_tail(s, c);
	}
}

/* ---- connections ------------------------------------------------------ */

static void conn_free(struct deferred *d)
{
	struct tcp_conn *c = container_of(d, struct tcp_conn, defer);

	free(c->pending);
	free(c);
}

static void conn_close(struct tcp_service *s, struct tcp_conn *c,
		       enum close_reason why, int err)
{
	int fd = io_fd(&c->io);

	if (log_enabled(LOG_DEBUG)) {
		struct endpoint peer;
		peer.len = sizeof peer.u;
		struct logline *l = log_begin(LOG_DEBUG, "conn_close");
		log_str(l, "service", "tcp");
		if (getpeername(fd, &peer.u.sa, &peer.len) == 0)
			log_addr(l, "peer", &peer.u.sa);
		log_str(l, "reason", close_reason_names[why]);
		if (err)
			log_errno(l, err);
		if (c->pending)
			log_u64(l, "unsent", c->pending->len);
		log_end(l);
	}
	if (why == CLOSE_TIMEOUT)
		s->counters.timeouts++;
	else if (why == CLOSE_ERROR)
		s->counters.errors++;
	s->counters.active--;

	idle_unlink(s, c);
	/* An accepted socket is IO_PRIVATE: closing it drops it from the
	 * epoll set without an EPOLL_CTL_DEL, one system call less per
	 * connection, which shows under churn.  Events for c later in this
	 * batch are skipped.  The union's list links are dead now; the
	 * deferred entry reuses them.  c is freed after this batch. */
	loop_close(s->loop, &c->io);
	loop_free_later(s->loop, &c->defer, conn_free);
}

/* The peer has closed its side and everything it sent has been echoed.
 * We read up to EOF, so nothing unread is left in the socket and close()
 * sends a FIN after the queued bytes (no RST), exactly as shutdown(SHUT_WR)
 * would, without the extra system call. */
static void conn_finish(struct tcp_service *s, struct tcp_conn *c)
{
	conn_close(s, c, CLOSE_EOF, 0);
}

static int socket_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

/* Queue bytes the peer would not take.  Callers guarantee pending->len + n
 * stays within max_pending (reads are sized for it). */
static int pending_append(struct tcp_service *s, struct tcp_conn *c,
			  const uint8_t *data, size_t n)
{
	struct tcp_pending *p = c->pending;

	if (p == NULL) {
		p = malloc(sizeof *p + n);
		if (p == NULL)
			return -1;
		p->off = 0;
		p->len = 0;
		p->cap = (uint32_t)n;
		c->pending = p;
	} else if (p->off + p->len + n > p->cap) {
		if (p->len + n > p->cap) {
			/* Grow geometrically so a slowly filling buffer is not
			 * reallocated on every read, but never past the cap. */
			size_t cap = (size_t)p->cap * 2;
			if (cap > s->set.max_pending)
				cap = s->set.max_pending;
			if (cap < p->len + n)
				cap = p->len + n;
			memmove(p->data, p->data + p->off, p->len);
			p->off = 0;
			struct tcp_pending *q = realloc(p, sizeof *p + cap);
			if (q == NULL)
				return -1;
			p = q;
			p->cap = (uint32_t)cap;
			c->pending = p;
		} else {
			memmove(p->data, p->data + p->off, p->len);
			p->off = 0;
		}
	}
	memcpy(p->data + p->off + p->len, data, n);
	p->len += (uint32_t)n;
	return 0;
}

/* Send what was just read; keep what the peer would not take.  Returns -1
 * when the connection was closed. */
static int conn_echo(struct tcp_service *s, struct tcp_conn *c, const uint8_t *data,
		     size_t n)
{
	size_t sent = 0;

	/* With bytes already pending the socket's send buffer was full a
	 * moment ago, and sending now would also reorder the stream. */
	if (c->pending == NULL) {
		ssize_t w = send(io_fd(&c->io), data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_close(s, c, CLOSE_ERROR, errno);
				return -1;
			}
			w = 0;
		}
		sent = (size_t)w;
		s->counters.bytes_out += sent;
		if (sent == n)
			return 0;
	}
	if (pending_append(s, c, data + sent, n - sent) < 0) {
		conn_close(s, c, CLOSE_ERROR, ENOMEM);
		return -1;
	}
	return 0;
}

/* Returns -1 when the connection was closed. */
static int conn_read(struct tcp_service *s, struct tcp_conn *c)
{
	size_t budget = TCP_READ_BUDGET;
	bool progress = false;
	bool discard = c->flags & CONN_DISCARD;

	for (int i = 0; i < TCP_READS_PER_WAKEUP && budget > 0; i++) {
		size_t want = min_size(s->buflen, budget);
		if (discard) {
			want = min_size(want, TCP_DISCARD_READ_MAX);
		} else {
			size_t held = c->pending ? c->pending->len : 0;
			if (held >= s->set.max_pending)
				break;
			want = min_size(want, s->set.max_pending - held);
		}
		ssize_t n = recv(io_fd(&c->io), s->buf, want, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(s, c, CLOSE_ERROR, errno);
			return -1;
		}
		if (n == 0) {
			c->flags |= CONN_EOF;
			break;
		}
		progress = true;
		s->counters.bytes_in += (size_t)n;
		budget -= (size_t)n;
		if (!discard && conn_echo(s, c, s->buf, (size_t)n) < 0)
			return -1;
		/* A short read almost always means the socket is empty;
		 * epoll will say so if more arrived meanwhile. */
		if ((size_t)n < want)
			break;
	}
	if (c->pending && c->pending->len >= s->set.max_pending &&
	    !(c->flags & CONN_PAUSED)) {
		c->flags |= CONN_PAUSED;
		s->counters.backpressure++;
	}
	if (progress)
		conn_touch(s, c);
	return 0;
}

/* Returns -1 when the connection was closed. */
static int conn_flush(struct tcp_service *s, struct tcp_conn *c)
{
	struct tcp_pending *p = c->pending;
	ssize_t w = send(io_fd(&c->io), p->data + p->off, p->len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (w < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		conn_close(s, c, CLOSE_ERROR, errno);
		return -1;
	}
	s->counters.bytes_out += (size_t)w;
	p->off += (uint32_t)w;
	p->len -= (uint32_t)w;
	if (w > 0)
		conn_touch(s, c);
	if (p->len == 0) {
		free(p);
		c->pending = NULL;
		c->flags &= (uint8_t)~CONN_PAUSED;
	} else if ((c->flags & CONN_PAUSED) && p->len <= s->set.max_pending / 2) {
		/* Resuming at half rather than at the first free byte keeps a
		 * slow reader from toggling EPOLLIN on every send. */
		c->flags &= (uint8_t)~CONN_PAUSED;
	}
	return 0;
}

static void conn_on_ready(struct io *io, uint32_t events)
{
	struct tcp_conn *c = container_of(io, struct tcp_conn, io);
	struct tcp_service *s = c->svc;

	if (events & (EPOLLERR | EPOLLHUP)) {
		/* A reset, or both directions shut: nothing can be sent any
		 * more, so whatever is still readable cannot be echoed. */
		int err = socket_error(io_fd(&c->io));
		conn_close(s, c, err ? CLOSE_ERROR : CLOSE_EOF, err);
		return;
	}
	if ((events & EPOLLOUT) && c->pending && conn_flush(s, c) < 0)
		return;
	if ((events & EPOLLIN) && !(c->flags & (CONN_EOF | CONN_PAUSED)) &&
	    conn_read(s, c) < 0)
		return;
	if ((c->flags & CONN_EOF) && c->pending == NULL) {
		conn_finish(s, c);
		return;
	}

	uint32_t want = c->pending ? EPOLLOUT : 0;
	if (!(c->flags & (CONN_EOF | CONN_PAUSED)))
		want |= EPOLLIN;
	if (loop_watch(s->loop, &c->io, want) < 0)
		conn_close(s, c, CLOSE_ERROR, errno);
}

static void conn_accepted(struct tcp_service *s, int fd, const struct endpoint *peer)
{
	if (!acl_allows(&s->set.allow, &peer->u.sa)) {
		s->counters.refused_acl++;
		struct logline *l = ratelog_begin(s, &s->log_acl, LOG_INFO, "refused");
		log_str(l, "reason", "acl");
		log_addr(l, "peer", &peer->u.sa);
		log_end(l);
		close(fd);
		return;
	}
	if (s->counters.active >= s->set.max_connections) {
		s->counters.refused_limit++;
		struct logline *l = ratelog_begin(s, &s->log_limit, LOG_INFO, "refused");
		log_str(l, "reason", "limit");
		log_addr(l, "peer", &peer->u.sa);
		log_u64(l, "max_connections", s->set.max_connections);
		log_end(l);
		close(fd);
		return;
	}

	struct tcp_conn *c = malloc(sizeof *c);
	if (c == NULL) {
		s->counters.errors++;
		close(fd);
		return;
	}
	io_init(&c->io, fd, conn_on_ready, IO_PRIVATE);
	c->svc = s;
	c->pending = NULL;
	c->flags = s->set.mode == MODE_DISCARD ? CONN_DISCARD : 0;
	if (loop_watch(s->loop, &c->io, EPOLLIN) < 0) {
		s->counters.errors++;
		loop_close(s->loop, &c->io);
		free(c);
		return;
	}
	c->last_ms = now_ms(s);
	idle_link_tail(s, c);
	if (!timer_armed(&s->idle_timer))
		idle_arm(s);
	s->counters.accepted++;
	s->counters.active++;

	struct logline *l = log_begin(LOG_DEBUG, "conn_open");
	log_str(l, "service", "tcp");
	log_addr(l, "peer", &peer->u.sa);
	log_end(l);
}

static void idle_on_expire(struct timer *t)
{
	struct tcp_service *s = container_of(t, struct tcp_service, idle_timer);
	uint32_t now = now_ms(s);

	while (s->set.idle_ms && s->idle_head &&
	       now - s->idle_head->last_ms >= s->set.idle_ms)
		conn_close(s, s->idle_head, CLOSE_TIMEOUT, 0);
	idle_arm(s);
}

/* ---- listeners -------------------------------------------------------- */

/* Stop accepting for a moment: accept() is failing in a way that would
 * otherwise be reported again at once, and again, at 100% CPU. */
static void accept_pause(struct tcp_service *s)
{
	if (s->accept_paused)
		return;
	s->accept_paused = true;
	for (size_t i = 0; i < s->listeners.n; i++)
		listen_sock_pause(s->listeners.v[i]);
	loop_timer_arm(s->loop, &s->accept_timer,
		       loop_now(s->loop) + TCP_ACCEPT_RETRY_NS);
}

static void accept_on_resume(struct timer *t)
{
	struct tcp_service *s = container_of(t, struct tcp_service, accept_timer);

	s->accept_paused = false;
	for (size_t i = 0; i < s->listeners.n; i++)
		listen_sock_add(s->listeners.v[i]);
}

static void accept_error_log(struct tcp_service *s, int err, const char *action)
{
	struct logline *l = ratelog_begin(s, &s->log_accept, LOG_WARNING, "accept_error");
	log_errno(l, err);
	log_str(l, "action", action);
	log_u64(l, "active", s->counters.active);
	log_end(l);
}

/* Out of file descriptors: give up the spare, accept the waiting
 * connection and close it at once, take the spare back.  The client sees a
 * clean close instead of hanging in the backlog, and the listener stops
 * being readable instead of waking us forever.  Returns true when another
 * accept may be tried. */
static bool accept_shed(struct tcp_service *s, struct listen_sock *l, int err)
{
	s->counters.refused_fd++;
	if (s->spare_fd < 0) {
		accept_error_log(s, err, "pause");
		accept_pause(s);
		return false;
	}
	accept_error_log(s, err, "shed");
	close(s->spare_fd);
	int fd = accept4(listen_sock_fd(l), NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd >= 0;
}

static bool accept_error_transient(int err)
{
	switch (err) {
	/* The connection died in the backlog, or a network error Linux
	 * passes through accept(): the next one may be fine. */
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
	case ETIMEDOUT:
	case EINTR:
		return true;
	default:
		return false;
	}
}

static void listener_on_ready(struct io *io, uint32_t events)
{
	struct listen_sock *l = container_of(io, struct listen_sock, io);
	struct tcp_service *s = container_of(l->set, struct tcp_service, listeners);

	(void)events;
	for (int i = 0; i < TCP_ACCEPTS_PER_WAKEUP; i++) {
		struct endpoint peer;
		peer.len = sizeof peer.u;
		int fd = accept4(listen_sock_fd(l), &peer.u.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_accepted(s, fd, &peer);
			continue;
		}
		int err = errno;
		if (err == EAGAIN || err == EWOULDBLOCK)
			return;
		if (err == EMFILE || err == ENFILE) {
			if (!accept_shed(s, l, err))
				return;
			continue;
		}
		if (accept_error_transient(err))
			continue;
		/* ENOBUFS, ENOMEM or something unexpected: back off. */
		accept_error_log(s, err, "pause");
		accept_pause(s);
		return;
	}
}

/* Socket options accepted sockets inherit from their listener on Linux,
 * set once here instead of twice per accepted connection. */
static void listener_apply_options(const struct listen_sock *l, const struct tcp_settings *set)
{
	int nodelay = set->nodelay, keepalive = set->keepalive;

	setsockopt(listen_sock_fd(l), IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
	setsockopt(listen_sock_fd(l), SOL_SOCKET, SO_KEEPALIVE, &keepalive, sizeof keepalive);
}

static const struct listen_ops listener_ops = {
	.service = "tcp",
	.type = SOCK_STREAM,
	.on_ready = listener_on_ready,
};

/* ---- service ------------------------------------------------------------ */

struct tcp_service *tcp_new(struct loop *loop, uint8_t *buf, size_t buflen)
{
	struct tcp_service *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->loop = loop;
	s->buf = buf;
	s->buflen = buflen;
	listen_set_init(&s->listeners, &listener_ops, loop);
	timer_init(&s->idle_timer, idle_on_expire);
	timer_init(&s->accept_timer, accept_on_resume);
	/* Reserved for accept() under EMFILE; without it the daemon still
	 * works and falls back to pausing its listeners. */
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return s;
}

static void settings_from_config(struct tcp_settings *set, const struct config_tcp *cfg)
{
	uint64_t ms = (cfg->idle_timeout_ns + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;

	set->enabled = cfg->enabled;
	set->mode = cfg->mode;
	set->max_connections = cfg->max_connections;
	set->idle_ms = ms > TCP_IDLE_MAX_MS ? TCP_IDLE_MAX_MS : (uint32_t)ms;
	set->max_pending = cfg->max_pending > UINT32_MAX / 2 ? UINT32_MAX / 2
		: (uint32_t)cfg->max_pending;
	set->backlog = cfg->backlog;
	set->nodelay = cfg->nodelay;
	set->keepalive = cfg->keepalive;
	set->allow.v = NULL;
	set->allow.n = 0;
}

void tcp_abort(struct tcp_plan *p)
{
	if (p == NULL)
		return;
	listen_plan_abort(&p->listeners);
	acl_free(&p->set.allow);
	free(p);
}

struct tcp_plan *tcp_prepare(struct tcp_service *s, const struct config_tcp *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen)
{
	struct tcp_plan *p = calloc(1, sizeof *p);

	if (p == NULL) {
		snprintf(err, errlen, "[tcp] out of memory");
		return NULL;
	}
	listen_plan_init(&p->listeners, &s->listeners);
	settings_from_config(&p->set, cfg);
	if (acl_copy(&p->set.allow, &cfg->allow) < 0) {
		snprintf(err, errlen, "[tcp] out of memory");
		goto fail;
	}
	/* While accept() is paused the resume timer watches them all. */
	if (listen_plan_from_config(&p->listeners, cfg->enabled, cfg->listen, cfg->n_listen,
				    (int)p->set.backlog, !s->accept_paused, inherited, err,
				    errlen) < 0)
		goto fail;
	return p;

fail:
	tcp_abort(p);
	return NULL;
}

size_t tcp_plan_listeners(const struct tcp_plan *p)
{
	return p->listeners.n;
}

void tcp_commit(struct tcp_service *s, struct tcp_plan *p)
{
	listen_set_commit(&s->listeners, &p->listeners);
	for (size_t i = 0; i < s->listeners.n; i++) {
		struct listen_sock *l = s->listeners.v[i];
		listener_apply_options(l, &p->set);
		if (l->fresh) {
			/* Watched by the prepare (or by the accept resume). */
			l->fresh = false;
			listen_sock_log(l, "listen");
		} else if (!l->inherited && p->set.backlog != s->set.backlog) {
			/* listen() again on a listening socket changes its
			 * backlog in place.  Inherited sockets keep systemd's. */
			listen(listen_sock_fd(l), (int)p->set.backlog);
		}
	}

	bool idle_changed = p->set.idle_ms != s->set.idle_ms;
	acl_free(&s->set.allow);
	s->set = p->set;
	free(p);
	if (idle_changed) {
		loop_timer_cancel(s->loop, &s->idle_timer);
		idle_arm(s);
	}
}

void tcp_stop_accepting(struct tcp_service *s)
{
	listen_set_close_all(&s->listeners);
	loop_timer_cancel(s->loop, &s->accept_timer);
	s->accept_paused = false;
}

size_t tcp_active(const struct tcp_service *s)
{
	return s ? (size_t)s->counters.active : 0;
}

void tcp_close_all(struct tcp_service *s)
{
	while (s->idle_head)
		conn_close(s, s->idle_head, CLOSE_SHUTDOWN, 0);
	loop_timer_cancel(s->loop, &s->idle_timer);
}

void tcp_free(struct tcp_service *s)
{
	if (s == NULL)
		return;
	tcp_stop_accepting(s);
	tcp_close_all(s);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	acl_free(&s->set.allow);
	free(s);
}

const struct tcp_counters *tcp_counters(const struct tcp_service *s)
{
	return &s->counters;
}

size_t tcp_listen_addrs(const struct tcp_service *s, struct endpoint *out, size_t n)
{
	for (size_t i = 0; i < s->listeners.n && i < n; i++)
		out[i] = s->listeners.v[i]->bound;
	return s->listeners.n;
}
