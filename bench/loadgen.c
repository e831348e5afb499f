/*
 * loadgen: the load generator of beacond's benchmark (bench/run drives it).
 *
 * One single-threaded epoll loop, so it can be pinned to one CPU while the
 * server under test is pinned to another.  Every mode checks every byte it
 * gets back: message m of connection (or socket) c carries a small header
 * naming c and m, followed by a slice of a pseudo-random pattern whose start
 * depends on (c, m).  A reordered, duplicated, merged, truncated or foreign
 * byte shows up as a mismatch.
 *
 * Modes
 *   tcp-echo   N connections x P messages in flight x S bytes (pipelined);
 *              with N = P = 1 it is the latency test.
 *   tcp-churn  W workers, each: connect, one message, verify, close, again.
 *   tcp-idle   open N connections (spread over source addresses 127.0.0.2..
 *              with --sources), echo one message on each, hold them idle,
 *              then check every one still echoes.  With --pid it reports the
 *              server's memory growth per connection.
 *   udp-echo   K connected sockets sharing P datagrams in flight (S bytes);
 *              with K = P = 1 it is the latency test.  Datagrams that do not
 *              come back within --loss-ms are counted lost.
 *   tcp-ab, udp-ab  latency of two servers (--port, --port2) measured
 *              together: one message in flight, alternating between them.
 *
 * The figures are taken over a window that starts --warmup seconds after
 * every connection is up and lasts --seconds.  With --pid PID the CPU time
 * (utime + stime) of the server process and all its descendants is read
 * from /proc at both ends of the window; descendants that exited and were
 * reaped during the window are included through their parent's cutime and
 * cstime, so forking servers (socat fork, xinetd) are measured fairly.
 *
 * The result is one line of key=value pairs on stdout; diagnostics go to
 * stderr.  Exit status 0 when nothing failed, 1 otherwise.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MSG_MAX (64 * 1024)
#define PAT_MASK 0xffffu
#define RX_BUF_SIZE (256 * 1024)
#define MAX_EVENTS 512
#define UDP_BATCH 64
#define UDP_HDR 16
#define TCP_HDR 8

/* ---- options ------------------------------------------------------------ */

enum mode { MODE_TCP_ECHO, MODE_TCP_CHURN, MODE_TCP_IDLE, MODE_UDP_ECHO, MODE_TCP_AB,
	    MODE_UDP_AB };

struct opts {
	enum mode mode;
	const char *mode_name;
	const char *label;
	struct sockaddr_in dst;
	unsigned port2;
	unsigned conns;
	unsigned inflight;
	unsigned size;
	unsigned workers;
	unsigned sources;
	unsigned sockets;
	double seconds;
	double warmup;
	double settle;
	unsigned loss_ms;
	unsigned max_connecting;
	double connect_timeout;
	pid_t pid;
};

static struct opts opt = {
	.label = "-",
	.conns = 1,
	.inflight = 1,
	.size = 64,
	.workers = 8,
	.sockets = 1,
	.seconds = 5.0,
	.warmup = 1.0,
	.settle = 1.0,
	.loss_ms = 500,
	.max_connecting = 256,
	.connect_timeout = 60.0,
};

/* ---- time --------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t sec_to_ns(double s)
{
	return (uint64_t)(s * 1e9);
}

/* ---- latency histogram ---------------------------------------------------
 * Log-linear buckets: exact below 128 ns, then 64 sub-buckets per power of
 * two (under 1.6 % relative error), enough to compare p99s within 10 %. */

#define HIST_SUB 64u
#define HIST_BUCKETS (128u + 57u * HIST_SUB)

struct hist {
	uint64_t n;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

static unsigned hist_bucket(uint64_t v)
{
	unsigned msb, shift;

	if (v < 128)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - 6u;
	return 128u + (shift - 1u) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static double hist_bucket_mid(unsigned i)
{
	unsigned shift;
	uint64_t sub;

	if (i < 128)
		return (double)i;
	shift = (i - 128u) / HIST_SUB + 1u;
	sub = (i - 128u) % HIST_SUB + HIST_SUB;
	return ((double)(sub << shift) + (double)((sub + 1) << shift)) / 2.0;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_bucket(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

/* The q-quantile in microseconds, or -1 without samples. */
static double hist_quantile_us(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->n == 0)
		return -1.0;
	want = (uint64_t)(q * (double)h->n);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want)
			return hist_bucket_mid(i) / 1000.0;
	}
	return (double)h->max / 1000.0;
}

/* ---- payload pattern -----------------------------------------------------
 * A message is identified by a short header; the rest is pat[start + off],
 * where start depends on the header too.  pat is long enough that a slice
 * of MSG_MAX bytes from any start stays inside it. */

static uint8_t pat[PAT_MASK + 1 + MSG_MAX];

struct msg_id {
	uint8_t hdr[UDP_HDR];
	size_t hlen;
	uint32_t start;
};

static void pat_init(void)
{
	uint64_t x = 0x2545F4914F6CDD1Dull;

	for (size_t i = 0; i < sizeof(pat); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pat[i] = (uint8_t)(x >> 24);
	}
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t pat_start(uint64_t a, uint64_t b)
{
	uint64_t h = (a + 1) * 0xC2B2AE3D27D4EB4Full ^ (b + 7) * 0x9E3779B97F4A7C15ull;

	return (uint32_t)(h >> 40) & PAT_MASK;
}

/* TCP: 4 bytes connection id, 4 bytes message number (mod 2^32). */
static void msg_id_tcp(struct msg_id *m, uint32_t conn, uint64_t seq)
{
	put_le(m->hdr, conn, 4);
	put_le(m->hdr + 4, seq, 4);
	m->hlen = TCP_HDR;
	m->start = pat_start(conn, seq);
}

/* UDP: 4 bytes socket id, 4 bytes slot, 8 bytes sequence number. */
static void msg_id_udp(struct msg_id *m, uint32_t sock, uint32_t slot, uint64_t seq)
{
	put_le(m->hdr, sock, 4);
	put_le(m->hdr + 4, slot, 4);
	put_le(m->hdr + 8, seq, 8);
	m->hlen = UDP_HDR;
	m->start = pat_start((uint64_t)sock << 32 | slot, seq);
}

/* Bytes [off, off + n) of message m into dst. */
static void msg_fill(const struct msg_id *m, size_t off, uint8_t *dst, size_t n)
{
	while (n > 0 && off < m->hlen) {
		*dst++ = m->hdr[off++];
		n--;
	}
	if (n > 0)
		memcpy(dst, pat + m->start + off, n);
}

/* Whether src holds bytes [off, off + n) of message m. */
static bool msg_check(const struct msg_id *m, size_t off, const uint8_t *src, size_t n)
{
	while (n > 0 && off < m->hlen) {
		if (*src++ != m->hdr[off++])
			return false;
		n--;
	}
	return n == 0 || memcmp(src, pat + m->start + off, n) == 0;
}

/* ---- the server's CPU time and memory from /proc ------------------------- */

struct proc_sample {
	bool ok;
	unsigned nproc;
	uint64_t run_ns;   /* CPU time of live threads plus reaped children */
	uint64_t ticks;    /* utime + stime + cutime + cstime, in clock ticks */
	uint64_t rss_kb;
	uint64_t pss_kb;
};

static long clk_tck;
static long page_kb;

static bool read_small_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t used = 0;

	if (fd < 0)
		return false;
	while (used < len - 1) {
		ssize_t n = read(fd, buf + used, len - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return false;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	buf[used] = '\0';
	return true;
}

/*
 * Why not only utime + stime from /proc/PID/stat: they are whole clock ticks
 * (10 ms) per process, so 64 forked echo children that each ran 8 ms add up
 * to 0.  The scheduler's per-thread run time in /proc/PID/task/TID/schedstat
 * is the same quantity (utime + stime are scaled to sum to it) in ns.
 * Children that exited and were reaped are only in the parent's cutime and
 * cstime; those are summed in ns inside the kernel and rounded once.
 */
static void proc_sample_one(pid_t pid, bool want_pss, struct proc_sample *s, unsigned depth)
{
	char path[96], buf[4096];
	const char *p;
	unsigned long long ut, st, size, resident;
	long long cut, cst;
	DIR *tasks;
	struct dirent *de;
	/* Room for a child list of 20 000 forked servers. */
	const size_t kids_len = 256 * 1024;
	char *kids;
	size_t kids_used = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!read_small_file(path, buf, sizeof(buf)))
		return;  /* exited and reaped meanwhile: its parent counts it */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
				&ut, &st, &cut, &cst) != 4)
		return;
	s->ticks += ut + st + (unsigned long long)cut + (unsigned long long)cst;
	s->run_ns += (uint64_t)(cut + cst) * (1000000000u / (uint64_t)clk_tck);
	s->nproc++;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	if (read_small_file(path, buf, sizeof(buf)) &&
	    sscanf(buf, "%llu %llu", &size, &resident) == 2)
		s->rss_kb += resident * (unsigned long long)page_kb;
	if (want_pss) {
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
		if (read_small_file(path, buf, sizeof(buf)) && (p = strstr(buf, "\nPss:")) != NULL)
			s->pss_kb += strtoull(p + 5, NULL, 10);
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	tasks = opendir(path);
	if (tasks == NULL)
		return;
	kids = malloc(kids_len);
	while ((de = readdir(tasks)) != NULL) {
		int tid = atoi(de->d_name);

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, tid);
		if (read_small_file(path, buf, sizeof(buf)))
			s->run_ns += strtoull(buf, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, tid);
		if (depth < 8 && kids != NULL && kids_used + 2 < kids_len &&
		    read_small_file(path, kids + kids_used, kids_len - kids_used - 1)) {
			kids_used += strlen(kids + kids_used);
			kids[kids_used++] = ' ';
			kids[kids_used] = '\0';
		}
	}
	closedir(tasks);
	if (kids != NULL && kids_used > 0) {
		char *save = NULL;

		for (char *tok = strtok_r(kids, " \n", &save); tok != NULL;
		     tok = strtok_r(NULL, " \n", &save))
			proc_sample_one((pid_t)atoi(tok), want_pss, s, depth + 1);
	}
	free(kids);
}

static void proc_sample(struct proc_sample *s, bool want_pss)
{
	memset(s, 0, sizeof(*s));
	if (opt.pid <= 0)
		return;
	proc_sample_one(opt.pid, want_pss, s, 0);
	s->ok = s->nproc > 0;
}

/* ---- measuring window ---------------------------------------------------- */

enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DONE };

static struct {
	enum phase phase;
	uint64_t warm_end;       /* when measuring starts */
	uint64_t t0, t1;         /* actual window ends */
	struct proc_sample cpu0, cpu1;
} win;

static void window_start_warmup(uint64_t now)
{
	win.phase = PH_WARMUP;
	win.warm_end = now + sec_to_ns(opt.warmup);
}

/* Advance the phase; returns true while the load should go on. */
static bool window_poll(uint64_t now)
{
	if (win.phase == PH_WARMUP && now >= win.warm_end) {
		proc_sample(&win.cpu0, false);
		win.t0 = mono_ns();
		win.phase = PH_MEASURE;
	} else if (win.phase == PH_MEASURE && now >= win.t0 + sec_to_ns(opt.seconds)) {
		win.t1 = mono_ns();
		proc_sample(&win.cpu1, false);
		win.phase = PH_DONE;
	}
	return win.phase != PH_DONE;
}

static bool measuring(void)
{
	return win.phase == PH_MEASURE;
}

/* epoll_wait timeout: wake for the next phase change, at most cap_ms away. */
static int window_timeout_ms(uint64_t now, int cap_ms)
{
	uint64_t next;
	int64_t ms;

	if (win.phase == PH_WARMUP)
		next = win.warm_end;
	else if (win.phase == PH_MEASURE)
		next = win.t0 + sec_to_ns(opt.seconds);
	else
		return cap_ms;
	ms = next > now ? (int64_t)((next - now + 999999) / 1000000) : 0;
	return ms < cap_ms ? (int)ms : cap_ms;
}

static double window_seconds(void)
{
	return (double)(win.t1 - win.t0) / 1e9;
}

/* Server CPU seconds over the window, or -1 when not measured. */
static double window_cpu_s(void)
{
	if (!win.cpu0.ok || !win.cpu1.ok || win.cpu1.run_ns < win.cpu0.run_ns)
		return -1.0;
	return (double)(win.cpu1.run_ns - win.cpu0.run_ns) / 1e9;
}

/* The same from utime + stime alone (whole ticks per process). */
static double window_cpu_ticks_s(void)
{
	if (!win.cpu0.ok || !win.cpu1.ok)
		return -1.0;
	return ((double)win.cpu1.ticks - (double)win.cpu0.ticks) / (double)clk_tck;
}

static void print_per_cpu(const char *key, double work, double cpu_s)
{
	if (cpu_s > 0)
		printf(" %s=%.0f", key, work / cpu_s);
	else
		printf(" %s=na", key);
}

static void print_common(void)
{
	double cpu = window_cpu_s();

	printf("mode=%s label=%s", opt.mode_name, opt.label);
	if (win.phase == PH_DONE) {
		printf(" seconds=%.3f", window_seconds());
		if (cpu >= 0)
			printf(" srv_cpu_s=%.3f srv_cpu_ticks_s=%.2f srv_cpu_pct=%.1f srv_procs=%u", cpu,
			       window_cpu_ticks_s(), 100.0 * cpu / window_seconds(), win.cpu1.nproc);
	}
}

/* ---- common socket helpers ----------------------------------------------- */

static int epfd;

static void watch(int fd, uint32_t events, void *ptr, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	if (epoll_ctl(epfd, op, fd, &ev) < 0) {
		perror("loadgen: epoll_ctl");
		exit(1);
	}
}

/* Start a nonblocking connect, from source address number src when
 * --sources is set.  Returns the fd or -1 with errno. */
static int tcp_connect_start(unsigned src)
{
	static const int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (opt.sources > 0) {
		/* The port is chosen at connect() time from the whole 4-tuple,
		 * so each source address has its own ephemeral port range. */
		struct sockaddr_in sin = { .sin_family = AF_INET };

		sin.sin_addr.s_addr = htonl(0x7f000002u + src % opt.sources);
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			goto fail;
	}
	if (connect(fd, (const struct sockaddr *)&opt.dst, sizeof(opt.dst)) < 0 &&
	    errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	{
		int e = errno;

		close(fd);
		errno = e;
	}
	return -1;
}

static int socket_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static uint8_t rx_buf[RX_BUF_SIZE];
static uint8_t *tx_buf;
static size_t tx_buf_len;

/* Counters shared by the modes. */
static struct {
	uint64_t work;         /* messages, connections or datagrams in the window */
	uint64_t bytes;        /* payload bytes echoed in the window */
	uint64_t errors;       /* connect failures, resets, early EOFs, timeouts */
	uint64_t mismatches;   /* bytes or datagrams that were not what was sent */
	struct hist lat;
} ctr;

static unsigned long error_reports;

static void report_error(const char *what, int err)
{
	/* Say what went wrong, but do not flood stderr. */
	if (error_reports++ < 5)
		fprintf(stderr, "loadgen: %s: %s\n", what, strerror(err));
}

/* ---- tcp-echo -------------------------------------------------------------- */

struct tconn {
	int fd;
	uint32_t id;
	bool connected;
	bool dead;
	bool out_armed;
	uint32_t tx_off;     /* bytes of message tx_seq already sent */
	uint32_t rx_off;     /* bytes of message rx_seq already received */
	uint64_t tx_seq;     /* message being sent */
	uint64_t rx_seq;     /* message being received */
	uint64_t *sent_ns;   /* send time of message m at [m % inflight] */
};

static struct tconn *tconns;
static unsigned n_connected, n_dead, n_connecting;

static void tconn_kill(struct tconn *c, const char *why, int err)
{
	if (c->dead)
		return;
	if (err != 0)
		report_error(why, err);
	else if (error_reports++ < 5)
		fprintf(stderr, "loadgen: conn %u: %s\n", c->id, why);
	ctr.errors++;
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	n_dead++;
}

static void tconn_arm_out(struct tconn *c, bool on)
{
	if (c->out_armed == on)
		return;
	c->out_armed = on;
	watch(c->fd, EPOLLIN | (on ? EPOLLOUT : 0u), c, EPOLL_CTL_MOD);
}

/* Send as much of the window (inflight messages) as the socket takes. */
static void tconn_fill(struct tconn *c)
{
	const size_t size = opt.size;

	for (;;) {
		uint64_t seq = c->tx_seq, now = mono_ns();
		size_t off = c->tx_off, len = 0, total;
		ssize_t w;

		while (seq - c->rx_seq < opt.inflight) {
			struct msg_id m;

			msg_id_tcp(&m, c->id, seq);
			msg_fill(&m, off, tx_buf + len, size - off);
			if (off == 0)
				c->sent_ns[seq % opt.inflight] = now;
			len += size - off;
			off = 0;
			seq++;
		}
		if (len == 0) {
			tconn_arm_out(c, false);
			return;
		}
		w = send(c->fd, tx_buf, len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				tconn_arm_out(c, true);
			else
				tconn_kill(c, "send", errno);
			return;
		}
		total = c->tx_off + (size_t)w;
		c->tx_seq += total / size;
		c->tx_off = (uint32_t)(total % size);
		if ((size_t)w < len) {
			tconn_arm_out(c, true);
			return;
		}
	}
}

static void tconn_read(struct tconn *c)
{
	const size_t size = opt.size;
	ssize_t n = recv(c->fd, rx_buf, sizeof(rx_buf), 0);
	const uint8_t *p = rx_buf;
	uint64_t now;

	if (n == 0) {
		tconn_kill(c, "server closed the connection", 0);
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			tconn_kill(c, "recv", errno);
		return;
	}
	now = mono_ns();
	while (n > 0) {
		/* Never more than was sent. */
		size_t avail = c->rx_seq < c->tx_seq ? size - c->rx_off
						     : (size_t)c->tx_off - c->rx_off;
		size_t piece = (size_t)n < avail ? (size_t)n : avail;
		struct msg_id m;

		msg_id_tcp(&m, c->id, c->rx_seq);
		if (piece == 0 || !msg_check(&m, c->rx_off, p, piece)) {
			ctr.mismatches++;
			tconn_kill(c, "echoed bytes differ from the bytes sent", 0);
			return;
		}
		p += piece;
		n -= (ssize_t)piece;
		c->rx_off += (uint32_t)piece;
		if (c->rx_off == size) {
			if (measuring()) {
				ctr.work++;
				ctr.bytes += size;
				hist_add(&ctr.lat, now - c->sent_ns[c->rx_seq % opt.inflight]);
			}
			c->rx_seq++;
			c->rx_off = 0;
		}
	}
}

static void tconn_start(struct tconn *c)
{
	c->fd = tcp_connect_start(c->id);
	if (c->fd < 0) {
		c->dead = true;
		n_dead++;
		ctr.errors++;
		report_error("connect", errno);
		return;
	}
	n_connecting++;
	watch(c->fd, EPOLLOUT, c, EPOLL_CTL_ADD);
	c->out_armed = true;
}

static void tconn_event(struct tconn *c, uint32_t events)
{
	if (c->dead)
		return;
	if (!c->connected) {
		int err = socket_error(c->fd);

		n_connecting--;
		if (err != 0) {
			tconn_kill(c, "connect", err);
			return;
		}
		c->connected = true;
		n_connected++;
		c->out_armed = false;
		watch(c->fd, EPOLLIN, c, EPOLL_CTL_MOD);
		tconn_fill(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		tconn_read(c);
	if (!c->dead)
		tconn_fill(c);
}

static int run_tcp_echo(void)
{
	struct epoll_event events[MAX_EVENTS];
	unsigned next = 0;
	uint64_t deadline = mono_ns() + sec_to_ns(opt.connect_timeout);
	double cpu;

	tx_buf_len = (size_t)opt.inflight * opt.size;
	tx_buf = malloc(tx_buf_len);
	tconns = calloc(opt.conns, sizeof(*tconns));
	if (tx_buf == NULL || tconns == NULL) {
		perror("loadgen: malloc");
		return 1;
	}
	for (unsigned i = 0; i < opt.conns; i++) {
		tconns[i].id = i;
		tconns[i].fd = -1;
		tconns[i].sent_ns = calloc(opt.inflight, sizeof(uint64_t));
		if (tconns[i].sent_ns == NULL) {
			perror("loadgen: malloc");
			return 1;
		}
	}
	for (;;) {
		uint64_t now = mono_ns();
		int n;

		while (next < opt.conns && n_connecting < opt.max_connecting)
			tconn_start(&tconns[next++]);
		if (win.phase == PH_SETUP) {
			if (n_connected + n_dead == opt.conns && n_connecting == 0)
				window_start_warmup(now);
			else if (now > deadline) {
				fprintf(stderr, "loadgen: only %u of %u connections up\n",
					n_connected, opt.conns);
				break;
			}
		}
		if (!window_poll(now) || n_dead == opt.conns)
			break;
		n = epoll_wait(epfd, events, MAX_EVENTS, window_timeout_ms(now, 100));
		if (n < 0 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++)
			tconn_event(events[i].data.ptr, events[i].events);
	}
	cpu = window_cpu_s();
	print_common();
	printf(" conns=%u inflight=%u size=%u connected=%u", opt.conns, opt.inflight,
	       opt.size, n_connected);
	if (win.phase == PH_DONE) {
		double secs = window_seconds();

		printf(" msgs=%llu msgs_per_s=%.0f mb_per_s=%.2f p50_us=%.1f p99_us=%.1f max_us=%.1f",
		       (unsigned long long)ctr.work, (double)ctr.work / secs,
		       (double)ctr.bytes / 1e6 / secs, hist_quantile_us(&ctr.lat, 0.50),
		       hist_quantile_us(&ctr.lat, 0.99), (double)ctr.lat.max / 1000.0);
		print_per_cpu("msgs_per_cpu_s", (double)ctr.work, cpu);
		if (cpu > 0)
			printf(" mb_per_cpu_s=%.1f", (double)ctr.bytes / 1e6 / cpu);
	}
	printf(" errors=%llu mismatches=%llu\n", (unsigned long long)ctr.errors,
	       (unsigned long long)ctr.mismatches);
	fflush(stdout);
	return win.phase == PH_DONE && ctr.errors == 0 && ctr.mismatches == 0 ? 0 : 1;
}

/* ---- tcp-churn ------------------------------------------------------------- */

enum wstate { W_IDLE, W_CONNECTING, W_WAIT_ECHO };

struct worker {
	int fd;
	uint32_t id;
	enum wstate state;
	uint32_t rx_off;
	uint64_t seq;
	uint64_t t_start;
	uint64_t retry_at;
	unsigned src;
};

static void worker_begin(struct worker *w, uint64_t now)
{
	w->src++;
	w->fd = tcp_connect_start(w->id + w->src * opt.workers);
	if (w->fd < 0) {
		ctr.errors++;
		report_error("connect", errno);
		w->state = W_IDLE;
		w->retry_at = now + 10000000u;
		return;
	}
	w->t_start = now;
	w->rx_off = 0;
	w->state = W_CONNECTING;
	watch(w->fd, EPOLLOUT, w, EPOLL_CTL_ADD);
}

static void worker_fail(struct worker *w, const char *why, int err, uint64_t now)
{
	ctr.errors++;
	if (err)
		report_error(why, err);
	else if (error_reports++ < 5)
		fprintf(stderr, "loadgen: worker %u: %s\n", w->id, why);
	close(w->fd);
	w->fd = -1;
	w->state = W_IDLE;
	w->retry_at = now + 10000000u;
}

static void worker_event(struct worker *w, uint64_t now)
{
	struct msg_id m;

	msg_id_tcp(&m, w->id, w->seq);
	if (w->state == W_CONNECTING) {
		int err = socket_error(w->fd);
		ssize_t s;

		if (err != 0) {
			worker_fail(w, "connect", err, now);
			return;
		}
		msg_fill(&m, 0, tx_buf, opt.size);
		s = send(w->fd, tx_buf, opt.size, MSG_NOSIGNAL);
		if (s != (ssize_t)opt.size) {
			worker_fail(w, "send", s < 0 ? errno : EMSGSIZE, now);
			return;
		}
		w->state = W_WAIT_ECHO;
		watch(w->fd, EPOLLIN, w, EPOLL_CTL_MOD);
	} else if (w->state == W_WAIT_ECHO) {
		ssize_t n = recv(w->fd, rx_buf, opt.size - w->rx_off, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			worker_fail(w, n == 0 ? "server closed before echoing" : "recv",
				    n == 0 ? 0 : errno, now);
			return;
		}
		if (!msg_check(&m, w->rx_off, rx_buf, (size_t)n)) {
			ctr.mismatches++;
			worker_fail(w, "echoed bytes differ from the bytes sent", 0, now);
			return;
		}
		w->rx_off += (uint32_t)n;
		if (w->rx_off < opt.size)
			return;
		if (measuring()) {
			ctr.work++;
			ctr.bytes += opt.size;
			hist_add(&ctr.lat, now - w->t_start);
		}
		/* The client closes first, so TIME_WAIT stays on this side. */
		close(w->fd);
		w->fd = -1;
		w->seq++;
		worker_begin(w, now);
	}
}

static int run_tcp_churn(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct worker *ws = calloc(opt.workers, sizeof(*ws));
	uint64_t now = mono_ns();
	double cpu;

	tx_buf = malloc(opt.size);
	if (ws == NULL || tx_buf == NULL) {
		perror("loadgen: malloc");
		return 1;
	}
	for (unsigned i = 0; i < opt.workers; i++) {
		ws[i].id = i;
		worker_begin(&ws[i], now);
	}
	window_start_warmup(now);
	for (;;) {
		int n;

		now = mono_ns();
		if (!window_poll(now))
			break;
		n = epoll_wait(epfd, events, MAX_EVENTS, window_timeout_ms(now, 10));
		if (n < 0 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			return 1;
		}
		now = mono_ns();
		for (int i = 0; i < n; i++)
			worker_event(events[i].data.ptr, now);
		/* Timeouts are judged after the events are handled, so a
		 * stall of this process is not blamed on the server. */
		for (unsigned i = 0; i < opt.workers; i++) {
			struct worker *w = &ws[i];

			if (w->state == W_IDLE && now >= w->retry_at)
				worker_begin(w, now);
			else if (w->state != W_IDLE && now - w->t_start > 2000000000u)
				worker_fail(w, "no echo within 2 s", 0, now);
		}
	}
	cpu = window_cpu_s();
	print_common();
	printf(" workers=%u size=%u", opt.workers, opt.size);
	if (win.phase == PH_DONE) {
		double secs = window_seconds();

		printf(" conns=%llu conns_per_s=%.0f p50_us=%.1f p99_us=%.1f",
		       (unsigned long long)ctr.work, (double)ctr.work / secs,
		       hist_quantile_us(&ctr.lat, 0.50), hist_quantile_us(&ctr.lat, 0.99));
		print_per_cpu("conns_per_cpu_s", (double)ctr.work, cpu);
	}
	printf(" errors=%llu mismatches=%llu\n", (unsigned long long)ctr.errors,
	       (unsigned long long)ctr.mismatches);
	fflush(stdout);
	free(ws);
	return win.phase == PH_DONE && ctr.errors == 0 && ctr.mismatches == 0 ? 0 : 1;
}

/* ---- tcp-idle -------------------------------------------------------------- */

/* One echo round over every connected connection: send message number
 * round on each, wait until each has come back.  Returns how many did. */
static unsigned idle_echo_round(uint64_t round, double timeout_s)
{
	struct epoll_event events[MAX_EVENTS];
	uint64_t deadline = mono_ns() + sec_to_ns(timeout_s);
	unsigned waiting = 0, echoed = 0;

	for (unsigned i = 0; i < opt.conns; i++) {
		struct tconn *c = &tconns[i];
		struct msg_id m;
		ssize_t s;

		if (c->dead || !c->connected)
			continue;
		msg_id_tcp(&m, c->id, round);
		msg_fill(&m, 0, tx_buf, opt.size);
		c->rx_off = 0;
		s = send(c->fd, tx_buf, opt.size, MSG_NOSIGNAL);
		if (s != (ssize_t)opt.size) {
			tconn_kill(c, "send", s < 0 ? errno : EMSGSIZE);
			continue;
		}
		c->tx_seq = round + 1;
		waiting++;
	}
	while (waiting > 0) {
		uint64_t now = mono_ns();
		int n;

		if (now >= deadline) {
			fprintf(stderr, "loadgen: round %llu: %u connections did not echo\n",
				(unsigned long long)round, waiting);
			break;
		}
		n = epoll_wait(epfd, events, MAX_EVENTS, (int)((deadline - now) / 1000000u) + 1);
		if (n < 0 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct tconn *c = events[i].data.ptr;
			struct msg_id m;
			ssize_t r;

			if (c->dead)
				continue;
			if (c->tx_seq != round + 1 || c->rx_off >= opt.size) {
				/* Readable while nothing is expected: EOF or reset. */
				tconn_kill(c, "connection closed while idle", 0);
				continue;
			}
			r = recv(c->fd, rx_buf, opt.size - c->rx_off, 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			msg_id_tcp(&m, c->id, round);
			if (r <= 0) {
				tconn_kill(c, r == 0 ? "server closed the connection" : "recv",
					   r == 0 ? 0 : errno);
				waiting--;
				continue;
			}
			if (!msg_check(&m, c->rx_off, rx_buf, (size_t)r)) {
				ctr.mismatches++;
				tconn_kill(c, "echoed bytes differ from the bytes sent", 0);
				waiting--;
				continue;
			}
			c->rx_off += (uint32_t)r;
			if (c->rx_off == opt.size) {
				waiting--;
				echoed++;
			}
		}
	}
	return echoed;
}

/* Wait s seconds; any event on a connection meanwhile is the server closing
 * it (nothing is owed).  Returns how many closed. */
static unsigned idle_hold(double s)
{
	struct epoll_event events[MAX_EVENTS];
	uint64_t end = mono_ns() + sec_to_ns(s);
	unsigned closed = 0;

	for (;;) {
		uint64_t now = mono_ns();
		int n;

		if (now >= end)
			return closed;
		n = epoll_wait(epfd, events, MAX_EVENTS, (int)((end - now) / 1000000u) + 1);
		for (int i = 0; i < n; i++) {
			struct tconn *c = events[i].data.ptr;

			if (!c->dead) {
				tconn_kill(c, "connection closed while idle", 0);
				closed++;
			}
		}
	}
}

/* System-wide kernel slab memory (kB): sockets, epoll items, files. */
static long long slab_kb(void)
{
	char buf[8192];
	const char *p;

	if (!read_small_file("/proc/meminfo", buf, sizeof(buf)) ||
	    (p = strstr(buf, "\nSlab:")) == NULL)
		return -1;
	return strtoll(p + 6, NULL, 10);
}

static long long per_conn_bytes(uint64_t after_kb, uint64_t before_kb, unsigned conns)
{
	if (conns == 0)
		return 0;
	return ((long long)after_kb - (long long)before_kb) * 1024 / (long long)conns;
}

static int run_tcp_idle(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct proc_sample base, full, held;
	unsigned next = 0, echoed1, echoed2, closed;
	uint64_t t_start = mono_ns(), deadline = t_start + sec_to_ns(opt.connect_timeout);
	double connect_s;
	long long slab_base, slab_full;

	tx_buf = malloc(opt.size);
	tconns = calloc(opt.conns, sizeof(*tconns));
	if (tx_buf == NULL || tconns == NULL) {
		perror("loadgen: malloc");
		return 1;
	}
	proc_sample(&base, true);
	slab_base = slab_kb();
	for (unsigned i = 0; i < opt.conns; i++) {
		tconns[i].id = i;
		tconns[i].fd = -1;
	}
	while (n_connected + n_dead < opt.conns) {
		int n;

		while (next < opt.conns && n_connecting < opt.max_connecting)
			tconn_start(&tconns[next++]);
		if (mono_ns() > deadline) {
			fprintf(stderr, "loadgen: only %u of %u connections up\n", n_connected,
				opt.conns);
			break;
		}
		n = epoll_wait(epfd, events, MAX_EVENTS, 100);
		for (int i = 0; i < n; i++) {
			struct tconn *c = events[i].data.ptr;

			if (c->dead)
				continue;
			if (!c->connected) {
				int err = socket_error(c->fd);

				n_connecting--;
				if (err != 0) {
					tconn_kill(c, "connect", err);
					continue;
				}
				c->connected = true;
				n_connected++;
				watch(c->fd, EPOLLIN, c, EPOLL_CTL_MOD);
			} else {
				tconn_kill(c, "connection closed before use", 0);
			}
		}
	}
	connect_s = (double)(mono_ns() - t_start) / 1e9;
	echoed1 = idle_echo_round(0, 60.0);
	idle_hold(opt.settle);
	proc_sample(&full, true);
	slab_full = slab_kb();
	closed = idle_hold(opt.seconds);
	proc_sample(&held, true);
	echoed2 = idle_echo_round(1, 60.0);

	printf("mode=%s label=%s conns=%u sources=%u connected=%u connect_s=%.2f echoed1=%u"
	       " echoed2=%u closed_while_idle=%u hold_s=%.1f",
	       opt.mode_name, opt.label, opt.conns, opt.sources, n_connected, connect_s, echoed1,
	       echoed2, closed, opt.seconds);
	if (base.ok && full.ok && held.ok) {
		printf(" srv_procs=%u rss_base_kb=%llu rss_kb=%llu rss_held_kb=%llu"
		       " rss_per_conn_b=%lld pss_base_kb=%llu pss_kb=%llu pss_per_conn_b=%lld"
		       " rss_held_per_conn_b=%lld",
		       full.nproc, (unsigned long long)base.rss_kb, (unsigned long long)full.rss_kb,
		       (unsigned long long)held.rss_kb,
		       per_conn_bytes(full.rss_kb, base.rss_kb, echoed1),
		       (unsigned long long)base.pss_kb, (unsigned long long)full.pss_kb,
		       per_conn_bytes(full.pss_kb, base.pss_kb, echoed1),
		       per_conn_bytes(held.rss_kb, base.rss_kb, echoed1));
	}
	/* Both ends of every connection live in this kernel, and so does
	 * everything else running on the machine: an estimate only. */
	if (slab_base >= 0 && slab_full >= 0 && echoed1 > 0)
		printf(" kernel_slab_per_conn_pair_b=%lld",
		       (slab_full - slab_base) * 1024 / (long long)echoed1);
	printf(" errors=%llu mismatches=%llu\n", (unsigned long long)ctr.errors,
	       (unsigned long long)ctr.mismatches);
	fflush(stdout);
	return echoed1 == opt.conns && echoed2 == opt.conns && ctr.errors == 0 &&
	       ctr.mismatches == 0 ? 0 : 1;
}

/* ---- udp-echo -------------------------------------------------------------- */

struct uslot {
	bool busy;
	uint64_t seq;
	uint64_t sent_ns;
};

struct usock {
	int fd;
	uint32_t id;
	unsigned nslots;
	uint64_t next_seq;
	struct uslot *slots;
};

/* timeouts counts datagrams out longer than --loss-ms; late those of them
 * that still came back, so lost = timeouts - late never came back. */
static struct {
	uint64_t sent, ok, timeouts, late;
} uctr;

static struct mmsghdr u_rmsgs[UDP_BATCH], u_smsgs[UDP_BATCH];
static struct iovec u_riov[UDP_BATCH], u_siov[UDP_BATCH];
static uint8_t (*u_rbufs)[MSG_MAX];
static uint8_t (*u_sbufs)[MSG_MAX];
static bool u_sending = true;

/* Send a fresh datagram from every free slot (one sendmmsg per batch). */
static void usock_fill(struct usock *s)
{
	unsigned idx[UDP_BATCH], n = 0;
	uint64_t now = mono_ns();
	int w;

	if (!u_sending)
		return;
	for (unsigned i = 0; i < s->nslots; i++) {
		struct msg_id m;

		if (s->slots[i].busy)
			continue;
		msg_id_udp(&m, s->id, i, s->next_seq);
		msg_fill(&m, 0, u_sbufs[n], opt.size);
		u_siov[n] = (struct iovec){ .iov_base = u_sbufs[n], .iov_len = opt.size };
		u_smsgs[n].msg_hdr = (struct msghdr){ .msg_iov = &u_siov[n], .msg_iovlen = 1 };
		s->slots[i].seq = s->next_seq++;
		idx[n++] = i;
		if (n == UDP_BATCH)
			break;
	}
	if (n == 0)
		return;
	w = sendmmsg(s->fd, u_smsgs, n, MSG_DONTWAIT);
	if (w < 0) {
		/* Not sent: the slots stay free and are retried on the next tick. */
		if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
			ctr.errors++;
			report_error("sendmmsg", errno);
		}
		return;
	}
	for (int i = 0; i < w; i++) {
		s->slots[idx[i]].busy = true;
		s->slots[idx[i]].sent_ns = now;
	}
	uctr.sent += (uint64_t)w;
}

static void usock_read(struct usock *s)
{
	for (;;) {
		int n;
		uint64_t now;

		for (int i = 0; i < UDP_BATCH; i++) {
			u_riov[i] = (struct iovec){ .iov_base = u_rbufs[i], .iov_len = MSG_MAX };
			u_rmsgs[i].msg_hdr = (struct msghdr){ .msg_iov = &u_riov[i], .msg_iovlen = 1 };
		}
		n = recvmmsg(s->fd, u_rmsgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				ctr.errors++;
				report_error("recvmmsg", errno);
			}
			break;
		}
		now = mono_ns();
		for (int i = 0; i < n; i++) {
			const uint8_t *d = u_rbufs[i];
			size_t len = u_rmsgs[i].msg_len;
			uint64_t slot, seq;
			struct msg_id m;
			struct uslot *sl;

			if (len != opt.size || (u_rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) ||
			    get_le(d, 4) != s->id || (slot = get_le(d + 4, 4)) >= s->nslots) {
				ctr.mismatches++;
				continue;
			}
			seq = get_le(d + 8, 8);
			sl = &s->slots[slot];
			msg_id_udp(&m, s->id, (uint32_t)slot, seq);
			if (!msg_check(&m, 0, d, len)) {
				ctr.mismatches++;
				continue;
			}
			if (!sl->busy || sl->seq != seq) {
				/* An intact datagram whose slot moved on: it came back
				 * after being declared lost, or twice. */
				if (seq < sl->seq || (!sl->busy && seq == sl->seq))
					uctr.late++;
				else
					ctr.mismatches++;
				continue;
			}
			sl->busy = false;
			uctr.ok++;
			if (measuring()) {
				ctr.work++;
				ctr.bytes += len;
				hist_add(&ctr.lat, now - sl->sent_ns);
			}
		}
		if (n < UDP_BATCH)
			break;
	}
	usock_fill(s);
}

/* Give up on what has been out longer than older_than (counted as a
 * timeout, and as late if it still comes back); returns how many are
 * still out. */
static unsigned usock_expire(struct usock *s, uint64_t now, uint64_t older_than)
{
	unsigned out = 0;

	for (unsigned i = 0; i < s->nslots; i++) {
		struct uslot *sl = &s->slots[i];

		if (!sl->busy)
			continue;
		if (now - sl->sent_ns >= older_than) {
			sl->busy = false;
			uctr.timeouts++;
		} else {
			out++;
		}
	}
	usock_fill(s);
	return out;
}

static int run_udp_echo(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct usock *socks = calloc(opt.sockets, sizeof(*socks));
	uint64_t loss_ns = (uint64_t)opt.loss_ms * 1000000u, last_scan, drain_end = 0;
	double cpu;

	u_rbufs = malloc(sizeof(*u_rbufs) * UDP_BATCH);
	u_sbufs = malloc(sizeof(*u_sbufs) * UDP_BATCH);
	if (socks == NULL || u_rbufs == NULL || u_sbufs == NULL) {
		perror("loadgen: malloc");
		return 1;
	}
	for (unsigned i = 0; i < opt.sockets; i++) {
		struct usock *s = &socks[i];

		s->id = i;
		/* Share the datagrams in flight out as evenly as possible. */
		s->nslots = opt.inflight / opt.sockets + (i < opt.inflight % opt.sockets);
		s->slots = calloc(s->nslots ? s->nslots : 1, sizeof(*s->slots));
		s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->slots == NULL || s->fd < 0 ||
		    connect(s->fd, (const struct sockaddr *)&opt.dst, sizeof(opt.dst)) < 0) {
			perror("loadgen: udp socket");
			return 1;
		}
		watch(s->fd, EPOLLIN, s, EPOLL_CTL_ADD);
	}
	last_scan = mono_ns();
	window_start_warmup(last_scan);
	for (unsigned i = 0; i < opt.sockets; i++)
		usock_fill(&socks[i]);
	for (;;) {
		uint64_t now = mono_ns();
		int n;

		if (u_sending && !window_poll(now)) {
			/* Window over: stop sending, give what is out one loss
			 * period to come back. */
			u_sending = false;
			drain_end = now + loss_ns;
		}
		if (now - last_scan >= 10000000u || (!u_sending && now >= drain_end)) {
			unsigned out = 0;

			/* Take in what has arrived before judging: if this
			 * process was not scheduled for a while, the replies
			 * are waiting in its sockets and are not lost. */
			for (unsigned i = 0; i < opt.sockets; i++)
				usock_read(&socks[i]);
			now = mono_ns();
			last_scan = now;
			for (unsigned i = 0; i < opt.sockets; i++)
				out += usock_expire(&socks[i], now, u_sending ? loss_ns
									       : (now >= drain_end ? 0 : loss_ns));
			if (!u_sending && (out == 0 || now >= drain_end))
				break;
		}
		n = epoll_wait(epfd, events, MAX_EVENTS, u_sending ? window_timeout_ms(now, 10) : 5);
		if (n < 0 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++)
			usock_read(events[i].data.ptr);
	}
	cpu = window_cpu_s();
	print_common();
	printf(" sockets=%u inflight=%u size=%u", opt.sockets, opt.inflight, opt.size);
	if (win.phase == PH_DONE) {
		double secs = window_seconds();

		printf(" pkts=%llu pkts_per_s=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f",
		       (unsigned long long)ctr.work, (double)ctr.work / secs,
		       hist_quantile_us(&ctr.lat, 0.50), hist_quantile_us(&ctr.lat, 0.99),
		       (double)ctr.lat.max / 1000.0);
		print_per_cpu("pkts_per_cpu_s", (double)ctr.work, cpu);
	}
	printf(" sent=%llu ok=%llu timeouts=%llu late=%llu lost=%llu errors=%llu mismatches=%llu\n",
	       (unsigned long long)uctr.sent, (unsigned long long)uctr.ok,
	       (unsigned long long)uctr.timeouts, (unsigned long long)uctr.late,
	       (unsigned long long)(uctr.timeouts - uctr.late),
	       (unsigned long long)ctr.errors, (unsigned long long)ctr.mismatches);
	fflush(stdout);
	for (unsigned i = 0; i < opt.sockets; i++)
		free(socks[i].slots);
	free(socks);
	return win.phase == PH_DONE && ctr.errors == 0 && ctr.mismatches == 0 &&
	       uctr.timeouts == uctr.late ? 0 : 1;
}

/* ---- tcp-ab / udp-ab --------------------------------------------------------
 * Latency of two servers under the same conditions: one connection (or
 * connected socket) to each, one message in flight in all, alternating
 * between them message by message.  On a machine shared with other jobs
 * the neighbours then disturb both alike, which separate runs cannot
 * promise.  The servers' CPU time is not measured here. */

static int ab_open(bool tcp, const struct sockaddr_in *dst)
{
	static const int one = 1;
	int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	int flags;

	if (fd < 0 || connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0) {
		perror("loadgen: connect");
		exit(1);
	}
	if (tcp)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		perror("loadgen: fcntl");
		exit(1);
	}
	return fd;
}

static int run_ab(bool tcp)
{
	struct sockaddr_in dst2 = opt.dst;
	struct hist *h = calloc(2, sizeof(*h));
	uint64_t n[2] = { 0, 0 }, lost = 0, late = 0, seq = 0;
	uint64_t loss_ns = (uint64_t)opt.loss_ms * 1000000u;
	int fds[2];
	unsigned cur = 0;
	uint8_t *tx = malloc(opt.size);

	if (h == NULL || tx == NULL) {
		perror("loadgen: malloc");
		return 1;
	}
	dst2.sin_port = htons((uint16_t)opt.port2);
	fds[0] = ab_open(tcp, &opt.dst);
	fds[1] = ab_open(tcp, &dst2);
	for (unsigned i = 0; i < 2; i++)
		watch(fds[i], EPOLLIN, &fds[i], EPOLL_CTL_ADD);
	window_start_warmup(mono_ns());
	while (window_poll(mono_ns()) && ctr.errors == 0) {
		struct msg_id m;
		size_t got = 0;
		uint64_t t0, t1;

		if (tcp)
			msg_id_tcp(&m, cur, seq);
		else
			msg_id_udp(&m, cur, 0, seq);
		msg_fill(&m, 0, tx, opt.size);
		t0 = mono_ns();
		if (send(fds[cur], tx, opt.size, MSG_NOSIGNAL) != (ssize_t)opt.size) {
			ctr.errors++;
			report_error("send", errno);
			break;
		}
		while (got < opt.size) {
			struct epoll_event ev[2];
			int ne = epoll_wait(epfd, ev, 2, 100);
			ssize_t r;

			if (ne < 0 && errno != EINTR) {
				perror("loadgen: epoll_wait");
				return 1;
			}
			for (int i = 0; i < ne; i++) {
				int *fdp = ev[i].data.ptr;

				if (fdp == &fds[cur])
					continue;
				/* Nothing is owed on the other socket: a datagram
				 * given up on earlier, or an error. */
				r = recv(*fdp, rx_buf, sizeof(rx_buf), 0);
				if (tcp || r < 0) {
					ctr.errors++;
					report_error("unexpected data or error", r < 0 ? errno : EPROTO);
				} else {
					late++;
				}
			}
			r = recv(fds[cur], rx_buf + got, tcp ? opt.size - got : sizeof(rx_buf) - got, 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
				if (mono_ns() - t0 < loss_ns && ctr.errors == 0)
					continue;
				if (tcp)
					ctr.errors++;
				else
					lost++;
				break;
			}
			if (r <= 0 || (!tcp && (size_t)r != opt.size)) {
				if (r > 0)
					ctr.mismatches++;
				else
					ctr.errors++;
				break;
			}
			got += (size_t)r;
		}
		t1 = mono_ns();
		if (got == opt.size) {
			if (!msg_check(&m, 0, rx_buf, opt.size)) {
				ctr.mismatches++;
			} else if (measuring()) {
				hist_add(&h[cur], t1 - t0);
				n[cur]++;
			}
		}
		cur ^= 1;
		if (cur == 0)
			seq++;
	}
	printf("mode=%s label=%s size=%u", opt.mode_name, opt.label, opt.size);
	if (win.phase == PH_DONE)
		printf(" seconds=%.3f", window_seconds());
	for (unsigned i = 0; i < 2; i++)
		printf(" %c_port=%u %c_msgs=%llu %c_p50_us=%.1f %c_p99_us=%.1f %c_max_us=%.1f",
		       'a' + i, i ? opt.port2 : ntohs(opt.dst.sin_port), 'a' + i,
		       (unsigned long long)n[i], 'a' + i, hist_quantile_us(&h[i], 0.50),
		       'a' + i, hist_quantile_us(&h[i], 0.99), 'a' + i, (double)h[i].max / 1000.0);
	printf(" lost=%llu late=%llu errors=%llu mismatches=%llu\n", (unsigned long long)lost,
	       (unsigned long long)late, (unsigned long long)ctr.errors,
	       (unsigned long long)ctr.mismatches);
	fflush(stdout);
	free(h);
	free(tx);
	return win.phase == PH_DONE && ctr.errors == 0 && ctr.mismatches == 0 && lost == 0 ? 0 : 1;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(FILE *out, int status)
{
	fprintf(out,
		"usage: loadgen --mode tcp-echo|tcp-churn|tcp-idle|udp-echo|tcp-ab|udp-ab\n"
		"               --port PORT [options]\n"
		"  --addr A          server IPv4 address (127.0.0.1)\n"
		"  --conns N         connections (tcp-echo, tcp-idle)\n"
		"  --inflight P      messages in flight per connection (tcp-echo), or\n"
		"                    datagrams in flight in all (udp-echo)\n"
		"  --size S          message bytes (64)\n"
		"  --workers W       parallel connect/echo/close workers (tcp-churn, 8)\n"
		"  --sources K       bind to K source addresses 127.0.0.2.. (0: let the kernel pick)\n"
		"  --sockets K       client sockets (udp-echo, 1)\n"
		"  --seconds T       measured window, or idle hold time (5)\n"
		"  --warmup T        seconds of load before the window (1)\n"
		"  --settle T        tcp-idle: seconds between the first echo round and the\n"
		"                    memory reading (1)\n"
		"  --loss-ms MS      udp-echo: a datagram out this long is given up on and\n"
		"                    resent; if it comes back later it is late, else lost (500)\n"
		"  --max-connecting N  connects in progress at once (256)\n"
		"  --pid PID         server process: report its (and its children's) CPU and memory\n"
		"  --label L         copied into the result line\n"
		"  --port2 PORT      tcp-ab, udp-ab: the second server; one message in flight\n"
		"                    in all, alternating between the two, p50/p99 of each\n");
	exit(status);
}

static unsigned parse_uint(const char *s, unsigned lo, unsigned hi, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi) {
		fprintf(stderr, "loadgen: %s: %s is not in %u..%u\n", what, s, lo, hi);
		exit(2);
	}
	return (unsigned)v;
}

static double parse_secs(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (*end != '\0' || end == s || !(v >= 0) || v > 86400) {
		fprintf(stderr, "loadgen: %s: %s is not a number of seconds\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "conns", required_argument, NULL, 'c' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' },
		{ "workers", required_argument, NULL, 'w' },
		{ "sources", required_argument, NULL, 'S' },
		{ "sockets", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "settle", required_argument, NULL, 'e' },
		{ "loss-ms", required_argument, NULL, 'l' },
		{ "max-connecting", required_argument, NULL, 'M' },
		{ "pid", required_argument, NULL, 'P' },
		{ "label", required_argument, NULL, 'L' },
		{ "port2", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = "127.0.0.1";
	int port = -1, c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': opt.mode_name = optarg; break;
		case 'a': addr = optarg; break;
		case 'p': port = (int)parse_uint(optarg, 1, 65535, "--port"); break;
		case 'c': opt.conns = parse_uint(optarg, 1, 1000000, "--conns"); break;
		case 'i': opt.inflight = parse_uint(optarg, 1, 4096, "--inflight"); break;
		case 's': opt.size = parse_uint(optarg, 1, MSG_MAX, "--size"); break;
		case 'w': opt.workers = parse_uint(optarg, 1, 4096, "--workers"); break;
		case 'S': opt.sources = parse_uint(optarg, 0, 65000, "--sources"); break;
		case 'k': opt.sockets = parse_uint(optarg, 1, 1024, "--sockets"); break;
		case 't': opt.seconds = parse_secs(optarg, "--seconds"); break;
		case 'W': opt.warmup = parse_secs(optarg, "--warmup"); break;
		case 'e': opt.settle = parse_secs(optarg, "--settle"); break;
		case 'l': opt.loss_ms = parse_uint(optarg, 1, 60000, "--loss-ms"); break;
		case 'M': opt.max_connecting = parse_uint(optarg, 1, 100000, "--max-connecting"); break;
		case 'P': opt.pid = (pid_t)parse_uint(optarg, 1, 1u << 30, "--pid"); break;
		case 'L': opt.label = optarg; break;
		case 'B': opt.port2 = parse_uint(optarg, 1, 65535, "--port2"); break;
		case 'h': usage(stdout, 0); break;
		default: usage(stderr, 2);
		}
	}
	if (optind != argc || opt.mode_name == NULL || port < 0)
		usage(stderr, 2);
	if (strcmp(opt.mode_name, "tcp-echo") == 0)
		opt.mode = MODE_TCP_ECHO;
	else if (strcmp(opt.mode_name, "tcp-churn") == 0)
		opt.mode = MODE_TCP_CHURN;
	else if (strcmp(opt.mode_name, "tcp-idle") == 0)
		opt.mode = MODE_TCP_IDLE;
	else if (strcmp(opt.mode_name, "udp-echo") == 0)
		opt.mode = MODE_UDP_ECHO;
	else if (strcmp(opt.mode_name, "tcp-ab") == 0)
		opt.mode = MODE_TCP_AB;
	else if (strcmp(opt.mode_name, "udp-ab") == 0)
		opt.mode = MODE_UDP_AB;
	else
		usage(stderr, 2);
	opt.dst.sin_family = AF_INET;
	opt.dst.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &opt.dst.sin_addr) != 1) {
		fprintf(stderr, "loadgen: --addr: %s is not an IPv4 address\n", addr);
		exit(2);
	}
	if ((opt.mode == MODE_TCP_AB || opt.mode == MODE_UDP_AB) && opt.port2 == 0) {
		fprintf(stderr, "loadgen: %s needs --port2\n", opt.mode_name);
		exit(2);
	}
	if ((opt.mode == MODE_UDP_ECHO || opt.mode == MODE_UDP_AB) &&
	    (opt.size < UDP_HDR || opt.size > 65507)) {
		fprintf(stderr, "loadgen: udp-echo needs --size in %u..65507\n", UDP_HDR);
		exit(2);
	}
	if (opt.mode == MODE_UDP_ECHO && opt.inflight / opt.sockets > UDP_BATCH) {
		fprintf(stderr, "loadgen: at most %u datagrams in flight per socket\n", UDP_BATCH);
		exit(2);
	}
	if ((size_t)opt.inflight * opt.size > 64u * 1024 * 1024) {
		fprintf(stderr, "loadgen: --inflight x --size is over 64 MiB\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct rlimit rl;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* Idle tests hold thousands of sockets: use the whole hard limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	clk_tck = sysconf(_SC_CLK_TCK);
	page_kb = sysconf(_SC_PAGESIZE) / 1024;
	pat_init();
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		perror("loadgen: epoll_create1");
		return 1;
	}
	switch (opt.mode) {
	case MODE_TCP_ECHO: return run_tcp_echo();
	case MODE_TCP_CHURN: return run_tcp_churn();
	case MODE_TCP_IDLE: return run_tcp_idle();
	case MODE_UDP_ECHO: return run_udp_echo();
	case MODE_TCP_AB: return run_ab(true);
	case MODE_UDP_AB: return run_ab(false);
	}
	return 2;
}
