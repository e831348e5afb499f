/* net: thin socket helpers shared by the TCP and UDP services. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

int net_listen(const struct endpoint *ep, int type, int backlog)
{
	int fd = socket(ep->u.sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;

	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		goto fail;
	/* Dual binds ("0.0.0.0:7" and "[::]:7") must not collide, and an IPv6
	 * listener must not silently take IPv4 traffic the operator did not
	 * ask for. */
	if (ep->u.sa.sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
		goto fail;
	if (bind(fd, &ep->u.sa, ep->len) < 0)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, backlog) < 0)
		goto fail;
	return fd;

fail:;
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int net_local_endpoint(int fd, struct endpoint *ep)
{
	memset(ep, 0, sizeof *ep);
	ep->len = sizeof ep->u;
	return getsockname(fd, &ep->u.sa, &ep->len);
}

bool net_endpoint_equal(const struct endpoint *a, const struct endpoint *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	switch (a->u.sa.sa_family) {
	case AF_INET:
		return a->u.in4.sin_port == b->u.in4.sin_port &&
		       a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
	case AF_INET6:
		return a->u.in6.sin6_port == b->u.in6.sin6_port &&
		       memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr,
			      sizeof a->u.in6.sin6_addr) == 0;
	default:
		return false;
	}
}

const char *net_endpoint_str(const struct endpoint *ep, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	switch (ep->u.sa.sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &ep->u.in4.sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(ep->u.in4.sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &ep->u.in6.sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(ep->u.in6.sin6_port));
		break;
	default:
		snprintf(buf, len, "?");
		break;
	}
	return buf;
}
