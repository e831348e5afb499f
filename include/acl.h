/* acl: allow-lists of CIDRs deciding who may use the echo services. */
#ifndef BEACOND_ACL_H
#define BEACOND_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "parse.h"

struct acl {
	struct cidr *v;
	size_t n;
};

/* True when sa (IPv4, IPv6 or IPv4-mapped IPv6) falls in any entry.  An
 * IPv4-mapped address (::ffff:a.b.c.d) is matched against IPv4 entries. */
bool acl_allows(const struct acl *acl, const struct sockaddr *sa);

/* A service's own copy of a configured list (configs are freed on reload):
 * dst = src's entries in new memory.  0, or -1 (ENOMEM) with dst empty. */
int acl_copy(struct acl *dst, const struct acl *src);
/* Free such a copy and leave it empty. */
void acl_free(struct acl *acl);

#endif
