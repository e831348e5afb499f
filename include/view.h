/*
 * view: the one read-only look at what the daemon measures.  The metrics
 * (web), the pages, the control socket (beaconctl) and the history all read
 * probe and service state through these functions and nothing else; none
 * of them writes it ("reads never write": a scrape or a `beaconctl
 * targets` never resets a counter).
 *
 * Probes are walked with a cursor so that a writer producing output for
 * 10 000 targets can stop when its socket buffer is full and resume on the
 * next write event.  A reload that changes the probe set bumps the
 * generation; a cursor from an older generation ends its walk (the writer
 * then finishes its response with what it has, or restarts), so a walk
 * never reads a freed probe.
 *
 * Everything a struct view_probe points at is owned by the pinger and
 * valid until the next return to the loop (a reload, or a probe freed);
 * copy what must live longer.
 */
#ifndef BEACOND_VIEW_H
#define BEACOND_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "stats.h"

struct pinger;
struct daemon;

/* Why a send failed: a small fixed set, the `reason` label of
 * beacond_ping_send_errors_total. */
enum view_send_err {
	VIEW_SEND_UNREACHABLE,   /* EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN */
	VIEW_SEND_TOO_BIG,       /* EMSGSIZE (dont_fragment) */
	VIEW_SEND_NO_BUFFER,     /* ENOBUFS, EAGAIN */
	VIEW_SEND_PERMISSION,    /* EPERM, EACCES (a firewall) */
	VIEW_SEND_NO_SOCKET,     /* the probe's socket could not be opened */
	VIEW_SEND_OTHER,
	VIEW_SEND_COUNT_
};
const char *view_send_err_name(enum view_send_err e);

/* ICMP errors attributed to a probe, grouped (icmp.h's reasons are finer). */
enum view_icmp_err {
	VIEW_ICMP_UNREACHABLE,       /* net/host/protocol/port/address unreachable, no route */
	VIEW_ICMP_PROHIBITED,        /* admin prohibited, source policy, reject route */
	VIEW_ICMP_TOO_BIG,           /* frag needed, packet too big */
	VIEW_ICMP_TIME_EXCEEDED,     /* ttl exceeded, reassembly timeout */
	VIEW_ICMP_OTHER,
	VIEW_ICMP_COUNT_
};
const char *view_icmp_err_name(enum view_icmp_err e);

/* Replies and errors the pinger read but could not attribute to a probe
 * (pinger-wide; the `reason` label of beacond_ping_ignored_total). */
enum view_ignored {
	VIEW_IGN_DECODE,         /* truncated, bad header, bad checksum */
	VIEW_IGN_UNSOLICITED,    /* a type we never asked for */
	VIEW_IGN_IDENT,
	VIEW_IGN_SEQ,            /* no request with that sequence number */
	VIEW_IGN_SOURCE,         /* from, or about, another address */
	VIEW_IGN_COOKIE,         /* another process's request (raw sockets) */
	VIEW_IGN_LENGTH,         /* payload not the size we sent */
	VIEW_IGN_COUNT_
};
const char *view_ignored_name(enum view_ignored e);

/* The RTT histogram's upper bounds, shared by every probe: `n` finite
 * bounds in ascending order, plus the implicit +Inf bucket.  n == 0: the
 * histogram is off and view_probe.rtt_hist is NULL. */
#define VIEW_RTT_BUCKETS_MAX 64
struct view_rtt_bounds {
	uint32_t n;
	const uint64_t *le_ns;
};

/* What identifies a probe to the hooks (the history's file key). */
struct view_probe_key {
	const char *target;
	const char *host;
	uint8_t family;              /* 4 or 6 */
};

struct view_probe {
	/* Identity.  A probe is one (target, family) pair. */
	const char *target;          /* [target NAME] */
	const char *host;            /* as configured: literal or name */
	const char *labels;          /* NULL, or the target's `labels` as
				      * validated by config: "k=v,k=v" */
	uint8_t family;              /* 4 or 6; 0 until an auto name resolves */
	bool resolved;               /* addr is valid */
	struct sockaddr_storage addr;
	const char *socket;          /* "dgram", "raw", or "none" */
	uint32_t index;              /* position in the walk (stable until a reload) */

	/* Settings in force. */
	uint64_t interval_ns, timeout_ns;
	uint32_t payload_size, down_after, up_after;

	/* Up/down.  state_since_ns is CLOCK_REALTIME ns of the last change,
	 * or of the probe's start while it has never changed (kept to the
	 * second: a whole number of seconds). */
	enum health_state state;
	uint64_t state_since_ns;
	uint64_t state_changes;

	/* Counters since the probe started; they survive reloads while the
	 * target's identity is unchanged.  lost counts only requests whose
	 * timeout has passed (or that an ICMP error refused, or that could not
	 * be sent), so sent - received - lost = in_flight. */
	struct stats_counts run;
	struct stats_rtt run_rtt;    /* sum, square sum, min, max, jitter */
	uint64_t rtt_var_sum_ns;     /* sum of |RTT - previous RTT| */
	uint64_t send_errors[VIEW_SEND_COUNT_];
	uint64_t icmp_errors[VIEW_ICMP_COUNT_];
	uint32_t in_flight;
	uint64_t last_rtt_ns;        /* STATS_NO_RTT before the first reply */
	/* Per-bucket (not cumulative) counts, bounds.n + 1 of them (the last
	 * is +Inf); NULL when the histogram is off. */
	const uint64_t *rtt_hist;

	/* The current summary window (what the next summary line prints). */
	struct stats_period window;
	uint64_t window_start_ns;    /* CLOCK_MONOTONIC */
};

/* Pinger-wide figures. */
struct view_pinger {
	size_t probes, up, down, unknown, unresolved;
	uint64_t ignored[VIEW_IGN_COUNT_];
	uint64_t tx_stamped;         /* send times replaced by kernel stamps */
	const char *socket_kinds;    /* e.g. "4:dgram 6:raw" (what is open) */
	const char *timestamping;    /* "kernel-tx+rx", "kernel-rx", ... */
	/* Send lateness: per-bucket counts and their upper bounds in ns (the
	 * last bucket is +Inf), and the worst seen. */
	uint32_t late_n_buckets;
	const uint64_t *late_le_ns;
	const uint64_t *late_counts;
	uint64_t late_sum_ns, late_count, late_max_ns;
	struct view_rtt_bounds rtt_bounds;
};

struct view_cursor {
	uint64_t gen;
	uint32_t next;
};

/* Start a walk at the first probe. */
void pinger_view_begin(const struct pinger *p, struct view_cursor *c);
/* Fill *out with the next probe and advance; false at the end, or when a
 * reload since view_begin has changed the probe set. */
bool pinger_view_next(const struct pinger *p, struct view_cursor *c, struct view_probe *out);
/* The probes of the target NAME (one, or two for family = both): fills up
 * to n and returns how many the target has; 0 if there is no such target. */
size_t pinger_view_target(const struct pinger *p, const char *name,
			  struct view_probe *out, size_t n);
void pinger_view_global(const struct pinger *p, struct view_pinger *out);

/*
 * Outcome hook: how the history (and anything else that needs each
 * result, not only the counters) sees every resolved request, without the
 * probe knowing who listens.  Each probe carries one opaque slot, NULL at
 * first, kept across reloads while the target's identity is unchanged;
 * the hook may hang its own per-probe state there.
 *   on_outcome  one request resolved: rtt_ns is its RTT, or STATS_NO_RTT
 *               when it was lost (timeout, ICMP error, failed send).
 *               now_ns is CLOCK_MONOTONIC.
 *   on_state    the up/down state machine moved from -> to (the change the
 *               `event=state` log line reports), because of the outcome
 *               that on_outcome is told of right after.  Optional (NULL).
 *               A hook of its own rather than the state passed with every
 *               outcome: changes are rare, and the listener need not keep
 *               the previous state to find them.
 *   Both only for probes of targets with `history = yes` (the history is
 *   the one listener: the others cost it nothing).
 *   on_gone     the probe is being freed (target removed or changed):
 *               release *slot.  Not called for a NULL slot.
 * All are called from the loop, never re-entered, and must not block.
 */
struct view_probe;
/* The probe a hook is told about.  Its names are read only when the hook
 * asks (view_probe_key): they sit in a cache line that sending and
 * receiving never touch, and a hook whose slot is set up already needs
 * at most the family. */
struct view_probe_src;
struct view_probe_key view_probe_key(const struct view_probe_src *src);
uint8_t view_probe_family(const struct view_probe_src *src);
struct pinger_hooks {
	void (*on_outcome)(void *arg, void **slot, const struct view_probe_src *src,
			   uint64_t now_ns, uint64_t rtt_ns);
	void (*on_state)(void *arg, void **slot, const struct view_probe_src *src,
			 uint64_t now_ns, enum health_state from, enum health_state to);
	void (*on_gone)(void *arg, void **slot);
	void *arg;
};
void pinger_set_hooks(struct pinger *p, const struct pinger_hooks *hooks);

/* The daemon as a whole: what `beaconctl status` and the process-level
 * metrics print.  Strings are owned by the daemon (valid until the next
 * return to the loop). */
struct tcp_counters;
struct udp_counters;
struct web_counters;
struct endpoint;
struct stamp_counters;
struct history_svc;
struct view_daemon {
	const char *version;
	const char *config_path;
	uint64_t start_wall_ns;          /* CLOCK_REALTIME ns */
	uint64_t start_mono_ns;          /* CLOCK_MONOTONIC ns */
	uint64_t config_loaded_wall_ns;  /* the configuration in force */
	/* The last reload attempt (none yet: reloads == 0). */
	uint64_t reloads, reload_failures;
	bool last_reload_ok;             /* true while there was none */
	uint64_t last_reload_wall_ns;
	uint64_t last_reload_ok_wall_ns; /* = config_loaded_wall_ns */
	const char *last_reload_error;   /* "" unless the last one failed */
	const struct tcp_counters *tcp;
	const struct udp_counters *udp;
	const struct stamp_counters *stamp;  /* stamp.h; counted even when disabled */
	const struct web_counters *web;      /* web.h */
	const struct pinger *pinger;
	/* The latency history (history_svc.h): per probe its rounds, recent
	 * outcomes and state changes; NULL when there is none. */
	const struct history_svc *history;
	/* The listeners in force (addresses as configured, or as systemd
	 * passed them), and the control socket ("" when off). */
	const struct endpoint *tcp_listen, *udp_listen, *web_listen;
	size_t n_tcp_listen, n_udp_listen, n_web_listen;
	const char *control_socket;
	bool control_from_systemd;
	/* What the last successful reload changed, for `beaconctl status`
	 * ("" before the first): "3 targets added, 1 removed, listeners
	 * unchanged". */
	const char *last_reload_summary;
};
void daemon_view(const struct daemon *d, struct view_daemon *out);

#endif
