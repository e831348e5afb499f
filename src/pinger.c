/*
 * pinger: ICMP/ICMPv6 health pings.  See include/pinger.h for the contract,
 * include/pinger_int.h for how the pinger's files divide the work, and
 * README "ICMP health pings" for the behaviour and the log keys.
 *
 * This file holds the struct and its lifecycle, and the glue: it hands
 * the probes (probe.c) a send function that builds the request and sends
 * it on the probe's socket (icmp_sock.c), feeds them what the sockets
 * read, and runs the send wheel from one loop timer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pinger_int.h"
#include "send_sched.h"

/* ---- shared settings ---------------------------------------------------- */

static bool opts_equal(const struct probe_opts *a, const struct probe_opts *b)
{
	return a->interval_ns == b->interval_ns && a->timeout_ns == b->timeout_ns &&
	       a->summary_interval_ns == b->summary_interval_ns &&
	       a->payload_size == b->payload_size && a->ttl == b->ttl && a->tos == b->tos &&
	       a->dont_fragment == b->dont_fragment &&
	       a->down_after == b->down_after && a->up_after == b->up_after &&
	       a->log_replies == b->log_replies &&
	       a->resolve_interval_ns == b->resolve_interval_ns;
}

static uint64_t opts_hash(const struct probe_opts *o)
{
	const uint64_t v[] = {
		o->interval_ns, o->timeout_ns, o->summary_interval_ns, o->resolve_interval_ns,
		(uint64_t)o->payload_size << 32 | o->ttl << 24 | o->tos << 16 |
			(uint64_t)o->dont_fragment << 1 | o->log_replies,
		(uint64_t)o->down_after << 32 | o->up_after,
	};
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		h = (h ^ v[i]) * 1099511628211ULL;
	return h;
}

/* A reference to the shared copy of o, made on first use; NULL when out of
 * memory.  The list is short in practice (one entry per distinct
 * combination of settings); the hash keeps even 10 000 distinct ones
 * quick to search. */
const struct probe_opts *opts_get(struct pinger *p, const struct probe_opts *o)
{
	uint64_t h = opts_hash(o);
	struct opts_node *n;

	for (n = p->opts; n; n = n->next)
		if (n->hash == h && opts_equal(&n->o, o))
			break;
	if (!n) {
		n = malloc(sizeof *n);
		if (!n)
			return NULL;
		n->o = *o;
		n->hash = h;
		n->refs = 0;
		n->next = p->opts;
		p->opts = n;
	}
	n->refs++;
	return &n->o;
}

void opts_put(struct pinger *p, const struct probe_opts *o)
{
	struct opts_node **np;

	if (!o)
		return;
	for (np = &p->opts; *np; np = &(*np)->next) {
		struct opts_node *n = *np;

		if (&n->o != o)
			continue;
		if (--n->refs == 0) {
			*np = n->next;
			free(n);
		}
		return;
	}
}

void target_free(struct pinger *p, struct target *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n_probes && p->pc.hook_slots; i++) {
		uint32_t id = t->probes[i].id;

		if (id < p->pc.n_slots && p->pc.hook_slots[id]) {
			if (p->pc.hooks.on_gone)
				p->pc.hooks.on_gone(p->pc.hooks.arg, &p->pc.hook_slots[id]);
			p->pc.hook_slots[id] = NULL;
		}
	}
	for (uint32_t i = 0; i < t->n_probes; i++)
		probe_fini(&t->probes[i]);
	opts_put(p, t->opts);
	free(t->hist);
	free(t);
}

/* ---- what the probes ask for -------------------------------------------- */

static int pinger_send(struct probe_ctx *c, struct probe *pr, uint16_t seq, uint64_t deadline,
		       uint64_t *t0)
{
	struct pinger *p = container_of(c, struct pinger, pc);
	struct psock *s = container_of(pr->sock, struct psock, ps);
	uint32_t payload = probe_target(pr)->opts->payload_size;

	if (p->tx_len == 0 || p->tx_family != s->ps.family || p->tx_payload != payload) {
		p->tx_len = icmp_echo_encode(s->ps.family, p->txbuf,
					     ICMP_ECHO_HDR_LEN + ICMP_MAX_PAYLOAD, 0, 0,
					     p->pc.cookie, payload);
		p->tx_family = s->ps.family;
		p->tx_payload = payload;
		p->tx_base = icmp_echo_base(p->txbuf, p->tx_len);
	}
	icmp_echo_set_seq(s->ps.family, p->txbuf, p->tx_base, s->ps.ident, seq);
	/* The send time is taken as late as user space can: right before the
	 * system call.  It never travels in the packet. */
	*t0 = mono_ns();
	lateness_note(&p->late, deadline, *t0);
	return icmp_sock_send(&s->sock, p->txbuf, p->tx_len, &pr->addr, seq);
}

static void pinger_wake_at(struct probe_ctx *c, uint64_t wake)
{
	struct pinger *p = container_of(c, struct pinger, pc);

	/* Re-arming an armed timer never fails; arming the idle one needs a
	 * place in the loop's heap, which every reload's prepare reserves
	 * (loop_timer_reserve) for each timer the pinger owns. */
	if (!timer_armed(&p->wheel_timer) || wake < p->wheel_timer.deadline)
		loop_timer_arm(p->loop, &p->wheel_timer, wake);
}

static uint64_t pinger_clock(struct probe_ctx *c)
{
	(void)c;
	return mono_ns();
}

static const struct probe_io pinger_io = { pinger_send, pinger_wake_at, pinger_clock };

static void on_wheel_timer(struct timer *tm)
{
	struct pinger *p = container_of(tm, struct pinger, wheel_timer);
	uint64_t now = loop_now(p->loop), next;

	probe_run(&p->pc, now);
	/* Armed for the earliest wake time found in the coming ticks, so
	 * nothing fires early and nothing is late by design. */
	next = wheel_next(&p->pc.wheel, now);
	if (next != UINT64_MAX)
		loop_timer_arm(p->loop, &p->wheel_timer, next);
}

uint64_t probe_grid_up(const struct pinger *p, const struct probe *pr, uint64_t t)
{
	return send_grid_up(t, send_grid_for(p->grid_ns, probe_target(pr)->opts->interval_ns));
}

/* ---- sockets ------------------------------------------------------------ */

static void on_sock_event(struct icmp_sock *is, const struct icmp_sock_event *ev)
{
	struct psock *s = container_of(is, struct psock, sock);
	struct probe_ctx *c = &s->p->pc;

	switch (ev->kind) {
	case ICMP_EV_DATAGRAM:
		probe_on_datagram(c, &s->ps, ev->buf, ev->len, ev->from, ev->rx_ns);
		break;
	case ICMP_EV_TRUNCATED:
		probe_ignored(c, VIEW_IGN_DECODE, "truncated");
		break;
	case ICMP_EV_ERROR:
		probe_on_error(c, &s->ps, ev->ident, ev->seq, ev->orig_dst, ev->from,
			       ev->reason, ev->mtu);
		break;
	case ICMP_EV_ERROR_SHORT:
		probe_ignored(c, VIEW_IGN_DECODE, "errqueue");
		break;
	case ICMP_EV_TX_STAMP:
		probe_on_tx_stamp(c, &s->ps, ev->seq, ev->tx_ns);
		break;
	}
}

/* Open a socket for k and its sequence map; it is in the loop at once
 * (harmless before commit: nobody sends on it; psock_close undoes it). */
struct psock *psock_open(struct pinger *p, const struct icmp_sock_key *k, char *err,
			 size_t errlen, enum icmp_open_fail *why)
{
	struct psock *s = calloc(1, sizeof *s);

	*why = ICMP_OPEN_FAIL_OTHER;
	if (!s || !(s->ps.map = seqmap_new(NSEC_PER_SEC))) {
		free(s);
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (k->kind != ICMP_SOCKET_DGRAM && p->next_raw_ident == 0)
		p->next_raw_ident = (uint16_t)(random_u64() | 1);
	if (icmp_sock_open(&s->sock, p->loop, k, p->next_raw_ident, &p->rx, on_sock_event,
			   err, errlen, why) < 0) {
		seqmap_free(s->ps.map);
		free(s);
		return NULL;
	}
	if (s->sock.raw)
		p->next_raw_ident++;
	s->p = p;
	s->ps.ident = s->sock.ident;
	s->ps.family = k->family;
	s->ps.raw = s->sock.raw;
	icmp_sock_rcvbuf(&s->sock, RCVBUF_MIN);
	return s;
}

static void psock_free(struct deferred *d)
{
	struct psock *s = container_of(d, struct psock, defer);

	seqmap_free(s->ps.map);
	icmp_sock_release(&s->sock);
	free(s);
}

/* Freed after the batch: a reload (a signal callback) may close a socket
 * whose own event is still queued behind it in the same batch. */
void psock_close(struct pinger *p, struct psock *s)
{
	icmp_sock_close(p->loop, &s->sock);
	loop_free_later(p->loop, &s->defer, psock_free);
}

/* ---- lifecycle ------------------------------------------------------------ */

struct pinger *pinger_new(struct loop *loop)
{
	struct pinger *p = calloc(1, sizeof *p);
	uint8_t *rxbuf;
	size_t slot, n;

	if (!p)
		return NULL;
	p->loop = loop;
	p->txbuf = malloc(ICMP_ECHO_HDR_LEN + ICMP_MAX_PAYLOAD);
	if (!p->txbuf || icmp_rx_prepare(&p->rx, 56, &rxbuf, &slot, &n) < 0) {
		free(p->txbuf);
		free(p);
		return NULL;
	}
	icmp_rx_install(&p->rx, rxbuf, slot, n);
	p->pc.io = &pinger_io;
	/* Raw sockets see every reply on the host; the cookie tells ours from
	 * another beacond's whose ident happens to collide. */
	p->pc.cookie = random_u64();
	wheel_init(&p->pc.wheel, SEND_GRID_MIN_NS, loop_now(loop));
	timer_init(&p->wheel_timer, on_wheel_timer);
	p->grid_ns = SEND_GRID_MIN_NS;
	return p;
}

/* The slots live in an array by probe id, made here and grown with the
 * ids at each prepare, so a probe costs nothing for them while no hook is
 * set.  Set hooks before the first reload (the array then starts empty);
 * set later, out of memory, they stay off (logged). */
void pinger_set_hooks(struct pinger *p, const struct pinger_hooks *hooks)
{
	if (!hooks || !hooks->on_outcome) {
		memset(&p->pc.hooks, 0, sizeof p->pc.hooks);
		return;
	}
	if (!p->pc.hook_slots) {
		p->pc.hook_slots = calloc(p->cap_slots ? p->cap_slots : 1, sizeof *p->pc.hook_slots);
		if (!p->pc.hook_slots) {
			log_msg(LOG_ERR, "hooks", "out of memory: probe outcomes are not reported");
			return;
		}
	}
	p->pc.hooks = *hooks;
}

void pinger_counts(const struct pinger *p, struct pinger_counts *out)
{
	memset(out, 0, sizeof *out);
	if (!p)
		return;
	for (size_t i = 0; i < p->n_targets; i++) {
		const struct target *t = p->targets[i];

		for (uint32_t j = 0; j < t->n_probes; j++) {
			out->probes++;
			if (!probe_resolved(&t->probes[j])) {
				out->unknown++;
				out->unresolved++;
				continue;
			}
			switch (t->probes[j].health.state) {
			case HEALTH_UP: out->up++; break;
			case HEALTH_DOWN: out->down++; break;
			default: out->unknown++; break;
			}
		}
	}
}

void pinger_stop(struct pinger *p)
{
	if (!p)
		return;
	p->pc.stopped = true;
	/* Replies to requests in flight are still matched until exit; names
	 * are not looked up any more. */
	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = p->targets[i];

		target_resolve_stop(p, t);
		/* No more sends: only the timeouts of requests in flight keep
		 * a probe on the wheel. */
		for (uint32_t j = 0; j < t->n_probes; j++)
			probe_resched(&p->pc, &t->probes[j]);
	}
	if (p->pc.wheel.count == 0)
		loop_timer_cancel(p->loop, &p->wheel_timer);
	for (struct group *g = p->groups; g; g = g->next)
		loop_timer_cancel(p->loop, &g->timer);
}

void pinger_free(struct pinger *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = p->targets[i];

		target_resolve_stop(p, t);
		for (uint32_t j = 0; j < t->n_probes; j++)
			probe_unlink(&p->pc, &t->probes[j]);
		target_free(p, t);
	}
	free(p->targets);
	/* Every lookup was cancelled above: no callback reaches a freed target. */
	resolver_free(p->resolver);
	free(p->dns_servers);
	while (p->socks) {
		struct psock *s = p->socks;

		p->socks = s->next;
		psock_close(p, s);
	}
	while (p->groups) {
		struct group *g = p->groups;

		p->groups = g->next;
		loop_timer_cancel(p->loop, &g->timer);
		free(g);
	}
	loop_timer_cancel(p->loop, &p->wheel_timer);
	free(p->pc.slots);
	free(p->pc.hook_slots);
	free(p->free_ids);
	free(p->txbuf);
	free(p->rx.buf);
	free(p);
}
