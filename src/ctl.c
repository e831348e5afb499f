/*
 * ctl: the control socket (see ctl.h).  The thin part with the syscalls:
 * binding, accepting, SO_PEERCRED, reading one request line, and driving
 * a reply stream into a capped output buffer as the client drains it.
 * Request parsing is ctl_proto.c; the replies are streams (ctl_reply.c and
 * whoever registers more commands).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ctl.h"
#include "json.h"
#include "log.h"
#include "util.h"

struct ctl_client {
	struct io io;
	struct ctl *ctl;
	struct ctl_client *prev, *next;
	struct timer timer;
	struct deferred dfr;
	struct ctl_peer peer;
	size_t inlen;
	char in[CTL_REQ_MAX];
	char *out;               /* CTL_OUT_CAP bytes once a reply starts */
	size_t out_off, out_len;
	struct stream *st;       /* NULL once the body has ended */
	bool replying;
	bool closing;
};

struct ctl {
	struct loop *loop;
	uid_t overflow_uid;      /* what a peer outside our user namespace reads as */
	struct io listen;
	bool from_sd;
	bool bound;              /* we created the path: unlink it at the end */
	dev_t dev;
	ino_t ino;
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
	struct ctl_client *clients;
	size_t n_clients;
	struct ctl_command *cmds;
	size_t n_cmds;
	struct log_rate busy_rate;
	/* Reply bytes produced in this loop iteration (cap CTL_LOOP_BUDGET). */
	struct loop_budget budget;
};

static bool budget_left(struct ctl *c)
{
	return loop_budget_left(c->loop, &c->budget) > 0;
}

static void client_close(struct ctl_client *cl);

/* ---- streams for small replies ---- */

struct bytes_stream {
	struct stream s;
	size_t len, off;
	char data[];
};

static ssize_t bytes_fill(struct stream *s, char *buf, size_t cap)
{
	struct bytes_stream *b = container_of(s, struct bytes_stream, s);
	size_t n = b->len - b->off;

	if (n > cap)
		n = cap;
	memcpy(buf, b->data + b->off, n);
	b->off += n;
	return (ssize_t)n;
}

static void bytes_free(struct stream *s)
{
	free(container_of(s, struct bytes_stream, s));
}

struct stream *ctl_stream_bytes(const char *data, size_t len)
{
	struct bytes_stream *b = malloc(sizeof *b + len);

	if (!b)
		return NULL;
	b->s.fill = bytes_fill;
	b->s.free = bytes_free;
	b->len = len;
	b->off = 0;
	memcpy(b->data, data, len);
	return &b->s;
}

size_t ctl_format_refusal(char *buf, size_t cap, const char *code, const char *msg)
{
	struct jw w;

	jw_init(&w, buf, cap);
	jw_obj_begin(&w);
	jw_kbool(&w, "ok", false);
	jw_ku64(&w, "version", CTL_PROTO_VERSION);
	jw_kstr(&w, "code", code);
	jw_kstr(&w, "error", msg);
	jw_obj_end(&w);
	jw_newline(&w);
	return jw_ok(&w) ? w.len : 0;
}

/* ---- commands ---- */

int ctl_register(struct ctl *c, const struct ctl_command *cmd)
{
	for (size_t i = 0; i < c->n_cmds; i++) {
		if (!strcmp(c->cmds[i].name, cmd->name)) {
			errno = EEXIST;
			return -1;
		}
	}
	struct ctl_command *v = realloc(c->cmds, (c->n_cmds + 1) * sizeof *v);
	if (!v)
		return -1;
	v[c->n_cmds++] = *cmd;
	c->cmds = v;
	return 0;
}

static const struct ctl_command *find_cmd(const struct ctl *c, const char *name)
{
	for (size_t i = 0; i < c->n_cmds; i++)
		if (!strcmp(c->cmds[i].name, name))
			return &c->cmds[i];
	return NULL;
}

/* "help": the command table itself, so beaconctl and the completion can
 * list what this daemon knows. */
struct help_stream {
	struct stream s;
	const struct ctl *c;
	size_t next;
	bool head;
};

static ssize_t help_fill(struct stream *s, char *buf, size_t cap)
{
	struct help_stream *h = container_of(s, struct help_stream, s);
	size_t used = 0;

	if (!h->head) {
		struct jw w;
		jw_init(&w, buf, cap);
		jw_obj_begin(&w);
		jw_kbool(&w, "ok", true);
		jw_ku64(&w, "version", CTL_PROTO_VERSION);
		jw_kstr(&w, "reply", "help");
		jw_obj_end(&w);
		jw_newline(&w);
		if (!jw_ok(&w))
			return -1;
		used = w.len;
		h->head = true;
	}
	while (h->next < h->c->n_cmds) {
		const struct ctl_command *cmd = &h->c->cmds[h->next];
		struct jw w;
		jw_init(&w, buf + used, cap - used);
		jw_obj_begin(&w);
		jw_kstr(&w, "command", cmd->name);
		jw_kstr(&w, "usage", cmd->usage ? cmd->usage : cmd->name);
		jw_kstr(&w, "help", cmd->help ? cmd->help : "");
		jw_kbool(&w, "privileged", cmd->privileged);
		jw_obj_end(&w);
		jw_newline(&w);
		if (!jw_ok(&w))
			break;
		used += w.len;
		h->next++;
	}
	return (ssize_t)used;
}

static void help_free(struct stream *s)
{
	free(container_of(s, struct help_stream, s));
}

static struct stream *help_open(void *arg, const struct ctl_peer *peer,
				const struct ctl_req *req, struct ctl_refusal *why)
{
	struct help_stream *h = calloc(1, sizeof *h);
	(void)peer;
	(void)req;
	if (!h) {
		why->code = "failed";
		snprintf(why->msg, sizeof why->msg, "out of memory");
		return NULL;
	}
	h->s.fill = help_fill;
	h->s.free = help_free;
	h->c = arg;
	return &h->s;
}

/* ---- clients ---- */

static void client_free_deferred(struct deferred *d)
{
	struct ctl_client *cl = container_of(d, struct ctl_client, dfr);
	free(cl->out);
	free(cl);
}

static void client_close(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;

	if (cl->closing)
		return;
	cl->closing = true;
	loop_timer_cancel(c->loop, &cl->timer);
	/* An accepted socket of our own: IO_PRIVATE, closing drops it. */
	loop_close(c->loop, &cl->io);
	if (cl->st) {
		if (cl->st->free)
			cl->st->free(cl->st);
		cl->st = NULL;
	}
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	c->n_clients--;
	loop_free_later(c->loop, &cl->dfr, client_free_deferred);
}

static void client_touch(struct ctl_client *cl)
{
	loop_timer_arm(cl->ctl->loop, &cl->timer, loop_now(cl->ctl->loop) + CTL_IDLE_TIMEOUT_NS);
}

static void on_client_timeout(struct timer *t)
{
	struct ctl_client *cl = container_of(t, struct ctl_client, timer);
	struct logline *l = log_begin(LOG_INFO, "ctl_timeout");
	log_int(l, "pid", cl->peer.pid);
	log_u64(l, "uid", cl->peer.uid);
	log_str(l, "msg", cl->replying ? "client stopped reading its reply"
				       : "client sent no complete request");
	log_end(l);
	client_close(cl);
}

/* Write what is buffered; refill from the stream while there is room and
 * the loop iteration's budget lasts.  Level-triggered EPOLLOUT brings a
 * client whose turn was cut short back in the next iteration. */
static void client_pump(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;
	bool progress = false;

	for (;;) {
		/* Refill: compact, then let the producer write whole records. */
		if (cl->st && cl->out_off > 0) {
			memmove(cl->out, cl->out + cl->out_off, cl->out_len - cl->out_off);
			cl->out_len -= cl->out_off;
			cl->out_off = 0;
		}
		while (cl->st && CTL_OUT_CAP - cl->out_len >= STREAM_MIN_CAP && budget_left(c)) {
			ssize_t n = cl->st->fill(cl->st, cl->out + cl->out_len,
						 CTL_OUT_CAP - cl->out_len);
			if (n < 0) {
				client_close(cl);
				return;
			}
			if (n == 0) {
				if (cl->st->free)
					cl->st->free(cl->st);
				cl->st = NULL;
				break;
			}
			cl->out_len += (size_t)n;
			loop_budget_spend(&c->budget, (size_t)n);
		}
		if (cl->out_off == cl->out_len) {
			if (!cl->st) {
				/* Done: the reply is out.  Close now; the kernel
				 * delivers what it holds before the EOF. */
				client_close(cl);
				return;
			}
			break;   /* the budget is spent: more next iteration */
		}
		ssize_t w = send(io_fd(&cl->io), cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			client_close(cl);
			return;
		}
		cl->out_off += (size_t)w;
		progress = true;
		if (!budget_left(c) && cl->out_off == cl->out_len)
			break;
	}
	if (progress)
		client_touch(cl);
}

static void client_reply_stream(struct ctl_client *cl, struct stream *st)
{
	cl->replying = true;
	cl->st = st;
	cl->out = malloc(CTL_OUT_CAP);
	if (!cl->out) {
		client_close(cl);
		return;
	}
	if (loop_watch(cl->ctl->loop, &cl->io, EPOLLOUT) < 0) {
		client_close(cl);
		return;
	}
	client_touch(cl);
	client_pump(cl);
}

static void client_refuse(struct ctl_client *cl, const char *code, const char *msg)
{
	char buf[2048];
	size_t n = ctl_format_refusal(buf, sizeof buf, code, msg);
	struct stream *st = n ? ctl_stream_bytes(buf, n) : NULL;

	struct logline *l = log_begin(LOG_INFO, "ctl_refused");
	log_int(l, "pid", cl->peer.pid);
	log_u64(l, "uid", cl->peer.uid);
	log_str(l, "code", code);
	log_str(l, "reason", msg);
	log_end(l);
	if (!st) {
		client_close(cl);
		return;
	}
	client_reply_stream(cl, st);
}

static void client_request(struct ctl_client *cl, size_t len)
{
	struct ctl_req *req = malloc(sizeof *req);
	char err[512];

	if (!req) {
		client_close(cl);
		return;
	}
	enum ctl_parse r = ctl_req_parse(cl->in, len, req, err, sizeof err);
	if (r != CTL_PARSE_OK) {
		client_refuse(cl, ctl_parse_code(r), err);
		free(req);
		return;
	}
	const struct ctl_command *cmd = find_cmd(cl->ctl, req->cmd);
	if (!cmd) {
		snprintf(err, sizeof err, "unknown command \"%s\" (try \"help\")", req->cmd);
		client_refuse(cl, "unknown_command", err);
		free(req);
		return;
	}
	if (req->argc < cmd->min_args || req->argc > cmd->max_args) {
		snprintf(err, sizeof err, "usage: %s", cmd->usage ? cmd->usage : cmd->name);
		client_refuse(cl, "usage", err);
		free(req);
		return;
	}
	if (cmd->privileged && !cl->peer.privileged) {
		/* Under PrivateUsers=yes everyone outside the service's user
		 * namespace, root included, arrives as the overflow uid. */
		bool outside = cl->peer.uid == cl->ctl->overflow_uid;
		snprintf(err, sizeof err,
			 "\"%s\" is allowed only for root or the daemon's user (uid %u); you are uid %u%s",
			 cmd->name, (unsigned)geteuid(), (unsigned)cl->peer.uid,
			 outside ? " (also how anyone outside the daemon's user namespace "
				   "appears, as under PrivateUsers=yes: there, use systemctl reload)"
				 : "");
		client_refuse(cl, "permission", err);
		free(req);
		return;
	}
	struct logline *l = log_begin(LOG_DEBUG, "ctl_request");
	log_int(l, "pid", cl->peer.pid);
	log_u64(l, "uid", cl->peer.uid);
	log_str(l, "command", cmd->name);
	log_end(l);

	struct ctl_refusal *why = malloc(sizeof *why);
	if (!why) {
		free(req);
		client_close(cl);
		return;
	}
	why->code = "failed";
	why->msg[0] = '\0';
	struct stream *st = cmd->open(cmd->arg, &cl->peer, req, why);
	free(req);
	if (!st)
		client_refuse(cl, why->code, why->msg[0] ? why->msg : "failed");
	else
		client_reply_stream(cl, st);
	free(why);
}

static void client_read(struct ctl_client *cl)
{
	for (;;) {
		ssize_t n = recv(io_fd(&cl->io), cl->in + cl->inlen, sizeof cl->in - cl->inlen,
				 MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			client_close(cl);
			return;
		}
		if (n == 0) {
			/* EOF before a whole line: a request without its LF
			 * still counts (printf '1 status' | nc -U). */
			if (cl->inlen > 0)
				client_request(cl, cl->inlen);
			else
				client_close(cl);
			return;
		}
		cl->inlen += (size_t)n;
		client_touch(cl);
		long done = ctl_req_complete(cl->in, cl->inlen);
		if (done > 0) {
			client_request(cl, (size_t)done);
			return;
		}
		if (done < 0) {
			char msg[96];
			snprintf(msg, sizeof msg, "request longer than %d bytes", CTL_REQ_MAX - 1);
			client_refuse(cl, "too_long", msg);
			return;
		}
	}
}

static void on_client(struct io *io, uint32_t events)
{
	struct ctl_client *cl = container_of(io, struct ctl_client, io);

	if (cl->closing)
		return;
	if (!cl->replying) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			client_read(cl);
		return;
	}
	if (events & EPOLLERR) {
		client_close(cl);
		return;
	}
	if (events & (EPOLLOUT | EPOLLHUP))
		client_pump(cl);
}

static void accept_one(struct ctl *c, int fd)
{
	struct ucred cred;
	socklen_t clen = sizeof cred;

	if (c->n_clients >= CTL_MAX_CLIENTS) {
		char buf[256];
		size_t n = ctl_format_refusal(buf, sizeof buf, "busy",
					      "too many control clients at once; try again");
		if (n)
			(void)!send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		struct logline *l = log_begin_rate(&c->busy_rate, loop_now(c->loop),
						   NSEC_PER_SEC * 10, LOG_WARNING, "ctl_busy", NULL);
		log_u64(l, "clients", c->n_clients);
		log_end(l);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		close(fd);
		return;
	}
	/* A small kernel buffer: a client that never reads then holds (and
	 * costs the daemon the work of) little more than CTL_OUT_CAP. */
	int sndbuf = CTL_SNDBUF;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	struct ctl_client *cl = calloc(1, sizeof *cl);
	if (!cl) {
		close(fd);
		return;
	}
	cl->ctl = c;
	io_init(&cl->io, fd, on_client, IO_PRIVATE);
	cl->peer.pid = cred.pid;
	cl->peer.uid = cred.uid;
	cl->peer.gid = cred.gid;
	cl->peer.privileged = cred.uid == 0 || cred.uid == geteuid();
	timer_init(&cl->timer, on_client_timeout);
	if (loop_watch(c->loop, &cl->io, EPOLLIN | EPOLLRDHUP) < 0) {
		loop_close(c->loop, &cl->io);
		free(cl);
		return;
	}
	cl->next = c->clients;
	if (c->clients)
		c->clients->prev = cl;
	c->clients = cl;
	c->n_clients++;
	client_touch(cl);
}

static void on_listen(struct io *io, uint32_t events)
{
	struct ctl *c = container_of(io, struct ctl, listen);
	(void)events;

	/* A bounded batch per event: the listener stays readable if more
	 * wait, and the pings get their turn in between. */
	for (int i = 0; i < 64 && io->fd >= 0; i++) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		accept_one(c, fd);
	}
}

/* ---- setup ---- */

/* The uid the kernel shows for a peer whose uid has no mapping in our user
 * namespace (PrivateUsers=yes): /proc/sys/kernel/overflowuid, 65534 unless
 * changed. */
static uid_t overflow_uid(void)
{
	unsigned v = 65534;
	FILE *f = fopen("/proc/sys/kernel/overflowuid", "re");

	if (f) {
		if (fscanf(f, "%u", &v) != 1)
			v = 65534;
		fclose(f);
	}
	return (uid_t)v;
}

struct ctl *ctl_new(struct loop *loop)
{
	struct ctl *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->loop = loop;
	c->overflow_uid = overflow_uid();
	c->budget.cap = CTL_LOOP_BUDGET;
	io_init(&c->listen, -1, on_listen, 0);
	struct ctl_command help = {
		.name = "help", .max_args = 0, .usage = "help",
		.help = "list the commands this daemon knows",
		.open = help_open, .arg = c,
	};
	if (ctl_register(c, &help) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

/* Is something answering at path?  Then it is another daemon's socket and
 * must not be replaced; a socket nobody answers on is a stale leftover. */
static bool path_is_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0 ||
	       errno == EAGAIN;
	close(fd);
	return live;
}

static int bind_path(struct ctl *c, const char *path, const char *group, char *err,
		     size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	gid_t gid = (gid_t)-1;

	if (strlen(path) >= sizeof sun.sun_path) {
		set_err(err, errlen, "%s: path too long for a Unix socket", path);
		return -1;
	}
	if (group && *group) {
		struct group *gr = getgrnam(group);
		if (!gr) {
			set_err(err, errlen, "control_group \"%s\": no such group", group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			set_err(err, errlen, "%s exists and is not a socket", path);
			return -1;
		}
		if (path_is_live(&sun)) {
			set_err(err, errlen, "%s: another process is listening there", path);
			return -1;
		}
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		set_err(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Created 0660 from the start (no window with wider modes). */
	mode_t old = umask(0117);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	int e = errno;
	umask(old);
	if (r < 0) {
		set_err(err, errlen, "bind %s: %s", path, strerror(e));
		close(fd);
		return -1;
	}
	if ((gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) || chmod(path, 0660) < 0 ||
	    listen(fd, 128) < 0 || stat(path, &st) < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->bound = true;
	return fd;
}

int ctl_listen(struct ctl *c, const char *path, const char *group,
	       struct sd_listen_set *inherited, char *err, size_t errlen)
{
	int fd = -1;

	if (inherited && inherited->named)
		fd = sd_listen_take_any(inherited, SOCK_STREAM, "control");
	if (fd >= 0) {
		struct sockaddr_un sun;
		socklen_t len = sizeof sun;
		c->from_sd = true;
		memset(&sun, 0, sizeof sun);
		if (getsockname(fd, (struct sockaddr *)&sun, &len) == 0 && sun.sun_family == AF_UNIX)
			snprintf(c->path, sizeof c->path, "%s", sun.sun_path);
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0)
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	} else {
		if (!path || !*path)
			return 0;
		fd = bind_path(c, path, group, err, errlen);
		if (fd < 0)
			return -1;
		snprintf(c->path, sizeof c->path, "%s", path);
	}
	/* Not IO_PRIVATE: it may come from systemd, which keeps a copy. */
	io_init(&c->listen, fd, on_listen, 0);
	if (loop_watch(c->loop, &c->listen, EPOLLIN) < 0) {
		set_err(err, errlen, "epoll: %s", strerror(errno));
		loop_close(c->loop, &c->listen);
		if (c->bound)
			unlink(c->path);
		c->bound = false;
		c->path[0] = '\0';
		return -1;
	}
	return 0;
}

const char *ctl_path(const struct ctl *c)
{
	return c->path;
}

bool ctl_from_systemd(const struct ctl *c)
{
	return c->from_sd;
}

size_t ctl_clients(const struct ctl *c)
{
	return c->n_clients;
}

void ctl_stop(struct ctl *c)
{
	loop_close(c->loop, &c->listen);
	/* Only our own socket file, and only if it is still ours. */
	if (c->bound) {
		struct stat st;
		if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
			unlink(c->path);
		c->bound = false;
	}
}

void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	while (c->clients)
		client_close(c->clients);
	ctl_stop(c);
	free(c->cmds);
	free(c);
}
