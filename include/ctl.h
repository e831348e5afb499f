/*
 * ctl: the control socket beaconctl talks to.  A Unix stream socket
 * (mode 0660, optional group), one request line per connection
 * (ctl_proto.h), a reply of JSON lines produced by a stream (stream.h) as
 * the client drains it, then close.
 *
 * Bounded in every direction: a request is at most CTL_REQ_MAX bytes; a
 * client holds at most CTL_OUT_CAP bytes of reply in the daemon (the
 * producer only runs when there is room); a client that makes no progress
 * for CTL_IDLE_TIMEOUT is closed; at most CTL_MAX_CLIENTS are served at
 * once (more are told "busy" and closed).  Producing replies costs CPU, so
 * all clients together get at most CTL_LOOP_BUDGET bytes of reply produced
 * per loop iteration (a few milliseconds at most); clients still writable
 * are served in the next iterations, after the timers.  100 clients
 * asking for 10 000 targets at once thus delay a ping by one budget, not
 * by 100 replies.  Each client's kernel send buffer is kept small
 * (CTL_SNDBUF), so one that never reads absorbs little work.
 *
 * Permissions come from SO_PEERCRED: anyone who can connect may run
 * read-only commands; a command registered as privileged (reload) only
 * root or the daemon's own uid.
 *
 * Commands are a table others extend: ctl_register() a struct ctl_command
 * (copied) whose open() returns the reply stream, or refuses.
 */
#ifndef BEACOND_CTL_H
#define BEACOND_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "ctl_proto.h"
#include "loop.h"
#include "sd.h"
#include "stream.h"

#define CTL_OUT_CAP (64u * 1024u)
#define CTL_LOOP_BUDGET (16u * 1024u)
#define CTL_SNDBUF (128 * 1024)
#define CTL_MAX_CLIENTS 256
#define CTL_IDLE_TIMEOUT_NS (5ULL * 1000000000ULL)
#define CTL_DEFAULT_SOCKET "/run/beacond/control.sock"

/* Who is asking (from SO_PEERCRED). */
struct ctl_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool privileged;         /* root or the daemon's uid */
};

/* Why a command refused: a code (ctl_proto.h's list) and a message. */
struct ctl_refusal {
	const char *code;
	char msg[1024];
};

struct ctl_command {
	const char *name;
	unsigned min_args, max_args;
	bool privileged;
	const char *usage;       /* "target NAME", for the usage error */
	const char *help;        /* one line, listed by the "help" command */
	/* Return the reply stream, or NULL and fill *why.  Called from the
	 * loop; may do the command's work synchronously (reload does). */
	struct stream *(*open)(void *arg, const struct ctl_peer *peer,
			       const struct ctl_req *req, struct ctl_refusal *why);
	void *arg;
};

struct ctl;

struct ctl *ctl_new(struct loop *loop);
/* Add a command (copied; the strings must outlive the ctl).  -1 with
 * errno EEXIST for a duplicate name, ENOMEM. */
int ctl_register(struct ctl *c, const struct ctl_command *cmd);
/* Bind path (or take the socket named "control" from systemd), mode 0660,
 * group (NULL or "" for the daemon's).  path "" disables the socket.
 * -1 with err filled; the ctl then simply has no listener. */
int ctl_listen(struct ctl *c, const char *path, const char *group,
	       struct sd_listen_set *inherited, char *err, size_t errlen);
/* For status: the path ("" when off) and whether systemd passed it. */
const char *ctl_path(const struct ctl *c);
bool ctl_from_systemd(const struct ctl *c);
size_t ctl_clients(const struct ctl *c);
/* Close the listener (stop); clients in progress are closed by ctl_free. */
void ctl_stop(struct ctl *c);
/* Closes every client, the listener, and unlinks the socket we bound. */
void ctl_free(struct ctl *c);

/* Reply helpers for command implementations. */
/* A stream that writes a copy of data (one or more whole JSON lines). */
struct stream *ctl_stream_bytes(const char *data, size_t len);
/* The one-line refusal {"ok":false,"version":1,"code":...,"error":...}. */
size_t ctl_format_refusal(char *buf, size_t cap, const char *code, const char *msg);

#endif
