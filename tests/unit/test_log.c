/*
 * Unit tests for the log: output captured through a pipe (log_set_fd), a
 * temporary file on fd 2 for the journal case and a temporary directory
 * for the file target.  JSON lines are checked by a small validating
 * parser written here (RFC 8259 grammar for flat objects, UTF-8 checked).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "log.h"

static int cap_r = -1, cap_w = -1;
static char out[65536];

static void setup_fmt(enum log_level level, enum log_format fmt)
{
	char err[256];
	int fds[2];

	cr_assert_eq(log_setup(level, fmt, "stderr", err, sizeof err), 0, "%s", err);
	cr_assert_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	cap_r = fds[0];
	cap_w = fds[1];
	log_set_fd(cap_w);
}

static void teardown(void)
{
	log_close();
	if (cap_r >= 0)
		close(cap_r);
	if (cap_w >= 0)
		close(cap_w);
	cap_r = cap_w = -1;
}

/* Everything written so far, NUL-terminated. */
static const char *captured(void)
{
	size_t n = 0;
	ssize_t r;

	while ((r = read(cap_r, out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	return out;
}

/* Check "ts=YYYY-MM-DDTHH:MM:SS.mmmZ" (or the JSON value) at p, within a
 * minute of now, and return the position after it. */
static const char *check_ts(const char *p)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof tm);
	end = strptime(p, "%Y-%m-%dT%H:%M:%S", &tm);
	cr_assert_not_null(end, "bad timestamp: %.40s", p);
	cr_assert(end[0] == '.' && end[1] >= '0' && end[1] <= '9' && end[2] >= '0' &&
		  end[2] <= '9' && end[3] >= '0' && end[3] <= '9' && end[4] == 'Z',
		  "bad milliseconds: %.40s", p);
	time_t t = timegm(&tm);
	time_t now = time(NULL);
	cr_assert(t <= now + 1 && t >= now - 60, "timestamp not now: %.40s", p);
	return end + 5;
}

/* One logfmt line without its "ts=... " prefix (checked), newline kept. */
static const char *one_logfmt_line(void)
{
	const char *s = captured();
	const char *nl = strchr(s, '\n');

	cr_assert_not_null(nl, "no complete line: \"%s\"", s);
	cr_assert_eq(nl[1], '\0', "more than one line: \"%s\"", s);
	cr_assert_eq(strncmp(s, "ts=", 3), 0, "no ts: \"%s\"", s);
	const char *p = check_ts(s + 3);
	cr_assert_eq(*p, ' ');
	return p + 1;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/* ---- a minimal validating JSON parser ---- */

struct jp {
	const unsigned char *p;
	const char *want_key;   /* decode this key's string value ... */
	char *got;              /* ... into got */
	size_t got_len;
	bool found;
};

static void jp_ws(struct jp *j)
{
	while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
		j->p++;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void put_utf8(char *dst, size_t *n, unsigned cp)
{
	if (cp < 0x80) {
		dst[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		dst[(*n)++] = (char)(0xc0 | (cp >> 6));
		dst[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		dst[(*n)++] = (char)(0xe0 | (cp >> 12));
		dst[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		dst[(*n)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* Parse a string at j->p; decode into dst when non-NULL.  false = invalid. */
static bool jp_string(struct jp *j, char *dst, size_t *dlen)
{
	size_t n = 0;

	if (*j->p != '"')
		return false;
	j->p++;
	for (;;) {
		unsigned char c = *j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20)
			return false; /* includes the terminating NUL */
		if (c == '\\') {
			unsigned char e = j->p[1];
			const char *simple = strchr("\"\\/bfnrt", e);
			if (e && simple) {
				static const char map[] = "\"\\/\b\f\n\r\t";
				if (dst)
					dst[n++] = map[simple - "\"\\/bfnrt"];
				j->p += 2;
				continue;
			}
			if (e != 'u')
				return false;
			unsigned cp = 0;
			for (int i = 0; i < 4; i++) {
				int h = hexval(j->p[2 + i]);
				if (h < 0)
					return false;
				cp = cp * 16 + (unsigned)h;
			}
			/* The log never needs surrogate pairs: it writes
			 * non-ASCII as raw UTF-8. */
			if (cp >= 0xd800 && cp <= 0xdfff)
				return false;
			if (dst)
				put_utf8(dst, &n, cp);
			j->p += 6;
			continue;
		}
		/* Raw bytes must be UTF-8 (RFC 3629). */
		size_t len = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 :
			     c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
		if (len == 0)
			return false;
		unsigned cp = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
		for (size_t i = 1; i < len; i++) {
			if ((j->p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (j->p[i] & 0x3fu);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (dst)
			memcpy(dst + n, j->p, len), n += len;
		j->p += len;
	}
	if (dlen)
		*dlen = n;
	return true;
}

static bool jp_number(struct jp *j)
{
	const unsigned char *p = j->p;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return false;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	j->p = p;
	return true;
}

/* A flat JSON object followed by "\n" and the end of the text. */
static bool json_line_valid(const char *s, const char *want_key, char *got, size_t *got_len)
{
	static char key[8192];
	static char val[8192];
	struct jp j = { .p = (const unsigned char *)s, .want_key = want_key };
	size_t klen, vlen;

	if (*j.p != '{')
		return false;
	j.p++;
	jp_ws(&j);
	if (*j.p == '}')
		goto close;
	for (;;) {
		jp_ws(&j);
		if (!jp_string(&j, key, &klen))
			return false;
		key[klen] = '\0';
		jp_ws(&j);
		if (*j.p++ != ':')
			return false;
		jp_ws(&j);
		if (*j.p == '"') {
			if (!jp_string(&j, val, &vlen))
				return false;
			if (want_key && !strcmp(key, want_key)) {
				memcpy(got, val, vlen);
				got[vlen] = '\0';
				*got_len = vlen;
				j.found = true;
			}
		} else if (!strncmp((const char *)j.p, "true", 4)) {
			j.p += 4;
		} else if (!strncmp((const char *)j.p, "false", 5)) {
			j.p += 5;
		} else if (!strncmp((const char *)j.p, "null", 4)) {
			j.p += 4;
		} else if (!jp_number(&j)) {
			return false;
		}
		jp_ws(&j);
		if (*j.p == ',') {
			j.p++;
			continue;
		}
		break;
	}
close:
	if (*j.p++ != '}')
		return false;
	if (*j.p++ != '\n' || *j.p != '\0')
		return false;
	return want_key ? j.found : true;
}

/* The JSON line without its {"ts":"...", prefix, as "{" + the rest. */
static const char *one_json_line(void)
{
	static char buf[65536];
	const char *s = captured();

	cr_assert(json_line_valid(s, NULL, NULL, NULL), "invalid JSON: %s", s);
	cr_assert_eq(strncmp(s, "{\"ts\":\"", 7), 0, "no ts: %s", s);
	const char *p = check_ts(s + 7);
	cr_assert_eq(strncmp(p, "\",", 2), 0);
	snprintf(buf, sizeof buf, "{%s", p + 2);
	return buf;
}

TestSuite(log, .fini = teardown, .timeout = 30);

Test(log, parser_self_check)
{
	/* The checker must reject what the log must never produce. */
	cr_assert(json_line_valid("{\"a\":\"b\",\"n\":-1.5e3,\"t\":true}\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":\"b\"}", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":\"b\x01\"}\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":\"\xff\"}\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":\"\xc0\xaf\"}\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":\"\\x41\"}\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":01}\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":}\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":\"b\"\n", NULL, NULL, NULL));
	cr_assert(!json_line_valid("{\"a\":nan}\n", NULL, NULL, NULL));
}

Test(log, level_filtering)
{
	setup_fmt(LOG_INFO, LOG_FMT_LOGFMT);
	cr_assert(!log_enabled(LOG_DEBUG));
	cr_assert(log_enabled(LOG_INFO));
	cr_assert(log_enabled(LOG_ERR));
	cr_assert_null(log_begin(LOG_DEBUG, "dbg"));
	log_msg(LOG_DEBUG, "dbg", "dropped %d", 1);
	/* Every call accepts the NULL of a filtered line. */
	struct logline *l = log_begin(LOG_DEBUG, "dbg");
	log_str(l, "k", "v");
	log_int(l, "i", -1);
	log_u64(l, "u", 1);
	log_fixed(l, "f", 1, 1, 1);
	log_double(l, "d", 1.0, 1);
	log_bool(l, "b", true);
	log_addr(l, "a", NULL);
	log_errno(l, EIO);
	log_strf(l, "s", "%d", 1);
	log_end(l);
	cr_assert_str_eq(captured(), "");

	log_msg(LOG_INFO, "hello", "n=%d", 42);
	cr_assert_str_eq(one_logfmt_line(), "level=info event=hello msg=\"n=42\"\n");
	log_msg(LOG_ERR, "bad", "x");
	cr_assert_str_eq(one_logfmt_line(), "level=error event=bad msg=x\n");

	char err[64];
	cr_assert_eq(log_setup(LOG_WARNING, LOG_FMT_LOGFMT, "stderr", err, sizeof err), 0);
	log_set_fd(cap_w);
	cr_assert_null(log_begin(LOG_NOTICE, "n"));
	cr_assert_not_null(log_begin(LOG_WARNING, "w"));
	cr_assert_str_eq(log_level_name(LOG_DEBUG), "debug");
	cr_assert_str_eq(log_level_name(LOG_NOTICE), "notice");
	cr_assert_str_eq(log_level_name(LOG_WARNING), "warning");
}

Test(log, rate_limited_lines)
{
	struct log_rate r = { 0, 0 };
	const uint64_t S = 1000000000ULL;
	struct logline *l;

	setup_fmt(LOG_INFO, LOG_FMT_LOGFMT);
	l = log_begin_rate(&r, 100 * S, 10 * S, LOG_INFO, "refused", "tcp");
	log_str(l, "reason", "acl");
	log_end(l);
	cr_assert_str_eq(one_logfmt_line(), "level=info event=refused service=tcp reason=acl\n");
	/* Within the period: nothing, counted. */
	for (int i = 0; i < 3; i++) {
		l = log_begin_rate(&r, 100 * S + (uint64_t)i * S, 10 * S, LOG_INFO, "refused", "tcp");
		cr_assert_null(l);
		log_end(l);
	}
	cr_assert_str_eq(captured(), "");
	/* The next period's first line says how many were skipped. */
	l = log_begin_rate(&r, 110 * S, 10 * S, LOG_INFO, "refused", "tcp");
	log_end(l);
	cr_assert_str_eq(one_logfmt_line(),
			 "level=info event=refused service=tcp suppressed=3\n");
	/* Without a service; and a filtered level neither logs nor counts. */
	l = log_begin_rate(&r, 200 * S, 10 * S, LOG_INFO, "refused", NULL);
	log_end(l);
	cr_assert_str_eq(one_logfmt_line(), "level=info event=refused\n");
	cr_assert_null(log_begin_rate(&r, 300 * S, 10 * S, LOG_DEBUG, "refused", NULL));
	cr_assert_eq(r.suppressed, 0);
}

Test(log, rate_gate)
{
	struct log_rate r = { 0, 0 };
	uint64_t sup = 99;

	/* The first line is due whenever it comes, even at time 0. */
	cr_assert(log_rate_due(&r, 0, 0, &sup));
	cr_assert_eq(sup, 0);
	cr_assert_neq(r.next_ns, 0, "a line was logged: the gate is armed");
	cr_assert(log_rate_due(&r, 5, 10, &sup));
	/* Until the period ends: skipped and counted; then due with the count. */
	for (uint64_t t = 5; t < 15; t++)
		cr_assert_not(log_rate_due(&r, t, 10, &sup));
	cr_assert(log_rate_due(&r, 15, 10, &sup));
	cr_assert_eq(sup, 10);
	cr_assert(log_rate_due(&r, 1000, 10, &sup));
	cr_assert_eq(sup, 0);
	/* The count saturates instead of wrapping. */
	r.suppressed = UINT64_MAX - 1;
	cr_assert_not(log_rate_due(&r, 1001, 10, &sup));
	cr_assert_not(log_rate_due(&r, 1002, 10, &sup));
	cr_assert(log_rate_due(&r, 1010, 10, &sup));
	cr_assert_eq(sup, UINT64_MAX);
}

Test(log, logfmt_quoting_and_escaping)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain", "plain" },
		{ "", "\"\"" },
		{ "a b", "\"a b\"" },
		{ "a=b", "\"a=b\"" },
		{ "say \"hi\"", "\"say \\\"hi\\\"\"" },
		{ "back\\slash", "\"back\\\\slash\"" },
		{ "l1\nl2\tend\r", "\"l1\\nl2\\tend\\r\"" },
		{ "bell\x07", "\"bell\\x07\"" },
		{ "del\x7f", "\"del\\x7f\"" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" },
		{ "bad\xff", "\"bad\\xff\"" },
		{ "trunc\xe2\x82", "\"trunc\\xe2\\x82\"" },
		{ "192.0.2.1:7", "192.0.2.1:7" },
		{ "[::1]:7", "[::1]:7" },
	};

	setup_fmt(LOG_DEBUG, LOG_FMT_LOGFMT);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char want[256];
		struct logline *l = log_begin(LOG_INFO, "q");
		cr_assert_not_null(l);
		log_str(l, "v", cases[i].in);
		log_end(l);
		snprintf(want, sizeof want, "level=info event=q v=%s\n", cases[i].want);
		cr_assert_str_eq(one_logfmt_line(), want, "case %zu", i);
	}
}

Test(log, logfmt_all_value_kinds)
{
	struct logline *l;

	setup_fmt(LOG_DEBUG, LOG_FMT_LOGFMT);
	l = log_begin(LOG_NOTICE, "kinds");
	log_str(l, "s", "x");
	log_str(l, "null", NULL);
	log_int(l, "neg", -17);
	log_int(l, "min", INT64_MIN);
	log_u64(l, "max", UINT64_MAX);
	log_fixed(l, "rtt_ms", 412345, 1000000, 3);
	log_double(l, "loss_pct", 3.333, 1);
	log_bool(l, "up", true);
	log_bool(l, "down", false);
	log_errno(l, ENOENT);
	log_strf(l, "f", "%s-%03d", "id", 7);
	log_end(l);
	cr_assert_str_eq(one_logfmt_line(),
			 "level=notice event=kinds s=x null=\"\" neg=-17 min=-9223372036854775808 "
			 "max=18446744073709551615 rtt_ms=0.412 loss_pct=3.3 up=true down=false "
			 "error=\"No such file or directory\" f=id-007\n");
}

Test(log, json_exact_output)
{
	struct logline *l;

	setup_fmt(LOG_DEBUG, LOG_FMT_JSON);
	l = log_begin(LOG_INFO, "reply");
	log_str(l, "target", "gw");
	log_u64(l, "n", 17);
	log_fixed(l, "rtt_ms", 412345, 1000000, 3);
	log_int(l, "neg", -3);
	log_bool(l, "dup", false);
	log_str(l, "none", NULL);
	log_double(l, "nan", 0.0 / 0.0, 2);
	log_double(l, "d", -2.5, 2);
	log_str(l, "esc", "q\"b\\n\nt\tc\x01 \x7f");
	log_end(l);
	cr_assert_str_eq(one_json_line(),
			 "{\"level\":\"info\",\"event\":\"reply\",\"target\":\"gw\",\"n\":17,"
			 "\"rtt_ms\":0.412,\"neg\":-3,\"dup\":false,\"none\":null,\"nan\":null,"
			 "\"d\":-2.50,\"esc\":\"q\\\"b\\\\n\\nt\\tc\\u0001 \\u007f\"}\n");
}

/* Every byte value in a value still gives valid JSON, and decoding it gives
 * back the input, with U+FFFD for each byte that is not UTF-8. */
Test(log, json_valid_for_any_bytes)
{
	char in[512], want[2048], got[8192];
	size_t n = 0, wn = 0, got_len = 0;

	for (int c = 1; c < 256; c++) {
		in[n++] = (char)c;
		if (c < 0x80) {
			want[wn++] = (char)c;
		} else {
			memcpy(want + wn, "\xef\xbf\xbd", 3);
			wn += 3;
		}
	}
	/* Valid multi-byte sequences pass unchanged. */
	const char *utf8 = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	memcpy(in + n, utf8, strlen(utf8));
	n += strlen(utf8);
	memcpy(want + wn, utf8, strlen(utf8));
	wn += strlen(utf8);
	/* Overlong, surrogate, beyond U+10FFFF: each byte replaced. */
	const char *bad = "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80";
	memcpy(in + n, bad, strlen(bad));
	n += strlen(bad);
	for (size_t i = 0; i < strlen(bad); i++) {
		memcpy(want + wn, "\xef\xbf\xbd", 3);
		wn += 3;
	}
	in[n] = '\0';

	setup_fmt(LOG_DEBUG, LOG_FMT_JSON);
	struct logline *l = log_begin(LOG_INFO, "bytes");
	log_str(l, "v", in);
	log_end(l);
	const char *s = captured();
	cr_assert(json_line_valid(s, "v", got, &got_len), "invalid JSON: %s", s);
	cr_assert_eq(got_len, wn);
	cr_assert_arr_eq(got, want, wn);
}

Test(log, fixed_rounding)
{
	static const struct {
		uint64_t value, scale;
		int decimals;
		const char *want;
	} cases[] = {
		{ 412345, 1000000, 3, "0.412" },
		{ 412499, 1000000, 3, "0.412" },
		{ 412500, 1000000, 3, "0.413" },
		{ 999999499, 1000000, 3, "999.999" },
		{ 999999500, 1000000, 3, "1000.000" },
		{ 0, 1000000, 3, "0.000" },
		{ 5, 10, 0, "1" },
		{ 4, 10, 0, "0" },
		{ 1500000, 1000000, 0, "2" },
		{ 1, 3, 5, "0.33333" },
		{ 2, 3, 5, "0.66667" },
		{ 33, 1000, 1, "0.0" },
		{ 50, 1000, 1, "0.1" },
		{ 123456789, 1000, 6, "123456.789000" },
		{ UINT64_MAX, 1, 2, "18446744073709551615.00" },
		{ UINT64_MAX, 1000000000, 9, "18446744073.709551615" },
		{ 7, 0, 0, "7" },
	};

	setup_fmt(LOG_DEBUG, LOG_FMT_LOGFMT);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char want[128];
		struct logline *l = log_begin(LOG_INFO, "f");
		log_fixed(l, "x", cases[i].value, cases[i].scale, cases[i].decimals);
		log_end(l);
		snprintf(want, sizeof want, "level=info event=f x=%s\n", cases[i].want);
		cr_assert_str_eq(one_logfmt_line(), want, "case %zu", i);
	}
}

Test(log, addr_formats)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(7) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(7) };
	struct sockaddr_in6 m6 = { .sin6_family = AF_INET6, .sin6_port = htons(53) };
	struct sockaddr_in6 g6 = { .sin6_family = AF_INET6 };
	struct logline *l;

	inet_pton(AF_INET, "1.2.3.4", &a4.sin_addr);
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &m6.sin6_addr);
	inet_pton(AF_INET6, "2001:db8::5", &g6.sin6_addr);

	setup_fmt(LOG_DEBUG, LOG_FMT_LOGFMT);
	l = log_begin(LOG_INFO, "a");
	log_addr(l, "v4", (struct sockaddr *)&a4);
	log_addr(l, "v6", (struct sockaddr *)&a6);
	log_addr(l, "mapped", (struct sockaddr *)&m6);
	log_addr(l, "noport", (struct sockaddr *)&g6);
	a4.sin_port = 0;
	a6.sin6_port = 0;
	log_addr(l, "v4p0", (struct sockaddr *)&a4);
	log_addr(l, "v6p0", (struct sockaddr *)&a6);
	log_addr(l, "none", NULL);
	log_end(l);
	cr_assert_str_eq(one_logfmt_line(),
			 "level=info event=a v4=1.2.3.4:7 v6=[::1]:7 mapped=10.0.0.1:53 "
			 "noport=2001:db8::5 v4p0=1.2.3.4 v6p0=::1 none=\"\"\n");
}

Test(log, errno_preserved)
{
	setup_fmt(LOG_DEBUG, LOG_FMT_LOGFMT);
	errno = EADDRINUSE;
	struct logline *l = log_begin(LOG_INFO, "e");
	log_errno(l, errno);
	log_end(l);
	cr_assert_eq(errno, EADDRINUSE);
	cr_assert_str_eq(one_logfmt_line(), "level=info event=e error=\"Address already in use\"\n");
}

/* Lines longer than the buffer are cut, stay one well-formed line, say
 * truncated=true and never exceed 4096 bytes. */
Test(log, long_values_truncated_safely)
{
	static char big[20000];
	const char *s, *head;

	memset(big, 'a', sizeof big - 1);
	setup_fmt(LOG_DEBUG, LOG_FMT_LOGFMT);
	struct logline *l = log_begin(LOG_INFO, "big");
	log_str(l, "v", big);
	log_u64(l, "after", 1);
	log_end(l);
	s = one_logfmt_line();
	cr_assert(strlen(out) <= 4096, "line of %zu bytes", strlen(out));
	cr_assert(strlen(s) > 3000, "value cut too short");
	head = "level=info event=big v=aaaa";
	cr_assert_eq(strncmp(s, head, strlen(head)), 0);
	cr_assert(ends_with(s, "a truncated=true\n"), "%s", s + strlen(s) - 40);
	cr_assert_null(strstr(s, "after="));

	/* A quoted value cut in the middle still closes its quote, and an
	 * escape is never split. */
	for (size_t i = 0; i < sizeof big - 1; i++)
		big[i] = i % 2 ? '"' : ' ';
	l = log_begin(LOG_INFO, "big");
	log_str(l, "v", big);
	log_end(l);
	s = one_logfmt_line();
	cr_assert(strlen(out) <= 4096);
	cr_assert(ends_with(s, "\" truncated=true\n"), "%s", s + strlen(s) - 40);
	head = "level=info event=big v=\" \\\" \\\"";
	cr_assert_eq(strncmp(s, head, strlen(head)), 0, "%.60s", s);

	/* JSON: escapes expand the value; the line must still parse. */
	setup_fmt(LOG_DEBUG, LOG_FMT_JSON);
	for (size_t i = 0; i < sizeof big - 1; i++)
		big[i] = (char)(i % 3 == 0 ? '"' : i % 3 == 1 ? '\x01' : '\xff');
	l = log_begin(LOG_INFO, "big");
	log_str(l, "v", big);
	log_int(l, "after", 5);
	log_end(l);
	s = captured();
	cr_assert(strlen(s) <= 4096);
	cr_assert(json_line_valid(s, NULL, NULL, NULL), "invalid JSON: %s", s);
	cr_assert(ends_with(s, "\",\"truncated\":true}\n"), "%s", s + strlen(s) - 40);

	/* log_strf beyond its scratch buffer. */
	l = log_begin(LOG_INFO, "big");
	log_strf(l, "v", "%s%s", big, big);
	log_end(l);
	s = captured();
	cr_assert(json_line_valid(s, NULL, NULL, NULL), "invalid JSON: %s", s);
	cr_assert_not_null(strstr(s, "\"truncated\":true}"));

	/* The next line is complete again. */
	log_msg(LOG_INFO, "small", "ok");
	cr_assert_str_eq(one_json_line(), "{\"level\":\"info\",\"event\":\"small\",\"msg\":\"ok\"}\n");
}

/* A journal stream on fd 2 without the journal's native socket: "<N>"
 * prefixes and no ts, after one line saying why the native protocol is not
 * used.  JOURNAL_STREAM names a temporary file that is dup2()ed onto fd 2
 * for the test; BEACOND_JOURNAL_SOCKET points at a path that does not
 * exist. */
static void journal_case(unsigned dev_off, unsigned ino_off, enum log_format fmt,
			 const char *const *want, size_t nwant)
{
	char path[] = "/tmp/beacond-test-journal-XXXXXX";
	char env[64], err[128], buf[4096];
	struct stat st;
	int fd = mkstemp(path);
	int saved = dup(2);

	cr_assert(fd >= 0 && saved >= 0);
	unlink(path);
	cr_assert_eq(fstat(fd, &st), 0);
	bool match = dev_off == 0 && ino_off == 0;
	snprintf(env, sizeof env, "%lu:%lu", (unsigned long)st.st_dev + dev_off,
		 (unsigned long)st.st_ino + ino_off);
	setenv("JOURNAL_STREAM", env, 1);
	setenv("BEACOND_JOURNAL_SOCKET", "/nonexistent/beacond-test/journal.sock", 1);
	cr_assert_eq(dup2(fd, 2), 2);
	int rc = log_setup(LOG_DEBUG, fmt, "auto", err, sizeof err);
	log_msg(LOG_DEBUG, "d", "x");
	log_msg(LOG_INFO, "i", "x");
	log_msg(LOG_NOTICE, "n", "x");
	log_msg(LOG_WARNING, "w", "x");
	log_msg(LOG_ERR, "e", "x");
	log_close();
	dup2(saved, 2);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	unsetenv("BEACOND_JOURNAL_SOCKET");
	cr_assert_eq(rc, 0, "%s", err);

	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	cr_assert(n > 0);
	buf[n] = '\0';
	char *save = NULL, *line = strtok_r(buf, "\n", &save);
	if (match) {
		/* The fallback is announced at warning level, with the reason. */
		cr_assert_not_null(line);
		cr_assert(strstr(line, "event") && strstr(line, "journal_unavailable") &&
			  strstr(line, "/nonexistent/beacond-test/journal.sock"), "%s", line);
		cr_assert_eq(strncmp(line, "<4>", 3), 0, "%s", line);
		line = strtok_r(NULL, "\n", &save);
	}
	for (size_t i = 0; i < nwant; i++, line = strtok_r(NULL, "\n", &save)) {
		cr_assert_not_null(line, "line %zu missing", i);
		if (match) {
			cr_assert_str_eq(line, want[i]);
		} else {
			/* Not the journal: a timestamp and no prefix. */
			cr_assert_eq(strncmp(line, "ts=", 3), 0, "%s", line);
			const char *p = check_ts(line + 3);
			cr_assert_str_eq(p + 1, want[i]);
		}
	}
	cr_assert_null(line, "extra line: %s", line);
}

Test(log, journal_prefix_logfmt)
{
	static const char *const want[] = {
		"<7>level=debug event=d msg=x", "<6>level=info event=i msg=x",
		"<5>level=notice event=n msg=x", "<4>level=warning event=w msg=x",
		"<3>level=error event=e msg=x",
	};
	journal_case(0, 0, LOG_FMT_LOGFMT, want, 5);
}

Test(log, journal_prefix_json)
{
	static const char *const want[] = {
		"<7>{\"level\":\"debug\",\"event\":\"d\",\"msg\":\"x\"}",
		"<6>{\"level\":\"info\",\"event\":\"i\",\"msg\":\"x\"}",
		"<5>{\"level\":\"notice\",\"event\":\"n\",\"msg\":\"x\"}",
		"<4>{\"level\":\"warning\",\"event\":\"w\",\"msg\":\"x\"}",
		"<3>{\"level\":\"error\",\"event\":\"e\",\"msg\":\"x\"}",
	};
	journal_case(0, 0, LOG_FMT_JSON, want, 5);
}

Test(log, journal_stream_mismatch_means_plain_stderr)
{
	static const char *const want[] = {
		"level=debug event=d msg=x", "level=info event=i msg=x",
		"level=notice event=n msg=x", "level=warning event=w msg=x",
		"level=error event=e msg=x",
	};
	journal_case(0, 1, LOG_FMT_LOGFMT, want, 5);
	journal_case(1, 0, LOG_FMT_LOGFMT, want, 5);
}

static char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int count_lines(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

Test(log, file_target_and_reopen)
{
	char dir[] = "/tmp/beacond-test-log-XXXXXX";
	char path[256], rotated[256], err[256];
	struct stat st;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/beacond.log", dir);
	snprintf(rotated, sizeof rotated, "%s/beacond.log.1", dir);
	umask(022);

	cr_assert_eq(log_setup(LOG_INFO, LOG_FMT_LOGFMT, path, err, sizeof err), 0, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640);
	log_msg(LOG_INFO, "one", "1");
	/* logrotate renames the file, then sends SIGHUP. */
	cr_assert_eq(rename(path, rotated), 0);
	log_msg(LOG_INFO, "two", "2");
	cr_assert_eq(log_reopen(), 0);
	log_msg(LOG_INFO, "three", "3");

	char *s = slurp(rotated);
	cr_assert_not_null(s);
	cr_assert_eq(count_lines(s, "\n"), 2, "%s", s);
	cr_assert_not_null(strstr(s, "event=one msg=1\n"));
	cr_assert_not_null(strstr(s, "event=two msg=2\n"));
	s = slurp(path);
	cr_assert_not_null(s, "reopen did not create %s", path);
	cr_assert_eq(count_lines(s, "\n"), 1, "%s", s);
	cr_assert_not_null(strstr(s, "event=three msg=3\n"));
	cr_assert_eq(strncmp(s, "ts=", 3), 0);

	/* Deleted instead of renamed: reopen creates it again. */
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(log_reopen(), 0);
	log_msg(LOG_INFO, "four", "4");
	s = slurp(path);
	cr_assert_not_null(s);
	cr_assert_eq(count_lines(s, "\n"), 1, "%s", s);
	cr_assert_not_null(strstr(s, "event=four msg=4\n"));

	/* The directory is gone: reopen fails, logging goes on into the old
	 * (now unlinked) file without errors. */
	unlink(path);
	unlink(rotated);
	cr_assert_eq(rmdir(dir), 0);
	uint64_t dropped = log_dropped();
	errno = 0;
	cr_assert_eq(log_reopen(), -1);
	cr_assert_eq(errno, ENOENT);
	log_msg(LOG_INFO, "five", "5");
	cr_assert_eq(log_dropped(), dropped);

	/* log_setup to an unopenable path fails and keeps the old target. */
	cr_assert_eq(log_setup(LOG_DEBUG, LOG_FMT_JSON, path, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert(!log_enabled(LOG_DEBUG), "failed setup changed the level");
	cr_assert_eq(log_reopen(), -1);

	/* Back to stderr: reopen is a no-op. */
	cr_assert_eq(log_setup(LOG_INFO, LOG_FMT_LOGFMT, "stderr", err, sizeof err), 0);
	cr_assert_eq(log_reopen(), 0);
}

/* A write that fails drops the line, counts it and never blocks. */
Test(log, write_failures_drop_lines)
{
	setup_fmt(LOG_DEBUG, LOG_FMT_LOGFMT);

	/* Fill the (nonblocking) pipe. */
	char chunk[4096];
	memset(chunk, 'x', sizeof chunk);
	while (write(cap_w, chunk, sizeof chunk) > 0)
		;
	uint64_t dropped = log_dropped();
	log_msg(LOG_INFO, "full", "x");
	cr_assert_eq(log_dropped(), dropped + 1);

	/* Reader gone: EPIPE (SIGPIPE ignored as the loop does). */
	signal(SIGPIPE, SIG_IGN);
	close(cap_r);
	cap_r = -1;
	log_msg(LOG_INFO, "epipe", "x");
	cr_assert_eq(log_dropped(), dropped + 2);
}
