/*
 * pinger_report: the pinger's log lines that are not about one request --
 * per-probe summaries (every summary_interval, on SIGUSR1, at exit, for
 * removed targets), the pinger-wide icmp_stats line, and socket lines.
 * What they print is computed by pure modules (stats.h, lateness.h).
 */
#include <stdio.h>

#include "pinger_int.h"

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

static void log_counts(struct logline *l, const char *prefix, const struct stats_counts *c)
{
	char key[40];

#define K(name) (snprintf(key, sizeof key, "%s%s", prefix, name), key)
	log_u64(l, K("sent"), c->sent);
	log_u64(l, K("received"), c->received);
	log_u64(l, K("lost"), c->lost);
	log_fixed(l, K("loss_pct"), stats_loss_milli_pct(c), 1000, 1);
	log_u64(l, K("duplicates"), c->duplicates);
	log_u64(l, K("late"), c->late);
	log_u64(l, K("errors"), c->errors);
#undef K
}

static void probe_log_summary(const struct probe *pr, const char *why, uint64_t now)
{
	const struct stats_counts *r = &pr->stats.run.c;
	struct logline *l = probe_log(pr, LOG_INFO, "summary");
	struct stats_period win;

	if (!l)
		return;
	/* With summaries off the window never restarts: it is the run. */
	if (probe_target(pr)->opts->summary_interval_ns)
		stats_window(&pr->stats, &win);
	else
		win = pr->stats.run;
	log_str(l, "why", why);
	log_str(l, "state", probe_resolved(pr) ? health_state_name(pr->health.state) : "unresolved");
	log_str(l, "socket", pr->sock ? probe_sock_kind(pr->sock) : "none");
	log_counts(l, "", &win.c);
	log_rtt(l, "", &win);
	log_fixed(l, "window_s", now - probe_target(pr)->window_start_ns, NSEC_PER_SEC, 3);
	log_u64(l, "inflight", r->sent - r->received - r->lost);
	log_counts(l, "total_", r);
	log_rtt(l, "total_", &pr->stats.run);
	log_end(l);
}

void target_log_summaries(struct target *t, const char *why, uint64_t now)
{
	for (uint32_t i = 0; i < t->n_probes; i++)
		probe_log_summary(&t->probes[i], why, now);
}

static void log_pinger_counters(struct pinger *p, const char *why)
{
	struct logline *l = log_begin(LOG_INFO, "icmp_stats");

	log_str(l, "why", why);
	log_u64(l, "tx_stamped", p->pc.tx_stamped);
	if (l && p->late.n) {
		/* Upper bucket bounds: "at most this late". */
		log_u64(l, "lateness_n", p->late.n);
		log_u64(l, "lateness_p50_us", lateness_quantile_ns(&p->late, 500) / NSEC_PER_USEC);
		log_u64(l, "lateness_p99_us", lateness_quantile_ns(&p->late, 990) / NSEC_PER_USEC);
		log_u64(l, "lateness_max_us", p->late.max_ns / NSEC_PER_USEC);
	}
	log_u64(l, "ignored", p->pc.ignored_total);
	for (int i = 0; i < VIEW_IGN_COUNT_; i++) {
		char key[32];

		snprintf(key, sizeof key, "ignored_%s", view_ignored_name(i));
		log_u64(l, key, p->pc.ignored[i]);
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

void on_group_timer(struct timer *tm)
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

void log_socket(const struct psock *s)
{
	struct logline *l = log_begin(LOG_INFO, "socket");
	const struct icmp_sock_key *k = &s->sock.key;

	log_int(l, "family", k->family);
	log_str(l, "kind", probe_sock_kind(&s->ps));
	log_u64(l, "ident", s->ps.ident);
	log_bool(l, "tx_timestamps", s->sock.tx_ring != NULL);
	if (k->has_source)
		log_addr(l, "source", &k->source.sa);
	if (k->ifname[0])
		log_str(l, "interface", k->ifname);
	if (!k->df)
		log_bool(l, "dont_fragment", false);
	log_end(l);
}
