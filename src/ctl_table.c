/*
 * ctl_table: formatting beaconctl's targets table (see ctl_table.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_table.h"

void sbuf_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){ 0 };
}

static bool sbuf_reserve(struct sbuf *b, size_t more)
{
	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof tmp) {
		if (!sbuf_reserve(b, (size_t)n))
			return;
		memcpy(b->p + b->len, tmp, (size_t)n + 1);
		b->len += (size_t)n;
		return;
	}
	if (!sbuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sbuf_pad(struct sbuf *b, size_t n)
{
	if (!sbuf_reserve(b, n))
		return;
	memset(b->p + b->len, ' ', n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Three significant digits, never more than 4 characters of number. */
void ctl_fmt_rtt(char *buf, size_t len, uint64_t ns)
{
	if (ns == CTL_NO_VALUE) {
		snprintf(buf, len, "-");
	} else if (ns < 1000000) {
		snprintf(buf, len, "%" PRIu64 "µs", (ns + 500) / 1000 >= 1000 ? 999 : (ns + 500) / 1000);
	} else if (ns < 10000000) {
		snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "ms", ns / 1000000, ns / 10000 % 100);
	} else if (ns < 100000000) {
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "ms", ns / 1000000, ns / 100000 % 10);
	} else if (ns < 1000000000) {
		snprintf(buf, len, "%" PRIu64 "ms", ns / 1000000);
	} else if (ns < 10000000000ULL) {
		snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "s", ns / 1000000000, ns / 10000000 % 100);
	} else {
		snprintf(buf, len, "%" PRIu64 "s", ns / 1000000000);
	}
}

void ctl_fmt_age(char *buf, size_t len, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (ms == CTL_NO_VALUE)
		snprintf(buf, len, "-");
	else if (s < 60)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m", s / 60);
	else if (s < 2 * 86400)
		snprintf(buf, len, "%" PRIu64 "h", s / 3600);
	else
		snprintf(buf, len, "%" PRIu64 "d", s / 86400);
}

void ctl_fmt_loss(char *buf, size_t len, uint64_t m)
{
	if (m == CTL_NO_VALUE)
		snprintf(buf, len, "-");
	else if (m >= 100000)
		snprintf(buf, len, "100%%");
	else
		/* Rounded to one decimal, half up. */
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%%", (m + 50) / 1000, (m + 50) / 100 % 10);
}

char ctl_state_symbol(enum ctl_row_state st)
{
	switch (st) {
	case CTL_ROW_UP:
		return '+';
	case CTL_ROW_DOWN:
		return 'x';
	case CTL_ROW_UNRESOLVED:
		return '~';
	case CTL_ROW_UNKNOWN:
	default:
		return '?';
	}
}

const char *ctl_state_name(enum ctl_row_state st)
{
	switch (st) {
	case CTL_ROW_UP:
		return "up";
	case CTL_ROW_DOWN:
		return "down";
	case CTL_ROW_UNRESOLVED:
		return "unresolved";
	case CTL_ROW_UNKNOWN:
	default:
		return "unknown";
	}
}

size_t ctl_text_width(const char *s)
{
	size_t w = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			w++;
	return w;
}

/* The ordering keys; ties always fall back to the name, so the order is
 * total and the table does not jump around between redraws. */
static int by_name(const void *a, const void *b)
{
	const struct ctl_row *x = a, *y = b;
	return strcmp(x->name, y->name);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int by_loss(const void *a, const void *b)
{
	const struct ctl_row *x = a, *y = b;
	/* Worst first; "no value" last. */
	uint64_t lx = x->loss_milli_pct == CTL_NO_VALUE ? 0 : x->loss_milli_pct + 1;
	uint64_t ly = y->loss_milli_pct == CTL_NO_VALUE ? 0 : y->loss_milli_pct + 1;
	int c = cmp_u64(ly, lx);
	return c ? c : by_name(a, b);
}

static int by_rtt(const void *a, const void *b)
{
	const struct ctl_row *x = a, *y = b;
	/* Slowest average first; no RTT yet last. */
	uint64_t rx = x->avg_ns == CTL_NO_VALUE ? 0 : x->avg_ns + 1;
	uint64_t ry = y->avg_ns == CTL_NO_VALUE ? 0 : y->avg_ns + 1;
	int c = cmp_u64(ry, rx);
	return c ? c : by_name(a, b);
}

static void sort_rows(struct ctl_row *rows, size_t n, enum ctl_sort s)
{
	switch (s) {
	case CTL_SORT_NAME:
		qsort(rows, n, sizeof *rows, by_name);
		break;
	case CTL_SORT_LOSS:
		qsort(rows, n, sizeof *rows, by_loss);
		break;
	case CTL_SORT_RTT:
		qsort(rows, n, sizeof *rows, by_rtt);
		break;
	case CTL_SORT_NONE:
	default:
		break;
	}
}

enum { C_SYM, C_NAME, C_ADDR, C_SENT, C_LOSS, C_LAST, C_MIN, C_AVG, C_MAX, C_MDEV,
       C_JIT, C_STATE, C_SINCE, C_N };
static const char *const heads[C_N] = {
	"S", "Name", "Address", "Sent", "Loss", "Last", "Min", "Avg", "Max", "Mdev",
	"Jitter", "State", "Since",
};
/* Text columns left-aligned, numbers right-aligned. */
static const bool left[C_N] = { true, true, true, false, false, false, false, false,
				false, false, false, true, false };

#define CELL_MAX 80

static void cells_of(const struct ctl_row *r, const struct ctl_table_opts *o,
		     char cell[C_N][CELL_MAX])
{
	snprintf(cell[C_SYM], CELL_MAX, "%c", ctl_state_symbol(r->state));
	snprintf(cell[C_NAME], CELL_MAX, "%s", r->name);
	snprintf(cell[C_ADDR], CELL_MAX, "%s", r->addr);
	snprintf(cell[C_SENT], CELL_MAX, "%" PRIu64, r->sent);
	ctl_fmt_loss(cell[C_LOSS], CELL_MAX, r->loss_milli_pct);
	ctl_fmt_rtt(cell[C_LAST], CELL_MAX, r->last_ns);
	ctl_fmt_rtt(cell[C_MIN], CELL_MAX, r->min_ns);
	ctl_fmt_rtt(cell[C_AVG], CELL_MAX, r->avg_ns);
	ctl_fmt_rtt(cell[C_MAX], CELL_MAX, r->max_ns);
	ctl_fmt_rtt(cell[C_MDEV], CELL_MAX, r->mdev_ns);
	ctl_fmt_rtt(cell[C_JIT], CELL_MAX, r->jitter_ns);
	snprintf(cell[C_STATE], CELL_MAX, "%s", ctl_state_name(r->state));
	if (r->since_ms == 0 || r->since_ms > o->now_ms)
		ctl_fmt_age(cell[C_SINCE], CELL_MAX, r->since_ms == 0 ? CTL_NO_VALUE : 0);
	else
		ctl_fmt_age(cell[C_SINCE], CELL_MAX, o->now_ms - r->since_ms);
}

static const char *state_color(enum ctl_row_state st)
{
	switch (st) {
	case CTL_ROW_UP:
		return "\033[32m";
	case CTL_ROW_DOWN:
		return "\033[1;31m";
	default:
		return "\033[33m";
	}
}

static void put_cell(struct sbuf *out, const char *s, size_t width, bool l, bool last)
{
	size_t w = ctl_text_width(s);
	size_t pad = width > w ? width - w : 0;

	if (!l)
		sbuf_pad(out, pad);
	sbuf_printf(out, "%s", s);
	if (l && !last)
		sbuf_pad(out, pad);
}

void ctl_table_render(struct ctl_row *rows, size_t n, const struct ctl_table_opts *o,
		      struct sbuf *out)
{
	size_t width[C_N];
	char cell[C_N][CELL_MAX];

	sort_rows(rows, n, o->sort);
	for (int c = 0; c < C_N; c++)
		width[c] = ctl_text_width(heads[c]);
	for (size_t i = 0; i < n; i++) {
		if (o->down_only && rows[i].state != CTL_ROW_DOWN)
			continue;
		cells_of(&rows[i], o, cell);
		for (int c = 0; c < C_N; c++) {
			size_t w = ctl_text_width(cell[c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (int c = 0; c < C_N; c++) {
		put_cell(out, heads[c], width[c], left[c], c == C_N - 1);
		if (c < C_N - 1)
			sbuf_printf(out, " ");
	}
	sbuf_printf(out, "\n");
	size_t total = 0;
	for (int c = 0; c < C_N; c++)
		total += width[c] + (c < C_N - 1);
	char rule[1024];
	if (total >= sizeof rule)
		total = sizeof rule - 1;
	memset(rule, '=', total);
	rule[total] = '\0';
	sbuf_printf(out, "%s\n", rule);
	for (size_t i = 0; i < n; i++) {
		if (o->down_only && rows[i].state != CTL_ROW_DOWN)
			continue;
		cells_of(&rows[i], o, cell);
		for (int c = 0; c < C_N; c++) {
			bool colored = o->color && (c == C_SYM || c == C_STATE);
			if (colored)
				sbuf_printf(out, "%s", state_color(rows[i].state));
			put_cell(out, cell[c], colored && c == C_STATE ? 0 : width[c], left[c],
				 c == C_N - 1);
			if (colored) {
				sbuf_printf(out, "\033[0m");
				/* Pad after the reset so the colour ends at the word. */
				if (c == C_STATE) {
					size_t w = ctl_text_width(cell[c]);
					sbuf_pad(out, width[c] > w ? width[c] - w : 0);
				}
			}
			if (c < C_N - 1)
				sbuf_printf(out, " ");
		}
		sbuf_printf(out, "\n");
	}
}

static void csv_field(struct sbuf *out, const char *s)
{
	if (strpbrk(s, ",\"\n") == NULL) {
		sbuf_printf(out, "%s", s);
		return;
	}
	sbuf_printf(out, "\"");
	for (const char *p = s; *p; p++)
		sbuf_printf(out, *p == '"' ? "\"\"" : "%c", *p);
	sbuf_printf(out, "\"");
}

static void csv_num(struct sbuf *out, uint64_t v)
{
	if (v != CTL_NO_VALUE)
		sbuf_printf(out, "%" PRIu64, v);
}

void ctl_table_csv(struct ctl_row *rows, size_t n, const struct ctl_table_opts *o,
		   struct sbuf *out)
{
	sort_rows(rows, n, o->sort);
	sbuf_printf(out, "state,name,address,sent,loss_milli_pct,last_ns,min_ns,avg_ns,"
		    "max_ns,mdev_ns,jitter_ns,since_ms\n");
	for (size_t i = 0; i < n; i++) {
		const struct ctl_row *r = &rows[i];
		if (o->down_only && r->state != CTL_ROW_DOWN)
			continue;
		sbuf_printf(out, "%s,", ctl_state_name(r->state));
		csv_field(out, r->name);
		sbuf_printf(out, ",");
		csv_field(out, r->addr);
		sbuf_printf(out, ",%" PRIu64 ",", r->sent);
		csv_num(out, r->loss_milli_pct);
		const uint64_t v[] = { r->last_ns, r->min_ns, r->avg_ns, r->max_ns, r->mdev_ns,
				       r->jitter_ns };
		for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
			sbuf_printf(out, ",");
			csv_num(out, v[k]);
		}
		sbuf_printf(out, ",");
		if (r->since_ms)
			csv_num(out, r->since_ms);
		sbuf_printf(out, "\n");
	}
}

void ctl_table_legend(struct sbuf *out)
{
	sbuf_printf(out,
		"  .- S: state  + up   x down   ? unknown (not enough replies yet)   ~ host name not resolved\n"
		"  |  Name, Address: [target NAME] and the address pinged (the host while unresolved)\n"
		"  |  Sent: requests sent since the probe started; Loss: lost / (received + lost)\n"
		"  |  Last, Min, Avg, Max, Mdev: round-trip times since the start (mdev = standard deviation)\n"
		"  |  Jitter: RFC 3550 interarrival jitter of the RTTs\n"
		"  |  State, Since: up/down state and how long it has held (s, m, h, d)\n"
		"  '- Units: µs, ms, s\n\n");
}
