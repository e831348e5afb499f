/*
 * pinger_int: the pinger's own state, shared by its files and by nothing
 * else (readers use view.h).
 *
 *   pinger.c         the struct and its lifecycle; the glue between the
 *                    sockets (icmp_sock), the probes (probe) and the loop;
 *                    shared probe settings
 *   pinger_plan.c    reload: prepare (reserves everything) and commit
 *                    (named steps, allocates nothing, cannot fail)
 *   pinger_dns.c     host names resolved inside the loop
 *   pinger_report.c  summary and icmp_stats lines, the summary groups
 *   pinger_view.c    view.h over this state
 *
 * Objects:
 *   target  one [target NAME] section (probe.h), kept across reloads when
 *           its identity is unchanged;
 *   probe   one (target, family) pair (probe.h);
 *   psock   one ICMP socket (icmp_sock.h) and the probes' side of it (its
 *           sequence map).  Probes share one socket per (family, socket
 *           kind, ttl, tos, dont_fragment); a target with its own source
 *           address or interface gets a socket of its own;
 *   group   one summary timer per distinct summary_interval, so all targets
 *           with the same interval log their summaries together.
 */
#ifndef BEACOND_PINGER_INT_H
#define BEACOND_PINGER_INT_H

#include "icmp_sock.h"
#include "lateness.h"
#include "loop.h"
#include "pinger.h"
#include "probe.h"
#include "resolver.h"

/* Resolver settings: each lookup gives up after RESOLVE_TRIES rounds of
 * RESOLVE_TIMEOUT_MS (c-ares doubles the timeout per round). */
#define RESOLVE_TIMEOUT_MS 2000
#define RESOLVE_TRIES 2
/* Lookups a reload starts go out at most one per this step: 10 000 names
 * are a 10 s stream of queries rather than one burst a DNS server may
 * drop. */
#define RESOLVE_PACE_NS NSEC_PER_MSEC
/* Receive buffer: at least 4 MiB, and 2 KiB per probe on the socket (a
 * reply's kernel buffer is ~1 KiB), so a stall of about a second at one
 * request per probe and second loses nothing; capped at 64 MiB. */
#define RCVBUF_MIN (4 << 20)
#define RCVBUF_PER_PROBE 2048
#define RCVBUF_MAX (64 << 20)

struct psock {
	struct icmp_sock sock;
	struct probe_sock ps;
	struct pinger *p;
	struct psock *next;
	struct deferred defer;       /* psock_close frees after the batch */
};

/* What only a target with a host name needs; it sits in the target's own
 * allocation, after the probes, so literal targets do not pay for it. */
struct target_dns {
	struct target *t;
	struct pinger *p;
	/* The next lookup, the pending one (a non-NULL handle means pending;
	 * cancelled before the target is freed), consecutive failed lookups
	 * and the rate limit of resolve_failed lines. */
	struct timer timer;
	struct resolver_query *rq;
	uint32_t failures;
	struct log_rate fail_rate;
	/* family = auto: the IPv4 and IPv6 sockets the probe may use once it
	 * knows its family (each holds a reference). */
	struct psock *cand[2];
	/* resolve_failed lines for one family of a dual-stack name, per probe. */
	struct log_rate family_rate[2];
};

/* A target's DNS state (NULL for an IP literal) and source address (NULL:
 * none), after its strings (see struct target). */
static inline size_t target_dns_at(const struct target *t)
{
	return (target_strings_end(t) + 7) & ~(size_t)7;
}
/* The DNS state of a target known to have a host name. */
static inline struct target_dns *target_dns_of(const struct target *t)
{
	return (struct target_dns *)(uintptr_t)((uintptr_t)t + target_dns_at(t));
}
static inline struct target_dns *target_dns(const struct target *t)
{
	return t->flags & TARGET_DNS ? target_dns_of(t) : NULL;
}
static inline const union inet_sa *target_source(const struct target *t)
{
	if (!(t->flags & TARGET_SOURCE))
		return NULL;
	return (const union inet_sa *)(const void *)((const char *)t + target_dns_at(t) +
		(t->flags & TARGET_DNS ? sizeof(struct target_dns) : 0));
}

struct group {
	struct timer timer;
	struct pinger *p;
	struct group *next;
	uint64_t interval_ns;
	bool used;
};

/* One distinct set of probe settings, shared by every target that has it
 * (most have exactly the [icmp] defaults): 56 bytes once instead of in
 * each of 10 000 targets. */
struct opts_node {
	struct probe_opts o;         /* first: a target's opts points here */
	struct opts_node *next;
	uint64_t hash;
	size_t refs;
};

struct pinger {
	struct loop *loop;
	struct probe_ctx pc;         /* the wheel, probe ids, ignored inputs */
	struct target **targets;
	size_t n_targets;
	struct psock *socks;
	struct group *groups;
	struct opts_node *opts;      /* distinct settings in use */
	struct resolver *resolver;   /* created when the first name appears */
	char *dns_servers;           /* what resolver was made with; NULL: resolv.conf */
	uint32_t cap_slots;          /* room in pc.slots and free_ids */
	uint32_t *free_ids;
	uint32_t n_free;
	uint16_t next_raw_ident;
	/* The last commit, by target name: how many it added and removed (a
	 * target whose settings changed is neither). */
	size_t last_added, last_removed;
	struct timer wheel_timer;    /* the wheel's one loop timer */
	uint64_t grid_ns;            /* send grid step for new probes (send_sched.h) */
	struct lateness late;
	/* The view: generation (bumped when the probe set changes), number of
	 * probes, what sockets are open. */
	uint64_t gen;
	uint32_t n_probes;
	char socket_kinds[32];       /* "4:dgram 6:raw" */
	bool any_tx_stamps;
	/* The request in txbuf, built for one family and payload size and
	 * patched (ident, seq, checksum) for each send; tx_len 0: none yet. */
	uint8_t *txbuf;
	size_t tx_len;
	uint32_t tx_payload;
	uint8_t tx_family;
	uint16_t tx_base;
	struct icmp_rx rx;
};

/* pinger.c */
const struct probe_opts *opts_get(struct pinger *p, const struct probe_opts *o);
void opts_put(struct pinger *p, const struct probe_opts *o);
void target_free(struct pinger *p, struct target *t);
struct psock *psock_open(struct pinger *p, const struct icmp_sock_key *k, char *err,
			 size_t errlen, enum icmp_open_fail *why);
void psock_close(struct pinger *p, struct psock *s);
/* The first point of pr's send grid at or after t. */
uint64_t probe_grid_up(const struct pinger *p, const struct probe *pr, uint64_t t);

/* pinger_dns.c */
void on_resolve_timer(struct timer *tm);
void target_resolve_later(struct pinger *p, struct target *t, uint64_t at);
void target_resolve_stop(struct pinger *p, struct target *t);
bool host_is_literal(const char *host);

/* pinger_report.c */
void target_log_summaries(struct target *t, const char *why, uint64_t now);
void log_socket(const struct psock *s);
void on_group_timer(struct timer *tm);

/* pinger_view.c: at commit, number the new set nt and bump the
 * generation if it differs; note the open socket kinds. */
void view_renumber(struct pinger *p, struct target *const *nt, size_t n, bool rtt_changed,
		   uint32_t rtt_n, const uint64_t *rtt_le_ns);
void view_socket_kinds(struct pinger *p);

#endif
