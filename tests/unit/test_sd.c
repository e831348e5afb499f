/*
 * Unit tests for sd: notifications are received by a socket the test binds
 * (path and abstract namespace) and compared byte for byte; socket
 * activation runs in a forked child that owns fds 3.. alone, because
 * Criterion keeps its own descriptors in the test process.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "sd.h"

/* ---- notification receiver --------------------------------------------- */

struct receiver {
	int fd;
	char dir[64];
	char path[128];
	char env[160];           /* the NOTIFY_SOCKET value */
};

static void receiver_path(struct receiver *r)
{
	strcpy(r->dir, "/tmp/beacond-sd-XXXXXX");
	cr_assert_not_null(mkdtemp(r->dir));
	snprintf(r->path, sizeof r->path, "%s/notify", r->dir);
	r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert_geq(r->fd, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	strcpy(sun.sun_path, r->path);
	cr_assert_eq(bind(r->fd, (struct sockaddr *)&sun, sizeof sun), 0, "bind: %s",
		     strerror(errno));
	strcpy(r->env, r->path);
}

static void receiver_abstract(struct receiver *r)
{
	r->dir[0] = '\0';
	/* Unique per process so parallel runs never collide. */
	snprintf(r->path, sizeof r->path, "beacond-sd-test-%d-%lx", (int)getpid(),
		 (unsigned long)random());
	r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert_geq(r->fd, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(r->path);
	memcpy(sun.sun_path + 1, r->path, n);
	/* The abstract name is exactly n bytes after the leading NUL: no
	 * trailing NUL, so the sender must use the same length to reach us. */
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	cr_assert_eq(bind(r->fd, (struct sockaddr *)&sun, len), 0, "bind: %s", strerror(errno));
	snprintf(r->env, sizeof r->env, "@%s", r->path);
}

static void receiver_close(struct receiver *r)
{
	close(r->fd);
	if (r->dir[0] != '\0') {
		unlink(r->path);
		rmdir(r->dir);
	}
}

/* Receive one datagram (waiting up to a second); returns its length. */
static ssize_t receiver_get(struct receiver *r, char *buf, size_t len)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 1000), 1, "no datagram arrived");
	ssize_t n = recv(r->fd, buf, len, 0);
	cr_assert_geq(n, 0, "recv: %s", strerror(errno));
	return n;
}

static void assert_datagram(struct receiver *r, const char *expect)
{
	char buf[4096];
	ssize_t n = receiver_get(r, buf, sizeof buf);
	cr_assert_eq((size_t)n, strlen(expect), "got %zd bytes, want %zu", n, strlen(expect));
	cr_assert(memcmp(buf, expect, (size_t)n) == 0, "got \"%.*s\", want \"%s\"",
		  (int)n, buf, expect);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* ---- sd_notify ------------------------------------------------------------ */

Test(sd_notify, unset_socket_is_not_an_error)
{
	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(sd_notify("READY=1"), 0);
	cr_assert_eq(sd_notifyf("STATUS=%d targets", 3), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	cr_assert_eq(sd_notify("READY=1"), 0);
}

Test(sd_notify, path_socket_gets_exact_datagram)
{
	struct receiver r;
	receiver_path(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	cr_assert_eq(sd_notify("READY=1"), 1);
	assert_datagram(&r, "READY=1");
	cr_assert_eq(sd_notifyf("STATUS=tcp %d conns, %s", 12, "2/3 targets up"), 1);
	assert_datagram(&r, "STATUS=tcp 12 conns, 2/3 targets up");
	receiver_close(&r);
}

Test(sd_notify, abstract_socket_gets_exact_datagram)
{
	struct receiver r;
	receiver_abstract(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	cr_assert_eq(sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu", 123456789ULL), 1);
	assert_datagram(&r, "RELOADING=1\nMONOTONIC_USEC=123456789");
	cr_assert_eq(sd_notify("WATCHDOG=1"), 1);
	assert_datagram(&r, "WATCHDOG=1");
	receiver_close(&r);
}

Test(sd_notify, long_status_is_one_datagram)
{
	struct receiver r;
	receiver_path(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	char big[3000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cr_assert_eq(sd_notifyf("STATUS=%s", big), 1);
	char expect[3100];
	snprintf(expect, sizeof expect, "STATUS=%s", big);
	assert_datagram(&r, expect);
	receiver_close(&r);
}

Test(sd_notify, missing_socket_fails_without_leaking)
{
	int before = count_fds();
	setenv("NOTIFY_SOCKET", "/nonexistent-beacond-dir/notify", 1);
	errno = 0;
	cr_assert_eq(sd_notify("READY=1"), -1);
	cr_assert_eq(errno, ENOENT, "errno %s", strerror(errno));
	cr_assert_eq(count_fds(), before);

	/* A socket file whose receiver is gone: refused, and no SIGPIPE
	 * (the test process would die of it). */
	struct receiver r;
	receiver_path(&r);
	close(r.fd);
	setenv("NOTIFY_SOCKET", r.env, 1);
	errno = 0;
	cr_assert_eq(sd_notify("STOPPING=1"), -1);
	cr_assert_eq(errno, ECONNREFUSED, "errno %s", strerror(errno));
	unlink(r.path);
	rmdir(r.dir);
	cr_assert_eq(count_fds(), before);
}

Test(sd_notify, bad_addresses_are_rejected)
{
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	errno = 0;
	cr_assert_eq(sd_notify("READY=1"), -1);
	cr_assert_eq(errno, EAFNOSUPPORT);

	setenv("NOTIFY_SOCKET", "@", 1);
	errno = 0;
	cr_assert_eq(sd_notify("READY=1"), -1);
	cr_assert_eq(errno, EINVAL);

	char longpath[200];
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	setenv("NOTIFY_SOCKET", longpath, 1);
	errno = 0;
	cr_assert_eq(sd_notify("READY=1"), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	longpath[0] = '@';
	setenv("NOTIFY_SOCKET", longpath, 1);
	errno = 0;
	cr_assert_eq(sd_notify("READY=1"), -1);
	cr_assert_eq(errno, ENAMETOOLONG);

	cr_assert_eq(sd_notify(NULL), -1);
}

/* A receiver that never reads: its queue fills and the sender gets EAGAIN
 * instead of blocking (a blocking send would hang until the timeout). */
Test(sd_notify, full_receiver_never_blocks, .timeout = 20)
{
	struct receiver r;
	receiver_abstract(&r);
	int small = 1024;
	setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setenv("NOTIFY_SOCKET", r.env, 1);

	int sent = 0;
	int rc = 0;
	for (int i = 0; i < 100000; i++) {
		rc = sd_notify("WATCHDOG=1");
		if (rc != 1)
			break;
		sent++;
	}
	cr_assert_eq(rc, -1, "the queue never filled");
	cr_assert_eq(errno, EAGAIN, "errno %s", strerror(errno));
	cr_assert_gt(sent, 0);
	receiver_close(&r);
}

/* ---- watchdog -------------------------------------------------------------- */

Test(sd_watchdog, pid_logic)
{
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	cr_assert_eq(sd_watchdog_usec(), 0);

	setenv("WATCHDOG_USEC", "1000000", 1);
	cr_assert_eq(sd_watchdog_usec(), 1000000);

	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	cr_assert_eq(sd_watchdog_usec(), 1000000);

	/* Meant for another process (our parent, say): not ours. */
	snprintf(pid, sizeof pid, "%d", (int)getppid());
	setenv("WATCHDOG_PID", pid, 1);
	cr_assert_eq(sd_watchdog_usec(), 0);

	setenv("WATCHDOG_PID", "12x", 1);
	cr_assert_eq(sd_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "0", 1);
	cr_assert_eq(sd_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");

	const char *bad[] = { "", "abc", "-5", "10s", " 100", "99999999999999999999999" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		cr_assert_eq(sd_watchdog_usec(), 0, "WATCHDOG_USEC=\"%s\"", bad[i]);
	}
	setenv("WATCHDOG_USEC", "0", 1);
	cr_assert_eq(sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "18446744073709551615", 1);
	cr_assert_eq(sd_watchdog_usec(), UINT64_MAX);
	unsetenv("WATCHDOG_USEC");
}

/* ---- socket activation ----------------------------------------------------- */

#define REPORT_FD 200
#define MAX_FDS 4

/* What the child saw, sent back to the test process over a pipe. */
struct report {
	int rc;
	char err[256];
	size_t n;
	bool named;
	struct {
		int fd;
		int type;
		bool listening;
		bool cloexec;
		bool nonblock;
		int family;
		unsigned port;
		char name[64];
	} v[MAX_FDS];
	unsigned bound_port[MAX_FDS];    /* ports the child bound, in fd order */
	bool env_left[3];                /* LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES */
	int take[8];                     /* scenario-specific results */
	bool open_after_release[MAX_FDS];
	bool skipped;
};

typedef void (*scenario_fn)(struct report *rep);

static unsigned local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* A blocking, inheritable socket bound to loopback on an ephemeral port,
 * which must land on fd `want`: the child closed everything else. */
static int make_socket(struct report *rep, int family, int type, bool do_listen, int want)
{
	int fd = socket(family, type, 0);
	if (fd != want)
		_exit(10 + want);
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
		in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *in4;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_addr = in6addr_loopback;
		len = sizeof *in6;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		if (family == AF_INET6 && errno == EADDRNOTAVAIL) {
			rep->skipped = true;
			return -1;
		}
		_exit(20 + want);
	}
	if (do_listen && listen(fd, 8) < 0)
		_exit(30 + want);
	rep->bound_port[want - 3] = local_port(fd);
	return fd;
}

static void set_listen_pid(int delta)
{
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid() + delta);
	setenv("LISTEN_PID", pid, 1);
}

static void collect_into(struct report *rep, struct sd_listen_set *set)
{
	rep->rc = sd_listen_collect(set, rep->err, sizeof rep->err);
	rep->n = set->n;
	rep->named = set->named;
	for (size_t i = 0; i < set->n && i < MAX_FDS; i++) {
		struct sd_listen_fd *lf = &set->v[i];
		rep->v[i].fd = lf->fd;
		rep->v[i].type = lf->type;
		rep->v[i].listening = lf->listening;
		rep->v[i].family = lf->addr.u.sa.sa_family;
		rep->v[i].port = lf->addr.u.sa.sa_family == AF_INET ? ntohs(lf->addr.u.in4.sin_port)
				 : lf->addr.u.sa.sa_family == AF_INET6 ? ntohs(lf->addr.u.in6.sin6_port)
				 : 0;
		snprintf(rep->v[i].name, sizeof rep->v[i].name, "%s", lf->name);
		int fdfl = fcntl(lf->fd, F_GETFD);
		int flfl = fcntl(lf->fd, F_GETFL);
		rep->v[i].cloexec = fdfl >= 0 && (fdfl & FD_CLOEXEC);
		rep->v[i].nonblock = flfl >= 0 && (flfl & O_NONBLOCK);
	}
	rep->env_left[0] = getenv("LISTEN_PID") != NULL;
	rep->env_left[1] = getenv("LISTEN_FDS") != NULL;
	rep->env_left[2] = getenv("LISTEN_FDNAMES") != NULL;
}

static void run_scenario(scenario_fn fn, struct report *rep)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Park the report pipe high, then close everything else from 3
		 * up so the sockets the scenario creates land on 3, 4, ... */
		if (dup2(p[1], REPORT_FD) != REPORT_FD)
			_exit(2);
		close_range(3, REPORT_FD - 1, 0);
		close_range(REPORT_FD + 1, ~0U, 0);
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
		struct report r;
		memset(&r, 0, sizeof r);
		fn(&r);
		const char *b = (const char *)&r;
		size_t off = 0;
		while (off < sizeof r) {
			ssize_t w = write(REPORT_FD, b + off, sizeof r - off);
			if (w <= 0)
				_exit(3);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(p[1]);
	memset(rep, 0, sizeof *rep);
	size_t off = 0;
	while (off < sizeof *rep) {
		ssize_t n = read(p[0], (char *)rep + off, sizeof *rep - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(p[0]);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "scenario child failed: status 0x%x", status);
	cr_assert_eq(off, sizeof *rep);
}

static void assert_env_unset(const struct report *rep)
{
	cr_assert_not(rep->env_left[0], "LISTEN_PID left set");
	cr_assert_not(rep->env_left[1], "LISTEN_FDS left set");
	cr_assert_not(rep->env_left[2], "LISTEN_FDNAMES left set");
}

static void scenario_tcp_udp_named(struct report *rep)
{
	make_socket(rep, AF_INET, SOCK_STREAM, true, 3);
	make_socket(rep, AF_INET, SOCK_DGRAM, false, 4);
	make_socket(rep, AF_INET, SOCK_DGRAM, false, 5);
	set_listen_pid(0);
	setenv("LISTEN_FDS", "3", 1);
	setenv("LISTEN_FDNAMES", "echo-tcp:echo-udp:spare", 1);

	struct sd_listen_set set;
	collect_into(rep, &set);
	if (rep->rc < 0)
		return;

	struct endpoint ep = set.v[0].addr;
	rep->take[0] = sd_listen_take(&set, SOCK_DGRAM, &ep);     /* wrong type */
	rep->take[1] = sd_listen_take(&set, SOCK_STREAM, &ep);    /* 3 */
	rep->take[2] = sd_listen_take(&set, SOCK_STREAM, &ep);    /* already taken */
	rep->take[3] = sd_listen_take_any(&set, SOCK_DGRAM, "nope");
	rep->take[4] = sd_listen_take_any(&set, SOCK_DGRAM, "echo-udp");  /* 4 */
	rep->take[5] = sd_listen_take_any(&set, SOCK_STREAM, NULL);       /* none left */
	sd_listen_release(&set);
	for (int i = 0; i < 3; i++)
		rep->open_after_release[i] = fcntl(3 + i, F_GETFD) >= 0;
	rep->take[6] = (int)set.n;
	rep->take[7] = set.v == NULL;
}

Test(sd_listen, collects_types_addresses_names)
{
	struct report rep;
	run_scenario(scenario_tcp_udp_named, &rep);
	cr_assert_eq(rep.rc, 0, "collect: %s", rep.err);
	cr_assert_eq(rep.n, 3);
	cr_assert(rep.named);
	int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_DGRAM };
	const char *names[] = { "echo-tcp", "echo-udp", "spare" };
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(rep.v[i].fd, 3 + i);
		cr_assert_eq(rep.v[i].type, types[i], "fd %d", 3 + i);
		cr_assert_eq(rep.v[i].family, AF_INET);
		cr_assert_neq(rep.bound_port[i], 0);
		cr_assert_eq(rep.v[i].port, rep.bound_port[i]);
		cr_assert_str_eq(rep.v[i].name, names[i]);
		cr_assert(rep.v[i].cloexec, "fd %d not CLOEXEC", 3 + i);
		cr_assert(rep.v[i].nonblock, "fd %d not O_NONBLOCK", 3 + i);
	}
	cr_assert(rep.v[0].listening);
	cr_assert_not(rep.v[1].listening);
	assert_env_unset(&rep);

	cr_assert_eq(rep.take[0], -1, "a stream socket was taken as a datagram one");
	cr_assert_eq(rep.take[1], 3);
	cr_assert_eq(rep.take[2], -1, "a socket was taken twice");
	cr_assert_eq(rep.take[3], -1, "a name that is not there matched");
	cr_assert_eq(rep.take[4], 4);
	cr_assert_eq(rep.take[5], -1);
	/* Release closes only what nobody took, and empties the set. */
	cr_assert(rep.open_after_release[0]);
	cr_assert(rep.open_after_release[1]);
	cr_assert_not(rep.open_after_release[2], "the untaken fd 5 is still open");
	cr_assert_eq(rep.take[6], 0);
	cr_assert_eq(rep.take[7], 1);
}

static void scenario_unnamed_ipv6(struct report *rep)
{
	if (make_socket(rep, AF_INET6, SOCK_DGRAM, false, 3) < 0)
		return;
	make_socket(rep, AF_INET6, SOCK_STREAM, true, 4);
	set_listen_pid(0);
	setenv("LISTEN_FDS", "2", 1);

	struct sd_listen_set set;
	collect_into(rep, &set);
	if (rep->rc < 0)
		return;
	/* Without LISTEN_FDNAMES a requested name cannot be checked, so any
	 * socket of the right type does. */
	rep->take[0] = sd_listen_take_any(&set, SOCK_STREAM, "tcp");
	struct endpoint ep = set.v[0].addr;
	rep->take[1] = sd_listen_take(&set, SOCK_DGRAM, &ep);
	sd_listen_release(&set);
}

Test(sd_listen, unnamed_ipv6)
{
	struct report rep;
	run_scenario(scenario_unnamed_ipv6, &rep);
	if (rep.skipped)
		cr_skip_test("no ::1 on this machine");
	cr_assert_eq(rep.rc, 0, "collect: %s", rep.err);
	cr_assert_eq(rep.n, 2);
	cr_assert_not(rep.named);
	cr_assert_str_eq(rep.v[0].name, "");
	cr_assert_eq(rep.v[0].family, AF_INET6);
	cr_assert_eq(rep.v[0].type, SOCK_DGRAM);
	cr_assert_eq(rep.v[0].port, rep.bound_port[0]);
	cr_assert_eq(rep.v[1].type, SOCK_STREAM);
	cr_assert_eq(rep.v[1].port, rep.bound_port[1]);
	cr_assert_eq(rep.take[0], 4);
	cr_assert_eq(rep.take[1], 3);
	assert_env_unset(&rep);
}

static void scenario_pid_mismatch(struct report *rep)
{
	make_socket(rep, AF_INET, SOCK_STREAM, true, 3);
	set_listen_pid(1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "x", 1);
	struct sd_listen_set set;
	collect_into(rep, &set);
	/* Not ours: the descriptor must be left exactly as it was. */
	int flfl = fcntl(3, F_GETFL);
	int fdfl = fcntl(3, F_GETFD);
	rep->take[0] = flfl >= 0 && (flfl & O_NONBLOCK);
	rep->take[1] = fdfl >= 0 && (fdfl & FD_CLOEXEC);
	rep->take[2] = fdfl >= 0;
	sd_listen_release(&set);
	rep->take[3] = fcntl(3, F_GETFD) >= 0;
}

Test(sd_listen, pid_mismatch_is_ignored)
{
	struct report rep;
	run_scenario(scenario_pid_mismatch, &rep);
	cr_assert_eq(rep.rc, 0, "collect: %s", rep.err);
	cr_assert_eq(rep.n, 0);
	cr_assert_eq(rep.take[0], 0, "a foreign fd was made nonblocking");
	cr_assert_eq(rep.take[1], 0, "a foreign fd was made CLOEXEC");
	cr_assert_eq(rep.take[2], 1);
	cr_assert_eq(rep.take[3], 1, "release closed an fd it never collected");
	assert_env_unset(&rep);
}

static void scenario_no_pid(struct report *rep)
{
	make_socket(rep, AF_INET, SOCK_STREAM, true, 3);
	setenv("LISTEN_FDS", "1", 1);
	struct sd_listen_set set;
	collect_into(rep, &set);
	sd_listen_release(&set);
}

Test(sd_listen, no_listen_pid_means_none)
{
	struct report rep;
	run_scenario(scenario_no_pid, &rep);
	cr_assert_eq(rep.rc, 0);
	cr_assert_eq(rep.n, 0);
	assert_env_unset(&rep);
}

static void scenario_zero(struct report *rep)
{
	set_listen_pid(0);
	setenv("LISTEN_FDS", "0", 1);
	struct sd_listen_set set;
	collect_into(rep, &set);
	sd_listen_release(&set);
}

Test(sd_listen, zero_fds)
{
	struct report rep;
	run_scenario(scenario_zero, &rep);
	cr_assert_eq(rep.rc, 0);
	cr_assert_eq(rep.n, 0);
	assert_env_unset(&rep);
}

/* Each malformed environment is an error with a message naming the
 * variable, and the variables are gone afterwards all the same. */
static const struct {
	const char *pid_suffix;  /* NULL: our pid */
	const char *fds;
	const char *names;
	const char *expect;      /* substring of the message */
} bad_env[] = {
	{ "abc", "1", NULL, "LISTEN_PID" },
	{ "0", "1", NULL, "LISTEN_PID" },
	{ NULL, "1x", NULL, "LISTEN_FDS" },
	{ NULL, "-1", NULL, "LISTEN_FDS" },
	{ NULL, "99999999999", NULL, "LISTEN_FDS" },
	{ NULL, "3", NULL, "not open" },
	{ NULL, "2", "a:b:c", "LISTEN_FDNAMES" },
	{ NULL, "2", "a", "LISTEN_FDNAMES" },
	{ NULL, "2", "a:0123456789012345678901234567890123456789012345678901234567890123456789",
	  "longer" },
};
static size_t bad_index;

static void scenario_bad(struct report *rep)
{
	make_socket(rep, AF_INET, SOCK_STREAM, true, 3);
	make_socket(rep, AF_INET, SOCK_DGRAM, false, 4);
	if (bad_env[bad_index].pid_suffix)
		setenv("LISTEN_PID", bad_env[bad_index].pid_suffix, 1);
	else
		set_listen_pid(0);
	setenv("LISTEN_FDS", bad_env[bad_index].fds, 1);
	if (bad_env[bad_index].names)
		setenv("LISTEN_FDNAMES", bad_env[bad_index].names, 1);
	struct sd_listen_set set;
	collect_into(rep, &set);
	sd_listen_release(&set);
	/* A failed collect owns nothing and must close nothing. */
	rep->take[0] = fcntl(3, F_GETFD) >= 0 && fcntl(4, F_GETFD) >= 0;
}

Test(sd_listen, malformed_environment_is_an_error)
{
	for (bad_index = 0; bad_index < ARRAY_SIZE(bad_env); bad_index++) {
		struct report rep;
		run_scenario(scenario_bad, &rep);
		cr_assert_eq(rep.rc, -1, "case %zu (LISTEN_FDS=%s) accepted", bad_index,
			     bad_env[bad_index].fds);
		cr_assert_eq(rep.n, 0);
		cr_assert_not_null(strstr(rep.err, bad_env[bad_index].expect),
				   "case %zu: message \"%s\" lacks \"%s\"", bad_index, rep.err,
				   bad_env[bad_index].expect);
		cr_assert_eq(rep.take[0], 1, "case %zu closed passed fds", bad_index);
		assert_env_unset(&rep);
	}
}

static void scenario_odd_fds(struct report *rep)
{
	/* fd 3: a stream socket that is bound but not listening (what an
	 * Accept=yes unit or a mistake would pass); fd 4: not a socket. */
	make_socket(rep, AF_INET, SOCK_STREAM, false, 3);
	int p[2];
	if (pipe(p) < 0 || p[0] != 4)
		_exit(40);
	set_listen_pid(0);
	setenv("LISTEN_FDS", "2", 1);
	struct sd_listen_set set;
	collect_into(rep, &set);
	if (rep->rc < 0)
		return;
	struct endpoint ep = set.v[0].addr;
	rep->take[0] = sd_listen_take(&set, SOCK_STREAM, &ep);
	rep->take[1] = sd_listen_take_any(&set, SOCK_STREAM, NULL);
	rep->take[2] = sd_listen_take_any(&set, SOCK_DGRAM, NULL);
	sd_listen_release(&set);
	rep->open_after_release[0] = fcntl(3, F_GETFD) >= 0;
	rep->open_after_release[1] = fcntl(4, F_GETFD) >= 0;
}

Test(sd_listen, non_listening_and_non_sockets_are_never_taken)
{
	struct report rep;
	run_scenario(scenario_odd_fds, &rep);
	cr_assert_eq(rep.rc, 0, "collect: %s", rep.err);
	cr_assert_eq(rep.n, 2);
	cr_assert_eq(rep.v[0].type, SOCK_STREAM);
	cr_assert_not(rep.v[0].listening);
	cr_assert_eq(rep.v[1].type, 0);
	cr_assert_eq(rep.take[0], -1);
	cr_assert_eq(rep.take[1], -1);
	cr_assert_eq(rep.take[2], -1);
	cr_assert_not(rep.open_after_release[0]);
	cr_assert_not(rep.open_after_release[1]);
}

/* The one adoption filter: a listening AF_UNIX stream socket (fd 3) is
 * never adopted by a service (sd_listen_adopt), an IPv4 one (fd 4) is, and
 * the AF_UNIX one is closed by release. */
static void scenario_unix_not_adopted(struct report *rep)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (fd != 3)
		_exit(13);
	/* Abstract, unique per process: nothing to clean up on disk. */
	int len = snprintf(sun.sun_path + 1, sizeof sun.sun_path - 1, "beacond-sd-test-%d",
			   (int)getpid());
	if (bind(fd, (struct sockaddr *)&sun,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len)) < 0 ||
	    listen(fd, 4) < 0)
		_exit(23);
	make_socket(rep, AF_INET, SOCK_STREAM, true, 4);
	set_listen_pid(0);
	setenv("LISTEN_FDS", "2", 1);
	struct sd_listen_set set;
	collect_into(rep, &set);
	if (rep->rc < 0)
		return;
	rep->take[0] = sd_listen_adopt(&set, SOCK_STREAM, NULL, NULL);
	rep->take[1] = sd_listen_adopt(&set, SOCK_STREAM, NULL, NULL);
	sd_listen_release(&set);
	rep->open_after_release[0] = fcntl(3, F_GETFD) >= 0;
	rep->open_after_release[1] = fcntl(4, F_GETFD) >= 0;
}

Test(sd_listen, unix_sockets_are_never_adopted)
{
	struct report rep;
	run_scenario(scenario_unix_not_adopted, &rep);
	cr_assert_eq(rep.rc, 0, "collect: %s", rep.err);
	cr_assert_eq(rep.n, 2);
	cr_assert_eq(rep.v[0].type, SOCK_STREAM);
	cr_assert(rep.v[0].listening);
	cr_assert_eq(rep.take[0], 4, "took fd %d, not the IPv4 socket", rep.take[0]);
	cr_assert_eq(rep.take[1], -1, "the AF_UNIX socket was adopted");
	cr_assert_not(rep.open_after_release[0], "release left the AF_UNIX socket open");
	cr_assert(rep.open_after_release[1], "release closed the taken socket");
}
