/*
 * resolver: c-ares driven by the loop.
 *
 * c-ares tells us which sockets to watch through its socket-state callback;
 * each gets a small struct with an embedded io.  After every call into
 * c-ares the single timer is re-armed from ares_timeout(), which is how
 * retransmissions and lookup timeouts happen without blocking.
 */
#include <ares.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver.h"

#define RESOLVER_MAX_ADDRS 32

/* c-ares owns the fd: we only watch and unwatch it (it closes it after
 * telling us it is done with it). */
struct resolver_sock {
	struct io io;
	struct resolver *r;
	struct resolver_sock *next;
	struct deferred defer;    /* freed after the batch, once unwatched */
};

struct resolver_query {
	struct resolver *r;
	resolver_fn fn;           /* NULL once cancelled */
	void *arg;
	struct resolver_query **handle;   /* the caller's pointer to us, or NULL */
};

struct resolver {
	struct loop *loop;
	ares_channel channel;
	struct resolver_sock *socks;
	struct timer timer;
	size_t pending;
	bool freeing;             /* callbacks suppressed: being destroyed */
	bool free_now;            /* resolver_free(): outside the loop, no deferral */
	struct deferred defer;    /* resolver_close(): r freed after the batch */
};

static void resolver_rearm(struct resolver *r)
{
	struct timeval tv;
	if (!ares_timeout(r->channel, NULL, &tv)) {
		loop_timer_cancel(r->loop, &r->timer);
		return;
	}
	uint64_t in = (uint64_t)tv.tv_sec * NSEC_PER_SEC + (uint64_t)tv.tv_usec * NSEC_PER_USEC;
	loop_timer_arm(r->loop, &r->timer, loop_now_refresh(r->loop) + in);
}

static void on_timer(struct timer *t)
{
	struct resolver *r = container_of(t, struct resolver, timer);
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	resolver_rearm(r);
}

static void on_sock_ready(struct io *io, uint32_t events)
{
	struct resolver_sock *s = container_of(io, struct resolver_sock, io);
	struct resolver *r = s->r;
	int fd = io_fd(io);
	ares_socket_t rfd = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd : ARES_SOCKET_BAD;
	ares_socket_t wfd = (events & EPOLLOUT) ? fd : ARES_SOCKET_BAD;

	ares_process_fd(r->channel, rfd, wfd);
	resolver_rearm(r);
}

static void free_sock(struct deferred *d)
{
	free(container_of(d, struct resolver_sock, defer));
}

/* Stop watching s (c-ares closes its fd) and free it after the batch: an
 * event for it may still be queued. */
static void sock_retire(struct resolver *r, struct resolver_sock *s)
{
	loop_unwatch(r->loop, &s->io);
	if (r->free_now)
		free(s);
	else
		loop_free_later(r->loop, &s->defer, free_sock);
}

/* c-ares announces each socket it wants watched, and (0, 0) before it
 * closes one. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct resolver_sock **pp = &r->socks, *s;

	while ((s = *pp) && io_fd(&s->io) != fd)
		pp = &s->next;

	if (!readable && !writable) {
		if (!s)
			return;
		*pp = s->next;
		sock_retire(r, s);
		return;
	}

	uint32_t events = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			return; /* the lookup times out instead */
		io_init(&s->io, fd, on_sock_ready, 0);
		s->r = r;
		if (loop_watch(r->loop, &s->io, events) < 0) {
			free(s);
			return;
		}
		s->next = r->socks;
		r->socks = s;
	} else {
		loop_watch(r->loop, &s->io, events);
	}
}

/* c-ares 1.18 opens its sockets without SOCK_CLOEXEC. */
static int on_sock_config(ares_socket_t fd, int type, void *data)
{
	(void)type;
	(void)data;
	return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : 0;
}

struct resolver *resolver_new(struct loop *loop, const char *servers,
			      unsigned timeout_ms, unsigned tries,
			      char *err, size_t errlen)
{
	static bool library_ready;
	if (!library_ready) {
		int rc = ares_library_init(ARES_LIB_INIT_ALL);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
			return NULL;
		}
		library_ready = true;
	}

	struct resolver *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->loop = loop;
	timer_init(&r->timer, on_timer);

	struct ares_options opts = {
		.sock_state_cb = on_sock_state,
		.sock_state_cb_data = r,
		.timeout = (int)timeout_ms,
		.tries = (int)tries,
	};
	int rc = ares_init_options(&r->channel, &opts,
				   ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	ares_set_socket_configure_callback(r->channel, on_sock_config, NULL);
	if (servers && *servers) {
		rc = ares_set_servers_ports_csv(r->channel, servers);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "dns_servers \"%s\": %s", servers, ares_strerror(rc));
			resolver_free(r);
			return NULL;
		}
	}
	return r;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct resolver_query *q = arg;
	struct resolver *r = q->r;
	struct endpoint addrs[RESOLVER_MAX_ADDRS];
	struct resolver_result res = { .status = status, .addrs = addrs };
	(void)timeouts;

	r->pending--;
	if (status == ARES_SUCCESS && ai) {
		uint32_t ttl = UINT32_MAX;
		for (const struct ares_addrinfo_node *n = ai->nodes;
		     n && res.n_addrs < RESOLVER_MAX_ADDRS; n = n->ai_next) {
			struct endpoint *ep = &addrs[res.n_addrs];
			if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
			    n->ai_addrlen > sizeof ep->u)
				continue;
			memset(ep, 0, sizeof *ep);
			memcpy(&ep->u, n->ai_addr, n->ai_addrlen);
			ep->len = n->ai_addrlen;
			res.n_addrs++;
			if (n->ai_ttl > 0 && (uint32_t)n->ai_ttl < ttl)
				ttl = (uint32_t)n->ai_ttl;
		}
		res.ttl_s = ttl == UINT32_MAX ? 0 : ttl;
		if (res.n_addrs == 0)
			res.status = ARES_ENODATA;
	}
	if (res.status != ARES_SUCCESS)
		res.error = ares_strerror(res.status);
	if (ai)
		ares_freeaddrinfo(ai);

	if (q->handle)
		*q->handle = NULL;
	if (q->fn && !r->freeing)
		q->fn(q->arg, &res);
	free(q);
}

int resolver_lookup(struct resolver *r, const char *name, int family,
		    resolver_fn fn, void *arg, struct resolver_query **handle)
{
	struct resolver_query *q = malloc(sizeof *q);
	if (!q)
		return -1;
	*q = (struct resolver_query){ .r = r, .fn = fn, .arg = arg, .handle = handle };
	*handle = q;

	/* No RFC 6724 sorting: it connect()s a UDP socket per answer, and the
	 * pinger picks per family itself. */
	struct ares_addrinfo_hints hints = {
		.ai_family = family,
		.ai_flags = ARES_AI_NOSORT,
	};
	r->pending++;
	ares_getaddrinfo(r->channel, name, NULL, &hints, on_addrinfo, q);
	resolver_rearm(r);
	return 0;
}

void resolver_cancel(struct resolver_query **handle)
{
	struct resolver_query *q = *handle;
	if (!q)
		return;
	q->fn = NULL;
	q->handle = NULL;
	*handle = NULL;
}

size_t resolver_pending(const struct resolver *r)
{
	return r->pending;
}

/* Cancel everything and let go of every socket; r itself stays. */
static void resolver_destroy(struct resolver *r)
{
	r->freeing = true;
	if (r->channel)
		ares_destroy(r->channel);  /* runs each callback with ARES_EDESTRUCTION */
	r->channel = NULL;
	while (r->socks) {
		struct resolver_sock *s = r->socks;
		r->socks = s->next;
		sock_retire(r, s);
	}
	loop_timer_cancel(r->loop, &r->timer);
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	r->free_now = true;
	resolver_destroy(r);
	free(r);
}

static void resolver_free_deferred(struct deferred *d)
{
	free(container_of(d, struct resolver, defer));
}

void resolver_close(struct resolver *r)
{
	if (!r)
		return;
	resolver_destroy(r);
	loop_free_later(r->loop, &r->defer, resolver_free_deferred);
}
