/*
 * udp: the UDP echo (RFC 862) and discard (RFC 863) service.
 *
 * Each socket is read with recvmmsg() into the loop-wide buffer, cut into
 * 64 KiB slots (64 of them in the daemon's 4 MiB buffer), so a full 65 507
 * byte datagram fits and a batch needs no allocation.  Replies are the very
 * same slots handed to sendmmsg(): the payload is never copied.  A wakeup
 * reads at most UDP_ROUNDS batches; epoll is level-triggered, so whatever is
 * left is reported again after TCP and ICMP have had their turn.
 *
 * Nothing is ever queued for sending.  A reply the kernel will not take now
 * (EAGAIN, ENOBUFS) is dropped and counted, as a router would drop it: an
 * echo service that buffered would let a sender who never reads grow its
 * memory.
 *
 * Reflection safeguards, checked in this order, each with its counter:
 *   1. source port 0 or a port where an answering service lives (see
 *      reflect_port_refused in reflect.c) -- two echo-like services answering each other
 *      forever is the classic UDP packet storm (CVE-1999-0103);
 *   2. a source (or, on wildcard sockets, a destination) that is not one
 *      unicast host: unspecified, broadcast, multicast, class E;
 *   3. the allow-list;
 *   4. a per-source token bucket (ratelimit.h) whose table has a fixed size,
 *      so a spoofed flood neither turns beacond into a traffic source beyond
 *      rate_limit per victim nor grows its memory.
 *
 * Sockets bound to a wildcard address ask for IP_PKTINFO / IPV6_RECVPKTINFO
 * and send each reply from the address its datagram arrived on; without
 * that, a multi-homed host would answer from whatever address the route
 * picks, and a client with a connected socket would never see the reply.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "acl.h"
#include "listen_set.h"
#include "log.h"
#include "net.h"
#include "ratelimit.h"
#include "reflect.h"
#include "stamp.h"
#include "udp.h"
#include "util.h"

#define UDP_DESC(name, help) COUNTER_DESC(struct udp_counters, name, help)
const struct counter_desc udp_counter_descs[] = { UDP_COUNTERS(UDP_DESC) };
const size_t udp_counter_count = ARRAY_SIZE(udp_counter_descs);
#undef UDP_DESC

#define UDP_SLOT_SIZE     65536u  /* > 65 527, the largest UDP payload over IPv6 */
#define UDP_BATCH         64u     /* datagrams per recvmmsg */
#define UDP_ROUNDS        4u      /* recvmmsg batches per wakeup */
#define UDP_LOG_INTERVAL_NS (10 * NSEC_PER_SEC)

/* Room for one pktinfo of either family (plus some slack for options an
 * inherited socket may have set; anything beyond is cut, MSG_CTRUNC). */
#define UDP_CTL_SIZE (CMSG_SPACE(sizeof(struct in6_pktinfo)) + \
		      CMSG_SPACE(sizeof(struct in_pktinfo)) + 64)

struct udp_sock {
	struct listen_sock ls;
	int rcvbuf_initial;      /* SO_RCVBUF as opened, to restore recv_buffer = 0 */
	bool pktinfo;            /* wildcard: replies leave from the arrival address */
};

struct udp_settings {
	enum svc_mode mode;
	struct acl allow;        /* owned copy: the config is freed after a reload */
	uint32_t rate;
	uint32_t burst;
	uint32_t table_size;
	uint64_t recv_buffer;
};

struct udp_plan {
	struct udp_service *svc;
	struct listen_plan socks;
	struct udp_settings set;
	struct ratelimit *rl;    /* the table to use: new, or the current one kept */
};

enum udp_drop {
	DROP_TRUNCATED,
	DROP_PORT,
	DROP_ADDR,
	DROP_ACL,
	DROP_RATE,
	DROP_SEND,
	DROP_N,
};

static const char *const drop_reason[DROP_N] = {
	[DROP_TRUNCATED] = "truncated",
	[DROP_PORT] = "port",
	[DROP_ADDR] = "addr",
	[DROP_ACL] = "acl",
	[DROP_RATE] = "rate",
	[DROP_SEND] = "send",
};

union udp_ctl {
	struct cmsghdr align;
	char buf[UDP_CTL_SIZE];
};

struct udp_service {
	struct loop *loop;
	uint8_t *buf;
	size_t slot_size;
	unsigned nslots;

	struct listen_set socks;
	struct udp_settings set;
	struct ratelimit *rl;    /* NULL when rate_limit = 0 */
	uint64_t evictions_base; /* evictions of tables already replaced */
	struct udp_counters counters;

	struct log_rate log_drop[DROP_N];
	struct log_rate log_recv;

	/* One batch.  Kept here rather than on the stack: about 40 KiB. */
	struct mmsghdr in[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_storage names[UDP_BATCH];
	union udp_ctl ctl_in[UDP_BATCH];
	struct mmsghdr out[UDP_BATCH];
	union udp_ctl ctl_out[UDP_BATCH];
};

/* ---- logging ---------------------------------------------------------------- */

/* A rate-limited line: the first of its kind in each interval is logged
 * and carries the number suppressed since the previous one. */
static struct logline *ratelog_begin(struct udp_service *s, struct log_rate *r,
				     enum log_level level, const char *event)
{
	return log_begin_rate(r, loop_now(s->loop), UDP_LOG_INTERVAL_NS, level, event, "udp");
}

static void drop_log(struct udp_service *s, enum udp_drop why, const struct sockaddr *peer)
{
	struct logline *l = ratelog_begin(s, &s->log_drop[why], LOG_INFO, "refused");
	log_str(l, "reason", drop_reason[why]);
	log_addr(l, "peer", peer);
	log_end(l);
}

/* ---- safeguards ---------------------------------------------------------- */

/* ---- datagrams ------------------------------------------------------------ */

static void count_drop(struct udp_service *s, enum udp_drop why, const struct sockaddr *peer)
{
	switch (why) {
	case DROP_TRUNCATED: s->counters.drop_truncated++; break;
	case DROP_PORT:      s->counters.drop_port++; break;
	case DROP_ADDR:      s->counters.drop_addr++; break;
	case DROP_ACL:       s->counters.drop_acl++; break;
	case DROP_RATE:      s->counters.drop_rate++; break;
	case DROP_SEND:      s->counters.drop_send++; break;
	case DROP_N:         break;
	}
	drop_log(s, why, peer);
}

/* Decide on datagram i of the batch; true when it is to be echoed, with
 * its reply's control data (if any) in ctl_out[k] and length in *ctllen. */
static bool udp_admit(struct udp_service *s, struct udp_sock *u, unsigned i, unsigned k,
		      size_t *ctllen, uint64_t now)
{
	struct msghdr *m = &s->in[i].msg_hdr;
	const struct sockaddr *peer = (const struct sockaddr *)(const void *)&s->names[i];
	uint16_t port;
	bool unicast;

	if (m->msg_flags & MSG_TRUNC) {
		count_drop(s, DROP_TRUNCATED, peer);
		return false;
	}
	if (s->set.mode == MODE_DISCARD)
		return false;
	if (!reflect_peer_parts(&s->names[i], m->msg_namelen, &port, &unicast)) {
		count_drop(s, DROP_ADDR, peer);
		return false;
	}
	if (reflect_port_refused(port)) {
		count_drop(s, DROP_PORT, peer);
		return false;
	}
	if (!unicast) {
		count_drop(s, DROP_ADDR, peer);
		return false;
	}
	*ctllen = 0;
	if (u->pktinfo) {
		int n = reflect_reply_source(m, &s->ctl_out[k], sizeof s->ctl_out[k]);
		if (n < 0) {
			count_drop(s, DROP_ADDR, peer);
			return false;
		}
		*ctllen = (size_t)n;
	}
	if (!acl_allows(&s->set.allow, peer)) {
		count_drop(s, DROP_ACL, peer);
		return false;
	}
	if (s->rl) {
		uint8_t key[RATELIMIT_KEY_LEN];
		if (ratelimit_key(peer, key) && !ratelimit_allow(s->rl, key, now)) {
			count_drop(s, DROP_RATE, peer);
			return false;
		}
	}
	return true;
}

static bool send_would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
}

/* Send the k replies in out[].  Whatever the kernel will not take now is
 * dropped; a message it refuses for a reason of its own (no route, a
 * firewall) is dropped alone and the rest still go. */
static void udp_send_batch(struct udp_service *s, struct udp_sock *u, unsigned k)
{
	unsigned off = 0;

	while (off < k) {
		int r = sendmmsg(listen_sock_fd(&u->ls), s->out + off, k - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			for (unsigned j = off; j < off + (unsigned)r; j++) {
				s->counters.echoed++;
				s->counters.bytes_out += s->out[j].msg_len;
			}
			off += (unsigned)r;
			continue;
		}
		int err = r < 0 ? errno : EAGAIN;
		if (err == EINTR)
			continue;
		const struct sockaddr *peer = s->out[off].msg_hdr.msg_name;
		if (send_would_block(err)) {
			s->counters.drop_send += k - off;
			drop_log(s, DROP_SEND, peer);
			return;
		}
		s->counters.drop_send++;
		struct logline *l = ratelog_begin(s, &s->log_drop[DROP_SEND], LOG_INFO,
						  "send_error");
		log_addr(l, "peer", peer);
		log_errno(l, err);
		log_end(l);
		off++;
	}
}

static void udp_on_ready(struct io *io, uint32_t events)
{
	struct udp_sock *u = container_of(io, struct udp_sock, ls.io);
	struct udp_service *s = container_of(u->ls.set, struct udp_service, socks);
	unsigned nslots = s->nslots;
	(void)events;

	for (unsigned round = 0; round < UDP_ROUNDS; round++) {
		for (unsigned i = 0; i < nslots; i++) {
			s->iov[i].iov_base = s->buf + (size_t)i * s->slot_size;
			s->iov[i].iov_len = s->slot_size;
			struct msghdr *m = &s->in[i].msg_hdr;
			m->msg_name = &s->names[i];
			m->msg_namelen = sizeof s->names[i];
			m->msg_iov = &s->iov[i];
			m->msg_iovlen = 1;
			m->msg_control = u->pktinfo ? s->ctl_in[i].buf : NULL;
			m->msg_controllen = u->pktinfo ? sizeof s->ctl_in[i].buf : 0;
			m->msg_flags = 0;
		}
		int n = recvmmsg(listen_sock_fd(&u->ls), s->in, nslots, MSG_DONTWAIT, NULL);
		if (n < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			if (err != EAGAIN && err != EWOULDBLOCK) {
				/* A pending socket error (ENOMEM, or an ICMP error on
				 * a socket systemd set up with IP_RECVERR) is consumed
				 * by this read; log it and come back on the next
				 * wakeup. */
				struct logline *l = ratelog_begin(s, &s->log_recv, LOG_WARNING,
								  "recv_error");
				log_errno(l, err);
				log_end(l);
			}
			return;
		}

		uint64_t now = loop_now(s->loop);
		unsigned k = 0;
		for (unsigned i = 0; i < (unsigned)n; i++) {
			s->counters.received++;
			s->counters.bytes_in += s->in[i].msg_len;
			size_t ctllen = 0;
			if (!udp_admit(s, u, i, k, &ctllen, now))
				continue;
			/* The reply is the received slot itself: same bytes, same
			 * length, back to the address it came from. */
			s->iov[i].iov_len = s->in[i].msg_len;
			struct msghdr *o = &s->out[k].msg_hdr;
			o->msg_name = &s->names[i];
			o->msg_namelen = s->in[i].msg_hdr.msg_namelen;
			o->msg_iov = &s->iov[i];
			o->msg_iovlen = 1;
			o->msg_control = ctllen ? s->ctl_out[k].buf : NULL;
			o->msg_controllen = ctllen;
			o->msg_flags = 0;
			k++;
		}
		if (k)
			udp_send_batch(s, u, k);
		if (s->rl)
			s->counters.rate_evictions = s->evictions_base +
						     ratelimit_evictions(s->rl);
		/* A short batch means the queue was empty a moment ago; a new
		 * arrival will wake us again, so do not spend a syscall to hear
		 * EAGAIN. */
		if ((unsigned)n < nslots)
			return;
	}
}

/* ---- sockets ---------------------------------------------------------------- */

static struct listen_sock *sock_alloc(void)
{
	struct udp_sock *u = calloc(1, sizeof *u);
	return u ? &u->ls : NULL;
}

static void sock_free(struct listen_sock *ls)
{
	free(container_of(ls, struct udp_sock, ls));
}

/* Set up a new socket.  On wildcard sockets, ask for the arrival address of
 * each datagram (see the top of the file).  Returns -1 with errno set. */
static int sock_setup(struct listen_sock *ls)
{
	struct udp_sock *u = container_of(ls, struct udp_sock, ls);
	int fd = listen_sock_fd(ls);

	if (reflect_endpoint_is_wildcard(&ls->bound)) {
		int one = 1;
		int r = ls->bound.u.sa.sa_family == AF_INET6
			? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one)
			: setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
		if (r < 0)
			return -1;
		u->pktinfo = true;
	}
	int rcv = 0;
	socklen_t len = sizeof rcv;
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len) == 0)
		u->rcvbuf_initial = rcv / 2;   /* the kernel reports twice what was set */
	return 0;
}

static const struct listen_ops sock_ops = {
	.service = "udp",
	.type = SOCK_DGRAM,
	/* Those named "stamp" are the STAMP reflector's, even while it is
	 * disabled. */
	.adopt_except = STAMP_FD_NAME,
	.on_ready = udp_on_ready,
	.alloc = sock_alloc,
	.free = sock_free,
	.setup = sock_setup,
};

/* SO_RCVBUF: SO_RCVBUFFORCE first, which may exceed net.core.rmem_max when
 * we have CAP_NET_ADMIN, then the capped SO_RCVBUF.  0 restores the size
 * the socket had when it was opened. */
static void sock_apply_rcvbuf(struct udp_sock *u, uint64_t want)
{
	int v = want == 0 ? u->rcvbuf_initial
		: want > INT_MAX / 2 ? INT_MAX / 2 : (int)want;
	if (v <= 0)
		return;
	if (setsockopt(listen_sock_fd(&u->ls), SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0 &&
	    setsockopt(listen_sock_fd(&u->ls), SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0)
		return;
	int got = 0;
	socklen_t len = sizeof got;
	if (want && getsockopt(listen_sock_fd(&u->ls), SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 &&
	    got / 2 < v) {
		char addr[NET_ENDPOINT_STRLEN];
		struct logline *l = log_begin(LOG_WARNING, "recv_buffer");
		log_str(l, "service", "udp");
		log_str(l, "addr", net_endpoint_str(&u->ls.bound, addr, sizeof addr));
		log_u64(l, "want", (uint64_t)v);
		log_u64(l, "got", (uint64_t)got / 2);
		log_str(l, "msg", "capped by net.core.rmem_max (no CAP_NET_ADMIN)");
		log_end(l);
	}
}

/* ---- service ------------------------------------------------------------------ */

struct udp_service *udp_new(struct loop *loop, uint8_t *buf, size_t buflen)
{
	if (!buf || buflen == 0) {
		errno = EINVAL;
		return NULL;
	}
	struct udp_service *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->loop = loop;
	s->buf = buf;
	/* Slots of 64 KiB hold any datagram; a smaller buffer still works, with
	 * bigger datagrams counted as truncated. */
	s->slot_size = buflen < UDP_SLOT_SIZE ? buflen : UDP_SLOT_SIZE;
	size_t n = buflen / s->slot_size;
	s->nslots = n > UDP_BATCH ? UDP_BATCH : (unsigned)n;
	listen_set_init(&s->socks, &sock_ops, loop);
	s->set.mode = MODE_ECHO;
	return s;
}

const struct udp_counters *udp_counters(const struct udp_service *s)
{
	return &s->counters;
}

static int settings_from_config(struct udp_settings *set, const struct config_udp *cfg)
{
	set->mode = cfg->mode;
	set->rate = cfg->rate_limit;
	set->burst = cfg->rate_burst;
	set->table_size = cfg->rate_table_size ? cfg->rate_table_size : 4096;
	set->recv_buffer = cfg->recv_buffer;
	return acl_copy(&set->allow, &cfg->allow);
}

struct udp_plan *udp_prepare(struct udp_service *s, const struct config_udp *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen)
{
	struct udp_plan *p = calloc(1, sizeof *p);
	if (!p || settings_from_config(&p->set, cfg) < 0) {
		snprintf(err, errlen, "[udp] out of memory");
		free(p);
		return NULL;
	}
	p->svc = s;
	listen_plan_init(&p->socks, &s->socks);
	if (listen_plan_from_config(&p->socks, cfg->enabled, cfg->listen, cfg->n_listen, 0,
				    true, inherited, err, errlen) < 0)
		goto fail;

	if (reflect_rate_prepare(&p->rl, s->rl, p->set.rate, p->set.burst, p->set.table_size,
				 "udp", err, errlen) < 0)
		goto fail;
	return p;
fail:
	udp_abort(p);
	return NULL;
}

void udp_abort(struct udp_plan *p)
{
	if (!p)
		return;
	listen_plan_abort(&p->socks);
	reflect_rate_abort(p->rl, p->svc->rl);
	acl_free(&p->set.allow);
	free(p);
}

size_t udp_plan_listeners(const struct udp_plan *p)
{
	return p->socks.n;
}

void udp_commit(struct udp_service *s, struct udp_plan *p)
{
	listen_set_commit(&s->socks, &p->socks);

	acl_free(&s->set.allow);
	s->set = p->set;
	reflect_rate_commit(&s->rl, &s->evictions_base, p->rl, s->set.rate, s->set.burst);

	for (size_t i = 0; i < s->socks.n; i++) {
		struct listen_sock *ls = s->socks.v[i];
		sock_apply_rcvbuf(container_of(ls, struct udp_sock, ls), s->set.recv_buffer);
		if (!ls->fresh)
			continue;
		ls->fresh = false;      /* watched by the prepare */
		listen_sock_log(ls, "listen");
	}
	free(p);
}

void udp_stop(struct udp_service *s)
{
	listen_set_close_all(&s->socks);
}

void udp_free(struct udp_service *s)
{
	if (!s)
		return;
	udp_stop(s);
	ratelimit_free(s->rl);
	acl_free(&s->set.allow);
	free(s);
}

size_t udp_listen_addrs(const struct udp_service *s, struct endpoint *out, size_t n)
{
	for (size_t i = 0; i < s->socks.n && i < n; i++)
		out[i] = s->socks.v[i]->bound;
	return s->socks.n;
}
