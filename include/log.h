/*
 * log: one event per line, stable keys, logfmt (default) or JSON lines.
 *
 *   struct logline *l = log_begin(LOG_INFO, "reply");
 *   log_str(l, "target", t->name);
 *   log_u64(l, "seq", seq);
 *   log_fixed(l, "rtt_ms", rtt_ns, 1000000, 3);   // 0.412
 *   log_end(l);
 *
 * log_begin returns NULL when the level is filtered out; every log_* call
 * accepts NULL, so a disabled line costs one comparison and no formatting.
 *
 * Output: "ts=... level=info event=reply target=gw ..." (logfmt) or
 * {"ts":"...","level":"info","event":"reply",...} (json).  When stderr is the
 * systemd journal (JOURNAL_STREAM matches stderr's st_dev:st_ino) lines get a
 * "<N>" syslog priority prefix and no timestamp.
 */
#ifndef BEACOND_LOG_H
#define BEACOND_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_NOTICE,
	LOG_WARNING,
	LOG_ERR,
};

enum log_format {
	LOG_FMT_LOGFMT,
	LOG_FMT_JSON,
};

struct logline;

const char *log_level_name(enum log_level level);

/* Configure the log.  target is "auto" or "stderr" (stderr, journal-aware)
 * or a file path (opened O_APPEND|O_CLOEXEC, created 0640).  Until called,
 * logging goes to stderr at info level in logfmt.  Returns 0, or -1 with a
 * message in err. */
int log_setup(enum log_level level, enum log_format format, const char *target,
	      char *err, size_t errlen);
/* Reopen a file target (SIGHUP, logrotate).  No-op for stderr. */
int log_reopen(void);
void log_close(void);
/* Redirect output to an fd (tests), journal detection off. */
void log_set_fd(int fd);

bool log_enabled(enum log_level level);

struct logline *log_begin(enum log_level level, const char *event);
void log_str(struct logline *l, const char *key, const char *value);
void log_int(struct logline *l, const char *key, int64_t value);
void log_u64(struct logline *l, const char *key, uint64_t value);
/* value / scale printed with `decimals` digits: log_fixed(l,"rtt_ms",ns,1000000,3) */
void log_fixed(struct logline *l, const char *key, uint64_t value, uint64_t scale,
	       int decimals);
void log_double(struct logline *l, const char *key, double value, int decimals);
void log_bool(struct logline *l, const char *key, bool value);
/* A socket address as "1.2.3.4:7" / "[::1]:7" (port omitted when 0). */
struct sockaddr;
void log_addr(struct logline *l, const char *key, const struct sockaddr *sa);
/* errno as "error=..." text. */
void log_errno(struct logline *l, int err);
void log_strf(struct logline *l, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_end(struct logline *l);

/* Convenience: an event with a free-text msg key. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
