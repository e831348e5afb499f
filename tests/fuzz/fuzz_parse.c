/*
 * libFuzzer targets for the pure parsers.  FUZZ_PARSER selects which one is
 * built into this executable, so each parser gets its own corpus and its own
 * execution count.  Beyond "does not crash", each target checks properties a
 * correct parser must keep.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *as_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#if FUZZ_PARSER == 2
/* parse_uint: the bounds are exact (v itself is in [v, v], v - 1 and v + 1
 * are the first values outside), the value round-trips through its decimal
 * form, and a bare number is the same size in bytes. */
static void check_uint(const char *s)
{
	uint64_t v, w;
	char buf[32];

	if (parse_uint(s, 0, UINT64_MAX, &v) < 0)
		return;
	if (parse_uint(s, v, v, &w) < 0 || w != v)
		abort();
	if (v > 0 && (parse_uint(s, 0, v - 1, &w) == 0 || errno != ERANGE))
		abort();
	if (v < UINT64_MAX && (parse_uint(s, v + 1, UINT64_MAX, &w) == 0 || errno != ERANGE))
		abort();
	snprintf(buf, sizeof buf, "%" PRIu64, v);
	if (parse_uint(buf, 0, UINT64_MAX, &w) < 0 || w != v)
		abort();
	if (parse_size(s, &w) < 0 || w != v)
		abort();
}

/* parse_size: the byte count round-trips as a bare number, with "B", and
 * in the largest binary unit that divides it. */
static void check_size(const char *s)
{
	static const char *const units[] = { "KiB", "MiB", "GiB" };
	uint64_t bytes, w;
	char buf[40];

	if (parse_size(s, &bytes) < 0)
		return;
	snprintf(buf, sizeof buf, "%" PRIu64, bytes);
	if (parse_size(buf, &w) < 0 || w != bytes)
		abort();
	snprintf(buf, sizeof buf, " %" PRIu64 "B ", bytes);
	if (parse_size(buf, &w) < 0 || w != bytes)
		abort();
	uint64_t mult = 1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		mult *= 1024;
		if (bytes % mult != 0)
			break;
		snprintf(buf, sizeof buf, "%" PRIu64 "%s", bytes / mult, units[i]);
		if (parse_size(buf, &w) < 0 || w != bytes)
			abort();
	}
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = as_string(data, size);

#if FUZZ_PARSER == 1
	uint64_t ns;
	if (parse_duration(s, &ns) == 0) {
		bool b;
		/* Units are required (only "0" may go without), so no other
		 * duration is also a boolean. */
		if (parse_bool(s, &b) == 0 && !(ns == 0 && !b))
			abort();
	}
#elif FUZZ_PARSER == 2
	check_uint(s);
	check_size(s);
#elif FUZZ_PARSER == 3
	char err[256];
	struct endpoint *eps = NULL;
	size_t n = 0;
	if (parse_endpoint_list(s, &eps, &n, err, sizeof err) == 0) {
		if (n == 0)
			abort();
		for (size_t i = 0; i < n; i++)
			if (eps[i].u.sa.sa_family != AF_INET && eps[i].u.sa.sa_family != AF_INET6)
				abort();
	} else if (memchr(err, '\0', sizeof err) == NULL) {
		abort();
	}
	free(eps);
	(void)parse_is_hostname(s);
#elif FUZZ_PARSER == 4
	char err[256];
	struct cidr *v = NULL;
	size_t n = 0;
	if (parse_cidr_list(s, &v, &n, err, sizeof err) == 0) {
		struct acl acl = { .v = v, .n = n };
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
		memcpy(&sa.sin6_addr, data, size < 16 ? size : 16);
		(void)acl_allows(&acl, (struct sockaddr *)&sa);
		for (size_t i = 0; i < n; i++)
			if (v[i].prefix > (v[i].family == AF_INET ? 32 : 128))
				abort();
	}
	free(v);
#else
#error "FUZZ_PARSER must be 1..4"
#endif
	free(s);
	return 0;
}
