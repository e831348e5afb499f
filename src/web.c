/*
 * web: the [web] listener (see web.h).
 *
 * Who owns what:
 *   - the listening sockets are a listen_set of ours; we accept;
 *   - each accepted socket goes to libmicrohttpd (MHD_add_connection), which
 *     owns and closes it from then on;
 *   - one MHD instance ("inst") serves the connections; it runs in
 *     external-epoll mode: its epoll fd is inst->io in our loop and its
 *     timeout is inst->timer.  A reload that changes the header size (MHD
 *     fixes its per-connection memory pool at start) starts a new instance
 *     for new connections; the old one is "retired", keeps serving what it
 *     has and is stopped once its last connection closed.
 *
 * Limits: max_connections is counted here at accept (over all instances),
 * so a reload changes it without a new instance; allow is MHD's accept
 * policy callback; the idle timeout is set on each connection
 * (MHD_CONNECTION_OPTION_TIMEOUT); the header deadline is a list of
 * connections waiting for a request, ordered by when they started waiting
 * (one timeout value, so the head expires first: O(1) per event), with one
 * loop timer for its head.  An expired connection is shut down (the fd stays
 * MHD's): MHD reads the EOF and closes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <zlib.h>

#include "config.h"
#include "listen_set.h"
#include "log.h"
#include "net.h"
#include "util.h"
#include "web.h"

#define WEB_ACCEPTS_PER_WAKEUP 64
#define WEB_BODY_BUF (16u * 1024u)
/* Body text rendered per loop iteration, over all connections (before
 * gzip, which costs in proportion to its input): about 0.3 ms of CPU for
 * a scrape, so a ping waits at most one slice behind one.  A connection
 * whose turn is cut short is suspended and resumed in the next iteration
 * (see body_read). */
#define WEB_LOOP_BUDGET (32u * 1024u)
/* body_refill: nothing produced, the iteration's budget is spent. */
#define WEB_LATER (-2)
/* What MHD needs besides the request headers inside the same
 * per-connection pool (its bookkeeping; the response buffer reuses the
 * space the request no longer needs). */
#define WEB_POOL_EXTRA (2u * 1024u)
/* At max_connections, a new client takes the place of the connection that
 * has waited longest for a request, if it has waited at least this long:
 * idle or trickling clients cannot lock a scraper out until their
 * header_timeout, and a flood of fresh connections cannot evict one that
 * is just sending its request. */
#define WEB_EVICT_AGE_NS NSEC_PER_SEC

struct web_route_ent {
	char *path;
	size_t len;
	bool prefix;
	web_page_fn fn;
	void *arg;
};

struct web_settings {
	struct acl allow;                /* owned copy */
	uint32_t max_connections;
	uint64_t header_timeout_ns;
	unsigned idle_s;
	size_t pool;                     /* MHD_OPTION_CONNECTION_MEMORY_LIMIT */
	bool gzip;
};

struct web_inst {
	struct web *w;
	struct MHD_Daemon *mhd;
	struct io io;                    /* MHD's epoll fd */
	struct timer timer;              /* MHD_get_timeout */
	struct deferred defer;
	size_t pool;
	size_t conns;
	bool retired;
	bool dead;                       /* stopped, free pending */
	bool resumed;                    /* scratch of on_resume_timer */
	struct web_inst *next;           /* retired list */
};

struct web_conn {
	struct web_conn *prev, *next;    /* header-deadline list */
	struct web_inst *inst;
	uint64_t since;
	int fd;
	bool waiting;
	bool evicted;                    /* shut down to make room, close pending */
};

struct web {
	struct loop *loop;
	struct listen_set listeners;
	struct web_settings set;
	struct web_inst *cur;
	struct web_inst *retired;
	struct web_route_ent *routes;
	size_t n_routes;
	struct web_conn *wait_head, *wait_tail;
	struct timer header_timer;
	struct web_counters c;
	struct loop_budget budget;       /* body text per loop iteration */
	struct timer resume_timer;       /* resumes the suspended, next iteration */
	struct web_body *susp_head;      /* suspended for the budget */
	int spare_fd;
	size_t evicting;                 /* evicted, not closed by MHD yet */
	bool apc_refused;                /* scratch: the last add was refused by allow */
};

struct web_plan {
	struct listen_plan listeners;
	struct web_settings set;
	struct web_inst *inst;           /* a new instance, or NULL to keep cur */
};

/* A response body being sent: the page's stream, optionally deflated. */
struct web_body {
	struct web *w;
	struct web_inst *inst;
	struct MHD_Connection *conn;
	struct web_body *sprev, *snext;  /* w->susp_head list while suspended */
	bool suspended;
	struct stream *src;
	bool gzip, src_eof, z_end, z_init;
	z_stream z;
	size_t pos, len;
	char out[WEB_BODY_BUF];
	char raw[WEB_BODY_BUF];          /* only used with gzip */
};

/* ---- pure helpers --------------------------------------------------------- */

static bool token_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* q=0, q=0.0, q=0.000: refused.  Anything else (or no q) accepts. */
static bool q_is_zero(const char *s, size_t n)
{
	while (n > 0) {
		size_t k = 0;
		while (k < n && s[k] != ';')
			k++;
		const char *p = s;
		size_t m = k;
		while (m > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			m--;
		}
		if (m >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			p += 2;
			m -= 2;
			while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
				m--;
			if (m == 0 || p[0] != '0')
				return false;
			for (size_t i = 1; i < m; i++)
				if (!(i == 1 && p[i] == '.') && p[i] != '0')
					return false;
			return true;
		}
		s += k;
		n -= k;
		if (n > 0) {
			s++;
			n--;
		}
	}
	return false;
}

bool web_accepts_gzip(const char *ae)
{
	if (ae == NULL)
		return false;
	while (*ae) {
		size_t n = strcspn(ae, ",");
		const char *t = ae;
		size_t tn = n;
		while (tn > 0 && (*t == ' ' || *t == '\t')) {
			t++;
			tn--;
		}
		size_t name = 0;
		while (name < tn && t[name] != ';' && t[name] != ' ' && t[name] != '\t')
			name++;
		if ((token_is(t, name, "gzip") || token_is(t, name, "x-gzip") ||
		     token_is(t, name, "*")) && !q_is_zero(t + name, tn - name))
			return true;
		ae += n;
		if (*ae == ',')
			ae++;
	}
	return false;
}

/* ---- MHD instance --------------------------------------------------------- */

static void inst_destroy(struct web_inst *in);
static void susp_unlink(struct web_body *b);

static void inst_rearm(struct web_inst *in)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (in->dead)
		return;
	if (MHD_get_timeout(in->mhd, &ms) == MHD_YES) {
		if (ms > 3600000)
			ms = 3600000;
		loop_timer_arm(in->w->loop, &in->timer,
			       loop_now(in->w->loop) + (uint64_t)ms * NSEC_PER_MSEC);
	} else {
		loop_timer_cancel(in->w->loop, &in->timer);
	}
}

/* CPU time of this (the only) thread: what serving HTTP costs, counted
 * apart so a bench (and an operator) can tell it from the pinging.  A
 * real system call, but only around HTTP work, never on the ping path. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return timespec_to_ns(&ts);
}

static void inst_run(struct web_inst *in)
{
	if (in->dead)
		return;
	uint64_t t0 = thread_cpu_ns();
	MHD_run(in->mhd);
	in->w->c.cpu_ns += thread_cpu_ns() - t0;
	if (in->retired && in->conns == 0) {
		/* Unlink from the retired list and stop it. */
		for (struct web_inst **pp = &in->w->retired; *pp; pp = &(*pp)->next) {
			if (*pp == in) {
				*pp = in->next;
				break;
			}
		}
		inst_destroy(in);
		return;
	}
	inst_rearm(in);
}

static void inst_on_ready(struct io *io, uint32_t events)
{
	(void)events;
	inst_run(container_of(io, struct web_inst, io));
}

static void inst_on_timer(struct timer *t)
{
	inst_run(container_of(t, struct web_inst, timer));
}

/* A connection's slice was cut short: when the budget said to ask again
 * (right after the timer that was about to fall due, or in the next
 * iteration), resume every suspended connection and let MHD serve them. */
static void on_resume_timer(struct timer *t)
{
	struct web *w = container_of(t, struct web, resume_timer);

	/* Armed in this iteration's event batch, so due in its timer pass
	 * with the budget still spent: wait for the next iteration. */
	if (loop_budget_left(w->loop, &w->budget) == 0 &&
	    loop_timer_arm(w->loop, &w->resume_timer, loop_budget_retry_at(&w->budget)) == 0)
		return;
	while (w->susp_head) {
		struct web_body *b = w->susp_head;
		susp_unlink(b);
		b->inst->resumed = true;
		MHD_resume_connection(b->conn);
	}
	if (w->cur && w->cur->resumed) {
		w->cur->resumed = false;
		inst_run(w->cur);
	}
	for (struct web_inst *in = w->retired, *next; in; in = next) {
		next = in->next;
		if (in->resumed) {
			in->resumed = false;
			inst_run(in);
		}
	}
}

static void inst_free_deferred(struct deferred *d)
{
	free(container_of(d, struct web_inst, defer));
}

/* Stop MHD (closing what it still has, its epoll fd too: the io only
 * borrows it, so it is unwatched, never closed, here) and free after the
 * batch, since an event for that fd may be queued. */
static void susp_unlink(struct web_body *b)
{
	if (!b->suspended)
		return;
	if (b->sprev)
		b->sprev->snext = b->snext;
	else
		b->w->susp_head = b->snext;
	if (b->snext)
		b->snext->sprev = b->sprev;
	b->sprev = b->snext = NULL;
	b->suspended = false;
}

static void inst_destroy(struct web_inst *in)
{
	/* MHD forbids stopping with suspended connections: resume ours. */
	for (struct web_body *b = in->w->susp_head, *next; b; b = next) {
		next = b->snext;
		if (b->inst == in) {
			susp_unlink(b);
			MHD_resume_connection(b->conn);
		}
	}
	loop_unwatch(in->w->loop, &in->io);
	loop_timer_cancel(in->w->loop, &in->timer);
	in->dead = true;
	MHD_stop_daemon(in->mhd);
	loop_free_later(in->w->loop, &in->defer, inst_free_deferred);
}

/* The header-deadline list. */
static void wait_unlink(struct web *w, struct web_conn *c)
{
	if (!c->waiting)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->wait_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		w->wait_tail = c->prev;
	c->prev = c->next = NULL;
	c->waiting = false;
}

static void header_timer_arm(struct web *w)
{
	if (w->wait_head == NULL) {
		loop_timer_cancel(w->loop, &w->header_timer);
		return;
	}
	uint64_t due = w->wait_head->since + w->set.header_timeout_ns;
	if (!timer_armed(&w->header_timer) || w->header_timer.deadline != due)
		loop_timer_arm(w->loop, &w->header_timer, due);
}

static void wait_push(struct web *w, struct web_conn *c)
{
	wait_unlink(w, c);
	c->since = loop_now(w->loop);
	c->prev = w->wait_tail;
	c->next = NULL;
	if (w->wait_tail)
		w->wait_tail->next = c;
	else
		w->wait_head = c;
	w->wait_tail = c;
	c->waiting = true;
	if (c->prev == NULL)
		header_timer_arm(w);
}

static void on_header_timer(struct timer *t)
{
	struct web *w = container_of(t, struct web, header_timer);
	uint64_t now = loop_now(w->loop);

	while (w->wait_head && w->wait_head->since + w->set.header_timeout_ns <= now) {
		struct web_conn *c = w->wait_head;
		wait_unlink(w, c);
		/* MHD owns the fd: shutting it down makes MHD read EOF and close
		 * it on its next run, which the readiness of its epoll fd
		 * triggers. */
		shutdown(c->fd, SHUT_RDWR);
		w->c.header_timeouts++;
		/* Run MHD soon even if its epoll fd stays quiet. */
		loop_timer_arm(w->loop, &c->inst->timer, now);
	}
	header_timer_arm(w);
}

static enum MHD_Result on_accept_policy(void *cls, const struct sockaddr *sa,
					socklen_t len)
{
	struct web_inst *in = cls;
	(void)len;
	if (acl_allows(&in->w->set.allow, sa))
		return MHD_YES;
	in->w->apc_refused = true;
	return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **ctx,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct web_inst *in = cls;
	struct web *w = in->w;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct web_conn *c = calloc(1, sizeof *c);
		in->conns++;
		w->c.active++;
		*ctx = c;
		if (c == NULL)
			return;
		c->inst = in;
		c->fd = ci ? ci->connect_fd : -1;
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  w->set.idle_s);
		if (c->fd >= 0)
			wait_push(w, c);
		return;
	}
	struct web_conn *c = *ctx;
	in->conns--;
	w->c.active--;
	if (c && c->evicted)
		w->evicting--;
	if (c) {
		bool head = c == w->wait_head;
		wait_unlink(w, c);
		if (head)
			header_timer_arm(w);
		free(c);
	}
	*ctx = NULL;
}

static struct web_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* A request answered: the connection waits for the next one. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req,
			 enum MHD_RequestTerminationCode toe)
{
	struct web_inst *in = cls;
	struct web_conn *c = conn_of(conn);
	(void)req;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && c && c->fd >= 0)
		wait_push(in->w, c);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	(void)cls;
	if (!log_enabled(LOG_DEBUG))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	struct logline *l = log_begin(LOG_DEBUG, "web_library");
	log_str(l, "msg", msg);
	log_end(l);
}

/* ---- responses ------------------------------------------------------------ */

/* How much text the producer may write now: the iteration's budget left
 * (at least STREAM_MIN_CAP, so it progresses), at most cap; 0 when spent.
 * force ignores the budget. */
static size_t body_allow(struct web_body *b, size_t cap, bool force)
{
	size_t left = force ? cap : loop_budget_left(b->w->loop, &b->w->budget);
	if (left == 0)
		return 0;
	if (left < STREAM_MIN_CAP)
		left = STREAM_MIN_CAP;
	return left < cap ? left : cap;
}

/* Refill b->out: the bytes there (> 0), 0 at the end, -1 on an error, or
 * WEB_LATER when the budget is spent before any output. */
static ssize_t body_refill(struct web_body *b, bool force)
{
	b->pos = 0;
	b->len = 0;
	if (!b->gzip) {
		if (b->src_eof)
			return 0;
		size_t cap = body_allow(b, sizeof b->out, force);
		if (cap == 0)
			return WEB_LATER;
		ssize_t n = b->src->fill(b->src, b->out, cap);
		if (n < 0)
			return -1;
		if (n == 0)
			b->src_eof = true;
		loop_budget_spend(&b->w->budget, (size_t)n);
		b->len = (size_t)n;
		return n;
	}
	if (b->z_end)
		return 0;
	b->z.next_out = (Bytef *)b->out;
	b->z.avail_out = sizeof b->out;
	while (b->z.avail_out == sizeof b->out) {
		if (!b->src_eof && b->z.avail_in == 0) {
			size_t cap = body_allow(b, sizeof b->raw, force);
			if (cap == 0)
				break;   /* deflate keeps its state: more next time */
			ssize_t n = b->src->fill(b->src, b->raw, cap);
			if (n < 0)
				return -1;
			if (n == 0)
				b->src_eof = true;
			loop_budget_spend(&b->w->budget, (size_t)n);
			b->z.next_in = (Bytef *)b->raw;
			b->z.avail_in = (uInt)n;
		}
		int r = deflate(&b->z, b->src_eof ? Z_FINISH : Z_NO_FLUSH);
		if (r == Z_STREAM_END) {
			b->z_end = true;
			break;
		}
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;
	}
	b->len = sizeof b->out - b->z.avail_out;
	if (b->len == 0 && !b->z_end)
		return WEB_LATER;
	return (ssize_t)b->len;
}

static ssize_t body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct web_body *b = cls;
	(void)pos;

	if (b->pos == b->len) {
		ssize_t n = body_refill(b, false);
		if (n == WEB_LATER) {
			/* The budget is spent: MHD allows returning 0 only with
			 * the connection suspended (else it polls us again at
			 * once).  Resume it when the budget says, after the
			 * timers due by then. */
			struct web *w = b->w;
			if (loop_timer_arm(w->loop, &w->resume_timer,
					   loop_budget_retry_at(&w->budget)) == 0) {
				b->suspended = true;
				b->sprev = NULL;
				b->snext = w->susp_head;
				if (w->susp_head)
					w->susp_head->sprev = b;
				w->susp_head = b;
				MHD_suspend_connection(b->conn);
				w->c.suspensions++;
				return 0;
			}
			n = body_refill(b, true);   /* no timer: no slicing */
		}
		if (n < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (n == 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
	}
	size_t n = b->len - b->pos;
	if (n > max)
		n = max;
	memcpy(buf, b->out + b->pos, n);
	b->pos += n;
	b->w->c.body_bytes += n;
	return (ssize_t)n;
}

static void body_free(void *cls)
{
	struct web_body *b = cls;
	susp_unlink(b);
	if (b->src->free)
		b->src->free(b->src);
	if (b->z_init)
		deflateEnd(&b->z);
	free(b);
}

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status,
				  const char *text, bool allow_header)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	if (allow_header)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result res = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return res;
}

static const char *status_text(unsigned status)
{
	switch (status) {
	case 200: return "OK\n";
	case 400: return "Bad Request\n";
	case 403: return "Forbidden\n";
	case 404: return "Not Found\n";
	case 405: return "Method Not Allowed\n";
	case 503: return "Service Unavailable\n";
	default: return "Internal Server Error\n";
	}
}

static const struct web_route_ent *route_find(const struct web *w, const char *path)
{
	const struct web_route_ent *best = NULL;
	size_t plen = strlen(path);

	for (size_t i = 0; i < w->n_routes; i++) {
		const struct web_route_ent *r = &w->routes[i];
		bool match = r->prefix ? plen >= r->len && memcmp(path, r->path, r->len) == 0
				       : plen == r->len && memcmp(path, r->path, plen) == 0;
		if (!match)
			continue;
		if (best == NULL || r->len > best->len || (r->len == best->len && !r->prefix))
			best = r;
	}
	return best;
}

const char *web_request_arg(const struct web_request *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **req_ctx)
{
	struct web_inst *in = cls;
	struct web *w = in->w;
	(void)version;
	(void)upload;

	if (*req_ctx != NULL) {
		/* More of a body we never asked for: the response is queued and
		 * MHD closes the connection after it. */
		*upload_size = 0;
		return MHD_YES;
	}
	*req_ctx = w;
	struct web_conn *c = conn_of(conn);
	if (c) {
		bool head = c == w->wait_head;
		wait_unlink(w, c);
		if (head)
			header_timer_arm(w);
	}
	w->c.requests++;

	const struct web_route_ent *r = route_find(w, url);
	if (r == NULL) {
		w->c.not_found++;
		return queue_text(conn, 404, status_text(404), false);
	}
	bool is_head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!is_head && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		w->c.bad_method++;
		return queue_text(conn, 405, status_text(405), true);
	}

	struct web_request req = { .method = method, .path = url, .head = is_head,
				   .conn = conn };
	struct web_reply reply = { .status = 200,
				   .content_type = "text/plain; charset=utf-8" };
	if (r->fn(r->arg, &req, &reply) < 0 || (reply.body == NULL && reply.status == 200)) {
		if (reply.body && reply.body->free)
			reply.body->free(reply.body);
		return queue_text(conn, 500, status_text(500), false);
	}
	if (reply.body == NULL)
		return queue_text(conn, reply.status, status_text(reply.status), false);

	struct web_body *b = calloc(1, sizeof *b);
	if (b == NULL) {
		if (reply.body->free)
			reply.body->free(reply.body);
		return queue_text(conn, 500, status_text(500), false);
	}
	b->w = w;
	b->inst = in;
	b->conn = conn;
	b->src = reply.body;
	bool can_gzip = w->set.gzip && !reply.no_gzip;
	if (can_gzip && web_accepts_gzip(MHD_lookup_connection_value(
				conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING))) {
		/* Level 1: a scrape compresses about 10:1 at a fraction of the
		 * CPU of the default level; 15 + 16 asks zlib for a gzip
		 * wrapper. */
		if (deflateInit2(&b->z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
			b->gzip = true;
			b->z_init = true;
		}
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, WEB_BODY_BUF, body_read, b, body_free);
	if (resp == NULL) {
		body_free(b);
		return queue_text(conn, 500, status_text(500), false);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type);
	if (reply.csp) {
		MHD_add_response_header(resp, "Content-Security-Policy", reply.csp);
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	}
	if (can_gzip)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
					MHD_HTTP_HEADER_ACCEPT_ENCODING);
	if (b->gzip) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
		w->c.gzip_responses++;
	}
	enum MHD_Result res = MHD_queue_response(conn, reply.status, resp);
	MHD_destroy_response(resp);
	return res;
}

static struct web_inst *inst_new(struct web *w, size_t pool)
{
	struct web_inst *in = calloc(1, sizeof *in);
	if (in == NULL)
		return NULL;
	in->w = w;
	in->pool = pool;
	io_init(&in->io, -1, inst_on_ready, 0);
	timer_init(&in->timer, inst_on_timer);
	/* No MHD_OPTION_CONNECTION_LIMIT: max_connections is counted at
	 * accept so a reload can change it; MHD's own default limit is far
	 * above the 1024 max_connections may be. */
	in->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG |
			MHD_ALLOW_SUSPEND_RESUME,
		0, on_accept_policy, in, on_request, in,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, in,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, in,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, in,
		MHD_OPTION_END);
	if (in->mhd == NULL) {
		free(in);
		return NULL;
	}
	return in;
}

/* Watch MHD's epoll fd (in the prepare, so the commit cannot fail). */
static int inst_watch(struct web_inst *in)
{
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(in->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (di == NULL) {
		errno = EINVAL;
		return -1;
	}
	io_init(&in->io, di->epoll_fd, inst_on_ready, 0);
	return loop_watch(in->w->loop, &in->io, EPOLLIN);
}

/* ---- accepting ------------------------------------------------------------ */

static void accept_one(struct web *w, int fd, const struct endpoint *peer)
{
	struct web_inst *in = w->cur;

	if (in == NULL) {
		w->c.refused_limit++;
		close(fd);
		return;
	}
	if (w->c.active - w->evicting >= w->set.max_connections) {
		struct web_conn *old = w->wait_head;
		if (old == NULL || loop_now(w->loop) - old->since < WEB_EVICT_AGE_NS) {
			w->c.refused_limit++;
			close(fd);
			return;
		}
		wait_unlink(w, old);
		header_timer_arm(w);
		shutdown(old->fd, SHUT_RDWR);
		old->evicted = true;
		w->evicting++;
		w->c.evicted++;
		loop_timer_arm(w->loop, &old->inst->timer, loop_now(w->loop));
	}
	w->apc_refused = false;
	if (MHD_add_connection(in->mhd, fd, &peer->u.sa, peer->len) != MHD_YES) {
		/* MHD closed the socket. */
		if (w->apc_refused)
			w->c.refused_acl++;
		else
			w->c.refused_limit++;
		return;
	}
	w->c.accepted++;
}

static void listener_on_ready(struct io *io, uint32_t events)
{
	struct listen_sock *l = container_of(io, struct listen_sock, io);
	struct web *w = container_of(l->set, struct web, listeners);
	bool added = false;
	uint64_t t0 = thread_cpu_ns();

	(void)events;
	for (int i = 0; i < WEB_ACCEPTS_PER_WAKEUP; i++) {
		struct endpoint peer;
		peer.len = sizeof peer.u;
		int fd = accept4(listen_sock_fd(l), &peer.u.sa, &peer.len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(w, fd, &peer);
			added = true;
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if ((errno == EMFILE || errno == ENFILE) && w->spare_fd >= 0) {
			/* Out of fds: accept with the spare and close at once,
			 * so the pending connection does not make us spin. */
			close(w->spare_fd);
			fd = accept4(listen_sock_fd(l), NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
			w->c.refused_limit++;
			w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				continue;
		}
		break;
	}
	/* MHD_add_connection only registers the socket; run MHD so a request
	 * already waiting is read now. */
	w->c.cpu_ns += thread_cpu_ns() - t0;
	if (added && w->cur)
		inst_run(w->cur);
}

/* Sockets systemd passed under the name "web" that no listen entry names
 * are served too (and kept across reloads), as tcp does with its unnamed
 * ones. */
static const struct listen_ops web_listen_ops = {
	.service = "web",
	.type = SOCK_STREAM,
	.adopt_only = "web",
	.on_ready = listener_on_ready,
};

/* ---- lifecycle ------------------------------------------------------------ */

struct web *web_new(struct loop *loop)
{
	struct web *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->loop = loop;
	listen_set_init(&w->listeners, &web_listen_ops, loop);
	timer_init(&w->header_timer, on_header_timer);
	timer_init(&w->resume_timer, on_resume_timer);
	w->budget.cap = WEB_LOOP_BUDGET;
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return w;
}

int web_route(struct web *w, const char *path, bool prefix, web_page_fn fn, void *arg)
{
	if (path[0] != '/') {
		errno = EINVAL;
		return -1;
	}
	struct web_route_ent *v = realloc(w->routes, (w->n_routes + 1) * sizeof *v);
	if (v == NULL)
		return -1;
	w->routes = v;
	char *copy = strdup(path);
	if (copy == NULL)
		return -1;
	v[w->n_routes++] = (struct web_route_ent){ copy, strlen(copy), prefix, fn, arg };
	return 0;
}

void web_abort(struct web_plan *p)
{
	if (p == NULL)
		return;
	listen_plan_abort(&p->listeners);
	acl_free(&p->set.allow);
	if (p->inst) {
		loop_unwatch(p->inst->w->loop, &p->inst->io);
		MHD_stop_daemon(p->inst->mhd);
		free(p->inst);
	}
	free(p);
}

struct web_plan *web_prepare(struct web *w, const struct config_web *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen)
{
	struct web_plan *p = calloc(1, sizeof *p);
	if (p == NULL) {
		set_err(err, errlen, "[web] out of memory");
		return NULL;
	}
	listen_plan_init(&p->listeners, &w->listeners);
	p->set.max_connections = cfg->max_connections;
	p->set.header_timeout_ns = cfg->header_timeout_ns;
	uint64_t idle = (cfg->idle_timeout_ns + NSEC_PER_SEC - 1) / NSEC_PER_SEC;
	p->set.idle_s = idle < 1 ? 1 : (unsigned)idle;
	p->set.pool = (size_t)cfg->max_header_size + WEB_POOL_EXTRA;
	p->set.gzip = cfg->gzip;
	if (acl_copy(&p->set.allow, &cfg->allow) < 0) {
		set_err(err, errlen, "[web] out of memory");
		goto fail;
	}
	if (listen_plan_from_config(&p->listeners, cfg->enabled, cfg->listen, cfg->n_listen, 64,
				    true, inherited, err, errlen) < 0)
		goto fail;
	if (p->listeners.n > 0 && (w->cur == NULL || w->cur->pool != p->set.pool)) {
		p->inst = inst_new(w, p->set.pool);
		if (p->inst == NULL || inst_watch(p->inst) < 0) {
			set_err(err, errlen, "[web] cannot start the HTTP library: %s",
				strerror(errno ? errno : ENOMEM));
			goto fail;
		}
	}
	/* The commit arms the header timer and the new instance's timer; room
	 * for the resume timer too (body_read does without it if need be). */
	if (loop_timer_reserve(w->loop, 3) < 0) {
		set_err(err, errlen, "[web] out of memory");
		goto fail;
	}
	return p;
fail:
	web_abort(p);
	return NULL;
}

static void inst_retire(struct web *w, struct web_inst *in)
{
	if (in->conns == 0) {
		inst_destroy(in);
		return;
	}
	in->retired = true;
	in->next = w->retired;
	w->retired = in;
}

void web_commit(struct web *w, struct web_plan *p)
{
	listen_set_commit(&w->listeners, &p->listeners);
	for (size_t i = 0; i < w->listeners.n; i++) {
		struct listen_sock *l = w->listeners.v[i];
		if (l->fresh) {
			/* Watched by the prepare. */
			l->fresh = false;
			listen_sock_log(l, "listen");
		}
	}
	acl_free(&w->set.allow);
	w->set = p->set;
	if (p->inst) {
		if (w->cur)
			inst_retire(w, w->cur);
		w->cur = p->inst;
		inst_rearm(w->cur);
	}
	free(p);
	/* A shorter header_timeout applies to those already waiting. */
	if (w->wait_head)
		loop_timer_arm(w->loop, &w->header_timer,
			       w->wait_head->since + w->set.header_timeout_ns);
}

void web_stop(struct web *w)
{
	listen_set_close_all(&w->listeners);
}

void web_free(struct web *w)
{
	if (w == NULL)
		return;
	listen_set_close_all(&w->listeners);
	loop_timer_cancel(w->loop, &w->header_timer);
	loop_timer_cancel(w->loop, &w->resume_timer);
	while (w->retired) {
		struct web_inst *in = w->retired;
		w->retired = in->next;
		inst_destroy(in);
	}
	if (w->cur)
		inst_destroy(w->cur);
	w->cur = NULL;
	for (size_t i = 0; i < w->n_routes; i++)
		free(w->routes[i].path);
	free(w->routes);
	acl_free(&w->set.allow);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	free(w);
}

const struct web_counters *web_counters(const struct web *w)
{
	return &w->c;
}

size_t web_plan_listeners(const struct web_plan *p)
{
	return p->listeners.n;
}

size_t web_listen_addrs(const struct web *w, struct endpoint *out, size_t n)
{
	for (size_t i = 0; i < w->listeners.n && i < n; i++)
		out[i] = w->listeners.v[i]->bound;
	return w->listeners.n;
}
