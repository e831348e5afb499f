/*
 * reflect: the safeguards every datagram reflector shares (the UDP echo
 * and the STAMP reflector): which source ports never get an answer, which
 * addresses are not one unicast host, and the reply's source address on a
 * wildcard socket, and the rate table a reload keeps or makes.  No system
 * calls (rate-table keys come from util's random_bytes(), the one random
 * source).
 */
#ifndef BEACOND_REFLECT_H
#define BEACOND_REFLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "ratelimit.h"
#include "util.h"

/* Source ports that get no reply: 0, everything below 1024, and the
 * best-known answering services above it (see reflect.c). */
bool reflect_port_refused(uint16_t port);

/* Addresses that are not one unicast host: unspecified, multicast,
 * 0/8 and 240/4 (with 255.255.255.255); IPv4-mapped IPv6 as IPv4. */
bool reflect_v4_not_unicast(const struct in_addr *a);
bool reflect_v6_not_unicast(const struct in6_addr *a);

/* Source port and address kind of a datagram's sender; false for a family
 * that cannot be answered. */
bool reflect_peer_parts(const struct sockaddr_storage *ss, socklen_t len, uint16_t *port,
			bool *unicast);

/* The arrival address of a datagram (its IP_PKTINFO / IPV6_PKTINFO control
 * message) turned into the control message that makes the reply leave from
 * that address, written to out (outlen >= REFLECT_PKTINFO_SPACE).  Returns
 * the control length written (0 when there was no pktinfo), or -1 when the
 * datagram was sent to a broadcast or multicast address. */
#define REFLECT_PKTINFO_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo))
int reflect_reply_source(struct msghdr *in, void *out, size_t outlen);

/* The per-source rate table a reload's plan uses, in *planned: none (NULL)
 * when rate is 0, cur (the running one, which keeps its sources) when its
 * size is unchanged, else a new one keyed with random_bytes() -- a new size
 * means new memory, and a fresh start is the simple, lenient choice.
 * Returns 0, or -1 with "[service] rate_table_size N: reason" in err. */
int reflect_rate_prepare(struct ratelimit **planned, struct ratelimit *cur, uint32_t rate,
			 uint32_t burst, uint32_t size, const char *service, char *err,
			 size_t errlen);
/* Free a planned table unless it is the running one. */
void reflect_rate_abort(struct ratelimit *planned, const struct ratelimit *cur);
/* Make the planned table the running one (*cur); cannot fail.  A replaced
 * table is freed and its evictions added to *evictions_base, so the counter
 * never goes back; the table kept or made gets rate and burst. */
void reflect_rate_commit(struct ratelimit **cur, uint64_t *evictions_base,
			 struct ratelimit *planned, uint32_t rate, uint32_t burst);

/* A wildcard address (0.0.0.0 or ::): replies need the arrival address. */
bool reflect_endpoint_is_wildcard(const struct endpoint *ep);

#endif
