/* Unit tests for config loading and validation (src/config.c). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"

#define SEC 1000000000ULL

static char tmpdir[PATH_MAX];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/beacond-test-config.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	char cmd[PATH_MAX + 16];

	/* The directory holds only files this test wrote; make the
	 * unreadable one removable first. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

TestSuite(config_file, .init = make_tmpdir, .fini = remove_tmpdir);

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static struct config *parse_ok(const char *text)
{
	struct config *cfg = NULL;
	char err[1024] = "";

	cr_assert_eq(config_parse_string(text, "t.ini", &cfg, err, sizeof(err)), 0,
		     "unexpected error: %s\ninput:\n%s", err, text);
	cr_assert_not_null(cfg);
	return cfg;
}

static void expect_error(const char *text, const char *want)
{
	struct config *cfg = (struct config *)1;
	char err[1024] = "";

	cr_expect_eq(config_parse_string(text, "t.ini", &cfg, err, sizeof(err)), -1,
		     "should fail: %s", text);
	cr_expect_null(cfg);
	cr_expect_str_eq(err, want, "input:\n%s", text);
}

static const char *ntop(const struct endpoint *ep, char *buf, size_t len)
{
	const void *a = ep->u.sa.sa_family == AF_INET ? (const void *)&ep->u.in4.sin_addr
						     : (const void *)&ep->u.in6.sin6_addr;
	return inet_ntop(ep->u.sa.sa_family, a, buf, (socklen_t)len);
}

static unsigned port_of(const struct endpoint *ep)
{
	return ntohs(ep->u.sa.sa_family == AF_INET ? ep->u.in4.sin_port
						   : ep->u.in6.sin6_port);
}

Test(config, control_socket_group_and_journal_target)
{
	struct config *cfg = parse_ok("[daemon]\nlog_target = journal\ncontrol_socket = /tmp/x/c.sock\n"
				      "control_group = beacond-ctl\n");
	cr_expect_str_eq(cfg->daemon.log_target, "journal");
	cr_expect_str_eq(cfg->daemon.control_socket, "/tmp/x/c.sock");
	cr_expect_str_eq(cfg->daemon.control_group, "beacond-ctl");
	config_free(cfg);
	cfg = parse_ok("[daemon]\ncontrol_socket =\n");
	cr_expect_str_eq(cfg->daemon.control_socket, "");
	config_free(cfg);
}

Test(config, defaults_from_empty_string)
{
	struct config *cfg = parse_ok("");
	char a[INET6_ADDRSTRLEN];

	cr_expect_str_eq(cfg->path, "t.ini");
	cr_expect_eq(cfg->daemon.log_level, LOG_INFO);
	cr_expect_eq(cfg->daemon.log_format, LOG_FMT_LOGFMT);
	cr_expect_str_eq(cfg->daemon.log_target, "auto");
	cr_expect_str_eq(cfg->daemon.control_socket, "/run/beacond/control.sock");
	cr_expect_str_eq(cfg->daemon.control_group, "");
	cr_expect_eq(cfg->daemon.shutdown_timeout_ns, 10 * SEC);
	cr_expect_eq(cfg->daemon.stats_interval_ns, 60 * SEC);

	cr_expect(cfg->tcp.enabled);
	cr_assert_eq(cfg->tcp.n_listen, 2);
	cr_expect_str_eq(ntop(&cfg->tcp.listen[0], a, sizeof(a)), "127.0.0.1");
	cr_expect_eq(port_of(&cfg->tcp.listen[0]), 7);
	cr_expect_str_eq(ntop(&cfg->tcp.listen[1], a, sizeof(a)), "::1");
	cr_expect_eq(port_of(&cfg->tcp.listen[1]), 7);
	cr_expect_eq(cfg->tcp.mode, MODE_ECHO);
	cr_expect_eq(cfg->tcp.max_connections, 4096);
	cr_expect_eq(cfg->tcp.idle_timeout_ns, 300 * SEC);
	cr_expect_eq(cfg->tcp.max_pending, 65536);
	cr_expect_eq(cfg->tcp.backlog, 511);
	cr_expect_eq(cfg->tcp.allow.n, 8);
	cr_expect(cfg->tcp.nodelay);
	cr_expect_not(cfg->tcp.keepalive);

	cr_expect(cfg->udp.enabled);
	cr_expect_eq(cfg->udp.n_listen, 2);
	cr_expect_eq(cfg->udp.mode, MODE_ECHO);
	cr_expect_eq(cfg->udp.allow.n, 8);
	cr_expect_eq(cfg->udp.rate_limit, 100);
	cr_expect_eq(cfg->udp.rate_burst, 200);
	cr_expect_eq(cfg->udp.rate_table_size, 4096);
	cr_expect_eq(cfg->udp.recv_buffer, 0);

	cr_expect_eq(cfg->icmp.socket, ICMP_SOCKET_AUTO);
	cr_expect_eq(cfg->icmp.defaults.interval_ns, 1 * SEC);
	cr_expect_eq(cfg->icmp.defaults.timeout_ns, 1 * SEC);
	cr_expect_eq(cfg->icmp.defaults.summary_interval_ns, 60 * SEC);
	cr_expect_eq(cfg->icmp.defaults.payload_size, 56);
	cr_expect_eq(cfg->icmp.defaults.ttl, 64);
	cr_expect_eq(cfg->icmp.defaults.tos, 0);
	cr_expect(cfg->icmp.defaults.dont_fragment);
	cr_expect_eq(cfg->icmp.defaults.down_after, 3);
	cr_expect_eq(cfg->icmp.defaults.up_after, 2);
	cr_expect_not(cfg->icmp.defaults.log_replies);
	cr_expect_eq(cfg->n_targets, 0);
	config_free(cfg);
}

Test(config, default_allow_list_contents)
{
	struct config *cfg = parse_ok("");
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	static const char *const allowed[] = { "127.0.0.1", "10.9.9.9", "172.31.0.1",
					       "192.168.1.1", "169.254.1.1" };
	static const char *const denied[] = { "8.8.8.8", "172.32.0.1", "192.0.2.1" };

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		inet_pton(AF_INET, allowed[i], &in4.sin_addr);
		cr_expect(acl_allows(&cfg->tcp.allow, (struct sockaddr *)&in4), "%s", allowed[i]);
		cr_expect(acl_allows(&cfg->udp.allow, (struct sockaddr *)&in4), "%s", allowed[i]);
	}
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		inet_pton(AF_INET, denied[i], &in4.sin_addr);
		cr_expect_not(acl_allows(&cfg->udp.allow, (struct sockaddr *)&in4), "%s", denied[i]);
	}
	inet_pton(AF_INET6, "fd12::1", &in6.sin6_addr);
	cr_expect(acl_allows(&cfg->udp.allow, (struct sockaddr *)&in6));
	inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
	cr_expect_not(acl_allows(&cfg->udp.allow, (struct sockaddr *)&in6));
	config_free(cfg);
}

Test(config, full_valid)
{
	static const char text[] =
		"; a full configuration\n"
		"# with both comment styles\n"
		"[daemon]\n"
		"log_level = debug\n"
		"log_format = JSON\n"
		"log_target = /var/log/beacond.log\n"
		"shutdown_timeout = 2s\n"
		"stats_interval = 0\n"
		"\n"
		"[tcp]\n"
		"enabled = yes\n"
		"listen = 127.0.0.1:7007, [::1]:7007, *:7008, [::]:0\n"
		"mode = discard\n"
		"max_connections = 1000000\n"
		"idle_timeout = 0\n"
		"max_pending = 1KiB\n"
		"backlog = 65535\n"
		"allow = 127.0.0.0/8 ; inline comment\n"
		"nodelay = off\n"
		"keepalive = on   # another inline comment\n"
		"\n"
		"[udp]\n"
		"enabled = true\n"
		"listen = 127.0.0.1:7007\n"
		"mode = echo\n"
		"allow = none\n"
		"rate_limit = 1000000\n"
		"rate_burst = 10000000\n"
		"rate_table_size = 64\n"
		"recv_buffer = 256MiB\n"
		"\n"
		"[icmp]\n"
		"socket = dgram\n"
		"interval = 10ms\n"
		"timeout = 1ms\n"
		"payload_size = 65000\n"
		"ttl = 255\n"
		"tos = 184\n"
		"dont_fragment = no\n"
		"down_after = 1000\n"
		"up_after = 1\n"
		"summary_interval = 1d\n"
		"log_replies = yes\n"
		"\n"
		"[target gw-1.example_net]\n"
		"host = gw.example.net\n"
		"family = both\n"
		"interface = eth0\n"
		"interval = 1h\n"
		"\n"
		"[target v4]\n"
		"host = 192.0.2.1\n"
		"family = 4\n"
		"source = 192.0.2.100\n"
		"ttl = 1\n"
		"dont_fragment = yes\n";
	struct config *cfg = parse_ok(text);
	char a[INET6_ADDRSTRLEN];

	cr_expect_eq(cfg->daemon.log_level, LOG_DEBUG);
	cr_expect_eq(cfg->daemon.log_format, LOG_FMT_JSON);
	cr_expect_str_eq(cfg->daemon.log_target, "/var/log/beacond.log");
	cr_expect_eq(cfg->daemon.shutdown_timeout_ns, 2 * SEC);
	cr_expect_eq(cfg->daemon.stats_interval_ns, 0);

	cr_assert_eq(cfg->tcp.n_listen, 4);
	cr_expect_eq(port_of(&cfg->tcp.listen[1]), 7007);
	cr_expect_str_eq(ntop(&cfg->tcp.listen[2], a, sizeof(a)), "0.0.0.0");
	cr_expect_str_eq(ntop(&cfg->tcp.listen[3], a, sizeof(a)), "::");
	cr_expect_eq(port_of(&cfg->tcp.listen[3]), 0);
	cr_expect_eq(cfg->tcp.mode, MODE_DISCARD);
	cr_expect_eq(cfg->tcp.max_connections, 1000000);
	cr_expect_eq(cfg->tcp.idle_timeout_ns, 0);
	cr_expect_eq(cfg->tcp.max_pending, 1024);
	cr_expect_eq(cfg->tcp.backlog, 65535);
	cr_expect_eq(cfg->tcp.allow.n, 1);
	cr_expect_not(cfg->tcp.nodelay);
	cr_expect(cfg->tcp.keepalive);

	cr_expect_eq(cfg->udp.n_listen, 1);
	cr_expect_eq(cfg->udp.allow.n, 0);
	cr_expect_eq(cfg->udp.rate_limit, 1000000);
	cr_expect_eq(cfg->udp.rate_burst, 10000000);
	cr_expect_eq(cfg->udp.rate_table_size, 64);
	cr_expect_eq(cfg->udp.recv_buffer, 256ULL << 20);

	cr_expect_eq(cfg->icmp.socket, ICMP_SOCKET_DGRAM);
	cr_expect_eq(cfg->icmp.defaults.interval_ns, 10000000);
	cr_expect_eq(cfg->icmp.defaults.timeout_ns, 1000000);
	cr_expect_eq(cfg->icmp.defaults.payload_size, 65000);
	cr_expect_eq(cfg->icmp.defaults.ttl, 255);
	cr_expect_eq(cfg->icmp.defaults.tos, 184);
	cr_expect_not(cfg->icmp.defaults.dont_fragment);
	cr_expect_eq(cfg->icmp.defaults.down_after, 1000);
	cr_expect_eq(cfg->icmp.defaults.up_after, 1);
	cr_expect_eq(cfg->icmp.defaults.summary_interval_ns, 86400 * SEC);
	cr_expect(cfg->icmp.defaults.log_replies);

	cr_assert_eq(cfg->n_targets, 2);
	cr_expect_str_eq(cfg->targets[0].name, "gw-1.example_net");
	cr_expect_str_eq(cfg->targets[0].host, "gw.example.net");
	cr_expect_eq(cfg->targets[0].family, FAMILY_BOTH);
	cr_expect_str_eq(cfg->targets[0].interface, "eth0");
	cr_expect_not(cfg->targets[0].has_source);
	cr_expect_eq(cfg->targets[0].opts.interval_ns, 3600 * SEC);
	cr_expect_eq(cfg->targets[0].opts.ttl, 255);
	cr_expect_not(cfg->targets[0].opts.dont_fragment);
	cr_expect_eq(cfg->targets[0].line, 45);

	cr_expect_str_eq(cfg->targets[1].name, "v4");
	cr_expect_eq(cfg->targets[1].family, FAMILY_4);
	cr_expect(cfg->targets[1].has_source);
	cr_expect_str_eq(ntop(&cfg->targets[1].source, a, sizeof(a)), "192.0.2.100");
	cr_expect_eq(port_of(&cfg->targets[1].source), 0);
	cr_expect_null(cfg->targets[1].interface);
	cr_expect_eq(cfg->targets[1].opts.ttl, 1);
	cr_expect(cfg->targets[1].opts.dont_fragment);
	cr_expect_eq(cfg->targets[1].opts.interval_ns, 10000000);
	cr_expect(cfg->targets[1].opts.log_replies);
	cr_expect_eq(cfg->targets[1].line, 51);
	config_free(cfg);
}

Test(config, targets_inherit_icmp_set_later)
{
	static const char text[] =
		"[target early]\n"
		"host = 127.0.0.1\n"
		"timeout = 300ms\n"
		"log_replies = no\n"
		"\n"
		"[icmp]\n"
		"interval = 250ms\n"
		"timeout = 2s\n"
		"ttl = 9\n"
		"log_replies = yes\n"
		"\n"
		"[target late]\n"
		"host = ::1\n"
		"ttl = 200\n";
	struct config *cfg = parse_ok(text);

	cr_assert_eq(cfg->n_targets, 2);
	/* "early" comes before [icmp] yet inherits its values... */
	cr_expect_eq(cfg->targets[0].opts.interval_ns, 250000000);
	cr_expect_eq(cfg->targets[0].opts.ttl, 9);
	/* ...except the ones it sets itself. */
	cr_expect_eq(cfg->targets[0].opts.timeout_ns, 300000000);
	cr_expect_not(cfg->targets[0].opts.log_replies);
	cr_expect_eq(cfg->targets[0].opts.payload_size, 56);

	cr_expect_eq(cfg->targets[1].opts.interval_ns, 250000000);
	cr_expect_eq(cfg->targets[1].opts.timeout_ns, 2 * SEC);
	cr_expect_eq(cfg->targets[1].opts.ttl, 200);
	cr_expect(cfg->targets[1].opts.log_replies);
	cr_expect_eq(cfg->icmp.defaults.ttl, 9);
	config_free(cfg);
}

Test(config, rate_burst_default_follows_rate_limit)
{
	struct config *cfg;

	cfg = parse_ok("[udp]\nrate_limit = 7\n");
	cr_expect_eq(cfg->udp.rate_burst, 14);
	config_free(cfg);
	cfg = parse_ok("[udp]\nrate_limit = 0\n");
	cr_expect_eq(cfg->udp.rate_burst, 1);
	config_free(cfg);
	cfg = parse_ok("[udp]\nrate_burst = 3\nrate_limit = 50\n");
	cr_expect_eq(cfg->udp.rate_burst, 3);
	config_free(cfg);
}

Test(config, syntax_variants_accepted)
{
	struct config *cfg;

	/* BOM, CRLF line endings, indentation, ':' separator, tabs, a final
	 * line without newline, trailing comment after a header. */
	cfg = parse_ok("\xEF\xBB\xBF[tcp] ; the tcp service\r\n"
		       "  backlog = 5\r\n"
		       "\tmode: discard\r\n"
		       "[ target   spaced ]\n"
		       "host\t=\texample.com.\n"
		       "[udp]\n"
		       "enabled = No");
	cr_expect_eq(cfg->tcp.backlog, 5);
	cr_expect_eq(cfg->tcp.mode, MODE_DISCARD);
	cr_assert_eq(cfg->n_targets, 1);
	cr_expect_str_eq(cfg->targets[0].name, "spaced");
	cr_expect_str_eq(cfg->targets[0].host, "example.com.");
	cr_expect_not(cfg->udp.enabled);
	config_free(cfg);

	/* A 64-character target name is the longest allowed. */
	cfg = parse_ok("[target aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n"
		       "host = a\n");
	cr_expect_eq(strlen(cfg->targets[0].name), 64);
	config_free(cfg);

	/* Empty sections are fine. */
	cfg = parse_ok("[daemon]\n[tcp]\n[udp]\n[icmp]\n");
	config_free(cfg);
}

Test(config, structure_errors)
{
	expect_error("[tpc]\n", "t.ini:1: unknown section [tpc]");
	expect_error("[daemon]\nlog_level = info\n\n[ icmp6 ]\n",
		     "t.ini:4: unknown section [icmp6]");
	expect_error("[tcp extra]\n", "t.ini:1: unknown section [tcp extra]");
	expect_error("[tcp]\nidel_timeout = 5m\n",
		     "t.ini:2: [tcp] unknown key \"idel_timeout\" (did you mean \"idle_timeout\"?)");
	expect_error("[icmp]\nintervall = 1s\n",
		     "t.ini:2: [icmp] unknown key \"intervall\" (did you mean \"interval\"?)");
	expect_error("[tcp]\nfrobnicate = 1\n", "t.ini:2: [tcp] unknown key \"frobnicate\"");
	expect_error("[target a]\nhost = a\nsocket = raw\n",
		     "t.ini:3: [target a] unknown key \"socket\" (it belongs in [icmp])");
	expect_error("[daemon]\nrate_limit = 5\n",
		     "t.ini:2: [daemon] unknown key \"rate_limit\" (it belongs in [udp] or [stamp])");
	expect_error("[tcp]\nbacklog = 1\nmode = echo\nbacklog = 2\n",
		     "t.ini:4: [tcp] duplicate key \"backlog\" (first set on line 2)");
	expect_error("[target a]\nhost = a\nttl = 3\nttl = 4\n",
		     "t.ini:4: [target a] duplicate key \"ttl\" (first set on line 3)");
	expect_error("log_level = debug\n[daemon]\n",
		     "t.ini:1: key \"log_level\" outside of any section (add a [section] header above it)");
	expect_error("[tcp]\nbacklog = 5\n[udp]\n[tcp]\n",
		     "t.ini:4: duplicate section [tcp] (first on line 1)");
	expect_error("[target web]\nhost = a\n\n[target web]\nhost = b\n",
		     "t.ini:4: duplicate section [target web] (first on line 1)");
	expect_error("[target]\nhost = a\n", "t.ini:1: [target] needs a name, e.g. [target gateway]");
	expect_error("[target a/b]\nhost = a\n",
		     "t.ini:1: invalid target name \"a/b\" (1..64 characters of A-Z a-z 0-9 . _ -)");
	expect_error("[target two words]\nhost = a\n",
		     "t.ini:1: invalid target name \"two words\" (1..64 characters of A-Z a-z 0-9 . _ -)");
	expect_error("[target aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
		     "t.ini:1: invalid target name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" "
		     "(1..64 characters of A-Z a-z 0-9 . _ -)");
	expect_error("[daemon]\n\n[target web]\ninterval = 2s\n\n[tcp]\n",
		     "t.ini:3: [target web] missing required key \"host\"");
	expect_error("[target web]\n", "t.ini:1: [target web] missing required key \"host\"");
	expect_error("[tcp]\nbacklog\n",
		     "t.ini:2: syntax error: expected \"key = value\", \"[section]\" or a comment");
	expect_error("[tcp]\n= 5\n", "t.ini:2: syntax error: missing key name before \"=\"");
	expect_error("[tcp\nbacklog = 5\n", "t.ini:1: syntax error: missing \"]\" in section header");
	expect_error("[tcp] backlog = 5\n",
		     "t.ini:1: syntax error: unexpected text after section header");
}

Test(config, value_errors)
{
	expect_error("[tcp]\nidle_timeout = 5 parsecs\n",
		     "t.ini:2: [tcp] idle_timeout: \"5 parsecs\" is not a duration (e.g. 30s, 500ms, 5m)");
	expect_error("[daemon]\nshutdown_timeout = 10\n",
		     "t.ini:2: [daemon] shutdown_timeout: \"10\" is not a duration (e.g. 30s, 500ms, 5m)");
	expect_error("[tcp]\nbacklog = 70000\n",
		     "t.ini:2: [tcp] backlog: 70000 is out of range (1..65535)");
	expect_error("[tcp]\nbacklog = 0\n", "t.ini:2: [tcp] backlog: 0 is out of range (1..65535)");
	expect_error("[tcp]\nbacklog = 99999999999999999999999\n",
		     "t.ini:2: [tcp] backlog: 99999999999999999999999 is out of range (1..65535)");
	expect_error("[tcp]\nbacklog = lots\n", "t.ini:2: [tcp] backlog: \"lots\" is not a whole number");
	expect_error("[tcp]\nbacklog = -1\n", "t.ini:2: [tcp] backlog: \"-1\" is not a whole number");
	expect_error("[tcp]\nnodelay = maybe\n",
		     "t.ini:2: [tcp] nodelay: \"maybe\" is not a boolean (yes/no, true/false, on/off, 1/0)");
	expect_error("[tcp]\nmax_pending = 64 KB\n",
		     "t.ini:2: [tcp] max_pending: \"64 KB\" is not a size (e.g. 512, 64KiB, 1MiB)");
	expect_error("[tcp]\nmax_pending = 128MiB\n",
		     "t.ini:2: [tcp] max_pending: 128MiB is out of range (1KiB..64MiB)");
	expect_error("[tcp]\nmax_pending = 1023\n",
		     "t.ini:2: [tcp] max_pending: 1023 is out of range (1KiB..64MiB)");
	expect_error("[tcp]\nidle_timeout = 8d\n",
		     "t.ini:2: [tcp] idle_timeout: 8d is out of range (0 or 1s..7d)");
	expect_error("[tcp]\nmax_connections = 1000001\n",
		     "t.ini:2: [tcp] max_connections: 1000001 is out of range (1..1000000)");
	expect_error("[tcp]\nmode = chargen\n",
		     "t.ini:2: [tcp] mode: \"chargen\" is not one of echo, discard");
	expect_error("[tcp]\nlisten = 127.0.0.1:7, ::1:7\n",
		     "t.ini:2: [tcp] listen: ::1:7 is ambiguous: put IPv6 addresses in brackets, e.g. [::1]:7");
	expect_error("[tcp]\nlisten =\n",
		     "t.ini:2: [tcp] listen: at least one address is required (set enabled = no to turn the service off)");
	expect_error("[udp]\nlisten = 127.0.0.1:7, 127.0.0.1:7\n",
		     "t.ini:2: [udp] listen: 127.0.0.1:7 is listed twice");
	expect_error("[udp]\nlisten = 127.0.0.1:65536\n",
		     "t.ini:2: [udp] listen: 127.0.0.1:65536 has a port out of range (0..65535)");
	expect_error("[udp]\nallow = 127.0.0.0/8, 10.0.0.1/8\n",
		     "t.ini:2: [udp] allow: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)");
	expect_error("[tcp]\nallow = 10.0.0.0/33\n",
		     "t.ini:2: [tcp] allow: 10.0.0.0/33 has a prefix length out of range (0..32)");
	expect_error("[udp]\nrate_burst = 0\n",
		     "t.ini:2: [udp] rate_burst: 0 is out of range (1..10000000)");
	expect_error("[udp]\nrate_limit = 1000001\n",
		     "t.ini:2: [udp] rate_limit: 1000001 is out of range (0..1000000)");
	expect_error("[udp]\nrate_table_size = 63\n",
		     "t.ini:2: [udp] rate_table_size: 63 is out of range (64..1048576)");
	expect_error("[udp]\nrecv_buffer = 257MiB\n",
		     "t.ini:2: [udp] recv_buffer: 257MiB is out of range (0..256MiB)");
	expect_error("[daemon]\nlog_level = loud\n",
		     "t.ini:2: [daemon] log_level: \"loud\" is not one of debug, info, notice, warning, error");
	expect_error("[daemon]\nlog_format = xml\n",
		     "t.ini:2: [daemon] log_format: \"xml\" is not one of logfmt, json");
	expect_error("[daemon]\nlog_target = var/log/beacond.log\n",
		     "t.ini:2: [daemon] log_target: \"var/log/beacond.log\" is not auto, stderr, journal or an absolute path");
	expect_error("[daemon]\ncontrol_socket = run/c.sock\n",
		     "t.ini:2: [daemon] control_socket: \"run/c.sock\" is not an absolute path of at most 107 bytes (or empty for no control socket)");
	expect_error("[daemon]\ncontrol_group = 9lives\n",
		     "t.ini:2: [daemon] control_group: \"9lives\" is not a group name (letters, digits, \"_.-\", at most 32, not starting with a digit or \"-\")");
	expect_error("[daemon]\ncontrol_group = a b\n",
		     "t.ini:2: [daemon] control_group: \"a b\" is not a group name (letters, digits, \"_.-\", at most 32, not starting with a digit or \"-\")");
	expect_error("[daemon]\nstats_interval = 500ms\n",
		     "t.ini:2: [daemon] stats_interval: 500ms is out of range (0 or 1s..1d)");
	expect_error("[daemon]\nshutdown_timeout = 2h\n",
		     "t.ini:2: [daemon] shutdown_timeout: 2h is out of range (0..1h)");
	expect_error("[icmp]\nsocket = packet\n",
		     "t.ini:2: [icmp] socket: \"packet\" is not one of auto, dgram, raw");
	expect_error("[icmp]\ninterval = 5ms\n",
		     "t.ini:2: [icmp] interval: 5ms is out of range (10ms..1h)");
	expect_error("[icmp]\ninterval = 99999999999999h\n",
		     "t.ini:2: [icmp] interval: 99999999999999h is out of range (10ms..1h)");
	expect_error("[icmp]\ntimeout = 0\n", "t.ini:2: [icmp] timeout: 0 is out of range (1ms..1h)");
	expect_error("[icmp]\npayload_size = 65001\n",
		     "t.ini:2: [icmp] payload_size: 65001 is out of range (0..65000)");
	expect_error("[icmp]\nttl = 0\n", "t.ini:2: [icmp] ttl: 0 is out of range (1..255)");
	expect_error("[icmp]\ntos = 256\n", "t.ini:2: [icmp] tos: 256 is out of range (0..255)");
	expect_error("[icmp]\ndown_after = 1001\n",
		     "t.ini:2: [icmp] down_after: 1001 is out of range (1..1000)");
	expect_error("[icmp]\nup_after = 0\n", "t.ini:2: [icmp] up_after: 0 is out of range (1..1000)");
	expect_error("[icmp]\nsummary_interval = 2d\n",
		     "t.ini:2: [icmp] summary_interval: 2d is out of range (0 or 1s..1d)");
	expect_error("[icmp]\nlog_replies = sometimes\n",
		     "t.ini:2: [icmp] log_replies: \"sometimes\" is not a boolean (yes/no, true/false, on/off, 1/0)");
	/* A "#" or ";" without a space before it is part of the value. */
	expect_error("[icmp]\ninterval = 1s#fast\n",
		     "t.ini:2: [icmp] interval: \"1s#fast\" is not a duration (e.g. 30s, 500ms, 5m)");
}

Test(config, target_errors)
{
	expect_error("[target a]\nhost = bad_host\n",
		     "t.ini:2: [target a] host: \"bad_host\" is not an IP address or a valid host name");
	expect_error("[target a]\nhost = 10.0.0.256\n",
		     "t.ini:2: [target a] host: \"10.0.0.256\" is not an IP address or a valid host name");
	expect_error("[target a]\nhost = a\nfamily = 5\n",
		     "t.ini:3: [target a] family: \"5\" is not one of auto, 4, 6, both");
	expect_error("[target a]\nhost = a\nsource = example.com\n",
		     "t.ini:3: [target a] source: \"example.com\" is not an IP address");
	expect_error("[target a]\nhost = a\ninterface = eth0/1\n",
		     "t.ini:3: [target a] interface: \"eth0/1\" is not an interface name (1..15 characters, no \"/\" or spaces)");
	expect_error("[target a]\nhost = a\ninterface = abcdefghijklmnop\n",
		     "t.ini:3: [target a] interface: \"abcdefghijklmnop\" is not an interface name (1..15 characters, no \"/\" or spaces)");
	expect_error("[target a]\nhost = a\ninterval = 1ms\n",
		     "t.ini:3: [target a] interval: 1ms is out of range (10ms..1h)");
	expect_error("[target a]\nfamily = 4\nhost = ::1\n",
		     "t.ini:3: [target a] family: 4 contradicts host \"::1\", an IPv6 address");
	expect_error("[target a]\nhost = 127.0.0.1\nfamily = 6\n[tcp]\n",
		     "t.ini:3: [target a] family: 6 contradicts host \"127.0.0.1\", an IPv4 address");
	expect_error("[target a]\nhost = 127.0.0.1\nfamily = both\n",
		     "t.ini:3: [target a] family: both contradicts host \"127.0.0.1\", an IPv4 address (both needs a host name)");
	expect_error("[target a]\nhost = a.example\nsource = ::1\nfamily = 4\n",
		     "t.ini:4: [target a] source: \"::1\" is an IPv6 address but family = 4");
	expect_error("[target a]\nhost = a.example\nfamily = both\nsource = 10.0.0.1\n",
		     "t.ini:4: [target a] source: one source address cannot serve family = both");
	expect_error("[target a]\nsource = ::1\nhost = 10.0.0.1\n",
		     "t.ini:3: [target a] source: \"::1\" is an IPv6 address but host \"10.0.0.1\" is an IPv4 address");
}

Test(config, first_error_wins)
{
	expect_error("[tcp]\nbacklog = 0\nmode = bogus\n[bogus]\n",
		     "t.ini:2: [tcp] backlog: 0 is out of range (1..65535)");
	expect_error("[tcp]\nnoval\nbacklog = 0\n",
		     "t.ini:2: syntax error: expected \"key = value\", \"[section]\" or a comment");
}

Test(config, control_characters)
{
	struct config *cfg = NULL;
	char err[512];
	static const char nul[] = "[tcp]\nbacklog = 5\nmode = ec\0ho\n";

	expect_error("[tcp]\nbacklog = 5\x01\n",
		     "t.ini:2: invalid control character 0x01 (is this a text file?)");
	expect_error("[tcp]\n; a comment with an escape \x1b[31m\n",
		     "t.ini:2: invalid control character 0x1b (is this a text file?)");
	expect_error("[tcp]\nbacklog = 5\rmode = echo\n",
		     "t.ini:2: invalid control character 0x0d (is this a text file?)");
	cr_expect_eq(config_parse_buffer(nul, sizeof(nul) - 1, "n.ini", &cfg, err, sizeof(err)), -1);
	cr_expect_null(cfg);
	cr_expect_str_eq(err, "n.ini:3: invalid control character 0x00 (is this a text file?)");
}

/* A deterministic generator so a failure can be reproduced. */
static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void expect_clean_result(int r, struct config *cfg, const char *err,
				const char *name)
{
	if (r == 0) {
		cr_expect_not_null(cfg);
		config_free(cfg);
		return;
	}
	cr_expect_eq(r, -1);
	cr_expect_null(cfg);
	cr_expect_eq(strncmp(err, name, strlen(name)), 0, "message must name the file: %s", err);
	cr_expect_eq(err[strlen(name)], ':', "message must be NAME:...: %s", err);
}

Test(config, binary_garbage)
{
	uint32_t seed = 0x5eed1234;
	static char buf[4096];

	/* Random bytes, NULs included, and random bytes drawn from INI
	 * punctuation: every input must give a config or a clean error. */
	for (int round = 0; round < 300; round++) {
		struct config *cfg = NULL;
		char err[512] = "";
		size_t len = xorshift(&seed) % sizeof(buf);
		int r;

		for (size_t i = 0; i < len; i++) {
			static const char alphabet[] = "[]=:;# \n\ttarget tcp udp host a1.,/";
			uint32_t x = xorshift(&seed);
			buf[i] = round % 2 == 0 ? (char)(x & 0xff)
						: alphabet[x % (sizeof(alphabet) - 1)];
		}
		r = config_parse_buffer(buf, len, "g.ini", &cfg, err, sizeof(err));
		expect_clean_result(r, cfg, err, "g.ini");
	}
}

Test(config, binary_garbage_file, .init = make_tmpdir, .fini = remove_tmpdir)
{
	char path[PATH_MAX + 32], err[512] = "";
	struct config *cfg = (struct config *)1;
	char data[2048];
	uint32_t seed = 42;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(xorshift(&seed) & 0xff);
	data[10] = '\0';  /* at least one NUL */
	snprintf(path, sizeof(path), "%s/garbage.ini", tmpdir);
	write_file(path, data, sizeof(data));
	cr_expect_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_expect_null(cfg);
	cr_expect_eq(strncmp(err, path, strlen(path)), 0, "%s", err);
	cr_expect_not_null(strstr(err, "invalid control character"), "%s", err);
}

Test(config_file, missing_file)
{
	char path[PATH_MAX + 32], want[PATH_MAX + 96], err[PATH_MAX + 128];
	struct config *cfg = (struct config *)1;

	snprintf(path, sizeof(path), "%s/nope.ini", tmpdir);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_expect_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_expect_null(cfg);
	cr_expect_str_eq(err, want);
}

Test(config_file, directory)
{
	char want[PATH_MAX + 96], err[PATH_MAX + 128];
	struct config *cfg = (struct config *)1;

	snprintf(want, sizeof(want), "%s: is a directory", tmpdir);
	cr_expect_eq(config_load(tmpdir, &cfg, err, sizeof(err)), -1);
	cr_expect_null(cfg);
	cr_expect_str_eq(err, want);
}

Test(config_file, unreadable)
{
	char path[PATH_MAX + 32], want[PATH_MAX + 96], err[PATH_MAX + 128];
	struct config *cfg = (struct config *)1;

	if (geteuid() == 0) {
		/* A skipped test does not reach the suite's .fini. */
		remove_tmpdir();
		cr_skip_test("root can read a mode-000 file");
	}
	snprintf(path, sizeof(path), "%s/secret.ini", tmpdir);
	write_file(path, "[tcp]\n", 6);
	cr_assert_eq(chmod(path, 0), 0);
	snprintf(want, sizeof(want), "%s: cannot open: Permission denied", path);
	cr_expect_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_expect_null(cfg);
	cr_expect_str_eq(err, want);
}

Test(config_file, empty_file)
{
	char path[PATH_MAX + 32], err[512] = "";
	struct config *cfg = NULL;

	snprintf(path, sizeof(path), "%s/empty.ini", tmpdir);
	write_file(path, "", 0);
	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(cfg->path, path);
	cr_expect_eq(cfg->tcp.backlog, 511);
	cr_expect_eq(cfg->n_targets, 0);
	config_free(cfg);
}

Test(config_file, error_names_the_path)
{
	char path[PATH_MAX + 32], want[PATH_MAX + 128], err[PATH_MAX + 256];
	struct config *cfg = NULL;
	static const char text[] = "[daemon]\nlog_level = info\n\n[tcp]\nbacklog = 70000\n";

	snprintf(path, sizeof(path), "%s/beacond.ini", tmpdir);
	write_file(path, text, sizeof(text) - 1);
	snprintf(want, sizeof(want), "%s:5: [tcp] backlog: 70000 is out of range (1..65535)", path);
	cr_expect_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_expect_str_eq(err, want);
}

Test(config_file, ten_megabytes_of_targets)
{
	char path[PATH_MAX + 32], err[512] = "";
	struct config *cfg = NULL;
	size_t written = 0, n = 0;
	char host[32];
	FILE *f;

	/* ~10 MB: [icmp] at the end so every target inherits from it. */
	snprintf(path, sizeof(path), "%s/big.ini", tmpdir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	while (written < 10 * 1000 * 1000) {
		int len = fprintf(f, "[target t%zu]\nhost = 10.%zu.%zu.%zu\n%s\n", n,
				  (n >> 16) & 255, (n >> 8) & 255, n & 255,
				  n % 2 ? "ttl = 7 ; odd targets override the ttl" : "; even ones inherit");
		cr_assert_gt(len, 0);
		written += (size_t)len;
		n++;
	}
	fprintf(f, "[icmp]\nttl = 33\ninterval = 5s\n");
	cr_assert_eq(fclose(f), 0);

	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cfg->n_targets, n);
	cr_expect_str_eq(cfg->targets[0].name, "t0");
	cr_expect_eq(cfg->targets[0].opts.ttl, 33);
	cr_expect_eq(cfg->targets[1].opts.ttl, 7);
	cr_expect_eq(cfg->targets[n - 1].opts.interval_ns, 5 * SEC);
	snprintf(host, sizeof(host), "10.%zu.%zu.%zu", ((n - 1) >> 16) & 255,
		 ((n - 1) >> 8) & 255, (n - 1) & 255);
	cr_expect_str_eq(cfg->targets[n - 1].host, host);
	cr_expect_eq(cfg->targets[n - 1].line, 3 * (n - 1) + 1);
	config_free(cfg);

	/* The same file with one duplicate name appended fails, naming both
	 * lines, and frees everything on the way out. */
	f = fopen(path, "a");
	cr_assert_not_null(f);
	fprintf(f, "[target t12345]\nhost = a\n");
	cr_assert_eq(fclose(f), 0);
	cr_expect_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_expect_not_null(strstr(err, "duplicate section [target t12345] (first on line 37036)"),
			   "%s", err);
}

Test(config_file, ten_megabytes_of_comments)
{
	char path[PATH_MAX + 32], err[512] = "";
	struct config *cfg = NULL;
	char line[128];
	FILE *f;

	memset(line, 'x', sizeof(line) - 2);
	line[0] = '#';
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = '\0';
	snprintf(path, sizeof(path), "%s/comments.ini", tmpdir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	for (int i = 0; i < 10 * 1000 * 1000 / 127; i++)
		fputs(line, f);
	fputs("[tcp]\nbacklog = 9\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg->tcp.backlog, 9);
	config_free(cfg);
}

Test(config_file, larger_than_16_mib)
{
	char path[PATH_MAX + 32], want[PATH_MAX + 96], err[PATH_MAX + 128];
	struct config *cfg = (struct config *)1;
	int fd;

	snprintf(path, sizeof(path), "%s/huge.ini", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (16 << 20) + 1), 0);
	close(fd);
	snprintf(want, sizeof(want), "%s: file is larger than 16 MiB", path);
	cr_expect_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_expect_null(cfg);
	cr_expect_str_eq(err, want);
}

Test(config, line_length_limit)
{
	/* inih's line buffer is 64 KiB + 3 here (see config.c); a line that
	 * does not fit must be refused, never split into several lines. */
	size_t limit = 65536;
	char *text = malloc(limit + 64);
	struct config *cfg = NULL;
	char err[512] = "";

	cr_assert_not_null(text);
	/* Exactly at the limit: a comment line of 65536 bytes, then a key. */
	strcpy(text, "[tcp]\n");
	memset(text + 6, ';', limit);
	strcpy(text + 6 + limit, "\nbacklog = 77\n");
	cr_assert_eq(config_parse_string(text, "l.ini", &cfg, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg->tcp.backlog, 77);
	config_free(cfg);

	/* One byte more. */
	memset(text + 6, ';', limit + 1);
	strcpy(text + 6 + limit + 1, "\nbacklog = 77\n");
	cfg = NULL;
	cr_expect_eq(config_parse_string(text, "l.ini", &cfg, err, sizeof(err)), -1);
	cr_expect_null(cfg);
	cr_expect_str_eq(err, "l.ini:2: line is too long (more than 65536 bytes)");

	/* A long value whose tail alone would be a valid line. */
	text = realloc(text, 2 * limit);
	cr_assert_not_null(text);
	strcpy(text, "[tcp]\nallow = 10.0.0.0/8");
	memset(text + 24, ' ', limit);
	strcpy(text + 24 + limit, "192.168.0.0/16\nbacklog = 5\n");
	cr_expect_eq(config_parse_string(text, "l.ini", &cfg, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "l.ini:2: line is too long (more than 65536 bytes)");
	free(text);
}

Test(config, library_knobs_restored)
{
	int max_line = ini_max_line;
	bool multiline = ini_allow_multiline, stop = ini_stop_on_first_error;
	char *prefixes = ini_inline_comment_prefixes;
	struct config *cfg = parse_ok("[tcp]\nbacklog = 5\n");

	/* Other users of inih in the process see its settings again. */
	cr_expect_eq(ini_max_line, max_line);
	cr_expect_eq(ini_allow_multiline, multiline);
	cr_expect_eq(ini_stop_on_first_error, stop);
	cr_expect_eq(ini_inline_comment_prefixes, prefixes);
	config_free(cfg);
	expect_error("[tcp]\nbacklog = 0\n", "t.ini:2: [tcp] backlog: 0 is out of range (1..65535)");
	cr_expect_eq(ini_max_line, max_line);
	cr_expect_eq(ini_allow_multiline, multiline);
}

static void reference_path(char *buf, size_t len)
{
	const char *root = getenv("BEACOND_SOURCE_ROOT");

	if (root != NULL) {
		snprintf(buf, len, "%s/conf/beacond.ini", root);
	} else {
		/* __FILE__ is relative to the build directory, where meson
		 * runs the tests. */
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", __FILE__);
		*strrchr(dir, '/') = '\0';
		snprintf(buf, len, "%s/../../conf/beacond.ini", dir);
	}
}

Test(config, reference_file_loads)
{
	char path[PATH_MAX + 64], err[1024] = "";
	struct config *cfg = NULL;
	char a[INET6_ADDRSTRLEN];

	reference_path(path, sizeof(path));
	cr_assert_eq(access(path, R_OK), 0, "conf/beacond.ini not found at %s", path);
	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), 0, "%s", err);
	/* scripts/run uses it as is on loopback, on unprivileged ports. */
	cr_assert_eq(cfg->tcp.n_listen, 2);
	cr_expect_str_eq(ntop(&cfg->tcp.listen[0], a, sizeof(a)), "127.0.0.1");
	cr_expect_eq(port_of(&cfg->tcp.listen[0]), 7007);
	cr_expect_str_eq(ntop(&cfg->tcp.listen[1], a, sizeof(a)), "::1");
	cr_expect_eq(port_of(&cfg->tcp.listen[1]), 7007);
	cr_assert_eq(cfg->udp.n_listen, 2);
	cr_expect_eq(port_of(&cfg->udp.listen[0]), 7007);
	cr_expect_eq(cfg->daemon.log_level, LOG_INFO);
	cr_expect_eq(cfg->daemon.stats_interval_ns, 60 * SEC);
	cr_expect_eq(cfg->icmp.defaults.interval_ns, 1 * SEC);
	cr_expect_eq(cfg->tcp.allow.n, 8);
	cr_assert_eq(cfg->n_targets, 2);
	cr_expect_str_eq(cfg->targets[0].name, "loopback4");
	cr_expect_str_eq(cfg->targets[0].host, "127.0.0.1");
	cr_expect_str_eq(cfg->targets[1].name, "loopback6");
	cr_expect_str_eq(cfg->targets[1].host, "::1");
	config_free(cfg);
}

Test(config, dns_servers_and_resolve_interval)
{
	struct config *cfg = parse_ok("");
	cr_expect_null(cfg->daemon.dns_servers, "default: /etc/resolv.conf");
	cr_expect_eq(cfg->icmp.defaults.resolve_interval_ns, 300 * SEC);
	config_free(cfg);

	cfg = parse_ok("[daemon]\ndns_servers = 127.0.0.1, [::1]:5353 ,10.0.0.53:53\n"
		       "[icmp]\nresolve_interval = 30s\n"
		       "[target a]\nhost = example.org\n"
		       "[target b]\nhost = example.net\nresolve_interval = 2s\n");
	cr_expect_str_eq(cfg->daemon.dns_servers, "127.0.0.1:53,[::1]:5353,10.0.0.53:53");
	cr_expect_eq(cfg->targets[0].opts.resolve_interval_ns, 30 * SEC);
	cr_expect_eq(cfg->targets[1].opts.resolve_interval_ns, 2 * SEC);
	config_free(cfg);

	cfg = parse_ok("[daemon]\ndns_servers =\n");
	cr_expect_null(cfg->daemon.dns_servers, "empty: back to resolv.conf");
	config_free(cfg);

	expect_error("[daemon]\ndns_servers = ns1.example\n",
		     "t.ini:2: [daemon] dns_servers: \"ns1.example\" is not an IP address or address:port");
	expect_error("[daemon]\ndns_servers = 1.2.3.4,,5.6.7.8\n",
		     "t.ini:2: [daemon] dns_servers: \"1.2.3.4,,5.6.7.8\" is not a list of DNS server addresses (e.g. 127.0.0.1, [::1]:5353)");
	expect_error("[icmp]\nresolve_interval = 500ms\n",
		     "t.ini:2: [icmp] resolve_interval: 500ms is out of range (1s..1d)");
}

static void expect_error_has(const char *text, const char *want)
{
	struct config *cfg = NULL;
	char err[1024] = "";

	cr_expect_eq(config_parse_string(text, "t.ini", &cfg, err, sizeof(err)), -1,
		     "should fail: %s", text);
	cr_expect_null(cfg);
	cr_expect_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

Test(config, stamp_defaults_and_keys)
{
	struct config *cfg = parse_ok("");
	cr_assert_not(cfg->stamp.enabled, "off unless asked for");
	cr_assert_eq(cfg->stamp.n_listen, 2);
	cr_assert_eq(ntohs(cfg->stamp.listen[0].u.in4.sin_port), 862);
	cr_assert_eq(ntohs(cfg->stamp.listen[1].u.in6.sin6_port), 862);
	cr_assert_eq(cfg->stamp.allow.n, cfg->udp.allow.n, "the echo services' ranges");
	cr_assert_eq(cfg->stamp.mode, STAMP_STATELESS);
	cr_assert_eq(cfg->stamp.short_requests, STAMP_SHORT_REPLY);
	cr_assert_eq(cfg->stamp.class_of_service, STAMP_COS_KEEP);
	cr_assert_eq(cfg->stamp.rate_limit, 100);
	cr_assert_eq(cfg->stamp.rate_burst, 200);
	cr_assert_eq(cfg->stamp.sessions, 1024);
	cr_assert_eq(cfg->stamp.session_timeout_ns, 300 * SEC);
	config_free(cfg);

	cfg = parse_ok("[stamp]\nenabled = yes\nlisten = 0.0.0.0:8862\nmode = stateful\n"
		       "sessions = 10\nsession_timeout = 30s\nshort_requests = drop\n"
		       "rate_limit = 7\nallow = 10.0.0.0/8\nrate_table_size = 64\n"
		       "class_of_service = apply\n");
	cr_assert_eq(cfg->stamp.class_of_service, STAMP_COS_APPLY);
	cr_assert(cfg->stamp.enabled);
	cr_assert_eq(cfg->stamp.n_listen, 1);
	cr_assert_eq(cfg->stamp.mode, STAMP_STATEFUL);
	cr_assert_eq(cfg->stamp.sessions, 10);
	cr_assert_eq(cfg->stamp.session_timeout_ns, 30 * SEC);
	cr_assert_eq(cfg->stamp.short_requests, STAMP_SHORT_DROP);
	cr_assert_eq(cfg->stamp.rate_burst, 14, "burst follows [stamp] rate_limit");
	cr_assert_eq(cfg->udp.rate_burst, 200, "and not [udp]'s");
	cr_assert_eq(cfg->stamp.allow.n, 1);
	cr_assert_eq(cfg->stamp.rate_table_size, 64);
	config_free(cfg);

	expect_error_has("[stamp]\nmode = reflective\n", "[stamp] mode");
	expect_error_has("[stamp]\nshort_requests = maybe\n", "[stamp] short_requests");
	expect_error_has("[stamp]\nsessions = 0\n", "[stamp] sessions");
	expect_error_has("[stamp]\nclass_of_service = sometimes\n", "[stamp] class_of_service");
	expect_error_has("[stamp]\nsession_timeout = 0\n", "[stamp] session_timeout");
	expect_error_has("[stamp]\nenabled = yes\nlisten = \n", "[stamp] listen");
	expect_error_has("[stamp]\n[stamp]\n", "stamp");
}
