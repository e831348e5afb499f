/* Unit tests for the pure value parsers (src/parse.c). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

struct dur_case {
	const char *in;
	int ret;
	uint64_t ns;
	int err;
};

Test(parse, duration_valid)
{
	static const struct dur_case cases[] = {
		{ "0s", 0, 0, 0 },
		{ "0", 0, 0, 0 },
		{ "1ns", 0, 1, 0 },
		{ "250us", 0, 250000, 0 },
		{ "500ms", 0, 500000000, 0 },
		{ "2s", 0, 2000000000, 0 },
		{ "  2s  ", 0, 2000000000, 0 },
		{ "\t2s\n", 0, 2000000000, 0 },
		{ "1.5s", 0, 1500000000, 0 },
		{ "0.001s", 0, 1000000, 0 },
		{ "5m", 0, 300000000000ULL, 0 },
		{ "1h", 0, 3600000000000ULL, 0 },
		{ "1d", 0, 86400000000000ULL, 0 },
		{ "1h30m", 0, 5400000000000ULL, 0 },
		{ "1m30s500ms", 0, 90500000000ULL, 0 },
		{ "18446744073709551615ns", 0, UINT64_MAX, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ns = 12345;
		int r = parse_duration(cases[i].in, &ns);
		cr_expect_eq(r, 0, "parse_duration(\"%s\") failed", cases[i].in);
		cr_expect_eq(ns, cases[i].ns, "parse_duration(\"%s\") = %llu, want %llu",
			     cases[i].in, (unsigned long long)ns,
			     (unsigned long long)cases[i].ns);
	}
}

Test(parse, duration_invalid)
{
	static const struct dur_case cases[] = {
		{ "", -1, 0, EINVAL },
		{ "   ", -1, 0, EINVAL },
		{ "5", -1, 0, EINVAL },        /* units are required */
		{ "5 parsecs", -1, 0, EINVAL },
		{ "5 s", -1, 0, EINVAL },
		{ "-1s", -1, 0, EINVAL },
		{ "+1s", -1, 0, EINVAL },
		{ "1e3s", -1, 0, EINVAL },
		{ ".5s", -1, 0, EINVAL },
		{ "5.s", -1, 0, EINVAL },
		{ "5sec", -1, 0, EINVAL },
		{ "5S", -1, 0, EINVAL },
		{ "1h 30m", -1, 0, EINVAL },
		{ "s", -1, 0, EINVAL },
		{ "0x10s", -1, 0, EINVAL },
		{ "99999999999999h", -1, 0, ERANGE },
		{ "18446744073709551616ns", -1, 0, ERANGE },
		{ "300000000000000000000s", -1, 0, ERANGE },
		{ "18446744073709551615ns1ns", -1, 0, ERANGE },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ns = 0;
		errno = 0;
		cr_expect_eq(parse_duration(cases[i].in, &ns), -1,
			     "parse_duration(\"%s\") should fail", cases[i].in);
		cr_expect_eq(errno, cases[i].err, "parse_duration(\"%s\") errno %d, want %d",
			     cases[i].in, errno, cases[i].err);
	}
	cr_expect_eq(parse_duration(NULL, &(uint64_t){ 0 }), -1);
}

Test(parse, size)
{
	static const struct { const char *in; uint64_t v; } ok[] = {
		{ "0", 0 }, { "512", 512 }, { "512B", 512 }, { " 64KiB ", 65536 },
		{ "4k", 4096 }, { "4K", 4096 }, { "1MiB", 1048576 }, { "2M", 2097152 },
		{ "1GiB", 1073741824 }, { "1G", 1073741824 }, { "10kB", 10000 },
		{ "10KB", 10000 }, { "10MB", 10000000 }, { "2GB", 2000000000 },
		{ "1.5KiB", 1536 }, { "0.5MiB", 524288 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const struct { const char *in; int err; } bad[] = {
		{ "", EINVAL }, { "KiB", EINVAL }, { "-1", EINVAL }, { "1.5B", EINVAL },
		{ "0.3KiB", EINVAL }, { "10 KiB", EINVAL }, { "10kib", EINVAL },
		{ "10mb", EINVAL }, { "1TiB", EINVAL }, { "1e3", EINVAL },
		{ "18446744073709551616", ERANGE }, { "99999999999G", ERANGE },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 7;
		cr_expect_eq(parse_size(ok[i].in, &v), 0, "parse_size(\"%s\")", ok[i].in);
		cr_expect_eq(v, ok[i].v, "parse_size(\"%s\") = %llu", ok[i].in,
			     (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v;
		errno = 0;
		cr_expect_eq(parse_size(bad[i].in, &v), -1, "parse_size(\"%s\") should fail",
			     bad[i].in);
		cr_expect_eq(errno, bad[i].err, "parse_size(\"%s\") errno %d", bad[i].in, errno);
	}
}

Test(parse, bool_spellings)
{
	static const char *const yes[] = { "yes", "YES", "Yes", "true", "TRUE",
					   "on", "On", "1", " yes " };
	static const char *const no[] = { "no", "NO", "false", "False", "off",
					  "OFF", "0", "\tno\n" };
	static const char *const bad[] = { "", "y", "n", "2", "yess", "enable",
					   "t", "-1", "on off" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		bool v = false;
		cr_expect_eq(parse_bool(yes[i], &v), 0, "parse_bool(\"%s\")", yes[i]);
		cr_expect(v, "parse_bool(\"%s\") should be true", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		bool v = true;
		cr_expect_eq(parse_bool(no[i], &v), 0, "parse_bool(\"%s\")", no[i]);
		cr_expect_not(v, "parse_bool(\"%s\") should be false", no[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool v;
		cr_expect_eq(parse_bool(bad[i], &v), -1, "parse_bool(\"%s\") should fail",
			     bad[i]);
	}
}

Test(parse, uint_range)
{
	uint64_t v = 0;

	cr_expect_eq(parse_uint("1", 1, 65535, &v), 0);
	cr_expect_eq(v, 1);
	cr_expect_eq(parse_uint(" 65535 ", 1, 65535, &v), 0);
	cr_expect_eq(v, 65535);
	cr_expect_eq(parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
	cr_expect_eq(v, UINT64_MAX);

	errno = 0;
	cr_expect_eq(parse_uint("0", 1, 65535, &v), -1);
	cr_expect_eq(errno, ERANGE);
	errno = 0;
	cr_expect_eq(parse_uint("65536", 1, 65535, &v), -1);
	cr_expect_eq(errno, ERANGE);
	errno = 0;
	cr_expect_eq(parse_uint("18446744073709551616", 0, UINT64_MAX, &v), -1);
	cr_expect_eq(errno, ERANGE);

	static const char *const bad[] = { "", "-1", "+1", "1.0", "0x10", "1 2",
					   "12a", "one" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_expect_eq(parse_uint(bad[i], 0, 100, &v), -1, "parse_uint(\"%s\")", bad[i]);
		cr_expect_eq(errno, EINVAL, "parse_uint(\"%s\") errno", bad[i]);
	}
}

static void expect_endpoint(const char *in, int family, const char *addr,
			    unsigned port)
{
	struct endpoint ep;
	char buf[INET6_ADDRSTRLEN] = "";

	cr_assert_eq(parse_endpoint(in, &ep), 0, "parse_endpoint(\"%s\")", in);
	cr_expect_eq(ep.u.sa.sa_family, family, "family of \"%s\"", in);
	if (family == AF_INET) {
		inet_ntop(AF_INET, &ep.u.in4.sin_addr, buf, sizeof(buf));
		cr_expect_eq(ntohs(ep.u.in4.sin_port), port, "port of \"%s\"", in);
		cr_expect_eq(ep.len, sizeof(struct sockaddr_in));
	} else {
		inet_ntop(AF_INET6, &ep.u.in6.sin6_addr, buf, sizeof(buf));
		cr_expect_eq(ntohs(ep.u.in6.sin6_port), port, "port of \"%s\"", in);
		cr_expect_eq(ep.len, sizeof(struct sockaddr_in6));
	}
	cr_expect_str_eq(buf, addr, "address of \"%s\"", in);
}

Test(parse, endpoint_valid)
{
	expect_endpoint("127.0.0.1:7007", AF_INET, "127.0.0.1", 7007);
	expect_endpoint(" 127.0.0.1:0 ", AF_INET, "127.0.0.1", 0);
	expect_endpoint("[::1]:7007", AF_INET6, "::1", 7007);
	expect_endpoint("[::1]:65535", AF_INET6, "::1", 65535);
	expect_endpoint("*:7", AF_INET, "0.0.0.0", 7);
	expect_endpoint("[::]:7", AF_INET6, "::", 7);
	expect_endpoint("0.0.0.0:7", AF_INET, "0.0.0.0", 7);
}

Test(parse, endpoint_scope)
{
	struct endpoint ep;
	unsigned lo = if_nametoindex("lo");

	cr_assert_eq(parse_endpoint("[fe80::1%lo]:7", &ep), 0);
	cr_expect_eq(ep.u.in6.sin6_scope_id, lo);
	cr_assert_eq(parse_endpoint("[fe80::1%3]:7", &ep), 0);
	cr_expect_eq(ep.u.in6.sin6_scope_id, 3);
	cr_expect_eq(parse_endpoint("[fe80::1%no-such-if0]:7", &ep), -1);
}

Test(parse, endpoint_invalid)
{
	static const struct { const char *in; int err; } bad[] = {
		{ "127.0.0.1:65536", ERANGE },
		{ "127.0.0.1:99999999999", ERANGE },
		{ "[::1]:65536", ERANGE },
		{ "[::1", EINVAL },
		{ "[::1]", EINVAL },
		{ "[::1]7", EINVAL },
		{ "::1:7", EINVAL },           /* ambiguous without brackets */
		{ "::1", EINVAL },
		{ "127.0.0.1", EINVAL },
		{ "127.0.0.1:", EINVAL },
		{ "127.0.0.1:-1", EINVAL },
		{ "127.0.0.1:7x", EINVAL },
		{ "localhost:7", EINVAL },     /* literals only */
		{ "[127.0.0.1]:7", EINVAL },
		{ "256.0.0.1:7", EINVAL },
		{ "*:", EINVAL },
		{ ":7", EINVAL },
		{ "", EINVAL },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct endpoint ep;
		errno = 0;
		cr_expect_eq(parse_endpoint(bad[i].in, &ep), -1,
			     "parse_endpoint(\"%s\") should fail", bad[i].in);
		cr_expect_eq(errno, bad[i].err, "parse_endpoint(\"%s\") errno %d",
			     bad[i].in, errno);
	}
}

Test(parse, ip)
{
	struct endpoint ep;

	cr_expect_eq(parse_ip("127.0.0.1", &ep), 0);
	cr_expect_eq(ep.u.sa.sa_family, AF_INET);
	cr_expect_eq(ntohs(ep.u.in4.sin_port), 0);
	cr_expect_eq(parse_ip(" ::1 ", &ep), 0);
	cr_expect_eq(ep.u.sa.sa_family, AF_INET6);
	cr_expect_eq(parse_ip("fe80::1%lo", &ep), 0);
	cr_expect_eq(ep.u.in6.sin6_scope_id, if_nametoindex("lo"));
	cr_expect_eq(parse_ip("1.2.3", &ep), -1);
	cr_expect_eq(parse_ip("1.2.3.4.5", &ep), -1);
	cr_expect_eq(parse_ip("example.com", &ep), -1);
	cr_expect_eq(parse_ip("[::1]", &ep), -1);
	cr_expect_eq(parse_ip("::1%", &ep), -1);
	cr_expect_eq(parse_ip("1.2.3.4%lo", &ep), -1);
	cr_expect_eq(parse_ip("", &ep), -1);
}

Test(parse, endpoint_list)
{
	struct endpoint *v = NULL;
	char err[256] = "";
	size_t n = 0;

	cr_assert_eq(parse_endpoint_list("127.0.0.1:7, [::1]:7", &v, &n, err, sizeof(err)), 0);
	cr_expect_eq(n, 2);
	cr_expect_eq(v[0].u.sa.sa_family, AF_INET);
	cr_expect_eq(v[1].u.sa.sa_family, AF_INET6);
	free(v);

	/* Same address, other port: not a duplicate. */
	cr_assert_eq(parse_endpoint_list("127.0.0.1:7,127.0.0.1:8", &v, &n, err, sizeof(err)), 0);
	cr_expect_eq(n, 2);
	free(v);

	cr_expect_eq(parse_endpoint_list("127.0.0.1:7, 127.0.0.1:7", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "127.0.0.1:7 is listed twice");
	cr_expect_null(v);
	cr_expect_eq(n, 0);

	cr_expect_eq(parse_endpoint_list("[::1]:7, [0::1]:7", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "[0::1]:7 is listed twice");

	cr_expect_eq(parse_endpoint_list("", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "at least one address is required");
	cr_expect_eq(parse_endpoint_list("127.0.0.1:7,", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "empty element in the list");
	cr_expect_eq(parse_endpoint_list("127.0.0.1:7, ::1:7", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "::1:7 is ambiguous: put IPv6 addresses in brackets, e.g. [::1]:7");
	cr_expect_eq(parse_endpoint_list("127.0.0.1:70000", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "127.0.0.1:70000 has a port out of range (0..65535)");
	cr_expect_eq(parse_endpoint_list("host:7", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "host:7 is not an address:port (e.g. 127.0.0.1:7, [::1]:7, *:7)");
}

Test(parse, endpoint_list_max)
{
	char buf[65 * 20] = "";
	struct endpoint *v;
	char err[256];
	size_t n, used = 0;

	for (int i = 0; i < 64; i++)
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s127.0.0.1:%d",
					 i ? "," : "", 1000 + i);
	cr_assert_eq(parse_endpoint_list(buf, &v, &n, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(n, 64);
	free(v);
	snprintf(buf + used, sizeof(buf) - used, ",127.0.0.1:2000");
	cr_expect_eq(parse_endpoint_list(buf, &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "more than 64 addresses");
}

static void expect_cidr(const char *in, int family, const char *net, unsigned prefix)
{
	struct cidr c;
	char buf[INET6_ADDRSTRLEN] = "";

	cr_assert_eq(parse_cidr(in, &c), 0, "parse_cidr(\"%s\")", in);
	cr_expect_eq(c.family, family, "family of \"%s\"", in);
	inet_ntop(family, c.addr, buf, sizeof(buf));
	cr_expect_str_eq(buf, net, "network of \"%s\"", in);
	cr_expect_eq(c.prefix, prefix, "prefix of \"%s\"", in);
}

Test(parse, cidr)
{
	struct cidr c;

	expect_cidr("10.0.0.0/8", AF_INET, "10.0.0.0", 8);
	expect_cidr(" 192.0.2.7 ", AF_INET, "192.0.2.7", 32);
	expect_cidr("0.0.0.0/0", AF_INET, "0.0.0.0", 0);
	expect_cidr("192.0.2.7/32", AF_INET, "192.0.2.7", 32);
	expect_cidr("::1/128", AF_INET6, "::1", 128);
	expect_cidr("::1", AF_INET6, "::1", 128);
	expect_cidr("fc00::/7", AF_INET6, "fc00::", 7);
	expect_cidr("::/0", AF_INET6, "::", 0);

	errno = 0;
	cr_expect_eq(parse_cidr("10.0.0.0/33", &c), -1);
	cr_expect_eq(errno, ERANGE);
	errno = 0;
	cr_expect_eq(parse_cidr("::/129", &c), -1);
	cr_expect_eq(errno, ERANGE);
	errno = 0;
	cr_expect_eq(parse_cidr("10.0.0.1/8", &c), -1);
	cr_expect_eq(errno, EDOM);
	errno = 0;
	cr_expect_eq(parse_cidr("fd00::1/7", &c), -1);
	cr_expect_eq(errno, EDOM);
	static const char *const bad[] = { "", "/8", "10.0.0.0/", "10.0.0.0/-1",
					   "10.0.0.0/8/8", "10.0.0/8", "host/8",
					   "10.0.0.0/ 8", "fe80::1%lo/64" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_expect_eq(parse_cidr(bad[i], &c), -1, "parse_cidr(\"%s\")", bad[i]);
		cr_expect_eq(errno, EINVAL, "parse_cidr(\"%s\") errno %d", bad[i], errno);
	}
}

Test(parse, cidr_list)
{
	struct cidr *v = NULL;
	char err[256] = "";
	size_t n = 99;

	cr_assert_eq(parse_cidr_list("none", &v, &n, err, sizeof(err)), 0);
	cr_expect_eq(n, 0);
	cr_expect_null(v);
	cr_assert_eq(parse_cidr_list("  ", &v, &n, err, sizeof(err)), 0);
	cr_expect_eq(n, 0);
	cr_assert_eq(parse_cidr_list("NONE", &v, &n, err, sizeof(err)), 0);
	cr_expect_eq(n, 0);

	cr_assert_eq(parse_cidr_list("127.0.0.0/8, ::1/128,10.0.0.0/8", &v, &n, err,
				     sizeof(err)), 0);
	cr_expect_eq(n, 3);
	cr_expect_eq(v[1].family, AF_INET6);
	cr_expect_eq(v[2].prefix, 8);
	free(v);

	cr_expect_eq(parse_cidr_list("127.0.0.0/8, 10.0.0.1/8", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)");
	cr_expect_null(v);
	cr_expect_eq(parse_cidr_list("fe80::1/10", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "fe80::1/10 has host bits set (did you mean fe80::/10?)");
	cr_expect_eq(parse_cidr_list("10.0.0.0/33", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "10.0.0.0/33 has a prefix length out of range (0..32)");
	cr_expect_eq(parse_cidr_list("::/129", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "::/129 has a prefix length out of range (0..128)");
	cr_expect_eq(parse_cidr_list("none, 10.0.0.0/8", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "none is not a CIDR (e.g. 10.0.0.0/8, fc00::/7, 192.0.2.1)");
	cr_expect_eq(parse_cidr_list("10.0.0.0/8,,::1", &v, &n, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "empty element in the list");
}

Test(parse, hostname)
{
	static const char *const good[] = {
		"example.com", "example.com.", "a", "a-b.example", "xn--bcher-kva.example",
		"1a.example", "host1", "EXAMPLE.COM", "127.0.0.1", "::1", "fe80::1%lo",
		"a.b.c.d.e.f.g",
	};
	static const char *const bad[] = {
		"", ".", "..", "a..b", ".a", "-a.example", "a-.example", "a_b.example",
		"a b", " a", "a ", "a/b", "10.0.0.256", "1.2.3", "host:7", "a.b.123",
		"ex*ample.com", "a..", "\xc3\xa9t\xc3\xa9.example",
	};
	char label63[80], label64[80], long253[300], long254[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect(parse_is_hostname(good[i]), "\"%s\" should be a host name", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_not(parse_is_hostname(bad[i]), "\"%s\" should not be a host name",
			      bad[i]);
	cr_expect_not(parse_is_hostname(NULL));

	memset(label63, 'a', 63);
	strcpy(label63 + 63, ".example");
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".example");
	cr_expect(parse_is_hostname(label63));
	cr_expect_not(parse_is_hostname(label64));

	/* 253 characters: labels of 49 + '.' repeated, then a tail. */
	memset(long253, 0, sizeof(long253));
	for (int i = 0; i < 5; i++) {
		memset(long253 + i * 50, 'a', 49);
		long253[i * 50 + 49] = '.';
	}
	memset(long253 + 250, 'b', 3);
	cr_assert_eq(strlen(long253), 253);
	cr_expect(parse_is_hostname(long253));
	strcpy(long254, long253);
	strcat(long254, ".");  /* trailing dot does not count */
	cr_expect(parse_is_hostname(long254));
	long254[253] = 'b';
	long254[254] = '\0';
	cr_expect_not(parse_is_hostname(long254));
}
