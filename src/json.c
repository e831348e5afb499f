/*
 * json: escaping and a small fixed-buffer writer (see json.h).  Pure: no
 * allocation, no syscalls.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

size_t json_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0) {
		len = 2;
	} else if (c < 0xf0) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c < 0xf5) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

size_t json_escape_unit(const unsigned char *s, size_t n, bool json, char *out,
			size_t *outlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = s[0];
	size_t u;

	switch (c) {
	case '"':
	case '\\':
		out[0] = '\\';
		out[1] = (char)c;
		*outlen = 2;
		return 1;
	case '\n':
		memcpy(out, "\\n", 2);
		*outlen = 2;
		return 1;
	case '\t':
		memcpy(out, "\\t", 2);
		*outlen = 2;
		return 1;
	case '\r':
		memcpy(out, "\\r", 2);
		*outlen = 2;
		return 1;
	default:
		break;
	}
	if (c < 0x20 || c == 0x7f) {
		if (json) {
			memcpy(out, "\\u00", 4);
			out[4] = hex[c >> 4];
			out[5] = hex[c & 15];
			*outlen = 6;
		} else {
			out[0] = '\\';
			out[1] = 'x';
			out[2] = hex[c >> 4];
			out[3] = hex[c & 15];
			*outlen = 4;
		}
		return 1;
	}
	u = json_utf8_len(s, n);
	if (u == 0) {
		/* Not UTF-8: JSON gets U+FFFD, logfmt keeps the byte's value. */
		if (json) {
			memcpy(out, "\\ufffd", 6);
			*outlen = 6;
		} else {
			out[0] = '\\';
			out[1] = 'x';
			out[2] = hex[c >> 4];
			out[3] = hex[c & 15];
			*outlen = 4;
		}
		return 1;
	}
	memcpy(out, s, u);
	*outlen = u;
	return u;
}

/*
 * q = round(value * 10^decimals / scale) in 128-bit integers, then split
 * at the decimal point: exact for every 64-bit value and up to 18 digits.
 */
size_t json_fmt_fixed(char *buf, uint64_t value, uint64_t scale, int decimals)
{
	unsigned __int128 q;
	uint64_t pow10 = 1, ip, fp;
	int n;

	if (scale == 0)
		scale = 1;
	if (decimals < 0)
		decimals = 0;
	if (decimals > 18)
		decimals = 18;
	for (int i = 0; i < decimals; i++)
		pow10 *= 10;
	q = ((unsigned __int128)value * pow10 + scale / 2) / scale;
	ip = (uint64_t)(q / pow10);
	fp = (uint64_t)(q % pow10);
	if (decimals > 0)
		n = snprintf(buf, 48, "%" PRIu64 ".%0*" PRIu64, ip, decimals, fp);
	else
		n = snprintf(buf, 48, "%" PRIu64, ip);
	return n < 0 ? 0 : (size_t)n;
}

/* ---- the writer ---- */

void jw_init(struct jw *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
	w->depth = 0;
	w->first[0] = true;
	w->after_key = false;
}

static void put(struct jw *w, const char *s, size_t n)
{
	if (w->overflow)
		return;
	if (n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* Before a value or a key: the comma that separates it from the previous
 * member (a value right after its key needs none). */
static void sep(struct jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (!w->first[w->depth])
		put(w, ",", 1);
	w->first[w->depth] = false;
}

/* Printable ASCII other than '"' and '\\' goes out as is. */
static bool plain_byte(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

static void put_escaped(struct jw *w, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	char unit[8];
	size_t ulen;

	put(w, "\"", 1);
	for (size_t i = 0; i < n && !w->overflow;) {
		/* Runs of plain bytes in one copy: names, addresses and keys are
		 * nearly always all plain. */
		size_t j = i;
		while (j < n && plain_byte(p[j]))
			j++;
		if (j > i) {
			put(w, s + i, j - i);
			i = j;
			continue;
		}
		i += json_escape_unit(p + i, n - i, true, unit, &ulen);
		put(w, unit, ulen);
	}
	put(w, "\"", 1);
}

/* Decimal digits of v into the end of b (24 bytes); returns the start. */
static char *u64_digits(char *b, uint64_t v)
{
	char *e = b + 23;

	*e = '\0';
	do {
		*--e = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return e;
}

static void open_(struct jw *w, char c)
{
	sep(w);
	put(w, &c, 1);
	if (w->depth >= JW_DEPTH_MAX) {
		w->overflow = true;
		return;
	}
	w->depth++;
	w->first[w->depth] = true;
}

static void close_(struct jw *w, char c)
{
	if (w->depth == 0) {
		w->overflow = true;
		return;
	}
	w->depth--;
	put(w, &c, 1);
}

void jw_obj_begin(struct jw *w)
{
	open_(w, '{');
}

void jw_obj_end(struct jw *w)
{
	close_(w, '}');
}

void jw_arr_begin(struct jw *w)
{
	open_(w, '[');
}

void jw_arr_end(struct jw *w)
{
	close_(w, ']');
}

void jw_key(struct jw *w, const char *key)
{
	sep(w);
	put_escaped(w, key, strlen(key));
	put(w, ":", 1);
	w->after_key = true;
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
	sep(w);
	put_escaped(w, s, n);
}

void jw_str(struct jw *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	jw_strn(w, s, strlen(s));
}

static void raw(struct jw *w, const char *s, size_t n)
{
	sep(w);
	put(w, s, n);
}

void jw_u64(struct jw *w, uint64_t v)
{
	char b[24];
	char *d = u64_digits(b, v);
	raw(w, d, (size_t)(b + 23 - d));
}

void jw_i64(struct jw *w, int64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof b, "%" PRId64, v);
	raw(w, b, (size_t)n);
}

void jw_bool(struct jw *w, bool v)
{
	raw(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct jw *w)
{
	raw(w, "null", 4);
}

void jw_fixed(struct jw *w, uint64_t value, uint64_t scale, int decimals)
{
	char b[48];
	size_t n = json_fmt_fixed(b, value, scale, decimals);
	raw(w, b, n);
}

void jw_double(struct jw *w, double v, int decimals)
{
	char b[64];
	int n;

	if (!isfinite(v)) {
		jw_null(w);
		return;
	}
	if (decimals < 0)
		decimals = 0;
	if (decimals > 17)
		decimals = 17;
	n = snprintf(b, sizeof b, "%.*f", decimals, v);
	if (n < 0 || (size_t)n >= sizeof b)
		n = snprintf(b, sizeof b, "%.*e", decimals, v);
	raw(w, b, (size_t)n);
}

void jw_newline(struct jw *w)
{
	put(w, "\n", 1);
	/* A new record starts at the top level. */
	w->first[0] = true;
}

void jw_kstr(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

void jw_ku64(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	jw_u64(w, v);
}

void jw_kbool(struct jw *w, const char *key, bool v)
{
	jw_key(w, key);
	jw_bool(w, v);
}

void jw_kfixed(struct jw *w, const char *key, uint64_t value, uint64_t scale, int decimals)
{
	jw_key(w, key);
	jw_fixed(w, value, scale, decimals);
}
