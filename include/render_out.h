/*
 * render_out: what the renderers share (internal to render_*.c).  Records
 * are written whole or not at all, so a producer that runs out of room
 * resumes with the same record on its next fill.
 */
#ifndef BEACOND_RENDER_OUT_H
#define BEACOND_RENDER_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct out {
	char *buf;
	size_t cap, len;
};

/* Append a formatted record if it fits whole; false (nothing written) if not. */
bool out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* XML/HTML text and attribute escaping; control characters dropped. */
void xml_escape(const char *s, char *buf, size_t len);
/* "412 µs", "3.25 ms", "30.1 ms", "1.20 s", "-" for STATS_NO_RTT. */
void fmt_rtt(uint64_t ns, char *buf, size_t len);

#endif
