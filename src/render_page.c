/*
 * render_page: the HTML pages of the history (`/` and `/target/NAME`) as
 * streams of records: one table row, one graph block at a time.  See
 * render.h.  The pages need no script; they refresh themselves with a
 * meta refresh, link one stylesheet (/style.css) and draw sparklines as
 * inline SVG with presentation attributes, so a strict CSP holds.  The
 * markup is polyglot (void elements closed): it parses as XML too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "render_out.h"
#include "stats.h"
#include "util.h"

const char render_css[] =
	":root{color-scheme:light dark;--bg:#fff;--fg:#222;--mut:#666;--line:#ddd;--link:#0645ad}\n"
	"@media (prefers-color-scheme:dark){:root{--bg:#151515;--fg:#ddd;--mut:#999;--line:#333;--link:#8ab4f8}}\n"
	"body{margin:0 auto;max-width:1240px;padding:8px;background:var(--bg);color:var(--fg);"
	"font:14px/1.4 system-ui,sans-serif}\n"
	"a{color:var(--link)}h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:16px 0 4px}\n"
	"table{border-collapse:collapse;width:100%}td,th{padding:3px 6px;border-bottom:1px solid var(--line);"
	"text-align:left;white-space:nowrap}\n"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}.mut{color:var(--mut)}\n"
	".st{display:inline-block;min-width:5em;padding:0 4px;border-radius:3px;color:#000}\n"
	".up{background:#26ff00}.down{background:#ff4040}.unknown{background:#bbb}\n"
	"img.g{width:100%;max-width:600px;height:auto;display:block;margin:4px 0}\n"
	".graphs{display:flex;flex-wrap:wrap;gap:8px}\n"
	"form{margin:8px 0}input{font:inherit}\n"
	"@media (max-width:640px){.wide{display:none}td,th{padding:2px 3px}}\n";

#define PAGE_HEAD \
	"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>" \
	"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"/>" \
	"<meta http-equiv=\"refresh\" content=\"60\"/>" \
	"<link rel=\"stylesheet\" href=\"/style.css\"/><title>%s</title></head>\n<body>\n"

/* ---- `/` */

enum ophase { O_HEAD, O_ROWS, O_FOOT, O_DONE };

struct overview {
	struct stream s;
	struct render_source src;
	char filter[65];
	unsigned page;
	uint64_t now_wall_ns;
	enum ophase phase;
	uint64_t seen;            /* probes matching the filter so far */
	bool more;                /* one beyond this page exists */
	/* A row is formatted whole (while the probe's strings are valid) and
	 * then copied out as room allows, over several fills if need be. */
	size_t row_len, row_off;
	char row[6144];
};

static bool matches(const struct overview *ov, const struct view_probe *p)
{
	if (!ov->filter[0])
		return true;
	return strstr(p->target, ov->filter) || (p->host && strstr(p->host, ov->filter));
}

/* The newest finished round of a probe's tier 0. */
static bool newest_round(const struct history *h, struct history_round *r)
{
	if (!h)
		return false;
	uint64_t n = history_newest(h, 0);
	return n != HISTORY_NONE && history_get(h, 0, n, r);
}

/* A 120 x 20 sparkline of the last 30 rounds' medians, each point in its
 * loss colour; rounds all lost are red ticks on the top edge. */
static void sparkline(const struct history *h, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };
	buf[0] = '\0';
	if (!h || history_newest(h, 0) == HISTORY_NONE)
		return;
	enum { N = 30 };
	uint64_t last = history_newest(h, 0);
	struct history_round r[N];
	bool have[N];
	uint64_t top = 0;
	for (unsigned i = 0; i < N; i++) {
		uint64_t s = last + 1 + i >= N ? last + 1 + i - N : HISTORY_NONE;
		have[i] = s != HISTORY_NONE && history_get(h, 0, s, &r[i]);
		if (have[i] && history_round_sent(&r[i]) > history_round_lost(&r[i])) {
			uint64_t m = history_rtt_decode(r[i].q[HISTORY_MEDIAN]);
			if (m > top)
				top = m;
		}
	}
	if (top == 0)
		top = 1;
	out_printf(&o, "<svg width=\"120\" height=\"20\" viewBox=\"0 0 120 20\" aria-hidden=\"true\">");
	for (unsigned i = 0; i < N; i++) {
		if (!have[i])
			continue;
		uint32_t sent = history_round_sent(&r[i]), lost = history_round_lost(&r[i]);
		const char *col = render_loss_color(sent, lost);
		double y = sent == lost ? 1 : 18 - 16.0 * (double)history_rtt_decode(r[i].q[HISTORY_MEDIAN]) / (double)top;
		out_printf(&o, "<rect x=\"%u\" y=\"%.1f\" width=\"4\" height=\"%s\" fill=\"%s\"/>",
			   i * 4, y, sent == lost ? "19" : "2", col);
	}
	out_printf(&o, "</svg>");
	if (o.len + 1 >= len)
		buf[0] = '\0';
}

static void overview_row(struct overview *ov, const struct view_probe *p)
{
	struct out ro = { ov->row, sizeof(ov->row), 0 };
	struct out *o = &ro;
	const struct history *h = ov->src.history(ov->src.arg, p);
	char name[200], host[400], rtt[32], loss[32], spark[4096];
	xml_escape(p->target, name, sizeof(name));
	xml_escape(p->host ? p->host : "", host, sizeof(host));
	struct history_round r;
	if (newest_round(h, &r)) {
		uint32_t sent = history_round_sent(&r), lost = history_round_lost(&r);
		snprintf(loss, sizeof(loss), "%.1f%%", 100.0 * lost / sent);
		fmt_rtt(sent > lost ? history_rtt_decode(r.q[HISTORY_MEDIAN]) : UINT64_MAX, rtt, sizeof(rtt));
	} else {
		uint64_t sent = p->run.sent, lost = p->run.lost;
		if (sent)
			snprintf(loss, sizeof(loss), "%.1f%%", 100.0 * (double)lost / (double)sent);
		else
			snprintf(loss, sizeof(loss), "-");
		fmt_rtt(p->last_rtt_ns, rtt, sizeof(rtt));
	}
	sparkline(h, spark, sizeof(spark));
	const char *st = health_state_name(p->state);
	if (!out_printf(o, "<tr><td><a href=\"/target/%s\">%s</a></td><td class=\"wide mut\">%s</td>"
			  "<td class=\"wide\">IPv%u</td><td><span class=\"st %s\">%s</span></td>"
			  "<td class=\"n\">%s</td><td class=\"n\">%s</td><td>%s</td></tr>\n",
			  name, name, host, p->family, st, st, loss, rtt, spark))
		o->len = 0;   /* cannot happen: the row buffer holds the largest row */
	ov->row_len = o->len;
	ov->row_off = 0;
}

static ssize_t overview_fill(struct stream *s, char *buf, size_t cap)
{
	struct overview *ov = container_of(s, struct overview, s);
	struct out o = { buf, cap, 0 };
	char f[400];
	for (;;) {
		switch (ov->phase) {
		case O_HEAD:
			xml_escape(ov->filter, f, sizeof(f));
			if (!out_printf(&o, PAGE_HEAD, "beacond") ||
			    !out_printf(&o, "<h1>beacond targets</h1>\n<form method=\"get\" action=\"/\">"
					"<label>filter <input name=\"q\" value=\"%s\" maxlength=\"64\"/></label> "
					"<button>show</button></form>\n<table><thead><tr><th>target</th>"
					"<th class=\"wide\">host</th><th class=\"wide\">family</th><th>state</th>"
					"<th>loss now</th><th>RTT now</th><th>last 30 rounds</th></tr></thead><tbody>\n",
					f)) {
				o.len = 0;
				goto full;
			}
			ov->src.begin(ov->src.arg);
			ov->phase = O_ROWS;
			continue;
		case O_ROWS: {
			if (ov->row_off < ov->row_len) {
				size_t n = ov->row_len - ov->row_off;
				if (n > o.cap - o.len)
					n = o.cap - o.len;
				if (n == 0)
					goto full;
				memcpy(o.buf + o.len, ov->row + ov->row_off, n);
				o.len += n;
				ov->row_off += n;
				continue;
			}
			struct view_probe p;
			if (!ov->src.next(ov->src.arg, &p)) {
				ov->phase = O_FOOT;
				continue;
			}
			if (!matches(ov, &p))
				continue;
			uint64_t idx = ov->seen++;
			if (idx < (uint64_t)ov->page * RENDER_PAGE_SIZE)
				continue;
			if (idx >= (uint64_t)(ov->page + 1) * RENDER_PAGE_SIZE) {
				ov->more = true;
				ov->phase = O_FOOT;
				continue;
			}
			overview_row(ov, &p);
			continue;
		}
		case O_FOOT: {
			uint64_t from = (uint64_t)ov->page * RENDER_PAGE_SIZE;
			xml_escape(ov->filter, f, sizeof(f));
			char prev[600] = "", next[600] = "";
			if (ov->page > 0)
				snprintf(prev, sizeof(prev), "<a href=\"/?q=%s&amp;page=%u\">previous</a> ",
					 f, ov->page - 1);
			if (ov->more)
				snprintf(next, sizeof(next), "<a href=\"/?q=%s&amp;page=%u\">next</a>",
					 f, ov->page + 1);
			uint64_t shown = ov->seen > from ? ov->seen - from : 0;
			if (shown > RENDER_PAGE_SIZE)
				shown = RENDER_PAGE_SIZE;
			if (!out_printf(&o, "</tbody></table>\n<p class=\"mut\">%s %llu\xe2\x80\x93%llu %s%s</p>\n"
					"<p class=\"mut\">Loss and RTT now: the newest finished round "
					"(median RTT). Colours as in the graphs.</p>\n</body></html>\n",
					prev, (unsigned long long)(shown ? from + 1 : 0),
					(unsigned long long)(from + shown),
					ov->more ? "" : "(end)", next))
				goto full;
			ov->phase = O_DONE;
			continue;
		}
		case O_DONE:
			return (ssize_t)o.len;
		}
	}
full:
	return o.len ? (ssize_t)o.len : -1;
}

static void free_self(struct stream *s)
{
	free(s);
}

static void overview_free(struct stream *s)
{
	struct overview *ov = container_of(s, struct overview, s);
	if (ov->src.release)
		ov->src.release(ov->src.arg);
	free(ov);
}

struct stream *render_overview_new(const struct render_source *src, const char *filter,
				   unsigned page, uint64_t now_wall_ns)
{
	struct overview *ov = calloc(1, sizeof(*ov));
	if (!ov)
		return NULL;
	ov->s.fill = overview_fill;
	ov->s.free = overview_free;
	ov->src = *src;
	if (filter)
		snprintf(ov->filter, sizeof(ov->filter), "%s", filter);
	ov->page = page;
	ov->now_wall_ns = now_wall_ns;
	return &ov->s;
}

/* ---- `/target/NAME` */

#define TARGET_MAX_PROBES 2

struct target_page {
	struct stream s;
	size_t n;
	char name[200];
	struct {
		char host[400];
		uint8_t family;
		enum health_state state;
		struct history_stats st[HISTORY_TIERS];
		bool has_history;
	} p[TARGET_MAX_PROBES];
	char span[HISTORY_TIERS][32];
	unsigned phase, i;
};

static ssize_t target_fill(struct stream *s, char *buf, size_t cap)
{
	struct target_page *t = container_of(s, struct target_page, s);
	struct out o = { buf, cap, 0 };
	static const char *const range[HISTORY_TIERS] = { "3h", "30h", "10d" };
	for (;;) {
		if (t->phase == 0) {
			if (!out_printf(&o, PAGE_HEAD, t->name) ||
			    !out_printf(&o, "<p><a href=\"/\">all targets</a></p>\n<h1>%s</h1>\n", t->name)) {
				o.len = 0;
				goto full;
			}
			if (t->n == 0 && !out_printf(&o, "<p>No such target.</p>\n"))
				goto full;
			t->phase = 1;
			t->i = 0;
		} else if (t->phase == 1) {
			if (t->i >= t->n) {
				t->phase = 2;
				continue;
			}
			const typeof(t->p[0]) *p = &t->p[t->i];
			const char *st = health_state_name(p->state);
			char b[HISTORY_TIERS][4][32];
			for (unsigned k = 0; k < HISTORY_TIERS; k++) {
				fmt_rtt(p->st[k].rtt_avg_ns, b[k][0], 32);
				fmt_rtt(p->st[k].rtt_min_ns, b[k][1], 32);
				fmt_rtt(p->st[k].rtt_max_ns, b[k][2], 32);
				fmt_rtt(p->st[k].rtt_now_ns, b[k][3], 32);
			}
			if (!out_printf(&o, "<h2>IPv%u %s <span class=\"st %s\">%s</span></h2>\n",
					p->family, p->host, st, st))
				goto full;
			if (!p->has_history) {
				if (!out_printf(&o, "<p class=\"mut\">No history for this probe "
						"(history = no, or no round finished yet).</p>\n"))
					goto full;
			} else {
				char rows[3000];
				struct out ro = { rows, sizeof(rows), 0 };
				for (unsigned k = 0; k < HISTORY_TIERS; k++)
					out_printf(&ro, "<tr><td>%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
						   "<td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%.1f%%</td>"
						   "<td class=\"n\">%.1f%%</td></tr>", t->span[k], b[k][0], b[k][1],
						   b[k][2], b[k][3],
						   p->st[k].sent ? 100.0 * (double)p->st[k].lost / (double)p->st[k].sent : 0.0,
						   p->st[k].loss_now_pct < 0 ? 0.0 : p->st[k].loss_now_pct);
				if (!out_printf(&o, "<div class=\"graphs\">"
						"<img class=\"g\" src=\"/graph/%s.svg?range=%s&amp;family=%u\" width=\"600\" height=\"200\" alt=\"last %s\"/>"
						"<img class=\"g\" src=\"/graph/%s.svg?range=%s&amp;family=%u\" width=\"600\" height=\"200\" alt=\"last %s\"/>"
						"<img class=\"g\" src=\"/graph/%s.svg?range=%s&amp;family=%u\" width=\"600\" height=\"200\" alt=\"last %s\"/>"
						"</div>\n<table><thead><tr><th>range</th><th>median avg</th><th>min</th>"
						"<th>max</th><th>now</th><th>loss avg</th><th>now</th></tr></thead>"
						"<tbody>%s</tbody></table>\n",
						t->name, range[0], p->family, t->span[0],
						t->name, range[1], p->family, t->span[1],
						t->name, range[2], p->family, t->span[2], rows))
					goto full;
			}
			t->i++;
		} else if (t->phase == 2) {
			if (!out_printf(&o, "<p class=\"mut\">Grey smoke: the spread of each round's RTTs "
					"(lightest 0\xe2\x80\x93" "100 %%, darker toward the median). The line: the "
					"median, coloured by the round's loss.</p>\n</body></html>\n"))
				goto full;
			t->phase = 3;
		} else {
			return (ssize_t)o.len;
		}
	}
full:
	return o.len ? (ssize_t)o.len : -1;
}

struct stream *render_target_new(const struct view_probe *probes,
				 const struct history *const *hist, size_t n,
				 uint64_t step_ns, uint64_t now_wall_ns)
{
	(void)now_wall_ns;
	struct target_page *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->s.fill = target_fill;
	t->s.free = free_self;
	t->n = n > TARGET_MAX_PROBES ? TARGET_MAX_PROBES : n;
	xml_escape(n ? probes[0].target : "unknown", t->name, sizeof(t->name));
	for (size_t i = 0; i < t->n; i++) {
		xml_escape(probes[i].host ? probes[i].host : "", t->p[i].host, sizeof(t->p[i].host));
		t->p[i].family = probes[i].family;
		t->p[i].state = probes[i].state;
		const struct history *h = hist[i];
		t->p[i].has_history = h && history_newest(h, 0) != HISTORY_NONE;
		if (h)
			step_ns = h->step_ns;
		for (unsigned k = 0; k < HISTORY_TIERS && t->p[i].has_history; k++) {
			uint64_t last = history_newest(h, k);
			uint64_t first = last + 1 >= history_tier_len[k] ? last + 1 - history_tier_len[k] : 0;
			history_summary(h, k, first, last, &t->p[i].st[k]);
		}
	}
	for (unsigned k = 0; k < HISTORY_TIERS; k++)
		render_span_label(step_ns * history_tier_ratio[k] * history_tier_len[k], t->span[k],
				  sizeof(t->span[k]));
	return &t->s;
}
