/*
 * reflect: safeguards shared by the datagram reflectors (see reflect.h).
 * They began in udp.c; the STAMP reflector answers the same kind of
 * unauthenticated datagram and must refuse the same things.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/random.h>

#include "reflect.h"

/*
 * Source ports that get no reply.  Port 0 means "no reply wanted" and cannot
 * be answered anyway.  Below 1024 live the services that answer whatever
 * they are sent (echo 7, daytime 13, qotd 17, chargen 19, time 37) and the
 * amplifiers (dns 53, ntp 123, snmp 161, cldap 389, ...): an echo aimed at
 * one, from a forged request, starts a loop or an amplified stream, so the
 * whole range is refused, as OpenBSD's inetd does.  Above it: NFS (2049),
 * which trusts its clients by port, and the best-known answering services on
 * unprivileged ports.  None of these is an ephemeral port a real client would
 * send from (Linux uses 32768-60999, IANA 49152-65535).
 */
bool reflect_port_refused(uint16_t port)
{
	if (port < 1024)
		return true;
	switch (port) {
	case 1900:   /* SSDP */
	case 2049:   /* NFS */
	case 3283:   /* Apple Remote Desktop */
	case 3702:   /* WS-Discovery */
	case 5353:   /* mDNS */
	case 5683:   /* CoAP */
	case 11211:  /* memcached */
		return true;
	default:
		return false;
	}
}

/* An IPv4 address that is not one unicast host: 0/8 ("this network", the
 * unspecified 0.0.0.0), 224/4 (multicast) and 240/4 (reserved, including the
 * limited broadcast 255.255.255.255).  Directed broadcasts depend on the
 * interfaces' netmasks; the kernel refuses to send to them without
 * SO_BROADCAST, which we never set, so such replies fail and are counted as
 * drop_send. */
bool reflect_v4_not_unicast(const struct in_addr *a)
{
	uint32_t h = ntohl(a->s_addr);
	return (h >> 24) == 0 || h >= 0xe0000000u;
}

bool reflect_v6_not_unicast(const struct in6_addr *a)
{
	if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_MULTICAST(a))
		return true;
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		struct in_addr v4;
		memcpy(&v4, &a->s6_addr[12], 4);
		return reflect_v4_not_unicast(&v4);
	}
	return false;
}

/* Source port and address of a datagram; false for a family we cannot
 * answer (which then counts as drop_addr). */
bool reflect_peer_parts(const struct sockaddr_storage *ss, socklen_t len, uint16_t *port,
		       bool *unicast)
{
	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)ss;
		*port = ntohs(in4->sin_port);
		*unicast = !reflect_v4_not_unicast(&in4->sin_addr);
		return true;
	}
	if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;
		*port = ntohs(in6->sin6_port);
		*unicast = !reflect_v6_not_unicast(&in6->sin6_addr);
		return true;
	}
	return false;
}

/* The arrival address of a datagram on a wildcard socket, turned into the
 * control message that makes its reply leave from that address.  Returns
 * the control length written to out (0 when there was no pktinfo), or -1
 * when the datagram was sent to a broadcast or multicast address: such
 * requests get no reply at all. */
int reflect_reply_source(struct msghdr *in, void *outbuf, size_t outlen)
{
	/* outbuf must be aligned for a cmsghdr (the callers' control unions are). */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(in); c; c = CMSG_NXTHDR(in, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo got;
			memcpy(&got, CMSG_DATA(c), sizeof got);
			/* For a datagram addressed to one of our unicast addresses
			 * the kernel reports that address twice; for a broadcast,
			 * directed (10.0.0.255) or limited, ipi_spec_dst is our
			 * address on the subnet instead. */
			if (reflect_v4_not_unicast(&got.ipi_addr) ||
			    got.ipi_addr.s_addr != got.ipi_spec_dst.s_addr)
				return -1;
			/* ipi_spec_dst is the source of the reply; no interface, so
			 * the route for the client decides where it leaves. */
			struct in_pktinfo put = { .ipi_ifindex = 0, .ipi_spec_dst = got.ipi_addr };
			if (outlen < CMSG_SPACE(sizeof put))
				return 0;
			memset(outbuf, 0, CMSG_SPACE(sizeof put));
			struct cmsghdr *o = outbuf;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof put);
			memcpy(CMSG_DATA(o), &put, sizeof put);
			return (int)CMSG_SPACE(sizeof put);
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			struct in6_pktinfo got;
			memcpy(&got, CMSG_DATA(c), sizeof got);
			if (reflect_v6_not_unicast(&got.ipi6_addr))
				return -1;
			/* A link-local address is only meaningful with its
			 * interface; otherwise let the route choose, as above.
			 * (IPv4 traffic on a dual-stack socket arrives here as a
			 * mapped address, which the kernel accepts back.) */
			struct in6_pktinfo put = { .ipi6_addr = got.ipi6_addr };
			if (IN6_IS_ADDR_LINKLOCAL(&got.ipi6_addr))
				put.ipi6_ifindex = got.ipi6_ifindex;
			if (outlen < CMSG_SPACE(sizeof put))
				return 0;
			memset(outbuf, 0, CMSG_SPACE(sizeof put));
			struct cmsghdr *o = outbuf;
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof put);
			memcpy(CMSG_DATA(o), &put, sizeof put);
			return (int)CMSG_SPACE(sizeof put);
		}
	}
	return 0;
}

bool reflect_endpoint_is_wildcard(const struct endpoint *ep)
{
	if (ep->u.sa.sa_family == AF_INET)
		return ep->u.in4.sin_addr.s_addr == htonl(INADDR_ANY);
	if (ep->u.sa.sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&ep->u.in6.sin6_addr);
	return false;
}

int reflect_rate_prepare(struct ratelimit **planned, struct ratelimit *cur, uint32_t rate,
			 uint32_t burst, uint32_t size, const char *service, char *err,
			 size_t errlen)
{
	uint8_t seed[RATELIMIT_SEED_LEN];

	*planned = NULL;
	if (rate == 0)
		return 0;
	if (cur && ratelimit_capacity(cur) == size) {
		*planned = cur;
		return 0;
	}
	random_bytes(seed, sizeof seed);
	*planned = ratelimit_new(size, rate, burst, seed);
	if (*planned == NULL) {
		snprintf(err, errlen, "[%s] rate_table_size %u: %s", service, size,
			 strerror(errno));
		return -1;
	}
	return 0;
}

void reflect_rate_abort(struct ratelimit *planned, const struct ratelimit *cur)
{
	if (planned && planned != cur)
		ratelimit_free(planned);
}

void reflect_rate_commit(struct ratelimit **cur, uint64_t *evictions_base,
			 struct ratelimit *planned, uint32_t rate, uint32_t burst)
{
	if (*cur != planned && *cur) {
		*evictions_base += ratelimit_evictions(*cur);
		ratelimit_free(*cur);
	}
	*cur = planned;
	if (*cur)
		ratelimit_set_rate(*cur, rate, burst);
}
