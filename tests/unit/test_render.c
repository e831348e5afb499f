/* Unit tests for the SmokePing-style graph and the history pages. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "render.h"

#define MS 1000000ULL
#define S 1000000000ULL
#define T0 (1699999200ULL * S)

Test(render, loss_colours_follow_smokeping)
{
	cr_assert_str_eq(render_loss_color(20, 0), "#26ff00");
	cr_assert_str_eq(render_loss_color(20, 1), "#00b8ff");
	cr_assert_str_eq(render_loss_color(20, 2), "#0059ff");
	cr_assert_str_eq(render_loss_color(20, 3), "#5e00ff");
	cr_assert_str_eq(render_loss_color(20, 4), "#7e00ff");
	cr_assert_str_eq(render_loss_color(20, 10), "#dd00ff");
	cr_assert_str_eq(render_loss_color(20, 15), "#ff8000");
	cr_assert_str_eq(render_loss_color(20, 19), "#ff0000");
	cr_assert_str_eq(render_loss_color(20, 20), "#a00000");
	cr_assert_str_eq(render_loss_color(1000, 1), "#00b8ff", "any loss leaves green");
}

Test(render, ranges)
{
	struct render_range r;
	cr_assert_eq(render_range_parse("3h", S, &r), 0);
	cr_assert_eq(r.tier, 0);
	cr_assert_eq(r.slots, 180);
	cr_assert_eq(render_range_parse("30h", 60 * S, &r), 0);
	cr_assert_eq(r.tier, 1);
	cr_assert_eq(r.slots, 360);
	cr_assert_eq(render_range_parse("10d", 60 * S, &r), 0);
	cr_assert_eq(r.tier, 2);
	cr_assert_eq(render_range_parse("1h", 60 * S, &r), 0);
	cr_assert_eq(r.tier, 0);
	cr_assert_eq(r.slots, 60);
	cr_assert_eq(render_range_parse("6h", 60 * S, &r), 0);
	cr_assert_eq(r.tier, 1);
	cr_assert_eq(r.slots, 72);
	cr_assert_eq(render_range_parse("100d", 60 * S, &r), 0);
	cr_assert_eq(r.tier, 2);
	cr_assert_eq(r.slots, 240);
	cr_assert_eq(render_range_parse("soon", 60 * S, &r), -1);
	char b[32];
	render_span_label(180 * 60 * S, b, sizeof(b));
	cr_assert_str_eq(b, "3 h");
	render_span_label(240 * 3600 * S, b, sizeof(b));
	cr_assert_str_eq(b, "10 d");
	render_span_label(180 * S, b, sizeof(b));
	cr_assert_str_eq(b, "3 min");
	render_span_label(3600 * S, b, sizeof(b));
	cr_assert_str_eq(b, "1 h");
	render_span_label(90 * S, b, sizeof(b));
	cr_assert_str_eq(b, "90 s");
}

/* 10 rounds of 10 ms clean, 10 of 30 ms with 2 of 10 lost, 5 all lost,
 * with 1-s rounds. */
static struct history *pattern(void)
{
	struct history *h = history_new(S);
	cr_assert_not_null(h);
	uint64_t t = T0;
	for (int r = 0; r < 25; r++) {
		for (int i = 0; i < 10; i++) {
			uint64_t at = t + (uint64_t)r * S + (uint64_t)i * 90 * MS;
			if (r < 10)
				history_add(h, at, 10 * MS + (uint64_t)i * 50000);
			else if (r < 20)
				history_add(h, at, i < 2 ? UINT64_MAX : 30 * MS + (uint64_t)i * 50000);
			else
				history_add(h, at, UINT64_MAX);
		}
	}
	history_tick(h, T0 + 25 * S, false);
	return h;
}

static char *graph(const struct history *h, size_t *len)
{
	struct render_graph_args a = {
		.target = "gw", .host = "192.0.2.1 <&>", .family = 4,
		.range = { 0, 30 }, .now_wall_ns = T0 + 25 * S + 500 * MS,
	};
	struct stream *s = render_graph_new(h, &a);
	cr_assert_not_null(s);
	return render_collect(s, len);
}

static void well_formed(const char *doc, size_t len, bool html)
{
	if (access("/usr/bin/xmllint", X_OK) != 0) {
		cr_log_warn("xmllint missing: well-formedness not checked");
		return;
	}
	char path[] = "/tmp/test_render_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, doc, len), (ssize_t)len);
	close(fd);
	char cmd[256];
	(void)html;   /* the pages are polyglot: XML well-formed too */
	snprintf(cmd, sizeof(cmd), "xmllint --noout %s", path);
	int rc = system(cmd);
	unlink(path);
	cr_assert_eq(rc, 0, "xmllint refused the document");
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

Test(render, graph_draws_smoke_and_loss_coloured_medians)
{
	struct history *h = pattern();
	size_t len;
	char *svg = graph(h, &len);
	cr_assert_not_null(svg);
	well_formed(svg, len, false);
	cr_assert(strstr(svg, "192.0.2.1 &lt;&amp;&gt;"), "host escaped");
	cr_assert_eq(count(svg, "stroke=\"#26ff00\""), 10, "ten clean medians");
	cr_assert_eq(count(svg, "stroke=\"#7e00ff\""), 10, "ten 20 %% medians");
	cr_assert_eq(count(svg, "stroke=\"#a00000\""), 5, "five all-lost marks");
	cr_assert_eq(count(svg, "<rect class=\"s\""), 20 * 5, "five smoke bands a round");
	cr_assert(strstr(svg, "prefers-color-scheme:dark"));
	cr_assert_null(strstr(svg, "http://www.w3.org/2000/svg\" xmlns:xlink"));
	cr_assert_null(strstr(svg, "<script"));
	cr_assert_null(strstr(svg, "href="), "no external resources");
	/* The median of a clean round: 10.225 ms, in microseconds. */
	unsigned med_us;
	const char *m = strstr(svg, "data-median-us=\"");
	cr_assert_not_null(m);
	cr_assert_eq(sscanf(m, "data-median-us=\"%u\"", &med_us), 1);
	cr_assert(med_us >= 10222 && med_us <= 10228, "median %u us (codes are within 0.025 %%)", med_us);
	cr_assert(strstr(svg, "loss avg 28.0%"), "loss avg: (20 + 50) of 250");
	free(svg);
	history_free(h);
}

Test(render, graph_smoke_spans_the_rtts)
{
	struct history *h = pattern();
	size_t len;
	char *svg = graph(h, &len);
	double y0, ppm;
	const char *p = strstr(svg, "data-y0=\"");
	cr_assert_not_null(p);
	cr_assert_eq(sscanf(p, "data-y0=\"%lf\" data-px-per-ms=\"%lf\"", &y0, &ppm), 2);
	/* The outer band of the first round: 10.0 .. 10.45 ms. */
	p = strstr(svg, "<rect class=\"s\"");
	double x, y, w, hh;
	cr_assert_eq(sscanf(p, "<rect class=\"s\" x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
			    &x, &y, &w, &hh), 4);
	double top_ms = (y0 - y) / ppm, bot_ms = (y0 - y - hh) / ppm;
	cr_assert(top_ms > 10.3 && top_ms < 10.6, "top %f", top_ms);
	cr_assert(bot_ms > 9.8 && bot_ms < 10.2, "bottom %f", bot_ms);
	free(svg);
	history_free(h);
}

Test(render, graph_streams_in_small_pieces_identically)
{
	struct history *h = pattern();
	size_t len;
	char *whole = graph(h, &len);
	struct render_graph_args a = {
		.target = "gw", .host = "192.0.2.1 <&>", .family = 4,
		.range = { 0, 30 }, .now_wall_ns = T0 + 25 * S + 500 * MS,
	};
	/* Caps below STREAM_MIN_CAP (but above the largest record, the
	 * header) move the record boundaries around. */
	for (size_t cap = 950; cap < STREAM_MIN_CAP + 500; cap += 7) {
		struct stream *s = render_graph_new(h, &a);
		char *buf = malloc(len + cap);
		size_t n = 0;
		ssize_t r;
		while ((r = s->fill(s, buf + n, cap)) > 0)
			n += (size_t)r;
		cr_assert_eq(r, 0);
		s->free(s);
		cr_assert_eq(n, len, "cap %zu", cap);
		cr_assert_eq(memcmp(buf, whole, len), 0, "cap %zu", cap);
		free(buf);
	}
	free(whole);
	history_free(h);
}

Test(render, empty_graph_says_so)
{
	struct render_graph_args a = { .target = "new", .host = "h", .family = 6,
				       .range = render_range_std(1), .now_wall_ns = T0 };
	size_t len;
	char *svg = render_collect(render_graph_new(NULL, &a), &len);
	cr_assert_not_null(svg);
	well_formed(svg, len, false);
	cr_assert(strstr(svg, "no data in this range"));
	cr_assert_eq(count(svg, "class=\"m\""), 0);
	free(svg);
}

Test(render, gaps_are_not_drawn)
{
	struct history *h = history_new(S);
	history_add(h, T0, 5 * MS);
	history_add(h, T0 + 20 * S, 5 * MS);
	history_tick(h, T0 + 21 * S, false);
	struct render_graph_args a = { .target = "g", .host = "h", .family = 4,
				       .range = { 0, 30 }, .now_wall_ns = T0 + 22 * S };
	size_t len;
	char *svg = render_collect(render_graph_new(h, &a), &len);
	cr_assert_eq(count(svg, "class=\"m\""), 2, "two rounds, 19 slots of nothing");
	free(svg);
	history_free(h);
}

/* ---- pages */

struct fake {
	size_t n, next;
	char names[300][16];
	struct history *h;
};

static void fake_begin(void *arg)
{
	((struct fake *)arg)->next = 0;
}

static bool fake_next(void *arg, struct view_probe *out)
{
	struct fake *f = arg;
	if (f->next >= f->n)
		return false;
	memset(out, 0, sizeof(*out));
	out->target = f->names[f->next];
	out->host = "192.0.2.7";
	out->family = 4;
	out->state = f->next % 3 == 0 ? HEALTH_DOWN : HEALTH_UP;
	out->last_rtt_ns = 1234567;
	out->index = (uint32_t)f->next++;
	return true;
}

static const struct history *fake_history(void *arg, const struct view_probe *p)
{
	struct fake *f = arg;
	return p->index == 0 ? f->h : NULL;
}

static char *overview(struct fake *f, const char *filter, unsigned page)
{
	struct render_source src = { fake_begin, fake_next, fake_history, NULL, f };
	size_t len;
	char *html = render_collect(render_overview_new(&src, filter, page, T0), &len);
	cr_assert_not_null(html);
	well_formed(html, len, true);
	return html;
}

Test(render, overview_pages_and_filters)
{
	struct fake *f = calloc(1, sizeof(*f));
	f->n = 250;
	for (size_t i = 0; i < f->n; i++)
		snprintf(f->names[i], sizeof(f->names[i]), "t%03u", (unsigned)(i % 1000));
	f->h = pattern();
	char *p0 = overview(f, NULL, 0);
	cr_assert_eq(count(p0, "<tr><td><a href=\"/target/"), 100);
	cr_assert(strstr(p0, "href=\"/target/t000\""));
	cr_assert(strstr(p0, "href=\"/?q=&amp;page=1\">next"));
	cr_assert(strstr(p0, "<svg width=\"120\""), "the sparkline of t000");
	cr_assert(strstr(p0, "fill=\"#7e00ff\""), "coloured by loss");
	cr_assert(strstr(p0, "100.0%"), "t000's newest round lost everything");
	cr_assert(strstr(p0, "1.23 ms"), "no history: the last RTT");
	cr_assert(strstr(p0, "class=\"st down\""));
	char *p2 = overview(f, "", 2);
	cr_assert_eq(count(p2, "<tr><td><a href=\"/target/"), 50);
	cr_assert(strstr(p2, "201\xe2\x80\x93" "250 (end)"));
	cr_assert_null(strstr(p2, "next</a>"));
	char *pf = overview(f, "t1", 0);
	cr_assert_eq(count(pf, "<tr><td><a href=\"/target/"), 100, "t1xx: 100 of them");
	char *px = overview(f, "<script>", 0);
	cr_assert_eq(count(px, "<tr><td>"), 0);
	cr_assert(strstr(px, "value=\"&lt;script&gt;\""), "the filter is escaped");
	free(p0);
	free(p2);
	free(pf);
	free(px);
	history_free(f->h);
	free(f);
}

Test(render, overview_streams_in_small_pieces_identically)
{
	struct fake *f = calloc(1, sizeof(*f));
	f->n = 120;
	for (size_t i = 0; i < f->n; i++)
		snprintf(f->names[i], sizeof(f->names[i]), "t%03u", (unsigned)(i % 1000));
	f->h = pattern();
	struct render_source src = { fake_begin, fake_next, fake_history, NULL, f };
	size_t len;
	char *whole = render_collect(render_overview_new(&src, NULL, 0, T0), &len);
	for (size_t cap = 1500; cap < STREAM_MIN_CAP + 300; cap += 61) {
		struct stream *s = render_overview_new(&src, NULL, 0, T0);
		char *buf = malloc(len + cap);
		size_t n = 0;
		ssize_t r;
		while ((r = s->fill(s, buf + n, cap)) > 0)
			n += (size_t)r;
		cr_assert_eq(r, 0);
		s->free(s);
		cr_assert_eq(n, len, "cap %zu", cap);
		cr_assert_eq(memcmp(buf, whole, len), 0, "cap %zu", cap);
		free(buf);
	}
	free(whole);
	history_free(f->h);
	free(f);
}

Test(render, target_page_links_three_graphs)
{
	struct history *h = pattern();
	struct view_probe p = { .target = "gw", .host = "192.0.2.1", .family = 4, .state = HEALTH_UP };
	const struct history *hs[1] = { h };
	size_t len;
	char *html = render_collect(render_target_new(&p, hs, 1, S, T0), &len);
	cr_assert_not_null(html);
	well_formed(html, len, true);
	cr_assert(strstr(html, "src=\"/graph/gw.svg?range=3h&amp;family=4\""));
	cr_assert(strstr(html, "src=\"/graph/gw.svg?range=30h&amp;family=4\""));
	cr_assert(strstr(html, "src=\"/graph/gw.svg?range=10d&amp;family=4\""));
	cr_assert(strstr(html, "<td>3 min</td>"), "spans of a 1-s step");
	cr_assert_null(strstr(html, "<script"));
	free(html);
	char *none = render_collect(render_target_new(NULL, NULL, 0, S, T0), &len);
	cr_assert(strstr(none, "No such target"));
	free(none);
	history_free(h);
}
