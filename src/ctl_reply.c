/*
 * ctl_reply: status, targets, target NAME and stats (see ctl_reply.h).
 * Producers read the view and write bytes; the only clock reads are at
 * open, for the uptime.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "ctl.h"
#include "ctl_reply.h"
#include "daemon.h"
#include "history.h"
#include "history_svc.h"
#include "json.h"
#include "net.h"
#include "stamp.h"
#include "tcp.h"
#include "udp.h"
#include "util.h"
#include "view.h"
#include "web.h"

/* ns as integers: clients scale units themselves; null for "none yet". */
static void k_ns(struct jw *w, const char *key, uint64_t ns)
{
	jw_key(w, key);
	if (ns == STATS_NO_RTT)
		jw_null(w);
	else
		jw_u64(w, ns);
}

static void k_unix(struct jw *w, const char *key, uint64_t wall_ns)
{
	jw_key(w, key);
	if (wall_ns == 0)
		jw_null(w);
	else
		jw_fixed(w, wall_ns, NSEC_PER_SEC, 3);
}

static void addr_str(const struct view_probe *p, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!p->resolved)
		return;
	if (p->addr.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)&p->addr;
		inet_ntop(AF_INET, &a->sin_addr, buf, (socklen_t)len);
	} else if (p->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)&p->addr;
		inet_ntop(AF_INET6, &a->sin6_addr, buf, (socklen_t)len);
	}
}

static void rtt_fields(struct jw *w, const struct stats_rtt *r, uint64_t n)
{
	k_ns(w, "rtt_min_ns", n ? (uint64_t)r->min_us * NSEC_PER_USEC : STATS_NO_RTT);
	k_ns(w, "rtt_avg_ns", n ? stats_rtt_avg_ns(r, n) : STATS_NO_RTT);
	k_ns(w, "rtt_max_ns", n ? (uint64_t)r->max_us * NSEC_PER_USEC : STATS_NO_RTT);
	k_ns(w, "rtt_mdev_ns", n ? stats_rtt_mdev_ns(r, n) : STATS_NO_RTT);
	k_ns(w, "rtt_jitter_ns", stats_rtt_has_jitter(r) ? stats_rtt_jitter_ns(r) : STATS_NO_RTT);
}

static void counts(struct jw *w, const struct stats_counts *c)
{
	jw_ku64(w, "sent", c->sent);
	jw_ku64(w, "received", c->received);
	jw_ku64(w, "lost", c->lost);
	jw_ku64(w, "late", c->late);
	jw_ku64(w, "duplicates", c->duplicates);
	jw_ku64(w, "errors", c->errors);
	jw_key(w, "loss_pct");
	if (c->received + c->lost == 0)
		jw_null(w);
	else
		jw_fixed(w, stats_loss_milli_pct(c), 1000, 3);
}

/* A probe's members (ctl_probe_json without the braces). */
static void probe_members(struct jw *w, const struct view_probe *p, bool detail)
{
	char addr[INET6_ADDRSTRLEN];

	addr_str(p, addr, sizeof addr);
	jw_kstr(w, "target", p->target);
	jw_kstr(w, "host", p->host);
	jw_key(w, "family");
	if (p->family)
		jw_u64(w, p->family);
	else
		jw_null(w);
	jw_kbool(w, "resolved", p->resolved);
	jw_key(w, "addr");
	if (p->resolved)
		jw_str(w, addr);
	else
		jw_null(w);
	jw_kstr(w, "socket", p->socket);
	jw_kstr(w, "state", health_state_name(p->state));
	k_unix(w, "since", p->state_since_ns);
	jw_ku64(w, "state_changes", p->state_changes);
	counts(w, &p->run);
	jw_ku64(w, "in_flight", p->in_flight);
	k_ns(w, "rtt_last_ns", p->last_rtt_ns);
	rtt_fields(w, &p->run_rtt, p->run.received);
	if (detail) {
		if (p->labels)
			jw_kstr(w, "labels", p->labels);
		jw_key(w, "settings");
		jw_obj_begin(w);
		jw_ku64(w, "interval_ns", p->interval_ns);
		jw_ku64(w, "timeout_ns", p->timeout_ns);
		jw_ku64(w, "payload_size", p->payload_size);
		jw_ku64(w, "down_after", p->down_after);
		jw_ku64(w, "up_after", p->up_after);
		jw_obj_end(w);
		jw_key(w, "window");
		jw_obj_begin(w);
		counts(w, &p->window.c);
		rtt_fields(w, &p->window.rtt, p->window.c.received);
		jw_obj_end(w);
		jw_key(w, "send_errors");
		jw_obj_begin(w);
		for (int i = 0; i < VIEW_SEND_COUNT_; i++)
			jw_ku64(w, view_send_err_name((enum view_send_err)i), p->send_errors[i]);
		jw_obj_end(w);
		jw_key(w, "icmp_errors");
		jw_obj_begin(w);
		for (int i = 0; i < VIEW_ICMP_COUNT_; i++)
			jw_ku64(w, view_icmp_err_name((enum view_icmp_err)i), p->icmp_errors[i]);
		jw_obj_end(w);
	}
}

void ctl_probe_json(struct jw *w, const struct view_probe *p, bool detail)
{
	jw_obj_begin(w);
	probe_members(w, p, detail);
	jw_obj_end(w);
}

/* `target NAME`'s view of the history: "recent" (the last outcomes, oldest
 * first, null for lost ones) and "states" (the last up/down changes,
 * oldest first); both null when the target keeps no history. */
static void probe_past(struct jw *w, const struct history *h, bool kept)
{
	uint16_t rec[HISTORY_RECENT];
	struct history_state_change sc[HISTORY_STATES];
	size_t n;

	jw_key(w, "recent");
	if (!kept) {
		jw_null(w);
	} else {
		n = h ? history_recent(h, rec) : 0;
		jw_obj_begin(w);
		k_unix(w, "newest_wall", n ? h->recent_wall_ns : 0);
		jw_key(w, "rtt_ms");
		jw_arr_begin(w);
		for (size_t i = 0; i < n; i++) {
			if (rec[i] == HISTORY_RECENT_LOST)
				jw_null(w);
			else
				jw_fixed(w, history_rtt_decode(rec[i]), NSEC_PER_MSEC, 6);
		}
		jw_arr_end(w);
		jw_obj_end(w);
	}
	jw_key(w, "states");
	if (!kept) {
		jw_null(w);
		return;
	}
	n = h ? history_states(h, sc) : 0;
	jw_arr_begin(w);
	for (size_t i = 0; i < n; i++) {
		jw_obj_begin(w);
		k_unix(w, "at", sc[i].wall_ns);
		jw_kstr(w, "from", health_state_name((enum health_state)sc[i].from));
		jw_kstr(w, "to", health_state_name((enum health_state)sc[i].to));
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

static struct stream *bytes_or_fail(const struct jw *w, struct ctl_refusal *why)
{
	struct stream *st;

	if (!jw_ok(w)) {
		why->code = "failed";
		snprintf(why->msg, sizeof why->msg, "reply too large");
		return NULL;
	}
	st = ctl_stream_bytes(w->buf, w->len);
	if (!st) {
		why->code = "failed";
		snprintf(why->msg, sizeof why->msg, "out of memory");
	}
	return st;
}

static void head(struct jw *w, const char *reply)
{
	jw_obj_begin(w);
	jw_kbool(w, "ok", true);
	jw_ku64(w, "version", CTL_PROTO_VERSION);
	jw_kstr(w, "reply", reply);
}

static void listeners(struct jw *w, const struct endpoint *v, size_t n)
{
	char buf[NET_ENDPOINT_STRLEN];

	jw_key(w, "listen");
	jw_arr_begin(w);
	for (size_t i = 0; i < n; i++)
		jw_str(w, net_endpoint_str(&v[i], buf, sizeof buf));
	jw_arr_end(w);
}

/* A service's counters as members, walked from its X-macro table: the
 * names and order of its stats log line. */
static void counters_json(struct jw *w, const void *counters,
			  const struct counter_desc *descs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jw_ku64(w, descs[i].name, counter_get(counters, &descs[i]));
}

static void services(struct jw *w, const struct view_daemon *v, bool with_listen)
{
	jw_key(w, "tcp");
	jw_obj_begin(w);
	if (with_listen)
		listeners(w, v->tcp_listen, v->n_tcp_listen);
	if (v->tcp)
		counters_json(w, v->tcp, tcp_counter_descs, tcp_counter_count);
	jw_obj_end(w);
	jw_key(w, "udp");
	jw_obj_begin(w);
	if (with_listen)
		listeners(w, v->udp_listen, v->n_udp_listen);
	if (v->udp)
		counters_json(w, v->udp, udp_counter_descs, udp_counter_count);
	jw_obj_end(w);
	/* The STAMP reflector's counters (its listeners are in its own log
	 * lines; the view does not carry them yet). */
	if (v->stamp) {
		jw_key(w, "stamp");
		jw_obj_begin(w);
		counters_json(w, v->stamp, stamp_counter_descs, stamp_counter_count);
		jw_obj_end(w);
	}
}

#define SMALL_REPLY_MAX (128u * 1024u)

static struct stream *status_open(void *arg, const struct ctl_peer *peer,
				  const struct ctl_req *req, struct ctl_refusal *why)
{
	const struct daemon *d = arg;
	struct view_daemon v;
	struct view_pinger pv;
	char *buf = malloc(SMALL_REPLY_MAX);
	struct jw w;
	(void)peer;
	(void)req;

	if (!buf) {
		why->code = "failed";
		snprintf(why->msg, sizeof why->msg, "out of memory");
		return NULL;
	}
	daemon_view(d, &v);
	pinger_view_global(v.pinger, &pv);
	uint64_t now_mono = mono_ns();

	jw_init(&w, buf, SMALL_REPLY_MAX);
	head(&w, "status");
	jw_kstr(&w, "beacond_version", v.version);
	k_unix(&w, "started", v.start_wall_ns);
	jw_ku64(&w, "uptime_ns", now_mono - v.start_mono_ns);
	jw_kstr(&w, "config", v.config_path);
	k_unix(&w, "config_loaded", v.config_loaded_wall_ns);
	jw_key(&w, "reload");
	jw_obj_begin(&w);
	jw_ku64(&w, "count", v.reloads);
	jw_ku64(&w, "failures", v.reload_failures);
	jw_key(&w, "last");
	if (v.reloads == 0) {
		jw_null(&w);
	} else {
		jw_obj_begin(&w);
		jw_kbool(&w, "ok", v.last_reload_ok);
		k_unix(&w, "at", v.last_reload_wall_ns);
		if (v.last_reload_ok)
			jw_kstr(&w, "result", v.last_reload_summary ? v.last_reload_summary : "");
		else
			jw_kstr(&w, "error", v.last_reload_error);
		jw_obj_end(&w);
	}
	jw_obj_end(&w);
	jw_key(&w, "targets");
	jw_obj_begin(&w);
	jw_ku64(&w, "probes", pv.probes);
	jw_ku64(&w, "up", pv.up);
	jw_ku64(&w, "down", pv.down);
	jw_ku64(&w, "unknown", pv.unknown);
	jw_ku64(&w, "unresolved", pv.unresolved);
	jw_obj_end(&w);
	services(&w, &v, true);
	jw_key(&w, "web");
	jw_obj_begin(&w);
	listeners(&w, v.web_listen, v.n_web_listen);
	if (v.web) {
		jw_ku64(&w, "active", v.web->active);
		jw_ku64(&w, "accepted", v.web->accepted);
		jw_ku64(&w, "requests", v.web->requests);
		jw_ku64(&w, "refused_acl", v.web->refused_acl);
		jw_ku64(&w, "refused_limit", v.web->refused_limit);
	}
	jw_obj_end(&w);
	jw_key(&w, "icmp");
	jw_obj_begin(&w);
	jw_kstr(&w, "sockets", pv.socket_kinds);
	jw_kstr(&w, "timestamping", pv.timestamping);
	/* Send lateness (how long after its slot each request went out):
	 * the non-empty buckets of the histogram, so a client can compute
	 * quantiles over any interval from two readings. */
	jw_key(&w, "send_late");
	jw_obj_begin(&w);
	jw_ku64(&w, "count", pv.late_count);
	jw_ku64(&w, "sum_ns", pv.late_sum_ns);
	jw_ku64(&w, "max_ns", pv.late_max_ns);
	jw_key(&w, "buckets");
	jw_arr_begin(&w);
	for (uint32_t i = 0; i < pv.late_n_buckets && pv.late_counts; i++) {
		if (!pv.late_counts[i])
			continue;
		jw_arr_begin(&w);
		if (i + 1 == pv.late_n_buckets)
			jw_null(&w);      /* +Inf */
		else
			jw_u64(&w, pv.late_le_ns[i]);
		jw_u64(&w, pv.late_counts[i]);
		jw_arr_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	jw_obj_end(&w);
	jw_key(&w, "control");
	jw_obj_begin(&w);
	jw_kstr(&w, "path", v.control_socket);
	jw_kbool(&w, "systemd", v.control_from_systemd);
	jw_obj_end(&w);
	jw_obj_end(&w);
	jw_newline(&w);
	struct stream *st = bytes_or_fail(&w, why);
	free(buf);
	return st;
}

static struct stream *stats_open(void *arg, const struct ctl_peer *peer,
				 const struct ctl_req *req, struct ctl_refusal *why)
{
	const struct daemon *d = arg;
	struct view_daemon v;
	char buf[8192];
	struct jw w;
	(void)peer;
	(void)req;

	daemon_view(d, &v);
	jw_init(&w, buf, sizeof buf);
	head(&w, "stats");
	services(&w, &v, false);
	jw_obj_end(&w);
	jw_newline(&w);
	return bytes_or_fail(&w, why);
}

static struct stream *target_open(void *arg, const struct ctl_peer *peer,
				  const struct ctl_req *req, struct ctl_refusal *why)
{
	const struct daemon *d = arg;
	struct view_daemon v;
	struct view_probe probes[2];
	char *buf;
	struct jw w;
	(void)peer;

	daemon_view(d, &v);
	size_t n = pinger_view_target(v.pinger, req->argv[0], probes, 2);
	if (n == 0) {
		why->code = "not_found";
		snprintf(why->msg, sizeof why->msg, "no target named \"%.64s\"", req->argv[0]);
		return NULL;
	}
	if (n > 2)
		n = 2;
	buf = malloc(SMALL_REPLY_MAX);
	if (!buf) {
		why->code = "failed";
		snprintf(why->msg, sizeof why->msg, "out of memory");
		return NULL;
	}
	jw_init(&w, buf, SMALL_REPLY_MAX);
	head(&w, "target");
	jw_kstr(&w, "name", probes[0].target);
	jw_key(&w, "probes");
	jw_arr_begin(&w);
	for (size_t i = 0; i < n; i++) {
		const struct history *h = NULL;
		bool kept = v.history &&
			    history_svc_lookup(v.history, probes[i].target, probes[i].family, &h);
		jw_obj_begin(&w);
		probe_members(&w, &probes[i], true);
		probe_past(&w, h, kept);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	jw_newline(&w);
	struct stream *st = bytes_or_fail(&w, why);
	free(buf);
	return st;
}

/* targets: header, one line per probe as the client drains, end line.
 * A probe's record is built in pending[] first: the cursor has already
 * moved past it, so a record that does not fit waits there for the next
 * fill rather than being lost. */
struct targets_stream {
	struct stream s;
	const struct pinger *p;
	struct view_cursor cur;
	enum { T_HEAD, T_BODY, T_END, T_DONE } phase;
	size_t probes;
	size_t pending_len;
	char pending[STREAM_MIN_CAP];
};

static ssize_t targets_fill(struct stream *s, char *buf, size_t cap)
{
	struct targets_stream *t = container_of(s, struct targets_stream, s);
	size_t used = 0;
	struct jw w;

	if (t->phase == T_HEAD) {
		jw_init(&w, buf, cap);
		head(&w, "targets");
		jw_obj_end(&w);
		jw_newline(&w);
		if (!jw_ok(&w))
			return -1;
		used = w.len;
		t->phase = T_BODY;
		pinger_view_begin(t->p, &t->cur);
	}
	while (t->phase == T_BODY) {
		if (t->pending_len == 0) {
			struct view_probe vp;
			if (!pinger_view_next(t->p, &t->cur, &vp)) {
				t->phase = T_END;
				break;
			}
			jw_init(&w, t->pending, sizeof t->pending);
			ctl_probe_json(&w, &vp, false);
			jw_newline(&w);
			if (!jw_ok(&w)) {
				/* Cannot happen with names <= 64 and hosts <= 255
				 * bytes; skip the record rather than stall. */
				continue;
			}
			t->pending_len = w.len;
		}
		if (t->pending_len > cap - used)
			return (ssize_t)used;
		memcpy(buf + used, t->pending, t->pending_len);
		used += t->pending_len;
		t->pending_len = 0;
		t->probes++;
	}
	if (t->phase == T_END) {
		/* A reload during the walk ends it early: the client learns
		 * the list is partial and may ask again. */
		struct view_pinger pv;
		pinger_view_global(t->p, &pv);
		jw_init(&w, buf + used, cap - used);
		jw_obj_begin(&w);
		jw_kbool(&w, "end", true);
		jw_ku64(&w, "probes", t->probes);
		jw_kbool(&w, "complete", t->probes == pv.probes);
		jw_obj_end(&w);
		jw_newline(&w);
		if (!jw_ok(&w))
			return (ssize_t)used;
		used += w.len;
		t->phase = T_DONE;
	}
	return (ssize_t)used;
}

static void targets_free(struct stream *s)
{
	free(container_of(s, struct targets_stream, s));
}

static struct stream *targets_open(void *arg, const struct ctl_peer *peer,
				   const struct ctl_req *req, struct ctl_refusal *why)
{
	const struct daemon *d = arg;
	struct view_daemon v;
	struct targets_stream *t = malloc(sizeof *t);
	(void)peer;
	(void)req;

	if (!t) {
		why->code = "failed";
		snprintf(why->msg, sizeof why->msg, "out of memory");
		return NULL;
	}
	daemon_view(d, &v);
	t->s.fill = targets_fill;
	t->s.free = targets_free;
	t->p = v.pinger;
	t->phase = T_HEAD;
	t->probes = 0;
	t->pending_len = 0;
	return &t->s;
}

int ctl_reply_register(struct ctl *c, const struct daemon *d)
{
	const struct ctl_command cmds[] = {
		{ .name = "status", .usage = "status", .open = status_open,
		  .help = "version, uptime, configuration, reloads, listeners, probe counts" },
		{ .name = "targets", .usage = "targets", .open = targets_open,
		  .help = "one record per probe: state, counters, RTTs" },
		{ .name = "target", .min_args = 1, .max_args = 1, .usage = "target NAME",
		  .open = target_open,
		  .help = "one target in detail: settings, window, errors by reason, "
			  "recent RTTs, state changes" },
		{ .name = "stats", .usage = "stats", .open = stats_open,
		  .help = "TCP and UDP echo counters" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		struct ctl_command cmd = cmds[i];
		cmd.arg = (void *)(uintptr_t)d;
		if (ctl_register(c, &cmd) < 0)
			return -1;
	}
	return 0;
}
