/*
 * listen_set: the sockets a service listens on, carried across reloads.
 * Shared by tcp, udp, stamp and web.
 *
 * A service embeds one struct listen_set and gets a struct listen_sock for
 * every socket; a service that keeps more per socket embeds the listen_sock
 * in an object of its own (listen_ops.alloc/free).  A reload is two-phase,
 * so it applies whole or not at all: a struct listen_plan collects the
 * sockets the new config needs (an open one with the same configured
 * address, else one inherited from systemd, else a new bind) without
 * touching the committed set; listen_set_commit() then closes what the plan
 * left out and swaps the plan in, and listen_plan_abort() closes what the
 * plan opened.
 *
 * Errors go into the caller's (err, errlen) buffer prefixed "[service]";
 * the log lines are listen, listen_close and listen_error, each with
 * service= and addr=.
 */
#ifndef BEACOND_LISTEN_SET_H
#define BEACOND_LISTEN_SET_H

#include <stdbool.h>
#include <stddef.h>
#include "loop.h"
#include "sd.h"
#include "util.h"

struct listen_sock;

struct listen_ops {
	const char *service;     /* "tcp", "udp": in errors and log lines */
	int type;                /* SOCK_STREAM or SOCK_DGRAM */
	/* Which unnamed-by-config sockets from systemd listen_plan_adopt()
	 * takes (see sd_listen_adopt()): only those with this LISTEN_FDNAMES
	 * name, and never those with that one (NULL: no condition). */
	const char *adopt_only;
	const char *adopt_except;
	io_fn on_ready;
	/* Optional, for a listen_sock embedded in a larger object: allocate
	 * it zeroed and free it; setup() prepares a new socket and returns 0,
	 * or -1 with errno to refuse it.  NULL: a bare listen_sock. */
	struct listen_sock *(*alloc)(void);
	void (*free)(struct listen_sock *ls);
	int (*setup)(struct listen_sock *ls);
};

struct listen_set {
	const struct listen_ops *ops;
	struct loop *loop;
	struct listen_sock **v;  /* committed */
	size_t n;
};

struct listen_sock {
	struct io io;            /* owns the fd: io_fd(), io_watched() */
	struct deferred defer;   /* the free after the batch, once closed */
	struct listen_set *set;  /* the service's set: container_of gives the service */
	const struct listen_ops *ops;  /* for the free after the batch */
	bool fresh;              /* opened by a prepare not committed yet */
	bool inherited;          /* came from systemd (LISTEN_FDS) */
	bool pinned;             /* inherited, named by no entry when adopted: kept */
	bool claimed;            /* scratch: referenced by the plan being built */
	struct endpoint want;    /* as configured (port may be 0), or bound if adopted */
	struct endpoint bound;   /* getsockname */
};

struct listen_plan {
	struct listen_set *set;
	struct listen_sock **v;
	size_t n;
};

void listen_set_init(struct listen_set *set, const struct listen_ops *ops,
		     struct loop *loop);
/* Wrap an open socket (fresh; want NULL: its bound address).  Takes fd: on
 * failure it is closed and NULL returned with errno set. */
struct listen_sock *listen_sock_new(struct listen_set *set, int fd, bool inherited,
				    const struct endpoint *want);

void listen_plan_init(struct listen_plan *p, struct listen_set *set);
/* The socket for one configured endpoint: the open one with that configured
 * address, an inherited one bound to it, or a new one (backlog for stream
 * sockets).  Returns 0, or -1 with err. */
int listen_plan_endpoint(struct listen_plan *p, const struct endpoint *ep, int backlog,
			 struct sd_listen_set *inherited, char *err, size_t errlen);
/* Keep the pinned sockets no configured endpoint took over.  Returns 0, or
 * -1 with err. */
int listen_plan_keep_pinned(struct listen_plan *p, char *err, size_t errlen);
/* Add a socket adopted from systemd with no config entry, pinned so later
 * reloads keep it.  Returns 0, or -1 with err (ls is then closed and
 * freed). */
int listen_plan_pin(struct listen_plan *p, struct listen_sock *ls, char *err,
		    size_t errlen);
/* Adopt every inherited socket of the service's type that no entry named
 * and ops->adopt_only/adopt_except allow (IPv4/IPv6 only: see
 * sd_listen_adopt()), pinned so later reloads keep it.  Returns 0, or -1
 * with err. */
int listen_plan_adopt(struct listen_plan *p, struct sd_listen_set *inherited, char *err,
		      size_t errlen);
/* Watch every socket the plan opened, in the prepare: a watch that fails
 * fails the prepare, and the commit then cannot.  No event is dispatched
 * before the commit (both run in one callback); listen_plan_abort()
 * closes them.  Returns 0, or -1 with err. */
int listen_plan_watch(struct listen_plan *p, char *err, size_t errlen);
/* Done building: the claimed marks are scratch for one prepare or commit. */
void listen_plan_finish(struct listen_plan *p);
/* The whole listen part of a prepare, from a service's [section]: for an
 * enabled service a socket for each of the n_listen configured endpoints
 * (listen_plan_endpoint() with backlog), then the pinned sockets kept and
 * the ones systemd passed that no entry names adopted -- the socket unit is
 * the authority on where to listen, and they could not be re-created
 * without it -- then, if watch, every socket it opened watched; a disabled
 * service plans no socket (its commit closes what it had).  Finishes the
 * plan.  Returns 0, or -1 with err (listen_plan_abort() then closes what it
 * opened). */
int listen_plan_from_config(struct listen_plan *p, bool enabled,
			    const struct endpoint *listen, size_t n_listen, int backlog,
			    bool watch, struct sd_listen_set *inherited, char *err,
			    size_t errlen);
/* Close and free what the plan opened; the committed set is untouched. */
void listen_plan_abort(struct listen_plan *p);

/* Close the committed sockets the plan does not keep and make the plan's
 * sockets the set (fresh ones stay fresh, for the service to log).
 * Allocates nothing and cannot fail. */
void listen_set_commit(struct listen_set *set, struct listen_plan *p);
/* Close every committed socket. */
void listen_set_close_all(struct listen_set *set);

/* Watch a socket for EPOLLIN (a no-op if it is watched); on failure log
 * listen_error and return -1. */
int listen_sock_add(struct listen_sock *ls);
/* Stop watching a socket, keeping it open (accept back-off). */
void listen_sock_pause(struct listen_sock *ls);
static inline int listen_sock_fd(const struct listen_sock *ls)
{
	return io_fd(&ls->io);
}
/* An info line: event service= addr= inherited=. */
void listen_sock_log(const struct listen_sock *ls, const char *event);

#endif
