/* icmp_sock: see include/icmp_sock.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <linux/net_tstamp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "icmp_sock.h"
#include "kstamp.h"

/* Datagrams read per socket per wakeup: enough to keep up with 10 000
 * targets, small enough that one busy socket cannot starve the loop. */
#define RX_BATCH 256
#define RX_BUF_BUDGET (256 << 10)
#define TX_RING 4096
/* The stamp taken when the request enters the device layer, before the
 * queueing discipline (SCHED), rather than the one in the driver (SND):
 * on noqueue devices (lo, veth) and idle queues both are within a few
 * microseconds of the wire, but SND also includes whatever runs between
 * the two -- e.g. a packet capture's own tap, which made it read 5-15 us
 * short against that very capture, while SCHED stayed within +3 us, p99
 * 6 us (bench/icmp accuracy). */
#define TS_FLAGS (SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_SOFTWARE | \
		  SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)

bool icmp_sock_key_equal(const struct icmp_sock_key *a, const struct icmp_sock_key *b)
{
	return a->family == b->family && a->kind == b->kind && a->ttl == b->ttl &&
	       a->tos == b->tos && a->df == b->df && a->has_source == b->has_source &&
	       (!a->has_source || inet_sa_same_addr(&a->source, &b->source)) &&
	       strcmp(a->ifname, b->ifname) == 0;
}

/* ---- opening -------------------------------------------------------------- */

/* Raw IPv4: let the kernel drop everything but echo replies carrying our
 * ident and errors quoting a request with our ident (as iputils does), so
 * a busy host's ICMP traffic never wakes us.  ICMP_FILTER drops the other
 * types first, before the kernel clones the packet for this socket: every
 * echo request the host receives (on loopback, each of our own) used to be
 * cloned only to be rejected by the BPF program.  (On the 10 000-target
 * loopback bench the saving is within this machine's noise, 0.83-1.07 of
 * the CPU per probe over 16 paired rounds.) */
static int set_filter4(int fd, uint16_t ident)
{
	/* ICMP_FILTER and its struct icmp_filter (one 32-bit mask of the
	 * types to drop) from <linux/icmp.h>, which clashes with <net/if.h>. */
	enum { RAW_ICMP_FILTER = 1 };
	uint32_t drop = ~(1u << ICMP4_ECHO_REPLY | 1u << ICMP4_DEST_UNREACH |
			  1u << ICMP4_TIME_EXCEEDED | 1u << ICMP4_PARAM_PROBLEM);
	struct sock_filter code[] = {
		/* 0 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),        /* X = IHL */
		/* 1 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 0),         /* type */
		/* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP4_ECHO_REPLY, 0, 2),
		/* 3 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 4),         /* ident */
		/* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ident, 10, 11),
		/* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP4_DEST_UNREACH, 2, 0),
		/* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP4_TIME_EXCEEDED, 1, 0),
		/* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP4_PARAM_PROBLEM, 0, 8),
		/* quoted header length, + outer IHL: X = IHL + quoted IHL */
		/* 8 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 8),
		/* 9 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0f),
		/* 10 */ BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 2),
		/* 11 */ BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),
		/* 12 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
		/* 13 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 8 + 4),    /* quoted ident */
		/* 14 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ident, 0, 1),
		/* 15 */ BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		/* 16 */ BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = ARRAY_SIZE(code), .filter = code };

	if (setsockopt(fd, SOL_RAW, RAW_ICMP_FILTER, &drop, sizeof drop) < 0)
		return -1;
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

static int set_filter6(int fd)
{
	struct icmp6_filter f;

	ICMP6_FILTER_SETBLOCKALL(&f);
	ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
	ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f);
	ICMP6_FILTER_SETPASS(ICMP6_PACKET_TOO_BIG, &f);
	ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f);
	ICMP6_FILTER_SETPASS(ICMP6_PARAM_PROB, &f);
	return setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f);
}

static void hint(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen,
		 "%s; set net.ipv4.ping_group_range to include gid %u "
		 "(it also governs ICMPv6 datagram sockets), or grant CAP_NET_RAW",
		 what, (unsigned)getegid());
}

/* Open the socket a key asks for.  Returns the fd, or -1 with a message in
 * err; *why tells a missing family (no IPv6) and missing permission apart. */
static int open_icmp(const struct icmp_sock_key *k, bool *raw, char *err, size_t errlen,
		     enum icmp_open_fail *why)
{
	int af = (k->family == 6 ? AF_INET6 : AF_INET), proto = k->family == 6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	int fd = -1, dgram_errno = 0;
	char what[160];

	*why = ICMP_OPEN_FAIL_OTHER;
	if (k->kind != ICMP_SOCKET_RAW) {
		fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
		if (fd >= 0) {
			*raw = false;
			return fd;
		}
		dgram_errno = errno;
		if (errno == EAFNOSUPPORT) {
			*why = ICMP_OPEN_FAIL_FAMILY;
			snprintf(err, errlen, "IPv%d is not available: %s", k->family,
				 strerror(errno));
			return -1;
		}
		if (k->kind == ICMP_SOCKET_DGRAM) {
			snprintf(what, sizeof what,
				 "socket = dgram: cannot open an ICMP datagram socket for IPv%d: %s",
				 k->family, strerror(errno));
			hint(err, errlen, what);
			return -1;
		}
		/* auto: only permission problems (or a kernel without ping
		 * sockets) make raw worth trying. */
		if (errno != EACCES && errno != EPERM && errno != EPROTONOSUPPORT &&
		    errno != ESOCKTNOSUPPORT) {
			snprintf(err, errlen, "cannot open an ICMP datagram socket for IPv%d: %s",
				 k->family, strerror(errno));
			return -1;
		}
	}
	fd = socket(af, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (fd >= 0) {
		*raw = true;
		return fd;
	}
	if (errno == EAFNOSUPPORT) {
		*why = ICMP_OPEN_FAIL_FAMILY;
		snprintf(err, errlen, "IPv%d is not available: %s", k->family, strerror(errno));
		return -1;
	}
	if (errno == EPERM || errno == EACCES)
		*why = ICMP_OPEN_FAIL_PERM;
	if (dgram_errno)
		snprintf(what, sizeof what,
			 "cannot open an ICMP socket for IPv%d: datagram: %s, raw: %s",
			 k->family, strerror(dgram_errno), strerror(errno));
	else
		snprintf(what, sizeof what,
			 "socket = raw: cannot open a raw ICMP socket for IPv%d: %s",
			 k->family, strerror(errno));
	hint(err, errlen, what);
	return -1;
}

/* Ask for kernel transmit timestamps numbered by the kernel (OPT_ID,
 * counting from 0).  Optional: without them RTTs start at the user-space
 * send time.  The ring is allocated once, at open. */
static void tx_stamps_enable(struct icmp_sock *s)
{
	int flags = TS_FLAGS;

	if (!s->tx_ring)
		return;
	memset(s->tx_ring, 0xff, TX_RING * sizeof *s->tx_ring);
	s->tx_next_key = 0;
	if (setsockopt(s->io.fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) < 0) {
		free(s->tx_ring);
		s->tx_ring = NULL;
	}
}

static void drain_errqueue(struct icmp_sock *s);

/* A failed send may or may not have used up a key.  Turning OPT_ID off and
 * on restarts the kernel's count at 0, so the mapping is exact again;
 * stamps still queued are read first. */
static void tx_stamps_resync(struct icmp_sock *s)
{
	int flags = TS_FLAGS & ~SOF_TIMESTAMPING_OPT_ID;

	drain_errqueue(s);
	if (setsockopt(s->io.fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) < 0) {
		free(s->tx_ring);
		s->tx_ring = NULL;
		return;
	}
	tx_stamps_enable(s);
}

void icmp_sock_rcvbuf(struct icmp_sock *s, size_t want)
{
	int v = (int)want;

	if (want == s->rcvbuf)
		return;
	s->rcvbuf = want;
	/* FORCE needs CAP_NET_ADMIN, plain is capped by net.core.rmem_max. */
	if (setsockopt(s->io.fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
		(void)setsockopt(s->io.fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
}

/* Bind (datagram sockets: port 0 makes the kernel pick our ident now) and
 * learn the ident, or install the raw filters.  The failing step or NULL. */
static const char *sock_identify(struct icmp_sock *s, int fd, uint16_t raw_ident)
{
	const struct icmp_sock_key *k = &s->key;
	bool v6 = k->family == 6;
	int one = 1;

	if (!s->raw || k->has_source) {
		union inet_sa b;

		if (k->has_source) {
			b = k->source;
		} else {
			memset(&b, 0, sizeof b);
			b.sa.sa_family = v6 ? AF_INET6 : AF_INET;
		}
		if (v6)
			b.in6.sin6_port = 0;
		else
			b.in4.sin_port = 0;
		if (bind(fd, &b.sa, inet_sa_len(&b)) < 0)
			return "bind";
	}
	if (s->raw) {
		/* Distinct idents per raw socket of this process, random across
		 * processes; the payload cookie catches the rest. */
		s->ident = raw_ident;
		if (v6 ? set_filter6(fd) < 0 : set_filter4(fd, s->ident) < 0)
			return v6 ? "ICMP6_FILTER" : "ICMP_FILTER/SO_ATTACH_FILTER";
		return NULL;
	}
	{
		union inet_sa local;
		socklen_t ln = sizeof local;

		if (getsockname(fd, &local.sa, &ln) < 0)
			return "getsockname";
		s->ident = ntohs(v6 ? local.in6.sin6_port : local.in4.sin_port);
	}
	if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_RECVERR : IP_RECVERR,
		       &one, sizeof one) < 0)
		return v6 ? "IPV6_RECVERR" : "IP_RECVERR";
	return NULL;
}

/* TTL, TOS, DF and receive stamps.  The failing step or NULL. */
static const char *sock_options(const struct icmp_sock_key *k, int fd)
{
	bool v6 = k->family == 6;
	int one = 1, v;

	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
		return "SO_TIMESTAMPNS";
	v = k->ttl;
	if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, &v, sizeof v) < 0)
		return v6 ? "IPV6_UNICAST_HOPS" : "IP_TTL";
	v = k->tos;
	if (v && setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TCLASS : IP_TOS, &v, sizeof v) < 0)
		return v6 ? "IPV6_TCLASS" : "IP_TOS";
	/* dont_fragment: DF set and never fragmented here (a request too big
	 * for the path fails with EMSGSIZE or draws frag-needed/packet-too-big),
	 * or fragmented wherever needed.  IPv4 requests with DF are also sent
	 * with IP ID 0 instead of one drawn from the kernel's per-destination
	 * hash, which is cold for every one of thousands of targets: about 5 %
	 * of the kernel's work per probe (perf, bench/icmp_ref with and without). */
	v = k->df ? (v6 ? IPV6_PMTUDISC_DO : IP_PMTUDISC_DO)
		  : (v6 ? IPV6_PMTUDISC_DONT : IP_PMTUDISC_DONT);
	if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_MTU_DISCOVER : IP_MTU_DISCOVER,
		       &v, sizeof v) < 0)
		return v6 ? "IPV6_MTU_DISCOVER" : "IP_MTU_DISCOVER";
	return NULL;
}

static void on_ready(struct io *io, uint32_t events);

int icmp_sock_open(struct icmp_sock *s, struct loop *loop, const struct icmp_sock_key *k,
		   uint16_t raw_ident, struct icmp_rx *rx, icmp_sock_fn on_event,
		   char *err, size_t errlen, enum icmp_open_fail *why)
{
	const char *step;
	int fd;

	memset(s, 0, sizeof *s);
	s->key = *k;
	s->rx = rx;
	s->on_event = on_event;
	io_init(&s->io, -1, on_ready, IO_PRIVATE);
	fd = open_icmp(k, &s->raw, err, errlen, why);
	if (fd < 0)
		return -1;
	io_init(&s->io, fd, on_ready, IO_PRIVATE);
	if (k->ifname[0] &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, k->ifname, (socklen_t)strlen(k->ifname)) < 0)
		step = "SO_BINDTODEVICE";
	else if (!(step = sock_identify(s, fd, raw_ident)))
		step = sock_options(k, fd);
	if (!step) {
		s->tx_ring = malloc(TX_RING * sizeof *s->tx_ring);
		tx_stamps_enable(s);
		if (loop_watch(loop, &s->io, EPOLLIN) < 0)
			step = "epoll";
	}
	if (!step)
		return 0;
	*why = ICMP_OPEN_FAIL_OTHER;
	snprintf(err, errlen, "ICMP socket for IPv%d%s%s: %s: %s", k->family,
		 k->ifname[0] ? " on interface " : "", k->ifname, step, strerror(errno));
	loop_close(loop, &s->io);
	icmp_sock_release(s);
	return -1;
}

void icmp_sock_close(struct loop *loop, struct icmp_sock *s)
{
	loop_close(loop, &s->io);
}

void icmp_sock_release(struct icmp_sock *s)
{
	free(s->tx_ring);
	s->tx_ring = NULL;
}

/* ---- sending -------------------------------------------------------------- */

int icmp_sock_send(struct icmp_sock *s, const void *buf, size_t len, const union inet_sa *to,
		   uint16_t seq)
{
	ssize_t n = sendto(s->io.fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, &to->sa,
			   inet_sa_len(to));

	if (n != (ssize_t)len) {
		int err = n < 0 ? errno : EMSGSIZE;

		if (s->tx_ring)
			tx_stamps_resync(s);
		return err;
	}
	if (s->tx_ring) {
		struct icmp_tx_slot *slot = &s->tx_ring[s->tx_next_key & (TX_RING - 1)];

		slot->key = s->tx_next_key++;
		slot->seq = seq;
	}
	return 0;
}

/* ---- receiving ------------------------------------------------------------ */

int icmp_rx_prepare(const struct icmp_rx *rx, size_t max_payload, uint8_t **buf,
		    size_t *slot, size_t *n)
{
	/* IPv4 header with options (raw sockets) + ICMP header + payload,
	 * rounded to a cache line. */
	*slot = (60 + ICMP_ECHO_HDR_LEN + max_payload + 64 + 63) & ~(size_t)63;
	*n = RX_BUF_BUDGET / *slot;
	if (*n > ICMP_RX_MMSG)
		*n = ICMP_RX_MMSG;
	if (*n < 1)
		*n = 1;
	*buf = NULL;
	if (rx->buf && rx->slot == *slot && rx->n == *n)
		return 0;
	*buf = malloc(*slot * *n);
	return *buf ? 0 : -1;
}

void icmp_rx_install(struct icmp_rx *rx, uint8_t *buf, size_t slot, size_t n)
{
	if (!buf)
		return;
	free(rx->buf);
	rx->buf = buf;
	rx->slot = slot;
	rx->n = n;
}

/* Two reads of the monotonic clock further apart than this bracket a
 * preemption, not just the read of the other clock (a few tens of ns). */
#define CLOCK_PAIR_GAP_NS (20 * NSEC_PER_USEC)

void icmp_clock_pair_pick(struct icmp_clock_pair *c, void (*read)(void *arg, uint64_t v[3]),
			  void *arg)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 4 && best > CLOCK_PAIR_GAP_NS; i++) {
		uint64_t v[3];

		read(arg, v);
		if (v[2] >= v[0] && v[2] - v[0] < best) {
			best = v[2] - v[0];
			c->mono = v[0] + best / 2;
			c->real = v[1];
		}
	}
}

static void read_clocks(void *arg, uint64_t v[3])
{
	(void)arg;
	v[0] = mono_ns();
	v[1] = wall_ns();
	v[2] = mono_ns();
}

static void clock_pair_now(struct icmp_clock_pair *c)
{
	icmp_clock_pair_pick(c, read_clocks, NULL);
}

uint64_t icmp_clock_to_mono(uint64_t k, const struct icmp_clock_pair *now)
{
	if (k == 0 || k > now->real || now->real - k >= now->mono)
		return 0;
	return now->mono - (now->real - k);
}

/* The receive stamp (kstamp.c, shared with the STAMP reflector) on the
 * monotonic clock, or now when there is none usable. */
static uint64_t rx_time(struct msghdr *msg, const struct icmp_clock_pair *now)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		uint64_t k = icmp_clock_to_mono(kstamp_cmsg_rx_ns(c), now);
		if (k)
			return k;
	}
	return now->mono;
}

/* Point every recvmmsg slot at its buffers again: the kernel rewrites the
 * lengths and flags on each call. */
static void rx_reset(struct icmp_rx *rx)
{
	for (size_t i = 0; i < rx->n; i++) {
		struct msghdr *h = &rx->msgs[i].msg_hdr;

		rx->iov[i].iov_base = rx->buf + i * rx->slot;
		rx->iov[i].iov_len = rx->slot;
		h->msg_name = &rx->from[i];
		h->msg_namelen = sizeof rx->from[i];
		h->msg_iov = &rx->iov[i];
		h->msg_iovlen = 1;
		h->msg_control = rx->ctrl[i];
		h->msg_controllen = ICMP_RX_CTRL;
		h->msg_flags = 0;
	}
}

/* One message from the error queue of a datagram socket reporting an ICMP
 * error (IP_RECVERR / IPV6_RECVERR): the data is our request as sent,
 * msg_name its destination, and the extended error names the router and
 * the reason. */
static void errqueue_icmp(struct icmp_sock *s, const struct msghdr *h, size_t len,
			  const struct sock_extended_err *ee, const void *ee_raw)
{
	const union inet_sa *dst = h->msg_name;
	const uint8_t *req = ((const struct iovec *)h->msg_iov)->iov_base;
	struct icmp_sock_event ev = { .kind = ICMP_EV_ERROR };
	union inet_sa from;
	/* SO_EE_OFFENDER casts away const, which clang -Wcast-qual rejects. */
	const struct sockaddr *off =
		(const struct sockaddr *)(const void *)((const char *)ee_raw + sizeof *ee);

	if (len < ICMP_ECHO_HDR_LEN) {
		ev.kind = ICMP_EV_ERROR_SHORT;
		s->on_event(s, &ev);
		return;
	}
	if (ee->ee_origin == SO_EE_ORIGIN_ICMP)
		ev.reason = icmp_reason_from(4, ee->ee_type, ee->ee_code);
	else if (ee->ee_origin == SO_EE_ORIGIN_ICMP6)
		ev.reason = icmp_reason_from(6, ee->ee_type, ee->ee_code);
	else
		ev.reason = ICMP_REASON_OTHER;
	if (ev.reason == ICMP_REASON_NONE)
		ev.reason = ICMP_REASON_OTHER;
	if (off->sa_family == AF_INET || off->sa_family == AF_INET6) {
		memset(&from, 0, sizeof from);
		memcpy(&from, off, off->sa_family == AF_INET ? sizeof from.in4 : sizeof from.in6);
		ev.from = &from;
	}
	if (dst->sa.sa_family == AF_INET)
		memcpy(ev.orig_dst, &dst->in4.sin_addr, 4);
	else if (dst->sa.sa_family == AF_INET6)
		memcpy(ev.orig_dst, &dst->in6.sin6_addr, 16);
	ev.ident = (uint16_t)(req[4] << 8 | req[5]);
	ev.seq = (uint16_t)(req[6] << 8 | req[7]);
	ev.mtu = ee->ee_info;
	s->on_event(s, &ev);
}

/* A kernel transmit timestamp (SO_TIMESTAMPING, OPT_ID): the time the
 * request reached the device layer, for the request the key names. */
static void errqueue_tx_stamp(struct icmp_sock *s, struct msghdr *h,
			      const struct sock_extended_err *ee, const struct icmp_clock_pair *now)
{
	const struct icmp_tx_slot *slot = &s->tx_ring[ee->ee_data & (TX_RING - 1)];
	struct icmp_sock_event ev = { .kind = ICMP_EV_TX_STAMP };

	if (ee->ee_info != SCM_TSTAMP_SCHED || slot->key != ee->ee_data)
		return;
	if (!(ev.tx_ns = icmp_clock_to_mono(kstamp_tx_ns(h), now)))
		return;
	ev.seq = slot->seq;
	s->on_event(s, &ev);
}

static void errqueue_one(struct icmp_sock *s, struct mmsghdr *m,
			 const struct icmp_clock_pair *now)
{
	struct msghdr *h = &m->msg_hdr;
	struct sock_extended_err copy;
	const void *ee = kstamp_ext_err(h, &copy);

	if (!ee)
		return;
	if (copy.ee_origin == SO_EE_ORIGIN_TIMESTAMPING) {
		if (s->tx_ring)
			errqueue_tx_stamp(s, h, &copy, now);
	} else if (copy.ee_origin == SO_EE_ORIGIN_LOCAL) {
		/* The kernel's copy of a send that already failed (EMSGSIZE
		 * with dont_fragment): it carries no request and was counted
		 * then. */
	} else if (!s->raw) {
		errqueue_icmp(s, h, m->msg_len, &copy, ee);
	}
}

static void drain_errqueue(struct icmp_sock *s)
{
	struct icmp_rx *rx = s->rx;
	size_t total = 0;

	while (total < RX_BATCH) {
		struct icmp_clock_pair now;
		int n;

		rx_reset(rx);
		n = recvmmsg(s->io.fd, rx->msgs, (unsigned)rx->n, MSG_ERRQUEUE | MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		clock_pair_now(&now);
		for (int i = 0; i < n; i++)
			errqueue_one(s, &rx->msgs[i], &now);
		total += (size_t)n;
		if ((size_t)n < rx->n)
			return;
	}
}

static void on_ready(struct io *io, uint32_t events)
{
	struct icmp_sock *s = container_of(io, struct icmp_sock, io);
	struct icmp_rx *rx = s->rx;
	size_t total = 0;

	/* Queued ICMP errors (datagram sockets) and transmit timestamps are
	 * signalled with EPOLLERR.  Read them first: a request's transmit
	 * stamp is queued before its reply can arrive. */
	if (events & EPOLLERR)
		drain_errqueue(s);
	while ((events & EPOLLIN) && total < RX_BATCH) {
		struct icmp_clock_pair now;
		int n;

		rx_reset(rx);
		n = recvmmsg(io->fd, rx->msgs, (unsigned)rx->n, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		clock_pair_now(&now);
		for (int i = 0; i < n && io_fd(io) >= 0; i++) {
			struct msghdr *h = &rx->msgs[i].msg_hdr;
			struct icmp_sock_event ev = { .kind = ICMP_EV_DATAGRAM };

			if (h->msg_flags & MSG_TRUNC)
				ev.kind = ICMP_EV_TRUNCATED;
			ev.buf = rx->buf + (size_t)i * rx->slot;
			ev.len = rx->msgs[i].msg_len;
			ev.from = &rx->from[i];
			ev.rx_ns = rx_time(h, &now);
			s->on_event(s, &ev);
		}
		total += (size_t)n;
		if ((size_t)n < rx->n)
			break;
	}
}
