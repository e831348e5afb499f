/* view: the pinger's read-only view (include/view.h) over real loopback
 * probes.  Needs an ICMP socket (root or net.ipv4.ping_group_range): the
 * tests that need one skip without. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loop.h"
#include "pinger.h"
#include "view.h"

static const char *const conf =
	"[tcp]\nenabled = no\n[udp]\nenabled = no\n"
	"[icmp]\ninterval = 100ms\ntimeout = 1s\nsummary_interval = 0\n"
	"[target a]\nhost = 127.0.0.1\n"
	"[target b]\nhost = 127.0.0.2\n";

struct fixture {
	struct loop *loop;
	struct pinger *p;
	struct config *cfg;
	struct timer stop;
	int outcomes, gone;
	uint64_t last_rtt;
};

static void on_stop(struct timer *t)
{
	struct fixture *f = container_of(t, struct fixture, stop);

	loop_stop(f->loop);
}

static void on_outcome(void *arg, void **slot, const struct view_probe_src *src,
		       uint64_t now_ns, uint64_t rtt_ns)
{
	struct fixture *f = arg;
	struct view_probe_key k = view_probe_key(src), *key = &k;

	cr_assert_not_null(key->target);
	cr_assert_eq(key->family, 4);
	cr_assert_gt(now_ns, 0);
	if (!*slot)
		*slot = malloc(1);
	f->outcomes++;
	f->last_rtt = rtt_ns;
}

static void on_gone(void *arg, void **slot)
{
	struct fixture *f = arg;

	free(*slot);
	*slot = NULL;
	f->gone++;
}

/* Load text, prepare and commit; false when no ICMP socket can be had. */
static bool apply(struct fixture *f, const char *text, uint32_t n_buckets, const char *labels)
{
	char err[512];
	struct pinger_plan *plan;

	config_free(f->cfg);
	cr_assert_eq(config_parse_string(text, "test.ini", &f->cfg, err, sizeof err), 0, "%s", err);
	f->cfg->icmp.n_rtt_buckets = n_buckets;
	if (labels)
		f->cfg->targets[0].labels = strdup(labels);
	plan = pinger_prepare(f->p, f->cfg, err, sizeof err);
	if (!plan)
		return false;
	pinger_commit(f->p, plan);
	return true;
}

static void setup(struct fixture *f)
{
	memset(f, 0, sizeof *f);
	f->loop = loop_new();
	cr_assert_not_null(f->loop);
	f->p = pinger_new(f->loop);
	cr_assert_not_null(f->p);
	timer_init(&f->stop, on_stop);
}

static void teardown(struct fixture *f)
{
	pinger_free(f->p);
	config_free(f->cfg);
	loop_free(f->loop);
}

static void run_for(struct fixture *f, uint64_t ns)
{
	loop_timer_arm(f->loop, &f->stop, loop_now_refresh(f->loop) + ns);
	loop_run(f->loop);
}

Test(view, names_cover_every_value)
{
	for (int i = 0; i < VIEW_SEND_COUNT_; i++)
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(view_send_err_name(i), view_send_err_name(j));
	for (int i = 0; i < VIEW_ICMP_COUNT_; i++)
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(view_icmp_err_name(i), view_icmp_err_name(j));
	for (int i = 0; i < VIEW_IGN_COUNT_; i++)
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(view_ignored_name(i), view_ignored_name(j));
	cr_assert_str_eq(view_send_err_name(VIEW_SEND_TOO_BIG), "too_big");
	cr_assert_str_eq(view_icmp_err_name(VIEW_ICMP_TIME_EXCEEDED), "time_exceeded");
	cr_assert_str_eq(view_ignored_name(VIEW_IGN_SEQ), "seq");
}

Test(view, empty_pinger)
{
	struct fixture f;
	struct view_cursor c;
	struct view_probe vp;
	struct view_pinger g;

	setup(&f);
	pinger_view_begin(f.p, &c);
	cr_assert_not(pinger_view_next(f.p, &c, &vp));
	cr_assert_eq(pinger_view_target(f.p, "a", &vp, 1), 0);
	pinger_view_global(f.p, &g);
	cr_assert_eq(g.probes, 0);
	cr_assert_eq(g.late_count, 0);
	cr_assert_gt(g.late_n_buckets, 1);
	cr_assert_eq(g.late_le_ns[g.late_n_buckets - 1], UINT64_MAX);
	cr_assert_eq(g.rtt_bounds.n, 0);
	teardown(&f);
}

Test(view, walk_resume_and_generation)
{
	struct fixture f;
	struct view_cursor c, again;
	struct view_probe vp[2];
	uint64_t gen;

	setup(&f);
	if (!apply(&f, conf, 0, "site=lab")) {
		teardown(&f);
		cr_skip_test("no ICMP socket (needs root or ping_group_range)");
	}
	pinger_view_begin(f.p, &c);
	cr_assert(pinger_view_next(f.p, &c, &vp[0]));
	cr_assert_str_eq(vp[0].target, "a");
	cr_assert_str_eq(vp[0].labels, "site=lab");
	cr_assert_eq(vp[0].index, 0);
	cr_assert_null(vp[0].rtt_hist);
	/* Resume from the index a writer kept. */
	again.gen = c.gen;
	again.next = vp[0].index + 1;
	cr_assert(pinger_view_next(f.p, &again, &vp[1]));
	cr_assert_str_eq(vp[1].target, "b");
	cr_assert_null(vp[1].labels);
	cr_assert_eq(vp[1].index, 1);
	cr_assert_not(pinger_view_next(f.p, &again, &vp[1]));
	/* The same set again: the walk goes on. */
	gen = c.gen;
	cr_assert(apply(&f, conf, 0, "site=lab"));
	pinger_view_begin(f.p, &again);
	cr_assert_eq(again.gen, gen);
	/* A target less: the old walk ends. */
	cr_assert(apply(&f, "[tcp]\nenabled = no\n[udp]\nenabled = no\n"
			    "[target b]\nhost = 127.0.0.2\n", 0, NULL));
	cr_assert_not(pinger_view_next(f.p, &c, &vp[0]));
	cr_assert_eq(pinger_view_target(f.p, "a", vp, 2), 0);
	cr_assert_eq(pinger_view_target(f.p, "b", vp, 2), 1);
	cr_assert_eq(vp[0].index, 0);
	teardown(&f);
}

Test(view, replies_hooks_and_histogram)
{
	struct fixture f;
	struct pinger_hooks h = { .on_outcome = on_outcome, .on_gone = on_gone };
	struct view_probe vp;
	struct view_pinger g;
	uint64_t hist_total = 0;

	setup(&f);
	h.arg = &f;
	pinger_set_hooks(f.p, &h);
	if (!apply(&f, conf, CONFIG_RTT_BUCKETS_DEFAULT_N, NULL)) {
		teardown(&f);
		cr_skip_test("no ICMP socket (needs root or ping_group_range)");
	}
	run_for(&f, 550 * NSEC_PER_MSEC);
	cr_assert_eq(pinger_view_target(f.p, "a", &vp, 1), 1);
	cr_assert_geq(vp.run.received, 3, "received %llu", (unsigned long long)vp.run.received);
	cr_assert_eq(vp.run.sent - vp.run.received - vp.run.lost, vp.in_flight);
	cr_assert_eq(vp.state, HEALTH_UP);
	cr_assert_eq(vp.state_changes, 1);
	cr_assert_gt(vp.state_since_ns, 0);
	cr_assert(strcmp(vp.socket, "dgram") == 0 || strcmp(vp.socket, "raw") == 0, "%s",
		  vp.socket);
	cr_assert_neq(vp.last_rtt_ns, STATS_NO_RTT);
	cr_assert_not_null(vp.rtt_hist);
	for (uint32_t b = 0; b <= CONFIG_RTT_BUCKETS_DEFAULT_N; b++)
		hist_total += vp.rtt_hist[b];
	cr_assert_eq(hist_total, vp.run.received);
	/* Loopback answers within 2 s: nothing in +Inf. */
	cr_assert_eq(vp.rtt_hist[CONFIG_RTT_BUCKETS_DEFAULT_N], 0);
	cr_assert_geq(f.outcomes, 6);
	cr_assert_neq(f.last_rtt, STATS_NO_RTT);
	pinger_view_global(f.p, &g);
	cr_assert_eq(g.probes, 2);
	cr_assert_eq(g.up, 2);
	cr_assert_eq(g.rtt_bounds.n, CONFIG_RTT_BUCKETS_DEFAULT_N);
	cr_assert_eq(g.rtt_bounds.le_ns[0], 100 * NSEC_PER_USEC);
	cr_assert_geq(g.late_count, vp.run.sent);
	cr_assert_str_eq(g.socket_kinds, strcmp(vp.socket, "raw") == 0 ? "4:raw" : "4:dgram");
	/* Histogram off at a reload: kept probes drop theirs. */
	cr_assert(apply(&f, conf, 0, NULL));
	cr_assert_eq(pinger_view_target(f.p, "a", &vp, 1), 1);
	cr_assert_null(vp.rtt_hist);
	cr_assert_geq(vp.run.received, 3);
	/* A removed target's slot is released. */
	cr_assert(apply(&f, "[tcp]\nenabled = no\n[udp]\nenabled = no\n"
			    "[target b]\nhost = 127.0.0.2\n", 0, NULL));
	cr_assert_eq(f.gone, 1);
	teardown(&f);
	cr_assert_eq(f.gone, 2);
}
