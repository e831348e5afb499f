/*
 * json: the one JSON writer.  The log's JSON lines (log.c), the control
 * socket's replies (ctl) and anything else that emits JSON share these
 * escaping and number rules, so there are never two JSON writers that
 * disagree about a string.
 *
 * Two layers:
 *   - json_utf8_len / json_escape_unit: escaping one character (a byte or
 *     a whole UTF-8 sequence) for JSON or for a quoted logfmt value; used
 *     by log.c, which keeps its own line buffer and truncation rules.
 *   - struct jw: a writer into a caller's fixed buffer that inserts commas
 *     and colons itself.  If a value does not fit, the writer is marked
 *     overflowed and every later call is a no-op, so a caller writing one
 *     record checks jw_ok() once at the end and either keeps the bytes or
 *     retries the record with more room.
 *
 * Strings follow RFC 8259; invalid UTF-8 bytes become U+FFFD.  Numbers
 * are integers or fixed-point decimals printed with integer arithmetic;
 * doubles that are not finite become null.
 */
#ifndef BEACOND_JSON_H
#define BEACOND_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when s[0]
 * does not start one (RFC 3629: no overlongs, no surrogates). */
size_t json_utf8_len(const unsigned char *s, size_t n);

/* Escape one unit at s (n > 0 bytes left) into out (at least 8 bytes) for
 * JSON (json = true) or for inside a quoted logfmt value; returns the
 * input bytes used and sets *outlen. */
size_t json_escape_unit(const unsigned char *s, size_t n, bool json, char *out,
			size_t *outlen);

/* value / scale with `decimals` digits (0..18), rounded half up, exact for
 * every 64-bit value: json_fmt_fixed(buf, 412345, 1000000, 3) -> "0.412".
 * buf must hold 48 bytes; returns the length. */
size_t json_fmt_fixed(char *buf, uint64_t value, uint64_t scale, int decimals);

#define JW_DEPTH_MAX 16

struct jw {
	char *buf;
	size_t cap, len;
	bool overflow;
	unsigned depth;
	bool first[JW_DEPTH_MAX + 1];  /* no member written yet at this depth */
	bool after_key;
};

void jw_init(struct jw *w, char *buf, size_t cap);
static inline bool jw_ok(const struct jw *w)
{
	return !w->overflow;
}
void jw_obj_begin(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr_begin(struct jw *w);
void jw_arr_end(struct jw *w);
void jw_key(struct jw *w, const char *key);
void jw_str(struct jw *w, const char *s);          /* NULL -> null */
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_u64(struct jw *w, uint64_t v);
void jw_i64(struct jw *w, int64_t v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
void jw_fixed(struct jw *w, uint64_t value, uint64_t scale, int decimals);
void jw_double(struct jw *w, double v, int decimals);
/* A raw newline (records are one JSON value per line). */
void jw_newline(struct jw *w);

/* key + value in one call. */
void jw_kstr(struct jw *w, const char *key, const char *s);
void jw_ku64(struct jw *w, const char *key, uint64_t v);
void jw_kbool(struct jw *w, const char *key, bool v);
void jw_kfixed(struct jw *w, const char *key, uint64_t value, uint64_t scale, int decimals);

#endif
