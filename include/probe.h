/*
 * probe: one (target, family) pair's requests and what becomes of them --
 * send, expire, reply and ICMP-error matching, transmit-stamp correction,
 * the counters and the up/down state machine with its log lines.
 *
 * No sockets and no loop: the pinger hands it a struct probe_ctx holding
 * the send wheel, the probe-id table, and three callbacks (send a request,
 * wake me at, read the clock).  Received datagrams and queued errors come
 * in through probe_on_datagram() / probe_on_error() / probe_on_tx_stamp(),
 * already read from the socket by icmp_sock.  A unit test drives the whole
 * of it with synthetic replies and a fake send function.
 *
 * A probe sits on the wheel once, at the earlier of its next send and the
 * timeout of its oldest request in flight (an embedded node), so neither
 * the send path nor the receive path allocates.
 */
#ifndef BEACOND_PROBE_H
#define BEACOND_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "config.h"
#include "icmp.h"
#include "log.h"
#include "seqmap.h"
#include "stats.h"
#include "util.h"
#include "view.h"
#include "wheel.h"

/* A probe is on the wheel while it has a send or a timeout to come. */
#define PROBE_IDLE UINT64_MAX
/* Sequence numbers stay reserved this long after their timeout, so a very
 * late reply is still recognised as late rather than matched to a newer
 * request that reused the number. */
#define PROBE_SEQ_HOLD_EXTRA_NS (2 * NSEC_PER_SEC)
/* icmp_error and send_error lines for one probe share one gate: at most
 * one of them this often; the lines in between are counted in
 * suppressed=. */
#define PROBE_ERR_LOG_PERIOD_NS (10 * NSEC_PER_SEC)
/* A transmit stamp later than this after the user-space send time is not
 * trusted.  It must cover a sender preempted between reading the clock and
 * sendto(): on a loaded machine that is tens of milliseconds, and rejecting
 * such a stamp put the whole stall into the RTT (seen: +44 ms in the 20 ms
 * delay test). */
#define PROBE_TX_STAMP_MAX_NS (100 * NSEC_PER_MSEC)

/* What the probes know of their socket: its sequence map (shared by every
 * probe on the socket) and what replies are checked against. */
struct probe_sock {
	struct seqmap *map;
	uint16_t ident;              /* dgram: the kernel's port; raw: ours */
	uint8_t family;              /* 4 or 6 */
	bool raw;
	size_t refs;                 /* committed probes using this socket */
};

struct target;
struct target_dns;

/* Fields in the order the send and receive paths touch them: a big setup
 * walks 10 000 of these a second, so the hot ones share cache lines. */
struct probe {
	struct wheel_node node;      /* wake = min(send_due, oldest timeout) */
	uint64_t send_due;           /* next send; PROBE_IDLE: not sending */
	struct probe_sock *sock;     /* NULL: degraded, every send fails */
	struct seqmap_chain chain;   /* requests in flight, oldest first */
	uint32_t id;                 /* index in probe_ctx.slots, seqmap's probe */
	union inet_sa addr;          /* valid when resolved */
	uint8_t family;              /* 4 or 6; 0 until an auto name resolves */
	uint8_t index;               /* in its target's probes[] */
	struct health health;
	/* Errors by reason and the rate of their log lines: only for a probe
	 * that has had one (most never do), allocated then; NULL before. */
	struct probe_errors *errs;
	uint64_t health_send_ns;     /* send time of the newest outcome fed to health */
	struct stats stats;
	/* What only the view reads (metrics, beaconctl, history). */
	uint64_t rtt_var_sum_ns;     /* sum of |RTT - previous RTT| */
	uint32_t state_since_s;      /* CLOCK_REALTIME s of the last change (or start) */
	/* 32 bits to keep a probe small: at most one per request, so they
	 * wrap after 136 years at 1 Hz, 1.4 at the 10 ms minimum interval (a
	 * wrap reads as a counter reset, which rate() handles). */
	uint32_t state_changes;
};

struct probe_errors {
	struct log_rate rate;        /* send_error and icmp_error lines */
	uint32_t send[VIEW_SEND_COUNT_];
	/* All groups but VIEW_ICMP_OTHER, which is what stats.run.c.errors
	 * leaves (see probe_icmp_errors). */
	uint32_t icmp[VIEW_ICMP_OTHER];
};

/* One [target NAME] section: one or two probes, and DNS state and a source
 * address only when it has them, in a single allocation (target_new in
 * pinger_plan.c): the struct, its probes, the strings name, host,
 * interface and labels (the last two when set), then (8-byte aligned)
 * struct target_dns for a host name and a union inet_sa for a source address.
 * Where each part sits follows from n_probes, flags and the strings, so
 * the target stores no pointer to them: 10 000 targets save 48 bytes
 * each.  Its probe settings are one copy shared by every target with the
 * same ones. */
#define TARGET_DNS 1u                /* a host name (struct target_dns) */
#define TARGET_SOURCE 2u             /* a source address */
#define TARGET_IFNAME 4u
#define TARGET_LABELS 8u
struct target {
	/* RTT histogram: n_probes rows of probe_ctx.rtt_n + 1 per-bucket
	 * counts; NULL when the histogram is off. */
	uint64_t *hist;
	const struct probe_opts *opts;   /* shared */
	uint64_t window_start_ns;
	uint8_t family_cfg;          /* enum target_family */
	uint8_t n_probes;
	uint8_t flags;               /* TARGET_* */
	bool keep;                   /* commit: the new plan keeps this target */
	uint32_t first;              /* view index of probes[0] */
	struct probe probes[];
};

static inline size_t target_strings_at(uint32_t n_probes)
{
	return sizeof(struct target) + n_probes * sizeof(struct probe);
}
static inline const char *target_name(const struct target *t)
{
	return (const char *)t + target_strings_at(t->n_probes);
}
const char *target_host(const struct target *t);
const char *target_ifname(const struct target *t);   /* NULL: none */
const char *target_labels(const struct target *t);   /* NULL: none */
/* Where the strings end (the DNS state and source address follow). */
size_t target_strings_end(const struct target *t);

/* False until the host name first resolved for this family (the address
 * stays AF_UNSPEC until then): the probe is off the send wheel and has no
 * requests in flight.  IP literals are resolved from the start. */
static inline bool probe_resolved(const struct probe *pr)
{
	return pr->addr.sa.sa_family != AF_UNSPEC;
}

/* The target a probe belongs to: probes[] sit in it, index tells where. */
static inline struct target *probe_target(const struct probe *pr)
{
	return (struct target *)(uintptr_t)((uintptr_t)(pr - pr->index) -
					    offsetof(struct target, probes));
}

struct probe_ctx;
/* What the probes ask of the pinger. */
struct probe_io {
	/* Send request seq of pr; *t0 = the send time (CLOCK_MONOTONIC, taken
	 * right before the system call, set even when it fails).  0, or the
	 * errno of the failure.  deadline is when it was due. */
	int (*send)(struct probe_ctx *c, struct probe *pr, uint16_t seq, uint64_t deadline,
		    uint64_t *t0);
	/* The earliest wake time may have moved earlier: arm for wake. */
	void (*wake_at)(struct probe_ctx *c, uint64_t wake);
	/* CLOCK_MONOTONIC now. */
	uint64_t (*now)(struct probe_ctx *c);
};

struct probe_ctx {
	struct wheel wheel;
	const struct probe_io *io;
	struct probe **slots;        /* probe id -> probe; NULL when free */
	uint32_t n_slots;
	bool stopped;                /* no more sends */
	uint64_t cookie;             /* in every request's payload */
	uint32_t rtt_n;              /* RTT histogram bounds (0: off) */
	uint64_t rtt_le_ns[VIEW_RTT_BUCKETS_MAX];
	uint64_t ignored[VIEW_IGN_COUNT_];
	uint64_t ignored_total;
	uint64_t tx_stamped;         /* send times replaced by kernel stamps */
	struct pinger_hooks hooks;
	/* The hooks' per-probe slots by probe id (n_slots of them), only while
	 * hooks are set; a probe without an id has no outcomes reported. */
	void **hook_slots;
};

/* A fresh probe t->probes[index] (not on the wheel, no socket, no id);
 * addr NULL or AF_UNSPEC: not resolved yet. */
void probe_init(struct target *t, uint8_t index, uint8_t family, const union inet_sa *addr);
/* The common head of every per-probe line: target, family, addr. */
struct logline *probe_log(const struct probe *pr, enum log_level lvl, const char *event);
const char *probe_sock_kind(const struct probe_sock *s);

/* Put pr on the wheel at its wake time (or take it off when it has none),
 * after anything that moved its next send or its oldest request. */
void probe_resched(struct probe_ctx *c, struct probe *pr);
void probe_send_at(struct probe_ctx *c, struct probe *pr, uint64_t due);
/* Take pr off the wheel (the probe is going away). */
void probe_unlink(struct probe_ctx *c, struct probe *pr);
/* Run every probe whose wake time has come: expire, send. */
void probe_run(struct probe_ctx *c, uint64_t now);

/* One datagram read from s at rx_ns (CLOCK_MONOTONIC): a reply, an ICMP
 * error (raw sockets see those in the normal queue) or something ignored. */
void probe_on_datagram(struct probe_ctx *c, struct probe_sock *s, const uint8_t *buf,
		       size_t len, const union inet_sa *from, uint64_t rx_ns);
/* An ICMP error about request (ident, seq) sent to orig_dst (4 or 16
 * bytes); from is the router, or NULL. */
void probe_on_error(struct probe_ctx *c, struct probe_sock *s, uint16_t ident, uint16_t seq,
		    const uint8_t *orig_dst, const union inet_sa *from,
		    enum icmp_reason reason, uint32_t mtu);
/* The kernel's transmit time of request seq: replaces the user-space send
 * time when it follows it closely. */
void probe_on_tx_stamp(struct probe_ctx *c, struct probe_sock *s, uint16_t seq, uint64_t tx_ns);
/* ICMP errors of group e attributed to pr. */
uint64_t probe_icmp_errors(const struct probe *pr, enum view_icmp_err e);
uint64_t probe_send_errors(const struct probe *pr, enum view_send_err e);
/* Release what a probe allocated itself (its error block); before its
 * target is freed. */
void probe_fini(struct probe *pr);
/* An input that matched no probe (the pinger's own count). */
void probe_ignored(struct probe_ctx *c, enum view_ignored why, const char *detail);

#endif
