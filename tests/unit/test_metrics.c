/* Unit tests for the metrics renderer (over synthetic probes), its number
 * formatting and escaping, label validation and the Accept-Encoding check. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "labels.h"
#include "render_metrics.h"
#include "tcp.h"
#include "stamp.h"
#include "udp.h"
#include "web.h"

/* ---- formatting ---- */

Test(metrics_fmt, seconds_and_le)
{
	char b[32];
	metrics_fmt_seconds(b, 0);
	cr_assert_str_eq(b, "0");
	metrics_fmt_seconds(b, 1500000);
	cr_assert_str_eq(b, "0.0015");
	metrics_fmt_seconds(b, 1000000000);
	cr_assert_str_eq(b, "1");
	metrics_fmt_seconds(b, 1796166272346864602ULL);
	cr_assert_str_eq(b, "1796166272.346864602");
	metrics_fmt_seconds(b, 1);
	cr_assert_str_eq(b, "0.000000001");
	metrics_fmt_le(b, 100000);
	cr_assert_str_eq(b, "0.0001");
	metrics_fmt_le(b, 1000000000);
	cr_assert_str_eq(b, "1.0");
	metrics_fmt_le(b, 2000000000);
	cr_assert_str_eq(b, "2.0");
	metrics_fmt_le(b, 2500000000ULL);
	cr_assert_str_eq(b, "2.5");
	metrics_fmt_le(b, UINT64_MAX);
	cr_assert_str_eq(b, "+Inf");
	metrics_fmt_le(b, 0);
	cr_assert_str_eq(b, "0.0");
}

Test(metrics_fmt, escape)
{
	char b[64];
	size_t n = metrics_escape(b, sizeof b, "a\"b\\c\nd", 7);
	b[n] = '\0';
	cr_assert_str_eq(b, "a\\\"b\\\\c\\nd");
	/* The full length is returned even when cap is short, nothing past cap
	 * is written. */
	memset(b, 'x', sizeof b);
	cr_assert_eq(metrics_escape(b, 3, "\"\"\"", 3), 6);
	cr_assert_eq(b[2], 'x');
	/* UTF-8 passes through untouched. */
	n = metrics_escape(b, sizeof b, "Zürich", strlen("Zürich"));
	cr_assert_eq(n, strlen("Zürich"));
}

/* ---- labels ---- */

static int lp(const char *s, char *out, char *err)
{
	return labels_parse(s, out, 2048, err, 256);
}

Test(labels, valid_normalised)
{
	char out[2048], err[256];
	cr_assert_eq(lp(" site = ams ,rack=r12", out, err), 0, "%s", err);
	cr_assert_str_eq(out, "site=ams,rack=r12");
	cr_assert_eq(lp("_x=Zürich, a1=x=y", out, err), 0, "%s", err);
	cr_assert_str_eq(out, "_x=Zürich,a1=x=y");
	size_t pos = 0, nl, vl;
	const char *n, *v;
	cr_assert(labels_next(out, &pos, &n, &nl, &v, &vl));
	cr_assert_eq(nl, 2);
	cr_assert(strncmp(v, "Zürich", vl) == 0);
	cr_assert(labels_next(out, &pos, &n, &nl, &v, &vl));
	cr_assert(strncmp(n, "a1", nl) == 0 && strncmp(v, "x=y", vl) == 0);
	cr_assert(!labels_next(out, &pos, &n, &nl, &v, &vl));
}

Test(labels, invalid)
{
	char out[2048], err[256];
	const char *bad[] = {
		"", "site", "=ams", "1site=x", "si-te=x", "site=", "__x=1", "target=x",
		"le=1", "job=x", "instance=y", "family=4", "a=1,a=2", "a=1,,b=2",
		"a=\xff", "a=\xc0\xaf", "a=\xed\xa0\x80", "a=\xf4\x90\x80\x80", "a=x\x01",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(lp(bad[i], out, err), -1, "accepted \"%s\"", bad[i]);
	char many[512] = "";
	for (int i = 0; i < LABELS_MAX + 1; i++)
		sprintf(many + strlen(many), "%sl%d=v", i ? "," : "", i);
	cr_assert_eq(lp(many, out, err), -1);
	char big[1500];
	snprintf(big, sizeof big, "a=%0256d,b=%0256d,c=%0256d,d=%0256d", 1, 2, 3, 4);
	cr_assert_eq(lp(big, out, err), -1, "over LABELS_LEN_MAX");
}

Test(labels, utf8)
{
	cr_assert(utf8_valid("héllo €𝄞", strlen("héllo €𝄞")));
	cr_assert(!utf8_valid("\xe2\x82", 2));
	cr_assert(!utf8_valid("\x80", 1));
}

/* ---- Accept-Encoding ---- */

Test(web, accepts_gzip)
{
	cr_assert(web_accepts_gzip("gzip"));
	cr_assert(web_accepts_gzip("deflate, GZIP;q=0.5"));
	cr_assert(web_accepts_gzip("*"));
	cr_assert(web_accepts_gzip("br;q=1.0, gzip ; q=0.001"));
	cr_assert(!web_accepts_gzip(NULL));
	cr_assert(!web_accepts_gzip(""));
	cr_assert(!web_accepts_gzip("identity"));
	cr_assert(!web_accepts_gzip("gzip;q=0"));
	cr_assert(!web_accepts_gzip("gzip; q=0.000"));
	cr_assert(!web_accepts_gzip("gzipx, xgzip"));
}

/* ---- the renderer over synthetic probes ---- */

#define NPROBES 300
static const uint64_t bounds[] = { 1000000, 10000000, 1000000000 };
static uint64_t hist[NPROBES][4];
static char names[NPROBES][16];
static uint64_t gen = 1;
static size_t n_probes = NPROBES;
static struct tcp_counters tcp_c = { .accepted = 5, .active = 2, .bytes_in = 100 };
static struct udp_counters udp_c = { .received = 7, .echoed = 6, .drop_rate = 1 };
static struct stamp_counters stamp_c = { .received = 9, .reflected = 8, .drop_auth = 1,
					 .tlv_malformed = 2, .sessions_active = 3 };
static bool hist_enabled = true;

static void s_daemon(void *arg, struct view_daemon *out)
{
	(void)arg;
	memset(out, 0, sizeof *out);
	out->version = "9.9";
	out->start_wall_ns = 1700000000ULL * 1000000000ULL;
	out->last_reload_ok = true;
	out->last_reload_ok_wall_ns = out->start_wall_ns;
	out->tcp = &tcp_c;
	out->udp = &udp_c;
	out->stamp = &stamp_c;
}

static void s_global(void *arg, struct view_pinger *out)
{
	(void)arg;
	memset(out, 0, sizeof *out);
	out->probes = n_probes;
	out->ignored[VIEW_IGN_SEQ] = 3;
	out->rtt_bounds.n = hist_enabled ? 3 : 0;
	out->rtt_bounds.le_ns = bounds;
}

static void s_begin(void *arg, struct view_cursor *c)
{
	(void)arg;
	c->gen = gen;
	c->next = 0;
}

static bool s_next(void *arg, struct view_cursor *c, struct view_probe *p)
{
	(void)arg;
	if (c->gen != gen || c->next >= n_probes)
		return false;
	uint32_t i = c->next++;
	memset(p, 0, sizeof *p);
	p->target = names[i];
	p->host = "example.net";
	p->labels = i % 2 ? "site=a\"b" : NULL;
	p->family = i % 3 == 0 ? 6 : 4;
	p->resolved = true;
	struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x7f000001);
	p->socket = "dgram";
	p->state = i % 5 == 0 ? HEALTH_UNKNOWN : HEALTH_UP;
	p->run.sent = 100 + i;
	p->run.received = 90 + i;
	p->run.lost = 9;
	p->in_flight = 1;
	p->run_rtt.sum_ns = 1500000;
	p->rtt_hist = hist_enabled ? hist[i] : NULL;
	return true;
}

static struct metrics_source src = {
	.daemon = s_daemon, .global = s_global, .begin = s_begin, .next = s_next,
};

static void setup(void)
{
	for (size_t i = 0; i < NPROBES; i++) {
		snprintf(names[i], sizeof names[i], "t%zu", i);
		hist[i][0] = 1;
		hist[i][1] = 2;
		hist[i][2] = i;
		hist[i][3] = 4;
	}
}

/* Render a whole body, each fill given `cap` bytes. */
static char *render(size_t cap, size_t *len_out, size_t *fills)
{
	struct metrics_proc proc = { .have_cpu = true, .cpu_ns = 1500000000 };
	struct stream *s = metrics_stream_new(&src, &proc);
	cr_assert_not_null(s);
	size_t len = 0, size = 1 << 20;
	char *buf = malloc(size);
	*fills = 0;
	for (;;) {
		if (size - len < cap)
			buf = realloc(buf, size *= 2);
		ssize_t n = s->fill(s, buf + len, cap);
		cr_assert_geq(n, 0);
		if (n == 0)
			break;
		cr_assert_leq((size_t)n, cap);
		/* Whole lines only. */
		cr_assert_eq(buf[len + (size_t)n - 1], '\n');
		len += (size_t)n;
		(*fills)++;
	}
	s->free(s);
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

Test(render, same_body_whatever_the_chunk_size, .init = setup)
{
	size_t big_len, small_len, fills_big, fills_small;
	char *big = render(1 << 20, &big_len, &fills_big);
	char *small = render(STREAM_MIN_CAP, &small_len, &fills_small);
	cr_assert_eq(big_len, small_len);
	cr_assert(memcmp(big, small, big_len) == 0);
	cr_assert_gt(fills_small, big_len / STREAM_MIN_CAP);
	free(big);
	free(small);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

Test(render, content, .init = setup)
{
	size_t len, fills;
	char *b = render(8192, &len, &fills);
	/* One HELP and TYPE per family, samples of every probe. */
	cr_assert_eq(count(b, "# TYPE beacond_ping_sent_total counter\n"), 1);
	cr_assert_eq(count(b, "\nbeacond_ping_sent_total{"), NPROBES);
	cr_assert(strstr(b, "beacond_ping_sent_total{target=\"t1\",family=\"4\",site=\"a\\\"b\"} 101\n"));
	cr_assert(strstr(b, "beacond_ping_sent_total{target=\"t0\",family=\"6\"} 100\n"));
	/* Cumulative buckets with canonical le, +Inf = _count. */
	cr_assert(strstr(b, "beacond_ping_rtt_seconds_bucket{target=\"t7\",family=\"4\",site=\"a\\\"b\",le=\"0.001\"} 1\n"));
	cr_assert(strstr(b, "beacond_ping_rtt_seconds_bucket{target=\"t7\",family=\"4\",site=\"a\\\"b\",le=\"0.01\"} 3\n"));
	cr_assert(strstr(b, "beacond_ping_rtt_seconds_bucket{target=\"t7\",family=\"4\",site=\"a\\\"b\",le=\"1.0\"} 10\n"));
	cr_assert(strstr(b, "beacond_ping_rtt_seconds_bucket{target=\"t7\",family=\"4\",site=\"a\\\"b\",le=\"+Inf\"} 14\n"));
	cr_assert(strstr(b, "beacond_ping_rtt_seconds_count{target=\"t7\",family=\"4\",site=\"a\\\"b\"} 14\n"));
	cr_assert(strstr(b, "beacond_ping_rtt_seconds_sum{target=\"t7\",family=\"4\",site=\"a\\\"b\"} 0.0015\n"));
	/* Unknown targets have no beacond_target_up, but a state. */
	cr_assert_eq(count(b, "\nbeacond_target_up{"), NPROBES - NPROBES / 5);
	cr_assert(strstr(b, "beacond_target_state{target=\"t0\",family=\"6\",state=\"unknown\"} 1\n"));
	cr_assert(strstr(b, "beacond_target_info{target=\"t2\",family=\"4\",host=\"example.net\",address=\"127.0.0.1\",socket=\"dgram\"} 1\n"));
	cr_assert(strstr(b, "beacond_ping_ignored_total{reason=\"seq\"} 3\n"));
	cr_assert(strstr(b, "beacond_tcp_connections 2\n"));
	cr_assert(strstr(b, "beacond_udp_datagrams_dropped_total{reason=\"rate\"} 1\n"));
	cr_assert(strstr(b, "# TYPE beacond_stamp_packets_reflected_total counter\n"));
	cr_assert(strstr(b, "beacond_stamp_packets_received_total 9\n"));
	cr_assert(strstr(b, "beacond_stamp_packets_reflected_total 8\n"));
	cr_assert(strstr(b, "beacond_stamp_packets_dropped_total{reason=\"auth\"} 1\n"));
	cr_assert(strstr(b, "beacond_stamp_packets_dropped_total{reason=\"rate\"} 0\n"));
	cr_assert(strstr(b, "beacond_stamp_tlvs_flagged_total{flag=\"malformed\"} 2\n"));
	cr_assert(strstr(b, "# TYPE beacond_stamp_sessions gauge\n"));
	cr_assert(strstr(b, "beacond_stamp_sessions 3\n"));
	cr_assert(strstr(b, "process_cpu_seconds_total 1.5\n"));
	cr_assert(strstr(b, "beacond_build_info{version=\"9.9\"} 1\n"));
	/* Not read: no process_resident_memory_bytes family at all. */
	cr_assert_null(strstr(b, "process_resident_memory_bytes"));
	/* No web counters given: no web families. */
	cr_assert_null(strstr(b, "beacond_web_"));
	free(b);
}

Test(render, histogram_off_is_a_summary, .init = setup)
{
	size_t len, fills;
	hist_enabled = false;
	char *b = render(8192, &len, &fills);
	hist_enabled = true;
	cr_assert(strstr(b, "# TYPE beacond_ping_rtt_seconds summary\n"));
	cr_assert_null(strstr(b, "_bucket{target"));
	cr_assert(strstr(b, "beacond_ping_rtt_seconds_count{target=\"t7\",family=\"4\",site=\"a\\\"b\"} 97\n"));
	free(b);
}

Test(render, reload_mid_scrape_ends_the_walk, .init = setup)
{
	struct metrics_proc proc = { 0 };
	struct stream *s = metrics_stream_new(&src, &proc);
	char buf[STREAM_MIN_CAP + 1];
	size_t total = 0;
	ssize_t n;
	int i = 0;
	while ((n = s->fill(s, buf, STREAM_MIN_CAP)) > 0) {
		total += (size_t)n;
		if (++i == 5) {
			/* A reload: fewer probes, a new generation. */
			gen++;
			n_probes = 3;
		}
		cr_assert_lt(i, 100000);
	}
	cr_assert_eq(n, 0);
	s->free(s);
	n_probes = NPROBES;
	cr_assert_gt(total, 0);
}
