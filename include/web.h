/*
 * web: the [web] HTTP listener, a small router other modules register
 * pages on (/metrics, the history's pages and graphs).
 *
 * HTTP is libmicrohttpd's (no hand-written parser), driven by beacond's own
 * loop with no threads: MHD runs in external-epoll mode, its epoll fd is
 * one struct io in our loop (MHD_run on readiness) and MHD_get_timeout is a
 * loop timer.  The listening sockets are ours (a listen_set, so reloads move
 * them and systemd can pass them as FileDescriptorName=web): we accept and
 * hand each connection to MHD with MHD_add_connection; MHD's accept policy
 * callback checks `allow`, and MHD enforces max_connections, the idle
 * timeout and the header size (its per-connection memory pool).  A header
 * deadline of our own closes clients that trickle a request in (MHD's
 * timeout only measures inactivity, so a byte a second would keep it open).
 * At max_connections a new client evicts the connection that has waited
 * longest (at least a second) for its request, so idle or trickling
 * clients cannot lock a scraper out; otherwise it is refused (closed).
 *
 * A page is a function called once per request, after the headers, with
 * the path; it answers with a status, a content type and a body that is a
 * struct stream (stream.h): web pulls from it only as fast as the client
 * drains, so no page ever builds its whole response in one callback.  When
 * the client accepts gzip and the page allows it, web compresses the
 * stream with zlib as it goes.  Producing a body is also bounded in time:
 * all connections together render at most 32 KiB of body text per loop
 * iteration (a struct loop_budget, as ctl's replies); a connection whose
 * turn is cut short is suspended (MHD_suspend_connection) and resumed by a
 * zero-delay timer in the next iteration, so the pings' timers run between
 * slices of a 30 MB scrape.  Methods other than GET and HEAD get 405, a
 * path no page claims 404; HEAD gets the headers of GET without the body
 * (the stream is freed unread).
 *
 * Registering pages:
 *
 *     static int page_fn(void *arg, const struct web_request *req,
 *                        struct web_reply *reply)
 *     {
 *             reply->content_type = "image/svg+xml";
 *             reply->body = my_stream_new(arg, req->path);   // NULL: 500
 *             return 0;
 *     }
 *     web_route(w, "/graph/", true, page_fn, arg);   // prefix match
 *     web_route(w, "/metrics", false, metrics_fn, arg);
 *
 * The longest matching route wins; an exact route beats a prefix of the
 * same length.  Routes live as long as the struct web (registered once at
 * start, not per reload).
 */
#ifndef BEACOND_WEB_H
#define BEACOND_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "acl.h"
#include "loop.h"
#include "sd.h"
#include "stream.h"

struct config_web;
struct web;
struct web_plan;

struct web_request {
	const char *method;      /* "GET" or "HEAD" (others never reach a page) */
	const char *path;        /* "/metrics", "/graph/gw.svg": no query string */
	bool head;               /* the body will not be sent */
	void *conn;              /* opaque, for web_request_arg() */
};

/* A query-string argument ("?range=1h" -> "1h"), or NULL. */
const char *web_request_arg(const struct web_request *req, const char *key);

struct web_reply {
	unsigned status;         /* 200 unless the page sets another */
	const char *content_type;  /* a static string; "text/plain; charset=utf-8" */
	struct stream *body;     /* web frees it; NULL: a short text body
				  * naming the status (and 500 if status is 200) */
	bool no_gzip;            /* true: never compress (already compressed) */
	const char *csp;         /* a static Content-Security-Policy (sent with
				  * X-Content-Type-Options: nosniff), or NULL */
};

/* Return 0 with reply filled, or -1 for a 500. */
typedef int (*web_page_fn)(void *arg, const struct web_request *req,
			   struct web_reply *reply);

/* Counters for the metrics (beacond_web_*). */
struct web_counters {
	uint64_t accepted;       /* handed to the HTTP library */
	uint64_t refused_acl;    /* source not in allow */
	uint64_t refused_limit;  /* over max_connections (or out of memory) */
	uint64_t header_timeouts;  /* closed by header_timeout */
	uint64_t evicted;        /* waited longest for a request, closed to admit
				  * a new client at max_connections */
	uint64_t requests;       /* requests answered, any status */
	uint64_t not_found, bad_method;
	uint64_t active;         /* connections open now */
	uint64_t gzip_responses;
	uint64_t body_bytes;     /* body bytes handed to the library (after gzip) */
	uint64_t suspensions;    /* bodies paused for the per-iteration budget */
	uint64_t cpu_ns;         /* CPU time spent accepting and in the library
				  * (request parsing, rendering, gzip, sending) */
};

struct web *web_new(struct loop *loop);
void web_free(struct web *w);

/* Register a page; path must start with '/'.  Returns 0, or -1 (ENOMEM). */
int web_route(struct web *w, const char *path, bool prefix, web_page_fn fn, void *arg);

/* Two-phase configuration, as for tcp: prepare opens the listeners the new
 * config needs (reusing ones with the same address, else sockets systemd
 * passed, else binding), commit swaps them in and applies the settings and
 * cannot fail, abort undoes a prepare.  A prepare may also start a new
 * HTTP library instance when a setting it fixes at start (header size,
 * connection limit, idle timeout) changed; connections open on the old one
 * are served to their end.  A disabled [web] is prepared with no listeners.
 * Sockets systemd passed as FileDescriptorName=web that no listen entry
 * names are served too (and kept across reloads). */
struct web_plan *web_prepare(struct web *w, const struct config_web *cfg,
			     struct sd_listen_set *inherited, char *err, size_t errlen);
void web_commit(struct web *w, struct web_plan *plan);
void web_abort(struct web_plan *plan);

/* Stop listening (shutdown); open connections finish their response. */
void web_stop(struct web *w);

const struct web_counters *web_counters(const struct web *w);
/* The listeners a plan will have, and the bound addresses now (fills up
 * to n, returns how many there are), as tcp_listen_addrs. */
size_t web_plan_listeners(const struct web_plan *p);
size_t web_listen_addrs(const struct web *w, struct endpoint *out, size_t n);

/* Pure helpers, exposed for the unit tests and the fuzzer. */
/* True when an Accept-Encoding value accepts gzip (a "gzip" or "*" coding
 * whose q is not 0).  NULL or "" is false. */
bool web_accepts_gzip(const char *accept_encoding);

#endif
