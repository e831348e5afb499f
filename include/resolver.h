/*
 * resolver: asynchronous name resolution inside the epoll loop, with
 * c-ares.  c-ares' sockets are watched by the loop like any other fd and its
 * retransmission deadlines are one loop timer, so a DNS server that never
 * answers costs nothing but a pending query: the loop never blocks.
 * /etc/hosts and /etc/resolv.conf are honoured as c-ares does; a server
 * list ("127.0.0.1:5353, [::1]:53") overrides resolv.conf.
 */
#ifndef BEACOND_RESOLVER_H
#define BEACOND_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include "loop.h"
#include "util.h"

struct resolver;
struct resolver_query;

struct resolver_result {
	int status;               /* 0, or a c-ares status (ARES_ENOTFOUND, ...) */
	const char *error;        /* text for status != 0 */
	const struct endpoint *addrs;  /* answers in the order received, port 0 */
	size_t n_addrs;
	uint32_t ttl_s;           /* smallest record TTL; 0 when unknown (hosts file) */
};

/* Called once per lookup unless cancelled first; res is valid only during
 * the call.  The callback may start new lookups. */
typedef void (*resolver_fn)(void *arg, const struct resolver_result *res);

/* servers: NULL or "" for resolv.conf, else a c-ares server list
 * ("127.0.0.1:5353,[::1]:53").  timeout_ms/tries bound each lookup. */
struct resolver *resolver_new(struct loop *loop, const char *servers,
			      unsigned timeout_ms, unsigned tries,
			      char *err, size_t errlen);
/* Start a lookup.  family: AF_UNSPEC, AF_INET or AF_INET6.  *handle is set
 * to the pending query and reset to NULL just before fn runs (answers from
 * /etc/hosts may arrive before this returns), so a non-NULL *handle always
 * means "pending".  Returns 0, or -1 with errno (ENOMEM). */
int resolver_lookup(struct resolver *r, const char *name, int family,
		    resolver_fn fn, void *arg, struct resolver_query **handle);
/* Cancel the pending query in *handle, if any: its callback will not be
 * called.  Safe from inside any callback. */
void resolver_cancel(struct resolver_query **handle);
size_t resolver_pending(const struct resolver *r);
/* Cancels every pending lookup (their callbacks are not called) and frees
 * r at once: only from outside the loop's event batch (tests, shutdown). */
void resolver_free(struct resolver *r);
/* The same from inside a callback: lookups are cancelled and sockets
 * unwatched now, the memory is freed after the batch (an event for one of
 * r's sockets may be queued behind the callback).  Allocates nothing. */
void resolver_close(struct resolver *r);

#endif
