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

/* Register GET/HEAD /metrics on w.  d outlives w.  Returns 0 or -1. */
int metrics_register(struct web *w, const struct daemon *d);

/* Fill *out from /proc; fields that cannot be read stay unset. */
void metrics_read_proc(struct metrics_proc *out);

#endif
