/*
 * ctl_table: beaconctl's targets table, pure (no I/O): rows in, text out.
 *
 * Like `chronyc sources`: one row per probe with a state symbol, name,
 * address, sent, loss %, last/min/avg/max/mdev/jitter RTT, state and how
 * long it has been in it.  RTTs scale through µs, ms and s; ages through
 * s, m, h and d.  Every column is as wide as its widest cell (header
 * included), so the table fits the data; colour (ANSI, state only) is the
 * caller's choice (a terminal, and NO_COLOR unset).
 */
#ifndef BEACOND_CTL_TABLE_H
#define BEACOND_CTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_NO_VALUE UINT64_MAX

enum ctl_row_state { CTL_ROW_UNKNOWN, CTL_ROW_UP, CTL_ROW_DOWN, CTL_ROW_UNRESOLVED };

struct ctl_row {
	char name[72];
	char addr[72];               /* the address, or the host while unresolved */
	enum ctl_row_state state;
	uint64_t sent;
	uint64_t loss_milli_pct;     /* 3.3 % -> 3300; CTL_NO_VALUE: nothing resolved yet */
	uint64_t last_ns, min_ns, avg_ns, max_ns, mdev_ns, jitter_ns; /* or CTL_NO_VALUE */
	uint64_t since_ms;           /* CLOCK_REALTIME ms of the last change; 0 unknown */
};

enum ctl_sort { CTL_SORT_NAME, CTL_SORT_LOSS, CTL_SORT_RTT, CTL_SORT_NONE };

struct ctl_table_opts {
	enum ctl_sort sort;
	bool down_only;
	bool color;
	uint64_t now_ms;             /* CLOCK_REALTIME, for the "since" ages */
};

/* A growing output buffer (NUL-terminated). */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};
void sbuf_free(struct sbuf *b);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "412µs", "1.23ms", "12.3ms", "123ms", "1.23s", "-" for CTL_NO_VALUE. */
void ctl_fmt_rtt(char *buf, size_t len, uint64_t ns);
/* "42s", "12m", "5h", "3d" (whole units, rounded down); "-" for unknown. */
void ctl_fmt_age(char *buf, size_t len, uint64_t ms);
/* "0.0%", "3.3%", "100%"; "-" for CTL_NO_VALUE. */
void ctl_fmt_loss(char *buf, size_t len, uint64_t milli_pct);
char ctl_state_symbol(enum ctl_row_state st);
const char *ctl_state_name(enum ctl_row_state st);
/* Columns a UTF-8 string takes (code points; no wide characters here). */
size_t ctl_text_width(const char *s);

/* Sorts rows in place (sort != NONE) and appends the table to out. */
void ctl_table_render(struct ctl_row *rows, size_t n, const struct ctl_table_opts *o,
		      struct sbuf *out);
/* The same rows as CSV with a header; raw numbers (ns, ms, milli-%), empty
 * for no value. */
void ctl_table_csv(struct ctl_row *rows, size_t n, const struct ctl_table_opts *o,
		   struct sbuf *out);
/* What the symbols and columns mean (-v). */
void ctl_table_legend(struct sbuf *out);

#endif
