/* metrics: the /metrics page (see metrics.h). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "metrics.h"
#include "util.h"
#include "view.h"

struct metrics_page {
	const struct daemon *d;
	const struct web *w;
};

void metrics_read_proc(struct metrics_proc *out)
{
	memset(out, 0, sizeof *out);

	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			/* The command name may hold spaces and parentheses: the
			 * fields start after the last ')'.  Field 3 is the state;
			 * utime and stime are 14 and 15, rss 24. */
			char *p = strrchr(buf, ')');
			unsigned long long v[22] = { 0 };
			int got = 0;
			if (p) {
				p++;
				char *tok, *save = NULL;
				for (tok = strtok_r(p, " ", &save); tok && got < 22;
				     tok = strtok_r(NULL, " ", &save))
					v[got++] = strtoull(tok, NULL, 10);
			}
			long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
			/* v[0] is field 3. */
			if (got >= 22 && tick > 0) {
				out->cpu_ns = (v[11] + v[12]) * (NSEC_PER_SEC / (uint64_t)tick);
				out->have_cpu = true;
			}
			if (got >= 22 && page > 0) {
				out->rss_bytes = v[21] * (uint64_t)page;
				out->have_rss = true;
			}
		}
	}

	DIR *dir = opendir("/proc/self/fd");
	if (dir) {
		uint64_t count = 0;
		struct dirent *e;
		while ((e = readdir(dir)) != NULL)
			if (e->d_name[0] != '.')
				count++;
		closedir(dir);
		out->open_fds = count > 0 ? count - 1 : 0;  /* not the DIR's own fd */
		out->have_fds = true;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		out->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
		out->have_max_fds = true;
	}
}

static void src_daemon(void *arg, struct view_daemon *out)
{
	struct metrics_page *mp = arg;
	daemon_view(mp->d, out);
}

static const struct pinger *pinger_of(const struct metrics_page *mp)
{
	struct view_daemon vd;
	daemon_view(mp->d, &vd);
	return vd.pinger;
}

static void src_global(void *arg, struct view_pinger *out)
{
	pinger_view_global(pinger_of(arg), out);
}

static void src_begin(void *arg, struct view_cursor *c)
{
	pinger_view_begin(pinger_of(arg), c);
}

static bool src_next(void *arg, struct view_cursor *c, struct view_probe *out)
{
	return pinger_view_next(pinger_of(arg), c, out);
}

static const struct web_counters *src_web(void *arg)
{
	struct metrics_page *mp = arg;
	return web_counters(mp->w);
}

static int metrics_page_fn(void *arg, const struct web_request *req,
			   struct web_reply *reply)
{
	struct metrics_page *mp = arg;
	struct metrics_proc proc;
	(void)req;

	metrics_read_proc(&proc);
	bool pinger = pinger_of(mp) != NULL;
	struct metrics_source src = {
		.arg = mp,
		.daemon = src_daemon,
		.global = pinger ? src_global : NULL,
		.begin = pinger ? src_begin : NULL,
		.next = pinger ? src_next : NULL,
		.web = src_web,
	};
	reply->content_type = METRICS_CONTENT_TYPE;
	reply->body = metrics_stream_new(&src, &proc);
	return reply->body ? 0 : -1;
}

int metrics_register(struct web *w, const struct daemon *d)
{
	/* Lives as long as the process: routes are never removed. */
	static struct metrics_page page;
	page.d = d;
	page.w = w;
	return web_route(w, "/metrics", false, metrics_page_fn, &page);
}
