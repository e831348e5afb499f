/* Unit tests for allow-list matching (src/acl.c). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"

static struct acl make_acl(const char *list)
{
	struct acl acl = { NULL, 0 };
	char err[256];

	cr_assert_eq(parse_cidr_list(list, &acl.v, &acl.n, err, sizeof(err)), 0,
		     "parse_cidr_list(\"%s\"): %s", list, err);
	return acl;
}

static bool allows(const struct acl *acl, const char *addr)
{
	struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons(7) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(7) };

	if (inet_pton(AF_INET, addr, &in4.sin_addr) == 1)
		return acl_allows(acl, (const struct sockaddr *)&in4);
	cr_assert_eq(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1, "bad test address %s", addr);
	return acl_allows(acl, (const struct sockaddr *)&in6);
}

Test(acl, ipv4)
{
	struct acl acl = make_acl("127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.0.2.7");

	cr_expect(allows(&acl, "127.0.0.1"));
	cr_expect(allows(&acl, "127.255.255.255"));
	cr_expect(allows(&acl, "10.1.2.3"));
	cr_expect(allows(&acl, "172.16.0.1"));
	cr_expect(allows(&acl, "172.31.255.255"));
	cr_expect_not(allows(&acl, "172.32.0.0"));
	cr_expect_not(allows(&acl, "172.15.255.255"));
	cr_expect(allows(&acl, "192.0.2.7"));
	cr_expect_not(allows(&acl, "192.0.2.8"));
	cr_expect_not(allows(&acl, "128.0.0.1"));
	cr_expect_not(allows(&acl, "11.0.0.0"));
	/* An IPv4 list says nothing about IPv6 peers. */
	cr_expect_not(allows(&acl, "::1"));
	free(acl.v);
}

Test(acl, ipv6)
{
	struct acl acl = make_acl("::1/128, fc00::/7, fe80::/10, 2001:db8:1::/48");

	cr_expect(allows(&acl, "::1"));
	cr_expect_not(allows(&acl, "::2"));
	cr_expect(allows(&acl, "fc00::1"));
	cr_expect(allows(&acl, "fdff:ffff::1"));
	cr_expect_not(allows(&acl, "fe00::1"));
	cr_expect(allows(&acl, "fe80::1"));
	cr_expect(allows(&acl, "febf:ffff::1"));
	cr_expect_not(allows(&acl, "fec0::1"));
	cr_expect(allows(&acl, "2001:db8:1:ffff::1"));
	cr_expect_not(allows(&acl, "2001:db8:2::1"));
	cr_expect_not(allows(&acl, "127.0.0.1"));
	free(acl.v);
}

Test(acl, ipv4_mapped)
{
	struct acl acl = make_acl("127.0.0.0/8, ::1/128");
	struct acl v6only = make_acl("::1/128");
	struct acl mapped_net = make_acl("::ffff:10.0.0.0/104");

	/* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. */
	cr_expect(allows(&acl, "::ffff:127.0.0.1"));
	cr_expect(allows(&acl, "::ffff:127.9.9.9"));
	cr_expect_not(allows(&acl, "::ffff:10.0.0.1"));
	cr_expect_not(allows(&v6only, "::ffff:127.0.0.1"));
	/* IPv4-compatible (deprecated) addresses are not mapped ones. */
	cr_expect_not(allows(&acl, "::127.0.0.1"));
	/* An IPv6 entry written in mapped form still matches as IPv6. */
	cr_expect(allows(&mapped_net, "::ffff:10.1.2.3"));
	cr_expect_not(allows(&mapped_net, "10.1.2.3"));
	free(acl.v);
	free(v6only.v);
	free(mapped_net.v);
}

Test(acl, empty_allows_nothing)
{
	struct acl none = make_acl("none");
	struct acl zero = { NULL, 0 };

	cr_expect_eq(none.n, 0);
	cr_expect_not(allows(&none, "127.0.0.1"));
	cr_expect_not(allows(&none, "::1"));
	cr_expect_not(allows(&zero, "127.0.0.1"));
	cr_expect_not(acl_allows(NULL, NULL));
}

Test(acl, prefix_zero)
{
	struct acl any4 = make_acl("0.0.0.0/0");
	struct acl any6 = make_acl("::/0");

	cr_expect(allows(&any4, "1.2.3.4"));
	cr_expect(allows(&any4, "255.255.255.255"));
	cr_expect(allows(&any4, "::ffff:8.8.8.8"));
	cr_expect_not(allows(&any4, "2001:db8::1"));
	cr_expect(allows(&any6, "2001:db8::1"));
	cr_expect(allows(&any6, "::ffff:8.8.8.8"));
	cr_expect_not(allows(&any6, "8.8.8.8"));
	free(any4.v);
	free(any6.v);
}

Test(acl, odd_prefixes)
{
	struct acl acl = make_acl("192.168.1.128/25, 2001:db8::8000/113");

	cr_expect(allows(&acl, "192.168.1.128"));
	cr_expect(allows(&acl, "192.168.1.255"));
	cr_expect_not(allows(&acl, "192.168.1.127"));
	cr_expect(allows(&acl, "2001:db8::8000"));
	cr_expect(allows(&acl, "2001:db8::ffff"));
	cr_expect_not(allows(&acl, "2001:db8::7fff"));
	free(acl.v);
}

Test(acl, other_family)
{
	struct acl acl = make_acl("0.0.0.0/0, ::/0");
	struct sockaddr sa = { .sa_family = AF_UNIX };

	cr_expect_not(acl_allows(&acl, &sa));
	free(acl.v);
}

Test(acl, copy_is_independent)
{
	struct acl src = make_acl("10.0.0.0/8, ::1/128");
	struct acl dst;

	cr_assert_eq(acl_copy(&dst, &src), 0);
	cr_assert_eq(dst.n, 2);
	cr_assert_neq(dst.v, src.v);
	free(src.v);                 /* the config goes away on reload */
	cr_expect(allows(&dst, "10.1.2.3"));
	cr_expect(allows(&dst, "::1"));
	cr_expect_not(allows(&dst, "192.0.2.1"));
	acl_free(&dst);              /* empty again: allows no one, freed twice safely */
	cr_expect_eq(dst.n, 0);
	cr_expect_null(dst.v);
	cr_expect_not(allows(&dst, "10.1.2.3"));
	acl_free(&dst);

	struct acl empty = { NULL, 0 };
	cr_assert_eq(acl_copy(&dst, &empty), 0);
	cr_expect_eq(dst.n, 0);
	cr_expect_null(dst.v);
}
