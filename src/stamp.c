/*
 * stamp: the STAMP session reflector (RFC 8762, RFC 8972 TLVs).
 *
 * The shape is the UDP echo's (udp.c): recvmmsg into slots of the
 * loop-wide buffer, the reply built in the very slot it arrived in, one
 * sendmmsg per batch, nothing ever queued.  What STAMP adds:
 *
 *   - T2 is the kernel's receive stamp of that datagram (SO_TIMESTAMPNS),
 *     T3 is read once, immediately before the sendmmsg of its batch, so
 *     T3 - T2 is the reflector's true residence time, building included;
 *   - the received TTL / hop limit and DSCP/ECN come from IP_RECVTTL /
 *     IPV6_RECVHOPLIMIT and IP_RECVTOS / IPV6_RECVTCLASS; replies leave
 *     with TTL / hop limit 255 (RFC 8762 section 4.3);
 *   - the error estimate's S bit and error come from adjtimex(2), read at
 *     most once a second;
 *   - in stateful mode, a session table (stamp_sess.h) gives each
 *     (SSID, 4-tuple) its own reflector sequence numbers, and the kernel's
 *     transmit stamp of a reply (SO_TIMESTAMPING, read back from the error
 *     queue) becomes the Follow-Up Telemetry of the next one -- for the
 *     replies whose request asked for a Follow-Up, so that others cost
 *     nothing.
 *
 * Safeguards, in this order, each with its counter: truncation, the
 * allow-list (first: whoever is not on it learns nothing, not even our
 * opinion of their port), a source or destination that is not one
 * unicast host, the source port (as the UDP echo's, but 862 and 863 are
 * answered: STAMP senders use them), the packet's kind (runt,
 * authenticated, short with short_requests = drop), the per-source rate
 * limit, and in stateful mode the session table.
 *
 * By default the reply's DSCP is never changed: the Class of Service TLV
 * reports what arrived and says (RP = 1) that the requested DSCP was not
 * applied.  A reflector that re-marks on request lets any allow-listed
 * sender pick the queue our replies take, which is the operator's policy
 * decision: class_of_service = apply makes it (RP = 0, DSCP1 on the
 * reply, per message).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/timex.h>

#include "acl.h"
#include "kstamp.h"
#include "listen_set.h"
#include "log.h"
#include "net.h"
#include "ratelimit.h"
#include "reflect.h"
#include "stamp.h"
#include "stamp_pkt.h"
#include "stamp_sess.h"
#include "util.h"

#define STAMP_DESC(name, help) COUNTER_DESC(struct stamp_counters, name, help)
const struct counter_desc stamp_counter_descs[] = { STAMP_COUNTERS(STAMP_DESC) };
const size_t stamp_counter_count = ARRAY_SIZE(stamp_counter_descs);
#undef STAMP_DESC

#define STAMP_SLOT_SIZE   65536u
#define STAMP_BATCH       64u
#define STAMP_ROUNDS      4u
#define STAMP_ERRQ_BATCH  64u
#define STAMP_TX_RING     256u    /* replies whose transmit stamp may be pending */
#define STAMP_LOG_INTERVAL_NS (10 * NSEC_PER_SEC)
#define STAMP_CLOCK_PERIOD_NS NSEC_PER_SEC
#define STAMP_REPLY_TTL   255

/* pktinfo, SCM_TIMESTAMPNS, SCM_TIMESTAMPING (the software stamp is
 * reported on receive too once SO_TIMESTAMPING is on), TTL and TOS of
 * either family, and slack. */
#define STAMP_CTL_SIZE 384
/* On the socket: report software stamps, numbered (OPT_ID), without the
 * packet (TSONLY).  Which replies are stamped is chosen per message, by a
 * SO_TIMESTAMPING control message with TX_SOFTWARE: only those whose
 * request carried a Follow-Up Telemetry TLV, so a stateful reflector whose
 * senders do not ask for it reads no error queue at all.  The kernel
 * numbers only the messages it stamps. */
#define STAMP_TX_FLAGS (SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | \
			SOF_TIMESTAMPING_OPT_TSONLY)
#define STAMP_TX_SPACE CMSG_SPACE(sizeof(uint32_t))

union stamp_ctl {
	struct cmsghdr align;
	char buf[STAMP_CTL_SIZE];
};

#define STAMP_TOS_SPACE CMSG_SPACE(sizeof(int))

union stamp_ctl_out {
	struct cmsghdr align;
	char buf[REFLECT_PKTINFO_SPACE + STAMP_TX_SPACE + STAMP_TOS_SPACE];
};

/* A reply sent whose transmit stamp the error queue will bring. */
struct tx_slot {
	uint32_t key;            /* OPT_ID; UINT32_MAX when empty */
	uint32_t sess, gen;
	uint32_t seq;
};

struct stamp_sock {
	struct listen_sock ls;
	bool pktinfo;            /* wildcard: replies leave from the arrival address */
	bool txstamps;           /* SO_TIMESTAMPING with OPT_ID is on */
	uint32_t tx_next_key;
	struct tx_slot ring[STAMP_TX_RING];
};

struct stamp_settings {
	enum stamp_mode mode;
	enum stamp_short short_requests;
	enum stamp_cos cos;
	struct acl allow;        /* owned copy */
	uint32_t rate, burst, table_size;
	uint32_t sessions;
	uint64_t idle_ns;
};

struct stamp_plan {
	struct stamp_service *svc;
	struct listen_plan socks;
	struct stamp_settings set;
	struct ratelimit *rl;
	struct stamp_sessions *sess;
};

enum stamp_drop {
	DROP_TRUNCATED, DROP_ACL, DROP_ADDR, DROP_PORT, DROP_RUNT, DROP_SHORT, DROP_AUTH,
	DROP_RATE, DROP_SESSION, DROP_SEND, DROP_N,
};

static const char *const drop_reason[DROP_N] = {
	[DROP_TRUNCATED] = "truncated",
	[DROP_ACL] = "acl",
	[DROP_ADDR] = "addr",
	[DROP_PORT] = "port",
	[DROP_RUNT] = "runt",
	[DROP_SHORT] = "short",
	[DROP_AUTH] = "auth",
	[DROP_RATE] = "rate",
	[DROP_SESSION] = "session",
	[DROP_SEND] = "send",
};

struct out_meta {
	uint32_t sess, gen, seq;
	bool stateful;
	bool is_short;
	bool tx_stamp;           /* stamped by the kernel (a follow-up was asked for) */
};

struct stamp_service {
	struct loop *loop;
	uint8_t *buf;
	size_t slot_size;
	unsigned nslots;

	struct listen_set socks;
	struct stamp_settings set;
	struct ratelimit *rl;
	struct stamp_sessions *sess;
	uint64_t evictions_base;
	struct stamp_sess_counters sess_base;  /* of tables already replaced */
	struct stamp_counters counters;

	uint64_t clock_checked;  /* monotonic; 0 = never */
	uint16_t error;          /* our Error Estimate */
	uint8_t sync_src;

	struct log_rate log_drop[DROP_N];
	struct log_rate log_recv;

	struct mmsghdr in[STAMP_BATCH];
	struct iovec iov[STAMP_BATCH];
	struct sockaddr_storage names[STAMP_BATCH];
	union stamp_ctl ctl_in[STAMP_BATCH];
	struct mmsghdr out[STAMP_BATCH];
	union stamp_ctl_out ctl_out[STAMP_BATCH];
	struct out_meta meta[STAMP_BATCH];

	struct mmsghdr eq[STAMP_ERRQ_BATCH];
	struct iovec eq_iov[STAMP_ERRQ_BATCH];
	uint8_t eq_data[STAMP_ERRQ_BATCH][64];
	union stamp_ctl eq_ctl[STAMP_ERRQ_BATCH];
};

/* ---- logging --------------------------------------------------------------- */

static struct logline *ratelog_begin(struct stamp_service *s, struct log_rate *r,
				     enum log_level level, const char *event)
{
	return log_begin_rate(r, loop_now(s->loop), STAMP_LOG_INTERVAL_NS, level, event,
			      "stamp");
}

static void count_drop(struct stamp_service *s, enum stamp_drop why, const struct sockaddr *peer)
{
	struct stamp_counters *c = &s->counters;
	switch (why) {
	case DROP_TRUNCATED: c->drop_truncated++; break;
	case DROP_ACL:       c->drop_acl++; break;
	case DROP_ADDR:      c->drop_addr++; break;
	case DROP_PORT:      c->drop_port++; break;
	case DROP_RUNT:      c->drop_runt++; break;
	case DROP_SHORT:     c->drop_short++; break;
	case DROP_AUTH:      c->drop_auth++; break;
	case DROP_RATE:      c->drop_rate++; break;
	case DROP_SESSION:   c->drop_session++; break;
	case DROP_SEND:      c->drop_send++; break;
	case DROP_N:         break;
	}
	struct logline *l = ratelog_begin(s, &s->log_drop[why], LOG_INFO, "refused");
	log_str(l, "reason", drop_reason[why]);
	log_addr(l, "peer", peer);
	log_end(l);
}

/* ---- the clock --------------------------------------------------------------- */

/* The S bit and error of our Error Estimate, from the kernel's view of
 * its clock discipline: synchronised unless STA_UNSYNC (or TIME_ERROR);
 * the estimated error when synchronised, the maximum error otherwise. */
static void clock_refresh(struct stamp_service *s, uint64_t now)
{
	if (s->clock_checked && now - s->clock_checked < STAMP_CLOCK_PERIOD_NS)
		return;
	s->clock_checked = now;

	struct timex tx = { .modes = 0 };
	int st = adjtimex(&tx);
	bool synced = st >= 0 && st != TIME_ERROR && !(tx.status & STA_UNSYNC);
	long us = synced ? tx.esterror : tx.maxerror;
	uint64_t err_ns = st < 0 || us < 0 ? 16 * NSEC_PER_SEC : (uint64_t)us * NSEC_PER_USEC;

	s->error = stamp_error_estimate(synced, err_ns);
	s->sync_src = synced ? STAMP_SYNC_NTP : STAMP_SYNC_FREE_RUNNING;
	s->counters.clock_synced = synced;
	s->counters.clock_error_ns = stamp_error_ns(s->error);
}

/* ---- one datagram ------------------------------------------------------------ */

/* What the control messages of a received datagram say. */
struct rx_info {
	uint64_t stamp_ns;       /* kernel receive stamp, CLOCK_REALTIME; 0 = none */
	int ttl;                 /* -1 = not reported */
	int tos;
	uint8_t dst[16];         /* arrival address (pktinfo), zero when unknown */
};

static void rx_parse(struct msghdr *m, struct rx_info *ri)
{
	ri->stamp_ns = 0;
	ri->ttl = -1;
	ri->tos = 0;
	memset(ri->dst, 0, sizeof ri->dst);
	/* One pass over the control messages, on the path of every reply. */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		int v;
		if (c->cmsg_level == SOL_SOCKET) {
			uint64_t k = kstamp_cmsg_rx_ns(c);
			if (k)
				ri->stamp_ns = k;
		} else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL &&
		    c->cmsg_len >= CMSG_LEN(sizeof v)) {
			memcpy(&v, CMSG_DATA(c), sizeof v);
			ri->ttl = v;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT &&
			   c->cmsg_len >= CMSG_LEN(sizeof v)) {
			memcpy(&v, CMSG_DATA(c), sizeof v);
			ri->ttl = v;
		} else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS &&
			   c->cmsg_len >= CMSG_LEN(1)) {
			ri->tos = *(const uint8_t *)CMSG_DATA(c);
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS &&
			   c->cmsg_len >= CMSG_LEN(sizeof v)) {
			memcpy(&v, CMSG_DATA(c), sizeof v);
			ri->tos = v;
		} else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
			   c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof pi);
			memcpy(ri->dst, &pi.ipi_addr, 4);
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
			   c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof pi);
			memcpy(ri->dst, &pi.ipi6_addr, 16);
		}
	}
}

/* The session key: SSID and the 4-tuple (the local side is the arrival
 * address on wildcard sockets, else the socket's own). */
static void session_key(uint8_t key[STAMP_SESS_KEY_LEN], const struct stamp_sock *u,
			const struct sockaddr *peer, uint16_t ssid, const struct rx_info *ri)
{
	memset(key, 0, STAMP_SESS_KEY_LEN);
	ratelimit_key(peer, key);
	uint16_t pport = peer->sa_family == AF_INET6
		? ((const struct sockaddr_in6 *)(const void *)peer)->sin6_port
		: ((const struct sockaddr_in *)(const void *)peer)->sin_port;
	memcpy(key + 16, &pport, 2);
	key[18] = (uint8_t)(ssid >> 8);
	key[19] = (uint8_t)ssid;
	if (u->pktinfo)
		memcpy(key + 20, ri->dst, 16);
	else
		ratelimit_key(&u->ls.bound.u.sa, key + 20);
	uint16_t lport = u->ls.bound.u.sa.sa_family == AF_INET6 ? u->ls.bound.u.in6.sin6_port
							       : u->ls.bound.u.in4.sin_port;
	memcpy(key + 36, &lport, 2);
}

/* The control message that gives one reply the DSCP a Class of Service
 * TLV asked for (class_of_service = apply), ECN not-ECT: IP_TOS for IPv4
 * and IPv4-mapped peers, IPV6_TCLASS otherwise.  Returns its length. */
static size_t reply_class(char *at, const struct sockaddr *peer, uint8_t dscp)
{
	struct cmsghdr *c = (struct cmsghdr *)(void *)at;
	int v = dscp << 2;
	bool v6 = peer->sa_family == AF_INET6 &&
		  !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr);

	memset(c, 0, STAMP_TOS_SPACE);
	c->cmsg_level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
	c->cmsg_type = v6 ? IPV6_TCLASS : IP_TOS;
	c->cmsg_len = CMSG_LEN(sizeof v);
	memcpy(CMSG_DATA(c), &v, sizeof v);
	return STAMP_TOS_SPACE;
}

/* Decide on datagram i and build its reply in place; true when there is
 * one, with its control data in ctl_out[k], length *ctllen. */
/* The checks a request passes before it is answered, in order (each drop
 * counted with its reason); *ctllen is the reply-source control message
 * on a wildcard socket, *kind what the packet is. */
static bool stamp_check(struct stamp_service *s, struct stamp_sock *u, unsigned i, unsigned k,
			size_t *ctllen, uint64_t now, enum stamp_kind *kind_out)
{
	struct msghdr *m = &s->in[i].msg_hdr;
	const struct sockaddr *peer = (const struct sockaddr *)(const void *)&s->names[i];
	uint8_t *pkt = s->iov[i].iov_base;
	size_t len = s->in[i].msg_len;
	uint16_t port;
	bool unicast;

	if (m->msg_flags & MSG_TRUNC) {
		count_drop(s, DROP_TRUNCATED, peer);
		return false;
	}
	if (!reflect_peer_parts(&s->names[i], m->msg_namelen, &port, &unicast)) {
		count_drop(s, DROP_ADDR, peer);
		return false;
	}
	if (!acl_allows(&s->set.allow, peer)) {
		count_drop(s, DROP_ACL, peer);
		return false;
	}
	if (!unicast) {
		count_drop(s, DROP_ADDR, peer);
		return false;
	}
	*ctllen = 0;
	if (u->pktinfo) {
		int n = reflect_reply_source(m, s->ctl_out[k].buf, sizeof s->ctl_out[k].buf);
		if (n < 0) {
			count_drop(s, DROP_ADDR, peer);
			return false;
		}
		*ctllen = (size_t)n;
	}
	if (port != 862 && port != 863 && reflect_port_refused(port)) {
		count_drop(s, DROP_PORT, peer);
		return false;
	}
	enum stamp_kind kind = *kind_out = stamp_classify(pkt, len);
	if (kind == STAMP_RUNT) {
		count_drop(s, DROP_RUNT, peer);
		return false;
	}
	if (kind == STAMP_AUTH) {
		count_drop(s, DROP_AUTH, peer);
		return false;
	}
	if (kind == STAMP_SHORT && s->set.short_requests == STAMP_SHORT_DROP) {
		count_drop(s, DROP_SHORT, peer);
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

static bool stamp_admit(struct stamp_service *s, struct stamp_sock *u, unsigned i, unsigned k,
			size_t *ctllen, uint64_t now)
{
	struct msghdr *m = &s->in[i].msg_hdr;
	const struct sockaddr *peer = (const struct sockaddr *)(const void *)&s->names[i];
	uint8_t *pkt = s->iov[i].iov_base;
	size_t len = s->in[i].msg_len;
	enum stamp_kind kind;

	if (!stamp_check(s, u, i, k, ctllen, now, &kind))
		return false;
	struct rx_info ri;
	rx_parse(m, &ri);
	struct stamp_reflect_info info = {
		.seq = stamp_get32(pkt),
		/* No kernel stamp (never seen on Linux, but the option is
		 * best effort): the time we read it is the next best T2. */
		.t2 = stamp_ntp_from_ns(ri.stamp_ns ? ri.stamp_ns : wall_ns()),
		.error = s->error,
		.ttl = ri.ttl < 0 ? 0 : (uint8_t)ri.ttl,
		.tos = (uint8_t)ri.tos,
		.sync_src = s->sync_src,
		.ts_in = STAMP_TSM_SW,
		.ts_out = STAMP_TSM_SW,
		.cos_apply = s->set.cos == STAMP_COS_APPLY,
		.rx_count = (uint32_t)s->counters.received,
		.tx_count = (uint32_t)s->counters.reflected,
	};
	struct out_meta *om = &s->meta[k];
	om->stateful = false;
	om->is_short = kind == STAMP_SHORT;
	if (s->sess) {
		uint8_t key[STAMP_SESS_KEY_LEN];
		bool created;
		session_key(key, u, peer, stamp_ssid(pkt, len), &ri);
		struct stamp_session *ss = stamp_sessions_get(s->sess, key, now, &created);
		if (!ss) {
			count_drop(s, DROP_SESSION, peer);
			return false;
		}
		ss->rx++;
		info.seq = ss->next_seq++;
		info.rx_count = ss->rx;
		info.tx_count = ss->tx;
		if (ss->fu_valid) {
			info.followup = true;
			info.fu_seq = ss->fu_seq;
			info.fu_time = stamp_ntp_from_ns(ss->fu_ns);
			info.fu_mode = STAMP_TSM_SW;
		}
		om->stateful = true;
		om->sess = stamp_sessions_index(s->sess, ss);
		om->gen = ss->gen;
		om->seq = info.seq;
	}

	struct stamp_tlv_stats st;
	size_t out = stamp_reflect(pkt, len, s->slot_size, &info, &st);
	if (out == 0) {
		count_drop(s, DROP_RUNT, peer);
		return false;
	}
	s->counters.tlv_unknown += st.unknown;
	s->counters.tlv_malformed += st.malformed;
	s->iov[i].iov_len = out;
	if (st.cos && s->set.cos == STAMP_COS_APPLY)
		*ctllen += reply_class(s->ctl_out[k].buf + *ctllen, peer, st.cos_dscp1);
	om->tx_stamp = false;
	if (om->stateful && st.followup && u->txstamps) {
		/* Ask for this reply's transmit stamp: the next Follow-Up. */
		struct cmsghdr *c = (struct cmsghdr *)(void *)(s->ctl_out[k].buf + *ctllen);
		uint32_t flags = SOF_TIMESTAMPING_TX_SOFTWARE;
		memset(c, 0, STAMP_TX_SPACE);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SO_TIMESTAMPING;
		c->cmsg_len = CMSG_LEN(sizeof flags);
		memcpy(CMSG_DATA(c), &flags, sizeof flags);
		*ctllen += STAMP_TX_SPACE;
		om->tx_stamp = true;
	}
	return true;
}

/* ---- transmit stamps (stateful) ------------------------------------------------ */

static void txstamps_set(struct stamp_sock *u, bool on)
{
	int flags = 0;

	if (u->txstamps) {
		/* Off first, so that on again restarts the kernel's OPT_ID count
		 * at 0, which is what tx_next_key assumes. */
		setsockopt(listen_sock_fd(&u->ls), SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags);
		u->txstamps = false;
	}
	if (!on)
		return;
	flags = STAMP_TX_FLAGS;
	if (setsockopt(listen_sock_fd(&u->ls), SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0)
		u->txstamps = true;
	u->tx_next_key = 0;
	for (unsigned i = 0; i < STAMP_TX_RING; i++)
		u->ring[i].key = UINT32_MAX;
}

static void drain_errqueue(struct stamp_service *s, struct stamp_sock *u)
{
	for (unsigned round = 0; round < 8; round++) {
		for (unsigned i = 0; i < STAMP_ERRQ_BATCH; i++) {
			s->eq_iov[i].iov_base = s->eq_data[i];
			s->eq_iov[i].iov_len = sizeof s->eq_data[i];
			struct msghdr *h = &s->eq[i].msg_hdr;
			memset(h, 0, sizeof *h);
			h->msg_iov = &s->eq_iov[i];
			h->msg_iovlen = 1;
			h->msg_control = s->eq_ctl[i].buf;
			h->msg_controllen = sizeof s->eq_ctl[i].buf;
		}
		int n = recvmmsg(listen_sock_fd(&u->ls), s->eq, STAMP_ERRQ_BATCH, MSG_ERRQUEUE | MSG_DONTWAIT,
				 NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &s->eq[i].msg_hdr;
			struct sock_extended_err ee;
			if (!kstamp_ext_err(h, &ee) || ee.ee_origin != SO_EE_ORIGIN_TIMESTAMPING ||
			    ee.ee_info != SCM_TSTAMP_SND || !s->sess)
				continue;
			const struct tx_slot *slot = &u->ring[ee.ee_data % STAMP_TX_RING];
			uint64_t k = kstamp_tx_ns(h);
			if (slot->key != ee.ee_data || k == 0)
				continue;
			struct stamp_session *ss = stamp_sessions_at(s->sess, slot->sess, slot->gen);
			if (!ss)
				continue;
			ss->fu_valid = true;
			ss->fu_seq = slot->seq;
			ss->fu_ns = k;
			s->counters.tx_stamps++;
		}
		if ((unsigned)n < STAMP_ERRQ_BATCH)
			return;
	}
}

/* ---- batches ----------------------------------------------------------------- */

static bool send_would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
}

/* A reply handed to the kernel: count it, and in stateful mode remember
 * which session's Follow-Up its transmit stamp belongs to. */
static void sent_one(struct stamp_service *s, struct stamp_sock *u, unsigned j)
{
	const struct out_meta *om = &s->meta[j];
	s->counters.reflected++;
	s->counters.bytes_out += s->out[j].msg_len;
	if (om->is_short)
		s->counters.short_reflected++;
	if (!om->stateful || !s->sess)
		return;
	struct stamp_session *ss = stamp_sessions_at(s->sess, om->sess, om->gen);
	if (ss)
		ss->tx++;
	if (om->tx_stamp && u->txstamps) {
		uint32_t key = u->tx_next_key++;
		u->ring[key % STAMP_TX_RING] = (struct tx_slot){
			.key = key, .sess = om->sess, .gen = om->gen, .seq = om->seq,
		};
	}
}

static void stamp_send_batch(struct stamp_service *s, struct stamp_sock *u, unsigned k)
{
	/* T3: one read for the batch, right before it goes. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t t3 = stamp_ntp_from_ns(timespec_to_ns(&ts));
	for (unsigned j = 0; j < k; j++)
		stamp_set_t3(s->out[j].msg_hdr.msg_iov->iov_base, t3);

	unsigned off = 0;
	bool failed = false;
	while (off < k) {
		int r = sendmmsg(listen_sock_fd(&u->ls), s->out + off, k - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			for (unsigned j = off; j < off + (unsigned)r; j++)
				sent_one(s, u, j);
			off += (unsigned)r;
			continue;
		}
		int err = r < 0 ? errno : EAGAIN;
		if (err == EINTR)
			continue;
		failed = true;
		const struct sockaddr *peer = s->out[off].msg_hdr.msg_name;
		if (send_would_block(err)) {
			s->counters.drop_send += k - off - 1;
			count_drop(s, DROP_SEND, peer);   /* and one more */
			break;
		}
		s->counters.drop_send++;
		struct logline *l = ratelog_begin(s, &s->log_drop[DROP_SEND], LOG_INFO,
						  "send_error");
		log_addr(l, "peer", peer);
		log_errno(l, err);
		log_end(l);
		off++;
	}
	/* A failed send may or may not have used an OPT_ID key; restart the
	 * count rather than pin stamps on the wrong replies. */
	if (failed && u->txstamps) {
		drain_errqueue(s, u);
		txstamps_set(u, true);
	}
}

static void stamp_on_ready(struct io *io, uint32_t events)
{
	struct stamp_sock *u = container_of(io, struct stamp_sock, ls.io);
	struct stamp_service *s = container_of(u->ls.set, struct stamp_service, socks);
	unsigned nslots = s->nslots;

	/* The error queue holds the transmit stamps; epoll reports EPOLLERR
	 * whenever it is not empty, so it costs no system call otherwise. */
	if (events & EPOLLERR)
		drain_errqueue(s, u);
	clock_refresh(s, loop_now(s->loop));

	for (unsigned round = 0; round < STAMP_ROUNDS; round++) {
		for (unsigned i = 0; i < nslots; i++) {
			s->iov[i].iov_base = s->buf + (size_t)i * s->slot_size;
			s->iov[i].iov_len = s->slot_size;
			struct msghdr *m = &s->in[i].msg_hdr;
			m->msg_name = &s->names[i];
			m->msg_namelen = sizeof s->names[i];
			m->msg_iov = &s->iov[i];
			m->msg_iovlen = 1;
			m->msg_control = s->ctl_in[i].buf;
			m->msg_controllen = sizeof s->ctl_in[i].buf;
			m->msg_flags = 0;
		}
		int n = recvmmsg(listen_sock_fd(&u->ls), s->in, nslots, MSG_DONTWAIT, NULL);
		if (n < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			if (err != EAGAIN && err != EWOULDBLOCK) {
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
			if (!stamp_admit(s, u, i, k, &ctllen, now))
				continue;
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
			stamp_send_batch(s, u, k);
		if (s->rl)
			s->counters.rate_evictions = s->evictions_base + ratelimit_evictions(s->rl);
		if (s->sess) {
			const struct stamp_sess_counters *c = stamp_sessions_counters(s->sess);
			s->counters.sessions_active = c->active;
			s->counters.sessions_created = s->sess_base.created + c->created;
			s->counters.sessions_expired = s->sess_base.expired + c->expired;
		}
		if ((unsigned)n < nslots)
			return;
	}
}

/* ---- sockets ----------------------------------------------------------------- */

static struct listen_sock *sock_alloc(void)
{
	struct stamp_sock *u = calloc(1, sizeof *u);
	return u ? &u->ls : NULL;
}

static void sock_free(struct listen_sock *ls)
{
	free(container_of(ls, struct stamp_sock, ls));
}

static int setopt_int(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof v);
}

/* Receive stamps, TTL and TOS of every datagram, and TTL 255 on every
 * reply.  On an IPv6 socket the IPv4 options are for IPv4-mapped traffic
 * and best effort (an IPV6_V6ONLY socket refuses none of them, but has no
 * use for them either). */
static int sock_setup(struct listen_sock *ls)
{
	struct stamp_sock *u = container_of(ls, struct stamp_sock, ls);
	int fd = listen_sock_fd(ls);
	bool v6 = ls->bound.u.sa.sa_family == AF_INET6;

	if (setopt_int(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1) < 0)
		return -1;
	if (v6) {
		if (setopt_int(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) < 0 ||
		    setopt_int(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1) < 0 ||
		    setopt_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, STAMP_REPLY_TTL) < 0)
			return -1;
		setopt_int(fd, IPPROTO_IP, IP_RECVTTL, 1);
		setopt_int(fd, IPPROTO_IP, IP_RECVTOS, 1);
		setopt_int(fd, IPPROTO_IP, IP_TTL, STAMP_REPLY_TTL);
	} else if (setopt_int(fd, IPPROTO_IP, IP_RECVTTL, 1) < 0 ||
		   setopt_int(fd, IPPROTO_IP, IP_RECVTOS, 1) < 0 ||
		   setopt_int(fd, IPPROTO_IP, IP_TTL, STAMP_REPLY_TTL) < 0) {
		return -1;
	}
	if (reflect_endpoint_is_wildcard(&ls->bound)) {
		int r = v6 ? setopt_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
			   : setopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
		if (r < 0)
			return -1;
		u->pktinfo = true;
	}
	for (unsigned i = 0; i < STAMP_TX_RING; i++)
		u->ring[i].key = UINT32_MAX;
	return 0;
}

static const struct listen_ops sock_ops = {
	.service = "stamp",
	.type = SOCK_DGRAM,
	/* Only named ones: an unnamed datagram socket is the UDP echo's. */
	.adopt_only = STAMP_FD_NAME,
	.on_ready = stamp_on_ready,
	.alloc = sock_alloc,
	.free = sock_free,
	.setup = sock_setup,
};

/* ---- service ----------------------------------------------------------------- */

struct stamp_service *stamp_new(struct loop *loop, uint8_t *buf, size_t buflen)
{
	if (!buf || buflen == 0) {
		errno = EINVAL;
		return NULL;
	}
	struct stamp_service *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->loop = loop;
	s->buf = buf;
	s->slot_size = buflen < STAMP_SLOT_SIZE ? buflen : STAMP_SLOT_SIZE;
	size_t n = buflen / s->slot_size;
	s->nslots = n > STAMP_BATCH ? STAMP_BATCH : (unsigned)n;
	listen_set_init(&s->socks, &sock_ops, loop);
	return s;
}

const struct stamp_counters *stamp_counters(const struct stamp_service *s)
{
	return &s->counters;
}

static int settings_from_config(struct stamp_settings *set, const struct config_stamp *cfg)
{
	*set = (struct stamp_settings){
		.mode = cfg->mode,
		.short_requests = cfg->short_requests,
		.cos = cfg->class_of_service,
		.rate = cfg->rate_limit,
		.burst = cfg->rate_burst,
		.table_size = cfg->rate_table_size ? cfg->rate_table_size : 4096,
		.sessions = cfg->sessions ? cfg->sessions : 1024,
		.idle_ns = cfg->session_timeout_ns,
	};
	return acl_copy(&set->allow, &cfg->allow);
}

struct stamp_plan *stamp_prepare(struct stamp_service *s, const struct config_stamp *cfg,
				 struct sd_listen_set *inherited, char *err, size_t errlen)
{
	struct stamp_plan *p = calloc(1, sizeof *p);
	if (!p || settings_from_config(&p->set, cfg) < 0) {
		snprintf(err, errlen, "[stamp] out of memory");
		free(p);
		return NULL;
	}
	p->svc = s;
	listen_plan_init(&p->socks, &s->socks);
	/* Of the sockets systemd passed, only those named "stamp" are adopted
	 * (sock_ops.adopt_only). */
	if (listen_plan_from_config(&p->socks, cfg->enabled, cfg->listen, cfg->n_listen, 0,
				    true, inherited, err, errlen) < 0)
		goto fail;

	if (reflect_rate_prepare(&p->rl, s->rl, p->set.rate, p->set.burst, p->set.table_size,
				 "stamp", err, errlen) < 0)
		goto fail;
	/* Sessions survive a reload that keeps the mode and the table size. */
	if (p->set.mode == STAMP_STATEFUL) {
		if (s->sess && stamp_sessions_capacity(s->sess) == p->set.sessions) {
			p->sess = s->sess;
		} else {
			uint8_t seed[RATELIMIT_SEED_LEN];
			random_bytes(seed, sizeof seed);
			p->sess = stamp_sessions_new(p->set.sessions, p->set.idle_ns, seed);
			if (!p->sess) {
				snprintf(err, errlen, "[stamp] sessions %u: %s", p->set.sessions,
					 strerror(errno));
				goto fail;
			}
		}
	}
	return p;
fail:
	stamp_abort(p);
	return NULL;
}

void stamp_abort(struct stamp_plan *p)
{
	if (!p)
		return;
	listen_plan_abort(&p->socks);
	reflect_rate_abort(p->rl, p->svc->rl);
	if (p->sess && p->sess != p->svc->sess)
		stamp_sessions_free(p->sess);
	acl_free(&p->set.allow);
	free(p);
}

void stamp_commit(struct stamp_service *s, struct stamp_plan *p)
{
	listen_set_commit(&s->socks, &p->socks);

	acl_free(&s->set.allow);
	s->set = p->set;
	reflect_rate_commit(&s->rl, &s->evictions_base, p->rl, s->set.rate, s->set.burst);
	/* Transmit stamps still pending name sessions by index: a new table
	 * must not get the old table's stamps. */
	bool new_table = s->sess != p->sess;
	if (new_table && s->sess) {
		const struct stamp_sess_counters *c = stamp_sessions_counters(s->sess);
		s->sess_base.created += c->created;
		s->sess_base.expired += c->expired;
		stamp_sessions_free(s->sess);
	}
	s->sess = p->sess;
	if (s->sess)
		stamp_sessions_set_idle(s->sess, s->set.idle_ns);
	else
		s->counters.sessions_active = 0;

	bool stateful = s->set.mode == STAMP_STATEFUL;
	for (size_t i = 0; i < s->socks.n; i++) {
		struct listen_sock *ls = s->socks.v[i];
		struct stamp_sock *u = container_of(ls, struct stamp_sock, ls);
		/* Transmit stamps only where Follow-Up uses them: a stateless
		 * reflector would fill its error queue for nothing.  A mode
		 * change or a new table restarts the key count and empties the
		 * ring. */
		if (u->txstamps != stateful || ls->fresh || new_table)
			txstamps_set(u, stateful);
		if (!ls->fresh)
			continue;
		ls->fresh = false;      /* watched by the prepare */
		listen_sock_log(ls, "listen");
	}
	free(p);
}

void stamp_stop(struct stamp_service *s)
{
	listen_set_close_all(&s->socks);
}

void stamp_free(struct stamp_service *s)
{
	if (!s)
		return;
	stamp_stop(s);
	ratelimit_free(s->rl);
	stamp_sessions_free(s->sess);
	acl_free(&s->set.allow);
	free(s);
}
