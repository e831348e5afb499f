/*
 * Unit tests for the control socket's pure parts: the JSON writer
 * (json.c), the request line (ctl_proto.c), the reply records
 * (ctl_reply.c's probe object, from a synthetic view_probe) and beaconctl's
 * table formatting (ctl_table.c).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"
#include "ctl_reply.h"
#include "ctl_table.h"
#include "json.h"
#include "view.h"

/* ---- json ---- */

Test(json, writer_commas_nesting_and_escapes)
{
	char buf[256];
	struct jw w;

	jw_init(&w, buf, sizeof buf);
	jw_obj_begin(&w);
	jw_kstr(&w, "a", "x\"y\\z\n\x01");
	jw_key(&w, "arr");
	jw_arr_begin(&w);
	jw_u64(&w, 1);
	jw_i64(&w, -2);
	jw_bool(&w, true);
	jw_null(&w);
	jw_arr_end(&w);
	jw_kfixed(&w, "ms", 412345, 1000000, 3);
	jw_key(&w, "bad");
	jw_str(&w, "\xff");
	jw_key(&w, "nan");
	jw_double(&w, 0.0 / 0.0, 2);
	jw_obj_end(&w);
	jw_newline(&w);
	cr_assert(jw_ok(&w));
	buf[w.len] = '\0';
	cr_assert_str_eq(buf, "{\"a\":\"x\\\"y\\\\z\\n\\u0001\",\"arr\":[1,-2,true,null],"
			      "\"ms\":0.412,\"bad\":\"\\ufffd\",\"nan\":null}\n");
}

Test(json, overflow_is_sticky_and_reported)
{
	char buf[8];
	struct jw w;

	jw_init(&w, buf, sizeof buf);
	jw_obj_begin(&w);
	jw_kstr(&w, "key", "a long value");
	jw_ku64(&w, "k", 1);
	cr_assert(!jw_ok(&w));
	cr_assert_leq(w.len, sizeof buf);
}

Test(json, fixed_point_is_exact_and_rounds_half_up)
{
	char b[48];
	json_fmt_fixed(b, 1500, 1000, 0);
	cr_assert_str_eq(b, "2");
	json_fmt_fixed(b, UINT64_MAX, 1, 0);
	cr_assert_str_eq(b, "18446744073709551615");
	json_fmt_fixed(b, 3300, 1000, 3);
	cr_assert_str_eq(b, "3.300");
	json_fmt_fixed(b, 5, 1000, 2);
	cr_assert_str_eq(b, "0.01");
}

Test(json, records_restart_at_top_level)
{
	char buf[64];
	struct jw w;

	jw_init(&w, buf, sizeof buf);
	jw_obj_begin(&w);
	jw_obj_end(&w);
	jw_newline(&w);
	jw_obj_begin(&w);
	jw_obj_end(&w);
	jw_newline(&w);
	buf[w.len] = '\0';
	cr_assert_str_eq(buf, "{}\n{}\n");
}

/* ---- ctl_proto ---- */

static enum ctl_parse parse(const char *s, struct ctl_req *r, char *err)
{
	return ctl_req_parse(s, strlen(s), r, err, 256);
}

Test(ctl_proto, words_and_args)
{
	struct ctl_req r;
	char err[256];

	cr_assert_eq(parse("1 targets\n", &r, err), CTL_PARSE_OK);
	cr_assert_str_eq(r.cmd, "targets");
	cr_assert_eq(r.argc, 0);
	cr_assert_eq(parse("1\t target   gw-1.lan \r\n", &r, err), CTL_PARSE_OK);
	cr_assert_str_eq(r.cmd, "target");
	cr_assert_eq(r.argc, 1);
	cr_assert_str_eq(r.argv[0], "gw-1.lan");
	cr_assert_eq(parse("1 graph gw --range=1h", &r, err), CTL_PARSE_OK);
	cr_assert_eq(r.argc, 2);
	cr_assert_str_eq(r.argv[1], "--range=1h");
}

Test(ctl_proto, refusals)
{
	struct ctl_req r;
	char err[256];

	cr_assert_eq(parse("2 status\n", &r, err), CTL_PARSE_VERSION);
	cr_assert(strstr(err, "version 2"), "%s", err);
	cr_assert_eq(r.version, 2);
	cr_assert_eq(parse("status\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(parse("\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(parse("x1 status\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(parse("1 Status\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(parse("1 9lives\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(parse("1 status caf\xc3\xa9\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(parse("1 a b c d e f g h i j\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(parse("1 a b c d e f g h i\n", &r, err), CTL_PARSE_OK);
	cr_assert_eq(parse("99999999 status\n", &r, err), CTL_PARSE_SYNTAX);
	cr_assert_eq(ctl_req_parse("1 st\0atus\n", 10, &r, err, sizeof err), CTL_PARSE_SYNTAX);
}

Test(ctl_proto, line_completion_is_bounded)
{
	char big[CTL_REQ_MAX + 10];

	memset(big, 'a', sizeof big);
	cr_assert_eq(ctl_req_complete("1 status", 8), 0);
	cr_assert_eq(ctl_req_complete("1 status\nxx", 11), 9);
	cr_assert_eq(ctl_req_complete(big, CTL_REQ_MAX - 1), 0);
	cr_assert_eq(ctl_req_complete(big, CTL_REQ_MAX), -1);
	/* A newline beyond the limit does not count. */
	big[CTL_REQ_MAX + 2] = '\n';
	cr_assert_eq(ctl_req_complete(big, sizeof big), -1);
	big[CTL_REQ_MAX - 1] = '\n';
	cr_assert_eq(ctl_req_complete(big, sizeof big), CTL_REQ_MAX);
}

/* ---- the probe record ---- */

Test(ctl_reply, probe_record_from_a_synthetic_view)
{
	struct view_probe p;
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&p.addr;
	char buf[4096];
	struct jw w;

	memset(&p, 0, sizeof p);
	p.target = "gw";
	p.host = "gw.example";
	p.family = 6;
	p.resolved = true;
	a->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &a->sin6_addr);
	p.socket = "dgram";
	p.state = HEALTH_DOWN;
	p.state_since_ns = 1700000000123456789ULL;
	p.run.sent = 10;
	p.run.received = 7;
	p.run.lost = 3;
	stats_rtt_init(&p.run_rtt);
	stats_rtt_add(&p.run_rtt, 1000000);
	p.last_rtt_ns = STATS_NO_RTT;

	jw_init(&w, buf, sizeof buf);
	ctl_probe_json(&w, &p, false);
	cr_assert(jw_ok(&w));
	buf[w.len] = '\0';
	cr_assert(strstr(buf, "\"target\":\"gw\",\"host\":\"gw.example\",\"family\":6,"
			      "\"resolved\":true,\"addr\":\"2001:db8::1\""), "%s", buf);
	cr_assert(strstr(buf, "\"state\":\"down\",\"since\":1700000000.123"), "%s", buf);
	cr_assert(strstr(buf, "\"loss_pct\":30.000"), "%s", buf);
	cr_assert(strstr(buf, "\"rtt_last_ns\":null"), "%s", buf);
	cr_assert(strstr(buf, "\"rtt_min_ns\":1000000"), "%s", buf);
	cr_assert_null(strstr(buf, "settings"));

	/* Unresolved: no address, no family yet. */
	p.resolved = false;
	p.family = 0;
	jw_init(&w, buf, sizeof buf);
	ctl_probe_json(&w, &p, true);
	buf[w.len] = '\0';
	cr_assert(strstr(buf, "\"family\":null,\"resolved\":false,\"addr\":null"), "%s", buf);
	cr_assert(strstr(buf, "\"settings\":{"), "%s", buf);
	cr_assert(strstr(buf, "\"send_errors\":{"), "%s", buf);
}

/* ---- ctl_table ---- */

Test(ctl_table, rtt_units_scale)
{
	char b[32];
	ctl_fmt_rtt(b, sizeof b, 412000);
	cr_assert_str_eq(b, "412µs");
	ctl_fmt_rtt(b, sizeof b, 999400);
	cr_assert_str_eq(b, "999µs");
	ctl_fmt_rtt(b, sizeof b, 1234567);
	cr_assert_str_eq(b, "1.23ms");
	ctl_fmt_rtt(b, sizeof b, 12345678);
	cr_assert_str_eq(b, "12.3ms");
	ctl_fmt_rtt(b, sizeof b, 123456789);
	cr_assert_str_eq(b, "123ms");
	ctl_fmt_rtt(b, sizeof b, 1234567890);
	cr_assert_str_eq(b, "1.23s");
	ctl_fmt_rtt(b, sizeof b, 42000000000ULL);
	cr_assert_str_eq(b, "42s");
	ctl_fmt_rtt(b, sizeof b, CTL_NO_VALUE);
	cr_assert_str_eq(b, "-");
}

Test(ctl_table, ages_and_loss)
{
	char b[32];
	ctl_fmt_age(b, sizeof b, 59999);
	cr_assert_str_eq(b, "59s");
	ctl_fmt_age(b, sizeof b, 60000);
	cr_assert_str_eq(b, "1m");
	ctl_fmt_age(b, sizeof b, 3 * 3600 * 1000);
	cr_assert_str_eq(b, "3h");
	ctl_fmt_age(b, sizeof b, 5ULL * 86400 * 1000);
	cr_assert_str_eq(b, "5d");
	ctl_fmt_loss(b, sizeof b, 3300);
	cr_assert_str_eq(b, "3.3%");
	ctl_fmt_loss(b, sizeof b, 3350);
	cr_assert_str_eq(b, "3.4%");
	ctl_fmt_loss(b, sizeof b, 100000);
	cr_assert_str_eq(b, "100%");
	ctl_fmt_loss(b, sizeof b, CTL_NO_VALUE);
	cr_assert_str_eq(b, "-");
}

static struct ctl_row row(const char *name, const char *addr, enum ctl_row_state st,
			  uint64_t loss, uint64_t avg)
{
	struct ctl_row r = { .state = st, .sent = 10, .loss_milli_pct = loss,
			     .last_ns = avg, .min_ns = avg, .avg_ns = avg, .max_ns = avg,
			     .mdev_ns = CTL_NO_VALUE, .jitter_ns = CTL_NO_VALUE,
			     .since_ms = 1000 };
	snprintf(r.name, sizeof r.name, "%s", name);
	snprintf(r.addr, sizeof r.addr, "%s", addr);
	return r;
}

/* The rows of a rendered table, in order, as their Name column. */
static void names_in(const char *table, char *out, size_t len)
{
	const char *line = strchr(table, '\n');   /* skip header */
	out[0] = '\0';
	line = strchr(line + 1, '\n');            /* skip rule */
	while (line && line[1]) {
		char name[80];
		if (sscanf(line + 1, "%*s %79s", name) == 1) {
			strncat(out, name, len - strlen(out) - 1);
			strncat(out, " ", len - strlen(out) - 1);
		}
		line = strchr(line + 1, '\n');
	}
}

Test(ctl_table, widths_fit_the_data_and_sorting)
{
	struct ctl_row rows[] = {
		row("b", "192.0.2.1", CTL_ROW_UP, 0, 2000000),
		row("a-very-long-target-name", "2001:db8::1", CTL_ROW_DOWN, 50000, CTL_NO_VALUE),
		row("c", "gw.example", CTL_ROW_UNRESOLVED, CTL_NO_VALUE, CTL_NO_VALUE),
		row("d", "10.0.0.1", CTL_ROW_UP, 10000, 500000),
	};
	struct ctl_table_opts o = { .sort = CTL_SORT_NAME, .now_ms = 61000 };
	struct sbuf out = { 0 };
	char names[256];

	ctl_table_render(rows, 4, &o, &out);
	cr_assert_not_null(out.p);
	/* Header and every row line up: the Name column is as wide as the
	 * longest name, so "Address" starts at the same column everywhere. */
	const char *hdr_addr = strstr(out.p, "Address");
	size_t col = (size_t)(hdr_addr - out.p);
	cr_assert_eq(col, 2 + strlen("a-very-long-target-name") + 1);
	const char *l = strstr(out.p, "\n+ b ");
	cr_assert_not_null(l, "%s", out.p);
	cr_assert_eq(strncmp(l + 1 + col, "192.0.2.1", 9), 0, "%s", out.p);
	cr_assert(strstr(out.p, "x a-very-long-target-name"), "%s", out.p);
	cr_assert(strstr(out.p, "~ c"), "%s", out.p);
	cr_assert(strstr(out.p, "1m"), "since: %s", out.p);
	cr_assert_null(strstr(out.p, "\033["), "no colour unless asked");
	names_in(out.p, names, sizeof names);
	cr_assert_str_eq(names, "a-very-long-target-name b c d ");
	sbuf_free(&out);

	o.sort = CTL_SORT_LOSS;
	ctl_table_render(rows, 4, &o, &out);
	names_in(out.p, names, sizeof names);
	cr_assert_str_eq(names, "a-very-long-target-name d b c ");
	sbuf_free(&out);

	o.sort = CTL_SORT_RTT;
	ctl_table_render(rows, 4, &o, &out);
	names_in(out.p, names, sizeof names);
	cr_assert_str_eq(names, "b d a-very-long-target-name c ");
	sbuf_free(&out);

	o.down_only = true;
	o.color = true;
	ctl_table_render(rows, 4, &o, &out);
	names_in(out.p, names, sizeof names);
	cr_assert(strstr(names, "a-very-long-target-name"), "%s", names);
	cr_assert_null(strstr(out.p, "+ b"));
	cr_assert(strstr(out.p, "\033[1;31m"), "down is red on a terminal");
	sbuf_free(&out);
}

Test(ctl_table, narrow_table_for_short_data)
{
	struct ctl_row rows[] = { row("a", "::1", CTL_ROW_UP, 0, 1000) };
	struct ctl_table_opts o = { .sort = CTL_SORT_NAME, .now_ms = 2000 };
	struct sbuf out = { 0 };

	ctl_table_render(rows, 1, &o, &out);
	/* "Name" is wider than "a": the header decides. */
	cr_assert_eq(strncmp(out.p, "S Name Address ", 15), 0, "%s", out.p);
	sbuf_free(&out);
}

Test(ctl_table, csv_raw_numbers_and_quoting)
{
	struct ctl_row rows[] = { row("x,y", "::1", CTL_ROW_UP, 3300, 1500) };
	struct ctl_table_opts o = { .sort = CTL_SORT_NAME };
	struct sbuf out = { 0 };

	ctl_table_csv(rows, 1, &o, &out);
	cr_assert(strstr(out.p, "\nup,\"x,y\",::1,10,3300,1500,1500,1500,1500,,,1000\n"),
		  "%s", out.p);
	sbuf_free(&out);
}
