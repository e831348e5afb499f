/* probe: see include/probe.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

const char *target_host(const struct target *t)
{
	const char *name = target_name(t);

	return name + strlen(name) + 1;
}

const char *target_ifname(const struct target *t)
{
	const char *host;

	if (!(t->flags & TARGET_IFNAME))
		return NULL;
	host = target_host(t);
	return host + strlen(host) + 1;
}

const char *target_labels(const struct target *t)
{
	const char *before;

	if (!(t->flags & TARGET_LABELS))
		return NULL;
	before = t->flags & TARGET_IFNAME ? target_ifname(t) : target_host(t);
	return before + strlen(before) + 1;
}

size_t target_strings_end(const struct target *t)
{
	const char *last = t->flags & TARGET_LABELS ? target_labels(t)
			   : t->flags & TARGET_IFNAME ? target_ifname(t) : target_host(t);

	return (size_t)(last - (const char *)t) + strlen(last) + 1;
}

void probe_init(struct target *t, uint8_t index, uint8_t family, const union inet_sa *addr)
{
	struct probe *pr = &t->probes[index];

	memset(pr, 0, sizeof *pr);
	pr->index = index;
	pr->family = family;
	if (addr)
		pr->addr = *addr;
	pr->id = UINT32_MAX;
	pr->send_due = PROBE_IDLE;
	wheel_node_init(&pr->node);
	seqmap_chain_init(&pr->chain);
	health_init(&pr->health);
	stats_init(&pr->stats);
}

void probe_fini(struct probe *pr)
{
	free(pr->errs);
	pr->errs = NULL;
}

/* The error block, made at the first error.  NULL when there is no memory
 * for it: the error still counts in stats (errors, lost), only its reason
 * and its log line are lost. */
static struct probe_errors *probe_errs(struct probe *pr)
{
	if (!pr->errs)
		pr->errs = calloc(1, sizeof *pr->errs);
	return pr->errs;
}

const char *probe_sock_kind(const struct probe_sock *s)
{
	return s->raw ? "raw" : "dgram";
}

struct logline *probe_log(const struct probe *pr, enum log_level lvl, const char *event)
{
	struct logline *l = log_begin(lvl, event);

	if (l) {
		log_str(l, "target", target_name(probe_target(pr)));
		if (pr->family)
			log_int(l, "family", pr->family);
		/* An unresolved probe has no address yet: addr= stays empty. */
		log_addr(l, "addr", probe_resolved(pr) ? &pr->addr.sa : NULL);
	}
	return l;
}

void probe_ignored(struct probe_ctx *c, enum view_ignored why, const char *detail)
{
	struct logline *l;

	c->ignored[why]++;
	c->ignored_total++;
	l = log_begin(LOG_DEBUG, "ignored");
	log_str(l, "reason", view_ignored_name(why));
	if (detail)
		log_str(l, "detail", detail);
	log_end(l);
}

/* ---- outcomes ------------------------------------------------------------- */

/* What the hooks see of a probe: the probe itself, behind a type of its own. */
static const struct view_probe_src *probe_src(const struct probe *pr)
{
	return (const struct view_probe_src *)(const void *)pr;
}

static const struct probe *src_probe(const struct view_probe_src *src)
{
	return (const struct probe *)(const void *)src;
}

struct view_probe_key view_probe_key(const struct view_probe_src *src)
{
	const struct probe *pr = src_probe(src);

	return (struct view_probe_key){
		.target = target_name(probe_target(pr)),
		.host = target_host(probe_target(pr)),
		.family = pr->family,
	};
}

uint8_t view_probe_family(const struct view_probe_src *src)
{
	return src_probe(src)->family;
}

/* The hooks' slot of a probe, or NULL when its outcomes go to no hook:
 * only targets that keep a history are reported (the history is the one
 * listener; the others cost it nothing, not even an entry). */
static void **hook_slot(struct probe_ctx *c, const struct probe *pr)
{
	if (!c->hook_slots || pr->id >= c->n_slots || !probe_target(pr)->opts->history)
		return NULL;
	return &c->hook_slots[pr->id];
}

/* Feed one resolved request to the up/down state machine.  Outcomes are
 * taken in send order: a timeout resolves only after `timeout`, often after
 * the reply to a newer request, and that older news must not reset the run
 * of consecutive replies (nor an old reply end a run of newer losses). */
static void probe_health(struct probe_ctx *c, struct probe *pr, bool ok, uint64_t rtt_ns,
			 uint64_t send_ns)
{
	const struct probe_opts *o = probe_target(pr)->opts;
	const struct pinger_hooks *h = &c->hooks;
	struct health_change ch;
	struct logline *l;

	if (send_ns < pr->health_send_ns)
		return;
	pr->health_send_ns = send_ns;
	ch = health_update(&pr->health, ok, o->down_after, o->up_after);
	if (!ch.changed)
		return;
	pr->state_changes++;
	pr->state_since_s = (uint32_t)(wall_ns() / NSEC_PER_SEC);
	l = probe_log(pr, ch.to == HEALTH_UP ? LOG_NOTICE : LOG_WARNING, "state");
	log_str(l, "from", health_state_name(ch.from));
	log_str(l, "to", health_state_name(ch.to));
	if (ch.to == HEALTH_UP) {
		log_u64(l, "received", ch.run);
		log_fixed(l, "rtt_ms", rtt_ns, NSEC_PER_MSEC, 3);
	} else {
		log_u64(l, "lost", ch.run);
	}
	log_u64(l, "total_sent", pr->stats.run.c.sent);
	log_u64(l, "total_lost", pr->stats.run.c.lost);
	log_end(l);
	void **slot = h->on_state ? hook_slot(c, pr) : NULL;
	if (slot)
		h->on_state(h->arg, slot, probe_src(pr), c->io->now(c), ch.from, ch.to);
}

/* Tell the hook (the history) about one resolved request. */
static void probe_notify(struct probe_ctx *c, struct probe *pr, uint64_t rtt_ns)
{
	const struct pinger_hooks *h = &c->hooks;
	void **slot = h->on_outcome ? hook_slot(c, pr) : NULL;

	if (slot)
		h->on_outcome(h->arg, slot, probe_src(pr), c->io->now(c), rtt_ns);
}

static void probe_lost(struct probe_ctx *c, struct probe *pr, uint64_t send_ns)
{
	stats_lost(&pr->stats);
	probe_health(c, pr, false, 0, send_ns);
	probe_notify(c, pr, STATS_NO_RTT);
}

/* A reply in time: the counters, the variation sum, the histogram. */
static void probe_received(struct probe_ctx *c, struct probe *pr, uint64_t rtt_ns,
			   uint64_t send_ns)
{
	uint64_t prev = pr->stats.last_rtt_ns;

	if (prev != STATS_NO_RTT)
		pr->rtt_var_sum_ns += rtt_ns > prev ? rtt_ns - prev : prev - rtt_ns;
	stats_received(&pr->stats, rtt_ns);
	if (probe_target(pr)->hist) {
		/* The first bound >= rtt (Prometheus' le), or +Inf. */
		uint32_t lo = 0, hi = c->rtt_n;

		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (c->rtt_le_ns[mid] < rtt_ns)
				lo = mid + 1;
			else
				hi = mid;
		}
		probe_target(pr)->hist[(size_t)pr->index * (c->rtt_n + 1) + lo]++;
	}
	probe_health(c, pr, true, rtt_ns, send_ns);
	probe_notify(c, pr, rtt_ns);
}

static enum view_send_err send_err_group(int err)
{
	switch (err) {
	case EHOSTUNREACH: case ENETUNREACH: case EHOSTDOWN: case ENETDOWN:
		return VIEW_SEND_UNREACHABLE;
	case EMSGSIZE:
		return VIEW_SEND_TOO_BIG;
	case ENOBUFS: case EAGAIN:
		return VIEW_SEND_NO_BUFFER;
	case EPERM: case EACCES:
		return VIEW_SEND_PERMISSION;
	case ENOTCONN:
		return VIEW_SEND_NO_SOCKET;
	default:
		return VIEW_SEND_OTHER;
	}
}

static enum view_icmp_err icmp_err_group(enum icmp_reason r)
{
	switch (r) {
	case ICMP_REASON_NET_UNREACHABLE: case ICMP_REASON_HOST_UNREACHABLE:
	case ICMP_REASON_PROTOCOL_UNREACHABLE: case ICMP_REASON_PORT_UNREACHABLE:
	case ICMP_REASON_NET_UNKNOWN: case ICMP_REASON_HOST_UNKNOWN:
	case ICMP_REASON_NO_ROUTE: case ICMP_REASON_BEYOND_SCOPE:
	case ICMP_REASON_ADDRESS_UNREACHABLE: case ICMP_REASON_SOURCE_ROUTE_FAILED:
	case ICMP_REASON_UNREACHABLE:
		return VIEW_ICMP_UNREACHABLE;
	case ICMP_REASON_ADMIN_PROHIBITED: case ICMP_REASON_SOURCE_POLICY:
	case ICMP_REASON_REJECT_ROUTE:
		return VIEW_ICMP_PROHIBITED;
	case ICMP_REASON_FRAG_NEEDED: case ICMP_REASON_PACKET_TOO_BIG:
		return VIEW_ICMP_TOO_BIG;
	case ICMP_REASON_TTL_EXCEEDED: case ICMP_REASON_REASSEMBLY_TIMEOUT:
		return VIEW_ICMP_TIME_EXCEEDED;
	default:
		return VIEW_ICMP_OTHER;
	}
}

uint64_t probe_send_errors(const struct probe *pr, enum view_send_err e)
{
	return pr->errs && (unsigned)e < VIEW_SEND_COUNT_ ? pr->errs->send[e] : 0;
}

uint64_t probe_icmp_errors(const struct probe *pr, enum view_icmp_err e)
{
	uint64_t other = pr->stats.run.c.errors;

	if (!pr->errs)
		return e < VIEW_ICMP_OTHER ? 0 : other;
	if (e < VIEW_ICMP_OTHER)
		return pr->errs->icmp[e];
	/* errors counts every ICMP error and every failed send. */
	for (int i = 0; i < VIEW_SEND_COUNT_; i++)
		other -= pr->errs->send[i];
	for (int i = 0; i < VIEW_ICMP_OTHER; i++)
		other -= pr->errs->icmp[i];
	return other;
}

/* ---- the wheel ------------------------------------------------------------ */

/* When pr must next be looked at: its next send, or the timeout of its
 * oldest request in flight if that comes first.  Requests expire in send
 * order (a probe's timeout is constant), so the oldest one is enough. */
static uint64_t probe_wake_time(const struct probe_ctx *c, const struct probe *pr)
{
	uint64_t wake = c->stopped ? PROBE_IDLE : pr->send_due;
	int head = seqmap_front(&pr->chain);

	if (head >= 0) {
		uint64_t tmo = seqmap_get(pr->sock->map, (uint16_t)head).send_ns +
			       probe_target(pr)->opts->timeout_ns;

		if (tmo < wake)
			wake = tmo;
	}
	return wake;
}

void probe_resched(struct probe_ctx *c, struct probe *pr)
{
	uint64_t wake = probe_wake_time(c, pr);

	if (wheel_linked(&pr->node) && wake == pr->node.wake)
		return;
	wheel_del(&c->wheel, &pr->node);
	if (wake == PROBE_IDLE)
		return;
	wheel_add(&c->wheel, &pr->node, wake);
	c->io->wake_at(c, wake);
}

void probe_send_at(struct probe_ctx *c, struct probe *pr, uint64_t due)
{
	pr->send_due = due;
	probe_resched(c, pr);
}

void probe_unlink(struct probe_ctx *c, struct probe *pr)
{
	wheel_del(&c->wheel, &pr->node);
}

/* After a reply or an error resolved a request: unlink resolved entries
 * from the chain's head; the probe's wake time follows its new oldest
 * request (usually: back to its next send). */
static void settle_head(struct probe_ctx *c, struct probe *pr)
{
	int head;
	bool popped = false;

	while ((head = seqmap_front(&pr->chain)) >= 0 &&
	       seqmap_get(pr->sock->map, (uint16_t)head).state != SEQ_OUTSTANDING) {
		seqmap_pop(pr->sock->map, &pr->chain);
		popped = true;
	}
	if (popped)
		probe_resched(c, pr);
}

/* ---- sending -------------------------------------------------------------- */

static void send_failed(struct probe_ctx *c, struct probe *pr, int err, uint64_t t0)
{
	uint64_t suppressed = 0;
	struct probe_errors *pe = probe_errs(pr);

	stats_send_failed(&pr->stats);
	if (pe)
		pe->send[send_err_group(err)]++;
	probe_health(c, pr, false, 0, t0);
	probe_notify(c, pr, STATS_NO_RTT);
	if (pr->sock == NULL)
		return; /* logged once when the probe was degraded */
	if (pe && log_rate_due(&pe->rate, t0, PROBE_ERR_LOG_PERIOD_NS, &suppressed)) {
		struct logline *l = probe_log(pr, LOG_WARNING, "send_error");

		log_errno(l, err);
		log_u64(l, "suppressed", suppressed);
		log_end(l);
	}
}

static void probe_send(struct probe_ctx *c, struct probe *pr, uint64_t now, uint64_t deadline)
{
	struct probe_sock *s = pr->sock;
	uint64_t t0 = now;
	int seq, err;

	if (s == NULL) {
		send_failed(c, pr, ENOTCONN, now);
		return;
	}
	seq = seqmap_reserve(s->map, pr->id, now);
	if (seq < 0) {
		send_failed(c, pr, EBUSY, c->io->now(c));
		return;
	}
	err = c->io->send(c, pr, (uint16_t)seq, deadline, &t0);
	if (err) {
		seqmap_release(s->map, (uint16_t)seq);
		send_failed(c, pr, err, t0);
		return;
	}
	stats_sent(&pr->stats);
	seqmap_commit(s->map, &pr->chain, (uint16_t)seq, t0);
}

/* Requests whose timeout has passed are lost, oldest first. */
static void probe_expire(struct probe_ctx *c, struct probe *pr, uint64_t now)
{
	uint64_t timeout = probe_target(pr)->opts->timeout_ns;
	int head;

	while ((head = seqmap_front(&pr->chain)) >= 0) {
		uint64_t sent = seqmap_get(pr->sock->map, (uint16_t)head).send_ns;

		if (sent + timeout > now)
			break;
		if (seqmap_pop(pr->sock->map, &pr->chain) == SEQ_OUTSTANDING) {
			struct logline *l = probe_log(pr, LOG_DEBUG, "timeout");

			log_int(l, "seq", head);
			log_end(l);
			probe_lost(c, pr, sent);
		}
	}
}

struct run_arg {
	struct probe_ctx *c;
	uint64_t now;
};

/* pr's wake time came: expire what timed out, send if the send is due. */
static void probe_wake(struct wheel_node *n, void *arg)
{
	struct probe *pr = container_of(n, struct probe, node);
	struct run_arg *a = arg;
	struct probe_ctx *c = a->c;
	uint64_t now = a->now;

	probe_expire(c, pr, now);
	if (!c->stopped && pr->send_due <= now) {
		uint64_t iv = probe_target(pr)->opts->interval_ns, due = pr->send_due, next = due + iv;

		/* Absolute deadlines: the schedule never drifts.  If the loop
		 * was stalled past whole intervals, skip them instead of
		 * bursting. */
		if (next <= now)
			next += ((now - next) / iv + 1) * iv;
		pr->send_due = next;
		probe_send(c, pr, now, due);
	}
	probe_resched(c, pr);
}

void probe_run(struct probe_ctx *c, uint64_t now)
{
	struct run_arg a = { c, now };

	wheel_run(&c->wheel, now, probe_wake, &a);
}

/* ---- receiving ------------------------------------------------------------ */

/* The probe request seq of s belongs to, or NULL (counted as ignored). */
static struct probe *probe_of(struct probe_ctx *c, struct probe_sock *s, uint16_t ident,
			      uint16_t seq, struct seqmap_info *e, const char *detail)
{
	struct probe *pr;

	if (ident != s->ident) {
		probe_ignored(c, VIEW_IGN_IDENT, detail);
		return NULL;
	}
	*e = seqmap_get(s->map, seq);
	if (e->state == SEQ_FREE || e->state == SEQ_RESERVED || e->state == SEQ_DEAD ||
	    e->probe >= c->n_slots || (pr = c->slots[e->probe]) == NULL || pr->sock != s) {
		probe_ignored(c, VIEW_IGN_SEQ, detail);
		return NULL;
	}
	return pr;
}

static void log_icmp_error(struct probe *pr, const union inet_sa *from,
			   enum icmp_reason reason, uint16_t seq, uint32_t mtu, uint64_t now)
{
	uint64_t suppressed = 0;
	struct probe_errors *pe = probe_errs(pr);
	struct logline *l;

	if (!pe || !log_rate_due(&pe->rate, now, PROBE_ERR_LOG_PERIOD_NS, &suppressed))
		return;
	l = probe_log(pr, LOG_WARNING, "icmp_error");
	if (from)
		log_addr(l, "from", &from->sa);
	log_str(l, "reason", icmp_reason_name(reason));
	log_u64(l, "seq", seq);
	if (mtu)
		log_u64(l, "mtu", mtu);
	log_u64(l, "suppressed", suppressed);
	log_end(l);
}

/* Does raw address bytes (4 or 16) name the probe's target? */
static bool addr_bytes_equal(const union inet_sa *a, const uint8_t *bytes)
{
	if (a->sa.sa_family == AF_INET)
		return memcmp(&a->in4.sin_addr, bytes, 4) == 0;
	return memcmp(&a->in6.sin6_addr, bytes, 16) == 0;
}

void probe_on_error(struct probe_ctx *c, struct probe_sock *s, uint16_t ident, uint16_t seq,
		    const uint8_t *orig_dst, const union inet_sa *from,
		    enum icmp_reason reason, uint32_t mtu)
{
	struct seqmap_info e;
	struct probe *pr = probe_of(c, s, ident, seq, &e, "icmp-error");

	if (!pr)
		return;
	if (!addr_bytes_equal(&pr->addr, orig_dst)) {
		probe_ignored(c, VIEW_IGN_SOURCE, "icmp-error");
		return;
	}
	stats_error(&pr->stats);
	if (icmp_err_group(reason) != VIEW_ICMP_OTHER && probe_errs(pr))
		pr->errs->icmp[icmp_err_group(reason)]++;
	log_icmp_error(pr, from, reason, seq, mtu, c->io->now(c));
	/* The request will not be answered: count the loss now rather than at
	 * its timeout, so the state reacts at once. */
	if (seqmap_resolve(s->map, seq, SEQ_LOST) == SEQ_OUTSTANDING) {
		probe_lost(c, pr, e.send_ns);
		settle_head(c, pr);
	}
}

/* A reply to a request already resolved: late (it was lost) or a duplicate. */
static void reply_after(struct probe_ctx *c, struct probe *pr, uint16_t seq,
			enum seqmap_state was, uint64_t rtt, uint64_t send_ns)
{
	struct logline *l;

	if (was == SEQ_OUTSTANDING || was == SEQ_LOST) {
		if (was == SEQ_OUTSTANDING) {
			probe_lost(c, pr, send_ns);
			settle_head(c, pr);
		}
		seqmap_mark_late(pr->sock->map, seq);
		stats_late(&pr->stats);
		l = probe_log(pr, LOG_DEBUG, "late");
		log_u64(l, "seq", seq);
		log_fixed(l, "rtt_ms", rtt, NSEC_PER_MSEC, 3);
		log_end(l);
	} else if (was == SEQ_ANSWERED || was == SEQ_LATE) {
		stats_duplicate(&pr->stats);
		l = probe_log(pr, LOG_DEBUG, "duplicate");
		log_u64(l, "seq", seq);
		log_end(l);
	}
}

static void probe_on_reply(struct probe_ctx *c, struct probe_sock *s, const struct icmp_msg *m,
			   const union inet_sa *from, uint64_t rx_ns)
{
	struct seqmap_info e;
	struct probe *pr = probe_of(c, s, m->ident, m->seq, &e, NULL);
	uint64_t rtt, timeout;
	enum seqmap_state was;

	if (!pr)
		return;
	if (!inet_sa_same_addr(&pr->addr, from)) {
		probe_ignored(c, VIEW_IGN_SOURCE, NULL);
		return;
	}
	if (!icmp_payload_has_cookie(m, probe_target(pr)->opts->payload_size, c->cookie)) {
		probe_ignored(c, VIEW_IGN_COOKIE, NULL);
		return;
	}
	if (m->payload_len != probe_target(pr)->opts->payload_size) {
		probe_ignored(c, VIEW_IGN_LENGTH, NULL);
		return;
	}
	/* A receive time before the send time means the kernel's stamp
	 * (CLOCK_REALTIME) was converted across a step of the wall clock: the
	 * reply waited in the socket while the clock was set forward.  The
	 * time now is the best bound left: late by the wait, never early. */
	if (rx_ns < e.send_ns)
		rx_ns = c->io->now(c);
	rtt = rx_ns > e.send_ns ? rx_ns - e.send_ns : 0;
	timeout = probe_target(pr)->opts->timeout_ns;
	/* A reply that arrives after its timeout is late even if the timeout
	 * has not been processed yet: the outcome must not depend on order. */
	was = seqmap_resolve(s->map, m->seq, rtt > timeout ? SEQ_LOST : SEQ_ANSWERED);
	if (was != SEQ_OUTSTANDING || rtt > timeout) {
		reply_after(c, pr, m->seq, was, rtt, e.send_ns);
		return;
	}
	if (probe_target(pr)->opts->log_replies) {
		struct logline *l = probe_log(pr, LOG_INFO, "reply");

		log_u64(l, "seq", m->seq);
		log_fixed(l, "rtt_ms", rtt, NSEC_PER_MSEC, 3);
		log_end(l);
	}
	probe_received(c, pr, rtt, e.send_ns);
	settle_head(c, pr);
}

void probe_on_datagram(struct probe_ctx *c, struct probe_sock *s, const uint8_t *buf,
		       size_t len, const union inet_sa *from, uint64_t rx_ns)
{
	struct icmp_msg m;
	enum icmp_status st;

	if (s->family == 4)
		st = icmp4_decode(buf, len, s->raw, s->raw, &m);
	else
		st = icmp6_decode(buf, len, &m);
	if (st != ICMP_OK) {
		probe_ignored(c, st == ICMP_UNSOLICITED ? VIEW_IGN_UNSOLICITED : VIEW_IGN_DECODE,
			      icmp_status_name(st));
		return;
	}
	if (m.kind == ICMP_KIND_ECHO_REPLY)
		probe_on_reply(c, s, &m, from, rx_ns);
	else
		probe_on_error(c, s, m.ident, m.seq, m.orig_dst, from, m.reason, m.mtu);
}

void probe_on_tx_stamp(struct probe_ctx *c, struct probe_sock *s, uint16_t seq, uint64_t tx_ns)
{
	struct seqmap_info e = seqmap_get(s->map, seq);

	/* The stamp must follow the user-space send time closely; anything
	 * else means the key mapping is off, and the user time stays. */
	if (e.state == SEQ_OUTSTANDING && tx_ns >= e.send_ns &&
	    tx_ns - e.send_ns < PROBE_TX_STAMP_MAX_NS) {
		seqmap_set_send_ns(s->map, seq, tx_ns);
		c->tx_stamped++;
	}
}
