/*
 * pinger_dns: host names resolved inside the loop (resolver.h), never with
 * a blocking lookup.  A new named target starts with its probes
 * unresolved (they do not send and are neither up nor down) and is
 * re-resolved every resolve_interval (sooner when the TTL is shorter, see
 * resolve_sched.h); a failed lookup keeps the last good address and
 * retries with backoff.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pinger_int.h"
#include "resolve_sched.h"

static void on_resolved(void *arg, const struct resolver_result *res);

bool host_is_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The address family a lookup for t asks for: fixed by family = 4/6, by the
 * source address, or (auto) by the family the name first resolved to, so
 * a probe never changes sockets under requests in flight. */
static int lookup_family(const struct target *t)
{
	if (t->family_cfg == FAMILY_4)
		return AF_INET;
	if (t->family_cfg == FAMILY_6)
		return AF_INET6;
	if (t->family_cfg == FAMILY_AUTO) {
		if (probe_resolved(&t->probes[0]))
			return (t->probes[0].family == 6 ? AF_INET6 : AF_INET);
		const union inet_sa *src = target_source(t);

		if (src)
			return src->sa.sa_family;
	}
	return AF_UNSPEC;
}

/* ---- host names: lookups inside the loop ------------------------------------ */


void target_resolve_later(struct pinger *p, struct target *t, uint64_t at)
{
	if (!p->pc.stopped && target_dns(t))
		loop_timer_arm(p->loop, &target_dns_of(t)->timer, at);
}

/* A failed lookup: keep every resolved probe's last good address (it keeps
 * being pinged), retry with backoff. */
static void target_resolve_failed(struct pinger *p, struct target *t, const char *error,
				  uint64_t now)
{
	struct target_dns *d = target_dns_of(t);
	uint64_t retry;
	uint64_t suppressed;

	if (d->failures < UINT32_MAX)
		d->failures++;
	retry = resolve_sched_backoff_ns(d->failures, t->opts->resolve_interval_ns);
	/* Once per resolve_interval per target. */
	if (log_rate_due(&d->fail_rate, now, t->opts->resolve_interval_ns, &suppressed)) {
		struct logline *l = log_begin(LOG_WARNING, "resolve_failed");

		log_str(l, "target", target_name(t));
		log_str(l, "host", target_host(t));
		log_str(l, "error", error);
		for (uint32_t i = 0; i < t->n_probes; i++) {
			char key[16];

			if (!probe_resolved(&t->probes[i]))
				continue;
			snprintf(key, sizeof key, "keep_addr%s",
				 t->n_probes > 1 ? (t->probes[i].family == 6 ? "6" : "4") : "");
			log_addr(l, key, &t->probes[i].addr.sa);
		}
		log_u64(l, "failures", d->failures);
		log_fixed(l, "retry_s", retry, NSEC_PER_SEC, 1);
		log_u64(l, "suppressed", suppressed);
		log_end(l);
	}
	target_resolve_later(p, t, now + retry);
}

void on_resolve_timer(struct timer *tm)
{
	struct target_dns *d = container_of(tm, struct target_dns, timer);
	struct target *t = d->t;
	struct pinger *p = d->p;

	if (p->pc.stopped || d->rq || !p->resolver)
		return;
	/* Answers from /etc/hosts may arrive inside resolver_lookup(): that
	 * is fine here, the callback only re-arms this timer. */
	if (resolver_lookup(p->resolver, target_host(t), lookup_family(t), on_resolved, t, &d->rq) < 0)
		target_resolve_failed(p, t, strerror(errno), loop_now(p->loop));
}

/* The first address of the wanted family (4, 6, or 0 for any) in res. */
static bool pick_addr(const struct resolver_result *res, uint8_t family, union inet_sa *out)
{
	for (size_t i = 0; i < res->n_addrs; i++) {
		const struct sockaddr *sa = &res->addrs[i].u.sa;

		if (sa->sa_family == AF_INET && family != 6) {
			memset(out, 0, sizeof *out);
			memcpy(&out->in4, sa, sizeof out->in4);
			return true;
		}
		if (sa->sa_family == AF_INET6 && family != 4) {
			memset(out, 0, sizeof *out);
			memcpy(&out->in6, sa, sizeof out->in6);
			return true;
		}
	}
	return false;
}

/* A probe's first address: take a socket (an auto name picks its family's
 * now), log event=resolved and start sending. */
static void probe_first_addr(struct pinger *p, struct probe *pr, const union inet_sa *a,
			     uint32_t ttl_s, uint64_t now)
{
	struct target *t = probe_target(pr);
	struct logline *l;

	pr->addr = *a;
	if (!pr->family) {
		pr->family = a->sa.sa_family == AF_INET6 ? 6 : 4;
		/* No slot (out of memory at commit): stays degraded. */
		struct psock *cand = target_dns_of(t)->cand[pr->family == 6];

		pr->sock = pr->id != UINT32_MAX && cand ? &cand->ps : NULL;
		if (pr->sock) {
			uint64_t hold = t->opts->timeout_ns + PROBE_SEQ_HOLD_EXTRA_NS;

			pr->sock->refs++;
			if (seqmap_hold(pr->sock->map) < hold)
				seqmap_set_hold(pr->sock->map, hold);
		}
	}
	l = probe_log(pr, pr->sock ? LOG_INFO : LOG_ERR, "resolved");
	log_str(l, "host", target_host(t));
	if (ttl_s)
		log_u64(l, "ttl_s", ttl_s);
	if (pr->sock) {
		log_str(l, "socket", probe_sock_kind(pr->sock));
	} else {
		log_str(l, "status", "unavailable");
		log_str(l, "reason", "no ICMP socket for this family (see the socket lines)");
	}
	log_end(l);
	/* A degraded probe is scheduled too: its sends fail and count, as for
	 * a literal address without a socket. */
	if (!p->pc.stopped)
		probe_send_at(&p->pc, pr, probe_grid_up(p, pr, now));
}

/* A new address for a probe that has one: its statistics and state carry
 * on.  Requests in flight to the old address are not matched any more
 * (their replies fail the source check) and expire as lost, once each. */
static void probe_move(struct probe *pr, const union inet_sa *a)
{
	union inet_sa old = pr->addr;
	struct logline *l;

	pr->addr = *a;
	l = probe_log(pr, LOG_NOTICE, "address");
	log_str(l, "host", target_host(probe_target(pr)));
	log_addr(l, "from", &old.sa);
	log_addr(l, "to", &a->sa);
	log_end(l);
}

static void on_resolved(void *arg, const struct resolver_result *res)
{
	struct target *t = arg;
	struct pinger *p = target_dns_of(t)->p;
	uint64_t now = loop_now_refresh(p->loop);
	bool incomplete = false;

	if (p->pc.stopped)
		return;
	if (res->status != 0) {
		target_resolve_failed(p, t, res->error ? res->error : "lookup failed", now);
		return;
	}
	for (uint32_t i = 0; i < t->n_probes; i++) {
		struct probe *pr = &t->probes[i];
		union inet_sa a;

		if (!pick_addr(res, pr->family, &a)) {
			/* family = both and the name lacks one family (or an
			 * auto name switched families): that probe stays as it
			 * was -- unresolved, or on its last address. */
			uint64_t suppressed;

			incomplete = true;
			if (log_rate_due(&target_dns_of(t)->family_rate[i], now, t->opts->resolve_interval_ns,
					 &suppressed)) {
				struct logline *l = probe_log(pr, LOG_WARNING, "resolve_failed");

				log_str(l, "host", target_host(t));
				log_str(l, "error", pr->family == 6 ? "the name has no IPv6 address"
								    : "the name has no IPv4 address");
				log_u64(l, "suppressed", suppressed);
				log_end(l);
			}
			continue;
		}
		if (!probe_resolved(pr))
			probe_first_addr(p, pr, &a, res->ttl_s, now);
		else if (!inet_sa_same_addr(&pr->addr, &a))
			probe_move(pr, &a);
	}
	if (incomplete) {
		if (target_dns_of(t)->failures < UINT32_MAX)
			target_dns_of(t)->failures++;
		target_resolve_later(p, t, now + resolve_sched_backoff_ns(target_dns_of(t)->failures,
									  t->opts->resolve_interval_ns));
		return;
	}
	target_dns_of(t)->failures = 0;
	target_resolve_later(p, t, now + resolve_sched_next_ns(t->opts->resolve_interval_ns,
							       res->ttl_s));
}

/* Stop everything DNS for t: after this no lookup callback or timer can
 * reach it, so it may be freed. */
void target_resolve_stop(struct pinger *p, struct target *t)
{
	if (!target_dns(t))
		return;
	resolver_cancel(&target_dns_of(t)->rq);
	loop_timer_cancel(p->loop, &target_dns_of(t)->timer);
}

