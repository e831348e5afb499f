/* probe: matching, timeouts, errors and the up/down state, driven with
 * synthetic replies, a fake clock and a fake send function -- no sockets,
 * no root. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

#define MS NSEC_PER_MSEC
#define IDENT 0x4242
#define COOKIE 0x1122334455667788ULL

struct fx {
	struct probe_ctx c;          /* first: the callbacks get it back */
	struct probe *slots[2];
	void *hook_slots[2];
	struct probe_sock sock;
	struct probe_opts opts;
	struct target *t;
	struct probe *pr;
	uint64_t now;
	int send_errno;
	int sends;
	uint16_t last_seq;
	uint64_t woke;
	int outcomes, lost_outcomes;
	uint64_t last_rtt;
	/* on_state: calls, the last change, outcomes reported before it. */
	int states;
	enum health_state from, to;
	int outcomes_at_state;
	int devnull;
};

static struct fx *fx_of(struct probe_ctx *c)
{
	return container_of(c, struct fx, c);
}

static int fake_send(struct probe_ctx *c, struct probe *pr, uint16_t seq, uint64_t deadline,
		     uint64_t *t0)
{
	struct fx *f = fx_of(c);

	(void)pr;
	cr_assert_leq(deadline, f->now);
	*t0 = f->now;
	f->sends++;
	f->last_seq = seq;
	return f->send_errno;
}

static void fake_wake_at(struct probe_ctx *c, uint64_t wake)
{
	fx_of(c)->woke = wake;
}

static uint64_t fake_now(struct probe_ctx *c)
{
	return fx_of(c)->now;
}

static const struct probe_io fake_io = { fake_send, fake_wake_at, fake_now };

static void on_outcome(void *arg, void **slot, const struct view_probe_src *src,
		       uint64_t now_ns, uint64_t rtt_ns)
{
	struct fx *f = arg;
	struct view_probe_key k = view_probe_key(src), *key = &k;

	(void)slot;
	cr_assert_str_eq(key->target, "t1");
	cr_assert_eq(view_probe_family(src), 4);
	cr_assert_eq(now_ns, f->now);
	f->outcomes++;
	if (rtt_ns == STATS_NO_RTT)
		f->lost_outcomes++;
	f->last_rtt = rtt_ns;
}

static void on_state(void *arg, void **slot, const struct view_probe_src *src,
		     uint64_t now_ns, enum health_state from, enum health_state to)
{
	struct fx *f = arg;
	struct view_probe_key k = view_probe_key(src), *key = &k;

	cr_assert_eq(slot, &f->hook_slots[0]);
	cr_assert_str_eq(key->target, "t1");
	cr_assert_str_eq(key->host, "192.0.2.1");
	cr_assert_eq(key->family, 4);
	cr_assert_eq(now_ns, f->now);
	cr_assert_neq(from, to);
	/* The probe's own state has moved already. */
	cr_assert_eq(f->pr->health.state, to);
	f->states++;
	f->from = from;
	f->to = to;
	f->outcomes_at_state = f->outcomes;
}

static void addr4(union inet_sa *a, const char *ip)
{
	memset(a, 0, sizeof *a);
	a->in4.sin_family = AF_INET;
	cr_assert_eq(inet_pton(AF_INET, ip, &a->in4.sin_addr), 1);
}

static struct fx *fx_new(uint32_t down_after, uint32_t up_after)
{
	struct fx *f = calloc(1, sizeof *f);
	union inet_sa a;

	f->devnull = open("/dev/null", O_WRONLY);
	log_setup(LOG_DEBUG, LOG_FMT_LOGFMT, "stderr", NULL, 0);
	log_set_fd(f->devnull);
	f->now = 1000 * NSEC_PER_SEC;
	f->c.io = &fake_io;
	f->c.slots = f->slots;
	f->c.n_slots = 1;
	f->c.cookie = COOKIE;
	f->c.hook_slots = f->hook_slots;
	f->c.hooks.on_outcome = on_outcome;
	f->c.hooks.on_state = on_state;
	f->c.hooks.arg = f;
	wheel_init(&f->c.wheel, MS, f->now);
	f->sock.map = seqmap_new(2 * NSEC_PER_SEC);
	f->sock.ident = IDENT;
	f->sock.family = 4;
	f->opts = (struct probe_opts){
		/* An hour: a test's sends are its own (send_one). */
		.interval_ns = 3600 * NSEC_PER_SEC, .timeout_ns = 500 * MS, .payload_size = 56,
		.down_after = down_after, .up_after = up_after, .log_replies = true,
		.history = true,   /* the hook hears only targets with a history */
	};
	/* A target as pinger_plan lays it out: the struct, its probe, the
	 * strings. */
	f->t = calloc(1, target_strings_at(1) + sizeof "t1" + sizeof "192.0.2.1");
	f->t->opts = &f->opts;
	f->t->n_probes = 1;
	memcpy((char *)f->t + target_strings_at(1), "t1\0" "192.0.2.1", sizeof "t1\0" "192.0.2.1");
	addr4(&a, "192.0.2.1");
	f->pr = &f->t->probes[0];
	probe_init(f->t, 0, 4, &a);
	f->pr->sock = &f->sock;
	f->pr->id = 0;
	f->slots[0] = f->pr;
	return f;
}

static void fx_free(struct fx *f)
{
	probe_unlink(&f->c, f->pr);
	probe_fini(f->pr);
	seqmap_free(f->sock.map);
	free(f->t->hist);
	free(f->t);
	log_set_fd(2);
	close(f->devnull);
	free(f);
}

/* Send now (the probe is due at f->now). */
static uint16_t send_one(struct fx *f)
{
	int before = f->sends;

	probe_send_at(&f->c, f->pr, f->now);
	probe_run(&f->c, f->now);
	cr_assert_eq(f->sends, before + 1);
	return f->last_seq;
}

/* An echo reply as a datagram socket delivers it (no IP header). */
static size_t reply(uint8_t *buf, uint16_t ident, uint16_t seq, uint64_t cookie, size_t payload)
{
	size_t n = icmp_echo_encode(4, buf, 2048, ident, seq, cookie, payload);

	buf[0] = 0; /* echo reply */
	return n;
}

static void answer(struct fx *f, uint16_t seq, const char *from, uint64_t rx_ns)
{
	uint8_t buf[2048];
	union inet_sa a;
	size_t n = reply(buf, IDENT, seq, COOKIE, 56);

	addr4(&a, from);
	probe_on_datagram(&f->c, &f->sock, buf, n, &a, rx_ns);
}

Test(probe, reply_in_time_counts_rtt_and_hooks)
{
	struct fx *f = fx_new(3, 2);
	uint16_t seq;

	probe_send_at(&f->c, f->pr, f->now);
	cr_assert_eq(f->woke, f->now);
	seq = send_one(f);
	cr_assert_eq(f->pr->stats.run.c.sent, 1);
	answer(f, seq, "192.0.2.1", f->now + 3 * MS);
	cr_assert_eq(f->pr->stats.run.c.received, 1);
	cr_assert_eq(f->pr->stats.last_rtt_ns, 3 * MS);
	cr_assert_eq(f->outcomes, 1);
	cr_assert_eq(f->last_rtt, 3 * MS);
	/* Next send due one interval later: the probe waits for it. */
	cr_assert(wheel_linked(&f->pr->node));
	cr_assert_eq(f->pr->node.wake, f->now + f->opts.interval_ns);
	fx_free(f);
}

Test(probe, duplicate_reply)
{
	struct fx *f = fx_new(3, 2);
	uint16_t seq = send_one(f);

	answer(f, seq, "192.0.2.1", f->now + 1 * MS);
	answer(f, seq, "192.0.2.1", f->now + 2 * MS);
	answer(f, seq, "192.0.2.1", f->now + 3 * MS);
	cr_assert_eq(f->pr->stats.run.c.received, 1);
	cr_assert_eq(f->pr->stats.run.c.duplicates, 2);
	cr_assert_eq(f->outcomes, 1);
	fx_free(f);
}

Test(probe, late_reply_before_and_after_the_timeout_ran)
{
	struct fx *f = fx_new(3, 2);
	uint16_t s1 = send_one(f), s2;
	uint64_t t1 = f->now;

	/* After its timeout, before the timeout was processed: lost + late. */
	answer(f, s1, "192.0.2.1", t1 + 600 * MS);
	cr_assert_eq(f->pr->stats.run.c.received, 0);
	cr_assert_eq(f->pr->stats.run.c.lost, 1);
	cr_assert_eq(f->pr->stats.run.c.late, 1);
	cr_assert_eq(f->lost_outcomes, 1);
	/* The timeout, processed by the wheel: lost once, then a late reply. */
	f->now += 1000 * MS;
	s2 = send_one(f);
	f->now += 500 * MS;
	probe_run(&f->c, f->now);
	cr_assert_eq(f->pr->stats.run.c.lost, 2);
	answer(f, s2, "192.0.2.1", f->now + 100 * MS);
	cr_assert_eq(f->pr->stats.run.c.late, 2);
	cr_assert_eq(f->pr->stats.run.c.lost, 2);
	/* ... and a second copy of it is a duplicate, not late again. */
	answer(f, s2, "192.0.2.1", f->now + 101 * MS);
	cr_assert_eq(f->pr->stats.run.c.late, 2);
	cr_assert_eq(f->pr->stats.run.c.duplicates, 1);
	cr_assert_eq(f->lost_outcomes, 2);
	fx_free(f);
}

Test(probe, sequence_reuse_after_wrap)
{
	struct fx *f = fx_new(3, 2);
	uint16_t first = 0, seq = 0;
	bool wrapped = false;

	/* 70 000 requests, each answered: the 16-bit numbers wrap, and every
	 * reply still matches its own request. */
	f->opts.interval_ns = 10 * MS;
	f->opts.timeout_ns = 5 * MS;
	f->opts.log_replies = false;
	seqmap_set_hold(f->sock.map, 6 * MS);
	for (int i = 0; i < 70000; i++) {
		seq = send_one(f);
		if (i == 0)
			first = seq;
		else if (seq == first)
			wrapped = true;
		answer(f, seq, "192.0.2.1", f->now + 1 * MS);
		f->now += 10 * MS;
	}
	cr_assert(wrapped, "sequence numbers never came round");
	cr_assert_eq(f->pr->stats.run.c.received, 70000);
	cr_assert_eq(f->pr->stats.run.c.duplicates, 0);
	/* A repeat of the last reply is a duplicate, not a new answer. */
	answer(f, seq, "192.0.2.1", f->now);
	cr_assert_eq(f->pr->stats.run.c.duplicates, 1);
	cr_assert_eq(f->pr->stats.run.c.received, 70000);
	fx_free(f);
}

Test(probe, replies_that_match_nothing_are_ignored)
{
	struct fx *f = fx_new(3, 2);
	uint16_t seq = send_one(f);
	uint8_t buf[2048];
	union inet_sa a;
	size_t n;

	answer(f, seq, "192.0.2.9", f->now + 1 * MS);
	cr_assert_eq(f->c.ignored[VIEW_IGN_SOURCE], 1);
	answer(f, (uint16_t)(seq + 1), "192.0.2.1", f->now + 1 * MS);
	cr_assert_eq(f->c.ignored[VIEW_IGN_SEQ], 1);
	addr4(&a, "192.0.2.1");
	n = reply(buf, IDENT + 1, seq, COOKIE, 56);
	probe_on_datagram(&f->c, &f->sock, buf, n, &a, f->now + 1 * MS);
	cr_assert_eq(f->c.ignored[VIEW_IGN_IDENT], 1);
	n = reply(buf, IDENT, seq, COOKIE ^ 1, 56);
	probe_on_datagram(&f->c, &f->sock, buf, n, &a, f->now + 1 * MS);
	cr_assert_eq(f->c.ignored[VIEW_IGN_COOKIE], 1);
	n = reply(buf, IDENT, seq, COOKIE, 40);
	probe_on_datagram(&f->c, &f->sock, buf, n, &a, f->now + 1 * MS);
	cr_assert_eq(f->c.ignored[VIEW_IGN_LENGTH], 1);
	probe_on_datagram(&f->c, &f->sock, buf, 3, &a, f->now + 1 * MS);
	cr_assert_eq(f->c.ignored[VIEW_IGN_DECODE], 1);
	n = reply(buf, IDENT, seq, COOKIE, 56);
	buf[0] = 8; /* an echo request */
	probe_on_datagram(&f->c, &f->sock, buf, n, &a, f->now + 1 * MS);
	cr_assert_eq(f->c.ignored[VIEW_IGN_UNSOLICITED], 1);
	cr_assert_eq(f->c.ignored_total, 7);
	/* None of that touched the probe; the real reply still counts. */
	cr_assert_eq(f->pr->stats.run.c.received, 0);
	answer(f, seq, "192.0.2.1", f->now + 1 * MS);
	cr_assert_eq(f->pr->stats.run.c.received, 1);
	fx_free(f);
}

Test(probe, icmp_error_attribution)
{
	struct fx *f = fx_new(3, 2);
	uint16_t seq = send_one(f);
	uint8_t dst[16] = { 192, 0, 2, 1 }, other[16] = { 192, 0, 2, 7 };
	union inet_sa router;

	addr4(&router, "198.51.100.1");
	probe_on_error(&f->c, &f->sock, IDENT + 1, seq, dst, &router,
		       ICMP_REASON_HOST_UNREACHABLE, 0);
	cr_assert_eq(f->c.ignored[VIEW_IGN_IDENT], 1);
	probe_on_error(&f->c, &f->sock, IDENT, (uint16_t)(seq + 5), dst, &router,
		       ICMP_REASON_HOST_UNREACHABLE, 0);
	cr_assert_eq(f->c.ignored[VIEW_IGN_SEQ], 1);
	probe_on_error(&f->c, &f->sock, IDENT, seq, other, &router,
		       ICMP_REASON_HOST_UNREACHABLE, 0);
	cr_assert_eq(f->c.ignored[VIEW_IGN_SOURCE], 1);
	cr_assert_eq(f->pr->stats.run.c.errors, 0);
	/* The right one: an error, and the request is lost at once. */
	probe_on_error(&f->c, &f->sock, IDENT, seq, dst, &router, ICMP_REASON_FRAG_NEEDED, 1400);
	cr_assert_eq(f->pr->stats.run.c.errors, 1);
	cr_assert_eq(f->pr->stats.run.c.lost, 1);
	cr_assert_eq(probe_icmp_errors(f->pr, VIEW_ICMP_TOO_BIG), 1);
	cr_assert_eq(f->lost_outcomes, 1);
	/* A second error about it counts as an error, not as a second loss. */
	probe_on_error(&f->c, &f->sock, IDENT, seq, dst, NULL, ICMP_REASON_TTL_EXCEEDED, 0);
	cr_assert_eq(f->pr->stats.run.c.errors, 2);
	cr_assert_eq(f->pr->stats.run.c.lost, 1);
	cr_assert_eq(probe_icmp_errors(f->pr, VIEW_ICMP_TIME_EXCEEDED), 1);
	/* The timeout passing later loses nothing more. */
	f->now += 600 * MS;
	probe_run(&f->c, f->now);
	cr_assert_eq(f->pr->stats.run.c.lost, 1);
	fx_free(f);
}

Test(probe, icmp_error_groups)
{
	static const struct { enum icmp_reason r; enum view_icmp_err g; } cases[] = {
		{ ICMP_REASON_NET_UNREACHABLE, VIEW_ICMP_UNREACHABLE },
		{ ICMP_REASON_PORT_UNREACHABLE, VIEW_ICMP_UNREACHABLE },
		{ ICMP_REASON_ADMIN_PROHIBITED, VIEW_ICMP_PROHIBITED },
		{ ICMP_REASON_REJECT_ROUTE, VIEW_ICMP_PROHIBITED },
		{ ICMP_REASON_PACKET_TOO_BIG, VIEW_ICMP_TOO_BIG },
		{ ICMP_REASON_REASSEMBLY_TIMEOUT, VIEW_ICMP_TIME_EXCEEDED },
		{ ICMP_REASON_PARAM_PROBLEM, VIEW_ICMP_OTHER },
	};
	uint8_t dst[16] = { 192, 0, 2, 1 };

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fx *f = fx_new(3, 2);
		uint16_t seq = send_one(f);

		probe_on_error(&f->c, &f->sock, IDENT, seq, dst, NULL, cases[i].r, 0);
		cr_assert_eq(probe_icmp_errors(f->pr, cases[i].g), 1, "reason %d", cases[i].r);
		for (int g = 0; g < VIEW_ICMP_COUNT_; g++)
			if (g != (int)cases[i].g)
				cr_assert_eq(probe_icmp_errors(f->pr, g), 0);
		fx_free(f);
	}
}

Test(probe, send_errors_by_reason)
{
	static const struct { int err; enum view_send_err g; } cases[] = {
		{ EMSGSIZE, VIEW_SEND_TOO_BIG },        /* dont_fragment, too big */
		{ EHOSTUNREACH, VIEW_SEND_UNREACHABLE },
		{ ENETDOWN, VIEW_SEND_UNREACHABLE },
		{ ENOBUFS, VIEW_SEND_NO_BUFFER },
		{ EPERM, VIEW_SEND_PERMISSION },
		{ EINVAL, VIEW_SEND_OTHER },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fx *f = fx_new(3, 2);
		uint16_t seq;

		f->send_errno = cases[i].err;
		seq = send_one(f);
		cr_assert_eq(probe_send_errors(f->pr, cases[i].g), 1, "errno %d", cases[i].err);
		cr_assert_eq(f->pr->stats.run.c.sent, 1);
		cr_assert_eq(f->pr->stats.run.c.lost, 1);
		cr_assert_eq(f->pr->stats.run.c.errors, 1);
		cr_assert_eq(f->lost_outcomes, 1);
		/* The number was given back, nothing is in flight. */
		cr_assert_eq(seqmap_get(f->sock.map, seq).state, SEQ_FREE);
		cr_assert_eq(seqmap_front(&f->pr->chain), -1);
		fx_free(f);
	}
}

Test(probe, no_socket_fails_every_send)
{
	struct fx *f = fx_new(1, 1);

	f->pr->sock = NULL;
	probe_send_at(&f->c, f->pr, f->now);
	probe_run(&f->c, f->now);
	cr_assert_eq(f->sends, 0);
	cr_assert_eq(probe_send_errors(f->pr, VIEW_SEND_NO_SOCKET), 1);
	cr_assert_eq(f->pr->health.state, HEALTH_DOWN);
	fx_free(f);
}

Test(probe, hysteresis_both_ways)
{
	struct fx *f = fx_new(3, 2);
	uint16_t seq;

	/* Two replies: up. */
	for (int i = 0; i < 2; i++) {
		seq = send_one(f);
		answer(f, seq, "192.0.2.1", f->now + 1 * MS);
		f->now += 1000 * MS;
	}
	cr_assert_eq(f->pr->health.state, HEALTH_UP);
	cr_assert_eq(f->pr->state_changes, 1);
	cr_assert_gt(f->pr->state_since_s, 0);
	/* The hook saw it, before the outcome that caused it. */
	cr_assert_eq(f->states, 1);
	cr_assert_eq(f->from, HEALTH_UNKNOWN);
	cr_assert_eq(f->to, HEALTH_UP);
	cr_assert_eq(f->outcomes_at_state, 1);
	cr_assert_eq(f->outcomes, 2);
	/* Two losses are not enough, a reply resets the run... */
	for (int i = 0; i < 2; i++) {
		send_one(f);
		f->now += 1000 * MS;
		probe_run(&f->c, f->now);
	}
	cr_assert_eq(f->pr->health.state, HEALTH_UP);
	seq = send_one(f);
	answer(f, seq, "192.0.2.1", f->now + 1 * MS);
	/* ... then three in a row: down. */
	for (int i = 0; i < 3; i++) {
		f->now += 1000 * MS;
		send_one(f);
	}
	f->now += 600 * MS;
	probe_run(&f->c, f->now);
	cr_assert_eq(f->pr->health.state, HEALTH_DOWN);
	cr_assert_eq(f->pr->state_changes, 2);
	cr_assert_eq(f->states, 2);
	cr_assert_eq(f->from, HEALTH_UP);
	cr_assert_eq(f->to, HEALTH_DOWN);
	/* One reply is not enough to come back, two are. */
	f->now += 1000 * MS;
	seq = send_one(f);
	answer(f, seq, "192.0.2.1", f->now + 1 * MS);
	cr_assert_eq(f->pr->health.state, HEALTH_DOWN);
	f->now += 1000 * MS;
	seq = send_one(f);
	answer(f, seq, "192.0.2.1", f->now + 1 * MS);
	cr_assert_eq(f->pr->health.state, HEALTH_UP);
	cr_assert_eq(f->pr->state_changes, 3);
	cr_assert_eq(f->states, 3);
	cr_assert_eq(f->from, HEALTH_DOWN);
	cr_assert_eq(f->to, HEALTH_UP);
	/* No change, no call: the losses and the lone reply in between. */
	cr_assert_eq(f->outcomes - f->outcomes_at_state, 1);
	fx_free(f);
}

Test(probe, outcomes_in_send_order)
{
	struct fx *f = fx_new(1, 1);
	uint16_t old, newer;

	f->opts.interval_ns = 100 * MS;
	old = send_one(f);
	f->now += 100 * MS;
	newer = send_one(f);
	answer(f, newer, "192.0.2.1", f->now + 1 * MS);
	cr_assert_eq(f->pr->health.state, HEALTH_UP);
	/* The older request times out after the newer reply: old news, the
	 * state stays up although down_after is 1. */
	f->now = f->now - 100 * MS + 500 * MS;
	probe_run(&f->c, f->now);
	cr_assert_eq(f->pr->stats.run.c.lost, 1);
	cr_assert_eq(f->pr->health.state, HEALTH_UP);
	(void)old;
	fx_free(f);
}

Test(probe, receive_time_before_send_time_uses_now)
{
	/* The clock pair went wrong (a wall clock step while the reply waited
	 * in the socket): the receive time converts to before the send.  The
	 * RTT is then the time now minus the send time -- late by the wait,
	 * never negative, never zero. */
	struct fx *f = fx_new(3, 2);
	uint64_t sent = f->now;
	uint16_t seq = send_one(f);

	f->now += 7 * MS;
	answer(f, seq, "192.0.2.1", sent - 50 * MS);
	cr_assert_eq(f->pr->stats.run.c.received, 1);
	cr_assert_eq(f->pr->stats.last_rtt_ns, 7 * MS);
	fx_free(f);
}

Test(probe, tx_stamp_replaces_send_time_when_close)
{
	struct fx *f = fx_new(3, 2);
	uint64_t sent = f->now;
	uint16_t seq = send_one(f);

	/* Too far after the send: not trusted. */
	probe_on_tx_stamp(&f->c, &f->sock, seq, sent + PROBE_TX_STAMP_MAX_NS);
	cr_assert_eq(f->c.tx_stamped, 0);
	/* Before the send: impossible, not trusted. */
	probe_on_tx_stamp(&f->c, &f->sock, seq, sent - 1);
	cr_assert_eq(f->c.tx_stamped, 0);
	probe_on_tx_stamp(&f->c, &f->sock, seq, sent + 20 * NSEC_PER_USEC);
	cr_assert_eq(f->c.tx_stamped, 1);
	answer(f, seq, "192.0.2.1", sent + 1 * MS);
	cr_assert_eq(f->pr->stats.last_rtt_ns, 1 * MS - 20 * NSEC_PER_USEC);
	/* A stamp for an answered request changes nothing. */
	probe_on_tx_stamp(&f->c, &f->sock, seq, sent + 30 * NSEC_PER_USEC);
	cr_assert_eq(f->c.tx_stamped, 1);
	fx_free(f);
}

Test(probe, rtt_histogram_and_variation)
{
	struct fx *f = fx_new(3, 2);
	static const uint64_t rtts[] = { 1 * MS, 3 * MS, 2 * MS, 900 * MS };

	f->c.rtt_n = 3;
	f->c.rtt_le_ns[0] = 1 * MS;
	f->c.rtt_le_ns[1] = 2 * MS;
	f->c.rtt_le_ns[2] = 10 * MS;
	f->opts.timeout_ns = 1000 * MS;
	f->t->hist = calloc(4, sizeof *f->t->hist);
	for (size_t i = 0; i < ARRAY_SIZE(rtts); i++) {
		uint16_t seq = send_one(f);

		answer(f, seq, "192.0.2.1", f->now + rtts[i]);
		f->now += 1000 * MS;
	}
	/* le semantics: 1 ms is in the 1 ms bucket. */
	cr_assert_eq(f->t->hist[0], 1);
	cr_assert_eq(f->t->hist[1], 1);
	cr_assert_eq(f->t->hist[2], 1);
	cr_assert_eq(f->t->hist[3], 1);
	cr_assert_eq(f->pr->rtt_var_sum_ns, 2 * MS + 1 * MS + 898 * MS);
	fx_free(f);
}

Test(probe, schedule_skips_missed_intervals_and_stops)
{
	struct fx *f = fx_new(3, 2);
	uint64_t start = f->now;

	f->opts.interval_ns = 1000 * MS;
	send_one(f);
	cr_assert_eq(f->pr->send_due, start + 1000 * MS);
	/* A stall of 3.5 intervals: one send, and the next stays on the grid. */
	f->now = start + 3500 * MS;
	probe_run(&f->c, f->now);
	cr_assert_eq(f->sends, 2);
	cr_assert_eq(f->pr->send_due, start + 4000 * MS);
	/* Stopped: only the timeout keeps it on the wheel, then nothing. */
	f->c.stopped = true;
	probe_resched(&f->c, f->pr);
	cr_assert(wheel_linked(&f->pr->node));
	f->now += 600 * MS;
	probe_run(&f->c, f->now);
	cr_assert_not(wheel_linked(&f->pr->node));
	cr_assert_eq(f->sends, 2);
	fx_free(f);
}

Test(probe, log_head_kind_and_target_parts)
{
	struct fx *f = fx_new(3, 2);

	cr_assert_str_eq(target_name(f->t), "t1");
	cr_assert_str_eq(target_host(f->t), "192.0.2.1");
	cr_assert_null(target_ifname(f->t));
	cr_assert_null(target_labels(f->t));
	cr_assert_eq(target_strings_end(f->t), target_strings_at(1) + 13);
	cr_assert_eq(probe_target(f->pr), f->t);

	cr_assert_str_eq(probe_sock_kind(&f->sock), "dgram");
	f->sock.raw = true;
	cr_assert_str_eq(probe_sock_kind(&f->sock), "raw");
	memset(&f->pr->addr, 0, sizeof f->pr->addr);
	cr_assert_not(probe_resolved(f->pr));
	log_end(probe_log(f->pr, LOG_INFO, "test"));
	fx_free(f);
}

Test(probe, target_parts_with_interface_and_labels)
{
	static const char strings[] = "gw\0" "gw.example\0" "eth0\0" "site=lab";
	struct target *t = calloc(1, target_strings_at(2) + sizeof strings);

	t->n_probes = 2;
	memcpy((char *)t + target_strings_at(2), strings, sizeof strings);
	t->flags = TARGET_IFNAME | TARGET_LABELS;
	probe_init(t, 1, 6, NULL);
	cr_assert_str_eq(target_name(t), "gw");
	cr_assert_str_eq(target_host(t), "gw.example");
	cr_assert_str_eq(target_ifname(t), "eth0");
	cr_assert_str_eq(target_labels(t), "site=lab");
	cr_assert_eq(target_strings_end(t), target_strings_at(2) + sizeof strings);
	cr_assert_eq(probe_target(&t->probes[1]), t);
	cr_assert_not(probe_resolved(&t->probes[1]));
	/* Labels without an interface follow the host. */
	memcpy((char *)t + target_strings_at(2), "gw\0" "gw.example\0" "a=b", sizeof "gw\0gw.example\0a=b");
	t->flags = TARGET_LABELS;
	cr_assert_null(target_ifname(t));
	cr_assert_str_eq(target_labels(t), "a=b");
	free(t);
}

/* A target with `history = no`: its outcomes reach no hook at all. */
Test(probe, no_outcomes_reported_without_a_history)
{
	struct fx *f = fx_new(3, 2);
	uint16_t seq;

	f->opts.history = false;
	seq = send_one(f);
	answer(f, seq, "192.0.2.1", f->now + 3 * MS);
	cr_assert_eq(f->pr->stats.run.c.received, 1);
	cr_assert_eq(f->outcomes, 0, "no outcome reported");
	fx_free(f);
}

/* The error block exists only once a probe has had an error (most never
 * do: it is 48 bytes a probe saved). */
Test(probe, error_block_only_after_an_error)
{
	struct fx *f = fx_new(3, 2);
	uint16_t seq = send_one(f);

	answer(f, seq, "192.0.2.1", f->now + MS);
	cr_assert_null(f->pr->errs, "replies need no error block");
	cr_assert_eq(probe_send_errors(f->pr, VIEW_SEND_PERMISSION), 0);
	cr_assert_eq(probe_icmp_errors(f->pr, VIEW_ICMP_OTHER), 0);
	f->now += f->opts.interval_ns;
	f->send_errno = EPERM;
	probe_send_at(&f->c, f->pr, f->now);
	probe_run(&f->c, f->now);
	cr_assert_not_null(f->pr->errs);
	cr_assert_eq(probe_send_errors(f->pr, VIEW_SEND_PERMISSION), 1);
	fx_free(f);
}
