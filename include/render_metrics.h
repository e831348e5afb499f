/*
 * render_metrics: the Prometheus text exposition format 0.0.4 of
 * everything beacond counts, as a resumable producer (a struct stream).
 *
 * Pure: it reads the view through the callbacks of struct metrics_source
 * (the daemon passes pinger_view_* and daemon_view; the unit tests pass
 * synthetic probes) and the process figures it is given, and writes bytes.
 * Each family is one group (HELP, TYPE, then all its samples), so the
 * producer walks the probes once per per-target family; it writes whole
 * lines while they fit and resumes on the next fill() where it stopped.
 * No sample carries a timestamp.  Values in base units (seconds, bytes);
 * `le` values canonical ("0.0001", "1.0", "+Inf").
 *
 * Hook for further services (the STAMP reflector): add a family table
 * entry in render_metrics.c that reads its counters through view_daemon,
 * as tcp and udp do.
 */
#ifndef BEACOND_RENDER_METRICS_H
#define BEACOND_RENDER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "stream.h"
#include "view.h"
#include "web.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Process figures, read from /proc at the start of a scrape (metrics.c). */
struct metrics_proc {
	bool have_cpu, have_rss, have_fds, have_max_fds;
	uint64_t cpu_ns;
	uint64_t rss_bytes;
	uint64_t open_fds, max_fds;
};

struct metrics_source {
	void *arg;
	void (*daemon)(void *arg, struct view_daemon *out);
	/* May be NULL (no pinger). */
	void (*global)(void *arg, struct view_pinger *out);
	void (*begin)(void *arg, struct view_cursor *c);
	bool (*next)(void *arg, struct view_cursor *c, struct view_probe *out);
	/* May be NULL. */
	const struct web_counters *(*web)(void *arg);
};

/* A producer for one scrape; NULL without memory.  src is copied. */
struct stream *metrics_stream_new(const struct metrics_source *src,
				  const struct metrics_proc *proc);

/* Pure formatting, exposed for the tests and the fuzzer.  Each returns
 * the length written (buf needs 32 bytes for numbers). */
/* ns as decimal seconds without trailing zeros: 1500000 -> "0.0015", 0 -> "0". */
size_t metrics_fmt_seconds(char *buf, uint64_t ns);
/* A bucket bound: like metrics_fmt_seconds but a whole number keeps ".0"
 * ("1.0", "2.0"); UINT64_MAX -> "+Inf". */
size_t metrics_fmt_le(char *buf, uint64_t ns);
/* A label value escaped for the text format (\ -> \\, " -> \", newline ->
 * \n); writes at most cap bytes and returns the full escaped length. */
size_t metrics_escape(char *dst, size_t cap, const char *src, size_t n);

#endif
