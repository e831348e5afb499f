/*
 * acl: allow-lists of CIDRs.  The lists are short (loopback and private
 * ranges by default), so a linear scan with a prefix compare beats any
 * trie on both code size and cache behaviour.
 */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "acl.h"

static bool prefix_match(const uint8_t *addr, const struct cidr *c)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(addr, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((addr[full] ^ c->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static bool match_family(const struct acl *acl, int family,
			 const uint8_t *addr)
{
	for (size_t i = 0; i < acl->n; i++) {
		if (acl->v[i].family == family && prefix_match(addr, &acl->v[i]))
			return true;
	}
	return false;
}

bool acl_allows(const struct acl *acl, const struct sockaddr *sa)
{
	if (acl == NULL || sa == NULL || acl->n == 0)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
		return match_family(acl, AF_INET,
				    (const uint8_t *)&in4->sin_addr.s_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;

		/* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d;
		 * they must meet the same IPv4 rules as on an IPv4 socket. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
		    match_family(acl, AF_INET, a + 12))
			return true;
		return match_family(acl, AF_INET6, a);
	}
	return false;
}

int acl_copy(struct acl *dst, const struct acl *src)
{
	dst->v = NULL;
	dst->n = 0;
	if (src->n == 0)
		return 0;
	dst->v = malloc(src->n * sizeof *dst->v);
	if (dst->v == NULL)
		return -1;
	memcpy(dst->v, src->v, src->n * sizeof *dst->v);
	dst->n = src->n;
	return 0;
}

void acl_free(struct acl *acl)
{
	free(acl->v);
	acl->v = NULL;
	acl->n = 0;
}
