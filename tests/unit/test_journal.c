/*
 * Unit tests for the log's native journal protocol: a datagram socket of
 * the test's own stands in for /run/systemd/journal/socket
 * (BEACOND_JOURNAL_SOCKET), and each datagram is parsed by the protocol's
 * rules (FIELD=value lines, or FIELD LF length64le bytes LF).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"

static char dir[] = "/tmp/beacond-test-jrnl-XXXXXX";
static char path[96];
static int sfd = -1;

static void setup(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/journal.sock", dir);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	sfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(sfd >= 0);
	cr_assert_eq(bind(sfd, (struct sockaddr *)&sun, sizeof sun), 0);
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(sfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setenv("BEACOND_JOURNAL_SOCKET", path, 1);
}

static void teardown(void)
{
	log_close();
	unsetenv("BEACOND_JOURNAL_SOCKET");
	close(sfd);
	unlink(path);
	rmdir(dir);
}

struct field {
	char name[64];
	char value[1024];
	size_t len;
};

/* Parse one datagram; returns the number of fields. */
static size_t recv_fields(struct field *f, size_t max)
{
	static char buf[65536];
	ssize_t n = recv(sfd, buf, sizeof buf, 0);
	size_t i = 0, nf = 0;

	cr_assert(n > 0, "no datagram");
	while (i < (size_t)n && nf < max) {
		size_t start = i;
		while (i < (size_t)n && buf[i] != '=' && buf[i] != '\n')
			i++;
		cr_assert(i < (size_t)n);
		cr_assert_lt(i - start, sizeof f[nf].name);
		memcpy(f[nf].name, buf + start, i - start);
		f[nf].name[i - start] = '\0';
		if (buf[i] == '=') {
			size_t vs = ++i;
			while (i < (size_t)n && buf[i] != '\n')
				i++;
			f[nf].len = i - vs;
			memcpy(f[nf].value, buf + vs, f[nf].len);
			i++;
		} else {
			uint64_t len = 0;
			i++;
			cr_assert_leq(i + 8, (size_t)n);
			for (int k = 0; k < 8; k++)
				len |= (uint64_t)(unsigned char)buf[i + k] << (8 * k);
			i += 8;
			cr_assert_leq(i + len + 1, (size_t)n);
			memcpy(f[nf].value, buf + i, len);
			f[nf].len = len;
			i += len;
			cr_assert_eq(buf[i], '\n');
			i++;
		}
		f[nf].value[f[nf].len] = '\0';
		nf++;
	}
	return nf;
}

static const char *get(struct field *f, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(f[i].name, name))
			return f[i].value;
	return NULL;
}

TestSuite(journal, .init = setup, .fini = teardown);

Test(journal, every_key_is_a_field)
{
	char err[256];
	struct field f[64];

	cr_assert_eq(log_setup(LOG_INFO, LOG_FMT_LOGFMT, "journal", err, sizeof err), 0, "%s", err);
	cr_assert(log_native_journal());
	struct logline *l = log_begin(LOG_WARNING, "state");
	log_str(l, "target", "gw");
	log_str(l, "from", "up");
	log_str(l, "to", "down");
	log_u64(l, "lost", 3);
	log_fixed(l, "rtt_ms", 412000, 1000000, 3);
	log_end(l);
	size_t n = recv_fields(f, 64);
	cr_assert_str_eq(get(f, n, "MESSAGE"),
			 "level=warning event=state target=gw from=up to=down lost=3 rtt_ms=0.412");
	cr_assert_str_eq(get(f, n, "PRIORITY"), "4");
	cr_assert_str_eq(get(f, n, "SYSLOG_IDENTIFIER"), "beacond");
	cr_assert_str_eq(get(f, n, "BEACOND_EVENT"), "state");
	cr_assert_str_eq(get(f, n, "BEACOND_TARGET"), "gw");
	cr_assert_str_eq(get(f, n, "BEACOND_LEVEL"), "warning");
	cr_assert_str_eq(get(f, n, "BEACOND_LOST"), "3");
	cr_assert_str_eq(get(f, n, "BEACOND_RTT_MS"), "0.412");
	char id[33];
	log_message_id("state", id);
	cr_assert_str_eq(get(f, n, "MESSAGE_ID"), id);
	cr_assert_eq(strlen(id), 32);

	/* Another event: another id, another priority; the same event again:
	 * the same id. */
	log_msg(LOG_INFO, "summary", "x");
	n = recv_fields(f, 64);
	cr_assert_str_eq(get(f, n, "PRIORITY"), "6");
	cr_assert_str_neq(get(f, n, "MESSAGE_ID"), id);
	log_msg(LOG_NOTICE, "state", "y");
	n = recv_fields(f, 64);
	cr_assert_str_eq(get(f, n, "MESSAGE_ID"), id);
	cr_assert_str_eq(get(f, n, "PRIORITY"), "5");
}

Test(journal, values_with_newlines_use_the_binary_form)
{
	char err[256];
	struct field f[64];

	cr_assert_eq(log_setup(LOG_DEBUG, LOG_FMT_LOGFMT, "journal", err, sizeof err), 0, "%s", err);
	struct logline *l = log_begin(LOG_ERR, "odd");
	log_str(l, "peer_said", "a\nb=c");
	log_str(l, "Weird-Key.x", "v");
	log_end(l);
	size_t n = recv_fields(f, 64);
	cr_assert_str_eq(get(f, n, "BEACOND_PEER_SAID"), "a\nb=c");
	cr_assert_str_eq(get(f, n, "BEACOND_WEIRD_KEY_X"), "v");
	/* MESSAGE stays one escaped line. */
	cr_assert(strstr(get(f, n, "MESSAGE"), "peer_said=\"a\\nb=c\""), "%s", get(f, n, "MESSAGE"));
	cr_assert_str_eq(get(f, n, "PRIORITY"), "3");
}

Test(journal, missing_socket_falls_back_to_the_stream_and_says_why)
{
	char err[256];
	int fds[2];

	setenv("BEACOND_JOURNAL_SOCKET", "/nonexistent/beacond-test/j.sock", 1);
	cr_assert_eq(pipe(fds), 0);
	int saved = dup(2);
	dup2(fds[1], 2);
	int rc = log_setup(LOG_INFO, LOG_FMT_LOGFMT, "journal", err, sizeof err);
	bool native = log_native_journal();
	log_msg(LOG_NOTICE, "hello", "x");
	dup2(saved, 2);
	close(saved);
	close(fds[1]);
	cr_assert_eq(rc, 0);
	cr_assert(!native);
	char buf[4096];
	ssize_t n = read(fds[0], buf, sizeof buf - 1);
	close(fds[0]);
	cr_assert(n > 0);
	buf[n] = '\0';
	cr_assert(strstr(buf, "<4>level=warning event=journal_unavailable reason="), "%s", buf);
	cr_assert(strstr(buf, "/nonexistent/beacond-test/j.sock"), "%s", buf);
	cr_assert(strstr(buf, "\n<5>level=notice event=hello msg=x\n"), "%s", buf);
}
