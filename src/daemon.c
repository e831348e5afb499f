/*
 * daemon: lifecycle around the services (tcp, udp, stamp, the pinger).
 *
 *   start:  inherit sockets (LISTEN_FDS) -> prepare every service -> commit
 *           -> READY=1 -> loop_run
 *   reload: RELOADING=1 -> parse the file into a fresh config -> prepare every
 *           service -> commit all (or abort all and keep the old config)
 *           -> READY=1
 *   stop:   STOPPING=1 -> close listeners, stop pinging -> drain TCP
 *           connections up to shutdown_timeout -> final summaries -> exit 0
 *
 * Preparing every service before committing any makes a reload all or
 * nothing: a new listener that cannot be bound, a log file that cannot be
 * opened or an allocation that fails leaves the old configuration running
 * untouched.  Every prepare reserves what its commit needs, so the commits
 * return void and allocate nothing (tests/integration/test_failalloc.py
 * fails each allocation of a reload in turn to hold them to it).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sysexits.h>

#include "ctl.h"
#include "ctl_reply.h"
#include "daemon.h"
#include "history_svc.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "net.h"
#include "pinger.h"
#include "sd.h"
#include "stamp.h"
#include "tcp.h"
#include "udp.h"
#include "view.h"
#include "web.h"

/* One buffer for every read in the loop: TCP reads go straight into it and
 * UDP slices it into 64 slots of 64 KiB for recvmmsg.  Pages only become
 * resident when touched. */
#define IOBUF_SIZE (64u * 65536u)

#define DRAIN_POLL_NS (50 * NSEC_PER_MSEC)
#define STATUS_PERIOD_NS NSEC_PER_SEC

struct daemon {
	struct loop *loop;
	struct config *cfg;
	const struct daemon_options *opts;
	uint8_t *iobuf;

	struct tcp_service *tcp;
	struct udp_service *udp;
	struct stamp_service *stamp;
	struct pinger *pinger;
	struct web *web;
	struct metrics_page metrics;
	struct ctl *ctl;
	struct history_svc *history;
	struct sd_listen_set inherited;

	struct timer stats_timer;
	struct timer status_timer;
	struct timer watchdog_timer;
	struct timer drain_timer;
	uint64_t watchdog_period_ns;
	bool notify;             /* NOTIFY_SOCKET is set */
	char last_status[256];

	bool stopping;
	uint64_t drain_deadline;

	/* For the view: when we started, the configuration in force, and the
	 * last reload's outcome. */
	uint64_t start_wall_ns, start_mono_ns, config_loaded_wall_ns;
	uint64_t reloads, reload_failures, last_reload_wall_ns;
	bool last_reload_ok;
	char last_reload_error[512];
	char last_reload_summary[256];
	/* The listeners' bound addresses, refreshed after each apply. */
	struct endpoint *tcp_bound, *udp_bound, *web_bound;
	size_t n_tcp_bound, n_udp_bound, n_web_bound;
};

void daemon_view(const struct daemon *d, struct view_daemon *out)
{
	*out = (struct view_daemon){
		.version = BEACOND_VERSION,
		.config_path = d->opts->config_path,
		.start_wall_ns = d->start_wall_ns,
		.start_mono_ns = d->start_mono_ns,
		.config_loaded_wall_ns = d->config_loaded_wall_ns,
		.reloads = d->reloads,
		.reload_failures = d->reload_failures,
		.last_reload_ok = d->last_reload_ok,
		.last_reload_wall_ns = d->last_reload_wall_ns,
		.last_reload_ok_wall_ns = d->config_loaded_wall_ns,
		.last_reload_error = d->last_reload_error,
		.tcp = d->tcp ? tcp_counters(d->tcp) : NULL,
		.udp = d->udp ? udp_counters(d->udp) : NULL,
		.stamp = d->stamp ? stamp_counters(d->stamp) : NULL,
		.web = d->web ? web_counters(d->web) : NULL,
		.pinger = d->pinger,
		.history = d->history,
		.tcp_listen = d->tcp_bound,
		.n_tcp_listen = d->n_tcp_bound,
		.udp_listen = d->udp_bound,
		.n_udp_listen = d->n_udp_bound,
		.web_listen = d->web_bound,
		.n_web_listen = d->n_web_bound,
		.control_socket = d->ctl ? ctl_path(d->ctl) : "",
		.control_from_systemd = d->ctl && ctl_from_systemd(d->ctl),
		.last_reload_summary = d->last_reload_summary,
	};
}

/* Record a reload's outcome for the view; err is NULL on success. */
static void reload_record(struct daemon *d, const char *err)
{
	d->reloads++;
	d->last_reload_wall_ns = wall_ns();
	d->last_reload_ok = err == NULL;
	if (err) {
		d->reload_failures++;
		snprintf(d->last_reload_error, sizeof d->last_reload_error, "%s", err);
	} else {
		d->last_reload_error[0] = '\0';
		d->config_loaded_wall_ns = d->last_reload_wall_ns;
	}
}

static int daemon_log_setup(struct daemon *d, const struct config *cfg, char *err,
			    size_t errlen)
{
	enum log_level level = cfg->daemon.log_level;
	if (d->opts->level_override >= 0)
		level = (enum log_level)d->opts->level_override;
	return log_setup(level, cfg->daemon.log_format, cfg->daemon.log_target, err,
			 errlen);
}

/* ---- applying a configuration ------------------------------------------ */

/* A disabled service is configured with no listeners: commit then closes
 * whatever it had, so "enabled = no" on reload stops the service. */
static struct tcp_plan *prepare_tcp(struct daemon *d, const struct config *cfg,
				    char *err, size_t errlen)
{
	struct config_tcp tcp = cfg->tcp;
	if (!tcp.enabled)
		tcp.n_listen = 0;
	return tcp_prepare(d->tcp, &tcp, &d->inherited, err, errlen);
}

static struct udp_plan *prepare_udp(struct daemon *d, const struct config *cfg,
				    char *err, size_t errlen)
{
	struct config_udp udp = cfg->udp;
	if (!udp.enabled)
		udp.n_listen = 0;
	return udp_prepare(d->udp, &udp, &d->inherited, err, errlen);
}

/* Copy the listeners' bound addresses for the view (on failure to
 * allocate, the view lists none rather than stale ones). */
/* The view's copies of the bound listener addresses, allocated while
 * preparing (sized from the plans) and filled by the commit. */
struct bound_plan {
	struct endpoint *tcp, *udp, *web;
	size_t n_tcp, n_udp, n_web;
};

static int bound_prepare(struct bound_plan *b, const struct tcp_plan *tcp,
			 const struct udp_plan *udp, const struct web_plan *web)
{
	b->n_tcp = tcp_plan_listeners(tcp);
	b->n_udp = udp_plan_listeners(udp);
	b->n_web = web_plan_listeners(web);
	b->tcp = b->n_tcp ? calloc(b->n_tcp, sizeof *b->tcp) : NULL;
	b->udp = b->n_udp ? calloc(b->n_udp, sizeof *b->udp) : NULL;
	b->web = b->n_web ? calloc(b->n_web, sizeof *b->web) : NULL;
	if ((b->n_tcp && !b->tcp) || (b->n_udp && !b->udp) || (b->n_web && !b->web)) {
		free(b->tcp);
		free(b->udp);
		free(b->web);
		return -1;
	}
	return 0;
}

static void bound_commit(struct daemon *d, struct bound_plan *b)
{
	free(d->tcp_bound);
	free(d->udp_bound);
	free(d->web_bound);
	d->tcp_bound = b->tcp;
	d->udp_bound = b->udp;
	d->web_bound = b->web;
	d->n_tcp_bound = b->n_tcp ? tcp_listen_addrs(d->tcp, b->tcp, b->n_tcp) : 0;
	d->n_udp_bound = b->n_udp ? udp_listen_addrs(d->udp, b->udp, b->n_udp) : 0;
	d->n_web_bound = b->n_web ? web_listen_addrs(d->web, b->web, b->n_web) : 0;
	b->tcp = b->udp = b->web = NULL;
}

static struct stamp_plan *prepare_stamp(struct daemon *d, const struct config *cfg,
					char *err, size_t errlen)
{
	struct config_stamp stamp = cfg->stamp;
	if (!stamp.enabled)
		stamp.n_listen = 0;
	return stamp_prepare(d->stamp, &stamp, &d->inherited, err, errlen);
}

/* Timers a commit outside the pinger may arm that were idle before: the
 * stats timer and TCP's idle timer.  Reserved in the prepare so arming
 * them cannot fail for want of heap room. */
#define APPLY_TIMERS 2

/*
 * Prepare every part of the new configuration (log target and settings,
 * listeners, targets), then commit all of them, or none.  Every prepare
 * reserves what its commit needs -- sockets opened and watched, arrays
 * allocated, timer heap room -- so the commits return void and allocate
 * nothing: once the first commit runs, the whole configuration goes in.
 * STAMP goes before UDP: the UDP echo adopts every unnamed datagram socket
 * systemd passed that no entry took, so the STAMP listen addresses must
 * have taken theirs first.
 */
static int daemon_apply(struct daemon *d, const struct config *cfg, char *err,
			size_t errlen)
{
	struct log_plan logp;
	struct tcp_plan *tcp = NULL;
	struct stamp_plan *stamp = NULL;
	struct udp_plan *udp = NULL;
	struct pinger_plan *ping = NULL;
	struct web_plan *web = NULL;
	struct bound_plan bound = { 0 };
	enum log_level level = cfg->daemon.log_level;
	int rc = -1;

	if (d->opts->level_override >= 0)
		level = (enum log_level)d->opts->level_override;
	if (log_prepare(&logp, level, cfg->daemon.log_format, cfg->daemon.log_target,
			err, errlen) < 0)
		return -1;
	if (loop_timer_reserve(d->loop, APPLY_TIMERS) < 0) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	/* The web listener goes first: it takes the sockets systemd passed
	 * under the name "web" before tcp adopts every stream socket nobody
	 * named. */
	if (!(web = web_prepare(d->web, &cfg->web, &d->inherited, err, errlen)) ||
	    !(tcp = prepare_tcp(d, cfg, err, errlen)) ||
	    !(stamp = prepare_stamp(d, cfg, err, errlen)) ||
	    !(udp = prepare_udp(d, cfg, err, errlen)) ||
	    !(ping = pinger_prepare(d->pinger, cfg, err, errlen)))
		goto out;
	if (bound_prepare(&bound, tcp, udp, web) < 0) {
		set_err(err, errlen, "out of memory");
		pinger_abort(ping);
		goto out;
	}
	web_commit(d->web, web);
	tcp_commit(d->tcp, tcp);
	stamp_commit(d->stamp, stamp);
	udp_commit(d->udp, udp);
	pinger_commit(d->pinger, ping);
	bound_commit(d, &bound);
	log_commit(&logp);
	web = NULL;
	tcp = NULL;
	stamp = NULL;
	udp = NULL;
	rc = 0;
out:
	if (rc < 0) {
		udp_abort(udp);
		stamp_abort(stamp);
		tcp_abort(tcp);
		web_abort(web);
		log_abort(&logp);
	}
	loop_timer_reserve_end(d->loop);
	return rc;
}

/* Parsing a big configuration (and replacing the running one) frees
 * memory all over the heap, between blocks that stay; malloc keeps those
 * pages.  Hand them back once the new set is in place: 10 000 targets
 * leave about 1 MiB behind otherwise. */
static void heap_release(void)
{
	malloc_trim(0);
}

static void stats_timer_arm(struct daemon *d)
{
	loop_timer_cancel(d->loop, &d->stats_timer);
	if (d->cfg->daemon.stats_interval_ns)
		loop_timer_arm(d->loop, &d->stats_timer,
			       loop_now(d->loop) + d->cfg->daemon.stats_interval_ns);
}

/* ---- statistics ------------------------------------------------------------ */

/* One stats line per service, its counters walked from the service's
 * table; the caller may add state fields and ends the line. */
static struct logline *log_counters(const char *service, const char *why,
				    const void *counters, const struct counter_desc *descs,
				    size_t n)
{
	struct logline *l = log_begin(LOG_INFO, "stats");
	log_str(l, "service", service);
	log_str(l, "why", why);
	for (size_t i = 0; i < n; i++)
		log_u64(l, descs[i].name, counter_get(counters, &descs[i]));
	return l;
}

static void daemon_log_stats(struct daemon *d, const char *why)
{
	log_end(log_counters("tcp", why, tcp_counters(d->tcp), tcp_counter_descs,
			     tcp_counter_count));
	log_end(log_counters("udp", why, udp_counters(d->udp), udp_counter_descs,
			     udp_counter_count));
	/* Only for a reflector that is, or was, serving: a disabled one would
	 * add a line of zeros to every interval. */
	const struct stamp_counters *sc = stamp_counters(d->stamp);
	if (d->cfg->stamp.enabled || sc->received) {
		struct logline *l = log_counters("stamp", why, sc, stamp_counter_descs,
						 stamp_counter_count);
		log_bool(l, "clock_synced", sc->clock_synced);
		log_u64(l, "clock_error_ns", sc->clock_error_ns);
		log_end(l);
	}
}

static void on_stats_timer(struct timer *t)
{
	struct daemon *d = container_of(t, struct daemon, stats_timer);
	daemon_log_stats(d, "interval");
	stats_timer_arm(d);
}

/* ---- systemd -------------------------------------------------------------- */

static void format_status(struct daemon *d, char *buf, size_t len)
{
	const struct tcp_counters *tc = tcp_counters(d->tcp);
	const struct udp_counters *uc = udp_counters(d->udp);
	struct pinger_counts pc;
	pinger_counts(d->pinger, &pc);
	snprintf(buf, len,
		 "%s%llu TCP connections, %llu UDP datagrams echoed, "
		 "%zu targets: %zu up, %zu down, %zu unknown",
		 d->stopping ? "stopping: " : "",
		 (unsigned long long)tc->active, (unsigned long long)uc->echoed,
		 pc.probes, pc.up, pc.down, pc.unknown);
}

/* STATUS= is refreshed at most once a second, and only when it changed. */
static void on_status_timer(struct timer *t)
{
	struct daemon *d = container_of(t, struct daemon, status_timer);
	char status[sizeof d->last_status];

	format_status(d, status, sizeof status);
	if (strcmp(status, d->last_status) != 0) {
		sd_notifyf("STATUS=%s", status);
		memcpy(d->last_status, status, sizeof status);
	}
	loop_timer_arm(d->loop, t, loop_now(d->loop) + STATUS_PERIOD_NS);
}

static void on_watchdog_timer(struct timer *t)
{
	struct daemon *d = container_of(t, struct daemon, watchdog_timer);
	sd_notify("WATCHDOG=1");
	loop_timer_arm(d->loop, t, loop_now(d->loop) + d->watchdog_period_ns);
}

static void notify_ready(struct daemon *d)
{
	format_status(d, d->last_status, sizeof d->last_status);
	sd_notifyf("READY=1\nSTATUS=%s", d->last_status);
}

/* ---- reload ------------------------------------------------------------------ */

static bool endpoints_equal(const struct endpoint *a, size_t na, const struct endpoint *b,
			    size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!net_endpoint_equal(&a[i], &b[i]))
			return false;
	return true;
}

static bool listeners_equal(const struct config *a, const struct config *b)
{
	size_t ta = a->tcp.enabled ? a->tcp.n_listen : 0, tb = b->tcp.enabled ? b->tcp.n_listen : 0;
	size_t ua = a->udp.enabled ? a->udp.n_listen : 0, ub = b->udp.enabled ? b->udp.n_listen : 0;
	size_t sa = a->stamp.enabled ? a->stamp.n_listen : 0;
	size_t sb = b->stamp.enabled ? b->stamp.n_listen : 0;
	return endpoints_equal(a->tcp.listen, ta, b->tcp.listen, tb) &&
	       endpoints_equal(a->udp.listen, ua, b->udp.listen, ub) &&
	       endpoints_equal(a->stamp.listen, sa, b->stamp.listen, sb);
}

static void reload_failed(struct daemon *d, const char *err)
{
	struct logline *l = log_begin(LOG_ERR, "reload_failed");
	log_str(l, "reason", err);
	log_str(l, "msg", "keeping the running configuration");
	log_end(l);
	reload_record(d, err);
	notify_ready(d);
}

/*
 * Reload the configuration file.  Returns 0 with a summary of what changed
 * in result ("3 targets added, 1 removed, listeners unchanged"), or -1 with
 * the error in result exactly as `beacond -t` words it (file:line: [section]
 * key: reason).  The log line and the beaconctl client both get this text.
 */
static int daemon_reload(struct daemon *d, char *result, size_t len)
{
	char err[512];
	struct config *cfg;

	/* systemd's reload waits for READY=1 after RELOADING=1; newer managers
	 * also want the MONOTONIC_USEC of the request. */
	sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)(mono_ns() / NSEC_PER_USEC));
	if (log_reopen() < 0)
		log_msg(LOG_ERR, "log_reopen_failed", "cannot reopen the log file: %s",
			strerror(errno));

	if (config_load(d->opts->config_path, &cfg, err, sizeof err) < 0) {
		reload_failed(d, err);
		snprintf(result, len, "%s", err);
		return -1;
	}
	size_t added, removed;
	if (daemon_apply(d, cfg, err, sizeof err) < 0) {
		config_free(cfg);
		reload_failed(d, err);
		snprintf(result, len, "%s", err);
		return -1;
	}
	pinger_last_commit(d->pinger, &added, &removed);
	bool same_listeners = listeners_equal(d->cfg, cfg);
	snprintf(d->last_reload_summary, sizeof d->last_reload_summary,
		 "%zu target%s added, %zu removed, listeners %s", added, added == 1 ? "" : "s",
		 removed, same_listeners ? "unchanged" : "changed");
	if (strcmp(d->cfg->daemon.control_socket, cfg->daemon.control_socket) != 0 ||
	    strcmp(d->cfg->daemon.control_group, cfg->daemon.control_group) != 0)
		log_msg(LOG_WARNING, "control_socket_unchanged",
			"control_socket and control_group take effect at the next start");
	reload_record(d, NULL);
	history_svc_configure(d->history, cfg);
	history_svc_save(d->history, "reload");

	size_t n_targets = cfg->n_targets;
	config_drop_targets(cfg);
	struct config *old = d->cfg;
	d->cfg = cfg;
	config_free(old);
	heap_release();
	stats_timer_arm(d);

	struct logline *l = log_begin(LOG_NOTICE, "reloaded");
	log_str(l, "config", d->opts->config_path);
	log_u64(l, "targets", n_targets);
	log_u64(l, "added", added);
	log_u64(l, "removed", removed);
	log_bool(l, "listeners_changed", !same_listeners);
	log_str(l, "msg", d->last_reload_summary);
	log_end(l);
	notify_ready(d);
	snprintf(result, len, "reloaded: %s", d->last_reload_summary);
	return 0;
}

/* `beaconctl reload`: the same reload as SIGHUP, its result as the reply. */
static struct stream *ctl_reload_open(void *arg, const struct ctl_peer *peer,
				      const struct ctl_req *req, struct ctl_refusal *why)
{
	struct daemon *d = arg;
	char result[600], buf[2048];
	struct jw w;
	(void)req;

	if (d->stopping) {
		why->code = "failed";
		snprintf(why->msg, sizeof why->msg, "the daemon is stopping");
		return NULL;
	}
	struct logline *l = log_begin(LOG_NOTICE, "reload_requested");
	log_str(l, "by", "beaconctl");
	log_int(l, "pid", peer->pid);
	log_u64(l, "uid", peer->uid);
	log_end(l);
	int r = daemon_reload(d, result, sizeof result);
	jw_init(&w, buf, sizeof buf);
	jw_obj_begin(&w);
	jw_kbool(&w, "ok", true);
	jw_ku64(&w, "version", CTL_PROTO_VERSION);
	jw_kstr(&w, "reply", "reload");
	jw_kbool(&w, "reloaded", r == 0);
	jw_kstr(&w, r == 0 ? "result" : "error", result);
	jw_obj_end(&w);
	jw_newline(&w);
	if (!jw_ok(&w)) {
		snprintf(why->msg, sizeof why->msg, "%s", result);
		return NULL;
	}
	return ctl_stream_bytes(buf, w.len);
}

/* ---- stop -------------------------------------------------------------------- */

static void daemon_finish_drain(struct daemon *d)
{
	loop_timer_cancel(d->loop, &d->drain_timer);
	size_t left = tcp_active(d->tcp);
	if (left) {
		struct logline *l = log_begin(LOG_WARNING, "drain_timeout");
		log_u64(l, "connections", left);
		log_end(l);
		tcp_close_all(d->tcp);
	}
	loop_stop(d->loop);
}

static void on_drain_timer(struct timer *t)
{
	struct daemon *d = container_of(t, struct daemon, drain_timer);
	if (tcp_active(d->tcp) == 0 || loop_now(d->loop) >= d->drain_deadline) {
		daemon_finish_drain(d);
		return;
	}
	loop_timer_arm(d->loop, t, loop_now(d->loop) + DRAIN_POLL_NS);
}

static void daemon_stop(struct daemon *d, int signo)
{
	if (d->stopping) {
		/* A second signal skips the rest of the drain. */
		daemon_finish_drain(d);
		return;
	}
	d->stopping = true;
	sd_notify("STOPPING=1");

	/* Close first, then say so: whoever reads "stopping" can rely on the
	 * listeners being gone. */
	tcp_stop_accepting(d->tcp);
	web_stop(d->web);
	udp_stop(d->udp);
	if (d->ctl)
		ctl_stop(d->ctl);
	stamp_stop(d->stamp);
	pinger_stop(d->pinger);
	loop_timer_cancel(d->loop, &d->stats_timer);

	struct logline *l = log_begin(LOG_NOTICE, "stopping");
	log_str(l, "signal", sigabbrev_np(signo));
	log_u64(l, "connections", tcp_active(d->tcp));
	log_fixed(l, "drain_timeout_s", d->cfg->daemon.shutdown_timeout_ns, NSEC_PER_SEC, 3);
	log_end(l);

	d->drain_deadline = loop_now(d->loop) + d->cfg->daemon.shutdown_timeout_ns;
	loop_timer_arm(d->loop, &d->drain_timer, loop_now(d->loop));
}

static void on_signal(struct loop *loop, int signo, void *arg)
{
	struct daemon *d = arg;
	(void)loop;

	switch (signo) {
	case SIGTERM:
	case SIGINT:
		daemon_stop(d, signo);
		break;
	case SIGHUP:
		if (!d->stopping) {
			char result[600];
			daemon_reload(d, result, sizeof result);
		}
		break;
	case SIGUSR1:
		daemon_log_stats(d, "signal");
		pinger_log_summaries(d->pinger, "signal");
		break;
	default:
		break;
	}
}

/* ---- start ------------------------------------------------------------------ */

static void release_unused_inherited(struct sd_listen_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		if (set->v[i].taken)
			continue;
		char addr[NET_ENDPOINT_STRLEN];
		struct logline *l = log_begin(LOG_WARNING, "inherited_unused");
		log_int(l, "fd", set->v[i].fd);
		log_str(l, "name", set->v[i].name);
		log_str(l, "addr", net_endpoint_str(&set->v[i].addr, addr, sizeof addr));
		log_str(l, "msg", "socket passed by systemd matches no service; closing it");
		log_end(l);
	}
	sd_listen_release(set);
}

static void daemon_free(struct daemon *d)
{
	/* Clients first: their streams read the pinger. */
	if (d->web)
		web_free(d->web);
	ctl_free(d->ctl);
	free(d->tcp_bound);
	free(d->udp_bound);
	free(d->web_bound);
	if (d->tcp)
		tcp_free(d->tcp);
	if (d->udp)
		udp_free(d->udp);
	if (d->stamp)
		stamp_free(d->stamp);
	if (d->pinger)
		pinger_free(d->pinger);
	/* After the pinger: freeing probes calls the history's on_gone. */
	history_svc_free(d->history);
	if (d->loop)
		loop_free(d->loop);
	sd_listen_release(&d->inherited);
	free(d->iobuf);
	config_free(d->cfg);
}

/* The loop, its signals, the shared read buffer and the services, with
 * nothing configured yet.  Returns 0, or -1 (logged). */
static int daemon_create(struct daemon *d)
{
	d->iobuf = malloc(IOBUF_SIZE);
	d->loop = loop_new();
	if (!d->iobuf || !d->loop) {
		log_msg(LOG_ERR, "start_failed", "out of memory or no epoll: %s",
			strerror(errno));
		return -1;
	}
	if (loop_signals(d->loop, on_signal, d) < 0) {
		log_msg(LOG_ERR, "start_failed", "signal setup: %s", strerror(errno));
		return -1;
	}
	d->tcp = tcp_new(d->loop, d->iobuf, IOBUF_SIZE);
	d->udp = udp_new(d->loop, d->iobuf, IOBUF_SIZE);
	d->stamp = stamp_new(d->loop, d->iobuf, IOBUF_SIZE);
	d->pinger = pinger_new(d->loop);
	d->web = web_new(d->loop);
	/* The history is the pinger's hook user: made right after it. */
	d->history = d->pinger ? history_svc_new(d->loop, d->pinger) : NULL;
	if (!d->tcp || !d->udp || !d->stamp || !d->pinger || !d->web ||
	    metrics_register(&d->metrics, d->web, d) < 0 ||
	    !d->history || history_svc_register(d->history, d->web, NULL) < 0) {
		log_msg(LOG_ERR, "start_failed", "cannot create services: %s",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* STATUS= refreshes when systemd listens, and the watchdog pings. */
static void systemd_timers_arm(struct daemon *d)
{
	uint64_t now = loop_now_refresh(d->loop);
	uint64_t wd_usec = sd_watchdog_usec();

	d->notify = getenv("NOTIFY_SOCKET") != NULL;
	if (d->notify)
		loop_timer_arm(d->loop, &d->status_timer, now + STATUS_PERIOD_NS);
	if (wd_usec) {
		/* Half the period, as sd_watchdog_enabled(3) advises; sent from a
		 * loop timer so a stuck loop stops the pings and gets restarted. */
		d->watchdog_period_ns = wd_usec * NSEC_PER_USEC / 2;
		loop_timer_arm(d->loop, &d->watchdog_timer, now);
	}
}

static void log_ready(const struct daemon *d, size_t n_targets)
{
	struct logline *l = log_begin(LOG_NOTICE, "ready");
	log_str(l, "version", BEACOND_VERSION);
	log_str(l, "config", d->opts->config_path);
	log_bool(l, "tcp", d->cfg->tcp.enabled);
	log_bool(l, "udp", d->cfg->udp.enabled);
	log_bool(l, "web", d->cfg->web.enabled);
	log_bool(l, "stamp", d->cfg->stamp.enabled);
	log_u64(l, "targets", n_targets);
	log_end(l);
}

int daemon_main(const struct daemon_options *opts, struct config *cfg)
{
	struct daemon d = { .cfg = cfg, .opts = opts, .last_reload_ok = true };
	char err[512];
	int status = EXIT_FAILURE;

	d.start_wall_ns = wall_ns();
	d.start_mono_ns = mono_ns();
	d.config_loaded_wall_ns = d.start_wall_ns;

	if (daemon_log_setup(&d, cfg, err, sizeof err) < 0) {
		fprintf(stderr, "beacond: %s\n", err);
		config_free(cfg);
		return EX_CANTCREAT;
	}

	timer_init(&d.stats_timer, on_stats_timer);
	timer_init(&d.status_timer, on_status_timer);
	timer_init(&d.watchdog_timer, on_watchdog_timer);
	timer_init(&d.drain_timer, on_drain_timer);

	if (daemon_create(&d) < 0)
		goto out;

	struct logline *cl = log_begin(LOG_DEBUG, "config");
	log_str(cl, "path", opts->config_path);
	log_u64(cl, "tcp_listen", cfg->tcp.enabled ? cfg->tcp.n_listen : 0);
	log_u64(cl, "udp_listen", cfg->udp.enabled ? cfg->udp.n_listen : 0);
	log_u64(cl, "stamp_listen", cfg->stamp.enabled ? cfg->stamp.n_listen : 0);
	log_u64(cl, "targets", cfg->n_targets);
	log_end(cl);

	if (sd_listen_collect(&d.inherited, err, sizeof err) < 0) {
		log_msg(LOG_ERR, "start_failed", "socket activation: %s", err);
		goto out;
	}
	/* Before the services: the TCP service adopts every inherited
	 * stream listener it is given, so the one named "control" must be
	 * taken first. */
	d.ctl = ctl_new(d.loop);
	if (!d.ctl || ctl_reply_register(d.ctl, &d) < 0 ||
	    ctl_register(d.ctl, &(struct ctl_command){
		    .name = "reload", .usage = "reload", .privileged = true,
		    .help = "reload the configuration file and report the outcome",
		    .open = ctl_reload_open, .arg = &d }) < 0 ||
	    history_svc_register(d.history, NULL, d.ctl) < 0) {
		log_msg(LOG_ERR, "start_failed", "control socket: %s", strerror(errno));
		goto out;
	}
	/* Not fatal: the echo services and the pings do not need it. */
	if (ctl_listen(d.ctl, cfg->daemon.control_socket, cfg->daemon.control_group,
		       &d.inherited, err, sizeof err) < 0) {
		struct logline *l = log_begin(LOG_WARNING, "control_disabled");
		log_str(l, "reason", err);
		log_str(l, "msg", "beaconctl cannot reach this daemon");
		log_end(l);
	} else if (ctl_path(d.ctl)[0]) {
		struct logline *l = log_begin(LOG_INFO, "listen");
		log_str(l, "service", "control");
		log_str(l, "path", ctl_path(d.ctl));
		log_bool(l, "systemd", ctl_from_systemd(d.ctl));
		log_end(l);
	}
	if (daemon_apply(&d, cfg, err, sizeof err) < 0) {
		struct logline *l = log_begin(LOG_ERR, "start_failed");
		log_str(l, "reason", err);
		log_end(l);
		/* So "systemctl status" says why, not only the journal. */
		sd_notifyf("STATUS=start failed: %s", err);
		goto out;
	}
	release_unused_inherited(&d.inherited);
	/* Before the first ping, so loaded rounds are there for its outcome. */
	history_svc_configure(d.history, cfg);
	size_t n_targets = cfg->n_targets;
	config_drop_targets(cfg);
	heap_release();

	stats_timer_arm(&d);
	systemd_timers_arm(&d);

	log_ready(&d, n_targets);
	notify_ready(&d);

	if (loop_run(d.loop) < 0) {
		log_msg(LOG_ERR, "loop_failed", "epoll_wait: %s", strerror(errno));
		goto out;
	}

	history_svc_stop(d.history);
	pinger_log_summaries(d.pinger, "final");
	daemon_log_stats(&d, "final");
	log_msg(LOG_NOTICE, "exit", "stopped cleanly");
	status = EXIT_SUCCESS;
out:
	daemon_free(&d);
	log_close();
	return status;
}
