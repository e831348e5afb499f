/*
 * render_svg: the SmokePing-style graph of one probe's history, as a
 * stream of SVG records.  See render.h.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parse.h"
#include "render.h"
#include "render_out.h"
#include "util.h"

/* SmokePing's default colours (0 lost green; a few percent light, then
 * darker blue; violet; magenta), extended with orange and red for heavy
 * loss and dark red for all lost. */
const struct render_loss_band render_loss_bands[] = {
	{ 0, "#26ff00", "0" },
	{ 5, "#00b8ff", "\xe2\x89\xa4" "5%" },
	{ 10, "#0059ff", "\xe2\x89\xa4" "10%" },
	{ 15, "#5e00ff", "\xe2\x89\xa4" "15%" },
	{ 25, "#7e00ff", "\xe2\x89\xa4" "25%" },
	{ 50, "#dd00ff", "\xe2\x89\xa4" "50%" },
	{ 75, "#ff8000", "\xe2\x89\xa4" "75%" },
	{ 100, "#ff0000", "&lt;100%" },     /* labels are XML text */
	{ 100, "#a00000", "100%" },
};
const size_t render_n_loss_bands = ARRAY_SIZE(render_loss_bands);

const char *render_loss_color(uint32_t sent, uint32_t lost)
{
	if (lost == 0 || sent == 0)
		return render_loss_bands[0].color;
	if (lost >= sent)
		return render_loss_bands[render_n_loss_bands - 1].color;
	for (size_t i = 1; i + 2 < render_n_loss_bands; i++)
		if ((uint64_t)lost * 100 <= (uint64_t)render_loss_bands[i].max_pct * sent)
			return render_loss_bands[i].color;
	return render_loss_bands[render_n_loss_bands - 2].color;
}

/* ---- ranges */

struct render_range render_range_std(unsigned i)
{
	if (i >= HISTORY_TIERS)
		i = HISTORY_TIERS - 1;
	return (struct render_range){ i, history_tier_len[i] };
}

int render_range_parse(const char *s, uint64_t step_ns, struct render_range *out)
{
	static const char *const std[HISTORY_TIERS] = { "3h", "30h", "10d" };
	for (unsigned i = 0; i < HISTORY_TIERS; i++)
		if (strcmp(s, std[i]) == 0) {
			*out = render_range_std(i);
			return 0;
		}
	uint64_t ns;
	if (parse_duration(s, &ns) < 0 || ns == 0)
		return -1;
	for (unsigned i = 0; i < HISTORY_TIERS; i++) {
		uint64_t slot = step_ns * history_tier_ratio[i];
		if (ns <= slot * history_tier_len[i] || i + 1 == HISTORY_TIERS) {
			uint64_t n = (ns + slot - 1) / slot;
			if (n < 2)
				n = 2;
			if (n > history_tier_len[i])
				n = history_tier_len[i];
			*out = (struct render_range){ i, (uint32_t)n };
			return 0;
		}
	}
	return -1;
}

void render_span_label(uint64_t ns, char *buf, size_t len)
{
	uint64_t s = ns / NSEC_PER_SEC;
	if (s >= 2 * 86400 && s % 86400 == 0)
		snprintf(buf, len, "%llu d", (unsigned long long)(s / 86400));
	else if (s >= 3600 && s % 3600 == 0)
		snprintf(buf, len, "%llu h", (unsigned long long)(s / 3600));
	else if (s >= 120 && s % 60 == 0)
		snprintf(buf, len, "%llu min", (unsigned long long)(s / 60));
	else
		snprintf(buf, len, "%llu s", (unsigned long long)s);
}

/* ---- output helpers (render_out.h) */

bool out_printf(struct out *o, const char *fmt, ...)
{
	if (o->len >= o->cap)
		return false;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		return false;     /* does not fit: the record is written next time */
	o->len += (size_t)n;
	return true;
}

void xml_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	for (; *s && o + 7 < len; s++) {
		const char *rep = NULL;
		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: break;
		}
		if (rep) {
			size_t n = strlen(rep);
			memcpy(buf + o, rep, n);
			o += n;
		} else if ((unsigned char)*s >= 0x20 && *s != 0x7f) {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
}

void fmt_rtt(uint64_t ns, char *buf, size_t len)
{
	if (ns == UINT64_MAX)
		snprintf(buf, len, "-");
	else if (ns < 1000 * NSEC_PER_USEC)
		snprintf(buf, len, "%.0f \xc2\xb5s", (double)ns / 1e3);
	else if (ns < 10 * NSEC_PER_MSEC)
		snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
	else if (ns < NSEC_PER_SEC)
		snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", (double)ns / 1e9);
}

char *render_collect(struct stream *s, size_t *len)
{
	size_t cap = 16384, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		goto fail;
	for (;;) {
		if (cap - n < STREAM_MIN_CAP + 1) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		ssize_t r = s->fill(s, buf + n, cap - n - 1);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	if (s->free)
		s->free(s);
	return buf;
fail:
	free(buf);
	if (s->free)
		s->free(s);
	return NULL;
}

/* ---- the graph */

#define GW 600
#define GH 200
#define PL 52.0        /* plot area */
#define PR 592.0
#define PT 24.0
#define PB 146.0

enum gphase { G_HEAD, G_YTICK, G_XTICK, G_ROUND, G_LEGEND, G_STATS, G_END, G_DONE };

struct graph {
	struct stream s;
	char target[2 * HISTORY_NAME_MAX], host[6 * HISTORY_NAME_MAX];
	uint8_t family;
	char span[32];
	uint64_t first, slot_ns;  /* slot of rounds[0], slot length */
	uint32_t n;
	struct history_round *r;
	uint64_t now_wall_ns;
	/* Scale. */
	double ymax_ns, ytick_ns, unit_ns;
	const char *unit;
	uint64_t xtick_ns;
	/* Figures. */
	uint64_t sent, lost, rounds;
	double loss_max_pct, loss_now_pct;
	uint64_t med_min, med_max, med_now, med_sum, n_med;
	/* Where the producer is. */
	enum gphase phase;
	uint64_t i;
};

static double x_of(const struct graph *g, double j)
{
	return PL + (PR - PL) * j / g->n;
}

static double y_of(const struct graph *g, uint64_t ns)
{
	double y = PB - (PB - PT) * (double)ns / g->ymax_ns;
	return y < PT ? PT : y;
}

/* 1, 2, 5 x 10^k at or above v. */
static double nice_step(double v)
{
	double mag = pow(10, floor(log10(v)));
	double n = v / mag;
	return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

static void graph_scale(struct graph *g)
{
	/* Scale to the rounds' 90 % quantiles (a few spikes do not flatten
	 * the picture; what is above is clipped at the top), with some room. */
	uint64_t top = 0;
	for (uint32_t j = 0; j < g->n; j++) {
		const struct history_round *r = &g->r[j];
		if (history_round_sent(r) == history_round_lost(r))
			continue;
		uint64_t v = history_rtt_decode(r->q[HISTORY_Q - 2]);
		uint64_t m = history_rtt_decode(r->q[HISTORY_MEDIAN]);
		if (v < m * 3 / 2)
			v = m * 3 / 2;   /* keep the median well below the top */
		if (v > top)
			top = v;
	}
	if (top < 100 * NSEC_PER_USEC)
		top = 100 * NSEC_PER_USEC;
	g->ytick_ns = nice_step((double)top * 1.1 / 4);
	g->ymax_ns = ceil((double)top * 1.1 / g->ytick_ns) * g->ytick_ns;
	if (g->ymax_ns < 1e6) {
		g->unit = "\xc2\xb5s";
		g->unit_ns = 1e3;
	} else if (g->ymax_ns < 2e9) {
		g->unit = "ms";
		g->unit_ns = 1e6;
	} else {
		g->unit = "s";
		g->unit_ns = 1e9;
	}
	static const uint64_t steps_s[] = {
		1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
		21600, 43200, 86400, 172800, 432000, 864000,
	};
	uint64_t span = g->slot_ns * g->n;
	g->xtick_ns = steps_s[ARRAY_SIZE(steps_s) - 1] * NSEC_PER_SEC;
	for (size_t i = 0; i < ARRAY_SIZE(steps_s); i++)
		if (span / (steps_s[i] * NSEC_PER_SEC) <= 6) {
			g->xtick_ns = steps_s[i] * NSEC_PER_SEC;
			break;
		}
}

static void graph_figures(struct graph *g)
{
	g->med_min = g->med_now = UINT64_MAX;
	g->loss_now_pct = -1;
	for (uint32_t j = 0; j < g->n; j++) {
		const struct history_round *r = &g->r[j];
		uint32_t sent = history_round_sent(r), lost = history_round_lost(r);
		if (sent == 0)
			continue;
		g->rounds++;
		g->sent += sent;
		g->lost += lost;
		double pct = 100.0 * lost / sent;
		if (pct > g->loss_max_pct)
			g->loss_max_pct = pct;
		g->loss_now_pct = pct;
		if (sent == lost) {
			g->med_now = UINT64_MAX;
			continue;
		}
		uint64_t m = history_rtt_decode(r->q[HISTORY_MEDIAN]);
		g->med_now = m;
		if (m < g->med_min)
			g->med_min = m;
		if (m > g->med_max)
			g->med_max = m;
		g->med_sum += m;
		g->n_med++;
	}
}

static const char graph_style[] =
	"<style>"
	"text{font:10px sans-serif;fill:#222}"
	".t{font-weight:bold;font-size:11px}"
	".bg{fill:#fff}.pl{fill:#f8f8f8;stroke:#bbb}.gr{stroke:#ddd}"
	".s{fill:#000}"
	"@media (prefers-color-scheme:dark){"
	"text{fill:#ddd}.bg{fill:#151515}.pl{fill:#1e1e1e;stroke:#555}.gr{stroke:#333}"
	".s{fill:#fff}}"
	"</style>";

/* Smoke opacities, outermost band first: overlapping, so darker inward. */
static const char *const smoke_op[5] = { ".10", ".10", ".12", ".14", ".18" };

static bool graph_round(struct graph *g, struct out *o, uint32_t j)
{
	const struct history_round *r = &g->r[j];
	uint32_t sent = history_round_sent(r), lost = history_round_lost(r);
	if (sent == 0)
		return true;     /* a gap */
	double x0 = x_of(g, j), x1 = x_of(g, j + 1);
	uint64_t t = (g->first + j) * g->slot_ns / NSEC_PER_SEC;
	const char *col = render_loss_color(sent, lost);
	if (sent == lost)
		return out_printf(o, "<path class=\"m\" d=\"M%.1f %.1fH%.1f\" stroke=\"%s\" "
				  "stroke-width=\"4\" data-t=\"%llu\" data-sent=\"%u\" "
				  "data-lost=\"%u\"/>\n", x0, PT + 2, x1, col,
				  (unsigned long long)t, sent, lost);
	char rects[1024];
	struct out ro = { rects, sizeof(rects), 0 };
	for (unsigned k = 0; k < 5; k++) {
		double ya = y_of(g, history_rtt_decode(r->q[HISTORY_Q - 1 - k]));
		double yb = y_of(g, history_rtt_decode(r->q[k]));
		out_printf(&ro, "<rect class=\"s\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
			   "height=\"%.2f\" fill-opacity=\"%s\"/>", x0, ya, x1 - x0,
			   yb - ya < 0.3 ? 0.3 : yb - ya, smoke_op[k]);
	}
	uint64_t med = history_rtt_decode(r->q[HISTORY_MEDIAN]);
	return out_printf(o, "<g data-t=\"%llu\">%s<path class=\"m\" d=\"M%.2f %.2fH%.2f\" "
			  "stroke=\"%s\" stroke-width=\"2\" data-sent=\"%u\" data-lost=\"%u\" "
			  "data-median-us=\"%llu\"/></g>\n",
			  (unsigned long long)t, rects, x0, y_of(g, med), x1, col, sent, lost,
			  (unsigned long long)(med / NSEC_PER_USEC));
}

/* The document head, the title and the plot frame. */
static bool graph_head(struct graph *g, struct out *o)
{
	if (!out_printf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
			"width=\"%d\" height=\"%d\" role=\"img\">\n<title>%s %s, last %s</title>\n%s\n"
			"<rect class=\"bg\" width=\"%d\" height=\"%d\"/>\n"
			"<text class=\"t\" x=\"%.0f\" y=\"14\">%s (%s, IPv%u) \xe2\x80\x94 last %s</text>\n"
			"<rect class=\"pl\" x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\"/>\n",
			GW, GH, GW, GH, g->target, g->host, g->span, graph_style,
			GW, GH, PL, g->target, g->host, g->family, g->span,
			PL, PT, PR - PL, PB - PT))
		return false;
	g->phase = G_YTICK;
	g->i = 0;
	return true;
}

/* One horizontal grid line and its RTT label; then the plot group. */
static bool graph_ytick(struct graph *g, struct out *o)
{
	double v = g->i * g->ytick_ns;
	if (v > g->ymax_ns + 1) {
		if (!out_printf(o, "<g class=\"plot\" shape-rendering=\"crispEdges\" "
				"data-x0=\"%.0f\" data-x1=\"%.0f\" data-y0=\"%.0f\" "
				"data-px-per-ms=\"%.6f\" data-t0=\"%llu\" data-t1=\"%llu\">\n",
				PL, PR, PB, (PB - PT) / (g->ymax_ns / 1e6),
				(unsigned long long)(g->first * g->slot_ns / NSEC_PER_SEC),
				(unsigned long long)((g->first + g->n) * g->slot_ns / NSEC_PER_SEC)))
			return false;
		g->phase = G_XTICK;
		g->i = 0;
		return true;
	}
	double y = y_of(g, (uint64_t)v);
	double shown = v / g->unit_ns;
	if (!out_printf(o, "<path class=\"gr\" d=\"M%.0f %.1fH%.0f\"/>"
			"<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g %s</text>\n",
			PL, y, PR, PL - 3, y + 3, shown, g->unit))
		return false;
	g->i++;
	return true;
}

/* One vertical grid line and its UTC time label. */
static bool graph_xtick(struct graph *g, struct out *o)
{
	uint64_t t0 = g->first * g->slot_ns, t1 = (g->first + g->n) * g->slot_ns;
	uint64_t t = (t0 / g->xtick_ns + 1 + g->i) * g->xtick_ns;
	if (t >= t1) {
		g->phase = G_ROUND;
		g->i = 0;
		return true;
	}
	time_t ts = (time_t)(t / NSEC_PER_SEC);
	struct tm tm;
	gmtime_r(&ts, &tm);
	char lab[32];
	if (g->xtick_ns >= 86400 * NSEC_PER_SEC)
		strftime(lab, sizeof(lab), "%m-%d", &tm);
	else if (g->xtick_ns < 60 * NSEC_PER_SEC)
		strftime(lab, sizeof(lab), "%H:%M:%S", &tm);
	else if (tm.tm_hour == 0 && tm.tm_min == 0)
		strftime(lab, sizeof(lab), "%m-%d", &tm);
	else
		strftime(lab, sizeof(lab), "%H:%M", &tm);
	double x = PL + (PR - PL) * (double)(t - t0) / (double)(t1 - t0);
	if (!out_printf(o, "<path class=\"gr\" d=\"M%.1f %.0fV%.0f\"/>"
			"<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n",
			x, PT, PB, x, PB + 12, lab))
		return false;
	g->i++;
	return true;
}

/* One round (smoke and median), or the end of the plot. */
static bool graph_next_round(struct graph *g, struct out *o)
{
	if (g->i >= g->n) {
		if (!out_printf(o, "</g>\n<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">UTC</text>\n",
				PR, PB + 12 + 10))
			return false;
		g->phase = G_LEGEND;
		g->i = 0;
		return true;
	}
	if (!graph_round(g, o, (uint32_t)g->i))
		return false;
	g->i++;
	return true;
}

/* The loss legend, one colour band at a time. */
static bool graph_legend(struct graph *g, struct out *o)
{
	if (g->i == 0 && !out_printf(o, "<text x=\"%.0f\" y=\"%.0f\">loss</text>\n",
				     PL - 30, PB + 30.0))
		return false;
	if (g->i == 0)
		g->i = 1;
	size_t b0 = g->i - 1;
	if (b0 >= render_n_loss_bands) {
		g->phase = G_STATS;
		return true;
	}
	double x = PL - 4 + 60.0 * (double)b0;
	if (!out_printf(o, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"6\" fill=\"%s\"/>"
			"<text x=\"%.0f\" y=\"%.0f\">%s</text>\n", x, PB + 24, render_loss_bands[b0].color,
			x + 13, PB + 30.0, render_loss_bands[b0].label))
		return false;
	g->i++;
	return true;
}

/* avg/min/max/now of the median RTT and of the loss. */
static bool graph_stats(struct graph *g, struct out *o)
{
	char a[64], b[64], c[64], d[64];

	if (g->rounds == 0) {
		if (!out_printf(o, "<text x=\"%.0f\" y=\"%.0f\">no data in this range</text>\n",
				(PL + PR) / 2 - 50, (PT + PB) / 2))
			return false;
	} else {
		fmt_rtt(g->n_med ? g->med_sum / g->n_med : UINT64_MAX, a, sizeof(a));
		fmt_rtt(g->med_min, b, sizeof(b));
		fmt_rtt(g->med_max, c, sizeof(c));
		fmt_rtt(g->med_now, d, sizeof(d));
		if (!out_printf(o, "<text x=\"%.0f\" y=\"%.0f\" class=\"st\">median RTT avg %s  min %s  "
				"max %s  now %s \xc2\xb7 loss avg %.1f%%  max %.1f%%  now %.1f%%</text>\n",
				PL - 30, PB + 46.0, a, b, c, d,
				g->sent ? 100.0 * g->lost / g->sent : 0.0, g->loss_max_pct,
				g->loss_now_pct < 0 ? 0.0 : g->loss_now_pct))
			return false;
	}
	g->phase = G_END;
	return true;
}

/* Each phase function above writes its next record and advances g; it
 * returns false when its next record does not fit (g keeps what was
 * written before it), and graph_fill returns what the buffer holds. */
static ssize_t graph_fill(struct stream *s, char *buf, size_t cap)
{
	struct graph *g = container_of(s, struct graph, s);
	struct out o = { buf, cap, 0 };
	bool more = true;

	while (more) {
		switch (g->phase) {
		case G_HEAD: more = graph_head(g, &o); break;
		case G_YTICK: more = graph_ytick(g, &o); break;
		case G_XTICK: more = graph_xtick(g, &o); break;
		case G_ROUND: more = graph_next_round(g, &o); break;
		case G_LEGEND: more = graph_legend(g, &o); break;
		case G_STATS: more = graph_stats(g, &o); break;
		case G_END:
			more = out_printf(&o, "</svg>\n");
			if (more)
				g->phase = G_DONE;
			break;
		case G_DONE:
			return (ssize_t)o.len;
		}
	}
	if (o.len == 0)
		return -1;    /* a record larger than cap: cannot happen at STREAM_MIN_CAP */
	return (ssize_t)o.len;
}

static void graph_free(struct stream *s)
{
	struct graph *g = container_of(s, struct graph, s);
	free(g->r);
	free(g);
}

struct stream *render_graph_new(const struct history *h, const struct render_graph_args *a)
{
	struct graph *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->s.fill = graph_fill;
	g->s.free = graph_free;
	xml_escape(a->target, g->target, sizeof(g->target));
	xml_escape(a->host ? a->host : "", g->host, sizeof(g->host));
	g->family = a->family;
	g->now_wall_ns = a->now_wall_ns;
	unsigned tier = a->range.tier < HISTORY_TIERS ? a->range.tier : HISTORY_TIERS - 1;
	g->n = a->range.slots;
	if (g->n < 2)
		g->n = 2;
	if (g->n > history_tier_len[tier])
		g->n = history_tier_len[tier];
	uint64_t step = h ? h->step_ns : HISTORY_STEP_DEFAULT_NS;
	g->slot_ns = step * history_tier_ratio[tier];
	render_span_label(g->slot_ns * g->n, g->span, sizeof(g->span));
	g->r = calloc(g->n, sizeof(*g->r));
	if (!g->r) {
		free(g);
		return NULL;
	}
	/* The graph ends at the last finished slot (tier 0) or the open
	 * window (coarser tiers), or at the newest round if the clock is
	 * behind it. */
	uint64_t end = a->now_wall_ns / g->slot_ns;
	if (tier == 0 && end > 0)
		end--;
	uint64_t newest = h ? history_newest(h, tier) : HISTORY_NONE;
	if (newest != HISTORY_NONE && newest > end)
		end = newest;
	if (end + 1 < g->n)
		end = g->n - 1;
	g->first = end + 1 - g->n;
	if (h)
		for (uint32_t j = 0; j < g->n; j++)
			if (!history_get(h, tier, g->first + j, &g->r[j]))
				memset(&g->r[j], 0, sizeof(g->r[j]));
	graph_scale(g);
	graph_figures(g);
	g->phase = G_HEAD;
	return &g->s;
}
