/*
 * pinger: ICMP/ICMPv6 health pings.  See include/pinger.h for the contract
 * and README "ICMP health pings" for the behaviour and the log keys.
 *
 * Objects:
 *   target  one [target NAME] section: one or two probes, and DNS state
 *           and a source address only when it has them, in a single
 *           allocation; its probe settings are one copy shared by every
 *           target with the same ones (opts_get).  Kept across reloads
 *           when its identity (name, host, family, source, interface,
 *           socket settings; for IP literals the address) is unchanged,
 *           so a kept target also keeps its resolved address and DNS
 *           timers.
 *           A host name is resolved inside the loop (resolver.h), never
 *           with a blocking lookup: a new named target starts with its
 *           probes unresolved, which do not send and are neither up nor
 *           down, and is re-resolved every resolve_interval (sooner when
 *           the TTL is shorter, see resolve_sched.h).
 *   probe   one (target, family) pair: schedule, in-flight chain, statistics
 *           and up/down state.  It sits in the pinger's wheel once, at the
 *           earlier of its next send and its oldest request's timeout (an
 *           embedded node), so the send path never allocates.
 *   psock   one ICMP socket and its sequence map.  Probes share one socket
 *           per (family, socket kind, ttl, tos, dont_fragment); a target
 *           with its own source address or interface gets a socket of its
 *           own.
 *   group   one summary timer per distinct summary_interval, so all targets
 *           with the same interval log their summaries together.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <linux/net_tstamp.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "icmp.h"
#include "kstamp.h"
#include "log.h"
#include "pinger.h"
#include "resolve_sched.h"
#include "resolver.h"
#include "send_sched.h"
#include "seqmap.h"
#include "stats.h"
#include "util.h"
#include "view.h"

/* Datagrams read per socket per wakeup: enough to keep up with 10 000
 * targets, small enough that one busy socket cannot starve the loop. */
#define RX_BATCH 256
/* recvmmsg() batch: up to RX_MMSG datagrams per system call, each slot big
 * enough for the largest configured payload plus headers. */
#define RX_MMSG 64
#define RX_BUF_BUDGET (256 << 10)
#define RX_CTRL 192
/*
 * Sends and timeouts live in a hashed timing wheel of WHEEL_SLOTS one-tick
 * lists rather than in the loop's heap: 10 000 probes at 1 Hz meant 10 000
 * heap root removals a second for the sends alone, each walking ~14 levels
 * of timers scattered over as many probe structs (12 % of the daemon's CPU
 * in a profile), and as many timeout timers armed and cancelled.  Each
 * probe is in the wheel once, at the earlier of its next send and the
 * timeout of its oldest request in flight (see probe_wake_time).  Sends
 * are placed on a grid (send_sched.h) whose step is a whole number of
 * ticks, so the probes of one grid step share a slot and one wake-up; a
 * probe due rounds away simply stays in its slot.  The wheel's loop timer
 * is armed for the earliest wake time found in the coming ticks, so
 * nothing fires early and nothing is late by design.
 */
#define WHEEL_SLOTS 1024
#define WHEEL_TICK_NS SEND_GRID_MIN_NS
/* Lateness histogram: 10 us buckets up to 10 ms, then 1 ms buckets up to
 * 1 s; the last bucket takes anything later. */
#define LATE_FINE_NS (10 * NSEC_PER_USEC)
#define LATE_FINE_N 1000
#define LATE_COARSE_NS NSEC_PER_MSEC
#define LATE_BUCKETS (LATE_FINE_N + 991)
/* A repeated icmp_error / send_error line for one probe is logged at most
 * this often; the lines in between are counted in suppressed=. */
#define ERR_LOG_PERIOD_NS (10 * NSEC_PER_SEC)
/* ... measured in 100 ms ticks, so the time of the last line fits 32 bits
 * (13 years) in every probe. */
#define ERR_LOG_TICK_NS (100 * NSEC_PER_MSEC)
/* Sequence numbers stay reserved this long after their timeout, so a very
 * late reply is still recognised as late rather than matched to a newer
 * request that reused the number. */
#define SEQ_HOLD_EXTRA_NS (2 * NSEC_PER_SEC)
/* Receive buffer: at least 4 MiB, and 2 KiB per probe on the socket (a
 * reply's kernel buffer is ~1 KiB), so a stall of about a second at one
 * request per probe and second loses nothing; capped at 64 MiB. */
#define RCVBUF_MIN (4 << 20)
#define RCVBUF_PER_PROBE 2048
#define RCVBUF_MAX (64 << 20)

union sa {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* The reasons an input is ignored are view.h's (the metrics' labels). */
#define IGN_DECODE VIEW_IGN_DECODE
#define IGN_UNSOLICITED VIEW_IGN_UNSOLICITED
#define IGN_IDENT VIEW_IGN_IDENT
#define IGN_SEQ VIEW_IGN_SEQ
#define IGN_SOURCE VIEW_IGN_SOURCE
#define IGN_COOKIE VIEW_IGN_COOKIE
#define IGN_LENGTH VIEW_IGN_LENGTH
#define IGN_COUNT_ VIEW_IGN_COUNT_
#define ignore_reason view_ignored

struct tx_slot {
	uint32_t key;
	uint16_t seq;
};
#define TX_RING 4096
/* A transmit stamp later than this after the user-space send time is not
 * trusted (see errqueue_tx_stamp).  It must cover a sender preempted
 * between reading the clock and sendto(): on a loaded machine that is tens
 * of milliseconds, and rejecting such a stamp put the whole stall into the
 * RTT (seen: +44 ms in the 20 ms delay test). */
#define TX_STAMP_MAX_NS (100 * NSEC_PER_MSEC)
/* The stamp taken when the request enters the device layer, before the
 * queueing discipline (SCHED), rather than the one in the driver (SND):
 * on noqueue devices (lo, veth) and idle queues both are within a few
 * microseconds of the wire, but SND also includes whatever runs between
 * the two -- e.g. a packet capture's own tap, which made it read 5-15 us
 * short against that very capture, while SCHED stayed within +3 us, p99
 * 6 us (bench/icmp accuracy). */
#define TS_FLAGS (SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_SOFTWARE | \
		  SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)

struct sock_key {
	uint8_t family;              /* 4 or 6 */
	uint8_t kind;                /* enum icmp_socket_kind requested */
	uint8_t ttl, tos;
	bool df;                     /* dont_fragment */
	bool has_source;
	union sa source;
	char ifname[IF_NAMESIZE];
};

struct psock {
	struct io io;
	struct pinger *p;
	struct psock *next;
	struct sock_key key;
	bool raw;
	uint16_t ident;              /* dgram: the kernel's port; raw: random */
	struct seqmap *map;
	size_t refs;                 /* committed probes using this socket */
	/* Transmit timestamps: the kernel numbers each send (OPT_ID); the
	 * ring maps that number back to our sequence number.  NULL when the
	 * kernel gives no transmit timestamps. */
	struct tx_slot *tx_ring;
	uint32_t tx_next_key;
	struct deferred defer;       /* psock_close frees after the batch */
	size_t rcvbuf;               /* SO_RCVBUF last asked for */
};

struct target;

/* A probe is on the send wheel while it has a send or a timeout to come;
 * its wheel key is the earlier of the two. */
#define PROBE_IDLE UINT64_MAX

/* Fields in the order the send and receive paths touch them: a big setup
 * walks 10 000 of these a second, so the hot ones share cache lines. */
struct probe {
	struct probe *wnext, **wpprev;   /* wpprev NULL: not on the wheel */
	uint64_t wake;               /* wheel key: min(send_due, oldest timeout) */
	uint64_t send_due;           /* next send; PROBE_IDLE: not sending */
	struct target *t;
	struct psock *sock;          /* NULL: degraded, every send fails */
	struct seqmap_chain chain;   /* requests in flight, oldest first */
	uint32_t id;                 /* index in pinger.slots, seqmap's probe */
	union sa addr;               /* valid when resolved */
	uint8_t family;              /* 4 or 6; 0 until an auto name resolves */
	/* False until the host name first resolved for this family: the probe
	 * is off the send wheel and has no requests in flight. */
	bool resolved;
	struct health health;
	/* Rate limits of repeated send_error / icmp_error lines. */
	uint32_t send_err_suppressed, icmp_err_suppressed;
	uint32_t send_err_logged, icmp_err_logged;   /* ERR_LOG_TICK_NS units; 0: never */
	uint64_t health_send_ns;     /* send time of the newest outcome fed to health */
	struct stats stats;
	/* What only the view reads (metrics, beaconctl, history). */
	uint64_t state_since_ns;     /* CLOCK_REALTIME of the last change (or start) */
	uint64_t rtt_var_sum_ns;     /* sum of |RTT - previous RTT| */
	void *hook_slot;             /* pinger_hooks' per-probe state */
	/* 32 bits to keep a probe small: at most one per request, so they
	 * wrap after 136 years at 1 Hz, 1.4 at the 10 ms minimum interval (a
	 * wrap reads as a counter reset, which rate() handles). */
	uint32_t state_changes;
	uint32_t send_errors[VIEW_SEND_COUNT_];
	uint32_t icmp_errors[VIEW_ICMP_COUNT_];
};

/* What only a target with a host name needs; it sits in the target's own
 * allocation, after the probes, so literal targets do not pay for it. */
struct target_dns {
	struct target *t;
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

struct target {
	struct pinger *p;
	char *name, *host, *ifname;  /* point into the allocation's tail */
	char *labels;                /* NULL, or in the allocation's tail */
	/* RTT histogram: n_probes rows of pinger.rtt_n + 1 per-bucket counts;
	 * NULL when the histogram is off. */
	uint64_t *hist;
	union sa *source;            /* NULL, or in the allocation's tail */
	struct target_dns *dns;      /* NULL for an IP literal */
	const struct probe_opts *opts;   /* shared, see opts_get() */
	uint64_t window_start_ns;
	uint8_t family_cfg;          /* enum target_family */
	uint8_t n_probes;
	bool keep;                   /* commit: the new plan keeps this target */
	uint32_t first;              /* view index of probes[0] */
	struct probe probes[];
};

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
	struct target **targets;
	size_t n_targets;
	struct psock *socks;
	struct group *groups;
	struct opts_node *opts;      /* distinct settings in use */
	struct probe **slots;        /* probe id -> probe; NULL when free */
	struct resolver *resolver;   /* created when the first name appears */
	char *dns_servers;           /* what resolver was made with; NULL: resolv.conf */
	uint32_t n_slots, cap_slots;
	uint32_t *free_ids;
	uint32_t n_free;
	uint64_t cookie;
	uint16_t next_raw_ident;
	bool stopped;
	/* Send wheel: WHEEL_SLOTS lists of probes by the tick of their next
	 * send, one loop timer for all of them. */
	struct probe *wheel[WHEEL_SLOTS];
	struct timer wheel_timer;
	uint64_t wheel_tick;         /* ticks before this one are processed */
	uint64_t grid_ns;            /* send grid step for new probes (send_sched.h) */
	size_t wheel_count;
	uint64_t ignored[IGN_COUNT_];
	uint64_t ignored_total;
	uint64_t tx_stamped;         /* send times replaced by kernel stamps */
	/* Send lateness (actual send - scheduled deadline) histogram, with
	 * the buckets' upper bounds for the view. */
	uint64_t late_hist[LATE_BUCKETS];
	uint64_t late_le_ns[LATE_BUCKETS];
	uint64_t late_max_ns, late_n, late_sum_ns;
	/* The view: generation (bumped when the probe set changes), number of
	 * probes, the RTT histogram bounds in force, the outcome hooks. */
	uint64_t gen;
	uint32_t n_probes;
	uint32_t rtt_n;
	uint64_t rtt_le_ns[VIEW_RTT_BUCKETS_MAX];
	struct pinger_hooks hooks;
	char socket_kinds[32];       /* "4:dgram 6:raw" */
	bool any_tx_stamps;
	/* The request in txbuf, built for one family and payload size and
	 * patched (ident, seq, checksum) for each send; tx_len 0: none yet. */
	uint8_t *txbuf;
	size_t tx_len;
	uint32_t tx_payload;
	uint8_t tx_family;
	uint16_t tx_base;
	/* Receive batch: rx_n slots of rx_slot bytes in rxbuf. */
	uint8_t *rxbuf;
	size_t rx_slot, rx_n;
	struct mmsghdr rx_msgs[RX_MMSG];
	struct iovec rx_iov[RX_MMSG];
	union sa rx_from[RX_MMSG];
	char rx_ctrl[RX_MMSG][RX_CTRL] __attribute__((aligned(8)));
};

static int rx_resize(struct pinger *p, size_t max_payload);
static void tx_stamps_resync(struct pinger *p, struct psock *s);

/* ---- helpers -------------------------------------------------------------- */

static int af_of(int family)
{
	return family == 6 ? AF_INET6 : AF_INET;
}

static bool addr_equal(const union sa *a, const union sa *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
	return false;
}

/* Does raw address bytes (4 or 16) name the probe's target? */
static bool addr_bytes_equal(const union sa *a, const uint8_t *bytes)
{
	if (a->sa.sa_family == AF_INET)
		return memcmp(&a->in4.sin_addr, bytes, 4) == 0;
	return memcmp(&a->in6.sin6_addr, bytes, 16) == 0;
}

static bool key_equal(const struct sock_key *a, const struct sock_key *b)
{
	return a->family == b->family && a->kind == b->kind && a->ttl == b->ttl &&
	       a->tos == b->tos && a->df == b->df && a->has_source == b->has_source &&
	       (!a->has_source || addr_equal(&a->source, &b->source)) &&
	       strcmp(a->ifname, b->ifname) == 0;
}

static const char *sock_kind_name(const struct psock *s)
{
	return s->raw ? "raw" : "dgram";
}

/* The common head of every per-probe line: target, family, addr. */
static struct logline *probe_log(const struct probe *pr, enum log_level lvl,
				 const char *event)
{
	struct logline *l = log_begin(lvl, event);

	if (l) {
		log_str(l, "target", pr->t->name);
		if (pr->family)
			log_int(l, "family", pr->family);
		/* An unresolved probe has no address yet: addr= stays empty. */
		log_addr(l, "addr", pr->resolved ? &pr->addr.sa : NULL);
	}
	return l;
}

static void count_ignored(struct pinger *p, enum ignore_reason why, const char *detail)
{
	struct logline *l;

	p->ignored[why]++;
	p->ignored_total++;
	l = log_begin(LOG_DEBUG, "ignored");
	log_str(l, "reason", view_ignored_name(why));
	if (detail)
		log_str(l, "detail", detail);
	log_end(l);
}

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
static const struct probe_opts *opts_get(struct pinger *p, const struct probe_opts *o)
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

static void opts_put(struct pinger *p, const struct probe_opts *o)
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

static void target_free(struct pinger *p, struct target *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n_probes; i++)
		if (t->probes[i].hook_slot && p->hooks.on_gone)
			p->hooks.on_gone(p->hooks.arg, &t->probes[i].hook_slot);
	opts_put(p, t->opts);
	free(t->hist);
	free(t);
}

/* A zeroed RTT histogram for n_probes probes and rtt_n bounds; NULL (and
 * no error) when the histogram is off. */
static int hist_alloc(uint64_t **out, uint32_t n_probes, uint32_t rtt_n)
{
	*out = NULL;
	if (rtt_n == 0)
		return 0;
	*out = calloc((size_t)n_probes * (rtt_n + 1), sizeof **out);
	return *out ? 0 : -1;
}

/* ---- summaries -------------------------------------------------------------- */

static void log_rtt(struct logline *l, const char *prefix, const struct stats_period *pd)
{
	const struct stats_rtt *r = &pd->rtt;
	uint64_t n = pd->c.received;
	char key[40];

	if (n == 0)
		return;
#define K(name) (snprintf(key, sizeof key, "%s%s", prefix, name), key)
	log_fixed(l, K("rtt_min_ms"), r->min_us, 1000, 3);
	log_fixed(l, K("rtt_avg_ms"), stats_rtt_avg_ns(r, n), NSEC_PER_MSEC, 3);
	log_fixed(l, K("rtt_max_ms"), r->max_us, 1000, 3);
	log_fixed(l, K("rtt_mdev_ms"), stats_rtt_mdev_ns(r, n), NSEC_PER_MSEC, 3);
	if (stats_rtt_has_jitter(r))
		log_fixed(l, K("jitter_ms"), stats_rtt_jitter_ns(r), NSEC_PER_MSEC, 3);
#undef K
}

static void probe_log_summary(const struct probe *pr, const char *why, uint64_t now)
{
	const struct stats_counts *r = &pr->stats.run.c, *w;
	struct logline *l = probe_log(pr, LOG_INFO, "summary");
	struct stats_period win;
	uint64_t inflight;

	if (!l)
		return;
	/* With summaries off the window never restarts: it is the run. */
	if (pr->t->opts->summary_interval_ns)
		stats_window(&pr->stats, &win);
	else
		win = pr->stats.run;
	w = &win.c;
	inflight = r->sent - r->received - r->lost;
	log_str(l, "why", why);
	log_str(l, "state", pr->resolved ? health_state_name(pr->health.state) : "unresolved");
	log_str(l, "socket", pr->sock ? sock_kind_name(pr->sock) : "none");
	log_u64(l, "sent", w->sent);
	log_u64(l, "received", w->received);
	log_u64(l, "lost", w->lost);
	log_fixed(l, "loss_pct", stats_loss_milli_pct(w), 1000, 1);
	log_u64(l, "duplicates", w->duplicates);
	log_u64(l, "late", w->late);
	log_u64(l, "errors", w->errors);
	log_rtt(l, "", &win);
	log_fixed(l, "window_s", now - pr->t->window_start_ns, NSEC_PER_SEC, 3);
	log_u64(l, "inflight", inflight);
	log_u64(l, "total_sent", r->sent);
	log_u64(l, "total_received", r->received);
	log_u64(l, "total_lost", r->lost);
	log_fixed(l, "total_loss_pct", stats_loss_milli_pct(r), 1000, 1);
	log_u64(l, "total_duplicates", r->duplicates);
	log_u64(l, "total_late", r->late);
	log_u64(l, "total_errors", r->errors);
	log_rtt(l, "total_", &pr->stats.run);
	log_end(l);
}

static void target_log_summaries(struct target *t, const char *why, uint64_t now)
{
	for (uint32_t i = 0; i < t->n_probes; i++)
		probe_log_summary(&t->probes[i], why, now);
}

static void log_pinger_counters(struct pinger *p, const char *why)
{
	struct logline *l = log_begin(LOG_INFO, "icmp_stats");

	log_str(l, "why", why);
	log_u64(l, "tx_stamped", p->tx_stamped);
	if (l && p->late_n) {
		uint64_t want50 = (p->late_n + 1) / 2, want99 = p->late_n - p->late_n / 100;
		uint64_t seen = 0, p50 = 0, p99 = 0;

		for (uint32_t b = 0; b < LATE_BUCKETS; b++) {
			uint64_t upper = b < LATE_FINE_N ? (b + 1) * LATE_FINE_NS
				: LATE_FINE_N * LATE_FINE_NS + (b - LATE_FINE_N + 1) * LATE_COARSE_NS;

			seen += p->late_hist[b];
			if (!p50 && seen >= want50)
				p50 = upper;
			if (seen >= want99) {
				p99 = upper;
				break;
			}
		}
		if (p99 > p->late_max_ns)
			p99 = p->late_max_ns;
		if (p50 > p->late_max_ns)
			p50 = p->late_max_ns;
		/* Upper bucket bounds: "at most this late". */
		log_u64(l, "lateness_n", p->late_n);
		log_u64(l, "lateness_p50_us", p50 / NSEC_PER_USEC);
		log_u64(l, "lateness_p99_us", p99 / NSEC_PER_USEC);
		log_u64(l, "lateness_max_us", p->late_max_ns / NSEC_PER_USEC);
	}
	log_u64(l, "ignored", p->ignored_total);
	for (int i = 0; i < IGN_COUNT_; i++) {
		char key[32];

		snprintf(key, sizeof key, "ignored_%s", view_ignored_name(i));
		log_u64(l, key, p->ignored[i]);
	}
	log_end(l);
}

void pinger_log_summaries(struct pinger *p, const char *why)
{
	uint64_t now;

	if (!p)
		return;
	now = loop_now_refresh(p->loop);
	for (size_t i = 0; i < p->n_targets; i++)
		target_log_summaries(p->targets[i], why, now);
	log_pinger_counters(p, why);
}

static void on_group_timer(struct timer *tm)
{
	struct group *g = container_of(tm, struct group, timer);
	struct pinger *p = g->p;
	uint64_t now = loop_now(p->loop);

	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = p->targets[i];

		if (t->opts->summary_interval_ns != g->interval_ns)
			continue;
		target_log_summaries(t, "interval", now);
		for (uint32_t j = 0; j < t->n_probes; j++)
			stats_window_reset(&t->probes[j].stats);
		t->window_start_ns = now;
	}
	loop_timer_arm(p->loop, &g->timer, tm->deadline + g->interval_ns);
}

/* ---- state ---------------------------------------------------------------- */

/* Feed one resolved request to the up/down state machine.  Outcomes are
 * taken in send order: a timeout resolves only after `timeout`, often after
 * the reply to a newer request, and that older news must not reset the run
 * of consecutive replies (nor an old reply end a run of newer losses). */
static void probe_outcome(struct probe *pr, bool ok, uint64_t rtt_ns, uint64_t send_ns)
{
	const struct probe_opts *o = pr->t->opts;
	struct health_change ch;
	struct logline *l;

	if (send_ns < pr->health_send_ns)
		return;
	pr->health_send_ns = send_ns;
	ch = health_update(&pr->health, ok, o->down_after, o->up_after);
	if (!ch.changed)
		return;
	pr->state_changes++;
	pr->state_since_ns = wall_ns();
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
}

/* Tell the hook (the history) about one resolved request. */
static void probe_notify(struct probe *pr, uint64_t rtt_ns)
{
	const struct pinger_hooks *h = &pr->t->p->hooks;
	struct view_probe_key key;

	if (!h->on_outcome)
		return;
	key.target = pr->t->name;
	key.host = pr->t->host;
	key.family = pr->family;
	h->on_outcome(h->arg, &pr->hook_slot, &key, loop_now(pr->t->p->loop), rtt_ns);
}

static void probe_lost(struct probe *pr, uint64_t send_ns)
{
	stats_lost(&pr->stats);
	probe_outcome(pr, false, 0, send_ns);
	probe_notify(pr, STATS_NO_RTT);
}

/* A reply in time: the counters, the variation sum, the histogram. */
static void probe_received(struct probe *pr, uint64_t rtt_ns)
{
	const struct pinger *p = pr->t->p;
	uint64_t prev = pr->stats.last_rtt_ns;

	if (prev != STATS_NO_RTT)
		pr->rtt_var_sum_ns += rtt_ns > prev ? rtt_ns - prev : prev - rtt_ns;
	stats_received(&pr->stats, rtt_ns);
	if (pr->t->hist) {
		/* The first bound >= rtt (Prometheus' le), or +Inf. */
		uint32_t lo = 0, hi = p->rtt_n;

		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (p->rtt_le_ns[mid] < rtt_ns)
				lo = mid + 1;
			else
				hi = mid;
		}
		pr->t->hist[(size_t)(pr - pr->t->probes) * (p->rtt_n + 1) + lo]++;
	}
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

/* Rate limit for a probe's repeated error lines: log_rate_due() in 8 bytes
 * instead of 16 (every probe carries two), with times in 100 ms ticks.
 * Returns true when this one should be logged, with *suppressed the count
 * of lines skipped since the last one. */
static bool err_log_due(uint32_t *last, uint32_t *count, uint64_t now, uint32_t *suppressed)
{
	uint32_t tick = (uint32_t)(now / ERR_LOG_TICK_NS) + 1;

	if (*last != 0 && tick - *last < ERR_LOG_PERIOD_NS / ERR_LOG_TICK_NS) {
		if (*count < UINT32_MAX)
			(*count)++;
		return false;
	}
	*suppressed = *count;
	*count = 0;
	*last = tick;
	return true;
}

/* ---- the send wheel --------------------------------------------------------- */

/* When pr must next be looked at: its next send, or the timeout of its
 * oldest request in flight if that comes first.  Requests expire in send
 * order (a probe's timeout is constant), so the oldest one is enough. */
static uint64_t probe_wake_time(const struct pinger *p, const struct probe *pr)
{
	uint64_t wake = p->stopped ? PROBE_IDLE : pr->send_due;
	int head = seqmap_front(&pr->chain);

	if (head >= 0) {
		uint64_t tmo = seqmap_get(pr->sock->map, (uint16_t)head).send_ns +
			       pr->t->opts->timeout_ns;

		if (tmo < wake)
			wake = tmo;
	}
	return wake;
}

static void wheel_link(struct pinger *p, struct probe *pr)
{
	struct probe **head = &p->wheel[(pr->wake / WHEEL_TICK_NS) & (WHEEL_SLOTS - 1)];

	pr->wnext = *head;
	if (*head)
		(*head)->wpprev = &pr->wnext;
	*head = pr;
	pr->wpprev = head;
	p->wheel_count++;
}

static void wheel_del(struct pinger *p, struct probe *pr)
{
	if (!pr->wpprev)
		return;
	*pr->wpprev = pr->wnext;
	if (pr->wnext)
		pr->wnext->wpprev = pr->wpprev;
	pr->wnext = NULL;
	pr->wpprev = NULL;
	p->wheel_count--;
}

/* Put pr on the wheel at its wake time (or take it off when it has none),
 * after anything that moved its next send or its oldest request. */
static void probe_resched(struct pinger *p, struct probe *pr)
{
	uint64_t wake = probe_wake_time(p, pr);

	if (pr->wpprev && wake == pr->wake)
		return;
	wheel_del(p, pr);
	if (wake == PROBE_IDLE)
		return;
	pr->wake = wake;
	wheel_link(p, pr);
	if (!timer_armed(&p->wheel_timer) || wake < p->wheel_timer.deadline)
		loop_timer_arm(p->loop, &p->wheel_timer, wake);
}

/* Schedule pr's next send at due (absolute CLOCK_MONOTONIC ns). */
static void probe_send_at(struct pinger *p, struct probe *pr, uint64_t due)
{
	pr->send_due = due;
	probe_resched(p, pr);
}

/* After a reply or an error resolved a request: unlink resolved entries
 * from the chain's head; the probe's wake time follows its new oldest
 * request (usually: back to its next send). */
static void settle_head(struct pinger *p, struct probe *pr)
{
	int head;
	bool popped = false;

	while ((head = seqmap_front(&pr->chain)) >= 0 &&
	       seqmap_get(pr->sock->map, (uint16_t)head).state != SEQ_OUTSTANDING) {
		seqmap_pop(pr->sock->map, &pr->chain);
		popped = true;
	}
	if (popped)
		probe_resched(p, pr);
}

/* ---- sending -------------------------------------------------------------- */

static void send_failed(struct pinger *p, struct probe *pr, int err, uint64_t now)
{
	uint32_t suppressed = 0;

	stats_send_failed(&pr->stats);
	pr->send_errors[send_err_group(err)]++;
	probe_outcome(pr, false, 0, mono_ns());
	probe_notify(pr, STATS_NO_RTT);
	if (pr->sock == NULL)
		return; /* logged once when the probe was degraded */
	if (err_log_due(&pr->send_err_logged, &pr->send_err_suppressed, now, &suppressed)) {
		struct logline *l = probe_log(pr, LOG_WARNING, "send_error");

		log_errno(l, err);
		log_u64(l, "suppressed", suppressed);
		log_end(l);
	}
	(void)p;
}

static void note_lateness(struct pinger *p, uint64_t deadline, uint64_t t0)
{
	uint64_t late = t0 > deadline ? t0 - deadline : 0;
	uint64_t b = late / LATE_FINE_NS;

	if (b >= LATE_FINE_N)
		b = LATE_FINE_N + (late - LATE_FINE_N * LATE_FINE_NS) / LATE_COARSE_NS;
	p->late_hist[b < LATE_BUCKETS ? b : LATE_BUCKETS - 1]++;
	if (late > p->late_max_ns)
		p->late_max_ns = late;
	p->late_n++;
	p->late_sum_ns += late;
}

static void probe_send(struct pinger *p, struct probe *pr, uint64_t now, uint64_t deadline)
{
	struct psock *s = pr->sock;
	const struct probe_opts *o = pr->t->opts;
	size_t len;
	ssize_t n;
	int seq;
	uint64_t t0;

	if (s == NULL) {
		send_failed(p, pr, ENOTCONN, now);
		return;
	}
	seq = seqmap_reserve(s->map, pr->id, now);
	if (seq < 0) {
		send_failed(p, pr, EBUSY, now);
		return;
	}
	if (p->tx_len == 0 || p->tx_family != s->key.family || p->tx_payload != o->payload_size) {
		p->tx_len = icmp_echo_encode(s->key.family, p->txbuf,
					     ICMP_ECHO_HDR_LEN + ICMP_MAX_PAYLOAD, 0, 0, p->cookie,
					     o->payload_size);
		p->tx_family = s->key.family;
		p->tx_payload = o->payload_size;
		p->tx_base = icmp_echo_base(p->txbuf, p->tx_len);
	}
	len = p->tx_len;
	icmp_echo_set_seq(s->key.family, p->txbuf, p->tx_base, s->ident, (uint16_t)seq);
	/* The send time is taken as late as user space can: right before the
	 * system call.  It never travels in the packet. */
	t0 = mono_ns();
	note_lateness(p, deadline, t0);
	n = sendto(s->io.fd, p->txbuf, len, MSG_DONTWAIT | MSG_NOSIGNAL, &pr->addr.sa,
		   pr->family == 6 ? sizeof pr->addr.in6 : sizeof pr->addr.in4);
	if (n != (ssize_t)len) {
		int err = n < 0 ? errno : EMSGSIZE;

		seqmap_release(s->map, (uint16_t)seq);
		if (s->tx_ring)
			tx_stamps_resync(p, s);
		send_failed(p, pr, err, now);
		return;
	}
	if (s->tx_ring) {
		struct tx_slot *slot = &s->tx_ring[s->tx_next_key & (TX_RING - 1)];

		slot->key = s->tx_next_key++;
		slot->seq = (uint16_t)seq;
	}
	stats_sent(&pr->stats);
	seqmap_commit(s->map, &pr->chain, (uint16_t)seq, t0);
}

/* Arm the wheel's timer for the earliest wake time in the ticks from now
 * on.  A slot holding only probes due rounds later is passed over; if every
 * slot is like that, wake once a rotation later and look again. */
static void wheel_arm(struct pinger *p, uint64_t now)
{
	uint64_t tick = now / WHEEL_TICK_NS;

	if (p->wheel_count == 0)
		return;
	for (uint64_t t = tick; t < tick + WHEEL_SLOTS; t++) {
		uint64_t end = (t + 1) * WHEEL_TICK_NS, best = UINT64_MAX;

		for (struct probe *pr = p->wheel[t & (WHEEL_SLOTS - 1)]; pr; pr = pr->wnext)
			if (pr->wake < end && pr->wake < best)
				best = pr->wake;
		if (best != UINT64_MAX) {
			loop_timer_arm(p->loop, &p->wheel_timer, best > now ? best : now);
			return;
		}
	}
	loop_timer_arm(p->loop, &p->wheel_timer, (tick + WHEEL_SLOTS) * WHEEL_TICK_NS);
}

/* Requests whose timeout has passed are lost, oldest first. */
static void probe_expire(struct probe *pr, uint64_t now)
{
	uint64_t timeout = pr->t->opts->timeout_ns;
	int head;

	while ((head = seqmap_front(&pr->chain)) >= 0) {
		uint64_t sent = seqmap_get(pr->sock->map, (uint16_t)head).send_ns;

		if (sent + timeout > now)
			break;
		if (seqmap_pop(pr->sock->map, &pr->chain) == SEQ_OUTSTANDING) {
			struct logline *l = probe_log(pr, LOG_DEBUG, "timeout");

			log_int(l, "seq", head);
			log_end(l);
			probe_lost(pr, sent);
		}
	}
}

/* pr's wake time came: expire what timed out, send if the send is due. */
static void probe_wake(struct pinger *p, struct probe *pr, uint64_t now)
{
	probe_expire(pr, now);
	if (!p->stopped && pr->send_due <= now) {
		uint64_t iv = pr->t->opts->interval_ns, due = pr->send_due, next = due + iv;

		/* Absolute deadlines: the schedule never drifts.  If the loop
		 * was stalled past whole intervals, skip them instead of
		 * bursting. */
		if (next <= now)
			next += ((now - next) / iv + 1) * iv;
		pr->send_due = next;
		probe_send(p, pr, now, due);
	}
	probe_resched(p, pr);
}

static void on_wheel_timer(struct timer *tm)
{
	struct pinger *p = container_of(tm, struct pinger, wheel_timer);
	uint64_t now = loop_now(p->loop), tick = now / WHEEL_TICK_NS;
	uint64_t from = p->wheel_tick;

	/* Every tick since the last pass, but one rotation at most: after a
	 * longer stall each slot is visited once, which covers all probes. */
	if (from > tick || tick - from >= WHEEL_SLOTS)
		from = tick - (WHEEL_SLOTS - 1);
	for (uint64_t t = from; t <= tick; t++) {
		struct probe **head = &p->wheel[t & (WHEEL_SLOTS - 1)];
		struct probe *list = *head, *next;

		/* Detach the slot: probes re-linked into this same slot (a
		 * wake time whole rotations away) are not seen again this
		 * pass.  The detached list stays well formed (its head is
		 * `list`, whose address the first probe's wpprev holds), so
		 * even a wheel_del() from a callback on one of its probes is
		 * safe. */
		*head = NULL;
		if (list)
			list->wpprev = &list;
		for (struct probe *pr = list; pr; pr = next) {
			next = pr->wnext;
			wheel_del(p, pr);
			if (pr->wake <= now)
				probe_wake(p, pr, now);
			else
				wheel_link(p, pr);
		}
	}
	/* The current tick may still hold wake times later in it. */
	p->wheel_tick = tick;
	wheel_arm(p, now);
}

/* ---- receiving ------------------------------------------------------------ */

/* Kernel receive timestamps are CLOCK_REALTIME; they are converted to
 * CLOCK_MONOTONIC with the difference of both clocks read right after the
 * receive call (once per batch: the offset does not move within it). */
struct clock_pair {
	uint64_t mono, real;
};

/* Two reads of the monotonic clock further apart than this bracket a
 * preemption, not just the read of the other clock (a few tens of ns). */
#define CLOCK_PAIR_GAP_NS (20 * NSEC_PER_USEC)

/* The two clocks cannot be read at once.  The wall clock is read between
 * two reads of the monotonic one and paired with their midpoint, so the
 * pair is off by at most half the gap.  A thread preempted in between (a
 * busy host stops a vCPU for milliseconds) would put the whole stall into
 * every RTT of the batch -- seen: 1.5 ms short in the 20 ms delay test --
 * so a wide gap is read again, up to four times, keeping the tightest. */
static void clock_pair_now(struct clock_pair *c)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 4 && best > CLOCK_PAIR_GAP_NS; i++) {
		struct timespec m1, r, m2;
		uint64_t a, b;

		clock_gettime(CLOCK_MONOTONIC, &m1);
		clock_gettime(CLOCK_REALTIME, &r);
		clock_gettime(CLOCK_MONOTONIC, &m2);
		a = timespec_to_ns(&m1);
		b = timespec_to_ns(&m2);
		if (b - a < best) {
			best = b - a;
			c->mono = a + (b - a) / 2;
			c->real = timespec_to_ns(&r);
		}
	}
}

static uint64_t rx_time(struct msghdr *msg, const struct clock_pair *now)
{
	uint64_t k = kstamp_rx_ns(msg);

	/* A timestamp from the future (clock stepped) is not usable. */
	if (k && k <= now->real && now->real - k < now->mono)
		return now->mono - (now->real - k);
	return now->mono;
}

static void log_icmp_error(struct probe *pr, const union sa *from, enum icmp_reason reason,
			   uint16_t seq, uint32_t mtu, uint64_t now)
{
	uint32_t suppressed = 0;
	struct logline *l;

	if (!err_log_due(&pr->icmp_err_logged, &pr->icmp_err_suppressed, now, &suppressed))
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

/* An ICMP error about request seq sent to orig_dst (4 or 16 bytes). */
static void handle_error(struct pinger *p, struct psock *s, uint16_t ident, uint16_t seq,
			 const uint8_t *orig_dst, const union sa *from,
			 enum icmp_reason reason, uint32_t mtu)
{
	struct seqmap_info e;
	struct probe *pr;

	if (ident != s->ident) {
		count_ignored(p, IGN_IDENT, "icmp-error");
		return;
	}
	e = seqmap_get(s->map, seq);
	if (e.state == SEQ_FREE || e.state == SEQ_RESERVED || e.state == SEQ_DEAD ||
	    e.probe >= p->n_slots || (pr = p->slots[e.probe]) == NULL || pr->sock != s) {
		count_ignored(p, IGN_SEQ, "icmp-error");
		return;
	}
	if (!addr_bytes_equal(&pr->addr, orig_dst)) {
		count_ignored(p, IGN_SOURCE, "icmp-error");
		return;
	}
	stats_error(&pr->stats);
	pr->icmp_errors[icmp_err_group(reason)]++;
	log_icmp_error(pr, from, reason, seq, mtu, loop_now(p->loop));
	/* The request will not be answered: count the loss now rather than at
	 * its timeout, so the state reacts at once. */
	if (seqmap_resolve(s->map, seq, SEQ_LOST) == SEQ_OUTSTANDING) {
		probe_lost(pr, e.send_ns);
		settle_head(p, pr);
	}
}

static void handle_reply(struct pinger *p, struct psock *s, const struct icmp_msg *m,
			 const union sa *from, uint64_t rx_ns)
{
	struct seqmap_info e;
	struct probe *pr;
	uint64_t rtt;
	enum seqmap_state was;

	if (m->ident != s->ident) {
		count_ignored(p, IGN_IDENT, NULL);
		return;
	}
	e = seqmap_get(s->map, m->seq);
	if (e.state == SEQ_FREE || e.state == SEQ_RESERVED || e.state == SEQ_DEAD ||
	    e.probe >= p->n_slots || (pr = p->slots[e.probe]) == NULL || pr->sock != s) {
		count_ignored(p, IGN_SEQ, NULL);
		return;
	}
	if (!addr_equal(&pr->addr, from)) {
		count_ignored(p, IGN_SOURCE, NULL);
		return;
	}
	if (!icmp_payload_has_cookie(m, pr->t->opts->payload_size, p->cookie)) {
		count_ignored(p, IGN_COOKIE, NULL);
		return;
	}
	if (m->payload_len != pr->t->opts->payload_size) {
		count_ignored(p, IGN_LENGTH, NULL);
		return;
	}
	/* A receive time before the send time means the kernel's stamp
	 * (CLOCK_REALTIME) was converted across a step of the wall clock: the
	 * reply waited in the socket while the clock was set forward.  This
	 * batch's wake-up time is the best bound left: late by the wait,
	 * never early. */
	if (rx_ns < e.send_ns)
		rx_ns = loop_now(p->loop);
	rtt = rx_ns > e.send_ns ? rx_ns - e.send_ns : 0;
	/* A reply that arrives after its timeout is late even if the timeout
	 * timer has not run yet: the outcome must not depend on timer order. */
	was = seqmap_resolve(s->map, m->seq,
			     rtt > pr->t->opts->timeout_ns ? SEQ_LOST : SEQ_ANSWERED);
	if (was == SEQ_OUTSTANDING && rtt <= pr->t->opts->timeout_ns) {
		probe_received(pr, rtt);
		if (pr->t->opts->log_replies) {
			struct logline *l = probe_log(pr, LOG_INFO, "reply");

			log_u64(l, "seq", m->seq);
			log_fixed(l, "rtt_ms", rtt, NSEC_PER_MSEC, 3);
			log_end(l);
		}
		probe_outcome(pr, true, rtt, e.send_ns);
		probe_notify(pr, rtt);
		settle_head(p, pr);
	} else if (was == SEQ_OUTSTANDING || was == SEQ_LOST) {
		struct logline *l;

		if (was == SEQ_OUTSTANDING) {
			probe_lost(pr, e.send_ns);
			settle_head(p, pr);
		}
		seqmap_mark_late(s->map, m->seq);
		stats_late(&pr->stats);
		l = probe_log(pr, LOG_DEBUG, "late");
		log_u64(l, "seq", m->seq);
		log_fixed(l, "rtt_ms", rtt, NSEC_PER_MSEC, 3);
		log_end(l);
	} else if (was == SEQ_ANSWERED || was == SEQ_LATE) {
		struct logline *l;

		stats_duplicate(&pr->stats);
		l = probe_log(pr, LOG_DEBUG, "duplicate");
		log_u64(l, "seq", m->seq);
		log_end(l);
	}
}

static void handle_packet(struct pinger *p, struct psock *s, const uint8_t *buf, size_t len,
			  const union sa *from, uint64_t rx_ns)
{
	struct icmp_msg m;
	enum icmp_status st;

	if (s->key.family == 4)
		st = icmp4_decode(buf, len, s->raw, s->raw, &m);
	else
		st = icmp6_decode(buf, len, &m);
	if (st != ICMP_OK) {
		count_ignored(p, st == ICMP_UNSOLICITED ? IGN_UNSOLICITED : IGN_DECODE,
			      icmp_status_name(st));
		return;
	}
	if (m.kind == ICMP_KIND_ECHO_REPLY)
		handle_reply(p, s, &m, from, rx_ns);
	else
		handle_error(p, s, m.ident, m.seq, m.orig_dst, from, m.reason, m.mtu);
}

/* One message from the error queue of a datagram socket reporting an ICMP
 * error (IP_RECVERR / IPV6_RECVERR): the data is our request as sent,
 * msg_name its destination, and the extended error names the router and
 * the reason. */
static void errqueue_icmp(struct pinger *p, struct psock *s, const struct msghdr *h,
			  size_t len, const struct sock_extended_err *ee)
{
	const union sa *dst = h->msg_name;
	const uint8_t *req = ((const struct iovec *)h->msg_iov)->iov_base;
	union sa from;
	const union sa *fromp = NULL;
	enum icmp_reason reason;
	uint8_t dst_bytes[16] = { 0 };
	/* SO_EE_OFFENDER casts away const, which clang -Wcast-qual rejects. */
	const struct sockaddr *off = (const struct sockaddr *)(const void *)(ee + 1);

	if (len < ICMP_ECHO_HDR_LEN) {
		count_ignored(p, IGN_DECODE, "errqueue");
		return;
	}
	if (ee->ee_origin == SO_EE_ORIGIN_ICMP)
		reason = icmp_reason_from(4, ee->ee_type, ee->ee_code);
	else if (ee->ee_origin == SO_EE_ORIGIN_ICMP6)
		reason = icmp_reason_from(6, ee->ee_type, ee->ee_code);
	else
		reason = ICMP_REASON_OTHER;
	if (reason == ICMP_REASON_NONE)
		reason = ICMP_REASON_OTHER;
	if (off->sa_family == AF_INET || off->sa_family == AF_INET6) {
		memset(&from, 0, sizeof from);
		memcpy(&from, off, off->sa_family == AF_INET ? sizeof from.in4 : sizeof from.in6);
		fromp = &from;
	}
	if (dst->sa.sa_family == AF_INET)
		memcpy(dst_bytes, &dst->in4.sin_addr, 4);
	else if (dst->sa.sa_family == AF_INET6)
		memcpy(dst_bytes, &dst->in6.sin6_addr, 16);
	handle_error(p, s, (uint16_t)(req[4] << 8 | req[5]), (uint16_t)(req[6] << 8 | req[7]),
		     dst_bytes, fromp, reason, ee->ee_info);
}

/* A kernel transmit timestamp (SO_TIMESTAMPING, OPT_ID): the time the
 * request reached the device layer replaces the user-space send time,
 * removing the system call and scheduling from the RTT. */
static void errqueue_tx_stamp(struct pinger *p, struct psock *s, struct msghdr *h,
			      const struct sock_extended_err *ee, const struct clock_pair *now)
{
	const struct tx_slot *slot = &s->tx_ring[ee->ee_data & (TX_RING - 1)];
	struct seqmap_info e;
	uint64_t k, tx;

	if (ee->ee_info != SCM_TSTAMP_SCHED || slot->key != ee->ee_data)
		return;
	k = kstamp_tx_ns(h);
	if (k == 0 || k > now->real || now->real - k >= now->mono)
		return;
	tx = now->mono - (now->real - k);
	e = seqmap_get(s->map, slot->seq);
	/* The stamp must follow the user-space send time closely; anything
	 * else means the key mapping is off, and the user time stays. */
	if (e.state == SEQ_OUTSTANDING && tx >= e.send_ns && tx - e.send_ns < TX_STAMP_MAX_NS) {
		seqmap_set_send_ns(s->map, slot->seq, tx);
		p->tx_stamped++;
	}
}

/* Point every recvmmsg slot at its buffers again: the kernel rewrites the
 * lengths and flags on each call. */
static void rx_reset(struct pinger *p)
{
	for (size_t i = 0; i < p->rx_n; i++) {
		struct msghdr *h = &p->rx_msgs[i].msg_hdr;

		p->rx_iov[i].iov_base = p->rxbuf + i * p->rx_slot;
		p->rx_iov[i].iov_len = p->rx_slot;
		h->msg_name = &p->rx_from[i];
		h->msg_namelen = sizeof p->rx_from[i];
		h->msg_iov = &p->rx_iov[i];
		h->msg_iovlen = 1;
		h->msg_control = p->rx_ctrl[i];
		h->msg_controllen = RX_CTRL;
		h->msg_flags = 0;
	}
}

static void drain_errqueue(struct pinger *p, struct psock *s)
{
	size_t total = 0;

	while (total < RX_BATCH) {
		struct clock_pair now;
		int n;

		rx_reset(p);
		n = recvmmsg(s->io.fd, p->rx_msgs, (unsigned)p->rx_n, MSG_ERRQUEUE | MSG_DONTWAIT,
			     NULL);
		if (n <= 0)
			return;
		clock_pair_now(&now);
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &p->rx_msgs[i].msg_hdr;
			const struct sock_extended_err *ee = NULL;
			struct sock_extended_err copy;

			for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
				if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
				    (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR))
					ee = (const struct sock_extended_err *)(const void *)CMSG_DATA(c);
			}
			if (!ee)
				continue;
			memcpy(&copy, ee, sizeof copy);
			if (copy.ee_origin == SO_EE_ORIGIN_TIMESTAMPING) {
				if (s->tx_ring)
					errqueue_tx_stamp(p, s, h, &copy, &now);
			} else if (copy.ee_origin == SO_EE_ORIGIN_LOCAL) {
				/* The kernel's copy of a send that already
				 * failed (EMSGSIZE with dont_fragment): it
				 * carries no request and was counted then. */
			} else if (!s->raw) {
				errqueue_icmp(p, s, h, p->rx_msgs[i].msg_len, ee);
			}
		}
		total += (size_t)n;
		if ((size_t)n < p->rx_n)
			return;
	}
}

static void on_sock_ready(struct io *io, uint32_t events)
{
	struct psock *s = container_of(io, struct psock, io);
	struct pinger *p = s->p;
	size_t total = 0;

	/* Queued ICMP errors (datagram sockets) and transmit timestamps are
	 * signalled with EPOLLERR.  Read them first: a request's transmit
	 * stamp is queued before its reply can arrive. */
	if (events & EPOLLERR)
		drain_errqueue(p, s);
	if (!(events & EPOLLIN))
		return;
	while (total < RX_BATCH) {
		struct clock_pair now;
		int n;

		rx_reset(p);
		n = recvmmsg(io->fd, p->rx_msgs, (unsigned)p->rx_n, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		clock_pair_now(&now);
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &p->rx_msgs[i].msg_hdr;
			uint64_t rx = rx_time(h, &now);

			if (h->msg_flags & MSG_TRUNC) {
				count_ignored(p, IGN_DECODE, "truncated");
				continue;
			}
			handle_packet(p, s, p->rxbuf + (size_t)i * p->rx_slot, p->rx_msgs[i].msg_len,
				      &p->rx_from[i], rx);
		}
		total += (size_t)n;
		if ((size_t)n < p->rx_n)
			break;
	}
}

/* ---- sockets -------------------------------------------------------------- */

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
enum open_fail { OPEN_FAIL_OTHER, OPEN_FAIL_FAMILY, OPEN_FAIL_PERM };

static int open_icmp(const struct sock_key *k, bool *raw, char *err, size_t errlen,
		     enum open_fail *why)
{
	int af = af_of(k->family), proto = k->family == 6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	int fd = -1, dgram_errno = 0;
	char what[160];

	*why = OPEN_FAIL_OTHER;
	if (k->kind != ICMP_SOCKET_RAW) {
		fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
		if (fd >= 0) {
			*raw = false;
			return fd;
		}
		dgram_errno = errno;
		if (errno == EAFNOSUPPORT) {
			*why = OPEN_FAIL_FAMILY;
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
		*why = OPEN_FAIL_FAMILY;
		snprintf(err, errlen, "IPv%d is not available: %s", k->family, strerror(errno));
		return -1;
	}
	if (errno == EPERM || errno == EACCES)
		*why = OPEN_FAIL_PERM;
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
 * send time. */
static void tx_stamps_enable(struct psock *s)
{
	int flags = TS_FLAGS;

	if (!s->tx_ring && !(s->tx_ring = malloc(TX_RING * sizeof *s->tx_ring)))
		return;
	memset(s->tx_ring, 0xff, TX_RING * sizeof *s->tx_ring);
	s->tx_next_key = 0;
	if (setsockopt(s->io.fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) < 0) {
		free(s->tx_ring);
		s->tx_ring = NULL;
	}
}

/* A failed send may or may not have used up a key.  Turning OPT_ID off and
 * on restarts the kernel's count at 0, so the mapping is exact again;
 * stamps still queued are read first. */
static void tx_stamps_resync(struct pinger *p, struct psock *s)
{
	int flags = TS_FLAGS & ~SOF_TIMESTAMPING_OPT_ID;

	drain_errqueue(p, s);
	if (setsockopt(s->io.fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) < 0) {
		free(s->tx_ring);
		s->tx_ring = NULL;
		return;
	}
	tx_stamps_enable(s);
}

/* Many targets answer in bursts; a larger buffer absorbs them.  Best
 * effort: FORCE needs CAP_NET_ADMIN, plain is capped by net.core.rmem_max. */
static void psock_rcvbuf(struct psock *s, size_t want)
{
	int v = (int)want;

	if (want == s->rcvbuf)
		return;
	s->rcvbuf = want;
	if (setsockopt(s->io.fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
		(void)setsockopt(s->io.fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
}

static void psock_free(struct deferred *d)
{
	struct psock *s = container_of(d, struct psock, defer);

	seqmap_free(s->map);
	free(s->tx_ring);
	free(s);
}

/* Freed after the batch: a reload (a signal callback) may close a socket
 * whose own event is still queued behind it in the same batch. */
static void psock_close(struct pinger *p, struct psock *s)
{
	if (s->io.fd >= 0) {
		int fd = s->io.fd;

		loop_del(p->loop, &s->io);
		close(fd);
	}
	s->defer.fn = psock_free;
	loop_defer(p->loop, &s->defer);
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
		v = mono_ns() ^ ((uint64_t)getpid() << 32);
	return v;
}

/* Open and configure a socket for key; registered with the loop at once
 * (a socket nobody sends on receives nothing of ours). */
static struct psock *psock_open(struct pinger *p, const struct sock_key *k, char *err,
				size_t errlen, enum open_fail *why)
{
	struct psock *s = calloc(1, sizeof *s);
	int one = 1, v, fd;
	bool v6 = k->family == 6;
	const char *step = NULL;

	*why = OPEN_FAIL_OTHER;
	if (!s || !(s->map = seqmap_new(NSEC_PER_SEC))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->p = p;
	s->key = *k;
	s->io.fd = -1;
	s->io.on_ready = on_sock_ready;
	fd = open_icmp(k, &s->raw, err, errlen, why);
	if (fd < 0) {
		seqmap_free(s->map);
		free(s);
		return NULL;
	}
	s->io.fd = fd;

	if (k->ifname[0] &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, k->ifname, (socklen_t)strlen(k->ifname)) < 0) {
		step = "SO_BINDTODEVICE";
		goto fail;
	}
	if (!s->raw || k->has_source) {
		/* Datagram sockets: binding port 0 makes the kernel pick our
		 * ident now, which we need to check replies and errors. */
		union sa b;

		if (k->has_source) {
			b = k->source;
		} else {
			memset(&b, 0, sizeof b);
			b.sa.sa_family = (sa_family_t)af_of(k->family);
		}
		if (v6)
			b.in6.sin6_port = 0;
		else
			b.in4.sin_port = 0;
		if (bind(fd, &b.sa, v6 ? sizeof b.in6 : sizeof b.in4) < 0) {
			step = "bind";
			goto fail;
		}
	}
	if (!s->raw) {
		union sa local;
		socklen_t ln = sizeof local;

		if (getsockname(fd, &local.sa, &ln) < 0) {
			step = "getsockname";
			goto fail;
		}
		s->ident = ntohs(v6 ? local.in6.sin6_port : local.in4.sin_port);
		if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_RECVERR : IP_RECVERR,
			       &one, sizeof one) < 0) {
			step = v6 ? "IPV6_RECVERR" : "IP_RECVERR";
			goto fail;
		}
	} else {
		/* Distinct idents per raw socket of this process, random across
		 * processes; the payload cookie catches the rest. */
		if (p->next_raw_ident == 0)
			p->next_raw_ident = (uint16_t)(random_u64() | 1);
		s->ident = p->next_raw_ident++;
		if (v6 ? set_filter6(fd) < 0 : set_filter4(fd, s->ident) < 0) {
			step = v6 ? "ICMP6_FILTER" : "ICMP_FILTER/SO_ATTACH_FILTER";
			goto fail;
		}
	}
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) {
		step = "SO_TIMESTAMPNS";
		goto fail;
	}
	v = k->ttl;
	if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, &v, sizeof v) < 0) {
		step = v6 ? "IPV6_UNICAST_HOPS" : "IP_TTL";
		goto fail;
	}
	v = k->tos;
	if (v && setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TCLASS : IP_TOS, &v, sizeof v) < 0) {
		step = v6 ? "IPV6_TCLASS" : "IP_TOS";
		goto fail;
	}
	/* dont_fragment: DF set and never fragmented here (a request too big
	 * for the path fails with EMSGSIZE or draws frag-needed/packet-too-big),
	 * or fragmented wherever needed.  IPv4 requests with DF are also sent
	 * with IP ID 0 instead of one drawn from the kernel's per-destination
	 * hash, which is cold for every one of thousands of targets: about 5 %
	 * of the kernel's work per probe (perf, bench/icmp_ref with and without). */
	v = k->df ? (v6 ? IPV6_PMTUDISC_DO : IP_PMTUDISC_DO)
		  : (v6 ? IPV6_PMTUDISC_DONT : IP_PMTUDISC_DONT);
	if (setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_MTU_DISCOVER : IP_MTU_DISCOVER,
		       &v, sizeof v) < 0) {
		step = v6 ? "IPV6_MTU_DISCOVER" : "IP_MTU_DISCOVER";
		goto fail;
	}
	tx_stamps_enable(s);
	psock_rcvbuf(s, RCVBUF_MIN);
	if (loop_add(p->loop, &s->io, EPOLLIN) < 0) {
		step = "epoll";
		goto fail;
	}
	return s;
fail:
	snprintf(err, errlen, "ICMP socket for IPv%d%s%s: %s: %s", k->family,
		 k->ifname[0] ? " on interface " : "", k->ifname, step, strerror(errno));
	close(fd);
	s->io.fd = -1;
	seqmap_free(s->map);
	free(s);
	return NULL;
}

/* ---- host names: lookups inside the loop ------------------------------------ */

/* Each lookup gives up after RESOLVE_TRIES rounds of RESOLVE_TIMEOUT_MS (c-ares
 * doubles the timeout per round): a silent server costs a pending query,
 * never a blocked loop. */
#define RESOLVE_TIMEOUT_MS 2000
#define RESOLVE_TRIES 2
/* Lookups a reload starts (new names, or every name after dns_servers
 * changed) go out at most one per this step: 10 000 names are a 10 s
 * stream of queries rather than one burst a DNS server may drop.  Their
 * later lookups stay spread, each following its own schedule. */
#define RESOLVE_PACE_NS NSEC_PER_MSEC

static void on_resolved(void *arg, const struct resolver_result *res);
static int lookup_family(const struct target *t);

/* The first point of pr's send grid at or after t. */
static uint64_t probe_grid_up(const struct pinger *p, const struct probe *pr, uint64_t t)
{
	return send_grid_up(t, send_grid_for(p->grid_ns, pr->t->opts->interval_ns));
}

static void target_resolve_later(struct pinger *p, struct target *t, uint64_t at)
{
	if (!p->stopped && t->dns)
		loop_timer_arm(p->loop, &t->dns->timer, at);
}

/* A failed lookup: keep every resolved probe's last good address (it keeps
 * being pinged), retry with backoff. */
static void target_resolve_failed(struct pinger *p, struct target *t, const char *error,
				  uint64_t now)
{
	struct target_dns *d = t->dns;
	uint64_t retry;
	uint64_t suppressed;

	if (d->failures < UINT32_MAX)
		d->failures++;
	retry = resolve_sched_backoff_ns(d->failures, t->opts->resolve_interval_ns);
	/* Once per resolve_interval per target. */
	if (log_rate_due(&d->fail_rate, now, t->opts->resolve_interval_ns, &suppressed)) {
		struct logline *l = log_begin(LOG_WARNING, "resolve_failed");

		log_str(l, "target", t->name);
		log_str(l, "host", t->host);
		log_str(l, "error", error);
		for (uint32_t i = 0; i < t->n_probes; i++) {
			char key[16];

			if (!t->probes[i].resolved)
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

static void on_resolve_timer(struct timer *tm)
{
	struct target_dns *d = container_of(tm, struct target_dns, timer);
	struct target *t = d->t;
	struct pinger *p = t->p;

	if (p->stopped || d->rq || !p->resolver)
		return;
	/* Answers from /etc/hosts may arrive inside resolver_lookup(): that
	 * is fine here, the callback only re-arms this timer. */
	if (resolver_lookup(p->resolver, t->host, lookup_family(t), on_resolved, t, &d->rq) < 0)
		target_resolve_failed(p, t, strerror(errno), loop_now(p->loop));
}

/* The first address of the wanted family (4, 6, or 0 for any) in res. */
static bool pick_addr(const struct resolver_result *res, uint8_t family, union sa *out)
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
static void probe_first_addr(struct pinger *p, struct probe *pr, const union sa *a,
			     uint32_t ttl_s, uint64_t now)
{
	struct target *t = pr->t;
	struct logline *l;

	pr->addr = *a;
	pr->resolved = true;
	if (!pr->family) {
		pr->family = a->sa.sa_family == AF_INET6 ? 6 : 4;
		/* No slot (out of memory at commit): stays degraded. */
		pr->sock = pr->id != UINT32_MAX ? t->dns->cand[pr->family == 6] : NULL;
		if (pr->sock) {
			uint64_t hold = t->opts->timeout_ns + SEQ_HOLD_EXTRA_NS;

			pr->sock->refs++;
			if (seqmap_hold(pr->sock->map) < hold)
				seqmap_set_hold(pr->sock->map, hold);
		}
	}
	l = probe_log(pr, pr->sock ? LOG_INFO : LOG_ERR, "resolved");
	log_str(l, "host", t->host);
	if (ttl_s)
		log_u64(l, "ttl_s", ttl_s);
	if (pr->sock) {
		log_str(l, "socket", sock_kind_name(pr->sock));
	} else {
		log_str(l, "status", "unavailable");
		log_str(l, "reason", "no ICMP socket for this family (see the socket lines)");
	}
	log_end(l);
	/* A degraded probe is scheduled too: its sends fail and count, as for
	 * a literal address without a socket. */
	if (!p->stopped)
		probe_send_at(p, pr, probe_grid_up(p, pr, now));
}

/* A new address for a probe that has one: its statistics and state carry
 * on.  Requests in flight to the old address are not matched any more
 * (their replies fail the source check) and expire as lost, once each. */
static void probe_move(struct probe *pr, const union sa *a)
{
	union sa old = pr->addr;
	struct logline *l;

	pr->addr = *a;
	l = probe_log(pr, LOG_NOTICE, "address");
	log_str(l, "host", pr->t->host);
	log_addr(l, "from", &old.sa);
	log_addr(l, "to", &a->sa);
	log_end(l);
}

static void on_resolved(void *arg, const struct resolver_result *res)
{
	struct target *t = arg;
	struct pinger *p = t->p;
	uint64_t now = loop_now_refresh(p->loop);
	bool incomplete = false;

	if (p->stopped)
		return;
	if (res->status != 0) {
		target_resolve_failed(p, t, res->error ? res->error : "lookup failed", now);
		return;
	}
	for (uint32_t i = 0; i < t->n_probes; i++) {
		struct probe *pr = &t->probes[i];
		union sa a;

		if (!pick_addr(res, pr->family, &a)) {
			/* family = both and the name lacks one family (or an
			 * auto name switched families): that probe stays as it
			 * was -- unresolved, or on its last address. */
			uint64_t suppressed;

			incomplete = true;
			if (log_rate_due(&t->dns->family_rate[i], now, t->opts->resolve_interval_ns,
					 &suppressed)) {
				struct logline *l = probe_log(pr, LOG_WARNING, "resolve_failed");

				log_str(l, "host", t->host);
				log_str(l, "error", pr->family == 6 ? "the name has no IPv6 address"
								    : "the name has no IPv4 address");
				log_u64(l, "suppressed", suppressed);
				log_end(l);
			}
			continue;
		}
		if (!pr->resolved)
			probe_first_addr(p, pr, &a, res->ttl_s, now);
		else if (!addr_equal(&pr->addr, &a))
			probe_move(pr, &a);
	}
	if (incomplete) {
		if (t->dns->failures < UINT32_MAX)
			t->dns->failures++;
		target_resolve_later(p, t, now + resolve_sched_backoff_ns(t->dns->failures,
									  t->opts->resolve_interval_ns));
		return;
	}
	t->dns->failures = 0;
	target_resolve_later(p, t, now + resolve_sched_next_ns(t->opts->resolve_interval_ns,
							       res->ttl_s));
}

/* Stop everything DNS for t: after this no lookup callback or timer can
 * reach it, so it may be freed. */
static void target_resolve_stop(struct pinger *p, struct target *t)
{
	if (!t->dns)
		return;
	resolver_cancel(&t->dns->rq);
	loop_timer_cancel(p->loop, &t->dns->timer);
}

struct resolver_grave {
	struct deferred d;
	struct resolver *r;
};

static void resolver_bury(struct deferred *d)
{
	struct resolver_grave *g = container_of(d, struct resolver_grave, d);

	resolver_free(g->r);
	free(g);
}

/* Free a resolver after the current batch: an event for one of its sockets
 * may be queued behind the reload that replaces it. */
static void resolver_free_later(struct pinger *p, struct resolver *r)
{
	struct resolver_grave *g;

	if (!r)
		return;
	g = malloc(sizeof *g);
	if (!g) {
		resolver_free(r);
		return;
	}
	g->r = r;
	g->d.fn = resolver_bury;
	loop_defer(p->loop, &g->d);
}

/* ---- configuration: resolve, plan, commit --------------------------------- */

struct resolved {
	uint32_t n;
	uint8_t family[2];           /* 0: auto name, family known once resolved */
	union sa addr[2];            /* literals only */
	const char *missing[2];      /* why probe i has no address (both) */
	bool named;
	/* Sockets prepare opens: normally one per probe (sock_family[i] for
	 * probe i); an auto name gets both families' (index 0 = IPv4, 1 = IPv6),
	 * and picks one when its first answer arrives. */
	uint32_t n_socks;
	uint8_t sock_family[2];
};

static bool is_literal(const char *host);

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
		if (t->probes[0].resolved)
			return af_of(t->probes[0].family);
		if (t->source)
			return t->source->sa.sa_family;
	}
	return AF_UNSPEC;
}

/* Work out a target's probes.  IP literals are converted here, at once
 * (no DNS involved); host names only get their probes' families, their
 * addresses come from the resolver inside the loop. */
static int resolve_target(const struct config_target *ct, struct resolved *out, char *err,
			  size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *res = NULL;
	int want = AF_UNSPEC, rc;
	bool got4 = false, got6 = false;
	union sa a4, a6, first;
	int first_af = 0;

	memset(out, 0, sizeof *out);
	if (ct->family == FAMILY_4)
		want = AF_INET;
	else if (ct->family == FAMILY_6)
		want = AF_INET6;
	else if (ct->family == FAMILY_AUTO && ct->has_source)
		want = ct->source.u.sa.sa_family;
	if (!is_literal(ct->host)) {
		out->named = true;
		if (ct->family == FAMILY_BOTH) {
			out->n = out->n_socks = 2;
			out->family[0] = out->sock_family[0] = 4;
			out->family[1] = out->sock_family[1] = 6;
		} else if (want != AF_UNSPEC) {
			out->n = out->n_socks = 1;
			out->family[0] = out->sock_family[0] = want == AF_INET6 ? 6 : 4;
		} else {
			out->n = 1;
			out->n_socks = 2;
			out->sock_family[0] = 4;
			out->sock_family[1] = 6;
		}
		return 0;
	}
	hints.ai_family = want;
	/* AI_NUMERICHOST: a literal never reaches DNS, so this cannot block. */
	rc = getaddrinfo(ct->host, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "[target %s] host \"%s\": %s", ct->name, ct->host,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET && !got4 && ai->ai_addrlen >= sizeof a4.in4) {
			memset(&a4, 0, sizeof a4);
			memcpy(&a4.in4, ai->ai_addr, sizeof a4.in4);
			got4 = true;
		} else if (ai->ai_family == AF_INET6 && !got6 && ai->ai_addrlen >= sizeof a6.in6) {
			memset(&a6, 0, sizeof a6);
			memcpy(&a6.in6, ai->ai_addr, sizeof a6.in6);
			got6 = true;
		} else {
			continue;
		}
		if (!first_af) {
			first_af = ai->ai_family;
			first = ai->ai_family == AF_INET ? a4 : a6;
		}
	}
	freeaddrinfo(res);
	if (!first_af) {
		snprintf(err, errlen, "[target %s] host \"%s\": no address of the wanted family",
			 ct->name, ct->host);
		return -1;
	}
	if (ct->family == FAMILY_BOTH) {
		out->n = 2;
		out->family[0] = 4;
		out->family[1] = 6;
		memset(out->addr, 0, sizeof out->addr);
		out->addr[0].sa.sa_family = AF_INET;
		out->addr[1].sa.sa_family = AF_INET6;
		if (got4)
			out->addr[0] = a4;
		else
			out->missing[0] = "the name has no IPv4 address";
		if (got6)
			out->addr[1] = a6;
		else
			out->missing[1] = "the name has no IPv6 address";
	} else {
		out->n = 1;
		out->family[0] = first_af == AF_INET6 ? 6 : 4;
		out->addr[0] = first;
	}
	out->n_socks = out->n;
	memcpy(out->sock_family, out->family, sizeof out->family);
	return 0;
}

struct plan_target {
	struct target *t;            /* new, or kept from the running set */
	bool kept;
	const struct probe_opts *opts;   /* kept targets: their new settings (a reference) */
	struct psock *socks[2];
	const char *degraded[2];     /* why probe i has no socket/address */
	uint64_t *hist;              /* kept targets: a histogram for new bounds */
	char *degraded_msg[2];       /* owned copy when the reason is not static */
};

struct pinger_plan {
	struct pinger *p;
	struct plan_target *v;
	size_t n;
	struct psock *new_socks;
	/* A resolver for a changed dns_servers (or the first name); replaces
	 * the running one at commit. */
	struct resolver *resolver;
	char *dns_servers;
	/* The RTT histogram bounds; rtt_changed: they differ from the running
	 * ones, so kept targets get new (empty) histograms. */
	bool rtt_changed;
	uint32_t rtt_n;
	uint64_t rtt_le_ns[VIEW_RTT_BUCKETS_MAX];
};

static void make_key(struct sock_key *k, const struct config_target *ct, uint8_t family,
		     enum icmp_socket_kind kind)
{
	memset(k, 0, sizeof *k);
	k->family = family;
	k->kind = (uint8_t)kind;
	k->ttl = (uint8_t)ct->opts.ttl;
	k->tos = (uint8_t)ct->opts.tos;
	k->df = ct->opts.dont_fragment;
	if (ct->has_source) {
		k->has_source = true;
		memcpy(&k->source, &ct->source.u, ct->source.u.sa.sa_family == AF_INET6
							? sizeof k->source.in6 : sizeof k->source.in4);
	}
	if (ct->interface)
		snprintf(k->ifname, sizeof k->ifname, "%s", ct->interface);
}

static struct psock *find_sock(struct psock *list, const struct sock_key *k)
{
	for (struct psock *s = list; s; s = s->next)
		if (key_equal(&s->key, k))
			return s;
	return NULL;
}

static struct target *target_new(struct pinger *p, const struct config_target *ct,
				 const struct resolved *r, uint32_t rtt_n)
{
	/* One allocation: the target, its probes, then what only some
	 * targets have (DNS state, a source address), then the strings. */
	size_t nl = strlen(ct->name) + 1, hl = strlen(ct->host) + 1;
	size_t il = ct->interface ? strlen(ct->interface) + 1 : 0;
	size_t ll = ct->labels ? strlen(ct->labels) + 1 : 0;
	size_t dns_at = sizeof(struct target) + r->n * sizeof(struct probe);
	size_t src_at = dns_at + (r->named ? sizeof(struct target_dns) : 0);
	size_t str_at = src_at + (ct->has_source ? sizeof(union sa) : 0);
	struct target *t = calloc(1, str_at + nl + hl + il + ll);
	char *tail;

	if (!t)
		return NULL;
	tail = (char *)t + str_at;
	t->p = p;
	t->name = memcpy(tail, ct->name, nl);
	t->host = memcpy(tail + nl, ct->host, hl);
	t->ifname = il ? memcpy(tail + nl + hl, ct->interface, il) : NULL;
	t->labels = ll ? memcpy(tail + nl + hl + il, ct->labels, ll) : NULL;
	if (hist_alloc(&t->hist, (uint32_t)r->n, rtt_n) < 0)
		goto fail;
	t->opts = opts_get(p, &ct->opts);
	if (!t->opts)
		goto fail;
	t->family_cfg = (uint8_t)ct->family;
	if (r->named) {
		t->dns = (struct target_dns *)(void *)((char *)t + dns_at);
		t->dns->t = t;
		timer_init(&t->dns->timer, on_resolve_timer);
	}
	if (ct->has_source) {
		t->source = (union sa *)(void *)((char *)t + src_at);
		memcpy(t->source, &ct->source.u, sizeof *t->source);
	}
	t->n_probes = (uint8_t)r->n;
	for (uint32_t i = 0; i < r->n; i++) {
		struct probe *pr = &t->probes[i];

		pr->t = t;
		pr->family = r->family[i];
		pr->addr = r->addr[i];
		pr->resolved = !r->named;
		pr->id = UINT32_MAX;
		pr->wnext = NULL;
		pr->wpprev = NULL;
		pr->send_due = PROBE_IDLE;
		seqmap_chain_init(&pr->chain);
		health_init(&pr->health);
		stats_init(&pr->stats);
	}
	return t;
fail:
	free(t->hist);
	free(t);
	return NULL;
}

/* Can the running target old be kept for the new config entry? */
static bool target_same(const struct target *old, const struct config_target *ct,
			const struct resolved *r, struct psock *const *socks)
{
	if (strcmp(old->host, ct->host) != 0 || old->family_cfg != ct->family ||
	    (old->source != NULL) != ct->has_source || old->n_probes != r->n)
		return false;
	if (old->source && memcmp(old->source, &ct->source.u, sizeof *old->source) != 0)
		return false;
	if ((old->ifname == NULL) != (ct->interface == NULL) ||
	    (old->ifname && strcmp(old->ifname, ct->interface) != 0))
		return false;
	/* Other labels are another metric series: the target starts afresh. */
	if ((old->labels == NULL) != (ct->labels == NULL) ||
	    (old->labels && strcmp(old->labels, ct->labels) != 0))
		return false;
	if ((old->dns != NULL) != r->named)
		return false;
	if (r->named && r->n_socks != r->n) {
		/* An auto name: the same candidate sockets, and a probe that
		 * resolved to a family without a socket is retried afresh. */
		const struct probe *pr = &old->probes[0];

		return old->dns->cand[0] == socks[0] && old->dns->cand[1] == socks[1] &&
		       (!pr->resolved || pr->sock != NULL);
	}
	for (uint32_t i = 0; i < r->n; i++) {
		const struct probe *pr = &old->probes[i];

		/* A degraded probe is retried from scratch on every reload.  A
		 * name's address is the resolver's business, not the config's. */
		if (pr->sock == NULL || pr->sock != socks[i] || pr->family != r->family[i] ||
		    (!r->named && !addr_equal(&pr->addr, &r->addr[i])))
			return false;
	}
	return true;
}

static struct target *find_target(struct pinger *p, const char *name)
{
	/* Linear for small sets; a name index keeps reloads of big ones fast. */
	for (size_t i = 0; i < p->n_targets; i++)
		if (strcmp(p->targets[i]->name, name) == 0)
			return p->targets[i];
	return NULL;
}

void pinger_abort(struct pinger_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n; i++) {
		if (!plan->v[i].kept)
			target_free(plan->p, plan->v[i].t);
		else
			opts_put(plan->p, plan->v[i].opts);
		free(plan->v[i].hist);
		free(plan->v[i].degraded_msg[0]);
		free(plan->v[i].degraded_msg[1]);
	}
	while (plan->new_socks) {
		struct psock *s = plan->new_socks;

		plan->new_socks = s->next;
		psock_close(plan->p, s);
	}
	resolver_free(plan->resolver);
	free(plan->dns_servers);
	free(plan->v);
	free(plan);
}

/* Name index for reconciling big target sets in O(n). */
struct name_index {
	uint32_t *slot;              /* index + 1; 0 = empty */
	size_t mask;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ULL;
	return h;
}

static int name_index_build(struct name_index *ix, struct pinger *p)
{
	size_t cap = 16;

	while (cap < p->n_targets * 2)
		cap *= 2;
	ix->slot = calloc(cap, sizeof *ix->slot);
	if (!ix->slot)
		return -1;
	ix->mask = cap - 1;
	for (size_t i = 0; i < p->n_targets; i++) {
		size_t h = name_hash(p->targets[i]->name) & ix->mask;

		while (ix->slot[h])
			h = (h + 1) & ix->mask;
		ix->slot[h] = (uint32_t)i + 1;
	}
	return 0;
}

static struct target *name_index_find(const struct name_index *ix, struct pinger *p,
				      const char *name)
{
	size_t h = name_hash(name) & ix->mask;

	while (ix->slot[h]) {
		struct target *t = p->targets[ix->slot[h] - 1];

		if (strcmp(t->name, name) == 0)
			return t;
		h = (h + 1) & ix->mask;
	}
	return NULL;
}

struct pinger_plan *pinger_prepare(struct pinger *p, const struct config *cfg,
				   char *err, size_t errlen)
{
	struct pinger_plan *plan = calloc(1, sizeof *plan);
	struct name_index ix = { NULL, 0 };
	bool use_index = p->n_targets > 64, any_named = false;

	if (!plan || (cfg->n_targets && !(plan->v = calloc(cfg->n_targets, sizeof *plan->v)))) {
		free(plan);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	plan->p = p;
	plan->rtt_n = cfg->icmp.n_rtt_buckets <= VIEW_RTT_BUCKETS_MAX ? cfg->icmp.n_rtt_buckets
								       : VIEW_RTT_BUCKETS_MAX;
	memcpy(plan->rtt_le_ns, cfg->icmp.rtt_buckets_ns, plan->rtt_n * sizeof plan->rtt_le_ns[0]);
	plan->rtt_changed = plan->rtt_n != p->rtt_n ||
			    memcmp(plan->rtt_le_ns, p->rtt_le_ns,
				   plan->rtt_n * sizeof plan->rtt_le_ns[0]) != 0;
	if (use_index && name_index_build(&ix, p) < 0) {
		free(plan->v);
		free(plan);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_targets; i++) {
		const struct config_target *ct = &cfg->targets[i];
		struct plan_target *pt = &plan->v[i];
		struct resolved r;
		struct target *old;

		plan->n = i + 1; /* so pinger_abort() frees what this entry holds */
		if (resolve_target(ct, &r, err, errlen) < 0)
			goto fail;
		if (r.named)
			any_named = true;
		for (uint32_t j = 0; j < r.n_socks; j++) {
			struct sock_key k;
			struct psock *s;
			enum open_fail why;
			char serr[384];

			if (r.missing[j]) {
				pt->degraded[j] = r.missing[j];
				continue;
			}
			make_key(&k, ct, r.sock_family[j], cfg->icmp.socket);
			s = find_sock(p->socks, &k);
			if (!s)
				s = find_sock(plan->new_socks, &k);
			if (!s) {
				s = psock_open(p, &k, serr, sizeof serr, &why);
				if (s) {
					s->next = plan->new_socks;
					plan->new_socks = s;
				} else if (why == OPEN_FAIL_FAMILY ||
					   (why == OPEN_FAIL_PERM &&
					    cfg->icmp.socket == ICMP_SOCKET_AUTO) ||
					   (r.n_socks != r.n && r.sock_family[j] == 6)) {
					/* (An auto name only may need IPv6.) */
					/* No such family, or no permission for any
					 * ICMP socket in auto mode: degrade the
					 * probe, keep the daemon (and the other
					 * targets) running. */
					pt->degraded_msg[j] = strdup(serr);
					pt->degraded[j] = pt->degraded_msg[j] ? pt->degraded_msg[j]
									      : "no ICMP socket";
					continue;
				} else {
					snprintf(err, errlen, "[target %s] %s", ct->name, serr);
					goto fail;
				}
			}
			pt->socks[j] = s;
		}
		old = use_index ? name_index_find(&ix, p, ct->name) : find_target(p, ct->name);
		if (old && target_same(old, ct, &r, pt->socks)) {
			pt->t = old;
			pt->kept = true;
			pt->opts = opts_get(p, &ct->opts);
			if (!pt->opts || (plan->rtt_changed &&
					  hist_alloc(&pt->hist, old->n_probes, plan->rtt_n) < 0)) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
		} else {
			pt->t = target_new(p, ct, &r, plan->rtt_n);
			if (!pt->t) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
		}
	}
	/* One resolver for all names, made when the first name appears or
	 * dns_servers changes; a bad server list fails the whole plan. */
	{
		const char *want = cfg->daemon.dns_servers;
		const char *have = p->dns_servers;
		bool differ = (want == NULL) != (have == NULL) || (want && strcmp(want, have) != 0);

		if (any_named && (!p->resolver || differ)) {
			char rerr[256];

			plan->resolver = resolver_new(p->loop, want, RESOLVE_TIMEOUT_MS,
						      RESOLVE_TRIES, rerr, sizeof rerr);
			if (!plan->resolver) {
				snprintf(err, errlen, "[daemon] %s", rerr);
				goto fail;
			}
			if (want && !(plan->dns_servers = strdup(want))) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
		}
	}
	free(ix.slot);
	return plan;
fail:
	free(ix.slot);
	pinger_abort(plan);
	return NULL;
}

static int slot_alloc(struct pinger *p, struct probe *pr)
{
	uint32_t id;

	if (p->n_free) {
		id = p->free_ids[--p->n_free];
	} else {
		if (p->n_slots == SEQMAP_MAX_PROBES)
			return -1;
		if (p->n_slots == p->cap_slots) {
			uint32_t cap = p->cap_slots ? p->cap_slots * 2 : 64;
			struct probe **ns = realloc(p->slots, cap * sizeof *ns);
			uint32_t *nf;

			if (!ns)
				return -1;
			p->slots = ns;
			nf = realloc(p->free_ids, cap * sizeof *nf);
			if (!nf)
				return -1;
			p->free_ids = nf;
			p->cap_slots = cap;
		}
		id = p->n_slots++;
	}
	p->slots[id] = pr;
	pr->id = id;
	return 0;
}

static bool slot_gone(uint32_t id, void *arg)
{
	struct pinger *p = arg;

	return id >= p->n_slots || p->slots[id] == NULL;
}

static bool is_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void log_socket(const struct psock *s)
{
	struct logline *l = log_begin(LOG_INFO, "socket");

	log_int(l, "family", s->key.family);
	log_str(l, "kind", sock_kind_name(s));
	log_u64(l, "ident", s->ident);
	log_bool(l, "tx_timestamps", s->tx_ring != NULL);
	if (s->key.has_source)
		log_addr(l, "source", &s->key.source.sa);
	if (s->key.ifname[0])
		log_str(l, "interface", s->key.ifname);
	if (!s->key.df)
		log_bool(l, "dont_fragment", false);
	log_end(l);
}

static void target_remove(struct pinger *p, struct target *t, uint64_t now)
{
	target_log_summaries(t, "removed", now);
	target_resolve_stop(p, t);
	for (int f = 0; t->dns && f < 2; f++)
		if (t->dns->cand[f])
			t->dns->cand[f]->refs--;
	for (uint32_t i = 0; i < t->n_probes; i++) {
		struct probe *pr = &t->probes[i];

		wheel_del(p, pr);
		if (pr->id < p->n_slots && p->slots[pr->id] == pr)
			p->slots[pr->id] = NULL;
		if (pr->sock)
			pr->sock->refs--;
	}
}

static void groups_rebuild(struct pinger *p, uint64_t now)
{
	struct group **gp;

	for (struct group *g = p->groups; g; g = g->next)
		g->used = false;
	for (size_t i = 0; i < p->n_targets; i++) {
		uint64_t iv = p->targets[i]->opts->summary_interval_ns;
		struct group *g;

		if (iv == 0)
			continue;
		for (g = p->groups; g; g = g->next)
			if (g->interval_ns == iv)
				break;
		if (!g) {
			g = calloc(1, sizeof *g);
			if (!g) {
				log_msg(LOG_ERR, "summary", "out of memory: no summaries every %llu ms",
					(unsigned long long)(iv / NSEC_PER_MSEC));
				continue;
			}
			g->p = p;
			g->interval_ns = iv;
			timer_init(&g->timer, on_group_timer);
			g->next = p->groups;
			p->groups = g;
			if (!p->stopped)
				loop_timer_arm(p->loop, &g->timer, now + iv);
		}
		g->used = true;
	}
	gp = &p->groups;
	while (*gp) {
		struct group *g = *gp;

		if (g->used) {
			gp = &g->next;
			continue;
		}
		*gp = g->next;
		loop_timer_cancel(p->loop, &g->timer);
		free(g);
	}
}

/* The view's numbering of the new set nt (plan order), and its
 * generation: a walk begun before a change of the probe set (or of its
 * order) must end rather than resume at the wrong probe. */
static void view_renumber(struct pinger *p, struct target *const *nt,
			  const struct pinger_plan *plan)
{
	bool same = plan->n == p->n_targets && !plan->rtt_changed;
	uint32_t k = 0;

	for (size_t i = 0; i < plan->n; i++) {
		same = same && p->targets[i] == nt[i];
		nt[i]->first = k;
		k += nt[i]->n_probes;
	}
	if (!same)
		p->gen++;
	p->n_probes = k;
	if (plan->rtt_changed) {
		p->rtt_n = plan->rtt_n;
		memcpy(p->rtt_le_ns, plan->rtt_le_ns, sizeof p->rtt_le_ns);
	}
}

/* What sockets are open, for the view: "4:dgram 6:raw". */
static void view_socket_kinds(struct pinger *p)
{
	bool seen[2][2] = { { false, false }, { false, false } };
	size_t off = 0;

	p->socket_kinds[0] = '\0';
	p->any_tx_stamps = false;
	for (const struct psock *s = p->socks; s; s = s->next) {
		seen[s->key.family == 6][s->raw] = true;
		if (s->tx_ring)
			p->any_tx_stamps = true;
	}
	for (int f = 0; f < 2; f++)
		for (int r = 0; r < 2; r++)
			if (seen[f][r] && off < sizeof p->socket_kinds)
				off += (size_t)snprintf(p->socket_kinds + off,
							sizeof p->socket_kinds - off, "%s%d:%s",
							off ? " " : "", f ? 6 : 4,
							r ? "raw" : "dgram");
}

void pinger_commit(struct pinger *p, struct pinger_plan *plan)
{
	uint64_t now = loop_now_refresh(p->loop);
	struct target **nt = NULL;
	size_t n_new_probes = 0, k = 0;
	bool removed = false, new_resolver = false;
	uint64_t lookup_at = now;     /* the next paced first lookup */
	uint64_t wall = wall_ns();

	if (plan->n && !(nt = calloc(plan->n, sizeof *nt))) {
		/* Commit must not fail: fall back to keeping the old set. */
		log_msg(LOG_ERR, "reload", "out of memory applying ICMP targets");
		pinger_abort(plan);
		return;
	}
	/* 0. A new resolver (dns_servers changed): no lookup of the old one
	 * may report any more; kept names look up again at once, below. */
	if (plan->resolver) {
		for (size_t i = 0; i < p->n_targets; i++)
			if (p->targets[i]->dns)
				resolver_cancel(&p->targets[i]->dns->rq);
		resolver_free_later(p, p->resolver);
		p->resolver = plan->resolver;
		plan->resolver = NULL;
		free(p->dns_servers);
		p->dns_servers = plan->dns_servers;
		plan->dns_servers = NULL;
		new_resolver = true;
	}
	/* 1. Drop running targets the new set does not keep. */
	for (size_t j = 0; j < plan->n; j++)
		if (plan->v[j].kept)
			plan->v[j].t->keep = true;
	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = p->targets[i];

		if (t->keep) {
			t->keep = false;
		} else {
			target_remove(p, t, now);
			target_free(p, t);
			p->targets[i] = NULL;
			removed = true;
		}
	}
	/* 2. Requests in flight for removed probes must never match a probe
	 * that reuses their slot. */
	if (removed) {
		for (struct psock *s = p->socks; s; s = s->next)
			seqmap_forget(s->map, slot_gone, p);
		/* Rebuild the free list: the removed slots are reusable now. */
		p->n_free = 0;
		for (uint32_t id = 0; id < p->n_slots; id++)
			if (p->slots[id] == NULL)
				p->free_ids[p->n_free++] = id;
	}
	/* 3. New sockets join the running set. */
	while (plan->new_socks) {
		struct psock *s = plan->new_socks;

		plan->new_socks = s->next;
		s->next = p->socks;
		p->socks = s;
		log_socket(s);
	}
	/* The send grid follows the new set's total send rate. */
	{
		uint64_t rate_mhz = 0;

		for (size_t i = 0; i < plan->n; i++) {
			const struct plan_target *pt = &plan->v[i];
			const struct probe_opts *o = pt->kept ? pt->opts : pt->t->opts;

			rate_mhz += pt->t->n_probes * send_rate_mhz(o->interval_ns);
			if (!pt->kept)
				n_new_probes += pt->t->n_probes;
		}
		p->grid_ns = send_grid_ns(rate_mhz);
	}
	/* 4. Kept targets take their new settings; new ones start. */
	for (size_t i = 0; i < plan->n; i++) {
		struct plan_target *pt = &plan->v[i];
		struct target *t = pt->t;

		nt[i] = t;
		if (pt->kept) {
			uint64_t iv = pt->opts->interval_ns;

			opts_put(p, t->opts);
			t->opts = pt->opts;
			pt->opts = NULL;
			if (plan->rtt_changed) {
				free(t->hist);
				t->hist = pt->hist;
				pt->hist = NULL;
			}
			/* A name keeps its address and timers; it looks up now
			 * with a new server list, and a shorter resolve_interval
			 * takes effect now. */
			if (t->dns && new_resolver) {
				target_resolve_later(p, t, lookup_at);
				lookup_at += RESOLVE_PACE_NS;
			}
			else if (t->dns && timer_armed(&t->dns->timer) &&
				 t->dns->timer.deadline > now + t->opts->resolve_interval_ns)
				target_resolve_later(p, t, now + t->opts->resolve_interval_ns);
			/* A shorter interval takes effect now, not after the old one. */
			for (uint32_t j = 0; j < t->n_probes; j++) {
				struct probe *pr = &t->probes[j];

				if (pr->send_due != PROBE_IDLE && pr->send_due > now + iv)
					pr->send_due = now + iv;
				/* ... and so does a new timeout. */
				probe_resched(p, pr);
			}
			continue;
		}
		t->window_start_ns = now;
		for (uint32_t j = 0; j < t->n_probes; j++)
			t->probes[j].state_since_ns = wall;
		if (t->dns) {
			/* Looked up from the loop, right after this commit
			 * (paced): nothing here waits for DNS. */
			target_resolve_later(p, t, lookup_at);
			lookup_at += RESOLVE_PACE_NS;
			if (t->family_cfg == FAMILY_AUTO && !t->source) {
				for (int f = 0; f < 2; f++) {
					t->dns->cand[f] = pt->socks[f];
					if (t->dns->cand[f])
						t->dns->cand[f]->refs++;
				}
				pt->socks[0] = NULL;
				if (!t->dns->cand[0] && !t->dns->cand[1] && pt->degraded[0]) {
					struct logline *l = log_begin(LOG_ERR, "address");

					log_str(l, "target", t->name);
					log_str(l, "host", t->host);
					log_str(l, "status", "unavailable");
					log_str(l, "reason", pt->degraded[0]);
					log_end(l);
				}
				pt->degraded[0] = NULL;
			}
		}
		for (uint32_t j = 0; j < t->n_probes; j++) {
			struct probe *pr = &t->probes[j];
			struct logline *l;
			uint64_t iv = t->opts->interval_ns;

			pr->sock = pt->socks[j];
			if (pr->sock)
				pr->sock->refs++;
			if (slot_alloc(p, pr) < 0) {
				if (pr->sock)
					pr->sock->refs--;
				pr->sock = NULL;
				pt->degraded[j] = "out of memory";
			}
			/* A name's address is logged when it resolves
			 * (event=resolved); a probe without a socket now. */
			if (t->dns && !pt->degraded[j]) {
				k++;
				continue;
			}
			/* A literal host says nothing new: debug, so ten thousand
			 * literal targets do not flood the log at start. */
			l = probe_log(pr, pt->degraded[j] ? LOG_ERR
					  : is_literal(t->host) ? LOG_DEBUG : LOG_INFO, "address");
			log_str(l, "host", t->host);
			if (pr->sock)
				log_str(l, "socket", sock_kind_name(pr->sock));
			if (pt->degraded[j]) {
				log_str(l, "status", "unavailable");
				log_str(l, "reason", pt->degraded[j]);
			}
			log_end(l);
			/* Spread first pings evenly over the interval so many
			 * targets never fire in one burst.  (A name starts when
			 * it resolves.) */
			if (!p->stopped && pr->resolved) {
				uint64_t at = now + (uint64_t)((unsigned __int128)k * iv /
							       (n_new_probes ? n_new_probes : 1));

				probe_send_at(p, pr, probe_grid_up(p, pr, at));
			}
			k++;
		}
	}
	view_renumber(p, nt, plan);
	free(p->targets);
	p->targets = nt;
	p->n_targets = plan->n;
	/* 5. Sockets nobody uses any more are closed; hold times follow the
	 * longest timeout on each socket. */
	{
		struct psock **sp = &p->socks;

		for (struct psock *s = p->socks; s; s = s->next)
			seqmap_set_hold(s->map, 0);
		for (size_t i = 0; i < p->n_targets; i++) {
			struct target *t = p->targets[i];

			for (uint32_t j = 0; j < t->n_probes; j++) {
				struct psock *s = t->probes[j].sock;

				if (s && seqmap_hold(s->map) < t->opts->timeout_ns + SEQ_HOLD_EXTRA_NS)
					seqmap_set_hold(s->map, t->opts->timeout_ns + SEQ_HOLD_EXTRA_NS);
			}
		}
		while (*sp) {
			struct psock *s = *sp;

			if (s->refs) {
				size_t want = s->refs * RCVBUF_PER_PROBE;

				psock_rcvbuf(s, want < RCVBUF_MIN ? RCVBUF_MIN
						: want > RCVBUF_MAX ? RCVBUF_MAX : want);
				sp = &s->next;
				continue;
			}
			*sp = s->next;
			psock_close(p, s);
		}
	}
	groups_rebuild(p, now);
	view_socket_kinds(p);
	{
		size_t max_payload = 56;

		for (size_t i = 0; i < p->n_targets; i++)
			if (p->targets[i]->opts->payload_size > max_payload)
				max_payload = p->targets[i]->opts->payload_size;
		if (rx_resize(p, max_payload) < 0)
			log_msg(LOG_ERR, "reload", "out of memory: receive buffer for %zu-byte payloads",
				max_payload);
	}
	for (size_t i = 0; i < plan->n; i++) {
		free(plan->v[i].degraded_msg[0]);
		free(plan->v[i].degraded_msg[1]);
	}
	free(plan->v);
	free(plan);
}

/* Size the receive batch for the largest payload: IPv4 header with options
 * (raw sockets) + ICMP header + payload, rounded to a cache line. */
static int rx_resize(struct pinger *p, size_t max_payload)
{
	size_t slot = (60 + ICMP_ECHO_HDR_LEN + max_payload + 64 + 63) & ~(size_t)63;
	size_t n = RX_BUF_BUDGET / slot;
	uint8_t *buf;

	if (n > RX_MMSG)
		n = RX_MMSG;
	if (n < 1)
		n = 1;
	if (p->rxbuf && p->rx_slot == slot && p->rx_n == n)
		return 0;
	buf = malloc(slot * n);
	if (!buf)
		return -1;
	free(p->rxbuf);
	p->rxbuf = buf;
	p->rx_slot = slot;
	p->rx_n = n;
	return 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

struct pinger *pinger_new(struct loop *loop)
{
	struct pinger *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	p->loop = loop;
	p->txbuf = malloc(ICMP_ECHO_HDR_LEN + ICMP_MAX_PAYLOAD);
	if (p->txbuf && rx_resize(p, 56) < 0) {
		free(p->txbuf);
		p->txbuf = NULL;
	}
	if (!p->txbuf || !p->rxbuf) {
		free(p->txbuf);
		free(p->rxbuf);
		free(p);
		return NULL;
	}
	/* Raw sockets see every reply on the host; the cookie tells ours from
	 * another beacond's whose ident happens to collide. */
	p->cookie = random_u64();
	timer_init(&p->wheel_timer, on_wheel_timer);
	p->wheel_tick = loop_now(loop) / WHEEL_TICK_NS;
	p->grid_ns = SEND_GRID_MIN_NS;
	for (uint32_t b = 0; b < LATE_BUCKETS - 1; b++)
		p->late_le_ns[b] = b < LATE_FINE_N ? (b + 1) * LATE_FINE_NS
			: LATE_FINE_N * LATE_FINE_NS + (b - LATE_FINE_N + 1) * LATE_COARSE_NS;
	p->late_le_ns[LATE_BUCKETS - 1] = UINT64_MAX;
	return p;
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
			if (!t->probes[j].resolved) {
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
	p->stopped = true;
	/* Replies to requests in flight are still matched until exit; names
	 * are not looked up any more. */
	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = p->targets[i];

		target_resolve_stop(p, t);
		/* No more sends: only the timeouts of requests in flight keep
		 * a probe on the wheel. */
		for (uint32_t j = 0; j < t->n_probes; j++)
			probe_resched(p, &t->probes[j]);
	}
	if (p->wheel_count == 0)
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
			wheel_del(p, &t->probes[j]);
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
	free(p->slots);
	free(p->free_ids);
	free(p->txbuf);
	free(p->rxbuf);
	free(p);
}

/* ---- the view (view.h) ------------------------------------------------------ */

const char *view_send_err_name(enum view_send_err e)
{
	static const char *const names[VIEW_SEND_COUNT_] = {
		"unreachable", "too_big", "no_buffer", "permission", "no_socket", "other",
	};

	return (unsigned)e < VIEW_SEND_COUNT_ ? names[e] : "other";
}

const char *view_icmp_err_name(enum view_icmp_err e)
{
	static const char *const names[VIEW_ICMP_COUNT_] = {
		"unreachable", "prohibited", "too_big", "time_exceeded", "other",
	};

	return (unsigned)e < VIEW_ICMP_COUNT_ ? names[e] : "other";
}

const char *view_ignored_name(enum view_ignored e)
{
	static const char *const names[VIEW_IGN_COUNT_] = {
		"decode", "unsolicited", "ident", "seq", "source", "cookie", "length",
	};

	return (unsigned)e < VIEW_IGN_COUNT_ ? names[e] : "decode";
}

void pinger_set_hooks(struct pinger *p, const struct pinger_hooks *hooks)
{
	if (hooks)
		p->hooks = *hooks;
	else
		memset(&p->hooks, 0, sizeof p->hooks);
}

static void view_fill(const struct pinger *p, const struct target *t, uint32_t j,
		      struct view_probe *out)
{
	const struct probe *pr = &t->probes[j];
	const struct probe_opts *o = t->opts;

	memset(out, 0, sizeof *out);
	out->target = t->name;
	out->host = t->host;
	out->labels = t->labels;
	out->family = pr->family;
	out->resolved = pr->resolved;
	if (pr->resolved)
		memcpy(&out->addr, &pr->addr, pr->addr.sa.sa_family == AF_INET6
			? sizeof pr->addr.in6 : sizeof pr->addr.in4);
	out->socket = pr->sock ? sock_kind_name(pr->sock) : "none";
	out->index = t->first + j;
	out->interval_ns = o->interval_ns;
	out->timeout_ns = o->timeout_ns;
	out->payload_size = o->payload_size;
	out->down_after = o->down_after;
	out->up_after = o->up_after;
	out->state = (enum health_state)pr->health.state;
	out->state_since_ns = pr->state_since_ns;
	out->state_changes = pr->state_changes;
	out->run = pr->stats.run.c;
	out->run_rtt = pr->stats.run.rtt;
	out->rtt_var_sum_ns = pr->rtt_var_sum_ns;
	for (int e = 0; e < VIEW_SEND_COUNT_; e++)
		out->send_errors[e] = pr->send_errors[e];
	for (int e = 0; e < VIEW_ICMP_COUNT_; e++)
		out->icmp_errors[e] = pr->icmp_errors[e];
	out->in_flight = (uint32_t)(out->run.sent - out->run.received - out->run.lost);
	out->last_rtt_ns = pr->stats.last_rtt_ns;
	out->rtt_hist = t->hist ? t->hist + (size_t)j * (p->rtt_n + 1) : NULL;
	if (o->summary_interval_ns)
		stats_window(&pr->stats, &out->window);
	else
		out->window = pr->stats.run;
	out->window_start_ns = t->window_start_ns;
}

/* The target holding view index i: the last whose first index is <= i. */
static size_t view_find(const struct pinger *p, uint32_t i)
{
	size_t lo = 0, hi = p->n_targets;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->targets[mid]->first <= i)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

void pinger_view_begin(const struct pinger *p, struct view_cursor *c)
{
	c->gen = p ? p->gen : 0;
	c->next = 0;
}

bool pinger_view_next(const struct pinger *p, struct view_cursor *c, struct view_probe *out)
{
	const struct target *t;

	if (!p || c->gen != p->gen || c->next >= p->n_probes)
		return false;
	t = p->targets[view_find(p, c->next)];
	view_fill(p, t, c->next - t->first, out);
	c->next++;
	return true;
}

size_t pinger_view_target(const struct pinger *p, const char *name,
			  struct view_probe *out, size_t n)
{
	if (!p || !name)
		return 0;
	for (size_t i = 0; i < p->n_targets; i++) {
		const struct target *t = p->targets[i];

		if (strcmp(t->name, name) != 0)
			continue;
		for (uint32_t j = 0; j < t->n_probes && j < n; j++)
			view_fill(p, t, j, &out[j]);
		return t->n_probes;
	}
	return 0;
}

void pinger_view_global(const struct pinger *p, struct view_pinger *out)
{
	struct pinger_counts c;

	memset(out, 0, sizeof *out);
	if (!p)
		return;
	pinger_counts(p, &c);
	out->probes = c.probes;
	out->up = c.up;
	out->down = c.down;
	out->unknown = c.unknown;
	out->unresolved = c.unresolved;
	memcpy(out->ignored, p->ignored, sizeof out->ignored);
	out->tx_stamped = p->tx_stamped;
	out->socket_kinds = p->socket_kinds;
	out->timestamping = p->socks == NULL ? "none"
			    : p->any_tx_stamps ? "kernel-tx+rx" : "kernel-rx";
	out->late_n_buckets = LATE_BUCKETS;
	out->late_le_ns = p->late_le_ns;
	out->late_counts = p->late_hist;
	out->late_sum_ns = p->late_sum_ns;
	out->late_count = p->late_n;
	out->late_max_ns = p->late_max_ns;
	out->rtt_bounds.n = p->rtt_n;
	out->rtt_bounds.le_ns = p->rtt_le_ns;
}
