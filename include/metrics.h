/*
 * metrics: the /metrics page on the [web] listener.  Reads the process
 * figures (/proc/self/stat, /proc/self/fd, RLIMIT_NOFILE) once per scrape
 * (the thin place where the metrics make system calls) and streams
 * render_metrics over the view.
 */
#ifndef BEACOND_METRICS_H
#define BEACOND_METRICS_H

#include "render_metrics.h"
#include "web.h"

struct daemon;

/* The page's state, embedded in its owner (the daemon). */
struct metrics_page {
	const struct daemon *d;
	const struct web *w;
};

/* Register GET/HEAD /metrics on w; mp and d outlive w.  Returns 0 or -1. */
int metrics_register(struct metrics_page *mp, struct web *w, const struct daemon *d);

/* Fill *out from /proc; fields that cannot be read stay unset. */
void metrics_read_proc(struct metrics_proc *out);

#endif
