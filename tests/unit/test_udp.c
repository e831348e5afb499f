/*
 * Unit tests for the UDP service driven through a real loop on loopback:
 * the parts the integration tests cannot reach through the daemon
 * (truncation with a small buffer, prepare/abort bookkeeping, the rate
 * table kept or replaced by a reconfiguration).
 *
 * Sockets are handed in as "inherited" so the test knows their ports.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "log.h"
#include "loop.h"
#include "net.h"
#include "parse.h"
#include "udp.h"
#include "util.h"

static struct loop *L;
static struct udp_service *S;
static uint8_t *B;
static struct cidr loopback[2];

struct stopper {
	struct timer t;
	struct loop *loop;
};

static void stop_now(struct timer *t)
{
	loop_stop(container_of(t, struct stopper, t)->loop);
}

/* Let the loop run for ms milliseconds. */
static void run_for(unsigned ms)
{
	struct stopper st = { .loop = L };
	timer_init(&st.t, stop_now);
	loop_timer_arm(L, &st.t, loop_now_refresh(L) + (uint64_t)ms * NSEC_PER_MSEC);
	cr_assert_eq(loop_run(L), 0);
}

static void make(size_t buflen)
{
	L = loop_new();
	cr_assert_not_null(L);
	B = malloc(buflen);
	S = udp_new(L, B, buflen);
	cr_assert_not_null(S);
	cr_assert_eq(parse_cidr("127.0.0.0/8", &loopback[0]), 0);
	cr_assert_eq(parse_cidr("::1/128", &loopback[1]), 0);
}

static void teardown(void)
{
	udp_free(S);
	loop_free(L);
	free(B);
}

static struct config_udp config(struct endpoint *listen, size_t n, uint32_t rate,
				uint32_t burst, uint32_t table)
{
	struct config_udp c = {
		.enabled = true,
		.listen = listen,
		.n_listen = n,
		.mode = MODE_ECHO,
		.allow = { .v = loopback, .n = 2 },
		.rate_limit = rate,
		.rate_burst = burst,
		.rate_table_size = table,
	};
	return c;
}

/* A socket bound to 127.0.0.1:0, presented as passed by systemd. */
static struct sd_listen_fd inherited_fd(void)
{
	struct sd_listen_fd f = { .type = SOCK_DGRAM };
	struct endpoint ep;
	cr_assert_eq(parse_endpoint("127.0.0.1:0", &ep), 0);
	f.fd = net_listen(&ep, SOCK_DGRAM, 0);
	cr_assert_geq(f.fd, 0);
	cr_assert_eq(net_local_endpoint(f.fd, &f.addr), 0);
	return f;
}

static void apply(const struct config_udp *c, struct sd_listen_set *inh)
{
	char err[256] = "";
	struct udp_plan *p = udp_prepare(S, c, inh, err, sizeof err);
	cr_assert_not_null(p, "prepare: %s", err);
	udp_commit(S, p);
}

static int client(const struct endpoint *to, const char *from)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, from, &sin.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	cr_assert_eq(connect(fd, &to->u.sa, to->len), 0);
	return fd;
}

static int replies(int fd)
{
	char buf[4096];
	int n = 0;
	while (recv(fd, buf, sizeof buf, 0) >= 0)
		n++;
	return n;
}

static size_t fd_count(void)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

Test(udp, truncated_datagrams_are_dropped_and_counted, .fini = teardown, .timeout = 30)
{
	make(1024);   /* one slot of 1 KiB */
	struct sd_listen_fd f = inherited_fd();
	struct sd_listen_set set = { .v = &f, .n = 1 };
	struct config_udp c = config(&f.addr, 1, 0, 0, 64);
	apply(&c, &set);
	cr_assert(f.taken);

	int fd = client(&f.addr, "127.0.0.1");
	char big[2000], small[1024];
	memset(big, 'b', sizeof big);
	memset(small, 's', sizeof small);
	cr_assert_eq(send(fd, big, sizeof big, 0), (ssize_t)sizeof big);
	cr_assert_eq(send(fd, small, sizeof small, 0), (ssize_t)sizeof small);
	run_for(100);
	char got[4096];
	cr_assert_eq(recv(fd, got, sizeof got, 0), (ssize_t)sizeof small);
	cr_assert_eq(memcmp(got, small, sizeof small), 0);
	cr_assert_eq(replies(fd), 0);
	const struct udp_counters *k = udp_counters(S);
	cr_assert_eq(k->received, 2);
	cr_assert_eq(k->drop_truncated, 1);
	cr_assert_eq(k->echoed, 1);
	close(fd);
}

Test(udp, rate_table_kept_unless_its_size_changes, .fini = teardown, .timeout = 30)
{
	make(64 * 65536);
	struct sd_listen_fd f = inherited_fd();
	struct sd_listen_set set = { .v = &f, .n = 1 };
	struct config_udp c = config(&f.addr, 1, 1, 1, 64);
	apply(&c, &set);
	const struct udp_counters *k = udp_counters(S);

	int fd = client(&f.addr, "127.0.0.1");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(send(fd, "x", 1, 0), 1);
	run_for(100);
	cr_assert_eq(replies(fd), 1, "burst 1: one reply");
	cr_assert_eq(k->drop_rate, 2);

	/* Same table size (and same socket, found by its configured
	 * endpoint): the source's empty bucket survives. */
	c = config(&f.addr, 1, 1, 1, 64);
	apply(&c, NULL);
	cr_assert_eq(send(fd, "y", 1, 0), 1);
	run_for(100);
	cr_assert_eq(replies(fd), 0, "the bucket must still be empty after a reload");
	cr_assert_eq(k->drop_rate, 3);

	/* A new size means a new table: the source starts afresh. */
	c = config(&f.addr, 1, 1, 1, 128);
	apply(&c, NULL);
	cr_assert_eq(send(fd, "z", 1, 0), 1);
	run_for(100);
	cr_assert_eq(replies(fd), 1);

	/* Rate 0 turns the limiter off. */
	c = config(&f.addr, 1, 0, 0, 128);
	apply(&c, NULL);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(send(fd, "w", 1, 0), 1);
	run_for(100);
	cr_assert_eq(replies(fd), 10);
	cr_assert_eq(k->drop_rate, 3);
	close(fd);
}

Test(udp, abort_closes_only_what_prepare_opened, .fini = teardown, .timeout = 30)
{
	make(64 * 65536);
	struct endpoint eps[2];
	cr_assert_eq(parse_endpoint("127.0.0.1:0", &eps[0]), 0);
	cr_assert_eq(parse_endpoint("[::1]:0", &eps[1]), 0);
	struct config_udp c = config(eps, 1, 0, 0, 64);
	apply(&c, NULL);
	size_t before = fd_count();

	/* Keeps 127.0.0.1:0 and adds [::1]:0, then is abandoned. */
	c = config(eps, 2, 10, 20, 64);
	char err[256];
	struct udp_plan *p = udp_prepare(S, &c, NULL, err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	cr_assert_eq(fd_count(), before + 1);
	udp_abort(p);
	cr_assert_eq(fd_count(), before, "abort must close the new socket and only it");
}

Test(udp, failed_prepare_names_address_and_error, .fini = teardown, .timeout = 30)
{
	make(64 * 65536);
	/* A socket without SO_REUSEADDR: nobody can share its port. */
	int busy = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(busy, (struct sockaddr *)&sin, sizeof sin), 0);
	struct endpoint eps[2];
	cr_assert_eq(parse_endpoint("[::1]:0", &eps[0]), 0);
	cr_assert_eq(net_local_endpoint(busy, &eps[1]), 0);
	char want[NET_ENDPOINT_STRLEN];
	net_endpoint_str(&eps[1], want, sizeof want);

	size_t before = fd_count();
	struct config_udp c = config(eps, 2, 0, 0, 64);
	char err[256] = "";
	cr_assert_null(udp_prepare(S, &c, NULL, err, sizeof err));
	cr_assert_not_null(strstr(err, want), "%s", err);
	cr_assert_not_null(strstr(err, strerror(EADDRINUSE)), "%s", err);
	cr_assert_eq(fd_count(), before, "the [::1] socket opened first must be closed");
	close(busy);
}
