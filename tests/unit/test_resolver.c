/* resolver: lookups inside the loop, never blocking it. */
#include <arpa/inet.h>
#include <ares.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "resolver.h"

struct outcome {
	int calls;
	int status;
	size_t n;
	struct endpoint first;
	struct loop *loop;
};

static void on_result(void *arg, const struct resolver_result *res)
{
	struct outcome *o = arg;
	o->calls++;
	o->status = res->status;
	o->n = res->n_addrs;
	if (res->n_addrs)
		o->first = res->addrs[0];
	if (res->status)
		cr_assert_not_null(res->error);
	loop_stop(o->loop);
}

struct ticker {
	struct timer t;
	struct loop *loop;
	int ticks;
	uint64_t worst_gap;
	uint64_t last;
};

static void on_tick(struct timer *t)
{
	struct ticker *k = container_of(t, struct ticker, t);
	uint64_t now = loop_now_refresh(k->loop);
	if (k->last && now - k->last > k->worst_gap)
		k->worst_gap = now - k->last;
	k->last = now;
	k->ticks++;
	loop_timer_arm(k->loop, t, now + 10 * NSEC_PER_MSEC);
}

static struct timer guard;
static struct loop *guard_loop;
static void on_guard(struct timer *t)
{
	(void)t;
	loop_stop(guard_loop);
}

static void run_with_guard(struct loop *loop, uint64_t ns)
{
	guard_loop = loop;
	timer_init(&guard, on_guard);
	loop_timer_arm(loop, &guard, loop_now_refresh(loop) + ns);
	loop_run(loop);
	loop_timer_cancel(loop, &guard);
}

Test(resolver, hosts_file_localhost)
{
	struct loop *loop = loop_new();
	char err[256];
	struct resolver *r = resolver_new(loop, NULL, 500, 1, err, sizeof err);
	cr_assert_not_null(r, "%s", err);

	struct outcome o = { .loop = loop };
	struct resolver_query *q = NULL;
	cr_assert_eq(resolver_lookup(r, "localhost", AF_INET, on_result, &o, &q), 0);
	if (o.calls == 0)
		run_with_guard(loop, 5 * NSEC_PER_SEC);
	cr_assert_eq(o.calls, 1);
	cr_assert_null(q, "the handle is cleared before the callback");
	cr_assert_eq(o.status, 0);
	cr_assert_geq(o.n, 1);
	cr_assert_eq(o.first.u.sa.sa_family, AF_INET);
	cr_assert_eq(ntohl(o.first.u.in4.sin_addr.s_addr) >> 24, 127);
	resolver_free(r);
	loop_free(loop);
}

/* A "server" that never answers: the lookup times out while a 10 ms
 * periodic timer keeps running, i.e. the loop is never blocked. */
Test(resolver, silent_server_does_not_block_loop)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sin;
	cr_assert_eq(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	char servers[64];
	snprintf(servers, sizeof servers, "127.0.0.1:%u", ntohs(sin.sin_port));

	struct loop *loop = loop_new();
	char err[256];
	struct resolver *r = resolver_new(loop, servers, 300, 2, err, sizeof err);
	cr_assert_not_null(r, "%s", err);

	struct ticker k = { .loop = loop };
	timer_init(&k.t, on_tick);
	loop_timer_arm(loop, &k.t, loop_now_refresh(loop));

	struct outcome o = { .loop = loop };
	struct resolver_query *q = NULL;
	uint64_t t0 = loop_now_refresh(loop);
	cr_assert_eq(resolver_lookup(r, "never.answers.test", AF_INET, on_result, &o, &q), 0);
	cr_assert_not_null(q);
	run_with_guard(loop, 10 * NSEC_PER_SEC);
	uint64_t took = loop_now_refresh(loop) - t0;

	cr_assert_eq(o.calls, 1);
	cr_assert_eq(o.status, ARES_ETIMEOUT, "status %d", o.status);
	cr_assert_geq(took, 300 * NSEC_PER_MSEC);
	cr_assert_gt(k.ticks, 20, "the loop kept running timers: %d ticks", k.ticks);
	char buf[512];
	cr_assert_gt(recv(s, buf, sizeof buf, MSG_DONTWAIT), 0, "the query was sent");

	loop_timer_cancel(loop, &k.t);
	resolver_free(r);
	loop_free(loop);
	close(s);
}

Test(resolver, cancel_suppresses_callback_and_free_with_pending)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sin;
	cr_assert_eq(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	char servers[64];
	snprintf(servers, sizeof servers, "127.0.0.1:%u", ntohs(sin.sin_port));

	struct loop *loop = loop_new();
	char err[256];
	struct resolver *r = resolver_new(loop, servers, 200, 1, err, sizeof err);
	cr_assert_not_null(r, "%s", err);

	struct outcome a = { .loop = loop }, b = { .loop = loop };
	struct resolver_query *qa = NULL, *qb = NULL;
	cr_assert_eq(resolver_lookup(r, "a.test", AF_INET, on_result, &a, &qa), 0);
	cr_assert_eq(resolver_lookup(r, "b.test", AF_INET6, on_result, &b, &qb), 0);
	resolver_cancel(&qa);
	cr_assert_null(qa);
	run_with_guard(loop, 5 * NSEC_PER_SEC);
	cr_assert_eq(a.calls, 0);
	cr_assert_eq(b.calls, 1);

	/* A lookup still pending at free: no callback, no leak. */
	struct outcome c = { .loop = loop };
	struct resolver_query *qc = NULL;
	cr_assert_eq(resolver_lookup(r, "c.test", AF_INET, on_result, &c, &qc), 0);
	cr_assert_eq(resolver_pending(r), 1);
	resolver_free(r);
	cr_assert_eq(c.calls, 0);
	loop_free(loop);
	close(s);
}

Test(resolver, bad_server_list)
{
	struct loop *loop = loop_new();
	char err[256];
	cr_assert_null(resolver_new(loop, "not an address", 200, 1, err, sizeof err));
	cr_assert(strstr(err, "not an address"), "%s", err);
	loop_free(loop);
}
