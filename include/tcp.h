/*
 * tcp: the TCP echo (RFC 862) / discard (RFC 863) service: listeners,
 * accepted nonblocking connections, backpressure, half-close, idle
 * timeouts, connection limits, allow-list.
 *
 * Configuration changes are two-phase so a reload either applies whole or
 * not at all: tcp_prepare() opens whatever new listeners the config needs
 * (reusing open ones with the same address, then inherited sockets, then
 * binding), tcp_commit() swaps them in, tcp_abort() undoes a prepare.
 */
#ifndef BEACOND_TCP_H
#define BEACOND_TCP_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "sd.h"

struct tcp_counters {
	uint64_t accepted;       /* connections accepted and served */
	uint64_t active;         /* open now */
	uint64_t refused_limit;  /* closed at once: max_connections */
	uint64_t refused_acl;    /* closed at once: not in allow */
	uint64_t refused_fd;     /* accept failed with EMFILE/ENFILE */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t timeouts;       /* closed by idle_timeout */
	uint64_t errors;         /* resets and other peer errors */
	uint64_t backpressure;   /* times a connection hit max_pending */
};

struct tcp_service;
struct tcp_plan;

/* buf is the loop-wide I/O buffer shared with the other services. */
struct tcp_service *tcp_new(struct loop *loop, uint8_t *buf, size_t buflen);
struct tcp_plan *tcp_prepare(struct tcp_service *s, const struct config_tcp *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen);
void tcp_commit(struct tcp_service *s, struct tcp_plan *plan);
void tcp_abort(struct tcp_plan *plan);

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
