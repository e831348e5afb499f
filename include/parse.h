/*
 * parse: pure parsers for config values.  No I/O, no allocation except the
 * list parsers, which return malloc'd arrays the caller frees.
 *
 * Every parser accepts surrounding whitespace, rejects trailing garbage, and
 * returns 0 on success or -1 on failure with errno set: EINVAL for a syntax
 * error, ERANGE for a number that overflows or leaves its range (EDOM for a
 * CIDR with host bits set).  On failure the output is left unspecified.
 * List parsers write a short reason naming the bad element into err, e.g.
 * "10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)".
 */
#ifndef BEACOND_PARSE_H
#define BEACOND_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* "500ms", "2s", "5m", "1h", "1.5s", "250us", "10ns", "1d", "1h30m"; a bare
 * number is rejected (units are required) except "0".  Result in
 * nanoseconds, overflow-checked (ERANGE). */
int parse_duration(const char *s, uint64_t *ns);
/* "64KiB", "1MiB", "1GiB", "512", "512B", "4k" (k/K = KiB), "10MB" and
 * "10kB" (SI).  "1.5KiB" is fine; a fraction of a byte ("0.3KiB") is not. */
int parse_size(const char *s, uint64_t *bytes);
/* yes/no/true/false/on/off/1/0, case-insensitive. */
int parse_bool(const char *s, bool *v);
/* Decimal unsigned integer within [min, max]. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *v);

/* IP literal without port: "127.0.0.1", "::1", "fe80::1%lo" (scope).  A
 * scope given by name is looked up with if_nametoindex(), the one system
 * call in this module; a numeric scope ("%2") is taken as is. */
int parse_ip(const char *s, struct endpoint *out);
/* "127.0.0.1:7007", "[::1]:7007", "*:7" (0.0.0.0), "[::]:7".  Port 0..65535.
 * IP literals only (no names); "::1:7" is ambiguous and rejected. */
int parse_endpoint(const char *s, struct endpoint *out);
/* Comma-separated endpoints; 1..64 of them; duplicates rejected. */
int parse_endpoint_list(const char *s, struct endpoint **out, size_t *n,
			char *err, size_t errlen);

struct cidr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t addr[16];  /* network bytes, host bits cleared */
	uint8_t prefix;    /* 0..32 or 0..128 */
};
/* "10.0.0.0/8", "::1/128", "192.0.2.7" (= /32).  Host bits must be zero. */
int parse_cidr(const char *s, struct cidr *out);
/* Comma-separated CIDRs, at most 1024; "" or "none" gives an empty list
 * (n = 0, *out = NULL). */
int parse_cidr_list(const char *s, struct cidr **out, size_t *n, char *err,
		    size_t errlen);

/* Host names per RFC 1123 (labels 1..63 of [A-Za-z0-9-], not starting or
 * ending with '-', total <= 253, optional trailing dot, last label not all
 * digits so "10.0.0.256" is no name) or an IP literal.  Unlike the parsers
 * above it does not trim: " a.example" is not a host name. */
bool parse_is_hostname(const char *s);

#endif
