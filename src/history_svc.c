/*
 * history_svc: the history in the daemon (hooks, files, pages, commands).
 * See history_svc.h.  The pure parts are history.c (rounds, tiers, the
 * file format) and render_*.c (SVG and HTML); what is here are the thin
 * syscalls around them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "history.h"
#include "history_svc.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "pinger.h"
#include "render.h"
#include "pool.h"
#include "util.h"
#include "view.h"
#include "web.h"

#define NAME_MAX_ 64                  /* config.c: [target NAME] */
#define FILE_MAX (1u << 20)          /* a history file is ~24 KB at most */
#define LOAD_LOG_MAX 16               /* files named one by one at start */
#define REAP_POLL_NS (100 * NSEC_PER_MSEC)

struct hentry {
	/* What on_outcome reads, together at the start. */
	struct history *h;            /* NULL: history = no */
	uint64_t gen;                 /* settings generation applied */
	uint8_t family;
	bool attached;                /* a probe's slot points here */
	bool retired;                 /* its probe is gone: saved once more, then freed */
	struct hentry *hnext;         /* hash chain */
	struct hentry *prev, *next;   /* all entries, or the retired list */
	char *target, *host;
};

struct tsetting {
	char *name, *host;
	bool enabled;
	uint64_t step_ns;
	enum target_family family;
};

struct history_svc {
	struct loop *loop;
	struct pinger *pinger;
	/* Every entry's history: the structs, which each outcome touches,
	 * in one pool, their rounds in another (pool.h: why). */
	struct pool heads, rounds;

	struct hentry **buckets;
	size_t n_buckets, n_entries;
	struct hentry live, retired;  /* list heads */

	struct tsetting *set;
	size_t n_set;
	uint64_t gen;

	char dir[1100];               /* STATE/history; "" = not saved */
	uint64_t save_interval_ns, retention_ns;
	struct timer save_timer;

	/* The save in progress. */
	pid_t child;
	struct io pidfd;
	struct timer reap_timer;      /* when pidfd_open is not available */
	uint64_t save_start_ns;
	uint64_t save_paused_ns;   /* the loop held to start it: tick and fork */
	uint64_t save_fork_ns;     /* of which fork() */
	const char *save_why;
	size_t save_probes;
	bool save_again;
};

/* ---- entries */

static uint64_t hash_key(const char *target, uint8_t family)
{
	uint64_t h = 1469598103934665603ULL ^ family;
	for (const unsigned char *s = (const unsigned char *)target; *s; s++)
		h = (h ^ *s) * 1099511628211ULL;
	return h;
}

static void list_insert(struct hentry *head, struct hentry *e)
{
	e->next = head->next;
	e->prev = head;
	head->next->prev = e;
	head->next = e;
}

static void list_remove(struct hentry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

static struct hentry *entry_find(const struct history_svc *hs, const char *target, uint8_t family)
{
	if (!hs->n_buckets)
		return NULL;
	struct hentry *e = hs->buckets[hash_key(target, family) & (hs->n_buckets - 1)];
	for (; e; e = e->hnext)
		if (e->family == family && strcmp(e->target, target) == 0)
			return e;
	return NULL;
}

static int hash_grow(struct history_svc *hs)
{
	size_t n = hs->n_buckets ? hs->n_buckets * 2 : 1024;
	struct hentry **b = calloc(n, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; i < hs->n_buckets; i++) {
		struct hentry *e = hs->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			size_t k = hash_key(e->target, e->family) & (n - 1);
			e->hnext = b[k];
			b[k] = e;
		}
	}
	free(hs->buckets);
	hs->buckets = b;
	hs->n_buckets = n;
	return 0;
}

static void hash_unlink(struct history_svc *hs, struct hentry *e)
{
	struct hentry **pp = &hs->buckets[hash_key(e->target, e->family) & (hs->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			hs->n_entries--;
			return;
		}
}

/* A history in the pool: fresh, or a copy of a loaded one. */
static struct history *hist_get(struct history_svc *hs, uint64_t step_ns,
				const struct history *from)
{
	void *head = pool_get(&hs->heads), *rounds = head ? pool_get(&hs->rounds) : NULL;
	struct history *h = NULL;
	if (rounds)
		h = from ? history_copy(head, rounds, from) : history_init(head, rounds, step_ns);
	if (!h) {
		pool_put(&hs->rounds, rounds);
		pool_put(&hs->heads, head);
	}
	return h;
}

static void hist_put(struct history_svc *hs, struct history *h)
{
	if (!h)
		return;
	pool_put(&hs->rounds, h->rounds);
	pool_put(&hs->heads, h);
}

static void entry_free(struct history_svc *hs, struct hentry *e)
{
	hist_put(hs, e->h);
	free(e->target);
	free(e->host);
	free(e);
}

static struct hentry *entry_new(struct history_svc *hs, const char *target, const char *host,
				uint8_t family)
{
	if (hs->n_entries >= hs->n_buckets && hash_grow(hs) < 0)
		return NULL;
	struct hentry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->target = strdup(target);
	e->host = strdup(host ? host : "");
	if (!e->target || !e->host) {
		entry_free(hs, e);
		return NULL;
	}
	e->family = family;
	size_t k = hash_key(target, family) & (hs->n_buckets - 1);
	e->hnext = hs->buckets[k];
	hs->buckets[k] = e;
	hs->n_entries++;
	list_insert(&hs->live, e);
	return e;
}

/* The probe is gone (or changed family): keep its rounds for one more save
 * (or drop them now when nothing is saved). */
static void entry_retire(struct history_svc *hs, struct hentry *e)
{
	hash_unlink(hs, e);
	list_remove(e);
	if (!hs->dir[0] || !e->h) {
		entry_free(hs, e);
		return;
	}
	e->retired = true;
	e->attached = false;
	list_insert(&hs->retired, e);
}

static int cmp_setting(const void *a, const void *b)
{
	return strcmp(((const struct tsetting *)a)->name, ((const struct tsetting *)b)->name);
}

static const struct tsetting *setting_of(const struct history_svc *hs, const char *target)
{
	struct tsetting key = { .name = (char *)(uintptr_t)target };
	return bsearch(&key, hs->set, hs->n_set, sizeof(*hs->set), cmp_setting);
}

/* Bring an entry to the settings in force (history on or off, step). */
static void entry_apply(struct history_svc *hs, struct hentry *e)
{
	e->gen = hs->gen;
	/* Not in the settings: its history is off (only targets with history
	 * on are kept there), or it is being removed. */
	const struct tsetting *s = setting_of(hs, e->target);
	if (!s || !s->enabled) {
		hist_put(hs, e->h);
		e->h = NULL;
		return;
	}
	if (e->h && e->h->step_ns != s->step_ns) {
		struct logline *l = log_begin(LOG_NOTICE, "history_reset");
		log_str(l, "target", e->target);
		log_u64(l, "family", e->family);
		log_str(l, "reason", "history_step changed");
		log_end(l);
		hist_put(hs, e->h);
		e->h = NULL;
	}
	if (!e->h)
		e->h = hist_get(hs, s->step_ns, NULL);
}

/* ---- the hooks */

/* The entry of the probe behind *slot, made (or taken over from a loaded
 * file) at its first outcome or state change, brought to the settings in
 * force; NULL when out of memory.  Once that is done an outcome reads
 * nothing of the probe but its family. */
static struct hentry *slot_entry_slow(struct history_svc *hs, void **slot,
				      const struct view_probe_src *src)
{
	struct hentry *e = *slot;
	struct view_probe_key key = view_probe_key(src);

	if (e && e->family != key.family) {
		entry_retire(hs, e);
		e = *slot = NULL;
	}
	if (!e) {
		e = entry_find(hs, key.target, key.family);
		if (e && (e->attached || strcmp(e->host, key.host) != 0))
			e = NULL;   /* cannot happen: one probe per (target, family) */
		if (!e) {
			e = entry_new(hs, key.target, key.host, key.family);
			if (!e)
				return NULL;
		}
		e->attached = true;
		*slot = e;
		entry_apply(hs, e);
	} else if (e->gen != hs->gen) {
		entry_apply(hs, e);
	}
	return e;
}

static inline struct hentry *slot_entry(struct history_svc *hs, void **slot,
					const struct view_probe_src *src)
{
	struct hentry *e = *slot;

	if (e && e->gen == hs->gen && e->family == view_probe_family(src))
		return e;
	return slot_entry_slow(hs, slot, src);
}

static void on_outcome(void *arg, void **slot, const struct view_probe_src *src,
		       uint64_t now_ns, uint64_t rtt_ns)
{
	struct hentry *e = slot_entry(arg, slot, src);
	(void)now_ns;   /* rounds are aligned to the wall clock */

	if (e && e->h)
		history_add(e->h, wall_ns(), rtt_ns);
}

static void on_state(void *arg, void **slot, const struct view_probe_src *src,
		     uint64_t now_ns, enum health_state from, enum health_state to)
{
	struct hentry *e = slot_entry(arg, slot, src);
	(void)now_ns;   /* shown as wall-clock times */

	if (e && e->h)
		history_state_add(e->h, wall_ns(), (uint8_t)from, (uint8_t)to);
}

static void on_gone(void *arg, void **slot)
{
	struct history_svc *hs = arg;
	struct hentry *e = *slot;
	*slot = NULL;
	if (e)
		entry_retire(hs, e);
}

/* ---- files */

static void file_name(char *buf, size_t len, const char *target, uint8_t family)
{
	snprintf(buf, len, "%s.%u.hist", target, family);
}

static int ensure_dir(const char *dir, char *err, size_t errlen)
{
	/* STATE exists (StateDirectory=, or made by the admin); make STATE
	 * and STATE/history if they do not. */
	char parent[sizeof(((struct history_svc *)0)->dir)];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (mkdir(parent, 0750) < 0 && errno != EEXIST) {
			set_err(err, errlen, "mkdir %s: %s", parent, strerror(errno));
			return -1;
		}
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		set_err(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Write one file's temporary copy, NAME.tmp (not yet synced).  0, or -1
 * with errno. */
static int write_tmp(int dirfd, const char *name, const uint8_t *buf, size_t len)
{
	char tmp[HISTORY_NAME_MAX + 32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			unlinkat(dirfd, tmp, 0);
			errno = e;
			return -1;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		errno = e;
		return -1;
	}
	return 0;
}

static int rename_tmp(int dirfd, const char *name)
{
	char tmp[HISTORY_NAME_MAX + 32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	return renameat(dirfd, tmp, dirfd, name);
}

/* Pass 1 (rename false): write every probe's NAME.tmp.  Pass 2 (after one
 * syncfs made them all durable): rename each over NAME.  One sync for
 * 10 000 files instead of 10 000 fsyncs, and still no file is ever seen
 * half written. */
static int save_list(const struct hentry *head, int dirfd, bool rename, uint8_t **buf,
		     size_t *cap, uint64_t now, size_t *n, char *err, size_t errlen)
{
	for (const struct hentry *e = head->prev; e != head; e = e->prev) {
		if (!e->h)
			continue;
		char name[HISTORY_NAME_MAX + 16];
		file_name(name, sizeof(name), e->target, e->family);
		if (rename) {
			if (rename_tmp(dirfd, name) < 0) {
				set_err(err, errlen, "history/%s: rename: %s", name, strerror(errno));
				return -1;
			}
			(*n)++;
			continue;
		}
		struct history_ident id = { .family = e->family, .saved_wall_ns = now };
		snprintf(id.target, sizeof(id.target), "%s", e->target);
		snprintf(id.host, sizeof(id.host), "%s", e->host);
		size_t need = history_encoded_max(e->h, &id);
		if (need > *cap) {
			uint8_t *nb = realloc(*buf, need);
			if (!nb) {
				set_err(err, errlen, "out of memory");
				return -1;
			}
			*buf = nb;
			*cap = need;
		}
		size_t len = history_encode(e->h, &id, *buf, *cap);
		if (len == 0 || write_tmp(dirfd, name, *buf, len) < 0) {
			set_err(err, errlen, "history/%s: %s", name,
				len == 0 ? "cannot encode" : strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Delete *.hist files nobody wrote for retention_ns. */
static void sweep(int dirfd, uint64_t now, uint64_t retention_ns, size_t *removed)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".hist") != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		uint64_t mtime = (uint64_t)st.st_mtim.tv_sec * NSEC_PER_SEC + (uint64_t)st.st_mtim.tv_nsec;
		if (mtime + retention_ns < now && unlinkat(dirfd, de->d_name, 0) == 0)
			(*removed)++;
	}
	closedir(d);
}

/* Everything a save does, in the child or (at stop) in the daemon. */
static size_t histories(const struct history_svc *hs)
{
	size_t n = 0;
	for (const struct hentry *e = hs->live.next; e != &hs->live; e = e->next)
		n += e->h != NULL;
	for (const struct hentry *e = hs->retired.next; e != &hs->retired; e = e->next)
		n += e->h != NULL;
	return n;
}

static int save_all(struct history_svc *hs, size_t *n, size_t *removed, char *err, size_t errlen)
{
	*n = *removed = 0;
	if (ensure_dir(hs->dir, err, errlen) < 0)
		return -1;
	int dirfd = open(hs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		set_err(err, errlen, "%s: %s", hs->dir, strerror(errno));
		return -1;
	}
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t now = wall_ns();
	/* Retired first: a live probe of the same name (its host changed)
	 * then wins. */
	int r = save_list(&hs->retired, dirfd, false, &buf, &cap, now, n, err, errlen);
	if (r == 0)
		r = save_list(&hs->live, dirfd, false, &buf, &cap, now, n, err, errlen);
	free(buf);
	if (r == 0 && syncfs(dirfd) < 0) {
		set_err(err, errlen, "syncfs %s: %s", hs->dir, strerror(errno));
		r = -1;
	}
	if (r == 0)
		r = save_list(&hs->retired, dirfd, true, NULL, NULL, now, n, err, errlen);
	if (r == 0)
		r = save_list(&hs->live, dirfd, true, NULL, NULL, now, n, err, errlen);
	if (r == 0 && fsync(dirfd) < 0) {
		set_err(err, errlen, "fsync %s: %s", hs->dir, strerror(errno));
		r = -1;
	}
	if (r == 0)
		sweep(dirfd, now, hs->retention_ns, removed);
	close(dirfd);
	return r;
}

static void free_retired(struct history_svc *hs)
{
	while (hs->retired.next != &hs->retired) {
		struct hentry *e = hs->retired.next;
		list_remove(e);
		entry_free(hs, e);
	}
}

static void tick_all(struct history_svc *hs, bool force)
{
	uint64_t now = wall_ns();
	for (struct hentry *e = hs->live.next; e != &hs->live; e = e->next)
		if (e->h)
			history_tick(e->h, now, force);
	for (struct hentry *e = hs->retired.next; e != &hs->retired; e = e->next)
		if (e->h)
			history_tick(e->h, now, true);
}

/* forked: a background save, which also says how long the loop was held
 * to start it (the rounds' tick and the fork: pings due then leave that
 * much late); the save at stop is the loop's own. */
static void log_saved(struct history_svc *hs, const char *why, bool ok, const char *err,
		      size_t n, size_t removed, uint64_t took_ns, bool forked)
{
	struct logline *l = log_begin(ok ? LOG_INFO : LOG_ERR, ok ? "history_saved" : "history_save_failed");
	log_str(l, "why", why);
	log_str(l, "dir", hs->dir);
	if (ok) {
		log_u64(l, "probes", n);
		log_u64(l, "expired_files", removed);
	} else if (err) {
		log_str(l, "reason", err);
	}
	log_fixed(l, "took_ms", took_ns, NSEC_PER_MSEC, 1);
	if (forked) {
		log_fixed(l, "paused_ms", hs->save_paused_ns, NSEC_PER_MSEC, 2);
		log_fixed(l, "fork_ms", hs->save_fork_ns, NSEC_PER_MSEC, 2);
	}
	log_end(l);
}

static void save_start(struct history_svc *hs, const char *why);

static void child_done(struct history_svc *hs, int status)
{
	uint64_t took = mono_ns() - hs->save_start_ns;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!ok && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	    strncmp(hs->save_why, "superseded", 10) == 0) {
		struct logline *l = log_begin(LOG_INFO, "history_save_superseded");
		log_fixed(l, "ran_ms", took, NSEC_PER_MSEC, 1);
		log_end(l);
		ok = true;
		goto done;
	}
	char why[64];
	if (!ok)
		snprintf(why, sizeof(why), WIFSIGNALED(status) ? "killed by signal %d" : "exit status %d",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	log_saved(hs, hs->save_why, ok, ok ? NULL : why, hs->save_probes, 0, took, true);
done:
	hs->child = 0;
	loop_child_ended(hs->loop);
	if (io_fd(&hs->pidfd) >= 0)
		loop_close(hs->loop, &hs->pidfd);
	loop_timer_cancel(hs->loop, &hs->reap_timer);
	if (hs->save_again) {
		hs->save_again = false;
		save_start(hs, "again");
	}
}

static void reap(struct history_svc *hs, bool block)
{
	if (hs->child <= 0)
		return;
	int status;
	pid_t r;
	do
		r = waitpid(hs->child, &status, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == hs->child)
		child_done(hs, status);
	else if (r < 0)
		child_done(hs, 0);   /* ECHILD: someone reaped it; nothing to wait for */
}

static void on_pidfd(struct io *io, uint32_t events)
{
	(void)events;
	reap(container_of(io, struct history_svc, pidfd), false);
}

static void on_reap_timer(struct timer *t)
{
	struct history_svc *hs = container_of(t, struct history_svc, reap_timer);
	reap(hs, false);
	if (hs->child > 0)
		loop_timer_arm(hs->loop, t, loop_now(hs->loop) + REAP_POLL_NS);
}

static void save_start(struct history_svc *hs, const char *why)
{
	if (!hs->dir[0])
		return;
	if (hs->child > 0) {
		hs->save_again = true;
		return;
	}
	uint64_t t0 = mono_ns();
	tick_all(hs, false);
	size_t n = histories(hs);
	if (n == 0)
		return;   /* nothing to write (and no directory made for nothing) */
	hs->save_start_ns = t0;
	pid_t parent = getpid();
	uint64_t t1 = mono_ns();
	pid_t pid = fork();
	if (pid != 0) {
		uint64_t t2 = mono_ns();
		hs->save_fork_ns = t2 - t1;
		hs->save_paused_ns = t2 - t0;
	}
	if (pid < 0) {
		log_saved(hs, why, false, strerror(errno), 0, 0, 0, true);
		return;
	}
	if (pid == 0) {
		/* The child: a copy of the histories as they were at fork.  It
		 * only writes files and exits; it never returns to the loop. */
		/* SCHED_IDLE: the writer runs on CPU time nobody else wants,
		 * so it never delays the daemon's pings (nor anyone's) on the
		 * CPU it shares with them; the kernel still gives it a sliver
		 * on a saturated machine, and the stop's save is the daemon's
		 * own.  A nice value where the policy is refused. */
		struct sched_param sp = { .sched_priority = 0 };
		if (sched_setscheduler(0, SCHED_IDLE, &sp) < 0)
			setpriority(PRIO_PROCESS, 0, 19);
		/* Never outlive the daemon: a writer left over from a killed
		 * daemon could rename old files over a new daemon's. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		size_t saved, removed;
		char err[512];
		int r = save_all(hs, &saved, &removed, err, sizeof(err));
		if (r < 0)
			log_msg(LOG_ERR, "history_save_failed", "%s", err);
		_exit(r < 0 ? 1 : 0);
	}
	hs->child = pid;
	loop_child_started(hs->loop);
	hs->save_why = why;
	hs->save_probes = n;
	/* The child has its own copy of the retired probes now. */
	free_retired(hs);
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		io_init(&hs->pidfd, fd, on_pidfd, 0);
		if (loop_watch(hs->loop, &hs->pidfd, EPOLLIN) == 0)
			return;
		loop_close(hs->loop, &hs->pidfd);
	}
	loop_timer_arm(hs->loop, &hs->reap_timer, loop_now(hs->loop) + REAP_POLL_NS);
}

void history_svc_save(struct history_svc *hs, const char *why)
{
	save_start(hs, why);
}

static void on_save_timer(struct timer *t)
{
	struct history_svc *hs = container_of(t, struct history_svc, save_timer);
	save_start(hs, "interval");
	if (hs->save_interval_ns)
		loop_timer_arm(hs->loop, t, loop_now(hs->loop) + hs->save_interval_ns);
}

void history_svc_stop(struct history_svc *hs)
{
	loop_timer_cancel(hs->loop, &hs->save_timer);
	tick_all(hs, true);
	/* A background save still running is superseded by the final one:
	 * kill it and wait until it is gone (it must not rename a file this
	 * save is writing), rather than wait for it to finish. */
	hs->save_again = false;
	if (hs->child > 0) {
		hs->save_why = "superseded by the save at stop";
		kill(hs->child, SIGKILL);
	}
	reap(hs, true);
	if (!hs->dir[0] || histories(hs) == 0)
		return;
	uint64_t t0 = mono_ns();
	size_t n, removed;
	char err[512];
	int r = save_all(hs, &n, &removed, err, sizeof(err));
	log_saved(hs, "stop", r == 0, err, n, removed, mono_ns() - t0, false);
	if (r == 0)
		free_retired(hs);
}

/* ---- loading */

static void set_aside(int dirfd, const char *name, const char *what, const char *reason,
		      const char *target, uint8_t family)
{
	char aside[HISTORY_NAME_MAX + 48];
	snprintf(aside, sizeof(aside), "%s.bad-%llu", name,
		 (unsigned long long)(wall_ns() / NSEC_PER_SEC));
	int r = renameat(dirfd, name, dirfd, aside);
	struct logline *l = log_begin(LOG_WARNING, "history_file_set_aside");
	log_str(l, "target", target);
	log_u64(l, "family", family);
	log_str(l, "file", name);
	log_str(l, "problem", what);
	log_str(l, "reason", reason);
	log_str(l, "moved_to", r == 0 ? aside : "(rename failed)");
	log_str(l, "msg", "starting a fresh history for this probe");
	log_end(l);
}

struct load_totals {
	size_t files, rounds, set_aside;
	uint64_t newest_saved_ns;
};

/* Rounds of tier 0 (the finest; the coarser ones are made from them). */
static size_t rounds_of(const struct history *h)
{
	size_t n = 0;
	struct history_round r;
	uint64_t last = h->tier[0].last;
	if (last == HISTORY_NONE)
		return 0;
	for (uint64_t age = 0; age < history_tier_len[0] && age <= last; age++)
		n += history_get(h, 0, last - age, &r);
	return n;
}

static void load_one(struct history_svc *hs, int dirfd, const struct tsetting *s, uint8_t family,
		     struct load_totals *tot)
{
	char name[HISTORY_NAME_MAX + 16];
	file_name(name, sizeof(name), s->name, family);
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			set_aside(dirfd, name, "unreadable", strerror(errno), s->name, family);
		return;
	}
	struct stat st;
	uint8_t *buf = NULL;
	ssize_t len = -1;
	const char *problem = NULL;
	char reason[640] = "";
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		problem = "not a regular file of at most 1 MiB";
	} else if (!(buf = malloc((size_t)st.st_size + 1))) {
		problem = "out of memory";
	} else {
		size_t off = 0;
		while (off < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		len = (ssize_t)off;
	}
	close(fd);
	struct history *h = NULL;
	struct history_ident id;
	if (!problem && history_decode(buf, (size_t)len, true, &h, &id, reason, sizeof(reason)) < 0)
		problem = "corrupt";
	free(buf);
	if (!problem && (strcmp(id.target, s->name) != 0 || id.family != family)) {
		problem = "foreign";
		snprintf(reason, sizeof(reason), "the file is of target %s family %u", id.target, id.family);
	} else if (!problem && strcmp(id.host, s->host) != 0) {
		problem = "foreign";
		snprintf(reason, sizeof(reason), "host %s in the file, %s configured", id.host, s->host);
	} else if (!problem && h->step_ns != s->step_ns) {
		problem = "foreign";
		snprintf(reason, sizeof(reason), "history_step %llu s in the file, %llu s configured",
			 (unsigned long long)(h->step_ns / NSEC_PER_SEC),
			 (unsigned long long)(s->step_ns / NSEC_PER_SEC));
	}
	if (problem) {
		history_free(h);
		set_aside(dirfd, name, problem, reason, s->name, family);
		tot->set_aside++;
		return;
	}
	struct hentry *e = entry_new(hs, s->name, s->host, family);
	struct history *ph = e ? hist_get(hs, 0, h) : NULL;
	history_free(h);
	if (!ph) {
		if (e)
			entry_retire(hs, e);
		return;
	}
	h = ph;
	e->h = h;
	e->gen = hs->gen;
	size_t rounds = rounds_of(h);
	tot->files++;
	tot->rounds += rounds;
	if (id.saved_wall_ns > tot->newest_saved_ns)
		tot->newest_saved_ns = id.saved_wall_ns;
	if (tot->files <= LOAD_LOG_MAX) {
		struct logline *l = log_begin(LOG_INFO, "history_loaded");
		log_str(l, "target", s->name);
		log_u64(l, "family", family);
		log_u64(l, "rounds", rounds);
		uint64_t newest = history_newest(h, 0);
		if (newest != HISTORY_NONE)
			log_u64(l, "newest_round_unix", newest * h->step_ns / NSEC_PER_SEC);
		log_u64(l, "saved_unix", id.saved_wall_ns / NSEC_PER_SEC);
		log_end(l);
	}
}

static void load_missing(struct history_svc *hs)
{
	if (!hs->dir[0])
		return;
	int dirfd = open(hs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		if (errno != ENOENT) {
			struct logline *l = log_begin(LOG_WARNING, "history_dir_unreadable");
			log_str(l, "dir", hs->dir);
			log_str(l, "reason", strerror(errno));
			log_end(l);
		}
		return;
	}
	struct load_totals tot = { 0 };
	uint64_t t0 = mono_ns();
	for (size_t i = 0; i < hs->n_set; i++) {
		const struct tsetting *s = &hs->set[i];
		if (!s->enabled)
			continue;
		for (uint8_t fam = 4; fam <= 6; fam += 2) {
			if ((s->family == FAMILY_4 && fam != 4) || (s->family == FAMILY_6 && fam != 6))
				continue;
			if (!entry_find(hs, s->name, fam))
				load_one(hs, dirfd, s, fam, &tot);
		}
	}
	close(dirfd);
	if (tot.files || tot.set_aside) {
		struct logline *l = log_begin(LOG_NOTICE, "history_load");
		log_str(l, "dir", hs->dir);
		log_u64(l, "files", tot.files);
		log_u64(l, "rounds", tot.rounds);
		log_u64(l, "set_aside", tot.set_aside);
		if (tot.newest_saved_ns)
			log_u64(l, "last_saved_unix", tot.newest_saved_ns / NSEC_PER_SEC);
		log_fixed(l, "took_ms", mono_ns() - t0, NSEC_PER_MSEC, 1);
		log_end(l);
	}
}

/* ---- configuration */

static void settings_free(struct history_svc *hs)
{
	for (size_t i = 0; i < hs->n_set; i++) {
		free(hs->set[i].name);
		free(hs->set[i].host);
	}
	free(hs->set);
	hs->set = NULL;
	hs->n_set = 0;
}

void history_svc_configure(struct history_svc *hs, const struct config *cfg)
{
	/* Only history-enabled targets get a setting: with `history = no`
	 * everywhere the array is one empty element, not 40 B a target. */
	size_t want = 0;
	for (size_t i = 0; i < cfg->n_targets; i++)
		want += cfg->targets[i].opts.history;
	struct tsetting *set = calloc(want ? want : 1, sizeof(*set));
	if (!set) {
		log_msg(LOG_ERR, "history_config_failed", "out of memory: keeping the previous settings");
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_targets; i++) {
		const struct config_target *t = &cfg->targets[i];
		if (!t->opts.history)
			continue;   /* no entry, no setting: nothing kept for it */
		set[n].name = strdup(t->name);
		set[n].host = strdup(t->host);
		if (!set[n].name || !set[n].host) {
			free(set[n].name);
			free(set[n].host);
			continue;
		}
		set[n].enabled = t->opts.history;
		set[n].step_ns = t->opts.history_step_ns;
		set[n].family = t->family;
		n++;
	}
	qsort(set, n, sizeof(*set), cmp_setting);
	settings_free(hs);
	hs->set = set;
	hs->n_set = n;
	hs->gen++;
	/* Loaded histories no probe took up, of targets no longer configured:
	 * saved once more, then left to history_retention. */
	for (struct hentry *e = hs->live.next, *next; e != &hs->live; e = next) {
		next = e->next;
		if (!e->attached && !setting_of(hs, e->target))
			entry_retire(hs, e);
		else if (e->attached && !setting_of(hs, e->target))
			entry_apply(hs, e);   /* history turned off: its outcomes stop, free it now */
	}

	const char *dir = cfg->daemon.state_directory;
	char from_env[sizeof(hs->dir)];
	if (!dir) {
		/* systemd's StateDirectory= (the first, if several). */
		const char *env = getenv("STATE_DIRECTORY");
		if (env && env[0] == '/') {
			snprintf(from_env, sizeof(from_env), "%s", env);
			char *colon = strchr(from_env, ':');
			if (colon)
				*colon = '\0';
			dir = from_env;
		} else {
			dir = "/var/lib/beacond";
		}
	}
	char newdir[sizeof(hs->dir)];
	newdir[0] = '\0';
	size_t dlen = strlen(dir);
	if (dlen && dlen + sizeof("/history") <= sizeof(newdir)) {
		memcpy(newdir, dir, dlen);
		memcpy(newdir + dlen, "/history", sizeof("/history"));
	}
	if (strcmp(newdir, hs->dir) != 0) {
		snprintf(hs->dir, sizeof(hs->dir), "%s", newdir);
		struct logline *l = log_begin(LOG_INFO, "history_dir");
		log_str(l, "dir", hs->dir[0] ? hs->dir : "(none: history not saved)");
		log_end(l);
	}
	hs->retention_ns = cfg->daemon.history_retention_ns;
	if (hs->save_interval_ns != cfg->daemon.save_interval_ns || !timer_armed(&hs->save_timer)) {
		hs->save_interval_ns = cfg->daemon.save_interval_ns;
		loop_timer_cancel(hs->loop, &hs->save_timer);
		if (hs->save_interval_ns)
			loop_timer_arm(hs->loop, &hs->save_timer,
				       loop_now(hs->loop) + hs->save_interval_ns);
	}
	load_missing(hs);
}

/* ---- pages */

struct bytes_stream {
	struct stream s;
	const char *p;
	size_t len, off;
};

static ssize_t bytes_fill(struct stream *s, char *buf, size_t cap)
{
	struct bytes_stream *b = container_of(s, struct bytes_stream, s);
	size_t n = b->len - b->off < cap ? b->len - b->off : cap;
	memcpy(buf, b->p + b->off, n);
	b->off += n;
	return (ssize_t)n;
}

static void bytes_free(struct stream *s)
{
	free(container_of(s, struct bytes_stream, s));
}

static struct stream *static_stream(const char *p, size_t len)
{
	struct bytes_stream *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->s.fill = bytes_fill;
	b->s.free = bytes_free;
	b->p = p;
	b->len = len;
	return &b->s;
}

struct walk {
	struct history_svc *hs;
	struct view_cursor c;
};

static void walk_begin(void *arg)
{
	struct walk *w = arg;
	pinger_view_begin(w->hs->pinger, &w->c);
}

static bool walk_next(void *arg, struct view_probe *out)
{
	struct walk *w = arg;
	return pinger_view_next(w->hs->pinger, &w->c, out);
}

static const struct history *walk_history(void *arg, const struct view_probe *p)
{
	struct walk *w = arg;
	const struct hentry *e = entry_find(w->hs, p->target, p->family);
	return e ? e->h : NULL;
}

static unsigned arg_uint(const char *s, unsigned max)
{
	if (!s || !*s)
		return 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	return *end || v > max ? 0 : (unsigned)v;
}

static int page_overview(void *arg, const struct web_request *req, struct web_reply *reply)
{
	struct history_svc *hs = arg;
	/* The walk state lives as long as the stream (freed by its release). */
	struct walk *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->hs = hs;
	struct render_source src = { walk_begin, walk_next, walk_history, free, w };
	const char *q = web_request_arg(req, "q");
	struct stream *s = render_overview_new(&src, q && strlen(q) <= 64 ? q : NULL,
					       arg_uint(web_request_arg(req, "page"), 100000),
					       wall_ns());
	if (!s) {
		free(w);
		return -1;
	}
	reply->content_type = "text/html; charset=utf-8";
	reply->csp = RENDER_CSP_PAGE;
	reply->body = s;
	return 0;
}

static const struct history *history_of(const struct history_svc *hs, const struct view_probe *p)
{
	const struct hentry *e = entry_find(hs, p->target, p->family);
	return e ? e->h : NULL;
}

bool history_svc_lookup(const struct history_svc *hs, const char *target, uint8_t family,
			const struct history **out)
{
	const struct tsetting *s = setting_of(hs, target);
	*out = NULL;
	if (!s || !s->enabled)
		return false;   /* an entry may still hold one until its next outcome */
	const struct hentry *e = entry_find(hs, target, family);
	*out = e ? e->h : NULL;
	return true;
}

static uint64_t step_of(const struct history_svc *hs, const char *target)
{
	const struct tsetting *s = setting_of(hs, target);
	return s ? s->step_ns : HISTORY_STEP_DEFAULT_NS;
}

static int page_target(void *arg, const struct web_request *req, struct web_reply *reply)
{
	struct history_svc *hs = arg;
	const char *name = req->path + strlen("/target/");
	struct view_probe p[2];
	size_t n = pinger_view_target(hs->pinger, name, p, 2);
	if (n > 2)
		n = 2;
	const struct history *h[2] = { NULL, NULL };
	for (size_t i = 0; i < n; i++)
		h[i] = history_of(hs, &p[i]);
	reply->body = render_target_new(p, h, n, step_of(hs, name), wall_ns());
	reply->status = n ? 200 : 404;
	reply->content_type = "text/html; charset=utf-8";
	reply->csp = RENDER_CSP_PAGE;
	return reply->body ? 0 : -1;
}

/* The probe of `name` with family `fam` (0: the first). */
static bool find_probe(struct history_svc *hs, const char *name, unsigned fam, struct view_probe *out)
{
	struct view_probe p[2];
	size_t n = pinger_view_target(hs->pinger, name, p, 2);
	for (size_t i = 0; i < n && i < 2; i++)
		if (fam == 0 || p[i].family == fam) {
			*out = p[i];
			return true;
		}
	return false;
}

static struct stream *graph_stream(struct history_svc *hs, const char *name, unsigned fam,
				   const char *range, bool *found, bool *bad_range)
{
	struct view_probe p = { 0 };
	*found = find_probe(hs, name, fam, &p);
	*bad_range = false;
	if (!*found)
		return NULL;
	const struct history *h = history_of(hs, &p);
	struct render_graph_args a = { .target = p.target, .host = p.host, .family = p.family,
				       .now_wall_ns = wall_ns() };
	if (render_range_parse(range ? range : "3h", h ? h->step_ns : step_of(hs, name), &a.range) < 0) {
		*bad_range = true;
		return NULL;
	}
	return render_graph_new(h, &a);
}

static int page_graph(void *arg, const struct web_request *req, struct web_reply *reply)
{
	struct history_svc *hs = arg;
	char name[NAME_MAX_ + 8];
	const char *base = req->path + strlen("/graph/");
	size_t len = strlen(base);
	if (len < 5 || len - 4 >= sizeof(name) || strcmp(base + len - 4, ".svg") != 0) {
		reply->status = 404;
		return 0;
	}
	memcpy(name, base, len - 4);
	name[len - 4] = '\0';
	bool found, bad_range;
	reply->body = graph_stream(hs, name, arg_uint(web_request_arg(req, "family"), 6),
				   web_request_arg(req, "range"), &found, &bad_range);
	if (!reply->body) {
		reply->status = !found ? 404 : bad_range ? 400 : 500;
		return 0;
	}
	reply->content_type = "image/svg+xml";
	reply->csp = RENDER_CSP_SVG;
	return 0;
}

static int page_css(void *arg, const struct web_request *req, struct web_reply *reply)
{
	(void)arg;
	(void)req;
	reply->body = static_stream(render_css, strlen(render_css));
	reply->content_type = "text/css; charset=utf-8";
	reply->csp = RENDER_CSP_PAGE;
	return reply->body ? 0 : -1;
}

/* ---- control commands */

/* Options: --range=R (or --range R), --family=F, -j (accepted: the reply
 * is always JSON; beaconctl decides how to print). */
struct cmd_opts {
	const char *name, *range;
	unsigned family;
};

static bool parse_cmd(const struct ctl_req *req, struct cmd_opts *o, struct ctl_refusal *why)
{
	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < req->argc; i++) {
		const char *a = req->argv[i];
		if (strncmp(a, "--range=", 8) == 0)
			o->range = a + 8;
		else if (strcmp(a, "--range") == 0 && i + 1 < req->argc)
			o->range = req->argv[++i];
		else if (strncmp(a, "--family=", 9) == 0)
			o->family = arg_uint(a + 9, 6);
		else if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0)
			continue;
		else if (a[0] != '-' && !o->name)
			o->name = a;
		else {
			why->code = "usage";
			snprintf(why->msg, sizeof(why->msg), "unexpected argument \"%s\"", a);
			return false;
		}
	}
	if (!o->name) {
		why->code = "usage";
		snprintf(why->msg, sizeof(why->msg), "which target?");
		return false;
	}
	return true;
}

/* `history NAME`: a header line, one line per round of the range, an end line. */
struct hist_reply {
	struct stream s;
	struct jw w;
	char target[NAME_MAX_ + 1], host[HISTORY_NAME_MAX + 1];
	uint8_t family;
	uint64_t slot_ns, first;
	unsigned tier;
	uint32_t n, i, rounds;
	bool head_done, end_done;
	struct history_round *r;   /* copied when the command ran */
};

static ssize_t hist_fill(struct stream *s, char *buf, size_t cap)
{
	struct hist_reply *h = container_of(s, struct hist_reply, s);
	size_t len = 0;
	for (;;) {
		struct jw *w = &h->w;
		jw_init(w, buf + len, cap - len);
		if (!h->head_done) {
			jw_obj_begin(w);
			jw_kbool(w, "ok", true);
			jw_ku64(w, "version", CTL_PROTO_VERSION);
			jw_kstr(w, "reply", "history");
			jw_kstr(w, "target", h->target);
			jw_kstr(w, "host", h->host);
			jw_ku64(w, "family", h->family);
			jw_ku64(w, "tier", h->tier);
			jw_kfixed(w, "step_s", h->slot_ns, NSEC_PER_SEC, 3);
			jw_ku64(w, "first_unix", h->first * h->slot_ns / NSEC_PER_SEC);
			jw_ku64(w, "slots", h->n);
			jw_key(w, "quantile_pct");
			jw_arr_begin(w);
			for (unsigned q = 0; q < HISTORY_Q; q++)
				jw_u64(w, q * 10);
			jw_arr_end(w);
			jw_obj_end(w);
			jw_newline(w);
			if (!jw_ok(w))
				break;
			h->head_done = true;
		} else if (h->i < h->n) {
			const struct history_round *r = &h->r[h->i];
			uint32_t sent = history_round_sent(r), lost = history_round_lost(r);
			if (sent == 0) {
				h->i++;
				continue;
			}
			jw_obj_begin(w);
			jw_ku64(w, "start", (h->first + h->i) * h->slot_ns / NSEC_PER_SEC);
			jw_kfixed(w, "step", h->slot_ns, NSEC_PER_SEC, 3);
			jw_ku64(w, "sent", sent);
			jw_ku64(w, "lost", lost);
			jw_key(w, "quantiles_ms");
			if (sent == lost) {
				jw_null(w);
			} else {
				jw_arr_begin(w);
				for (unsigned q = 0; q < HISTORY_Q; q++)
					jw_fixed(w, history_rtt_decode(r->q[q]), NSEC_PER_MSEC, 3);
				jw_arr_end(w);
			}
			jw_obj_end(w);
			jw_newline(w);
			if (!jw_ok(w))
				break;
			h->i++;
			h->rounds++;
		} else if (!h->end_done) {
			jw_obj_begin(w);
			jw_kbool(w, "end", true);
			jw_ku64(w, "rounds", h->rounds);
			jw_obj_end(w);
			jw_newline(w);
			if (!jw_ok(w))
				break;
			h->end_done = true;
		} else {
			break;
		}
		len += w->len;
	}
	return (ssize_t)len;
}

static void hist_free(struct stream *s)
{
	struct hist_reply *h = container_of(s, struct hist_reply, s);
	free(h->r);
	free(h);
}

static bool cmd_probe(struct history_svc *hs, const struct cmd_opts *o, struct view_probe *p,
		      const struct history **h, struct ctl_refusal *why)
{
	if (!find_probe(hs, o->name, o->family, p)) {
		why->code = "not_found";
		snprintf(why->msg, sizeof(why->msg), "no target %s%s", o->name,
			 o->family ? " of that family" : "");
		return false;
	}
	*h = history_of(hs, p);
	return true;
}

static struct stream *cmd_history(void *arg, const struct ctl_peer *peer,
				  const struct ctl_req *req, struct ctl_refusal *why)
{
	struct history_svc *hs = arg;
	struct cmd_opts o;
	struct view_probe p = { 0 };
	const struct history *h;
	(void)peer;
	if (!parse_cmd(req, &o, why) || !cmd_probe(hs, &o, &p, &h, why))
		return NULL;
	uint64_t step = h ? h->step_ns : step_of(hs, o.name);
	struct render_range range;
	if (render_range_parse(o.range ? o.range : "3h", step, &range) < 0) {
		why->code = "usage";
		snprintf(why->msg, sizeof(why->msg), "--range: \"%s\" is not a duration (3h, 30h, 10d, 90s)",
			 o.range);
		return NULL;
	}
	struct hist_reply *r = calloc(1, sizeof(*r));
	if (!r || !(r->r = calloc(range.slots, sizeof(*r->r)))) {
		free(r);
		why->code = "failed";
		snprintf(why->msg, sizeof(why->msg), "out of memory");
		return NULL;
	}
	r->s.fill = hist_fill;
	r->s.free = hist_free;
	snprintf(r->target, sizeof(r->target), "%s", p.target);
	snprintf(r->host, sizeof(r->host), "%s", p.host ? p.host : "");
	r->family = p.family;
	r->tier = range.tier;
	r->n = range.slots;
	r->slot_ns = step * history_tier_ratio[range.tier];
	uint64_t end = wall_ns() / r->slot_ns;
	uint64_t newest = h ? history_newest(h, range.tier) : HISTORY_NONE;
	if (newest != HISTORY_NONE && newest > end)
		end = newest;
	r->first = end + 1 >= r->n ? end + 1 - r->n : 0;
	if (h)
		for (uint32_t j = 0; j < r->n; j++)
			if (!history_get(h, range.tier, r->first + j, &r->r[j]))
				memset(&r->r[j], 0, sizeof(r->r[j]));
	return &r->s;
}

/* `graph NAME`: a header line, then the SVG in {"data":"..."} lines. */
struct graph_reply {
	struct stream s;
	struct stream *svg;
	bool head_done, end_done, svg_done;
	char chunk[1024];
};

static ssize_t graph_reply_fill(struct stream *s, char *buf, size_t cap)
{
	struct graph_reply *g = container_of(s, struct graph_reply, s);
	size_t len = 0;
	for (;;) {
		struct jw w;
		jw_init(&w, buf + len, cap - len);
		if (!g->head_done) {
			jw_obj_begin(&w);
			jw_kbool(&w, "ok", true);
			jw_ku64(&w, "version", CTL_PROTO_VERSION);
			jw_kstr(&w, "reply", "graph");
			jw_kstr(&w, "content_type", "image/svg+xml");
			jw_obj_end(&w);
			jw_newline(&w);
			if (!jw_ok(&w))
				break;
			g->head_done = true;
			len += w.len;
			continue;
		}
		if (!g->svg_done) {
			/* 1 KiB of SVG escapes to at most 6 KiB of JSON: only
			 * take a piece when that much room is left. */
			if (cap - len < 6 * sizeof(g->chunk) + 32)
				break;
			ssize_t n = g->svg->fill(g->svg, g->chunk, sizeof(g->chunk));
			if (n < 0)
				return len ? (ssize_t)len : -1;
			if (n == 0) {
				g->svg_done = true;
				continue;
			}
			jw_obj_begin(&w);
			jw_key(&w, "data");
			jw_strn(&w, g->chunk, (size_t)n);
			jw_obj_end(&w);
			jw_newline(&w);
			if (!jw_ok(&w))
				return -1;
			len += w.len;
			continue;
		}
		if (!g->end_done) {
			jw_obj_begin(&w);
			jw_kbool(&w, "end", true);
			jw_obj_end(&w);
			jw_newline(&w);
			if (!jw_ok(&w))
				break;
			g->end_done = true;
			len += w.len;
			continue;
		}
		break;
	}
	return (ssize_t)len;
}

static void graph_reply_free(struct stream *s)
{
	struct graph_reply *g = container_of(s, struct graph_reply, s);
	if (g->svg->free)
		g->svg->free(g->svg);
	free(g);
}

static struct stream *cmd_graph(void *arg, const struct ctl_peer *peer,
				const struct ctl_req *req, struct ctl_refusal *why)
{
	struct history_svc *hs = arg;
	struct cmd_opts o;
	(void)peer;
	if (!parse_cmd(req, &o, why))
		return NULL;
	bool found, bad_range;
	struct stream *svg = graph_stream(hs, o.name, o.family, o.range, &found, &bad_range);
	if (!svg) {
		why->code = !found ? "not_found" : bad_range ? "usage" : "failed";
		snprintf(why->msg, sizeof(why->msg), !found ? "no target %s" :
			 bad_range ? "--range: not a duration (3h, 30h, 10d, 90s)" : "out of memory",
			 o.name);
		return NULL;
	}
	struct graph_reply *g = calloc(1, sizeof(*g));
	if (!g) {
		if (svg->free)
			svg->free(svg);
		why->code = "failed";
		snprintf(why->msg, sizeof(why->msg), "out of memory");
		return NULL;
	}
	g->s.fill = graph_reply_fill;
	g->s.free = graph_reply_free;
	g->svg = svg;
	return &g->s;
}

/* ---- lifetime */

struct history_svc *history_svc_new(struct loop *loop, struct pinger *p)
{
	struct history_svc *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return NULL;
	hs->loop = loop;
	hs->pinger = p;
	pool_init(&hs->heads, history_head_size());
	pool_init(&hs->rounds, history_rounds_size());
	hs->live.next = hs->live.prev = &hs->live;
	hs->retired.next = hs->retired.prev = &hs->retired;
	io_init(&hs->pidfd, -1, on_pidfd, 0);
	timer_init(&hs->save_timer, on_save_timer);
	timer_init(&hs->reap_timer, on_reap_timer);
	struct pinger_hooks hooks = { .on_outcome = on_outcome, .on_state = on_state,
				      .on_gone = on_gone, .arg = hs };
	pinger_set_hooks(p, &hooks);
	return hs;
}

int history_svc_register(struct history_svc *hs, struct web *w, struct ctl *c)
{
	if (w && (web_route(w, "/", false, page_overview, hs) < 0 ||
		  web_route(w, "/target/", true, page_target, hs) < 0 ||
		  web_route(w, "/graph/", true, page_graph, hs) < 0 ||
		  web_route(w, "/style.css", false, page_css, hs) < 0))
		return -1;
	if (c && (ctl_register(c, &(struct ctl_command){
			  .name = "history", .min_args = 1, .max_args = 4,
			  .usage = "history NAME [--range=3h|30h|10d|DURATION] [--family=4|6]",
			  .help = "a target's history rounds: start, step, sent, lost, RTT quantiles",
			  .open = cmd_history, .arg = hs }) < 0 ||
		  ctl_register(c, &(struct ctl_command){
			  .name = "graph", .min_args = 1, .max_args = 4,
			  .usage = "graph NAME [--range=3h|30h|10d|DURATION] [--family=4|6]",
			  .help = "a target's SmokePing-style graph as SVG",
			  .open = cmd_graph, .arg = hs }) < 0))
		return -1;
	return 0;
}

void history_svc_free(struct history_svc *hs)
{
	if (!hs)
		return;
	if (hs->child > 0)
		reap(hs, true);
	loop_timer_cancel(hs->loop, &hs->save_timer);
	loop_timer_cancel(hs->loop, &hs->reap_timer);
	while (hs->live.next != &hs->live) {
		struct hentry *e = hs->live.next;
		list_remove(e);
		entry_free(hs, e);
	}
	free_retired(hs);
	pool_fini(&hs->heads);
	pool_fini(&hs->rounds);
	free(hs->buckets);
	settings_free(hs);
	free(hs);
}
