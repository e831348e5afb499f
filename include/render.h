/*
 * render: pure producers of the history's pages and graphs, as streams
 * (stream.h).  They read a history (history.h) and the view (view.h) and
 * write bytes; no clocks (the caller passes "now"), no I/O.
 *
 * The graph (render_graph_new) is SmokePing's: for every round, the RTT
 * quantiles stacked as grey smoke (the band between the 0 and 100 %
 * quantiles lightest, then 10-90, 20-80, 30-70 and 40-60 darker toward the
 * median), and the median as a short line coloured by that round's loss
 * (render_loss_color).  A round where every request was lost has no RTT:
 * it is a dark red mark along the top of the plot.  No round, no mark: a
 * gap.  The whole SVG is a self-contained document (no external
 * resources, no script), light or dark by prefers-color-scheme, laid out
 * for a 600 x 200 viewBox that scales down to a phone.
 */
#ifndef BEACOND_RENDER_H
#define BEACOND_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "history.h"
#include "stream.h"
#include "view.h"

/* The Content-Security-Policy of the pages, and of the standalone SVG
 * (which needs its inline <style> for the dark scheme). */
#define RENDER_CSP_PAGE "default-src 'none'; style-src 'self'; img-src 'self'; " \
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
#define RENDER_CSP_SVG "default-src 'none'; style-src 'unsafe-inline'"

/* SmokePing's loss colours, by the share of a round's requests lost. */
struct render_loss_band {
	double max_pct;          /* this colour up to and including max_pct */
	const char *color;
	const char *label;
};
extern const struct render_loss_band render_loss_bands[];
extern const size_t render_n_loss_bands;
const char *render_loss_color(uint32_t sent, uint32_t lost);

/* A graph range: `slots` rounds of tier `tier`. */
struct render_range {
	unsigned tier;
	uint32_t slots;
};
/* The three standard ranges of a step: tier 0, 1 and 2 in full (3 h, 30 h
 * and 10 d with the default 1-min step). */
struct render_range render_range_std(unsigned i);
/* "3h", "30h", "10d" (the standard ranges, whatever the step) or any
 * duration ("6h", "2d", "90s"): the finest tier that covers it.  -1 when
 * the text is not a duration. */
int render_range_parse(const char *s, uint64_t step_ns, struct render_range *out);
/* "3 h", "30 min", "10 d": a range's length for titles. */
void render_span_label(uint64_t ns, char *buf, size_t len);

struct render_graph_args {
	const char *target, *host;
	uint8_t family;
	struct render_range range;
	uint64_t now_wall_ns;    /* printed as "updated"; the graph ends at the history's newest round */
};
/* A stream producing the graph's SVG.  The rounds are copied now, so the
 * output is one consistent picture however slowly it is read.  h may be
 * NULL (no history yet: an empty graph that says so).  NULL on ENOMEM. */
struct stream *render_graph_new(const struct history *h, const struct render_graph_args *a);

/*
 * Pages.  They iterate probes through a source, so that tests can feed
 * synthetic ones and the daemon feeds the pinger's view.
 */
struct render_source {
	/* Start (again) at the first probe. */
	void (*begin)(void *arg);
	/* The next probe; false at the end. */
	bool (*next)(void *arg, struct view_probe *out);
	/* That probe's history, or NULL (none, or history = no). */
	const struct history *(*history)(void *arg, const struct view_probe *p);
	/* Called when the stream is freed (may be NULL). */
	void (*release)(void *arg);
	void *arg;
};

#define RENDER_PAGE_SIZE 100

/* `/`: every target, RENDER_PAGE_SIZE a page (page from 0), those whose
 * name or host contains `filter` (NULL or "": all). */
struct stream *render_overview_new(const struct render_source *src, const char *filter,
				   unsigned page, uint64_t now_wall_ns);
/* `/target/NAME`: the target's probes (n of them, already looked up; n 0
 * gives a "no such target" page), each with its three graphs and figures. */
struct stream *render_target_new(const struct view_probe *probes,
				 const struct history *const *hist, size_t n,
				 uint64_t step_ns, uint64_t now_wall_ns);
/* The stylesheet the pages link (served at /style.css). */
extern const char render_css[];

/* Render a whole stream into a malloc'd, NUL-terminated buffer (tests,
 * beaconctl graph over a small reply).  NULL on error; *len set. */
char *render_collect(struct stream *s, size_t *len);

#endif
