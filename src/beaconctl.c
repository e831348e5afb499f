/*
 * beaconctl: the command-line client of beacond's control socket.
 *
 *   beaconctl [-s PATH | -c FILE] COMMAND [OPTIONS] [ARGS]
 *
 * One connection per request: send "1 COMMAND ARGS\n", read JSON lines
 * until the daemon closes, parse them with jansson and print.  Exit codes
 * are sysexits(3): 69 the daemon is not reachable, 77 not allowed, 76 a
 * reply we do not understand (another version), 78 a reload refused the
 * file, 65 no such target, 64 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <jansson.h>

#include "config.h"
#include "ctl.h"
#include "ctl_proto.h"
#include "ctl_table.h"

#define REPLY_TIMEOUT_S 10

static const char *prog = "beaconctl";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: beaconctl [-s PATH | -c FILE] COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  status               daemon, configuration, reloads, listeners, probe counts\n"
		"  targets [OPTIONS]    one row per probe (like chronyc sources)\n"
		"      --down           only probes that are down\n"
		"      --sort=KEY       name (default), loss (worst first) or rtt (slowest first)\n"
		"      -j, --json       JSON array of the daemon's records\n"
		"      -c, --csv        CSV with raw numbers (ns, ms, milli-percent)\n"
		"      -v, --verbose    explain the columns first\n"
		"  target NAME          one target in detail (with its recent RTTs and state changes)\n"
		"  watch [--count=N]    redraw the targets table every second (targets options apply)\n"
		"  reload               reload the configuration and print the outcome\n"
		"  stats                TCP and UDP echo counters\n"
		"  history NAME [OPTIONS]  the target's history rounds (sent, lost, RTT quantiles)\n"
		"      --range=R        3h (default), 30h, 10d or any duration: the tier that covers it\n"
		"      --family=4|6     which probe of a dual-stack target\n"
		"      -j, --json       one JSON object: the target and its rounds\n"
		"  graph NAME [--range=R] [--family=4|6]  the SmokePing-style graph as SVG on stdout\n"
		"  help                 the commands the daemon knows\n"
		"  status, target and stats also take -j (the daemon's JSON).\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH    the control socket (default " CTL_DEFAULT_SOCKET ")\n"
		"  -c, --config FILE    take control_socket from a beacond configuration file\n"
		"  -h, --help           this help\n"
		"  -V, --version        the client's version\n"
		"\n"
		"Exit status: 0 ok, 64 usage, 65 no such target, 69 daemon not reachable,\n"
		"76 unexpected reply (another version), 77 not allowed, 78 reload refused.\n"
		"See beaconctl(8).\n");
}

/* ---- talking to the daemon ---- */

/* The reply's lines.  With fn set, every line after the first goes to
 * fn, which returns true when it took the line (and its reference): a
 * 10 000-target list is turned into rows as it arrives, not kept as 10 000
 * JSON objects. */
struct reply {
	json_t **lines;
	size_t n;
	bool (*fn)(json_t *j, void *arg);
	void *arg;
};

static void reply_free(struct reply *r)
{
	for (size_t i = 0; i < r->n; i++)
		json_decref(r->lines[i]);
	free(r->lines);
	r->lines = NULL;
	r->n = 0;
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = REPLY_TIMEOUT_S };

	if (strlen(path) >= sizeof sun.sun_path) {
		fprintf(stderr, "%s: %s: path too long for a Unix socket\n", prog, path);
		return -EX_USAGE;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
		return -EX_OSERR;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		int e = errno;
		close(fd);
		switch (e) {
		case ENOENT:
			fprintf(stderr, "%s: %s does not exist: is beacond running? "
				"(set [daemon] control_socket, or use -s PATH / -c FILE)\n", prog, path);
			return -EX_UNAVAILABLE;
		case ECONNREFUSED:
			fprintf(stderr, "%s: connection to %s refused: beacond is not running "
				"(the socket file is left over)\n", prog, path);
			return -EX_UNAVAILABLE;
		case EACCES:
		case EPERM:
			fprintf(stderr, "%s: %s: permission denied (the socket is mode 0660: "
				"be root, the daemon's user, or in its control_group)\n", prog, path);
			return -EX_NOPERM;
		case EAGAIN:
			fprintf(stderr, "%s: %s: the daemon is not accepting connections "
				"(backlog full); try again\n", prog, path);
			return -EX_TEMPFAIL;
		default:
			fprintf(stderr, "%s: cannot connect to %s: %s\n", prog, path, strerror(e));
			return -EX_UNAVAILABLE;
		}
	}
	return fd;
}

/* Send the request and collect every JSON line of the reply.  Returns 0,
 * or a sysexits code after printing why. */
static int request(const char *path, const char *line, struct reply *r)
{
	int fd = connect_socket(path);
	if (fd < 0)
		return -fd;
	size_t len = strlen(line);
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		fprintf(stderr, "%s: sending to %s: %s\n", prog, path, strerror(errno));
		close(fd);
		return EX_IOERR;
	}
	shutdown(fd, SHUT_WR);

	size_t cap = 1 << 16, used = 0;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return EX_OSERR;
	}
	size_t cap_lines = 0;
	int status = 0;
	for (;;) {
		if (cap - used < 4096) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				status = EX_OSERR;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = recv(fd, buf + used, cap - used, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				fprintf(stderr, "%s: no reply from %s within %ds\n", prog, path,
					REPLY_TIMEOUT_S);
			else
				fprintf(stderr, "%s: reading from %s: %s\n", prog, path, strerror(errno));
			status = errno == EAGAIN || errno == EWOULDBLOCK ? EX_TEMPFAIL : EX_IOERR;
			break;
		}
		size_t start = 0;
		used += (size_t)n;
		/* Parse the complete lines received so far. */
		for (;;) {
			char *nl = memchr(buf + start, '\n', used - start);
			if (!nl && n == 0 && start < used)
				nl = buf + used;   /* a last line without LF */
			if (!nl)
				break;
			size_t ll = (size_t)(nl - (buf + start));
			if (ll > 0) {
				json_error_t jerr;
				json_t *j = json_loadb(buf + start, ll, 0, &jerr);
				if (!j || !json_is_object(j)) {
					fprintf(stderr, "%s: the daemon's reply is not JSON (%s): "
						"is %s a beacond control socket?\n", prog,
						j ? "not an object" : jerr.text, path);
					json_decref(j);
					status = EX_PROTOCOL;
					goto out;
				}
				if (r->fn && r->n > 0 && r->fn(j, r->arg))
					goto next_line;
				if (r->n == cap_lines) {
					cap_lines = cap_lines ? cap_lines * 2 : 64;
					json_t **nv = realloc(r->lines, cap_lines * sizeof *nv);
					if (!nv) {
						json_decref(j);
						status = EX_OSERR;
						goto out;
					}
					r->lines = nv;
				}
				r->lines[r->n++] = j;
			}
next_line:
			start += ll + (nl < buf + used);
			if (start >= used)
				break;
		}
		memmove(buf, buf + start, used - start);
		used -= start;
		if (n == 0)
			break;
	}
out:
	free(buf);
	close(fd);
	if (status)
		return status;
	if (r->n == 0) {
		fprintf(stderr, "%s: the daemon closed the connection without a reply\n", prog);
		return EX_PROTOCOL;
	}
	return 0;
}

static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static uint64_t ju64(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (uint64_t)json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) >= 0)
		return (uint64_t)json_real_value(v);
	return CTL_NO_VALUE;
}

static double jnum(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : -1;
}

/* The first line says whether the daemon accepted the request.  Returns 0
 * or the exit code after printing the daemon's reason. */
static int check_head(const struct reply *r, const char *want)
{
	const json_t *h = r->lines[0];
	json_t *ok = json_object_get(h, "ok");

	if (!json_is_boolean(ok) || ju64(h, "version") == CTL_NO_VALUE) {
		fprintf(stderr, "%s: unexpected reply (no \"ok\"/\"version\"): not a beacond "
			"control socket, or another version\n", prog);
		return EX_PROTOCOL;
	}
	if (json_is_false(ok)) {
		const char *code = jstr(h, "code", "");
		fprintf(stderr, "%s: %s\n", prog, jstr(h, "error", "request refused"));
		if (!strcmp(code, "permission"))
			return EX_NOPERM;
		if (!strcmp(code, "version")) {
			fprintf(stderr, "%s: this beaconctl speaks protocol %d, the daemon %" PRIu64 "\n",
				prog, CTL_PROTO_VERSION, ju64(h, "version"));
			return EX_PROTOCOL;
		}
		if (!strcmp(code, "not_found"))
			return EX_DATAERR;
		if (!strcmp(code, "usage") || !strcmp(code, "unknown_command"))
			return EX_USAGE;
		if (!strcmp(code, "busy"))
			return EX_TEMPFAIL;
		return EX_SOFTWARE;
	}
	if (ju64(h, "version") != CTL_PROTO_VERSION) {
		fprintf(stderr, "%s: the daemon speaks protocol %" PRIu64 ", this beaconctl %d\n",
			prog, ju64(h, "version"), CTL_PROTO_VERSION);
		return EX_PROTOCOL;
	}
	if (want && strcmp(jstr(h, "reply", ""), want) != 0) {
		fprintf(stderr, "%s: unexpected reply \"%s\" to \"%s\"\n", prog,
			jstr(h, "reply", ""), want);
		return EX_PROTOCOL;
	}
	return 0;
}

static int print_raw(const struct reply *r, size_t from)
{
	for (size_t i = from; i < r->n; i++) {
		char *s = json_dumps(r->lines[i], JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
	}
	return 0;
}

/* Send line and check the reply is `want`; with json (-j), also print it
 * as it came.  Returns the exit code; the reply stays in r for the caller
 * to print only on success without json (else r is freed). */
static int fetch(const char *path, const char *line, const char *want, bool json,
		 struct reply *r)
{
	int st = request(path, line, r);
	if (!st)
		st = check_head(r, want);
	if (!st && json)
		print_raw(r, 0);
	if (st || json)
		reply_free(r);
	return st;
}

/* ---- formatting helpers ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fmt_time(char *buf, size_t len, double unix_s)
{
	if (unix_s <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	time_t t = (time_t)unix_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void fmt_age_s(char *buf, size_t len, double unix_s)
{
	if (unix_s <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	uint64_t now = now_ms(), then = (uint64_t)(unix_s * 1000);
	ctl_fmt_age(buf, len, now > then ? now - then : 0);
}

static enum ctl_row_state row_state(const json_t *p)
{
	const char *st = jstr(p, "state", "");
	json_t *res = json_object_get(p, "resolved");
	if (json_is_false(res))
		return CTL_ROW_UNRESOLVED;
	if (!strcmp(st, "up"))
		return CTL_ROW_UP;
	if (!strcmp(st, "down"))
		return CTL_ROW_DOWN;
	return CTL_ROW_UNKNOWN;
}

static void row_of(const json_t *p, struct ctl_row *r)
{
	const char *addr = json_string_value(json_object_get(p, "addr"));
	double since = jnum(p, "since");
	double loss = jnum(p, "loss_pct");

	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", jstr(p, "target", "?"));
	snprintf(r->addr, sizeof r->addr, "%s", addr ? addr : jstr(p, "host", ""));
	r->state = row_state(p);
	r->sent = ju64(p, "sent");
	if (r->sent == CTL_NO_VALUE)
		r->sent = 0;
	r->loss_milli_pct = loss < 0 ? CTL_NO_VALUE : (uint64_t)(loss * 1000 + 0.5);
	r->last_ns = ju64(p, "rtt_last_ns");
	r->min_ns = ju64(p, "rtt_min_ns");
	r->avg_ns = ju64(p, "rtt_avg_ns");
	r->max_ns = ju64(p, "rtt_max_ns");
	r->mdev_ns = ju64(p, "rtt_mdev_ns");
	r->jitter_ns = ju64(p, "rtt_jitter_ns");
	r->since_ms = since > 0 ? (uint64_t)(since * 1000) : 0;
}

/* ---- commands ---- */

struct targets_opts {
	struct ctl_table_opts t;
	bool json, csv, verbose;
	long count;                  /* watch: redraws, 0 = until interrupted */
};

static int parse_targets_opts(int argc, char **argv, struct targets_opts *o, bool watch)
{
	static const struct option longopts[] = {
		{ "down", no_argument, NULL, 'd' },
		{ "sort", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "csv", no_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jcvn:", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->t.down_only = true;
			break;
		case 'S':
			if (!strcmp(optarg, "name"))
				o->t.sort = CTL_SORT_NAME;
			else if (!strcmp(optarg, "loss"))
				o->t.sort = CTL_SORT_LOSS;
			else if (!strcmp(optarg, "rtt"))
				o->t.sort = CTL_SORT_RTT;
			else {
				fprintf(stderr, "%s: --sort=%s: expected name, loss or rtt\n", prog, optarg);
				return EX_USAGE;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case 'c':
			o->csv = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'n': {
			char *end;
			o->count = strtol(optarg, &end, 10);
			if (!watch || *end || o->count < 0) {
				fprintf(stderr, "%s: --count is a number of redraws (watch only)\n", prog);
				return EX_USAGE;
			}
			break;
		}
		default:
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
		return EX_USAGE;
	}
	if (o->json && o->csv) {
		fprintf(stderr, "%s: -j and -c exclude each other\n", prog);
		return EX_USAGE;
	}
	return 0;
}

struct rows {
	struct ctl_row *v;
	size_t n, cap;
	json_t *arr;                 /* -j: the records themselves */
	bool down_only;
	bool oom;
};

static bool take_probe(json_t *j, void *arg)
{
	struct rows *rs = arg;

	if (!json_object_get(j, "target"))
		return false;            /* the end line: keep it */
	if (rs->arr) {
		const char *st = json_string_value(json_object_get(j, "state"));
		if (!rs->down_only || (st && !strcmp(st, "down")))
			json_array_append_new(rs->arr, j);
		else
			json_decref(j);
		return true;
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 256;
		struct ctl_row *v = realloc(rs->v, cap * sizeof *v);
		if (!v) {
			rs->oom = true;
			json_decref(j);
			return true;
		}
		rs->v = v;
		rs->cap = cap;
	}
	row_of(j, &rs->v[rs->n++]);
	json_decref(j);
	return true;
}

/* Fetch the targets and render them into out (the table, CSV or JSON). */
static int targets_text(const char *path, struct targets_opts *o, struct sbuf *out)
{
	struct rows rs = { .down_only = o->t.down_only };
	struct reply r = { .fn = take_probe, .arg = &rs };
	if (o->json && !(rs.arr = json_array()))
		return EX_OSERR;
	int st = request(path, "1 targets\n", &r);
	if (!st)
		st = check_head(&r, "targets");
	const json_t *end = r.n > 1 ? r.lines[r.n - 1] : NULL;
	if (!st && (!end || !json_is_true(json_object_get(end, "end")))) {
		fprintf(stderr, "%s: the reply ended early (the daemon closed mid-list)\n", prog);
		st = EX_PROTOCOL;
	}
	if (!st && rs.oom)
		st = EX_OSERR;
	if (!st && o->json) {
		char *s = json_dumps(rs.arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s)
			sbuf_printf(out, "%s\n", s);
		free(s);
	} else if (!st) {
		o->t.now_ms = now_ms();
		if (o->csv) {
			ctl_table_csv(rs.v, rs.n, &o->t, out);
		} else {
			if (o->verbose)
				ctl_table_legend(out);
			ctl_table_render(rs.v, rs.n, &o->t, out);
			if (!json_is_true(json_object_get(end, "complete")))
				sbuf_printf(out, "(partial: the daemon reloaded while listing)\n");
		}
	}
	json_decref(rs.arr);
	free(rs.v);
	reply_free(&r);
	return st;
}

static int use_color(void)
{
	const char *nc = getenv("NO_COLOR");
	return isatty(STDOUT_FILENO) && !(nc && *nc);
}

static int cmd_targets(const char *path, int argc, char **argv)
{
	struct targets_opts o = { .t = { .sort = CTL_SORT_NAME, .color = use_color() } };
	int st = parse_targets_opts(argc, argv, &o, false);
	if (st)
		return st;
	struct sbuf out = { 0 };
	st = targets_text(path, &o, &out);
	if (!st && out.p)
		fwrite(out.p, 1, out.len, stdout);
	sbuf_free(&out);
	return st;
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int cmd_watch(const char *path, int argc, char **argv)
{
	struct targets_opts o = { .t = { .sort = CTL_SORT_NAME, .color = use_color() } };
	int st = parse_targets_opts(argc, argv, &o, true);
	if (st)
		return st;
	if (o.json || o.csv) {
		fprintf(stderr, "%s: watch draws the table; use targets -j/-c for data\n", prog);
		return EX_USAGE;
	}
	struct sigaction sa = { .sa_handler = on_sigint };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (long i = 0; !interrupted && (o.count == 0 || i < o.count); i++) {
		struct sbuf out = { 0 };
		char when[64];
		time_t t = time(NULL);
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(when, sizeof when, "%H:%M:%S", &tm);
		st = targets_text(path, &o, &out);
		/* Home, clear, then the frame in one write: no flicker. */
		printf("\033[H\033[2Jbeaconctl watch: %s, every 1s (Ctrl-C to stop)   %s\n\n",
		       path, when);
		if (!st && out.p)
			fwrite(out.p, 1, out.len, stdout);
		fflush(stdout);
		sbuf_free(&out);
		if (st)
			return st;
		if (o.count && i + 1 >= o.count)
			break;
		struct timespec ts = { .tv_sec = 1 };
		while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return 0;
}

static bool want_json(int argc, char **argv, int *st)
{
	bool j = false;
	*st = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json"))
			j = true;
		else {
			fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[i]);
			*st = EX_USAGE;
		}
	}
	return j;
}

static void print_listen(const json_t *svc)
{
	const json_t *l = json_object_get(svc, "listen");
	size_t i;
	json_t *v;

	if (!json_array_size(l)) {
		printf("off");
		return;
	}
	json_array_foreach(l, i, v)
		printf("%s%s", i ? " " : "", json_string_value(v) ? json_string_value(v) : "?");
}

static int cmd_status(const char *path, int argc, char **argv)
{
	int st;
	bool j = want_json(argc, argv, &st);
	if (st)
		return st;
	struct reply r = { 0 };
	if ((st = fetch(path, "1 status\n", "status", j, &r)) || j)
		return st;
	const json_t *h = r.lines[0];
	char t1[64], age[32];
	uint64_t up_ns = ju64(h, "uptime_ns");
	ctl_fmt_age(age, sizeof age, up_ns == CTL_NO_VALUE ? CTL_NO_VALUE : up_ns / 1000000);
	fmt_time(t1, sizeof t1, jnum(h, "started"));
	printf("beacond %s, up %s (since %s)\n", jstr(h, "beacond_version", "?"), age, t1);
	fmt_time(t1, sizeof t1, jnum(h, "config_loaded"));
	fmt_age_s(age, sizeof age, jnum(h, "config_loaded"));
	printf("config:      %s, loaded %s (%s ago)\n", jstr(h, "config", "?"), t1, age);
	const json_t *rl = json_object_get(h, "reload");
	const json_t *last = json_object_get(rl, "last");
	if (!json_is_object(last)) {
		printf("last reload: none\n");
	} else {
		fmt_time(t1, sizeof t1, jnum(last, "at"));
		if (json_is_true(json_object_get(last, "ok")))
			printf("last reload: ok at %s: %s\n", t1, jstr(last, "result", ""));
		else
			printf("last reload: FAILED at %s: %s\n", t1, jstr(last, "error", ""));
	}
	printf("reloads:     %" PRIu64 " (%" PRIu64 " failed)\n", ju64(rl, "count"),
	       ju64(rl, "failures"));
	const json_t *t = json_object_get(h, "targets");
	printf("targets:     %" PRIu64 " probes: %" PRIu64 " up, %" PRIu64 " down, %" PRIu64
	       " unknown (%" PRIu64 " unresolved)\n", ju64(t, "probes"), ju64(t, "up"),
	       ju64(t, "down"), ju64(t, "unknown"), ju64(t, "unresolved"));
	const json_t *tcp = json_object_get(h, "tcp"), *udp = json_object_get(h, "udp");
	printf("tcp echo:    ");
	print_listen(tcp);
	printf("; %" PRIu64 " active, %" PRIu64 " accepted, %" PRIu64 " bytes in, %" PRIu64
	       " out\n", ju64(tcp, "active"), ju64(tcp, "accepted"), ju64(tcp, "bytes_in"),
	       ju64(tcp, "bytes_out"));
	printf("udp echo:    ");
	print_listen(udp);
	printf("; %" PRIu64 " received, %" PRIu64 " echoed, %" PRIu64 " dropped by rate\n",
	       ju64(udp, "received"), ju64(udp, "echoed"), ju64(udp, "drop_rate"));
	const json_t *web = json_object_get(h, "web");
	printf("web:         ");
	print_listen(web);
	if (json_array_size(json_object_get(web, "listen")))
		printf("; %" PRIu64 " active, %" PRIu64 " requests", ju64(web, "active"),
		       ju64(web, "requests"));
	printf("\n");
	const json_t *icmp = json_object_get(h, "icmp");
	printf("icmp:        sockets %s, timestamping %s\n", jstr(icmp, "sockets", "-"),
	       jstr(icmp, "timestamping", "-"));
	const json_t *ctl = json_object_get(h, "control");
	printf("control:     %s%s\n", jstr(ctl, "path", "?"),
	       json_is_true(json_object_get(ctl, "systemd")) ? " (from systemd)" : "");
	reply_free(&r);
	return 0;
}

static void print_counts(const char *indent, const json_t *o)
{
	char loss[16];
	double lp = jnum(o, "loss_pct");
	ctl_fmt_loss(loss, sizeof loss, lp < 0 ? CTL_NO_VALUE : (uint64_t)(lp * 1000 + 0.5));
	printf("%ssent %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64 " (%s), late %" PRIu64
	       ", duplicates %" PRIu64 ", errors %" PRIu64 "\n", indent, ju64(o, "sent"),
	       ju64(o, "received"), ju64(o, "lost"), loss, ju64(o, "late"),
	       ju64(o, "duplicates"), ju64(o, "errors"));
	char a[5][16];
	const char *k[5] = { "rtt_min_ns", "rtt_avg_ns", "rtt_max_ns", "rtt_mdev_ns",
			     "rtt_jitter_ns" };
	for (int i = 0; i < 5; i++)
		ctl_fmt_rtt(a[i], sizeof a[i], ju64(o, k[i]));
	printf("%srtt min/avg/max/mdev %s/%s/%s/%s, jitter %s\n", indent, a[0], a[1], a[2],
	       a[3], a[4]);
}

static void print_reasons(const char *title, const json_t *o)
{
	const char *key;
	json_t *v;
	bool any = false;

	printf("  %-14s", title);
	json_object_foreach((json_t *)(uintptr_t)o, key, v) {
		if (json_integer_value(v) > 0) {
			printf("%s%s %" JSON_INTEGER_FORMAT, any ? ", " : "", key, json_integer_value(v));
			any = true;
		}
	}
	printf("%s\n", any ? "" : "none");
}

#define DETAIL_INDENT "                "   /* under the 16-column labels */
#define DETAIL_WIDTH 80

/* The label of "recent" or "states", and why there is nothing to list when
 * there is not (then false; also for a daemon from before these fields). */
static bool past_label(const char *label, const json_t *v, bool kept, size_t n,
		       const char *none)
{
	if (!v)
		return false;
	printf("  %-14s", label);
	if (!kept || n == 0) {
		printf("%s\n", kept ? none : "not kept (history = no)");
		return false;
	}
	return true;
}

/* The last outcomes: how many and when the newest was, then their RTTs
 * (or "lost") oldest first, wrapped under the labels. */
static void print_recent(const json_t *rec)
{
	const json_t *rtts = json_object_get(rec, "rtt_ms");
	size_t i, col = 0;
	json_t *v;
	char when[64], age[32];

	if (!past_label("recent RTTs", rec, json_is_object(rec), json_array_size(rtts), "none yet"))
		return;
	fmt_time(when, sizeof when, jnum(rec, "newest_wall"));
	fmt_age_s(age, sizeof age, jnum(rec, "newest_wall"));
	printf("%zu, oldest first, newest at %s (%s ago)\n",
	       json_array_size(rtts), when, age);
	json_array_foreach(rtts, i, v) {
		char cell[16];
		if (json_is_number(v))
			ctl_fmt_rtt(cell, sizeof cell, (uint64_t)(json_number_value(v) * 1e6 + 0.5));
		else
			snprintf(cell, sizeof cell, "lost");
		size_t w = ctl_text_width(cell);
		if (col && col + 1 + w > DETAIL_WIDTH - (sizeof DETAIL_INDENT - 1)) {
			printf("\n");
			col = 0;
		}
		printf("%s%s", col ? " " : DETAIL_INDENT, cell);
		col += (col ? 1 : 0) + w;
	}
	printf("\n");
}

/* The last up/down changes, one a line, oldest first. */
static void print_states(const json_t *states)
{
	size_t i;
	json_t *c;

	if (!past_label("state changes", states, json_is_array(states), json_array_size(states),
			"none recorded"))
		return;
	json_array_foreach(states, i, c) {
		char when[64], age[32];
		fmt_time(when, sizeof when, jnum(c, "at"));
		fmt_age_s(age, sizeof age, jnum(c, "at"));
		printf("%s%s  %s -> %s  (%s ago)\n", i ? DETAIL_INDENT : "", when,
		       jstr(c, "from", "?"), jstr(c, "to", "?"), age);
	}
}

static int cmd_target(const char *path, int argc, char **argv)
{
	const char *name = NULL;
	bool j = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json"))
			j = true;
		else if (!name)
			name = argv[i];
		else {
			fprintf(stderr, "%s: target takes one NAME\n", prog);
			return EX_USAGE;
		}
	}
	if (!name) {
		fprintf(stderr, "%s: usage: beaconctl target NAME\n", prog);
		return EX_USAGE;
	}
	if (strlen(name) > 128 || strpbrk(name, " \t\r\n")) {
		fprintf(stderr, "%s: \"%s\" is not a target name\n", prog, name);
		return EX_USAGE;
	}
	char line[256];
	snprintf(line, sizeof line, "1 target %s\n", name);
	struct reply r = { 0 };
	int st;
	if ((st = fetch(path, line, "target", j, &r)) || j)
		return st;
	const json_t *probes = json_object_get(r.lines[0], "probes");
	size_t i;
	json_t *p;
	printf("target %s\n", jstr(r.lines[0], "name", name));
	json_array_foreach(probes, i, p) {
		char since[64], age[32], last[16];
		const json_t *set = json_object_get(p, "settings");
		json_t *fam = json_object_get(p, "family");
		fmt_time(since, sizeof since, jnum(p, "since"));
		fmt_age_s(age, sizeof age, jnum(p, "since"));
		ctl_fmt_rtt(last, sizeof last, ju64(p, "rtt_last_ns"));
		printf("\n  probe         IPv%s\n", json_is_integer(fam) ?
		       (json_integer_value(fam) == 6 ? "6" : "4") : "? (not resolved)");
		printf("  host          %s\n", jstr(p, "host", "?"));
		printf("  address       %s\n", jstr(p, "addr", "(not resolved)"));
		printf("  socket        %s\n", jstr(p, "socket", "?"));
		if (json_object_get(p, "labels"))
			printf("  labels        %s\n", jstr(p, "labels", ""));
		printf("  state         %s since %s (%s), %" PRIu64 " changes\n",
		       jstr(p, "state", "?"), since, age, ju64(p, "state_changes"));
		char iv[16], to[16];
		ctl_fmt_rtt(iv, sizeof iv, ju64(set, "interval_ns"));
		ctl_fmt_rtt(to, sizeof to, ju64(set, "timeout_ns"));
		printf("  settings      interval %s, timeout %s, payload %" PRIu64
		       " bytes, down after %" PRIu64 ", up after %" PRIu64 "\n", iv, to,
		       ju64(set, "payload_size"), ju64(set, "down_after"), ju64(set, "up_after"));
		printf("  lifetime      in flight %" PRIu64 ", last rtt %s\n", ju64(p, "in_flight"),
		       last);
		print_counts("                ", p);
		printf("  window\n");
		print_counts("                ", json_object_get(p, "window"));
		print_reasons("send errors", json_object_get(p, "send_errors"));
		print_reasons("icmp errors", json_object_get(p, "icmp_errors"));
		print_recent(json_object_get(p, "recent"));
		print_states(json_object_get(p, "states"));
	}
	reply_free(&r);
	return 0;
}

/* history and graph: NAME, --range R / --range=R, --family F / --family=F,
 * -j (history).  Builds the request line. */
static int history_args(const char *what, int argc, char **argv, bool *j, char *line, size_t len)
{
	const char *name = NULL, *range = NULL, *fam = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (j && (!strcmp(a, "-j") || !strcmp(a, "--json")))
			*j = true;
		else if (!strncmp(a, "--range=", 8))
			range = a + 8;
		else if (!strcmp(a, "--range") && i + 1 < argc)
			range = argv[++i];
		else if (!strncmp(a, "--family=", 9))
			fam = a + 9;
		else if (!strcmp(a, "--family") && i + 1 < argc)
			fam = argv[++i];
		else if (a[0] != '-' && !name)
			name = a;
		else {
			fprintf(stderr, "%s: %s: unexpected argument \"%s\"\n", prog, what, a);
			return EX_USAGE;
		}
	}
	if (!name) {
		fprintf(stderr, "%s: usage: beaconctl %s NAME [--range=R] [--family=4|6]%s\n", prog,
			what, j ? " [-j]" : "");
		return EX_USAGE;
	}
	const char *args[3] = { name, range, fam };
	for (int i = 0; i < 3; i++)
		if (args[i] && (strlen(args[i]) > 128 || strpbrk(args[i], " \t\r\n") || !*args[i])) {
			fprintf(stderr, "%s: \"%s\" is not a valid argument\n", prog, args[i]);
			return EX_USAGE;
		}
	snprintf(line, len, "1 %s %s%s%s%s%s\n", what, name, range ? " --range=" : "",
		 range ? range : "", fam ? " --family=" : "", fam ? fam : "");
	return 0;
}

static void fmt_clock(char *buf, size_t len, uint64_t unix_s)
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static int cmd_history(const char *path, int argc, char **argv)
{
	bool j = false;
	char line[512];
	int st = history_args("history", argc, argv, &j, line, sizeof line);
	if (st)
		return st;
	struct reply r = { 0 };
	if ((st = fetch(path, line, "history", false, &r)))
		return st;
	const json_t *h = r.lines[0];
	const json_t *end = r.lines[r.n - 1];
	if (r.n < 2 || !json_is_true(json_object_get(end, "end"))) {
		fprintf(stderr, "%s: the reply ended early\n", prog);
		reply_free(&r);
		return EX_PROTOCOL;
	}
	if (j) {
		json_t *out = json_object();
		json_t *rounds = json_array();
		const char *keys[] = { "target", "host", "family", "tier", "step_s", "quantile_pct" };
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
			json_object_set(out, keys[k], json_object_get(h, keys[k]));
		for (size_t i = 1; i + 1 < r.n; i++)
			json_array_append(rounds, r.lines[i]);
		json_object_set_new(out, "rounds", rounds);
		char *s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
		if (s)
			puts(s);
		free(s);
		json_decref(out);
		reply_free(&r);
		return 0;
	}
	printf("%s (%s, IPv%" PRIu64 "): rounds of %.0f s, UTC\n", jstr(h, "target", "?"),
	       jstr(h, "host", "?"), ju64(h, "family"), jnum(h, "step_s"));
	printf("%-19s %7s %7s %6s %10s %10s %10s\n", "start", "sent", "lost", "loss",
	       "min", "median", "max");
	for (size_t i = 1; i + 1 < r.n; i++) {
		const json_t *o = r.lines[i];
		char when[32], mn[16] = "-", md[16] = "-", mx[16] = "-";
		fmt_clock(when, sizeof when, ju64(o, "start"));
		const json_t *q = json_object_get(o, "quantiles_ms");
		if (json_is_array(q) && json_array_size(q) == 11) {
			ctl_fmt_rtt(mn, sizeof mn, (uint64_t)(json_number_value(json_array_get(q, 0)) * 1e6));
			ctl_fmt_rtt(md, sizeof md, (uint64_t)(json_number_value(json_array_get(q, 5)) * 1e6));
			ctl_fmt_rtt(mx, sizeof mx, (uint64_t)(json_number_value(json_array_get(q, 10)) * 1e6));
		}
		uint64_t sent = ju64(o, "sent"), lost = ju64(o, "lost");
		printf("%-19s %7" PRIu64 " %7" PRIu64 " %5.1f%% %10s %10s %10s\n", when, sent, lost,
		       sent ? 100.0 * (double)lost / (double)sent : 0.0, mn, md, mx);
	}
	printf("%" PRIu64 " rounds\n", ju64(end, "rounds"));
	reply_free(&r);
	return 0;
}

static int cmd_graph(const char *path, int argc, char **argv)
{
	char line[512];
	int st = history_args("graph", argc, argv, NULL, line, sizeof line);
	if (st)
		return st;
	struct reply r = { 0 };
	if ((st = fetch(path, line, "graph", false, &r)))
		return st;
	if (r.n < 2 || !json_is_true(json_object_get(r.lines[r.n - 1], "end"))) {
		fprintf(stderr, "%s: the reply ended early\n", prog);
		reply_free(&r);
		return EX_PROTOCOL;
	}
	for (size_t i = 1; i + 1 < r.n; i++) {
		const json_t *d = json_object_get(r.lines[i], "data");
		if (json_is_string(d))
			fwrite(json_string_value(d), 1, json_string_length(d), stdout);
	}
	reply_free(&r);
	return 0;
}

static int cmd_stats(const char *path, int argc, char **argv)
{
	int st;
	bool j = want_json(argc, argv, &st);
	if (st)
		return st;
	struct reply r = { 0 };
	if ((st = fetch(path, "1 stats\n", "stats", j, &r)) || j)
		return st;
	const char *svcs[] = { "tcp", "udp", "stamp" };
	for (int s = 0; s < 3; s++) {
		const json_t *o = json_object_get(r.lines[0], svcs[s]);
		if (!json_is_object(o))
			continue;
		const char *key;
		json_t *v;
		printf("%s\n", svcs[s]);
		json_object_foreach((json_t *)(uintptr_t)o, key, v)
			printf("  %-16s %" JSON_INTEGER_FORMAT "\n", key, json_integer_value(v));
	}
	reply_free(&r);
	return 0;
}

static int cmd_reload(const char *path, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "%s: reload takes no arguments\n", prog);
		return EX_USAGE;
	}
	struct reply r = { 0 };
	int st;
	if ((st = fetch(path, "1 reload\n", "reload", false, &r)))
		return st;
	const json_t *h = r.lines[0];
	if (json_is_true(json_object_get(h, "reloaded"))) {
		printf("%s\n", jstr(h, "result", "reloaded"));
		st = 0;
	} else {
		/* Exactly what `beacond -t` prints for the same file. */
		fprintf(stderr, "beacond: %s\n", jstr(h, "error", "reload failed"));
		fprintf(stderr, "%s: reload refused; beacond keeps running the previous "
			"configuration\n", prog);
		st = EX_CONFIG;
	}
	reply_free(&r);
	return st;
}

static int cmd_help(const char *path, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct reply r = { 0 };
	int st;
	if ((st = fetch(path, "1 help\n", "help", false, &r)))
		return st;
	for (size_t i = 1; i < r.n; i++)
		printf("%-24s %s%s\n", jstr(r.lines[i], "usage", "?"), jstr(r.lines[i], "help", ""),
		       json_is_true(json_object_get(r.lines[i], "privileged")) ?
		       " (root or the daemon's user)" : "");
	reply_free(&r);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *conf = NULL;
	int c;

	/* '+': stop at the command; what follows are the command's options
	 * (so "beaconctl -c FILE targets -c" is a config file, then CSV). */
	while ((c = getopt_long(argc, argv, "+s:c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("beaconctl %s (protocol %d)\n", BEACOND_VERSION, CTL_PROTO_VERSION);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (sock && conf) {
		fprintf(stderr, "%s: -s and -c exclude each other\n", prog);
		return EX_USAGE;
	}
	struct config *cfg = NULL;
	if (conf) {
		char err[512];
		if (config_load(conf, &cfg, err, sizeof err) < 0) {
			fprintf(stderr, "%s: %s\n", prog, err);
			return EX_CONFIG;
		}
		sock = cfg->daemon.control_socket;
		if (!*sock) {
			fprintf(stderr, "%s: %s sets no control_socket: the daemon has none\n", prog,
				conf);
			config_free(cfg);
			return EX_UNAVAILABLE;
		}
	}
	if (!sock)
		sock = CTL_DEFAULT_SOCKET;

	const char *cmd = argv[optind];
	int cargc = argc - optind;
	char **cargv = argv + optind;
	int st;
	if (!strcmp(cmd, "status"))
		st = cmd_status(sock, cargc, cargv);
	else if (!strcmp(cmd, "targets"))
		st = cmd_targets(sock, cargc, cargv);
	else if (!strcmp(cmd, "target"))
		st = cmd_target(sock, cargc, cargv);
	else if (!strcmp(cmd, "watch"))
		st = cmd_watch(sock, cargc, cargv);
	else if (!strcmp(cmd, "reload"))
		st = cmd_reload(sock, cargc, cargv);
	else if (!strcmp(cmd, "stats"))
		st = cmd_stats(sock, cargc, cargv);
	else if (!strcmp(cmd, "history"))
		st = cmd_history(sock, cargc, cargv);
	else if (!strcmp(cmd, "graph"))
		st = cmd_graph(sock, cargc, cargv);
	else if (!strcmp(cmd, "help"))
		st = cmd_help(sock, cargc, cargv);
	else {
		fprintf(stderr, "%s: unknown command \"%s\" (see beaconctl --help)\n", prog, cmd);
		st = EX_USAGE;
	}
	config_free(cfg);
	if (fflush(stdout) != 0 && !st)
		st = EX_IOERR;
	return st;
}
