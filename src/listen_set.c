/*
 * listen_set: the sockets a service listens on, carried across reloads
 * (see listen_set.h).
 *
 * The claimed flag marks the sockets the plan being built already holds,
 * so one socket is never planned twice and the commit can tell which
 * committed sockets the new set drops.  It is scratch: set while a prepare
 * or a commit runs, clear in between.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen_set.h"
#include "log.h"
#include "net.h"

void listen_set_init(struct listen_set *set, const struct listen_ops *ops,
		     struct loop *loop)
{
	set->ops = ops;
	set->loop = loop;
	set->v = NULL;
	set->n = 0;
}

/* Free the object only; its socket is closed already. */
static void sock_free(struct listen_sock *ls)
{
	if (ls->ops->free)
		ls->ops->free(ls);
	else
		free(ls);
}

/* Runs after the event batch, possibly after the service is gone, so it
 * must not reach ls->set. */
static void sock_free_deferred(struct deferred *d)
{
	sock_free(container_of(d, struct listen_sock, defer));
}

/* Close and free a socket that was never committed. */
static void sock_discard(struct listen_sock *ls)
{
	loop_close(ls->set->loop, &ls->io);
	sock_free(ls);
}

/* Take a committed socket out of service; freed after the batch, since an
 * event for it may still be queued. */
static void sock_close(struct listen_sock *ls)
{
	loop_close(ls->set->loop, &ls->io);
	listen_sock_log(ls, "listen_close");
	loop_free_later(ls->set->loop, &ls->defer, sock_free_deferred);
}

struct listen_sock *listen_sock_new(struct listen_set *set, int fd, bool inherited,
				    const struct endpoint *want)
{
	const struct listen_ops *ops = set->ops;
	struct listen_sock *ls = ops->alloc ? ops->alloc() : calloc(1, sizeof *ls);

	if (ls == NULL)
		goto fail;
	ls->set = set;
	ls->ops = ops;
	io_init(&ls->io, fd, ops->on_ready, 0);
	ls->fresh = true;
	ls->inherited = inherited;
	if (net_local_endpoint(fd, &ls->bound) < 0)
		goto fail;
	ls->want = want ? *want : ls->bound;
	if (ops->setup && ops->setup(ls) < 0)
		goto fail;
	return ls;
fail:;
	int err = errno;
	if (ls)
		sock_free(ls);
	close(fd);
	errno = err;
	return NULL;
}

void listen_plan_init(struct listen_plan *p, struct listen_set *set)
{
	p->set = set;
	p->v = NULL;
	p->n = 0;
}

static int nomem(const struct listen_plan *p, char *err, size_t errlen)
{
	set_err(err, errlen, "[%s] out of memory", p->set->ops->service);
	return -1;
}

static int plan_push(struct listen_plan *p, struct listen_sock *ls)
{
	struct listen_sock **v = realloc(p->v, (p->n + 1) * sizeof *v);

	if (v == NULL)
		return -1;
	p->v = v;
	p->v[p->n++] = ls;
	ls->claimed = true;
	return 0;
}

/* An open socket for this address, if one is not yet claimed.  That may be
 * a pinned socket systemd passed: the entry that now names its address takes
 * it over (binding a second socket next to it would split a UDP port's
 * traffic or fail), and it stays pinned, kept if the entry goes away. */
static struct listen_sock *find_existing(const struct listen_set *set,
					 const struct endpoint *ep)
{
	for (size_t i = 0; i < set->n; i++) {
		struct listen_sock *ls = set->v[i];
		if (ls->claimed)
			continue;
		if (net_endpoint_equal(&ls->want, ep))
			return ls;
	}
	return NULL;
}

int listen_plan_endpoint(struct listen_plan *p, const struct endpoint *ep, int backlog,
			 struct sd_listen_set *inherited, char *err, size_t errlen)
{
	const struct listen_ops *ops = p->set->ops;
	char addr[NET_ENDPOINT_STRLEN];
	struct listen_sock *ls = find_existing(p->set, ep);

	if (ls == NULL) {
		bool from_sd;
		int fd = sd_listen_open(inherited, ops->type, ep, backlog, &from_sd);
		if (fd >= 0)
			ls = listen_sock_new(p->set, fd, from_sd, ep);
		if (ls == NULL) {
			set_err(err, errlen, "[%s] listen %s: %s", ops->service,
				net_endpoint_str(ep, addr, sizeof addr), strerror(errno));
			return -1;
		}
	}
	if (plan_push(p, ls) < 0) {
		if (ls->fresh)
			sock_discard(ls);
		return nomem(p, err, errlen);
	}
	return 0;
}

int listen_plan_keep_pinned(struct listen_plan *p, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->set->n; i++) {
		struct listen_sock *ls = p->set->v[i];
		if (ls->pinned && !ls->claimed && plan_push(p, ls) < 0)
			return nomem(p, err, errlen);
	}
	return 0;
}

int listen_plan_pin(struct listen_plan *p, struct listen_sock *ls, char *err,
		    size_t errlen)
{
	ls->pinned = true;
	if (plan_push(p, ls) < 0) {
		sock_discard(ls);
		return nomem(p, err, errlen);
	}
	return 0;
}

int listen_plan_adopt(struct listen_plan *p, struct sd_listen_set *inherited, char *err,
		      size_t errlen)
{
	const struct listen_ops *ops = p->set->ops;
	int fd;

	if (!inherited)
		return 0;
	while ((fd = sd_listen_adopt(inherited, ops->type, ops->adopt_only,
				     ops->adopt_except)) >= 0) {
		struct listen_sock *ls = listen_sock_new(p->set, fd, true, NULL);
		if (ls == NULL) {
			set_err(err, errlen, "[%s] inherited socket: %s", ops->service,
				strerror(errno));
			return -1;
		}
		if (listen_plan_pin(p, ls, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int listen_plan_watch(struct listen_plan *p, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->n; i++) {
		struct listen_sock *ls = p->v[i];
		char addr[NET_ENDPOINT_STRLEN];

		if (!ls->fresh || loop_watch(p->set->loop, &ls->io, EPOLLIN) == 0)
			continue;
		set_err(err, errlen, "[%s] watch %s: %s", p->set->ops->service,
			net_endpoint_str(&ls->bound, addr, sizeof addr), strerror(errno));
		return -1;
	}
	return 0;
}

void listen_plan_finish(struct listen_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		p->v[i]->claimed = false;
}

int listen_plan_from_config(struct listen_plan *p, bool enabled,
			    const struct endpoint *listen, size_t n_listen, int backlog,
			    bool watch, struct sd_listen_set *inherited, char *err,
			    size_t errlen)
{
	if (enabled) {
		for (size_t i = 0; i < n_listen; i++)
			if (listen_plan_endpoint(p, &listen[i], backlog, inherited, err,
						 errlen) < 0)
				return -1;
		if (listen_plan_keep_pinned(p, err, errlen) < 0 ||
		    listen_plan_adopt(p, inherited, err, errlen) < 0 ||
		    (watch && listen_plan_watch(p, err, errlen) < 0))
			return -1;
	}
	listen_plan_finish(p);
	return 0;
}

void listen_plan_abort(struct listen_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct listen_sock *ls = p->v[i];
		ls->claimed = false;
		if (ls->fresh)
			sock_discard(ls);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

void listen_set_commit(struct listen_set *set, struct listen_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		p->v[i]->claimed = true;
	for (size_t i = 0; i < set->n; i++)
		if (!set->v[i]->claimed)
			sock_close(set->v[i]);
	listen_plan_finish(p);
	free(set->v);
	set->v = p->v;
	set->n = p->n;
	p->v = NULL;
	p->n = 0;
}

void listen_set_close_all(struct listen_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		sock_close(set->v[i]);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

int listen_sock_add(struct listen_sock *ls)
{
	if (loop_watch(ls->set->loop, &ls->io, EPOLLIN) < 0) {
		int err = errno;
		char addr[NET_ENDPOINT_STRLEN];
		struct logline *l = log_begin(LOG_ERR, "listen_error");
		log_str(l, "service", ls->ops->service);
		log_str(l, "addr", net_endpoint_str(&ls->bound, addr, sizeof addr));
		log_errno(l, err);
		log_end(l);
		return -1;
	}
	return 0;
}

void listen_sock_pause(struct listen_sock *ls)
{
	(void)loop_unwatch(ls->set->loop, &ls->io);
}

void listen_sock_log(const struct listen_sock *ls, const char *event)
{
	char addr[NET_ENDPOINT_STRLEN];
	struct logline *l = log_begin(LOG_INFO, event);

	log_str(l, "service", ls->ops->service);
	log_str(l, "addr", net_endpoint_str(&ls->bound, addr, sizeof addr));
	log_str(l, "inherited", ls->inherited ? "yes" : "no");
	log_end(l);
}
