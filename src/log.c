/*
 * log: one event per line in logfmt or JSON, written with one write(2).
 *
 * The daemon is single-threaded, so one static line buffer is enough and a
 * line costs no allocation.  Lines are capped at LOG_LINE_MAX bytes; a field
 * that does not fit is cut (strings) or left out (numbers) and the line ends
 * with truncated=true, so it is still well formed.  Every value is escaped
 * so that a line is valid UTF-8, a logfmt line splits unambiguously and a
 * JSON line parses, whatever bytes a peer managed to put into a value.
 *
 * Logging never blocks the loop on purpose and never fails the caller: a
 * line that cannot be written (EAGAIN, EPIPE, ENOSPC ...) is dropped and
 * counted.  stderr is left in whatever mode the parent gave us, because its
 * file description is shared with other processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>

#include "json.h"
#include "log.h"

#define LOG_LINE_MAX 4096
/* Room kept back for what log_end() and a cut string must still write:
 * a closing quote, ",\"truncated\":true", "}" and "\n". */
#define LOG_LINE_RESERVE 32

/* The native journal fields of a line: every key again as BEACOND_KEY=,
 * with its raw (unescaped) value.  Fields that do not fit are left out of
 * the datagram; MESSAGE= still carries them. */
#define LOG_JOURNAL_MAX (2 * LOG_LINE_MAX)

struct logline {
	size_t len;
	bool truncated;
	char buf[LOG_LINE_MAX];
	enum log_level level;
	const char *event;
	size_t jlen;
	char jbuf[LOG_JOURNAL_MAX];
};

static struct {
	bool ready;              /* defaults applied (journal detected) */
	enum log_level level;
	enum log_format format;
	int fd;
	bool own_fd;             /* fd is our file target, ours to close */
	bool is_file;
	bool journal;            /* the journal reads us: no ts */
	bool native;             /* ... through its datagram socket (jfd),
				  * else through the stream, "<N>" prefixes */
	int jfd;
	uint64_t dropped;
	char path[4096];
} g = {
	.level = LOG_INFO,
	.format = LOG_FMT_LOGFMT,
	.fd = 2,
	.jfd = -1,
};

/* Tests may point the native protocol elsewhere (a socket of their own). */
#define JOURNAL_SOCKET_DEFAULT "/run/systemd/journal/socket"

static struct logline line;
/* Scratch for log_strf/log_msg formatting. */
static char fmtbuf[LOG_LINE_MAX];

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug",
	[LOG_INFO] = "info",
	[LOG_NOTICE] = "notice",
	[LOG_WARNING] = "warning",
	[LOG_ERR] = "error",
};

/* syslog(3) priorities as journald reads them from a "<N>" prefix. */
static const char level_prio[] = {
	[LOG_DEBUG] = '7',
	[LOG_INFO] = '6',
	[LOG_NOTICE] = '5',
	[LOG_WARNING] = '4',
	[LOG_ERR] = '3',
};

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level < sizeof level_names / sizeof level_names[0])
		return level_names[level];
	return "unknown";
}

/* ---- target ---- */

/* systemd sets JOURNAL_STREAM=DEV:INO for the stream it connected to our
 * stderr; if stderr is still that stream, the journal reads "<N>" prefixes
 * and adds its own timestamps. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (!env || !*env)
		return false;
	errno = 0;
	dev = strtoull(env, &end, 10);
	if (end == env || *end != ':' || errno)
		return false;
	env = end + 1;
	ino = strtoull(env, &end, 10);
	if (end == env || *end || errno)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static void journal_close(void)
{
	if (g.jfd >= 0)
		close(g.jfd);
	g.jfd = -1;
	g.native = false;
}

/* Connect a datagram socket to journald's native socket.  Returns 0, or
 * -1 with the reason in err. */
static int journal_open(char *err, size_t errlen)
{
	const char *path = getenv("BEACOND_JOURNAL_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (!path || !*path)
		path = JOURNAL_SOCKET_DEFAULT;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	journal_close();
	g.jfd = fd;
	g.native = true;
	return 0;
}

static void use_stderr_as(bool journal)
{
	if (g.own_fd)
		close(g.fd);
	g.fd = STDERR_FILENO;
	g.own_fd = false;
	g.is_file = false;
	g.journal = journal;
	g.path[0] = '\0';
	g.ready = true;
}

/* Why the native socket could not be used when stderr is the journal
 * (log_setup logs it). */
static char auto_jerr[200];

static void use_stderr(void)
{
	use_stderr_as(stderr_is_journal());
	/* The journal reads our stderr: talk to it natively instead, so every
	 * key becomes a field.  Without its socket, stay on the stream. */
	if (g.journal && !g.native && journal_open(auto_jerr, sizeof auto_jerr) == 0)
		auto_jerr[0] = '\0';
	if (!g.journal)
		journal_close();
}

/* A pipe or socket on stderr (the journal stream, a supervisor's pipe) is
 * made nonblocking, so a reader that falls behind costs dropped lines, never
 * a stalled event loop.  A terminal or a file is left alone: its open file
 * description is shared with the shell, and writes to it do not block on a
 * reader anyway. */
static void stderr_nonblocking(void)
{
	struct stat st;
	int flags;

	if (fstat(STDERR_FILENO, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return;
	flags = fcntl(STDERR_FILENO, F_GETFL);
	if (flags >= 0 && !(flags & O_NONBLOCK))
		fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK);
}

static void ensure_ready(void)
{
	if (!g.ready) {
		int saved = errno;
		use_stderr();
		errno = saved;
	}
}

static int open_log_file(const char *path)
{
	int fd;

	do
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	while (fd < 0 && errno == EINTR);
	return fd;
}

int log_setup(enum log_level level, enum log_format format, const char *target,
	      char *err, size_t errlen)
{
	if ((unsigned)level > LOG_ERR || (unsigned)format > LOG_FMT_JSON) {
		snprintf(err, errlen, "invalid log level or format");
		errno = EINVAL;
		return -1;
	}
	char jerr[200] = "";
	if (target && !strcmp(target, "journal")) {
		/* Without the socket, fall back to the stream (and say why
		 * once the new level and format are in place). */
		use_stderr_as(true);
		if (!g.native)
			(void)journal_open(jerr, sizeof jerr);
		stderr_nonblocking();
	} else if (!target || !*target || !strcmp(target, "auto")) {
		use_stderr();
		stderr_nonblocking();
		if (auto_jerr[0]) {
			snprintf(jerr, sizeof jerr, "%s", auto_jerr);
			auto_jerr[0] = '\0';
		}
	} else if (!strcmp(target, "stderr")) {
		/* Explicitly the stream: "<N>" prefixes when it is the journal. */
		journal_close();
		use_stderr_as(stderr_is_journal());
		stderr_nonblocking();
	} else {
		size_t n = strlen(target);
		int fd;

		if (n >= sizeof g.path) {
			snprintf(err, errlen, "log file path too long");
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = open_log_file(target);
		if (fd < 0) {
			int e = errno;
			snprintf(err, errlen, "cannot open log file %s: %s", target, strerror(e));
			errno = e;
			return -1;
		}
		if (g.own_fd)
			close(g.fd);
		g.fd = fd;
		g.own_fd = true;
		g.is_file = true;
		g.journal = false;
		journal_close();
		memcpy(g.path, target, n + 1);
		g.ready = true;
	}
	g.level = level;
	g.format = format;
	if (jerr[0]) {
		struct logline *l = log_begin(LOG_WARNING, "journal_unavailable");
		log_str(l, "reason", jerr);
		log_str(l, "msg", "logging to the journal through stderr instead");
		log_end(l);
	}
	return 0;
}

int log_reopen(void)
{
	int fd;

	if (!g.is_file)
		return 0;
	/* Open the new file before closing the old one: if the directory is
	 * gone or full, we keep logging into the old (maybe renamed) file. */
	fd = open_log_file(g.path);
	if (fd < 0)
		return -1;
	close(g.fd);
	g.fd = fd;
	return 0;
}

void log_close(void)
{
	int saved = errno;

	journal_close();
	use_stderr_as(false);
	errno = saved;
}

void log_set_fd(int fd)
{
	if (g.own_fd)
		close(g.fd);
	journal_close();
	g.fd = fd;
	g.own_fd = false;
	g.is_file = false;
	g.journal = false;
	g.path[0] = '\0';
	g.ready = true;
}

bool log_native_journal(void)
{
	return g.native;
}

uint64_t log_dropped(void)
{
	return g.dropped;
}

bool log_enabled(enum log_level level)
{
	return level >= g.level;
}

/* ---- building a line ---- */

/* True when n more bytes fit below the reserve; marks the line truncated
 * (and keeps it so: later fields are dropped too) when they do not. */
static bool room(struct logline *l, size_t n)
{
	if (l->truncated)
		return false;
	if (l->len + n > LOG_LINE_MAX - LOG_LINE_RESERVE) {
		l->truncated = true;
		return false;
	}
	return true;
}

static bool put(struct logline *l, const char *s, size_t n)
{
	if (!room(l, n))
		return false;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
}

static bool puts_(struct logline *l, const char *s)
{
	return put(l, s, strlen(s));
}

/* Writes into the reserve; only for the few bytes it was kept for. */
static void put_reserved(struct logline *l, const char *s, size_t n)
{
	if (l->len + n <= LOG_LINE_MAX) {
		memcpy(l->buf + l->len, s, n);
		l->len += n;
	}
}

static bool logfmt_needs_quotes(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	if (n == 0)
		return true;
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t u;

		if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
			return true;
		u = json_utf8_len(p + i, n - i);
		if (u == 0)
			return true;
		i += u;
	}
	return false;
}

/* Append an escaped string inside quotes; cut at a unit boundary when the
 * line is full, but always close the quote. */
static bool put_quoted(struct logline *l, const char *s, size_t n, bool json)
{
	const unsigned char *p = (const unsigned char *)s;
	char unit[8];
	size_t ulen;

	if (!put(l, "\"", 1))
		return false;
	for (size_t i = 0; i < n;) {
		size_t used = json_escape_unit(p + i, n - i, json, unit, &ulen);
		if (!put(l, unit, ulen))
			break;
		i += used;
	}
	put_reserved(l, "\"", 1);
	return true;
}

/* Start a field: separator and key.  On overflow the line is left as it
 * was before the field and false is returned. */
static bool put_key(struct logline *l, const char *key)
{
	size_t start = l->len;
	bool ok;

	if (g.format == LOG_FMT_JSON) {
		ok = put(l, ",", 1);
		if (ok) {
			/* Keys are identifiers we chose; escape them anyway so
			 * a mistake can never produce broken JSON. */
			ok = put_quoted(l, key, strlen(key), true) && !l->truncated;
		}
		ok = ok && put(l, ":", 1);
	} else {
		ok = put(l, " ", 1) && puts_(l, key) && put(l, "=", 1);
	}
	if (!ok)
		l->len = start;
	return ok;
}

/* Returns false when not even the start of the value fit. */
static bool put_string_value(struct logline *l, const char *s, size_t n)
{
	if (g.format == LOG_FMT_JSON || logfmt_needs_quotes(s, n))
		return put_quoted(l, s, n, g.format == LOG_FMT_JSON);
	/* Plain logfmt value: copy what fits, cut between UTF-8 sequences. */
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t u = json_utf8_len(p + i, n - i);
		if (!put(l, s + i, u))
			return i > 0;
		i += u;
	}
	return true;
}

/*
 * The journal's native protocol (systemd.journal-fields(7), "Native
 * Journal Protocol"): a datagram of FIELD=value lines; a value with a
 * newline is sent as FIELD, LF, its length as 64-bit little endian, the
 * bytes, LF.  Field names are upper case, digits and '_', so "rtt_ms"
 * becomes BEACOND_RTT_MS.
 */
static void jput(struct logline *l, const void *p, size_t n)
{
	memcpy(l->jbuf + l->jlen, p, n);
	l->jlen += n;
}

static void jfield_named(struct logline *l, const char *name, size_t nlen, const char *v,
			 size_t n)
{
	bool binary = memchr(v, '\n', n) != NULL;
	size_t need = nlen + 1 + (binary ? 8 : 0) + n + 1;

	if (l->jlen + need > sizeof l->jbuf)
		return;
	jput(l, name, nlen);
	if (binary) {
		uint64_t le = 0;
		for (int i = 0; i < 8; i++)
			((unsigned char *)&le)[i] = (unsigned char)((uint64_t)n >> (8 * i));
		jput(l, "\n", 1);
		jput(l, &le, 8);
	} else {
		jput(l, "=", 1);
	}
	jput(l, v, n);
	jput(l, "\n", 1);
}

static void jfield(struct logline *l, const char *key, const char *v, size_t n)
{
	char name[72] = "BEACOND_";
	size_t k = 8;

	if (!g.native)
		return;
	for (const char *p = key; *p && k < sizeof name - 1; p++) {
		char c = *p;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		name[k++] = c;
	}
	jfield_named(l, name, k, v, n);
}

/* A stable MESSAGE_ID per event type (sd-id128 style, 32 hex digits):
 * two FNV-1a hashes of "beacond:" EVENT.  The same event name always gives
 * the same id, across restarts, hosts and versions. */
void log_message_id(const char *event, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h[2] = { 0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL };
	const char *pfx = "beacond:";

	for (int k = 0; k < 2; k++) {
		for (const char *p = pfx; *p; p++)
			h[k] = (h[k] ^ (unsigned char)*p) * 0x100000001b3ULL;
		for (const char *p = event; *p; p++)
			h[k] = (h[k] ^ (unsigned char)*p) * 0x100000001b3ULL;
	}
	for (int i = 0; i < 32; i++)
		out[i] = hex[(h[i / 16] >> (60 - 4 * (i % 16))) & 15];
	out[32] = '\0';
}

static void field_strn(struct logline *l, const char *key, const char *s, size_t n)
{
	size_t start;

	if (!l)
		return;
	start = l->len;
	if (!put_key(l, key))
		return;
	/* A key without a value would break JSON; drop the whole field. */
	if (!put_string_value(l, s, n))
		l->len = start;
	else
		jfield(l, key, s, n);
}

/* A field whose value is a token that is never quoted (numbers, booleans,
 * null): all or nothing. */
static void field_raw(struct logline *l, const char *key, const char *v)
{
	size_t start;

	if (!l)
		return;
	start = l->len;
	if (!put_key(l, key))
		return;
	if (!puts_(l, v))
		l->len = start;
	else
		jfield(l, key, v, strlen(v));
}

static const char *timestamp(void)
{
	static char buf[40];
	static time_t last_sec = -1;
	static size_t sec_len;
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != last_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		sec_len = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
		last_sec = ts.tv_sec;
	}
	snprintf(buf + sec_len, sizeof buf - sec_len, ".%03ldZ", ts.tv_nsec / 1000000);
	return buf;
}

bool log_rate_due(struct log_rate *r, uint64_t now_ns, uint64_t period_ns,
		  uint64_t *suppressed)
{
	if (r->next_ns != 0 && now_ns < r->next_ns) {
		if (r->suppressed < UINT64_MAX)
			r->suppressed++;
		return false;
	}
	*suppressed = r->suppressed;
	r->suppressed = 0;
	r->next_ns = now_ns + period_ns;
	if (r->next_ns == 0)
		r->next_ns = 1;
	return true;
}

struct logline *log_begin_rate(struct log_rate *r, uint64_t now_ns, uint64_t period_ns,
			       enum log_level level, const char *event,
			       const char *service)
{
	struct logline *l;
	uint64_t suppressed;

	if (!log_enabled(level) || !log_rate_due(r, now_ns, period_ns, &suppressed))
		return NULL;
	l = log_begin(level, event);
	if (service)
		log_str(l, "service", service);
	if (suppressed)
		log_u64(l, "suppressed", suppressed);
	return l;
}

struct logline *log_begin(enum log_level level, const char *event)
{
	struct logline *l = &line;
	bool json;

	if (level < g.level)
		return NULL;
	ensure_ready();
	json = g.format == LOG_FMT_JSON;
	l->len = 0;
	l->truncated = false;
	l->level = level;
	l->event = event;
	l->jlen = 0;
	if (g.native)
		jfield(l, "level", log_level_name(level), strlen(log_level_name(level)));
	if (g.journal && !g.native) {
		char prio[3] = { '<', '6', '>' };
		if ((unsigned)level <= LOG_ERR)
			prio[1] = level_prio[level];
		put(l, prio, 3);
	}
	if (json) {
		put(l, "{", 1);
		if (!g.journal) {
			puts_(l, "\"ts\":\"");
			puts_(l, timestamp());
			put(l, "\"", 1);
		}
		puts_(l, g.journal ? "\"level\":\"" : ",\"level\":\"");
		puts_(l, log_level_name(level));
		put(l, "\"", 1);
	} else {
		if (!g.journal) {
			puts_(l, "ts=");
			puts_(l, timestamp());
			put(l, " ", 1);
		}
		puts_(l, "level=");
		puts_(l, log_level_name(level));
	}
	if (event)
		field_strn(l, "event", event, strlen(event));
	return l;
}

void log_str(struct logline *l, const char *key, const char *value)
{
	if (!l)
		return;
	if (!value) {
		if (g.format == LOG_FMT_JSON)
			field_raw(l, key, "null");
		else
			field_strn(l, key, "", 0);
		return;
	}
	field_strn(l, key, value, strlen(value));
}

void log_int(struct logline *l, const char *key, int64_t value)
{
	char buf[24];

	if (!l)
		return;
	snprintf(buf, sizeof buf, "%" PRId64, value);
	field_raw(l, key, buf);
}

void log_u64(struct logline *l, const char *key, uint64_t value)
{
	char buf[24];

	if (!l)
		return;
	snprintf(buf, sizeof buf, "%" PRIu64, value);
	field_raw(l, key, buf);
}

/* Formatted by json.c, so log lines and control replies print numbers
 * the same way. */
void log_fixed(struct logline *l, const char *key, uint64_t value, uint64_t scale,
	       int decimals)
{
	char buf[48];

	if (!l)
		return;
	json_fmt_fixed(buf, value, scale, decimals);
	field_raw(l, key, buf);
}

void log_double(struct logline *l, const char *key, double value, int decimals)
{
	char buf[64];

	if (!l)
		return;
	if (!isfinite(value)) {
		/* JSON has no NaN or infinity. */
		if (g.format == LOG_FMT_JSON)
			field_raw(l, key, "null");
		else
			field_raw(l, key, isnan(value) ? "nan" : value > 0 ? "inf" : "-inf");
		return;
	}
	if (decimals < 0)
		decimals = 0;
	if (decimals > 17)
		decimals = 17;
	if (snprintf(buf, sizeof buf, "%.*f", decimals, value) >= (int)sizeof buf) {
		/* Astronomically large: exponent form still parses as a number. */
		snprintf(buf, sizeof buf, "%.*e", decimals, value);
	}
	field_raw(l, key, buf);
}

void log_bool(struct logline *l, const char *key, bool value)
{
	field_raw(l, key, value ? "true" : "false");
}

void log_addr(struct logline *l, const char *key, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	char buf[sizeof host + 16];
	uint16_t port = 0;
	bool v6 = false;
	int saved = errno;

	if (!l)
		return;
	if (!sa) {
		log_str(l, key, NULL);
		return;
	}
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
		port = ntohs(in4->sin_port);
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			/* ::ffff:a.b.c.d is an IPv4 peer on a dual-stack socket. */
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
			break;
		}
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		if (in6->sin6_scope_id) {
			size_t n = strlen(host);
			char ifname[IF_NAMESIZE];
			if (if_indextoname(in6->sin6_scope_id, ifname))
				snprintf(host + n, sizeof host - n, "%%%s", ifname);
			else
				snprintf(host + n, sizeof host - n, "%%%u",
					 (unsigned)in6->sin6_scope_id);
		}
		v6 = true;
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)sa;
		snprintf(buf, sizeof buf, "unix:%.*s", (int)(sizeof buf - 8),
			 un->sun_path[0] ? un->sun_path : "@");
		log_str(l, key, buf);
		errno = saved;
		return;
	}
	default:
		snprintf(buf, sizeof buf, "af%u", (unsigned)sa->sa_family);
		log_str(l, key, buf);
		return;
	}
	if (port == 0)
		snprintf(buf, sizeof buf, "%s", host);
	else if (v6)
		snprintf(buf, sizeof buf, "[%s]:%u", host, (unsigned)port);
	else
		snprintf(buf, sizeof buf, "%s:%u", host, (unsigned)port);
	log_str(l, key, buf);
	errno = saved;
}

void log_errno(struct logline *l, int err)
{
	if (!l)
		return;
	log_str(l, "error", strerror(err));
}

__attribute__((format(printf, 3, 0)))
static void vstrf(struct logline *l, const char *key, const char *fmt, va_list ap)
{
	int n = vsnprintf(fmtbuf, sizeof fmtbuf, fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof fmtbuf) {
		field_strn(l, key, fmtbuf, sizeof fmtbuf - 1);
		l->truncated = true;
		return;
	}
	field_strn(l, key, fmtbuf, (size_t)n);
}

void log_strf(struct logline *l, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (!l)
		return;
	va_start(ap, fmt);
	vstrf(l, key, fmt, ap);
	va_end(ap);
}

static void emit(const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(g.fd, buf, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			g.dropped++;
			return;
		}
		/* A short write (a full disk, a signal) leaves the rest:
		 * write it too rather than leave half a line behind. */
		buf += w;
		n -= (size_t)w;
	}
}

/* One datagram: MESSAGE= (the line as the stream would carry it),
 * PRIORITY=, SYSLOG_IDENTIFIER=, MESSAGE_ID=, then the BEACOND_ fields. */
static void emit_native(struct logline *l)
{
	char head[160], id[33];
	unsigned prio = (unsigned)l->level <= LOG_ERR ? (unsigned)(level_prio[l->level] - '0') : 6;
	size_t msglen = l->len > 0 ? l->len - 1 : 0;   /* without the LF */
	int hn;

	log_message_id(l->event ? l->event : "", id);
	hn = snprintf(head, sizeof head, "PRIORITY=%u\nSYSLOG_IDENTIFIER=beacond\nMESSAGE_ID=%s\n",
		      prio, id);
	struct iovec iov[] = {
		{ .iov_base = (void *)(uintptr_t)"MESSAGE=", .iov_len = 8 },
		{ .iov_base = l->buf, .iov_len = msglen },
		{ .iov_base = (void *)(uintptr_t)"\n", .iov_len = 1 },
		{ .iov_base = head, .iov_len = (size_t)hn },
		{ .iov_base = l->jbuf, .iov_len = l->jlen },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = sizeof iov / sizeof iov[0] };
	ssize_t w;

	do
		w = sendmsg(g.jfd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		g.dropped++;
}

void log_end(struct logline *l)
{
	int saved = errno;

	if (!l)
		return;
	if (l->truncated) {
		if (g.format == LOG_FMT_JSON)
			put_reserved(l, ",\"truncated\":true", 17);
		else
			put_reserved(l, " truncated=true", 15);
	}
	if (g.format == LOG_FMT_JSON)
		put_reserved(l, "}", 1);
	put_reserved(l, "\n", 1);
	if (g.native)
		emit_native(l);
	else
		emit(l->buf, l->len);
	l->len = 0;
	errno = saved;
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	struct logline *l = log_begin(level, event);
	va_list ap;

	if (!l)
		return;
	va_start(ap, fmt);
	vstrf(l, "msg", fmt, ap);
	va_end(ap);
	log_end(l);
}
