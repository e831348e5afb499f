/*
 * sd: the systemd service protocols, written here instead of linking
 * libsystemd.  Both protocols are small and documented as stable interfaces
 * (sd_notify(3), sd_listen_fds(3)): a notification is one datagram of
 * newline-separated KEY=VALUE assignments sent to the AF_UNIX socket named by
 * NOTIFY_SOCKET, and socket activation hands over LISTEN_FDS descriptors
 * starting at fd 3, valid only for the process whose pid is LISTEN_PID.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"
#include "sd.h"

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define SD_LISTEN_FDS_START 3

/*
 * Parse a decimal number made of digits only: no sign, no spaces, no
 * trailing garbage, no overflow.  The environment is written by the service
 * manager, but a hand-written unit or a wrapper can put anything there, and
 * "LISTEN_FDS=2x" must not quietly mean 2.
 */
static int parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned digit = (unsigned)(*s - '0');
		if (v > (max - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

/* Fill a sockaddr_un from NOTIFY_SOCKET: an absolute path, or "@name" for
 * the abstract namespace (no trailing NUL; the length delimits the name). */
static int notify_address(const char *e, struct sockaddr_un *sun, socklen_t *len)
{
	size_t n = strlen(e);

	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (e[0] == '/') {
		if (n >= sizeof sun->sun_path) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(sun->sun_path, e, n + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	if (e[0] == '@') {
		if (n < 2 || n > sizeof sun->sun_path) {
			errno = n < 2 ? EINVAL : ENAMETOOLONG;
			return -1;
		}
		/* sun_path[0] stays 0: that marks the abstract namespace. */
		memcpy(sun->sun_path + 1, e + 1, n - 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return 0;
	}
	/* Relative paths and vsock: addresses are not for us. */
	errno = EAFNOSUPPORT;
	return -1;
}

int sd_notify(const char *state)
{
	if (state == NULL) {
		errno = EINVAL;
		return -1;
	}
	const char *e = getenv("NOTIFY_SOCKET");
	if (e == NULL || *e == '\0')
		return 0;

	struct sockaddr_un sun;
	socklen_t sunlen;
	if (notify_address(e, &sun, &sunlen) < 0)
		return -1;

	/*
	 * A fresh socket per message keeps no state across reloads or a
	 * manager re-execution, and costs a few syscalls at most twice a
	 * second.  Nonblocking plus MSG_DONTWAIT: a manager that does not read
	 * its queue makes the send fail with EAGAIN, it never stalls the loop
	 * (and with it the echo services).  MSG_NOSIGNAL: never SIGPIPE.
	 */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;

	struct iovec iov = { .iov_base = (void *)(uintptr_t)state, .iov_len = strlen(state) };
	struct msghdr msg = {
		.msg_name = &sun,
		.msg_namelen = sunlen,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	int saved = errno;
	close(fd);
	if (r < 0) {
		errno = saved;
		return -1;
	}
	if ((size_t)r != iov.iov_len) {
		/* Datagrams are all or nothing; this is only defensive. */
		errno = EMSGSIZE;
		return -1;
	}
	return 1;
}

int sd_notifyf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	/* Skip the formatting when nobody listens. */
	const char *e = getenv("NOTIFY_SOCKET");
	if (e == NULL || *e == '\0')
		return 0;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		errno = ENOMEM;
		return -1;
	}
	int r = sd_notify(s);
	int saved = errno;
	free(s);
	errno = saved;
	return r;
}

uint64_t sd_watchdog_usec(void)
{
	uint64_t usec, pid;

	if (parse_decimal(getenv("WATCHDOG_USEC"), UINT64_MAX, &usec) < 0)
		return 0;
	/* WATCHDOG_PID names the process the watchdog is meant for; a child
	 * that inherited the environment must not ping on its parent's
	 * behalf.  Unset means "the main process", which we are. */
	const char *p = getenv("WATCHDOG_PID");
	if (p != NULL) {
		if (parse_decimal(p, INT_MAX, &pid) < 0 || pid == 0)
			return 0;
		if ((pid_t)pid != getpid())
			return 0;
	}
	return usec;
}

static void unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* Copy the LISTEN_FDNAMES entries (colon-separated, empty entries kept)
 * into the set.  The count must match LISTEN_FDS, as in sd_listen_fds(3). */
static int collect_names(struct sd_listen_set *set, const char *names,
			 char *err, size_t errlen)
{
	const char *p = names;

	for (size_t i = 0; i < set->n; i++) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len >= sizeof set->v[i].name) {
			set_err(err, errlen, "LISTEN_FDNAMES: name of fd %zu is longer than %zu characters",
				SD_LISTEN_FDS_START + i, sizeof set->v[i].name - 1);
			errno = EINVAL;
			return -1;
		}
		memcpy(set->v[i].name, p, len);
		set->v[i].name[len] = '\0';
		if (end == NULL) {
			if (i + 1 != set->n)
				goto mismatch;
			return 0;
		}
		p = end + 1;
	}
mismatch:
	set_err(err, errlen, "LISTEN_FDNAMES=\"%s\" does not name exactly LISTEN_FDS=%zu sockets",
		names, set->n);
	errno = EINVAL;
	return -1;
}

/* Make one passed descriptor ours: close-on-exec, nonblocking, and learn
 * what it is.  Descriptors that are not sockets keep type 0 and are never
 * handed out; sd_listen_release() closes them. */
static int collect_one(struct sd_listen_fd *lf, int fd, char *err, size_t errlen)
{
	lf->fd = fd;
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
		set_err(err, errlen, "LISTEN_FDS: fd %d: %s", fd, strerror(errno));
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		set_err(err, errlen, "LISTEN_FDS: fd %d: %s", fd, strerror(errno));
		return -1;
	}

	int type = 0;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
		if (errno != ENOTSOCK) {
			set_err(err, errlen, "LISTEN_FDS: fd %d: SO_TYPE: %s", fd, strerror(errno));
			return -1;
		}
		lf->type = 0;
		return 0;
	}
	lf->type = type;

	int acceptconn = 0;
	len = sizeof acceptconn;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acceptconn, &len) == 0)
		lf->listening = acceptconn != 0;

	if (net_local_endpoint(fd, &lf->addr) < 0) {
		set_err(err, errlen, "LISTEN_FDS: fd %d: getsockname: %s", fd, strerror(errno));
		return -1;
	}
	return 0;
}

int sd_listen_collect(struct sd_listen_set *set, char *err, size_t errlen)
{
	uint64_t pid, n;
	int ret = -1;

	set->v = NULL;
	set->n = 0;
	set->named = false;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	const char *e = getenv("LISTEN_PID");
	if (e == NULL) {
		ret = 0;
		goto out;
	}
	if (parse_decimal(e, INT_MAX, &pid) < 0 || pid == 0) {
		set_err(err, errlen, "LISTEN_PID=\"%s\" is not a process id", e);
		errno = EINVAL;
		goto out;
	}
	/* The variables were meant for another process (e.g. our parent was
	 * activated and we inherited its environment): not ours to use. */
	if ((pid_t)pid != getpid()) {
		ret = 0;
		goto out;
	}
	e = getenv("LISTEN_FDS");
	if (e == NULL) {
		ret = 0;
		goto out;
	}
	if (parse_decimal(e, INT_MAX - SD_LISTEN_FDS_START, &n) < 0) {
		set_err(err, errlen, "LISTEN_FDS=\"%s\" is not a count of descriptors", e);
		errno = EINVAL;
		goto out;
	}
	if (n == 0) {
		ret = 0;
		goto out;
	}
	/* Check that every announced descriptor exists before allocating, so
	 * a wild count fails with a clear message rather than ENOMEM. */
	for (uint64_t i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + (int)i;
		if (fcntl(fd, F_GETFD) < 0) {
			set_err(err, errlen, "LISTEN_FDS=%llu but fd %d is not open",
				(unsigned long long)n, fd);
			errno = EBADF;
			goto out;
		}
	}

	set->v = calloc((size_t)n, sizeof *set->v);
	if (set->v == NULL) {
		set_err(err, errlen, "LISTEN_FDS: %s", strerror(errno));
		goto out;
	}
	set->n = (size_t)n;
	for (size_t i = 0; i < set->n; i++)
		set->v[i].fd = SD_LISTEN_FDS_START + (int)i;

	const char *names = getenv("LISTEN_FDNAMES");
	if (names != NULL) {
		if (collect_names(set, names, err, errlen) < 0)
			goto fail;
		set->named = true;
	}
	for (size_t i = 0; i < set->n; i++) {
		if (collect_one(&set->v[i], set->v[i].fd, err, errlen) < 0)
			goto fail;
	}
	ret = 0;
	goto out;

fail:;
	/* The descriptors stay open: on an error the caller exits, and a
	 * half-collected set must not close what it never owned. */
	int saved = errno;
	free(set->v);
	set->v = NULL;
	set->n = 0;
	set->named = false;
	errno = saved;
out:
	/* Unset in every case, as sd_listen_fds(3) does, so nothing we might
	 * start later believes the descriptors are its own. */
	unset_listen_env();
	return ret;
}

static int take(struct sd_listen_fd *lf)
{
	lf->taken = true;
	return lf->fd;
}

/* Whether lf can serve as a socket of this type: a stream socket must
 * already be listening (an Accept=yes connection socket cannot). */
static bool usable(const struct sd_listen_fd *lf, int type)
{
	if (lf->taken || lf->type != type)
		return false;
	return type != SOCK_STREAM || lf->listening;
}

int sd_listen_take(struct sd_listen_set *set, int type, const struct endpoint *ep)
{
	for (size_t i = 0; i < set->n; i++) {
		struct sd_listen_fd *lf = &set->v[i];
		if (usable(lf, type) && net_endpoint_equal(&lf->addr, ep))
			return take(lf);
	}
	return -1;
}

int sd_listen_open(struct sd_listen_set *set, int type, const struct endpoint *ep,
		   int backlog, bool *from_sd)
{
	int fd = -1;

	if (set && set->n > 0)
		fd = sd_listen_take(set, type, ep);
	*from_sd = fd >= 0;
	if (fd < 0)
		fd = net_listen(ep, type, backlog);
	return fd;
}

int sd_listen_adopt(struct sd_listen_set *set, int type, const char *only, const char *except)
{
	for (size_t i = 0; i < set->n; i++) {
		struct sd_listen_fd *lf = &set->v[i];
		int family = lf->addr.u.sa.sa_family;
		if (!usable(lf, type) || (family != AF_INET && family != AF_INET6))
			continue;
		if (only && strcmp(lf->name, only) != 0)
			continue;
		if (except && strcmp(lf->name, except) == 0)
			continue;
		return take(lf);
	}
	return -1;
}

int sd_listen_take_any(struct sd_listen_set *set, int type, const char *name)
{
	bool by_name = name != NULL && set->named;

	for (size_t i = 0; i < set->n; i++) {
		struct sd_listen_fd *lf = &set->v[i];
		if (!usable(lf, type))
			continue;
		if (by_name && strcmp(lf->name, name) != 0)
			continue;
		return take(lf);
	}
	return -1;
}

void sd_listen_release(struct sd_listen_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		if (!set->v[i].taken && set->v[i].fd >= 0)
			close(set->v[i].fd);
	}
	free(set->v);
	set->v = NULL;
	set->n = 0;
	set->named = false;
}
