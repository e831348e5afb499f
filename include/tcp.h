/*
 * tcp: the TCP echo (RFC 862) / discard (RFC 863) service: listeners,
 * accepted nonblocking connections, backpressure, half-close, idle
 * timeouts, connection limits, allow-list.
 *
 * Configuration changes are two-phase so a reload either applies whole or
 * not at all: tcp_prepare() opens whatever new listeners the config needs
 * (reusing open ones with the same address, then inherited sockets, then
 * binding) and watches them, copies the allow-list; tcp_commit() swaps
 * them in, allocates nothing and cannot fail (the daemon reserves the timer
 * room it arms); tcp_abort() undoes a prepare.
 */
#ifndef BEACOND_TCP_H
#define BEACOND_TCP_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "sd.h"

/* The counters, as one list: the struct, the stats log line and any other
 * reader (metrics) are generated from it, in this order. */
#define TCP_COUNTERS(X) \
	X(active, "connections open now") \
	X(accepted, "connections accepted and served") \
	X(refused_limit, "connections closed at once: max_connections") \
	X(refused_acl, "connections closed at once: not in allow") \
	X(refused_fd, "accepts that failed with EMFILE/ENFILE") \
	X(bytes_in, "bytes received") \
	X(bytes_out, "bytes echoed") \
	X(timeouts, "connections closed by idle_timeout") \
	X(errors, "resets and other peer errors") \
	X(backpressure, "times a connection hit max_pending")

struct tcp_counters {
#define TCP_COUNTER_FIELD(name, help) uint64_t name;
	TCP_COUNTERS(TCP_COUNTER_FIELD)
#undef TCP_COUNTER_FIELD
};

/* The table of TCP_COUNTERS: name, help, offset in struct tcp_counters. */
extern const struct counter_desc tcp_counter_descs[];
extern const size_t tcp_counter_count;

struct tcp_service;
struct tcp_plan;

/* buf is the loop-wide I/O buffer shared with the other services. */
struct tcp_service *tcp_new(struct loop *loop, uint8_t *buf, size_t buflen);
struct tcp_plan *tcp_prepare(struct tcp_service *s, const struct config_tcp *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen);
void tcp_commit(struct tcp_service *s, struct tcp_plan *plan);
void tcp_abort(struct tcp_plan *plan);
/* How many listeners the service has once plan is committed. */
size_t tcp_plan_listeners(const struct tcp_plan *plan);

/* Graceful stop: close listeners; connections keep being served. */
void tcp_stop_accepting(struct tcp_service *s);
size_t tcp_active(const struct tcp_service *s);
/* Close every connection now (end of the drain deadline). */
void tcp_close_all(struct tcp_service *s);
void tcp_free(struct tcp_service *s);

const struct tcp_counters *tcp_counters(const struct tcp_service *s);
/* The bound addresses of the listeners in force (the real port when the
 * configuration said 0): fills up to n, returns how many there are. */
size_t tcp_listen_addrs(const struct tcp_service *s, struct endpoint *out, size_t n);

#endif
