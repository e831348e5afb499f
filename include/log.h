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
 * systemd journal (JOURNAL_STREAM matches stderr's st_dev:st_ino, or
 * log_target = journal) lines go to journald's native socket
 * (/run/systemd/journal/socket) as one datagram each: MESSAGE= the line
 * without timestamp, PRIORITY= by level, MESSAGE_ID= per event, and every
 * key again as a field, BEACOND_TARGET=gw, BEACOND_EVENT=state ...  Without
 * that socket they go to the stream with a "<N>" priority prefix.
 *
 * ts is RFC 3339 UTC with milliseconds (2026-11-21T16:30:00.123Z).  Level
 * names: debug info notice warning error.  logfmt values are quoted when
 * empty or containing space, '=', '"', '\', control bytes or invalid UTF-8;
 * inside quotes \" \\ \n \t \r and \xNN escapes.  JSON strings follow RFC
 * 8259, invalid UTF-8 bytes become U+FFFD; numbers and booleans are bare.
 * A line is at most 4096 bytes: a string that does not fit is cut, later
 * fields are dropped and the line ends with truncated=true.  Each line is
 * one write(2); a failed write drops the line (see log_dropped()).  Writing
 * a line (log_begin ... log_end, log_msg) leaves errno unchanged.
 * Single-threaded: one line is built at a time (log_begin ... log_end).
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
/* Reopen a file target (SIGHUP, logrotate: the file may have been renamed
 * or deleted).  No-op for stderr.  Returns 0, or -1 with errno, in which
 * case logging goes on into the old file.  log_setup() with a file path
 * also opens the new file first and keeps the old target if that fails. */
int log_reopen(void);
void log_close(void);
/* Redirect output to an fd (tests): journal detection off, timestamps kept,
 * level and format unchanged.  The fd is not closed by the log. */
void log_set_fd(int fd);
/* Lines dropped because write(2) failed (EAGAIN, EPIPE, ENOSPC ...). */
uint64_t log_dropped(void);

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

/* A kind of line that may come in floods: the first in each period is
 * logged, with service= (when not NULL) and suppressed= (lines dropped
 * since the previous one, when any). */
struct log_rate {
	uint64_t next_ns;         /* 0: nothing logged yet */
	uint64_t suppressed;
};
/* The gate alone (pure), for lines built by hand: true when one is due at
 * now_ns, with *suppressed = the count skipped since the last one. */
bool log_rate_due(struct log_rate *r, uint64_t now_ns, uint64_t period_ns,
		  uint64_t *suppressed);
/* log_begin() for one kind, or NULL while its period lasts (counted). */
struct logline *log_begin_rate(struct log_rate *r, uint64_t now_ns, uint64_t period_ns,
			       enum log_level level, const char *event,
			       const char *service);

/* The journal MESSAGE_ID of an event type (32 lower-case hex digits). */
void log_message_id(const char *event, char out[33]);
/* True while lines go to the journal's native socket. */
bool log_native_journal(void);

/* Convenience: an event with a free-text msg key. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
