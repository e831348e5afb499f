/* net: thin socket helpers.  They return -1 with errno set and never log. */
#ifndef BEACOND_NET_H
#define BEACOND_NET_H

#include <stdbool.h>
#include <stddef.h>
#include "util.h"

/* Nonblocking, close-on-exec socket bound to ep; SO_REUSEADDR; IPV6_V6ONLY
 * on IPv6 sockets so [::]:7 and 0.0.0.0:7 can coexist.  For SOCK_STREAM
 * also listen(backlog). */
int net_listen(const struct endpoint *ep, int type, int backlog);
/* Local address of fd into ep. */
int net_local_endpoint(int fd, struct endpoint *ep);
/* Same address and port (ignores scope/flowinfo). */
bool net_endpoint_equal(const struct endpoint *a, const struct endpoint *b);
/* "127.0.0.1:7" or "[::1]:7" into buf; returns buf. */
const char *net_endpoint_str(const struct endpoint *ep, char *buf, size_t len);
#define NET_ENDPOINT_STRLEN 64

#endif
