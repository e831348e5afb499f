/*
 * config: the inih callback, defaults, per-key validation, typed values.
 *
 * inih splits lines into sections, keys and values.  Everything around it is
 * ours, for three reasons found in Debian's libinih r55:
 *   - lines longer than the library's buffer are cut and the rest is parsed
 *     as further lines, which could turn one long value into a different,
 *     valid one.  We hand inih one line at a time through ini_parse_stream()
 *     and refuse a line that does not fit the buffer it offers us;
 *   - section names are cut at 50 bytes and empty sections are never
 *     reported, so the reader recognises section headers itself (it sees
 *     each line just before inih does, so the reader's idea of the current
 *     section is exact when the key handler runs);
 *   - a NUL byte ends a line for fgets-style readers; we read the whole file
 *     into memory and reject control characters before inih sees them.
 *
 * Library knobs (this build exposes them as globals) are set around each
 * parse and restored afterwards: a 64 KiB line limit, no multi-line values
 * (an indented "key = value" is an ordinary line, not a continuation), ";"
 * and "#" inline comments, stop at the first error.
 */
#include "config.h"
#include "labels.h"
#include "net.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#define CONFIG_MAX_FILE (16u << 20)
#define CONFIG_MAX_LINE 65536
#define TARGET_NAME_MAX 64
#define IFNAME_MAX 15

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define SEC NSEC_PER_SEC
#define MSEC NSEC_PER_MSEC
#define MINUTE (60 * SEC)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)

_Static_assert(sizeof(enum log_level) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum svc_mode) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum icmp_socket_kind) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum target_family) == sizeof(int), "enum stored as int");

static const char default_listen[] = "127.0.0.1:7, [::1]:7";
static const char default_web_listen[] = "127.0.0.1:9437, [::1]:9437";
static const char default_web_allow[] = "127.0.0.0/8, ::1/128";
static const char default_stamp_listen[] = "127.0.0.1:862, [::1]:862";
static const char default_allow[] =
	"127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
	"169.254.0.0/16, fc00::/7, fe80::/10";

enum section_kind {
	SEC_NONE,
	SEC_DAEMON,
	SEC_TCP,
	SEC_UDP,
	SEC_STAMP,
	SEC_ICMP,
	SEC_WEB,
	SEC_TARGET,
	SEC_COUNT,
};

static const char *const section_names[SEC_COUNT] = {
	[SEC_NONE] = "",
	[SEC_DAEMON] = "daemon",
	[SEC_TCP] = "tcp",
	[SEC_UDP] = "udp",
	[SEC_STAMP] = "stamp",
	[SEC_ICMP] = "icmp",
	[SEC_WEB] = "web",
	[SEC_TARGET] = "target NAME",
};

enum key_type {
	K_BOOL,
	K_U32,
	K_DURATION,
	K_SIZE,
	K_ENUM,
	K_LOG_TARGET,
	K_ENDPOINTS,
	K_CIDRS,
	K_HOST,
	K_SOURCE,
	K_INTERFACE,
	K_DNS_SERVERS,
	K_BUCKETS,
	K_LABELS,
	K_SOCKET_PATH,
	K_GROUP,
	K_DIR,
};

/*
 * One key: its type, where it lives (offset inside the section's struct)
 * and its range.  zero_ok means 0 is allowed besides [min, max] (0 = off).
 */
struct key_def {
	const char *name;
	enum key_type type;
	size_t off;
	size_t off_n;                    /* K_ENDPOINTS: offset of the count */
	uint64_t min, max;
	bool zero_ok;
	const char *const *names;        /* K_ENUM: NULL-terminated */
};

static const char *const level_names[] = {
	"debug", "info", "notice", "warning", "error", NULL,
};
static const char *const format_names[] = { "logfmt", "json", NULL };
static const char *const mode_names[] = { "echo", "discard", NULL };
static const char *const socket_names[] = { "auto", "dgram", "raw", NULL };
static const char *const family_names[] = { "auto", "4", "6", "both", NULL };
static const char *const histogram_names[] = { "fine", "coarse", "off", NULL };
static const char *const stamp_mode_names[] = { "stateless", "stateful", NULL };
static const char *const stamp_short_names[] = { "reply", "drop", NULL };
static const char *const stamp_cos_names[] = { "keep", "apply", NULL };

#define D(f) offsetof(struct config_daemon, f)
static const struct key_def daemon_keys[] = {
	{ "log_level", K_ENUM, D(log_level), 0, 0, 0, false, level_names },
	{ "log_format", K_ENUM, D(log_format), 0, 0, 0, false, format_names },
	{ "log_target", K_LOG_TARGET, D(log_target), 0, 0, 0, false, NULL },
	{ "shutdown_timeout", K_DURATION, D(shutdown_timeout_ns), 0, 0, HOUR, false, NULL },
	{ "stats_interval", K_DURATION, D(stats_interval_ns), 0, SEC, DAY, true, NULL },
	{ "dns_servers", K_DNS_SERVERS, D(dns_servers), 0, 0, 0, false, NULL },
	{ "control_socket", K_SOCKET_PATH, D(control_socket), 0, 0, 0, false, NULL },
	{ "control_group", K_GROUP, D(control_group), 0, 0, 0, false, NULL },
	{ "state_directory", K_DIR, D(state_directory), 0, 0, 0, false, NULL },
	{ "save_interval", K_DURATION, D(save_interval_ns), 0, 10 * SEC, DAY, true, NULL },
	{ "history_retention", K_DURATION, D(history_retention_ns), 0, HOUR, 3650 * DAY, false, NULL },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};
#undef D

#define T(f) offsetof(struct config_tcp, f)
static const struct key_def tcp_keys[] = {
	{ "enabled", K_BOOL, T(enabled), 0, 0, 0, false, NULL },
	{ "listen", K_ENDPOINTS, T(listen), T(n_listen), 0, 0, false, NULL },
	{ "mode", K_ENUM, T(mode), 0, 0, 0, false, mode_names },
	{ "max_connections", K_U32, T(max_connections), 0, 1, 1000000, false, NULL },
	{ "idle_timeout", K_DURATION, T(idle_timeout_ns), 0, SEC, 7 * DAY, true, NULL },
	{ "max_pending", K_SIZE, T(max_pending), 0, KiB, 64 * MiB, false, NULL },
	{ "backlog", K_U32, T(backlog), 0, 1, 65535, false, NULL },
	{ "allow", K_CIDRS, T(allow), 0, 0, 0, false, NULL },
	{ "nodelay", K_BOOL, T(nodelay), 0, 0, 0, false, NULL },
	{ "keepalive", K_BOOL, T(keepalive), 0, 0, 0, false, NULL },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};
#undef T

#define U(f) offsetof(struct config_udp, f)
static const struct key_def udp_keys[] = {
	{ "enabled", K_BOOL, U(enabled), 0, 0, 0, false, NULL },
	{ "listen", K_ENDPOINTS, U(listen), U(n_listen), 0, 0, false, NULL },
	{ "mode", K_ENUM, U(mode), 0, 0, 0, false, mode_names },
	{ "allow", K_CIDRS, U(allow), 0, 0, 0, false, NULL },
	{ "rate_limit", K_U32, U(rate_limit), 0, 0, 1000000, false, NULL },
	{ "rate_burst", K_U32, U(rate_burst), 0, 1, 10000000, false, NULL },
	{ "rate_table_size", K_U32, U(rate_table_size), 0, 64, 1048576, false, NULL },
	{ "recv_buffer", K_SIZE, U(recv_buffer), 0, 0, 256 * MiB, false, NULL },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};
#undef U

_Static_assert(sizeof(enum stamp_mode) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum stamp_short) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum stamp_cos) == sizeof(int), "enum stored as int");
#define S(f) offsetof(struct config_stamp, f)
static const struct key_def stamp_keys[] = {
	{ "enabled", K_BOOL, S(enabled), 0, 0, 0, false, NULL },
	{ "listen", K_ENDPOINTS, S(listen), S(n_listen), 0, 0, false, NULL },
	{ "allow", K_CIDRS, S(allow), 0, 0, 0, false, NULL },
	{ "rate_limit", K_U32, S(rate_limit), 0, 0, 1000000, false, NULL },
	{ "rate_burst", K_U32, S(rate_burst), 0, 1, 10000000, false, NULL },
	{ "rate_table_size", K_U32, S(rate_table_size), 0, 64, 1048576, false, NULL },
	{ "mode", K_ENUM, S(mode), 0, 0, 0, false, stamp_mode_names },
	{ "sessions", K_U32, S(sessions), 0, 1, 1048576, false, NULL },
	{ "session_timeout", K_DURATION, S(session_timeout_ns), 0, SEC, DAY, false, NULL },
	{ "short_requests", K_ENUM, S(short_requests), 0, 0, 0, false, stamp_short_names },
	{ "class_of_service", K_ENUM, S(class_of_service), 0, 0, 0, false, stamp_cos_names },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};
#undef S

static const struct key_def icmp_keys[] = {
	{ "socket", K_ENUM, offsetof(struct config_icmp, socket), 0, 0, 0, false,
	  socket_names },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};

#define W(f) offsetof(struct config_web, f)
enum { WKEY_HISTOGRAM = 8, WKEY_BUCKETS = 9 };
static const struct key_def web_keys[] = {
	{ "enabled", K_BOOL, W(enabled), 0, 0, 0, false, NULL },
	{ "listen", K_ENDPOINTS, W(listen), W(n_listen), 0, 0, false, NULL },
	{ "allow", K_CIDRS, W(allow), 0, 0, 0, false, NULL },
	{ "max_connections", K_U32, W(max_connections), 0, 1, 1024, false, NULL },
	{ "header_timeout", K_DURATION, W(header_timeout_ns), 0, 100 * MSEC, 5 * MINUTE, false, NULL },
	{ "idle_timeout", K_DURATION, W(idle_timeout_ns), 0, SEC, HOUR, false, NULL },
	{ "max_header_size", K_SIZE, W(max_header_size), 0, 2 * KiB, MiB, false, NULL },
	{ "gzip", K_BOOL, W(gzip), 0, 0, 0, false, NULL },
	[WKEY_HISTOGRAM] = { "histogram", K_ENUM, W(histogram), 0, 0, 0, false, histogram_names },
	[WKEY_BUCKETS] = { "rtt_buckets", K_BUCKETS, 0, 0, NSEC_PER_USEC, HOUR, false, NULL },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};
#undef W

/* The RTT histograms: "fine" (the default) is config_rtt_buckets_default_ns,
 * a 1-2-5 series from 100 us to 2 s; "coarse" one bound a decade. */
static const uint64_t coarse_buckets_ns[] = {
	1 * MSEC, 10 * MSEC, 100 * MSEC, 1 * SEC,
};

/* The [icmp] keys every [target] may override.  Their index is the bit in
 * the per-target "explicitly set" mask. */
#define PROBE_KEYS 13  /* fits the uint16_t "set" mask */
#define P(f) offsetof(struct probe_opts, f)
static const struct key_def probe_keys[] = {
	{ "interval", K_DURATION, P(interval_ns), 0, 10 * MSEC, HOUR, false, NULL },
	{ "timeout", K_DURATION, P(timeout_ns), 0, MSEC, HOUR, false, NULL },
	{ "payload_size", K_U32, P(payload_size), 0, 0, 65000, false, NULL },
	{ "ttl", K_U32, P(ttl), 0, 1, 255, false, NULL },
	{ "tos", K_U32, P(tos), 0, 0, 255, false, NULL },
	{ "dont_fragment", K_BOOL, P(dont_fragment), 0, 0, 0, false, NULL },
	{ "down_after", K_U32, P(down_after), 0, 1, 1000, false, NULL },
	{ "up_after", K_U32, P(up_after), 0, 1, 1000, false, NULL },
	{ "summary_interval", K_DURATION, P(summary_interval_ns), 0, SEC, DAY, true, NULL },
	{ "log_replies", K_BOOL, P(log_replies), 0, 0, 0, false, NULL },
	{ "resolve_interval", K_DURATION, P(resolve_interval_ns), 0, SEC, DAY, false, NULL },
	{ "history", K_BOOL, P(history), 0, 0, 0, false, NULL },
	{ "history_step", K_DURATION, P(history_step_ns), 0, SEC, HOUR, false, NULL },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};
#undef P
_Static_assert(ARRAY_SIZE(probe_keys) == PROBE_KEYS + 1 && PROBE_KEYS <= 16,
	       "probe key mask is a uint16_t");

const uint64_t config_rtt_buckets_default_ns[CONFIG_RTT_BUCKETS_DEFAULT_N] = {
	100 * NSEC_PER_USEC, 200 * NSEC_PER_USEC, 500 * NSEC_PER_USEC,
	1 * NSEC_PER_MSEC, 2 * NSEC_PER_MSEC, 5 * NSEC_PER_MSEC, 10 * NSEC_PER_MSEC,
	20 * NSEC_PER_MSEC, 50 * NSEC_PER_MSEC, 100 * NSEC_PER_MSEC, 200 * NSEC_PER_MSEC,
	500 * NSEC_PER_MSEC, 1000 * NSEC_PER_MSEC, 2000 * NSEC_PER_MSEC,
};

#define G(f) offsetof(struct config_target, f)
enum { TKEY_HOST, TKEY_FAMILY, TKEY_SOURCE, TKEY_INTERFACE, TKEY_LABELS };
static const struct key_def target_keys[] = {
	[TKEY_HOST] = { "host", K_HOST, G(host), 0, 0, 0, false, NULL },
	[TKEY_FAMILY] = { "family", K_ENUM, G(family), 0, 0, 0, false, family_names },
	[TKEY_SOURCE] = { "source", K_SOURCE, G(source), 0, 0, 0, false, NULL },
	[TKEY_INTERFACE] = { "interface", K_INTERFACE, G(interface), 0, 0, 0, false, NULL },
	[TKEY_LABELS] = { "labels", K_LABELS, G(labels), 0, 0, 0, false, NULL },
	{ NULL, K_BOOL, 0, 0, 0, 0, false, NULL },
};
#undef G

/* Each section is one or two key tables; a key's slot (table * 32 + index)
 * indexes the "line where it was set" array used to name duplicates. */
#define SLOTS_PER_TABLE 32
static const struct key_def *const section_tables[SEC_COUNT][2] = {
	[SEC_NONE] = { NULL, NULL },
	[SEC_DAEMON] = { daemon_keys, NULL },
	[SEC_TCP] = { tcp_keys, NULL },
	[SEC_UDP] = { udp_keys, NULL },
	[SEC_STAMP] = { stamp_keys, NULL },
	[SEC_ICMP] = { icmp_keys, probe_keys },
	[SEC_WEB] = { web_keys, NULL },
	[SEC_TARGET] = { target_keys, probe_keys },
};

struct parser {
	struct config *cfg;
	const char *name;                /* file name used in messages */
	const char *buf;
	size_t len, pos;
	unsigned lineno;
	char *err;
	size_t errlen;
	bool failed;

	enum section_kind sec;
	unsigned sec_line;
	char sec_label[TARGET_NAME_MAX + 16];  /* "[tcp]", "[target web]" */
	unsigned key_line[2 * SLOTS_PER_TABLE];
	unsigned section_seen[SEC_COUNT];  /* header line of singletons */
	bool rate_burst_set;
	unsigned web_histogram_line, web_buckets_line;
	bool stamp_burst_set;

	/* Targets grow by doubling; probe_set[i] has bit k set when target i
	 * sets probe_keys[k] itself.  Names are indexed by an open-addressing
	 * hash of (index + 1) so duplicate detection stays O(1). */
	size_t cap_targets;
	uint16_t *probe_set;             /* bit k: probe_keys[k] */
	struct str_index names;      /* target name -> index in cfg->targets */
};

static void fail(struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct parser *p, unsigned line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err != NULL && p->errlen > 0)
		snprintf(p->err, p->errlen, "%s:%u: %s", p->name, line, msg);
}

/* Values are shown in quotes and shortened when long, so one bad line never
 * floods a log. */
#define VALUE_SHOWN 80
#define SHOW(v) (int)(strlen(v) > VALUE_SHOWN ? VALUE_SHOWN : strlen(v)), (v), \
		(strlen(v) > VALUE_SHOWN ? "..." : "")

static void fail_key(struct parser *p, const struct key_def *k,
		     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail_key(struct parser *p, const struct key_def *k,
		     const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail(p, p->lineno, "%s %s: %s", p->sec_label, k->name, msg);
}

static void fmt_duration(char *buf, size_t len, uint64_t ns)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "d", DAY }, { "h", HOUR }, { "m", MINUTE }, { "s", SEC },
		{ "ms", MSEC }, { "us", NSEC_PER_USEC },
	};

	if (ns == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ns % units[i].mult == 0) {
			snprintf(buf, len, "%llu%s",
				 (unsigned long long)(ns / units[i].mult), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%lluns", (unsigned long long)ns);
}

static void fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "GiB", 1ULL << 30 }, { "MiB", MiB }, { "KiB", KiB },
	};

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (bytes != 0 && bytes % units[i].mult == 0) {
			snprintf(buf, len, "%llu%s",
				 (unsigned long long)(bytes / units[i].mult), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

/* "(1..65535)", "(10ms..1h)", "(0 or 1s..1d)" */
static void fmt_range(char *buf, size_t len, const struct key_def *k)
{
	char lo[32], hi[32];

	switch (k->type) {
	case K_DURATION:
	case K_BUCKETS:
		fmt_duration(lo, sizeof(lo), k->min);
		fmt_duration(hi, sizeof(hi), k->max);
		break;
	case K_SIZE:
		fmt_size(lo, sizeof(lo), k->min);
		fmt_size(hi, sizeof(hi), k->max);
		break;
	default:
		snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
		snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
		break;
	}
	snprintf(buf, len, "(%s%s..%s)", k->zero_ok ? "0 or " : "", lo, hi);
}

static bool in_range(const struct key_def *k, uint64_t v)
{
	return (k->zero_ok && v == 0) || (v >= k->min && v <= k->max);
}

static void fail_range(struct parser *p, const struct key_def *k,
		       const char *value)
{
	char range[80];

	fmt_range(range, sizeof(range), k);
	fail_key(p, k, "%.*s%s is out of range %s", SHOW(value), range);
}

static void *field(void *base, size_t off)
{
	return (char *)base + off;
}

static int replace_string(struct parser *p, char **slot, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL) {
		fail(p, p->lineno, "out of memory");
		return -1;
	}
	free(*slot);
	*slot = copy;
	return 0;
}

static bool valid_interface(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > IFNAME_MAX || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '/' || c == ' ' || c == '\t' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* Names useradd(8) accepts, conservatively. */
static bool valid_group(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return true;
	if (n > 32 || (s[0] >= '0' && s[0] <= '9') || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static void enum_list(char *buf, size_t len, const char *const *names)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; names[i] != NULL && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s",
				 i == 0 ? "" : ", ", names[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* dns_servers: IP literals with optional ports, "" for resolv.conf.  Stored
 * normalised as the c-ares list "1.2.3.4:53,[::1]:5353". */
static void set_dns_servers(struct parser *p, const struct key_def *k, void *base,
			    const char *value)
{
	char out[1024] = "", item[128];
	size_t used = 0;
	const char *s = value;

	while (*s) {
		size_t n = strcspn(s, ",");
		size_t a = 0, b = n;
		while (a < b && isspace((unsigned char)s[a]))
			a++;
		while (b > a && isspace((unsigned char)s[b - 1]))
			b--;
		if (b - a == 0 || b - a >= sizeof item) {
			fail_key(p, k, "\"%.*s%s\" is not a list of DNS server addresses "
				 "(e.g. 127.0.0.1, [::1]:5353)", SHOW(value));
			return;
		}
		memcpy(item, s + a, b - a);
		item[b - a] = '\0';

		struct endpoint ep;
		char str[NET_ENDPOINT_STRLEN];
		if (parse_endpoint(item, &ep) < 0) {
			if (parse_ip(item, &ep) < 0) {
				fail_key(p, k, "\"%s\" is not an IP address or address:port", item);
				return;
			}
			if (ep.u.sa.sa_family == AF_INET)
				ep.u.in4.sin_port = htons(53);
			else
				ep.u.in6.sin6_port = htons(53);
		}
		int m = snprintf(out + used, sizeof out - used, "%s%s", used ? "," : "",
				 net_endpoint_str(&ep, str, sizeof str));
		if (m < 0 || (size_t)m >= sizeof out - used) {
			fail_key(p, k, "too many DNS servers");
			return;
		}
		used += (size_t)m;
		s += n;
		if (*s == ',')
			s++;
	}
	if (used == 0) {
		free(*(char **)field(base, k->off));
		*(char **)field(base, k->off) = NULL;
		return;
	}
	replace_string(p, (char **)field(base, k->off), out);
}

static int parse_whole(const char *s, uint64_t *v)
{
	return parse_uint(s, 0, UINT64_MAX, v);
}

/* A number for key k: parsed by `parse`, then checked against k's range.
 * Reports the error and returns false when either fails. */
static bool number_value(struct parser *p, const struct key_def *k, const char *value,
			 int (*parse)(const char *, uint64_t *), const char *what,
			 uint64_t *v)
{
	errno = 0;
	if (parse(value, v) < 0) {
		if (errno == ERANGE)
			fail_range(p, k, value);
		else
			fail_key(p, k, "\"%.*s%s\" is not %s", SHOW(value), what);
		return false;
	}
	if (!in_range(k, *v)) {
		fail_range(p, k, value);
		return false;
	}
	return true;
}

/* rtt_buckets: 1..64 durations in ascending order, each within k's range,
 * into [icmp]'s bounds (the histogram lives with the probes). */
static void set_buckets(struct parser *p, const struct key_def *k, const char *value)
{
	struct config_icmp *ic = &p->cfg->icmp;
	const char *s = value;
	char item[64];
	uint32_t n = 0;

	for (;;) {
		size_t len = strcspn(s, ",");
		if (len >= sizeof item) {
			fail_key(p, k, "\"%.*s%s\" is not a duration", SHOW(s));
			return;
		}
		size_t a = 0, b = len;
		while (a < b && isspace((unsigned char)s[a]))
			a++;
		while (b > a && isspace((unsigned char)s[b - 1]))
			b--;
		memcpy(item, s + a, b - a);
		item[b - a] = '\0';
		uint64_t v;
		if (!number_value(p, k, item, parse_duration,
				  "a duration (e.g. 100us, 1ms, 2.5ms)", &v))
			return;
		if (n == CONFIG_RTT_BUCKETS_MAX) {
			fail_key(p, k, "more than %d bounds", CONFIG_RTT_BUCKETS_MAX);
			return;
		}
		if (n > 0 && v <= ic->rtt_buckets_ns[n - 1]) {
			fail_key(p, k, "bounds must be in ascending order (\"%s\" is not above the one before)",
				 item);
			return;
		}
		ic->rtt_buckets_ns[n++] = v;
		if (s[len] == '\0')
			break;
		s += len + 1;
	}
	ic->n_rtt_buckets = n;
}

/* Parse value into the field k describes inside base. */
static void set_endpoints(struct parser *p, const struct key_def *k, void *base,
			  const char *value)
{
	char lerr[256];
	struct endpoint *list;
	size_t n;

	if (parse_endpoint_list(value, &list, &n, lerr, sizeof(lerr)) < 0) {
		fail_key(p, k, "%s%s", lerr, value[0] == '\0'
			 ? " (set enabled = no to turn the service off)" : "");
		return;
	}
	free(*(struct endpoint **)field(base, k->off));
	*(struct endpoint **)field(base, k->off) = list;
	*(size_t *)field(base, k->off_n) = n;
}

static void set_cidrs(struct parser *p, const struct key_def *k, void *base,
		      const char *value)
{
	char lerr[256];
	struct acl *acl = field(base, k->off);
	struct cidr *list;
	size_t n;

	if (parse_cidr_list(value, &list, &n, lerr, sizeof(lerr)) < 0) {
		fail_key(p, k, "%s", lerr);
		return;
	}
	free(acl->v);
	acl->v = list;
	acl->n = n;
}

/* The keys whose value is a string kept as written, once it is valid. */
static void set_string(struct parser *p, const struct key_def *k, void *base,
		       const char *value)
{
	switch (k->type) {
	case K_LOG_TARGET:
		if (strcmp(value, "auto") != 0 && strcmp(value, "stderr") != 0 &&
		    strcmp(value, "journal") != 0 &&
		    (value[0] != '/' || strlen(value) >= 4096)) {
			fail_key(p, k, "\"%.*s%s\" is not auto, stderr, journal or an absolute path",
				 SHOW(value));
			return;
		}
		replace_string(p, (char **)field(base, k->off), value);
		return;
	case K_HOST:
		if (!parse_is_hostname(value)) {
			fail_key(p, k, "\"%.*s%s\" is not an IP address or a valid host name",
				 SHOW(value));
			return;
		}
		replace_string(p, (char **)field(base, k->off), value);
		return;
	case K_SOCKET_PATH:
		/* sun_path holds 107 bytes and a NUL. */
		if (value[0] != '\0' && (value[0] != '/' || strlen(value) > 107)) {
			fail_key(p, k, "\"%.*s%s\" is not an absolute path of at most 107 bytes "
				 "(or empty for no control socket)", SHOW(value));
			return;
		}
		replace_string(p, (char **)field(base, k->off), value);
		return;
	case K_GROUP:
		if (!valid_group(value)) {
			fail_key(p, k, "\"%.*s%s\" is not a group name (letters, digits, \"_.-\", "
				 "at most 32, not starting with a digit or \"-\")", SHOW(value));
			return;
		}
		replace_string(p, (char **)field(base, k->off), value);
		return;
	case K_DIR:
		if (value[0] != '\0' && (value[0] != '/' || strlen(value) > 1024)) {
			fail_key(p, k, "\"%.*s%s\" is not an absolute path of at most 1024 bytes "
				 "(or empty: history kept in memory only)", SHOW(value));
			return;
		}
		replace_string(p, (char **)field(base, k->off), value);
		return;
	case K_INTERFACE:
		if (!valid_interface(value)) {
			fail_key(p, k, "\"%.*s%s\" is not an interface name (1..15 characters, no \"/\" or spaces)",
				 SHOW(value));
			return;
		}
		replace_string(p, (char **)field(base, k->off), value);
		return;
	default:
		return;
	}
}

static void set_value(struct parser *p, const struct key_def *k, void *base,
		      const char *value)
{
	char lerr[256];
	uint64_t v;
	bool b;

	switch (k->type) {
	case K_BOOL:
		if (parse_bool(value, &b) < 0) {
			fail_key(p, k, "\"%.*s%s\" is not a boolean (yes/no, true/false, on/off, 1/0)",
				 SHOW(value));
			return;
		}
		*(bool *)field(base, k->off) = b;
		return;
	case K_U32:
		if (number_value(p, k, value, parse_whole, "a whole number", &v))
			*(uint32_t *)field(base, k->off) = (uint32_t)v;
		return;
	case K_DURATION:
		if (number_value(p, k, value, parse_duration,
				 "a duration (e.g. 30s, 500ms, 5m)", &v))
			*(uint64_t *)field(base, k->off) = v;
		return;
	case K_SIZE:
		if (number_value(p, k, value, parse_size,
				 "a size (e.g. 512, 64KiB, 1MiB)", &v))
			*(uint64_t *)field(base, k->off) = v;
		return;
	case K_ENUM:
		for (int i = 0; k->names[i] != NULL; i++) {
			if (strcasecmp(value, k->names[i]) == 0) {
				memcpy(field(base, k->off), &i, sizeof(i));
				return;
			}
		}
		enum_list(lerr, sizeof(lerr), k->names);
		fail_key(p, k, "\"%.*s%s\" is not one of %s", SHOW(value), lerr);
		return;
	case K_LOG_TARGET:
	case K_HOST:
	case K_SOCKET_PATH:
	case K_GROUP:
	case K_DIR:
	case K_INTERFACE:
		set_string(p, k, base, value);
		return;
	case K_ENDPOINTS:
		set_endpoints(p, k, base, value);
		return;
	case K_CIDRS:
		set_cidrs(p, k, base, value);
		return;
	case K_SOURCE: {
		struct config_target *t = base;

		if (parse_ip(value, &t->source) < 0) {
			fail_key(p, k, "\"%.*s%s\" is not an IP address", SHOW(value));
			return;
		}
		t->has_source = true;
		return;
	}
	case K_DNS_SERVERS:
		set_dns_servers(p, k, base, value);
		return;
	case K_BUCKETS:
		set_buckets(p, k, value);
		return;
	case K_LABELS: {
		size_t len = strlen(value) + 1;
		char *norm = malloc(len);
		if (norm == NULL) {
			fail(p, p->lineno, "out of memory");
			return;
		}
		if (labels_parse(value, norm, len, lerr, sizeof lerr) < 0) {
			free(norm);
			fail_key(p, k, "%s", lerr);
			return;
		}
		free(*(char **)field(base, k->off));
		*(char **)field(base, k->off) = norm;
		return;
	}
	}
}

/* Levenshtein distance for "did you mean"; names are short. */
static unsigned edit_distance(const char *a, const char *b)
{
	unsigned row[TARGET_NAME_MAX + 1];
	size_t la = strlen(a), lb = strlen(b);

	if (la > TARGET_NAME_MAX || lb > TARGET_NAME_MAX)
		return 1000;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

static const struct key_def *find_key(enum section_kind sec, const char *name,
				      unsigned *slot, unsigned *table)
{
	for (unsigned t = 0; t < 2; t++) {
		const struct key_def *keys = section_tables[sec][t];
		for (unsigned i = 0; keys != NULL && keys[i].name != NULL; i++) {
			if (strcmp(keys[i].name, name) == 0) {
				*slot = t * SLOTS_PER_TABLE + i;
				*table = t;
				return &keys[i];
			}
		}
	}
	return NULL;
}

static void fail_unknown_key(struct parser *p, const char *name)
{
	const char *best = NULL;
	unsigned best_d = 3;
	char where[64] = "";
	unsigned slot, table, found = 0;

	for (unsigned t = 0; t < 2; t++) {
		const struct key_def *keys = section_tables[p->sec][t];
		for (unsigned i = 0; keys != NULL && keys[i].name != NULL; i++) {
			unsigned d = edit_distance(name, keys[i].name);
			if (d < best_d) {
				best_d = d;
				best = keys[i].name;
			}
		}
	}
	if (best != NULL) {
		fail(p, p->lineno, "%s unknown key \"%.*s%s\" (did you mean \"%s\"?)",
		     p->sec_label, SHOW(name), best);
		return;
	}
	/* A key that is valid elsewhere is most likely in the wrong section. */
	for (int s = SEC_DAEMON; s < SEC_COUNT; s++) {
		if (s == (int)p->sec || find_key(s, name, &slot, &table) == NULL)
			continue;
		if (found++ < 2) {
			size_t used = strlen(where);
			snprintf(where + used, sizeof(where) - used, "%s[%s]",
				 used != 0 ? " or " : "", section_names[s]);
		}
	}
	if (found != 0)
		fail(p, p->lineno, "%s unknown key \"%.*s%s\" (it belongs in %s)",
		     p->sec_label, SHOW(name), where);
	else
		fail(p, p->lineno, "%s unknown key \"%.*s%s\"", p->sec_label,
		     SHOW(name));
}

static struct config_target *current_target(struct parser *p)
{
	return &p->cfg->targets[p->cfg->n_targets - 1];
}

/* inih's key handler.  Returns 0 (stop) after the first error. */
static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct parser *p = user;
	const struct key_def *k;
	unsigned slot, table;
	void *base = NULL;

	(void)section;  /* the reader tracks sections itself, see above */
	if (p->failed)
		return 0;
	if (name[0] == '\0') {
		fail(p, p->lineno, "syntax error: missing key name before \"=\"");
		return 0;
	}
	if (p->sec == SEC_NONE) {
		fail(p, p->lineno,
		     "key \"%.*s%s\" outside of any section (add a [section] header above it)",
		     SHOW(name));
		return 0;
	}
	k = find_key(p->sec, name, &slot, &table);
	if (k == NULL) {
		fail_unknown_key(p, name);
		return 0;
	}
	if (p->key_line[slot] != 0) {
		fail(p, p->lineno, "%s duplicate key \"%s\" (first set on line %u)",
		     p->sec_label, name, p->key_line[slot]);
		return 0;
	}
	p->key_line[slot] = p->lineno;

	switch (p->sec) {
	case SEC_DAEMON:
		base = &p->cfg->daemon;
		break;
	case SEC_TCP:
		base = &p->cfg->tcp;
		break;
	case SEC_UDP:
		base = &p->cfg->udp;
		p->rate_burst_set |= strcmp(name, "rate_burst") == 0;
		break;
	case SEC_STAMP:
		base = &p->cfg->stamp;
		p->stamp_burst_set |= strcmp(name, "rate_burst") == 0;
		break;
	case SEC_ICMP:
		base = table == 0 ? (void *)&p->cfg->icmp : (void *)&p->cfg->icmp.defaults;
		break;
	case SEC_WEB:
		base = &p->cfg->web;
		break;
	case SEC_TARGET:
		base = table == 0 ? (void *)current_target(p) : (void *)&current_target(p)->opts;
		if (table == 1)
			p->probe_set[p->cfg->n_targets - 1] |=
				(uint16_t)(1u << (slot - SLOTS_PER_TABLE));
		break;
	case SEC_NONE:
	case SEC_COUNT:
		return 0;
	}
	if (p->sec == SEC_WEB && table == 0 && slot == WKEY_HISTOGRAM)
		p->web_histogram_line = p->lineno;
	if (p->sec == SEC_WEB && table == 0 && slot == WKEY_BUCKETS)
		p->web_buckets_line = p->lineno;
	set_value(p, k, base, value);
	return p->failed ? 0 : 1;
}

static bool valid_target_name(const char *s, size_t len)
{
	if (len == 0 || len > TARGET_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static const char *target_key(const void *ctx, uint32_t pos)
{
	const struct config *cfg = ctx;

	return cfg->targets[pos].name;
}

static int target_add(struct parser *p, const char *name, size_t len)
{
	struct config *cfg = p->cfg;
	struct config_target *t;
	uint32_t *slot;
	char *copy;

	if (cfg->n_targets == UINT32_MAX - 1)
		goto oom;
	if (cfg->n_targets == p->cap_targets) {
		size_t cap = p->cap_targets != 0 ? p->cap_targets * 2 : 16;
		struct config_target *nt = realloc(cfg->targets, cap * sizeof(*nt));
		uint16_t *ns;

		if (nt == NULL)
			goto oom;
		cfg->targets = nt;
		ns = realloc(p->probe_set, cap * sizeof(*ns));
		if (ns == NULL)
			goto oom;
		p->probe_set = ns;
		p->cap_targets = cap;
	}
	/* The key function reads cfg->targets, which the realloc above may
	 * have moved: the index holds cfg, not the array. */
	if (str_index_reserve(&p->names, cfg->n_targets + 1) < 0)
		goto oom;
	copy = strndup(name, len);
	if (copy == NULL)
		goto oom;
	slot = str_index_slot(&p->names, copy);
	if (*slot != 0) {
		fail(p, p->lineno, "duplicate section [target %s] (first on line %u)",
		     copy, cfg->targets[*slot - 1].line);
		free(copy);
		return -1;
	}
	t = &cfg->targets[cfg->n_targets];
	memset(t, 0, sizeof(*t));
	t->name = copy;
	t->family = FAMILY_AUTO;
	t->line = p->lineno;
	p->probe_set[cfg->n_targets] = 0;
	cfg->n_targets++;
	*slot = (uint32_t)cfg->n_targets;
	return 0;
oom:
	fail(p, p->lineno, "out of memory");
	return -1;
}

static const char *family_label(int af)
{
	return af == AF_INET ? "an IPv4 address" : "an IPv6 address";
}

static unsigned later(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

/* Checks that need all of a target's keys: run when its section ends. */
static void target_end(struct parser *p)
{
	struct config_target *t = current_target(p);
	unsigned l_host = p->key_line[TKEY_HOST];
	unsigned l_family = p->key_line[TKEY_FAMILY];
	unsigned l_source = p->key_line[TKEY_SOURCE];
	struct endpoint lit;
	int host_af = 0, src_af;
	char src[INET6_ADDRSTRLEN] = "";

	if (t->host == NULL) {
		fail(p, t->line, "%s missing required key \"host\"", p->sec_label);
		return;
	}
	if (parse_ip(t->host, &lit) == 0)
		host_af = lit.u.sa.sa_family;
	if (host_af != 0 && t->family != FAMILY_AUTO) {
		bool bad = t->family == FAMILY_BOTH ||
			   (t->family == FAMILY_4 && host_af != AF_INET) ||
			   (t->family == FAMILY_6 && host_af != AF_INET6);
		if (bad) {
			fail(p, later(l_host, l_family),
			     "%s family: %s contradicts host \"%s\", %s%s",
			     p->sec_label, family_names[t->family], t->host,
			     family_label(host_af),
			     t->family == FAMILY_BOTH ? " (both needs a host name)" : "");
			return;
		}
	}
	if (!t->has_source)
		return;
	src_af = t->source.u.sa.sa_family;
	inet_ntop(src_af, src_af == AF_INET ? (const void *)&t->source.u.in4.sin_addr
					    : (const void *)&t->source.u.in6.sin6_addr,
		  src, sizeof(src));
	if (t->family == FAMILY_BOTH) {
		fail(p, later(l_source, l_family),
		     "%s source: one source address cannot serve family = both",
		     p->sec_label);
	} else if ((t->family == FAMILY_4 && src_af != AF_INET) ||
		   (t->family == FAMILY_6 && src_af != AF_INET6)) {
		fail(p, later(l_source, l_family),
		     "%s source: \"%s\" is %s but family = %s", p->sec_label,
		     src, family_label(src_af), family_names[t->family]);
	} else if (host_af != 0 && src_af != host_af) {
		fail(p, later(l_source, l_host),
		     "%s source: \"%s\" is %s but host \"%s\" is %s",
		     p->sec_label, src, family_label(src_af), t->host,
		     family_label(host_af));
	}
}

static void section_end(struct parser *p)
{
	if (p->sec == SEC_TARGET && !p->failed)
		target_end(p);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* A header line "[name]" (leading blanks already skipped); len excludes the
 * line ending. */
static void section_begin(struct parser *p, const char *s, size_t len)
{
	const char *close = memchr(s, ']', len);
	const char *in, *in_end, *word_end, *arg;
	size_t in_len, word_len, arg_len;
	enum section_kind kind = SEC_NONE;

	section_end(p);
	if (p->failed)
		return;
	if (close == NULL) {
		fail(p, p->lineno, "syntax error: missing \"]\" in section header");
		return;
	}
	for (const char *c = close + 1; c < s + len; c++) {
		if (*c == ';' || *c == '#')
			break;
		if (!is_blank(*c)) {
			fail(p, p->lineno,
			     "syntax error: unexpected text after section header");
			return;
		}
	}
	in = s + 1;
	in_end = close;
	while (in < in_end && is_blank(*in))
		in++;
	while (in_end > in && is_blank(in_end[-1]))
		in_end--;
	in_len = (size_t)(in_end - in);
	word_end = in;
	while (word_end < in_end && !is_blank(*word_end))
		word_end++;
	word_len = (size_t)(word_end - in);
	arg = word_end;
	while (arg < in_end && is_blank(*arg))
		arg++;
	arg_len = (size_t)(in_end - arg);

	for (int k = SEC_DAEMON; k < SEC_TARGET; k++) {
		if (arg_len == 0 && word_len == strlen(section_names[k]) &&
		    memcmp(in, section_names[k], word_len) == 0)
			kind = k;
	}
	if (word_len == 6 && memcmp(in, "target", 6) == 0)
		kind = SEC_TARGET;
	if (kind == SEC_NONE) {
		fail(p, p->lineno, "unknown section [%.*s%s]",
		     in_len > VALUE_SHOWN ? VALUE_SHOWN : (int)in_len, in,
		     in_len > VALUE_SHOWN ? "..." : "");
		return;
	}
	memset(p->key_line, 0, sizeof(p->key_line));
	p->sec = kind;
	p->sec_line = p->lineno;
	if (kind != SEC_TARGET) {
		if (p->section_seen[kind] != 0) {
			fail(p, p->lineno, "duplicate section [%s] (first on line %u)",
			     section_names[kind], p->section_seen[kind]);
			return;
		}
		p->section_seen[kind] = p->lineno;
		snprintf(p->sec_label, sizeof(p->sec_label), "[%s]",
			 section_names[kind]);
		return;
	}
	if (arg_len == 0) {
		fail(p, p->lineno, "[target] needs a name, e.g. [target gateway]");
		return;
	}
	if (!valid_target_name(arg, arg_len)) {
		fail(p, p->lineno,
		     "invalid target name \"%.*s%s\" (1..64 characters of A-Z a-z 0-9 . _ -)",
		     arg_len > VALUE_SHOWN ? VALUE_SHOWN : (int)arg_len, arg,
		     arg_len > VALUE_SHOWN ? "..." : "");
		return;
	}
	snprintf(p->sec_label, sizeof(p->sec_label), "[target %.*s]",
		 (int)arg_len, arg);
	target_add(p, arg, arg_len);
}

/*
 * inih's reader: one line per call from the in-memory buffer.  num is the
 * size of inih's line buffer; a line that does not fit (with its line ending
 * and the terminating NUL) is refused rather than split.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parser *p = stream;
	const char *line, *nl, *s;
	size_t rest, len, content, max;

	if (p->failed || p->pos >= p->len)
		return NULL;
	line = p->buf + p->pos;
	rest = p->len - p->pos;
	nl = memchr(line, '\n', rest);
	len = nl != NULL ? (size_t)(nl - line) + 1 : rest;
	content = nl != NULL ? len - 1 : len;
	if (content > 0 && line[content - 1] == '\r')
		content--;
	p->lineno++;
	max = num > 3 ? (size_t)num - 3 : 0;
	if (content > max) {
		fail(p, p->lineno, "line is too long (more than %zu bytes)", max);
		return NULL;
	}
	for (size_t i = 0; i < content; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			fail(p, p->lineno,
			     "invalid control character 0x%02x (is this a text file?)",
			     c);
			return NULL;
		}
	}
	memcpy(str, line, len);
	str[len] = '\0';
	p->pos += len;

	s = line;
	if (p->lineno == 1 && content >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (s < line + content && is_blank(*s))
		s++;
	if (s < line + content && *s == '[') {
		section_begin(p, s, (size_t)(line + content - s));
		if (p->failed)
			return NULL;
	}
	return str;
}

static int set_defaults(struct config *cfg)
{
	char err[128];

	cfg->daemon.log_level = LOG_INFO;
	cfg->daemon.log_format = LOG_FMT_LOGFMT;
	cfg->daemon.log_target = strdup("auto");
	cfg->daemon.control_socket = strdup("/run/beacond/control.sock");
	cfg->daemon.control_group = strdup("");
	/* NULL: not set; the history takes $STATE_DIRECTORY (systemd's
	 * StateDirectory=), else /var/lib/beacond. */
	cfg->daemon.state_directory = NULL;
	cfg->daemon.save_interval_ns = 5 * MINUTE;
	cfg->daemon.history_retention_ns = 30 * DAY;
	cfg->daemon.shutdown_timeout_ns = 10 * SEC;
	cfg->daemon.stats_interval_ns = 60 * SEC;

	cfg->web.enabled = true;
	cfg->web.max_connections = 16;
	cfg->web.header_timeout_ns = 10 * SEC;
	cfg->web.idle_timeout_ns = 30 * SEC;
	cfg->web.max_header_size = 16 * KiB;
	cfg->web.gzip = true;
	cfg->web.histogram = HISTOGRAM_FINE;
	cfg->tcp.enabled = true;
	cfg->tcp.mode = MODE_ECHO;
	cfg->tcp.max_connections = 4096;
	cfg->tcp.idle_timeout_ns = 5 * MINUTE;
	cfg->tcp.max_pending = 64 * KiB;
	cfg->tcp.backlog = 511;
	cfg->tcp.nodelay = true;
	cfg->tcp.keepalive = false;

	cfg->udp.enabled = true;
	cfg->udp.mode = MODE_ECHO;
	cfg->udp.rate_limit = 100;
	cfg->udp.rate_burst = 200;
	cfg->udp.rate_table_size = 4096;
	cfg->udp.recv_buffer = 0;

	cfg->stamp.enabled = false;
	cfg->stamp.rate_limit = 100;
	cfg->stamp.rate_burst = 200;
	cfg->stamp.rate_table_size = 4096;
	cfg->stamp.mode = STAMP_STATELESS;
	cfg->stamp.sessions = 1024;
	cfg->stamp.session_timeout_ns = 5 * MINUTE;
	cfg->stamp.short_requests = STAMP_SHORT_REPLY;
	cfg->stamp.class_of_service = STAMP_COS_KEEP;

	cfg->icmp.socket = ICMP_SOCKET_AUTO;
	cfg->icmp.defaults = (struct probe_opts){
		.interval_ns = SEC,
		.timeout_ns = SEC,
		.summary_interval_ns = 60 * SEC,
		.payload_size = 56,
		.ttl = 64,
		.tos = 0,
		.dont_fragment = true,
		.down_after = 3,
		.up_after = 2,
		.log_replies = false,
		.resolve_interval_ns = 5 * MINUTE,
		.history = true,
		.history_step_ns = MINUTE,
	};
	cfg->icmp.n_rtt_buckets = 0;
	memcpy(cfg->icmp.rtt_buckets_ns, config_rtt_buckets_default_ns,
	       sizeof config_rtt_buckets_default_ns);

	if (cfg->daemon.log_target == NULL || cfg->daemon.control_socket == NULL ||
	    cfg->daemon.control_group == NULL ||
	    parse_endpoint_list(default_listen, &cfg->tcp.listen, &cfg->tcp.n_listen,
				err, sizeof(err)) < 0 ||
	    parse_endpoint_list(default_listen, &cfg->udp.listen, &cfg->udp.n_listen,
				err, sizeof(err)) < 0 ||
	    parse_cidr_list(default_allow, &cfg->tcp.allow.v, &cfg->tcp.allow.n,
			    err, sizeof(err)) < 0 ||
	    parse_cidr_list(default_allow, &cfg->udp.allow.v, &cfg->udp.allow.n,
			    err, sizeof(err)) < 0 ||
	    parse_endpoint_list(default_web_listen, &cfg->web.listen, &cfg->web.n_listen,
				err, sizeof(err)) < 0 ||
	    parse_cidr_list(default_web_allow, &cfg->web.allow.v, &cfg->web.allow.n,
			    err, sizeof(err)) < 0 ||
	    parse_endpoint_list(default_stamp_listen, &cfg->stamp.listen,
				&cfg->stamp.n_listen, err, sizeof(err)) < 0 ||
	    parse_cidr_list(default_allow, &cfg->stamp.allow.v, &cfg->stamp.allow.n,
			    err, sizeof(err)) < 0)
		return -1;
	return 0;
}

/* After the whole file: values that depend on other keys. */
static void finish(struct parser *p)
{
	struct config *cfg = p->cfg;

	if (!p->rate_burst_set) {
		uint64_t burst = 2 * (uint64_t)cfg->udp.rate_limit;
		cfg->udp.rate_burst = burst < 1 ? 1 : (uint32_t)burst;
	}
	if (!p->stamp_burst_set) {
		uint64_t burst = 2 * (uint64_t)cfg->stamp.rate_limit;
		cfg->stamp.rate_burst = burst < 1 ? 1 : (uint32_t)burst;
	}
	/* Targets inherit every [icmp] value they do not set themselves, no
	 * matter whether [icmp] came before or after them in the file. */
	for (size_t i = 0; i < cfg->n_targets; i++) {
		struct probe_opts set = cfg->targets[i].opts;

		cfg->targets[i].opts = cfg->icmp.defaults;
		for (unsigned k = 0; probe_keys[k].name != NULL; k++) {
			size_t off = probe_keys[k].off, size;

			if (!(p->probe_set[i] & (1u << k)))
				continue;
			switch (probe_keys[k].type) {
			case K_BOOL:
				size = sizeof(bool);
				break;
			case K_U32:
				size = sizeof(uint32_t);
				break;
			default:
				size = sizeof(uint64_t);
				break;
			}
			memcpy(field(&cfg->targets[i].opts, off), field(&set, off), size);
		}
	}
	/* The histogram: explicit bounds win; histogram = off with explicit
	 * bounds is a contradiction. */
	if (p->web_buckets_line != 0) {
		if (p->web_histogram_line != 0 && cfg->web.histogram == HISTOGRAM_OFF) {
			fail(p, later(p->web_buckets_line, p->web_histogram_line),
			     "[web] rtt_buckets: contradicts histogram = off");
			return;
		}
	} else if (cfg->web.histogram == HISTOGRAM_OFF) {
		cfg->icmp.n_rtt_buckets = 0;
	} else {
		bool fine = cfg->web.histogram == HISTOGRAM_FINE;
		const uint64_t *v = fine ? config_rtt_buckets_default_ns : coarse_buckets_ns;
		size_t n = fine ? CONFIG_RTT_BUCKETS_DEFAULT_N : ARRAY_SIZE(coarse_buckets_ns);
		memcpy(cfg->icmp.rtt_buckets_ns, v, n * sizeof *v);
		cfg->icmp.n_rtt_buckets = (uint32_t)n;
	}
	/* Only the metrics read the RTT histogram: without the web listener
	 * it is not kept (its counts cost 8 bytes per bucket per probe). */
	if (!cfg->web.enabled)
		cfg->icmp.n_rtt_buckets = 0;
	if (cfg->web.enabled && cfg->web.n_listen == 0) {
		fail(p, p->section_seen[SEC_WEB], "[web] listen: at least one address is required");
		return;
	}
	if (cfg->tcp.enabled && cfg->tcp.n_listen == 0)
		fail(p, p->section_seen[SEC_TCP], "[tcp] listen: at least one address is required");
	else if (cfg->udp.enabled && cfg->udp.n_listen == 0)
		fail(p, p->section_seen[SEC_UDP], "[udp] listen: at least one address is required");
	else if (cfg->stamp.enabled && cfg->stamp.n_listen == 0)
		fail(p, p->section_seen[SEC_STAMP],
		     "[stamp] listen: at least one address is required");
}

int config_parse_buffer(const char *buf, size_t len, const char *name,
			struct config **out, char *err, size_t errlen)
{
	static char inline_prefixes[] = ";#";
	struct parser p = {
		.name = name,
		.buf = buf,
		.len = len,
		.err = err,
		.errlen = errlen,
	};
	int saved_max_line = ini_max_line;
	bool saved_multiline = ini_allow_multiline;
	bool saved_stop = ini_stop_on_first_error;
	bool saved_no_value = ini_allow_no_value;
	char *saved_inline = ini_inline_comment_prefixes;
	int r;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (p.cfg == NULL || (p.cfg->path = strdup(name)) == NULL ||
	    set_defaults(p.cfg) < 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: out of memory", name);
		config_free(p.cfg);
		return -1;
	}
	str_index_init(&p.names, target_key, p.cfg);

	ini_max_line = CONFIG_MAX_LINE + 3;  /* '\r', '\n' and '\0' */
	ini_allow_multiline = false;
	ini_stop_on_first_error = true;
	ini_allow_no_value = false;
	ini_inline_comment_prefixes = inline_prefixes;
	r = ini_parse_stream(read_line, &p, on_key, &p);
	ini_max_line = saved_max_line;
	ini_allow_multiline = saved_multiline;
	ini_stop_on_first_error = saved_stop;
	ini_allow_no_value = saved_no_value;
	ini_inline_comment_prefixes = saved_inline;

	if (!p.failed && r > 0)
		fail(&p, (unsigned)r,
		     "syntax error: expected \"key = value\", \"[section]\" or a comment");
	else if (!p.failed && r < 0)
		fail(&p, p.lineno, "out of memory");
	section_end(&p);
	if (!p.failed)
		finish(&p);
	free(p.probe_set);
	str_index_free(&p.names);
	if (p.failed) {
		config_free(p.cfg);
		return -1;
	}
	*out = p.cfg;
	return 0;
}

int config_parse_string(const char *text, const char *name, struct config **out,
			char *err, size_t errlen)
{
	return config_parse_buffer(text, strlen(text), name, out, err, errlen);
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct stat st;
	size_t cap, used = 0;
	char *buf = NULL;
	int fd, r;

	*out = NULL;
	/* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	 * writer, and the daemon reloads from inside its event loop. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is a directory", path);
		goto fail;
	}
	/* Only regular files: reading a FIFO, a socket or a terminal can
	 * block the event loop for good (no pings, no echo, no SIGTERM). */
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > CONFIG_MAX_FILE) {
		snprintf(err, errlen, "%s: file is larger than 16 MiB", path);
		goto fail;
	}
	/* Read in one go; the loop below still copes with a file that grows
	 * while it is read, up to the same limit. */
	cap = (size_t)st.st_size + 1;
	for (;;) {
		ssize_t n;

		if (used == cap) {
			char *nb;
			if (cap > CONFIG_MAX_FILE) {
				snprintf(err, errlen, "%s: file is larger than 16 MiB", path);
				goto fail;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		} else if (buf == NULL) {
			buf = malloc(cap);
			if (buf == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	if (used > CONFIG_MAX_FILE) {
		snprintf(err, errlen, "%s: file is larger than 16 MiB", path);
		free(buf);
		return -1;
	}
	r = config_parse_buffer(buf, used, path, out, err, errlen);
	free(buf);
	return r;
fail:
	free(buf);
	close(fd);
	return -1;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->daemon.log_target);
	free(cfg->daemon.dns_servers);
	free(cfg->daemon.control_socket);
	free(cfg->daemon.control_group);
	free(cfg->daemon.state_directory);
	free(cfg->tcp.listen);
	free(cfg->tcp.allow.v);
	free(cfg->udp.listen);
	free(cfg->udp.allow.v);
	free(cfg->web.listen);
	free(cfg->web.allow.v);
	free(cfg->stamp.listen);
	free(cfg->stamp.allow.v);
	config_drop_targets(cfg);
	free(cfg);
}

void config_drop_targets(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_targets; i++) {
		free(cfg->targets[i].name);
		free(cfg->targets[i].host);
		free(cfg->targets[i].interface);
		free(cfg->targets[i].labels);
	}
	free(cfg->targets);
	cfg->targets = NULL;
	cfg->n_targets = 0;
}
