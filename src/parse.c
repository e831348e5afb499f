/*
 * parse: pure parsers for config values.
 *
 * Every parser copies its (trimmed) input into a small bounded buffer first,
 * so no parser ever reads past what it was given and none needs to allocate.
 * Only the list parsers allocate, for the arrays they return.  The one system
 * call is if_nametoindex() for an IPv6 scope given by name ("fe80::1%lo").
 */
#include "parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest element any single-value parser accepts: an IPv6 literal with a
 * scope name and a port, or a duration like "1d2h3m4s5ms". */
#define PARSE_BUF 128

/* Lists are bounded so a typo cannot produce a pathological ACL that every
 * datagram has to walk. */
#define ENDPOINT_LIST_MAX 64
#define CIDR_LIST_MAX 1024

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Copy s[0..len) without surrounding whitespace into buf.  Fails (EINVAL)
 * when the trimmed text does not fit, so callers never see a silently
 * shortened value. */
static int trim_copy_n(const char *s, size_t len, char *buf, size_t cap)
{
	while (len > 0 && is_space(*s)) {
		s++;
		len--;
	}
	while (len > 0 && is_space(s[len - 1]))
		len--;
	if (len >= cap) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

static int trim_copy(const char *s, char *buf, size_t cap)
{
	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	return trim_copy_n(s, strlen(s), buf, cap);
}

/*
 * A decimal number with an optional fraction: "12", "1.5".  The integer part
 * saturates into *overflow instead of wrapping; the fraction keeps at most 18
 * digits (far below a nanosecond or a byte for any unit we know).
 */
struct decimal {
	uint64_t ip;
	uint64_t frac;
	unsigned frac_digits;
	bool overflow;
};

static const char *parse_decimal(const char *p, struct decimal *d)
{
	memset(d, 0, sizeof(*d));
	if (!is_digit(*p))
		return NULL;
	while (is_digit(*p)) {
		unsigned digit = (unsigned)(*p - '0');
		if (d->ip > (UINT64_MAX - digit) / 10)
			d->overflow = true;
		else
			d->ip = d->ip * 10 + digit;
		p++;
	}
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return NULL;
		while (is_digit(*p)) {
			if (d->frac_digits < 18) {
				d->frac = d->frac * 10 + (uint64_t)(*p - '0');
				d->frac_digits++;
			}
			p++;
		}
	}
	return p;
}

static uint64_t pow10_u64(unsigned n)
{
	uint64_t v = 1;
	while (n-- > 0)
		v *= 10;
	return v;
}

/* d * mult, exactly; -1/ERANGE on overflow, *exact false when the fraction
 * leaves a remainder (1.5ns, 0.3KiB). */
static int decimal_scale(const struct decimal *d, uint64_t mult, uint64_t *out,
			 bool *exact)
{
	unsigned __int128 whole, part, den;

	if (d->overflow) {
		errno = ERANGE;
		return -1;
	}
	den = pow10_u64(d->frac_digits);
	whole = (unsigned __int128)d->ip * mult;
	part = (unsigned __int128)d->frac * mult;
	*exact = part % den == 0;
	whole += part / den;
	if (whole > UINT64_MAX) {
		errno = ERANGE;
		return -1;
	}
	*out = (uint64_t)whole;
	return 0;
}

struct unit {
	const char *name;
	uint64_t mult;
};

/* Two-letter units come first so "5ms" is never read as "5m" + "s". */
static const struct unit duration_units[] = {
	{ "ns", 1 },
	{ "us", NSEC_PER_USEC },
	{ "ms", NSEC_PER_MSEC },
	{ "s", NSEC_PER_SEC },
	{ "m", 60 * NSEC_PER_SEC },
	{ "h", 3600 * NSEC_PER_SEC },
	{ "d", 86400 * NSEC_PER_SEC },
};

int parse_duration(const char *s, uint64_t *ns)
{
	char buf[PARSE_BUF];
	const char *p;
	uint64_t total = 0;

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		return -1;
	/* Zero is zero in every unit, so "0" is accepted without one. */
	if (strcmp(buf, "0") == 0) {
		*ns = 0;
		return 0;
	}
	if (buf[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	/* One or more terms, "1h30m" style, each a number and a unit. */
	p = buf;
	while (*p != '\0') {
		struct decimal d;
		const struct unit *u = NULL;
		uint64_t v;
		bool exact;

		p = parse_decimal(p, &d);
		if (p == NULL) {
			errno = EINVAL;
			return -1;
		}
		for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++) {
			size_t n = strlen(duration_units[i].name);
			if (strncmp(p, duration_units[i].name, n) == 0 &&
			    !(p[n] >= 'a' && p[n] <= 'z')) {
				u = &duration_units[i];
				p += n;
				break;
			}
		}
		if (u == NULL) {
			errno = EINVAL;
			return -1;
		}
		if (decimal_scale(&d, u->mult, &v, &exact) < 0)
			return -1;
		if (v > UINT64_MAX - total) {
			errno = ERANGE;
			return -1;
		}
		total += v;
	}
	*ns = total;
	return 0;
}

static const struct unit size_units[] = {
	{ "", 1 },
	{ "B", 1 },
	{ "k", 1ULL << 10 },
	{ "K", 1ULL << 10 },
	{ "KiB", 1ULL << 10 },
	{ "M", 1ULL << 20 },
	{ "MiB", 1ULL << 20 },
	{ "G", 1ULL << 30 },
	{ "GiB", 1ULL << 30 },
	{ "kB", 1000ULL },
	{ "KB", 1000ULL },
	{ "MB", 1000ULL * 1000 },
	{ "GB", 1000ULL * 1000 * 1000 },
};

int parse_size(const char *s, uint64_t *bytes)
{
	char buf[PARSE_BUF];
	struct decimal d;
	const char *p;
	bool exact;
	uint64_t v;

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		return -1;
	p = parse_decimal(buf, &d);
	if (p == NULL) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(size_units); i++) {
		if (strcmp(p, size_units[i].name) != 0)
			continue;
		if (decimal_scale(&d, size_units[i].mult, &v, &exact) < 0)
			return -1;
		/* A size is a whole number of bytes: "1.5KiB" is 1536, but
		 * "0.3KiB" would have to be rounded, so it is rejected. */
		if (!exact) {
			errno = EINVAL;
			return -1;
		}
		*bytes = v;
		return 0;
	}
	errno = EINVAL;
	return -1;
}

int parse_bool(const char *s, bool *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	char buf[16];

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(buf, yes[i]) == 0) {
			*v = true;
			return 0;
		}
		if (strcasecmp(buf, no[i]) == 0) {
			*v = false;
			return 0;
		}
	}
	errno = EINVAL;
	return -1;
}

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *v)
{
	char buf[PARSE_BUF];
	uint64_t n = 0;
	bool overflow = false;

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		return -1;
	if (buf[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	for (const char *p = buf; *p != '\0'; p++) {
		unsigned digit;
		if (!is_digit(*p)) {
			errno = EINVAL;
			return -1;
		}
		digit = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - digit) / 10)
			overflow = true;
		else
			n = n * 10 + digit;
	}
	if (overflow || n < min || n > max) {
		errno = ERANGE;
		return -1;
	}
	*v = n;
	return 0;
}

/* Parse an already trimmed IP literal. */
static int ip_parse(const char *buf, struct endpoint *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *pct;
	size_t alen;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, &out->u.in4.sin_addr) == 1) {
		out->u.in4.sin_family = AF_INET;
		out->len = sizeof(out->u.in4);
		return 0;
	}
	pct = strchr(buf, '%');
	alen = pct != NULL ? (size_t)(pct - buf) : strlen(buf);
	if (alen == 0 || alen >= sizeof(addr))
		goto invalid;
	memcpy(addr, buf, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET6, addr, &out->u.in6.sin6_addr) != 1)
		goto invalid;
	out->u.in6.sin6_family = AF_INET6;
	out->len = sizeof(out->u.in6);
	if (pct != NULL) {
		const char *scope = pct + 1;
		uint64_t idx = 0;

		if (*scope == '\0' || strlen(scope) >= IF_NAMESIZE)
			goto invalid;
		if (is_digit(*scope)) {
			for (const char *p = scope; *p != '\0'; p++) {
				if (!is_digit(*p) || idx > UINT32_MAX / 10)
					goto invalid;
				idx = idx * 10 + (uint64_t)(*p - '0');
			}
			if (idx > UINT32_MAX)
				goto invalid;
		} else {
			/* The only system call in this module: scope names
			 * must name an existing interface. */
			idx = if_nametoindex(scope);
			if (idx == 0)
				goto invalid;
		}
		out->u.in6.sin6_scope_id = (uint32_t)idx;
	}
	return 0;
invalid:
	memset(out, 0, sizeof(*out));
	errno = EINVAL;
	return -1;
}

int parse_ip(const char *s, struct endpoint *out)
{
	char buf[PARSE_BUF];

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		return -1;
	return ip_parse(buf, out);
}

static int port_parse(const char *p, uint16_t *port, const char **why)
{
	uint32_t n = 0;

	if (*p == '\0') {
		*why = "has an empty port";
		return -1;
	}
	for (; *p != '\0'; p++) {
		if (!is_digit(*p)) {
			*why = "has a port that is not a number";
			return -1;
		}
		n = n * 10 + (uint32_t)(*p - '0');
		if (n > 65535) {
			*why = "has a port out of range (0..65535)";
			return -1;
		}
	}
	*port = (uint16_t)n;
	return 0;
}

/*
 * Parse a trimmed "addr:port".  On failure *why completes a sentence that
 * starts with the element, e.g. "::1:7 needs brackets ...".
 */
static int endpoint_parse(const char *buf, struct endpoint *out,
			  const char **why)
{
	static const char generic[] =
		"is not an address:port (e.g. 127.0.0.1:7, [::1]:7, *:7)";
	char host[PARSE_BUF];
	const char *colon, *port_str;
	uint16_t port;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	*why = generic;
	if (buf[0] == '[') {
		const char *close = strchr(buf, ']');
		if (close == NULL)
			return -1;
		if (close[1] != ':') {
			*why = "is missing its :port";
			return -1;
		}
		hlen = (size_t)(close - buf - 1);
		memcpy(host, buf + 1, hlen);
		host[hlen] = '\0';
		port_str = close + 2;
		if (ip_parse(host, out) < 0 || out->u.sa.sa_family != AF_INET6) {
			memset(out, 0, sizeof(*out));
			*why = "has no IPv6 address inside the brackets";
			return -1;
		}
	} else {
		colon = strrchr(buf, ':');
		if (colon == NULL) {
			*why = "is missing its :port";
			return -1;
		}
		if (memchr(buf, ':', (size_t)(colon - buf)) != NULL) {
			*why = "is ambiguous: put IPv6 addresses in brackets, "
			       "e.g. [::1]:7";
			return -1;
		}
		hlen = (size_t)(colon - buf);
		memcpy(host, buf, hlen);
		host[hlen] = '\0';
		port_str = colon + 1;
		if (strcmp(host, "*") == 0) {
			out->u.in4.sin_family = AF_INET;
			out->u.in4.sin_addr.s_addr = htonl(INADDR_ANY);
			out->len = sizeof(out->u.in4);
		} else if (ip_parse(host, out) < 0) {
			/* ip_parse cannot return IPv6 here: it has a ':'. */
			return -1;
		}
	}
	if (port_parse(port_str, &port, why) < 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	if (out->u.sa.sa_family == AF_INET)
		out->u.in4.sin_port = htons(port);
	else
		out->u.in6.sin6_port = htons(port);
	return 0;
}

int parse_endpoint(const char *s, struct endpoint *out)
{
	char buf[PARSE_BUF];
	const char *why;

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		return -1;
	if (endpoint_parse(buf, out, &why) < 0) {
		errno = strstr(why, "range") != NULL ? ERANGE : EINVAL;
		return -1;
	}
	return 0;
}

static bool endpoint_equal(const struct endpoint *a, const struct endpoint *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in4.sin_port == b->u.in4.sin_port &&
		       a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
	return a->u.in6.sin6_port == b->u.in6.sin6_port &&
	       a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id &&
	       memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0;
}

/* Iterate over the comma-separated elements of s, trimmed, into buf. */
struct list_iter {
	const char *p;
	bool done;
};

/* 1 with the next element in buf, 0 at the end, -1 when an element does not
 * fit in buf (it is then too long to be valid anyway). */
static int list_next(struct list_iter *it, char *buf, size_t cap,
		     const char **raw, size_t *rawlen)
{
	const char *comma;
	size_t len;

	if (it->done)
		return 0;
	comma = strchr(it->p, ',');
	len = comma != NULL ? (size_t)(comma - it->p) : strlen(it->p);
	*raw = it->p;
	*rawlen = len;
	if (comma != NULL)
		it->p = comma + 1;
	else
		it->done = true;
	if (trim_copy_n(*raw, len, buf, cap) < 0)
		return -1;
	return 1;
}

static bool all_space(const char *s)
{
	while (is_space(*s))
		s++;
	return *s == '\0';
}

/* Show a list element in a message, shortened when it is absurdly long. */
static int elem_width(size_t len)
{
	return len > 60 ? 60 : (int)len;
}

/* The next element of a list holding count of at most max elements (what
 * names them in the message): 1 with it in buf, 0 at the end, -1 with the
 * reason in err when it is too long, empty, or one too many. */
static int list_next_elem(struct list_iter *it, char *buf, size_t cap, size_t count,
			  size_t max, const char *what, char *err, size_t errlen)
{
	const char *raw;
	size_t rawlen;
	int r = list_next(it, buf, cap, &raw, &rawlen);

	if (r < 0) {
		set_err(err, errlen, "%.*s... is too long", elem_width(rawlen), raw);
		return -1;
	}
	if (r == 0)
		return 0;
	if (buf[0] == '\0') {
		set_err(err, errlen, "empty element in the list");
		return -1;
	}
	if (count == max) {
		set_err(err, errlen, "more than %zu %s", max, what);
		return -1;
	}
	return 1;
}

int parse_endpoint_list(const char *s, struct endpoint **out, size_t *n,
			char *err, size_t errlen)
{
	struct list_iter it = { s, false };
	struct endpoint *v;
	char buf[PARSE_BUF];
	size_t count = 0;
	int r;

	*out = NULL;
	*n = 0;
	if (s == NULL || all_space(s)) {
		set_err(err, errlen, "at least one address is required");
		errno = EINVAL;
		return -1;
	}
	v = calloc(ENDPOINT_LIST_MAX, sizeof(*v));
	if (v == NULL) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	while ((r = list_next_elem(&it, buf, sizeof(buf), count, ENDPOINT_LIST_MAX,
				   "addresses", err, errlen)) > 0) {
		const char *why;

		if (endpoint_parse(buf, &v[count], &why) < 0) {
			set_err(err, errlen, "%s %s", buf, why);
			goto fail;
		}
		for (size_t i = 0; i < count; i++) {
			if (endpoint_equal(&v[i], &v[count])) {
				set_err(err, errlen, "%s is listed twice", buf);
				goto fail;
			}
		}
		count++;
	}
	if (r < 0)
		goto fail;
	*out = v;
	*n = count;
	return 0;
fail:
	free(v);
	errno = EINVAL;
	return -1;
}

enum cidr_status {
	CIDR_OK,
	CIDR_SYNTAX,
	CIDR_PREFIX_RANGE,
	CIDR_HOST_BITS,
};

static void cidr_mask(struct cidr *c)
{
	unsigned bytes = c->family == AF_INET ? 4 : 16;

	for (unsigned i = 0; i < bytes; i++) {
		unsigned bit0 = i * 8;
		if (bit0 >= c->prefix)
			c->addr[i] = 0;
		else if (c->prefix - bit0 < 8)
			c->addr[i] &= (uint8_t)(0xff00u >> (c->prefix - bit0));
	}
}

/* Parse a trimmed CIDR.  On CIDR_HOST_BITS *out holds the masked network,
 * which the caller suggests as the likely intent. */
static enum cidr_status cidr_parse(const char *buf, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(buf, '/');
	size_t alen = slash != NULL ? (size_t)(slash - buf) : strlen(buf);
	unsigned maxlen, prefix;
	struct cidr orig;

	memset(out, 0, sizeof(*out));
	if (alen == 0 || alen >= sizeof(addr))
		return CIDR_SYNTAX;
	memcpy(addr, buf, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		maxlen = 128;
	} else {
		return CIDR_SYNTAX;
	}
	prefix = maxlen;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t plen = strlen(p);

		if (plen == 0 || strspn(p, "0123456789") != plen)
			return CIDR_SYNTAX;
		if (plen > 3)
			return CIDR_PREFIX_RANGE;
		prefix = 0;
		for (; *p != '\0'; p++)
			prefix = prefix * 10 + (unsigned)(*p - '0');
		if (prefix > maxlen)
			return CIDR_PREFIX_RANGE;
	}
	out->prefix = (uint8_t)prefix;
	orig = *out;
	cidr_mask(out);
	if (memcmp(orig.addr, out->addr, sizeof(out->addr)) != 0)
		return CIDR_HOST_BITS;
	return CIDR_OK;
}

int parse_cidr(const char *s, struct cidr *out)
{
	char buf[PARSE_BUF];

	if (trim_copy(s, buf, sizeof(buf)) < 0)
		return -1;
	switch (cidr_parse(buf, out)) {
	case CIDR_OK:
		return 0;
	case CIDR_PREFIX_RANGE:
		errno = ERANGE;
		break;
	case CIDR_HOST_BITS:
		errno = EDOM;
		break;
	case CIDR_SYNTAX:
	default:
		errno = EINVAL;
		break;
	}
	memset(out, 0, sizeof(*out));
	return -1;
}

int parse_cidr_list(const char *s, struct cidr **out, size_t *n, char *err,
		    size_t errlen)
{
	struct list_iter it = { s, false };
	struct cidr *v = NULL;
	size_t cap = 0, count = 0;
	char buf[PARSE_BUF];
	int r;

	*out = NULL;
	*n = 0;
	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (trim_copy(s, buf, sizeof(buf)) == 0 &&
	    (buf[0] == '\0' || strcasecmp(buf, "none") == 0))
		return 0;
	while ((r = list_next_elem(&it, buf, sizeof(buf), count, CIDR_LIST_MAX,
				   "entries", err, errlen)) > 0) {
		char net[INET6_ADDRSTRLEN];
		struct cidr c;

		switch (cidr_parse(buf, &c)) {
		case CIDR_OK:
			break;
		case CIDR_PREFIX_RANGE:
			set_err(err, errlen,
				"%s has a prefix length out of range (0..%d)",
				buf, c.family == AF_INET6 ? 128 : 32);
			goto fail;
		case CIDR_HOST_BITS:
			inet_ntop(c.family, c.addr, net, sizeof(net));
			set_err(err, errlen,
				"%s has host bits set (did you mean %s/%u?)",
				buf, net, c.prefix);
			goto fail;
		case CIDR_SYNTAX:
		default:
			set_err(err, errlen,
				"%s is not a CIDR (e.g. 10.0.0.0/8, fc00::/7, 192.0.2.1)",
				buf);
			goto fail;
		}
		if (count == cap) {
			size_t ncap = cap != 0 ? cap * 2 : 8;
			struct cidr *nv = realloc(v, ncap * sizeof(*nv));
			if (nv == NULL) {
				set_err(err, errlen, "out of memory");
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		v[count++] = c;
	}
	if (r < 0)
		goto fail;
	*out = v;
	*n = count;
	return 0;
fail:
	free(v);
	errno = EINVAL;
	return -1;
}

bool parse_is_hostname(const char *s)
{
	struct endpoint ep;
	size_t len, label = 0;
	bool all_digits = true;

	if (s == NULL || *s == '\0' || is_space(*s))
		return false;
	len = strlen(s);
	if (is_space(s[len - 1]))
		return false;
	if (len < PARSE_BUF && ip_parse(s, &ep) == 0)
		return true;
	if (s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? s[i] : '.';

		if (c == '.') {
			/* Labels are 1..63 characters, no hyphen at either
			 * end (RFC 1123 2.1). */
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return false;
		if (label == 0) {
			if (c == '-')
				return false;
			all_digits = true;
		}
		if (!is_digit(c))
			all_digits = false;
		label++;
	}
	/* A top-level label is never all-numeric (RFC 3696 2); rejecting it
	 * turns a mistyped address like 10.0.0.256 into an error instead of a
	 * lookup of a name that cannot exist. */
	return !all_digits;
}
