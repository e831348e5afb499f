/*
 * render_metrics: the /metrics body as a resumable state machine (see
 * render_metrics.h).
 *
 * State: the family being written (f), whether its HELP/TYPE lines are out,
 * and within it either a sub-index (pinger-wide families: one line per
 * reason or bucket) or a probe cursor plus a sub-index inside that probe.
 * Every line is one record: it is written whole or not at all (the
 * buffer is rolled back to the line's start), so a fill can stop after
 * any line.  The probe being written is fetched again at the start of each
 * fill from the cursor saved before it, because what a view_probe points
 * at lives only until the loop runs again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "labels.h"
#include "render_metrics.h"
#include "tcp.h"
#include "stamp.h"
#include "udp.h"
#include "util.h"

/* ---- formatting ---------------------------------------------------------- */

static size_t fmt_u64(char *buf, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return n;
}

static size_t fmt_seconds(char *buf, uint64_t ns, bool keep_point)
{
	size_t n = fmt_u64(buf, ns / NSEC_PER_SEC);
	uint64_t frac = ns % NSEC_PER_SEC;
	if (frac == 0) {
		if (keep_point) {
			memcpy(buf + n, ".0", 3);
			n += 2;
		}
		return n;
	}
	char digits[10];
	for (int i = 8; i >= 0; i--) {
		digits[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	int last = 8;
	while (digits[last] == '0')
		last--;
	buf[n++] = '.';
	memcpy(buf + n, digits, (size_t)last + 1);
	n += (size_t)last + 1;
	buf[n] = '\0';
	return n;
}

size_t metrics_fmt_seconds(char *buf, uint64_t ns)
{
	return fmt_seconds(buf, ns, false);
}

size_t metrics_fmt_le(char *buf, uint64_t ns)
{
	if (ns == UINT64_MAX) {
		memcpy(buf, "+Inf", 5);
		return 4;
	}
	return fmt_seconds(buf, ns, true);
}

size_t metrics_escape(char *dst, size_t cap, const char *src, size_t n)
{
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		const char *rep = NULL;
		if (c == '\\')
			rep = "\\\\";
		else if (c == '"')
			rep = "\\\"";
		else if (c == '\n')
			rep = "\\n";
		if (rep) {
			if (out + 2 <= cap) {
				dst[out] = rep[0];
				dst[out + 1] = rep[1];
			}
			out += 2;
		} else {
			if (out < cap)
				dst[out] = c;
			out++;
		}
	}
	return out;
}

/* ---- the output buffer --------------------------------------------------- */

struct out {
	char *buf;
	size_t cap, len;
	size_t mark;                     /* start of the line being written */
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->len + n > o->cap) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static inline __attribute__((always_inline)) void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
	char b[24];
	put(o, b, fmt_u64(b, v));
}

static void put_secs(struct out *o, uint64_t ns)
{
	char b[32];
	put(o, b, fmt_seconds(b, ns, false));
}

static void put_double(struct out *o, double v)
{
	char b[40];
	int n = snprintf(b, sizeof b, "%.17g", v);
	put(o, b, n > 0 ? (size_t)n : 0);
}

static void put_esc(struct out *o, const char *s, size_t n)
{
	if (o->full)
		return;
	size_t room = o->cap - o->len;
	size_t need = metrics_escape(o->buf + o->len, room, s, n);
	if (need > room) {
		o->full = true;
		return;
	}
	o->len += need;
}

static void put_label(struct out *o, bool *first, const char *name, const char *value,
		      size_t value_len)
{
	puts_(o, *first ? "{" : ",");
	*first = false;
	puts_(o, name);
	puts_(o, "=\"");
	put_esc(o, value, value_len);
	puts_(o, "\"");
}

/* Start and finish a record: a line that does not fit is taken back. */
static void line_begin(struct out *o)
{
	o->mark = o->len;
}

static bool line_end(struct out *o)
{
	if (o->full) {
		o->len = o->mark;
		return false;
	}
	return true;
}

/* ---- probes' label sets -------------------------------------------------- */

static const char *family_str(uint8_t f)
{
	return f == 4 ? "4" : f == 6 ? "6" : "unresolved";
}

/* name{target="..",family="..",user labels[,extra="value"]  (still open) */
static void probe_labels(struct out *o, const char *name, const char *suffix,
			 const struct view_probe *p, const char *extra, const char *extra_value)
{
	bool first = true;
	puts_(o, name);
	if (suffix)
		puts_(o, suffix);
	put_label(o, &first, "target", p->target, strlen(p->target));
	const char *fam = family_str(p->family);
	put_label(o, &first, "family", fam, strlen(fam));
	size_t pos = 0;
	const char *ln, *lv;
	size_t lnl, lvl;
	while (labels_next(p->labels, &pos, &ln, &lnl, &lv, &lvl)) {
		char lname[LABEL_NAME_MAX + 1];
		if (lnl > LABEL_NAME_MAX)
			continue;
		memcpy(lname, ln, lnl);
		lname[lnl] = '\0';
		put_label(o, &first, lname, lv, lvl);
	}
	if (extra)
		put_label(o, &first, extra, extra_value, strlen(extra_value));
}

static void probe_series(struct out *o, const char *name, const char *suffix,
			 const struct view_probe *p, const char *extra, const char *extra_value)
{
	probe_labels(o, name, suffix, p, extra, extra_value);
	puts_(o, "} ");
}

/* ---- families ------------------------------------------------------------ */

enum emit { EMIT_LINE, EMIT_DONE };

struct ctx {
	struct out *o;
	const struct view_daemon *d;
	const struct view_pinger *g;     /* NULL without a pinger */
	const struct web_counters *web;  /* NULL without web */
	const struct metrics_proc *proc;
};

/* A per-probe family writes line `sub` of probe p, or says it is done. */
typedef enum emit (*probe_fn)(struct ctx *c, const struct view_probe *p, uint32_t sub);
/* A global family writes its line `sub`, or says it is done. */
typedef enum emit (*global_fn)(struct ctx *c, uint32_t sub);

struct family {
	const char *name;
	const char *type;
	const char *help;
	probe_fn probe;
	global_fn global;
	/* Optional: whether the family is written at all, and its type when
	 * it depends on the configuration. */
	bool (*present)(const struct ctx *c);
	const char *(*type_fn)(const struct ctx *c);
};

/* A per-probe family of one line: expr written by put (put_u64, put_secs). */
#define PROBE_FN(fn, name, put, expr)                                          \
	static enum emit fn(struct ctx *c, const struct view_probe *p, uint32_t sub) \
	{                                                                      \
		if (sub)                                                       \
			return EMIT_DONE;                                      \
		probe_series(c->o, name, NULL, p, NULL, NULL);                 \
		put(c->o, (expr));                                             \
		puts_(c->o, "\n");                                             \
		return EMIT_LINE;                                              \
	}

PROBE_FN(f_sent, "beacond_ping_sent_total", put_u64, p->run.sent)
PROBE_FN(f_received, "beacond_ping_received_total", put_u64, p->run.received)
PROBE_FN(f_lost, "beacond_ping_lost_total", put_u64, p->run.lost)
PROBE_FN(f_late, "beacond_ping_late_total", put_u64, p->run.late)
PROBE_FN(f_dups, "beacond_ping_duplicates_total", put_u64, p->run.duplicates)
PROBE_FN(f_in_flight, "beacond_ping_in_flight", put_u64, p->in_flight)
PROBE_FN(f_changes, "beacond_target_state_changes_total", put_u64, p->state_changes)
PROBE_FN(f_rtt_var, "beacond_ping_rtt_variation_seconds_total", put_secs, p->rtt_var_sum_ns)
PROBE_FN(f_since, "beacond_target_state_change_timestamp_seconds", put_secs, p->state_since_ns)
PROBE_FN(f_interval, "beacond_ping_interval_seconds", put_secs, p->interval_ns)

/* A per-probe family of one line per reason, counted in an array the view
 * indexes by its enum of reasons (n of them, named by name_of). */
#define PROBE_REASONS(fn, name, array, n, name_of, type)                        \
	static enum emit fn(struct ctx *c, const struct view_probe *p, uint32_t sub) \
	{                                                                      \
		if (sub >= (n))                                                \
			return EMIT_DONE;                                      \
		probe_series(c->o, name, NULL, p, "reason", name_of((type)sub)); \
		put_u64(c->o, p->array[sub]);                                  \
		puts_(c->o, "\n");                                             \
		return EMIT_LINE;                                              \
	}

PROBE_REASONS(f_send_errors, "beacond_ping_send_errors_total", send_errors, VIEW_SEND_COUNT_,
	      view_send_err_name, enum view_send_err)
PROBE_REASONS(f_icmp_errors, "beacond_ping_icmp_errors_total", icmp_errors, VIEW_ICMP_COUNT_,
	      view_icmp_err_name, enum view_icmp_err)

static bool hist_on(const struct ctx *c)
{
	return c->g && c->g->rtt_bounds.n > 0;
}

static const char *rtt_type(const struct ctx *c)
{
	/* With the histogram off the RTT family keeps its _sum and _count,
	 * which a summary without quantiles is. */
	return hist_on(c) ? "histogram" : "summary";
}

static enum emit f_rtt(struct ctx *c, const struct view_probe *p, uint32_t sub)
{
	const char *name = "beacond_ping_rtt_seconds";
	uint32_t n = hist_on(c) && p->rtt_hist ? c->g->rtt_bounds.n : 0;
	bool buckets = hist_on(c) && p->rtt_hist;
	uint64_t total = 0;

	if (buckets)
		for (uint32_t i = 0; i <= n; i++)
			total += p->rtt_hist[i];
	else
		total = p->run.received;
	uint32_t first_tail = buckets ? n + 1 : 0;
	if (buckets && sub < first_tail) {
		char le[32];
		uint64_t cum = 0;
		for (uint32_t i = 0; i <= sub; i++)
			cum += p->rtt_hist[i];
		metrics_fmt_le(le, sub == n ? UINT64_MAX : c->g->rtt_bounds.le_ns[sub]);
		probe_series(c->o, name, "_bucket", p, "le", le);
		put_u64(c->o, sub == n ? total : cum);
		puts_(c->o, "\n");
		return EMIT_LINE;
	}
	if (sub == first_tail) {
		probe_series(c->o, name, "_sum", p, NULL, NULL);
		put_secs(c->o, p->run_rtt.sum_ns);
		puts_(c->o, "\n");
		return EMIT_LINE;
	}
	if (sub == first_tail + 1) {
		probe_series(c->o, name, "_count", p, NULL, NULL);
		put_u64(c->o, total);
		puts_(c->o, "\n");
		return EMIT_LINE;
	}
	return EMIT_DONE;
}

static enum emit f_rtt_sq(struct ctx *c, const struct view_probe *p, uint32_t sub)
{
	if (sub)
		return EMIT_DONE;
	/* ns^2 in 128 bits -> s^2: 1e18 ns^2 per s^2. */
	double v = ((double)p->run_rtt.sum_sq[1] * 18446744073709551616.0 +
		    (double)p->run_rtt.sum_sq[0]) / 1e18;
	probe_series(c->o, "beacond_ping_rtt_squared_seconds_total", NULL, p, NULL, NULL);
	put_double(c->o, v);
	puts_(c->o, "\n");
	return EMIT_LINE;
}

static enum emit f_up(struct ctx *c, const struct view_probe *p, uint32_t sub)
{
	/* Absent while unknown: "no data yet" is not "down". */
	if (sub || p->state == HEALTH_UNKNOWN)
		return EMIT_DONE;
	probe_series(c->o, "beacond_target_up", NULL, p, NULL, NULL);
	puts_(c->o, p->state == HEALTH_UP ? "1\n" : "0\n");
	return EMIT_LINE;
}

static enum emit f_state(struct ctx *c, const struct view_probe *p, uint32_t sub)
{
	static const enum health_state states[] = { HEALTH_UNKNOWN, HEALTH_UP, HEALTH_DOWN };
	if (sub >= ARRAY_SIZE(states))
		return EMIT_DONE;
	probe_series(c->o, "beacond_target_state", NULL, p, "state",
		     health_state_name(states[sub]));
	puts_(c->o, p->state == states[sub] ? "1\n" : "0\n");
	return EMIT_LINE;
}

static void addr_str(const struct view_probe *p, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!p->resolved)
		return;
	const struct sockaddr_storage *ss = &p->addr;
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ss)->sin_addr,
			       buf, len);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr,
			       buf, len);
}

static enum emit f_info(struct ctx *c, const struct view_probe *p, uint32_t sub)
{
	if (sub)
		return EMIT_DONE;
	char addr[64];
	bool first = false;
	addr_str(p, addr, sizeof addr);
	probe_labels(c->o, "beacond_target_info", NULL, p, "host", p->host);
	put_label(c->o, &first, "address", addr, strlen(addr));
	put_label(c->o, &first, "socket", p->socket ? p->socket : "none",
		  strlen(p->socket ? p->socket : "none"));
	puts_(c->o, "} 1\n");
	return EMIT_LINE;
}

/* Global families. */

static void g_line_u64(struct ctx *c, const char *name, const char *lname, const char *lvalue,
		       uint64_t v)
{
	puts_(c->o, name);
	if (lname) {
		bool first = true;
		put_label(c->o, &first, lname, lvalue, strlen(lvalue));
		puts_(c->o, "}");
	}
	puts_(c->o, " ");
	put_u64(c->o, v);
	puts_(c->o, "\n");
}

static void g_line_secs(struct ctx *c, const char *name, uint64_t ns)
{
	puts_(c->o, name);
	puts_(c->o, " ");
	put_secs(c->o, ns);
	puts_(c->o, "\n");
}

/* A global family of one line, written while cond holds. */
#define GLOBAL_U64(fn, name, cond, expr)                                       \
	static enum emit fn(struct ctx *c, uint32_t sub)                       \
	{                                                                      \
		if (sub || !(cond))                                            \
			return EMIT_DONE;                                      \
		g_line_u64(c, name, NULL, NULL, (expr));                       \
		return EMIT_LINE;                                              \
	}
#define GLOBAL_SECS(fn, name, cond, ns)                                        \
	static enum emit fn(struct ctx *c, uint32_t sub)                       \
	{                                                                      \
		if (sub || !(cond))                                            \
			return EMIT_DONE;                                      \
		g_line_secs(c, name, (ns));                                    \
		return EMIT_LINE;                                              \
	}

/*
 * A global family of one line per reason (or flag): line sub is
 * name{label="reasons[sub].name"} and the count at reasons[sub].offset in
 * counters -- a struct counter_desc table like the services' own, help
 * unused.  No counters (the service is not there), no lines.
 */
#define REASON(type, value, field) { value, NULL, offsetof(type, field) }

static enum emit g_reasons(struct ctx *c, uint32_t sub, const char *name, const char *label,
			   const void *counters, const struct counter_desc *reasons, size_t n)
{
	if (!counters || sub >= n)
		return EMIT_DONE;
	g_line_u64(c, name, label, reasons[sub].name, counter_get(counters, &reasons[sub]));
	return EMIT_LINE;
}

#define GLOBAL_REASONS(fn, name, label, counters, reasons)                     \
	static enum emit fn(struct ctx *c, uint32_t sub)                       \
	{                                                                      \
		return g_reasons(c, sub, name, label, (counters), reasons,     \
				 ARRAY_SIZE(reasons));                         \
	}

static enum emit g_build(struct ctx *c, uint32_t sub)
{
	if (sub)
		return EMIT_DONE;
	g_line_u64(c, "beacond_build_info", "version", c->d->version ? c->d->version : "", 1);
	return EMIT_LINE;
}

GLOBAL_SECS(g_start, "process_start_time_seconds", true, c->d->start_wall_ns)
GLOBAL_SECS(g_cpu, "process_cpu_seconds_total", c->proc->have_cpu, c->proc->cpu_ns)
GLOBAL_U64(g_rss, "process_resident_memory_bytes", c->proc->have_rss, c->proc->rss_bytes)
GLOBAL_U64(g_fds, "process_open_fds", c->proc->have_fds, c->proc->open_fds)
GLOBAL_U64(g_max_fds, "process_max_fds", c->proc->have_max_fds, c->proc->max_fds)
GLOBAL_U64(g_reload_ok, "beacond_config_last_reload_successful", true, c->d->last_reload_ok ? 1 : 0)

GLOBAL_SECS(g_reload_ts, "beacond_config_last_reload_success_timestamp_seconds", true,
	    c->d->last_reload_ok_wall_ns)

static enum emit g_reloads(struct ctx *c, uint32_t sub)
{
	if (sub == 0)
		g_line_u64(c, "beacond_config_reloads_total", "result", "success",
			   c->d->reloads - c->d->reload_failures);
	else if (sub == 1)
		g_line_u64(c, "beacond_config_reloads_total", "result", "failure",
			   c->d->reload_failures);
	else
		return EMIT_DONE;
	return EMIT_LINE;
}

static bool have_pinger(const struct ctx *c)
{
	return c->g != NULL;
}

GLOBAL_U64(g_probes, "beacond_ping_probes", c->g, c->g->probes)

static enum emit g_ignored(struct ctx *c, uint32_t sub)
{
	if (!c->g || sub >= VIEW_IGN_COUNT_)
		return EMIT_DONE;
	g_line_u64(c, "beacond_ping_ignored_total", "reason",
		   view_ignored_name((enum view_ignored)sub), c->g->ignored[sub]);
	return EMIT_LINE;
}

static bool late_on(const struct ctx *c)
{
	return c->g && c->g->late_n_buckets > 0 && c->g->late_counts && c->g->late_le_ns;
}

/* The pinger keeps send lateness in fine buckets (2 000 of them); the
 * exposition folds them into these bounds: a source bucket counts under
 * every exported bound at or above its own upper bound, so each count is
 * exact whenever the bounds line up (they do for the pinger's 10 us / 1 ms
 * steps) and never over-counts when they do not. */
static const uint64_t late_export_ns[] = {
	10 * NSEC_PER_USEC, 50 * NSEC_PER_USEC, 100 * NSEC_PER_USEC, 250 * NSEC_PER_USEC,
	500 * NSEC_PER_USEC, 1 * NSEC_PER_MSEC, 2500 * NSEC_PER_USEC, 5 * NSEC_PER_MSEC,
	10 * NSEC_PER_MSEC, 25 * NSEC_PER_MSEC, 50 * NSEC_PER_MSEC, 100 * NSEC_PER_MSEC,
	250 * NSEC_PER_MSEC, 500 * NSEC_PER_MSEC, 1 * NSEC_PER_SEC,
};

static enum emit g_lateness(struct ctx *c, uint32_t sub)
{
	const struct view_pinger *g = c->g;
	const char *name = "beacond_ping_send_lateness_seconds";
	const uint32_t n = ARRAY_SIZE(late_export_ns);
	if (!late_on(c))
		return EMIT_DONE;
	if (sub <= n) {
		char le[32];
		uint64_t cum = 0;
		if (sub == n) {
			cum = g->late_count;
			metrics_fmt_le(le, UINT64_MAX);
		} else {
			/* The last source bucket is +Inf (view.h). */
			for (uint32_t i = 0; i + 1 < g->late_n_buckets; i++)
				if (g->late_le_ns[i] <= late_export_ns[sub])
					cum += g->late_counts[i];
			metrics_fmt_le(le, late_export_ns[sub]);
		}
		puts_(c->o, name);
		puts_(c->o, "_bucket");
		bool first = true;
		put_label(c->o, &first, "le", le, strlen(le));
		puts_(c->o, "} ");
		put_u64(c->o, cum);
		puts_(c->o, "\n");
		return EMIT_LINE;
	}
	if (sub == n + 1) {
		g_line_secs(c, "beacond_ping_send_lateness_seconds_sum", g->late_sum_ns);
		return EMIT_LINE;
	}
	if (sub == n + 2) {
		g_line_u64(c, "beacond_ping_send_lateness_seconds_count", NULL, NULL, g->late_count);
		return EMIT_LINE;
	}
	return EMIT_DONE;
}

GLOBAL_U64(g_tx_stamped, "beacond_ping_tx_kernel_stamped_total", c->g, c->g->tx_stamped)

/* TCP and UDP: the services count as a whole, so no listener label. */
GLOBAL_U64(g_tcp_conns, "beacond_tcp_connections", c->d->tcp, c->d->tcp->active)
GLOBAL_U64(g_tcp_acc, "beacond_tcp_connections_accepted_total", c->d->tcp, c->d->tcp->accepted)
GLOBAL_U64(g_tcp_in, "beacond_tcp_received_bytes_total", c->d->tcp, c->d->tcp->bytes_in)
GLOBAL_U64(g_tcp_out, "beacond_tcp_sent_bytes_total", c->d->tcp, c->d->tcp->bytes_out)
GLOBAL_U64(g_tcp_to, "beacond_tcp_idle_timeouts_total", c->d->tcp, c->d->tcp->timeouts)
GLOBAL_U64(g_tcp_err, "beacond_tcp_errors_total", c->d->tcp, c->d->tcp->errors)
GLOBAL_U64(g_tcp_bp, "beacond_tcp_backpressure_total", c->d->tcp, c->d->tcp->backpressure)

static const struct counter_desc tcp_refused[] = {
	REASON(struct tcp_counters, "limit", refused_limit),
	REASON(struct tcp_counters, "acl", refused_acl),
	REASON(struct tcp_counters, "fds", refused_fd),
};
GLOBAL_REASONS(g_tcp_refused, "beacond_tcp_connections_refused_total", "reason", c->d->tcp,
	       tcp_refused)

GLOBAL_U64(g_udp_rx, "beacond_udp_datagrams_received_total", c->d->udp, c->d->udp->received)
GLOBAL_U64(g_udp_echo, "beacond_udp_datagrams_echoed_total", c->d->udp, c->d->udp->echoed)
GLOBAL_U64(g_udp_in, "beacond_udp_received_bytes_total", c->d->udp, c->d->udp->bytes_in)
GLOBAL_U64(g_udp_out, "beacond_udp_sent_bytes_total", c->d->udp, c->d->udp->bytes_out)
GLOBAL_U64(g_udp_evict, "beacond_udp_rate_evictions_total", c->d->udp, c->d->udp->rate_evictions)

static const struct counter_desc udp_drops[] = {
	REASON(struct udp_counters, "truncated", drop_truncated),
	REASON(struct udp_counters, "port", drop_port),
	REASON(struct udp_counters, "address", drop_addr),
	REASON(struct udp_counters, "acl", drop_acl),
	REASON(struct udp_counters, "rate", drop_rate),
	REASON(struct udp_counters, "send", drop_send),
};
GLOBAL_REASONS(g_udp_drop, "beacond_udp_datagrams_dropped_total", "reason", c->d->udp,
	       udp_drops)

/* The STAMP reflector (RFC 8762): counted even while disabled. */
#define ST c->d->stamp
GLOBAL_U64(g_st_rx, "beacond_stamp_packets_received_total", ST, ST->received)
GLOBAL_U64(g_st_refl, "beacond_stamp_packets_reflected_total", ST, ST->reflected)
GLOBAL_U64(g_st_short, "beacond_stamp_short_requests_reflected_total", ST, ST->short_reflected)
GLOBAL_U64(g_st_in, "beacond_stamp_received_bytes_total", ST, ST->bytes_in)
GLOBAL_U64(g_st_out, "beacond_stamp_sent_bytes_total", ST, ST->bytes_out)
GLOBAL_U64(g_st_tx, "beacond_stamp_tx_kernel_stamps_total", ST, ST->tx_stamps)
GLOBAL_U64(g_st_sess, "beacond_stamp_sessions", ST, ST->sessions_active)
GLOBAL_U64(g_st_created, "beacond_stamp_sessions_created_total", ST, ST->sessions_created)
GLOBAL_U64(g_st_expired, "beacond_stamp_sessions_expired_total", ST, ST->sessions_expired)
GLOBAL_U64(g_st_evict, "beacond_stamp_rate_evictions_total", ST, ST->rate_evictions)

static const struct counter_desc stamp_drops[] = {
	REASON(struct stamp_counters, "truncated", drop_truncated),
	REASON(struct stamp_counters, "acl", drop_acl),
	REASON(struct stamp_counters, "address", drop_addr),
	REASON(struct stamp_counters, "port", drop_port),
	REASON(struct stamp_counters, "runt", drop_runt),
	REASON(struct stamp_counters, "short", drop_short),
	REASON(struct stamp_counters, "auth", drop_auth),
	REASON(struct stamp_counters, "rate", drop_rate),
	REASON(struct stamp_counters, "session", drop_session),
	REASON(struct stamp_counters, "send", drop_send),
};
GLOBAL_REASONS(g_st_drop, "beacond_stamp_packets_dropped_total", "reason", ST, stamp_drops)

static const struct counter_desc stamp_tlv_flags[] = {
	REASON(struct stamp_counters, "unknown", tlv_unknown),
	REASON(struct stamp_counters, "malformed", tlv_malformed),
};
GLOBAL_REASONS(g_st_tlv, "beacond_stamp_tlvs_flagged_total", "flag", ST, stamp_tlv_flags)
#undef ST

GLOBAL_U64(g_web_conns, "beacond_web_connections", c->web, c->web->active)
GLOBAL_U64(g_web_acc, "beacond_web_connections_accepted_total", c->web, c->web->accepted)
GLOBAL_U64(g_web_hto, "beacond_web_header_timeouts_total", c->web, c->web->header_timeouts)
GLOBAL_U64(g_web_evicted, "beacond_web_evictions_total", c->web, c->web->evicted)
GLOBAL_SECS(g_web_cpu, "beacond_web_cpu_seconds_total", c->web, c->web->cpu_ns)

GLOBAL_U64(g_web_bytes, "beacond_web_sent_body_bytes_total", c->web, c->web->body_bytes)
GLOBAL_U64(g_web_slices, "beacond_web_body_suspensions_total", c->web, c->web->suspensions)

static const struct counter_desc web_refused[] = {
	REASON(struct web_counters, "acl", refused_acl),
	REASON(struct web_counters, "limit", refused_limit),
};
GLOBAL_REASONS(g_web_refused, "beacond_web_connections_refused_total", "reason", c->web,
	       web_refused)

static enum emit g_web_requests(struct ctx *c, uint32_t sub)
{
	if (!c->web || sub >= 3)
		return EMIT_DONE;
	static const char *const codes[] = { "ok", "not_found", "bad_method" };
	uint64_t other = c->web->not_found + c->web->bad_method;
	uint64_t ok = c->web->requests > other ? c->web->requests - other : 0;
	const uint64_t v[] = { ok, c->web->not_found, c->web->bad_method };
	g_line_u64(c, "beacond_web_requests_total", "result", codes[sub], v[sub]);
	return EMIT_LINE;
}

#define PF(n, t, h, fn) { n, t, h, fn, NULL, NULL, NULL }
#define GF(n, t, h, fn) { n, t, h, NULL, fn, NULL, NULL }
static const struct family families[] = {
	GF("beacond_build_info", "gauge", "The beacond version (always 1).", g_build),
	GF("process_start_time_seconds", "gauge", "Start time of the process since the epoch, in seconds.", g_start),
	GF("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", g_cpu),
	GF("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", g_rss),
	GF("process_open_fds", "gauge", "Number of open file descriptors.", g_fds),
	GF("process_max_fds", "gauge", "Maximum number of open file descriptors.", g_max_fds),
	GF("beacond_config_last_reload_successful", "gauge", "Whether the last configuration reload succeeded (1 while there was none).", g_reload_ok),
	GF("beacond_config_last_reload_success_timestamp_seconds", "gauge", "When the configuration in force was loaded, since the epoch.", g_reload_ts),
	GF("beacond_config_reloads_total", "counter", "Configuration reloads by result.", g_reloads),

	PF("beacond_ping_sent_total", "counter", "Echo requests sent, failed sends included.", f_sent),
	PF("beacond_ping_received_total", "counter", "Echo replies received before the timeout.", f_received),
	PF("beacond_ping_lost_total", "counter", "Requests counted lost: timed out, refused by an ICMP error, or not sent (sent - received - lost = in flight).", f_lost),
	PF("beacond_ping_late_total", "counter", "Replies that arrived after their request was counted lost.", f_late),
	PF("beacond_ping_duplicates_total", "counter", "Second and further replies to one request.", f_dups),
	PF("beacond_ping_in_flight", "gauge", "Requests sent and not yet answered or timed out.", f_in_flight),
	PF("beacond_ping_send_errors_total", "counter", "Requests that could not be sent, by reason.", f_send_errors),
	PF("beacond_ping_icmp_errors_total", "counter", "ICMP errors received about the probe's requests, by reason.", f_icmp_errors),
	{ "beacond_ping_rtt_seconds", "histogram", "Round-trip times of the replies received in time, in seconds.", f_rtt, NULL, NULL, rtt_type },
	PF("beacond_ping_rtt_squared_seconds_total", "counter", "Sum of the squared round-trip times, in seconds squared (for the standard deviation).", f_rtt_sq),
	PF("beacond_ping_rtt_variation_seconds_total", "counter", "Sum of |RTT - previous RTT| over consecutive replies, in seconds (for the jitter).", f_rtt_var),
	PF("beacond_ping_interval_seconds", "gauge", "Time between two requests of the probe, in seconds.", f_interval),
	PF("beacond_target_up", "gauge", "1 when the target is up, 0 when down; absent while its state is unknown.", f_up),
	PF("beacond_target_state", "gauge", "The target's state: 1 for the current one of unknown, up and down.", f_state),
	PF("beacond_target_state_change_timestamp_seconds", "gauge", "When the target last changed state (or its probe started), since the epoch.", f_since),
	PF("beacond_target_state_changes_total", "counter", "Up/down state changes.", f_changes),
	PF("beacond_target_info", "gauge", "The target's host as configured, its address and socket kind (always 1).", f_info),

	{ "beacond_ping_probes", "gauge", "Probes (target and family pairs) configured.", NULL, g_probes, have_pinger, NULL },
	{ "beacond_ping_ignored_total", "counter", "Replies and errors read but not attributed to any probe, by reason.", NULL, g_ignored, have_pinger, NULL },
	{ "beacond_ping_send_lateness_seconds", "histogram", "How late requests were sent against their schedule, in seconds.", NULL, g_lateness, late_on, NULL },
	{ "beacond_ping_tx_kernel_stamped_total", "counter", "Send times taken from kernel transmit timestamps.", NULL, g_tx_stamped, have_pinger, NULL },

	GF("beacond_tcp_connections", "gauge", "TCP echo connections open.", g_tcp_conns),
	GF("beacond_tcp_connections_accepted_total", "counter", "TCP echo connections accepted.", g_tcp_acc),
	GF("beacond_tcp_connections_refused_total", "counter", "TCP echo connections closed at once, by reason.", g_tcp_refused),
	GF("beacond_tcp_received_bytes_total", "counter", "Bytes read from TCP echo clients.", g_tcp_in),
	GF("beacond_tcp_sent_bytes_total", "counter", "Bytes written to TCP echo clients.", g_tcp_out),
	GF("beacond_tcp_idle_timeouts_total", "counter", "TCP echo connections closed by idle_timeout.", g_tcp_to),
	GF("beacond_tcp_errors_total", "counter", "TCP echo connections ended by a reset or another error.", g_tcp_err),
	GF("beacond_tcp_backpressure_total", "counter", "Times a TCP echo connection reached max_pending.", g_tcp_bp),
	GF("beacond_udp_datagrams_received_total", "counter", "UDP echo datagrams received.", g_udp_rx),
	GF("beacond_udp_datagrams_echoed_total", "counter", "UDP echo datagrams sent back.", g_udp_echo),
	GF("beacond_udp_datagrams_dropped_total", "counter", "UDP echo datagrams not answered, by reason.", g_udp_drop),
	GF("beacond_udp_received_bytes_total", "counter", "Bytes received in UDP echo datagrams.", g_udp_in),
	GF("beacond_udp_sent_bytes_total", "counter", "Bytes sent in UDP echo datagrams.", g_udp_out),
	GF("beacond_udp_rate_evictions_total", "counter", "Sources pushed out of the full rate-limit table.", g_udp_evict),
	GF("beacond_stamp_packets_received_total", "counter", "STAMP test packets received.", g_st_rx),
	GF("beacond_stamp_packets_reflected_total", "counter", "STAMP test packets reflected.", g_st_refl),
	GF("beacond_stamp_packets_dropped_total", "counter", "STAMP test packets not answered, by reason.", g_st_drop),
	GF("beacond_stamp_short_requests_reflected_total", "counter", "STAMP requests under 44 bytes answered with 44 bytes.", g_st_short),
	GF("beacond_stamp_received_bytes_total", "counter", "Bytes received in STAMP test packets.", g_st_in),
	GF("beacond_stamp_sent_bytes_total", "counter", "Bytes sent in STAMP replies.", g_st_out),
	GF("beacond_stamp_tlvs_flagged_total", "counter", "STAMP TLVs answered with the U (unknown) or M (malformed) flag.", g_st_tlv),
	GF("beacond_stamp_tx_kernel_stamps_total", "counter", "Kernel transmit stamps read for Follow-Up Telemetry (stateful mode).", g_st_tx),
	GF("beacond_stamp_sessions", "gauge", "STAMP sessions in the stateful table.", g_st_sess),
	GF("beacond_stamp_sessions_created_total", "counter", "STAMP sessions created (stateful mode).", g_st_created),
	GF("beacond_stamp_sessions_expired_total", "counter", "STAMP sessions expired (stateful mode).", g_st_expired),
	GF("beacond_stamp_rate_evictions_total", "counter", "Sources pushed out of the STAMP reflector's full rate-limit table.", g_st_evict),

	GF("beacond_web_connections", "gauge", "HTTP connections open on the [web] listener.", g_web_conns),
	GF("beacond_web_connections_accepted_total", "counter", "HTTP connections accepted.", g_web_acc),
	GF("beacond_web_connections_refused_total", "counter", "HTTP connections closed at once, by reason.", g_web_refused),
	GF("beacond_web_header_timeouts_total", "counter", "HTTP connections closed because a request did not arrive within header_timeout.", g_web_hto),
	GF("beacond_web_evictions_total", "counter", "Connections that waited longest for a request, closed to admit a new client at max_connections.", g_web_evicted),
	GF("beacond_web_requests_total", "counter", "HTTP requests answered, by result.", g_web_requests),
	GF("beacond_web_cpu_seconds_total", "counter", "CPU time spent serving HTTP (accepting, parsing, rendering, compressing, sending), in seconds.", g_web_cpu),
	GF("beacond_web_sent_body_bytes_total", "counter", "HTTP response body bytes sent (after compression).", g_web_bytes),
	GF("beacond_web_body_suspensions_total", "counter", "Times a response body was paused because the loop iteration's rendering budget was spent (resumed in the next iteration).", g_web_slices),
};
#undef PF
#undef GF

/* ---- the producer ---------------------------------------------------------- */

struct metrics_stream {
	struct stream s;
	struct metrics_source src;
	struct metrics_proc proc;
	size_t f;                        /* family */
	bool header_done;
	bool have_probe;                 /* in the middle of a probe's lines */
	bool present;                    /* the family writes lines (decided once) */
	struct view_cursor cur;          /* the next probe */
	struct view_cursor at;           /* the probe being written */
	struct view_cursor first;        /* the walk's start, for this family */
	uint32_t sub;
	/* The pinger-wide figures, read once when the scrape starts (reading
	 * them walks every probe), with a copy of the histogram bounds; gen0
	 * is the probe set they belong to.  Probe families of a later
	 * generation (a reload mid-scrape) are left out, so a probe's
	 * histogram is never read with another set's bounds. */
	bool have_g;
	struct view_pinger g;
	uint64_t gen0;
	uint64_t le[VIEW_RTT_BUCKETS_MAX];
};

static bool family_present(const struct family *fam, const struct ctx *c)
{
	if (fam->present)
		return fam->present(c);
	return true;
}

/* A family that would have HELP and TYPE but no sample is still valid text
 * format, but empty families are noise: global ones are checked by asking
 * for their first line. */
static bool family_has_lines(const struct family *fam, struct ctx *c)
{
	if (!family_present(fam, c))
		return false;
	if (fam->probe)
		return true;
	char scratch[STREAM_MIN_CAP];
	struct out tmp = { .buf = scratch, .cap = sizeof scratch };
	struct out *saved = c->o;
	c->o = &tmp;
	enum emit e = fam->global(c, 0);
	c->o = saved;
	return e == EMIT_LINE;
}

static ssize_t metrics_fill(struct stream *s, char *buf, size_t cap)
{
	struct metrics_stream *m = container_of(s, struct metrics_stream, s);
	struct out o = { .buf = buf, .cap = cap };
	struct view_daemon d;
	struct ctx c = { .o = &o, .d = &d, .proc = &m->proc };

	m->src.daemon(m->src.arg, &d);
	if (m->have_g)
		c.g = &m->g;
	if (m->src.web)
		c.web = m->src.web(m->src.arg);

	struct view_probe p;
	if (m->have_probe) {
		struct view_cursor again = m->at;
		if (!m->src.next(m->src.arg, &again, &p)) {
			/* A reload replaced the probes: end this family here. */
			m->have_probe = false;
			m->f++;
			m->header_done = false;
		}
	}

	while (m->f < ARRAY_SIZE(families)) {
		const struct family *fam = &families[m->f];
		if (!m->header_done) {
			m->present = family_has_lines(fam, &c);
			if (m->present && fam->probe) {
				m->src.begin(m->src.arg, &m->first);
				m->present = m->have_g && m->first.gen == m->gen0;  /* see gen0 */
			}
			if (!m->present) {
				m->f++;
				continue;
			}
			line_begin(&o);
			puts_(&o, "# HELP ");
			puts_(&o, fam->name);
			puts_(&o, " ");
			puts_(&o, fam->help);
			puts_(&o, "\n# TYPE ");
			puts_(&o, fam->name);
			puts_(&o, " ");
			puts_(&o, fam->type_fn ? fam->type_fn(&c) : fam->type);
			puts_(&o, "\n");
			if (!line_end(&o))
				break;
			m->header_done = true;
			m->sub = 0;
			m->have_probe = false;
			if (fam->probe)
				m->cur = m->first;
		}
		if (fam->global) {
			line_begin(&o);
			enum emit e = fam->global(&c, m->sub);
			if (e == EMIT_DONE) {
				m->f++;
				m->header_done = false;
				continue;
			}
			if (!line_end(&o))
				break;
			m->sub++;
			continue;
		}
		if (!m->have_probe) {
			m->at = m->cur;
			if (!m->src.next(m->src.arg, &m->cur, &p)) {
				m->f++;
				m->header_done = false;
				continue;
			}
			m->have_probe = true;
			m->sub = 0;
		}
		line_begin(&o);
		enum emit e = fam->probe(&c, &p, m->sub);
		if (e == EMIT_DONE) {
			m->have_probe = false;
			continue;
		}
		if (!line_end(&o))
			break;
		m->sub++;
	}
	if (o.len == 0 && m->f < ARRAY_SIZE(families))
		return -1;  /* a line longer than cap: cannot progress */
	return (ssize_t)o.len;
}

static void metrics_free(struct stream *s)
{
	free(container_of(s, struct metrics_stream, s));
}

struct stream *metrics_stream_new(const struct metrics_source *src,
				  const struct metrics_proc *proc)
{
	struct metrics_stream *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	m->s.fill = metrics_fill;
	m->s.free = metrics_free;
	m->src = *src;
	m->proc = *proc;
	if (src->global && src->begin && src->next) {
		struct view_cursor c;
		src->global(src->arg, &m->g);
		uint32_t n = m->g.rtt_bounds.n;
		if (n > VIEW_RTT_BUCKETS_MAX)
			n = 0;
		if (n)
			memcpy(m->le, m->g.rtt_bounds.le_ns, n * sizeof *m->le);
		m->g.rtt_bounds.n = n;
		m->g.rtt_bounds.le_ns = m->le;
		src->begin(src->arg, &c);
		m->gen0 = c.gen;
		m->have_g = true;
	}
	return &m->s;
}
