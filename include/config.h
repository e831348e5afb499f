/*
 * config: the validated, immutable configuration.  inih reads the file;
 * every key is checked here.  Unknown sections and keys are errors.
 *
 * Errors look like
 *   beacond.ini:12: [tcp] idle_timeout: "5 parsecs" is not a duration (e.g. 30s, 500ms, 5m)
 * and the caller exits with EX_CONFIG (78).  The first error wins.
 *
 * Rules beyond "key = value": files up to 16 MiB, lines up to 64 KiB (a
 * longer line is an error, never split); no control characters (NUL and
 * binary garbage are errors with their line); each section at most once
 * ([target NAME] names unique) and each key at most once per section;
 * comments start with ';' or '#', also after whitespace inside a line.
 * Targets inherit every [icmp] probe value they do not set, wherever [icmp]
 * appears in the file.
 */
#ifndef BEACOND_CONFIG_H
#define BEACOND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "acl.h"
#include "log.h"
#include "parse.h"
#include "util.h"
#include "view.h"

#define CONFIG_DEFAULT_PATH "/etc/beacond/beacond.ini"

enum svc_mode { MODE_ECHO, MODE_DISCARD };
enum icmp_socket_kind { ICMP_SOCKET_AUTO, ICMP_SOCKET_DGRAM, ICMP_SOCKET_RAW };
enum target_family { FAMILY_AUTO, FAMILY_4, FAMILY_6, FAMILY_BOTH };
enum stamp_mode { STAMP_STATELESS, STAMP_STATEFUL };
enum stamp_short { STAMP_SHORT_REPLY, STAMP_SHORT_DROP };
enum stamp_cos { STAMP_COS_KEEP, STAMP_COS_APPLY };

struct config_daemon {
	enum log_level log_level;        /* info */
	enum log_format log_format;      /* logfmt */
	char *log_target;                /* "auto" | "stderr" | "journal" | path */
	uint64_t shutdown_timeout_ns;    /* 10s: drain deadline on SIGTERM */
	uint64_t stats_interval_ns;      /* 60s: periodic service counters; 0 = off */
	char *dns_servers;               /* NULL: /etc/resolv.conf; else c-ares list
					  * "127.0.0.1:5353,[::1]:53" (port 53 default) */
	char *control_socket;            /* /run/beacond/control.sock; "" = none */
	char *control_group;             /* "" = the daemon's group */
	char *state_directory;           /* NULL: $STATE_DIRECTORY or /var/lib/beacond;
					  * "" = history not saved */
	uint64_t save_interval_ns;       /* 5m, 10s..1d; 0 = only at stop and reload */
	uint64_t history_retention_ns;   /* 30d, 1h..10y: files of removed targets */
};

struct config_tcp {
	bool enabled;                    /* yes */
	struct endpoint *listen;         /* 127.0.0.1:7, [::1]:7 */
	size_t n_listen;
	enum svc_mode mode;              /* echo */
	uint32_t max_connections;        /* 4096, 1..1000000 */
	uint64_t idle_timeout_ns;        /* 300s; 0 = never */
	uint64_t max_pending;            /* 64KiB, 1KiB..64MiB */
	uint32_t backlog;                /* 511, 1..65535 */
	struct acl allow;                /* loopback + private ranges */
	bool nodelay;                    /* yes */
	bool keepalive;                  /* no */
};

struct config_udp {
	bool enabled;                    /* yes */
	struct endpoint *listen;         /* 127.0.0.1:7, [::1]:7 */
	size_t n_listen;
	enum svc_mode mode;              /* echo */
	struct acl allow;                /* same default as tcp */
	uint32_t rate_limit;             /* replies/s per source; 0 = off; default 100 */
	uint32_t rate_burst;             /* bucket depth; default = max(1, 2 * rate_limit) */
	uint32_t rate_table_size;        /* sources tracked, 4096, 64..1048576 */
	uint64_t recv_buffer;            /* SO_RCVBUF; 0 = kernel default */
};

struct config_stamp {
	bool enabled;                    /* no */
	struct endpoint *listen;         /* 127.0.0.1:862, [::1]:862 */
	size_t n_listen;
	struct acl allow;                /* same default as udp */
	uint32_t rate_limit;             /* replies/s per source; 0 = off; default 100 */
	uint32_t rate_burst;             /* default = max(1, 2 * rate_limit) */
	uint32_t rate_table_size;        /* sources tracked, 4096, 64..1048576 */
	enum stamp_mode mode;            /* stateless */
	uint32_t sessions;               /* stateful: table size, 1024, 1..1048576 */
	uint64_t session_timeout_ns;     /* stateful: idle expiry, 5m, 1s..1d */
	enum stamp_short short_requests; /* reply */
	enum stamp_cos class_of_service; /* keep: never re-mark replies; apply: DSCP1 of a CoS TLV */
};

/* Settings of [icmp] that each [target] may override. */
struct probe_opts {
	uint64_t interval_ns;            /* 1s, 10ms..1h */
	uint64_t timeout_ns;             /* 1s, 1ms..1h */
	uint64_t summary_interval_ns;    /* 60s; 0 = off */
	uint32_t payload_size;           /* 56, 0..65000 bytes */
	uint32_t ttl;                    /* 64, 1..255 */
	uint32_t tos;                    /* 0, 0..255 (DSCP << 2 | ECN) */
	bool dont_fragment;              /* yes: DF set, never fragmented */
	uint32_t down_after;             /* 3, 1..1000 */
	uint32_t up_after;               /* 2, 1..1000 */
	bool log_replies;                /* no */
	uint64_t resolve_interval_ns;    /* 5m, 1s..1d: re-resolve host names (or at
					  * the record TTL when shorter, >= 1s) */
	bool history;                    /* yes: keep rounds (history.h) */
	uint64_t history_step_ns;        /* 1m, 1s..1h: one round */
};

/* The RTT histogram's finite upper bounds (the +Inf bucket is implicit). */
#define CONFIG_RTT_BUCKETS_MAX VIEW_RTT_BUCKETS_MAX

/* The RTT histogram's default bounds ("fine"): 0.1, 0.2, 0.5, 1, 2, 5, 10,
 * 20, 50, 100, 200, 500, 1000, 2000 ms.  Filled into config_icmp at load;
 * the histogram is still off until n_rtt_buckets is set. */
#define CONFIG_RTT_BUCKETS_DEFAULT_N 14
extern const uint64_t config_rtt_buckets_default_ns[CONFIG_RTT_BUCKETS_DEFAULT_N];

struct config_icmp {
	enum icmp_socket_kind socket;    /* auto (global, not per target) */
	struct probe_opts defaults;
	/* Set from [web] histogram / rtt_buckets: ascending bounds in ns;
	 * n_rtt_buckets = 0: no histogram is kept (no per-probe buckets). */
	uint32_t n_rtt_buckets;
	uint64_t rtt_buckets_ns[CONFIG_RTT_BUCKETS_MAX];
};

enum web_histogram { HISTOGRAM_FINE, HISTOGRAM_COARSE, HISTOGRAM_OFF };

#define CONFIG_WEB_PORT 9437

struct config_web {
	bool enabled;                    /* yes */
	struct endpoint *listen;         /* 127.0.0.1:9437, [::1]:9437 */
	size_t n_listen;
	struct acl allow;                /* loopback; checked at accept */
	uint32_t max_connections;        /* 16, 1..1024 */
	uint64_t header_timeout_ns;      /* 10s, 100ms..5m: a request in full */
	uint64_t idle_timeout_ns;        /* 30s, 1s..1h: no progress either way */
	uint64_t max_header_size;        /* 16KiB, 2KiB..1MiB */
	bool gzip;                       /* yes: when the client accepts it */
	enum web_histogram histogram;    /* fine (see config_icmp.rtt_buckets_ns) */
};

struct config_target {
	char *name;                      /* [target NAME]: [A-Za-z0-9._-]{1,64}, unique */
	char *host;                      /* IP literal or host name (required) */
	enum target_family family;       /* auto */
	bool has_source;
	struct endpoint source;          /* source address (port 0) */
	char *interface;                 /* NULL or an interface name (<16 chars) */
	struct probe_opts opts;          /* [icmp] defaults with this target's overrides */
	char *labels;                    /* NULL or validated "k=v,k=v" (labels.h) */
	unsigned line;                   /* line of the section header, for messages */
};

struct config {
	char *path;
	struct config_daemon daemon;
	struct config_tcp tcp;
	struct config_udp udp;
	struct config_stamp stamp;
	struct config_icmp icmp;
	struct config_web web;
	struct config_target *targets;
	size_t n_targets;
};

/* Load and validate a file.  0 and *out set, or -1 with the message in err. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
/* Same from a string; name is used in messages in place of the file name. */
int config_parse_string(const char *text, const char *name, struct config **out,
			char *err, size_t errlen);
/* Same from len bytes that may contain NULs (they are rejected as control
 * characters, with their line): for tests and fuzzers. */
int config_parse_buffer(const char *buf, size_t len, const char *name,
			struct config **out, char *err, size_t errlen);
void config_free(struct config *cfg);
/* Free the [target] sections (n_targets becomes 0).  The pinger copies what
 * it needs at commit, so the daemon drops them to save ~300 bytes a target. */
void config_drop_targets(struct config *cfg);

#endif
