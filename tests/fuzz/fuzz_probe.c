/*
 * libFuzzer target: the probe module fed whatever a peer (or a router) can
 * send -- datagrams from the target's address or another, queued ICMP
 * errors with any ident/seq/destination, transmit stamps -- interleaved
 * with sends and the passing of time, against one probe with requests in
 * flight.  Besides "no crash, no out-of-bounds read" (ASan), the counters
 * must stay consistent after every step: sent = received + lost + in
 * flight, and the requests in flight are exactly the chain's.
 *
 * Input: a sequence of records, the first byte of each picking the step
 * and its parameters, the next 16-bit length and then that many bytes
 * (for a datagram).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct probe_ctx c;
	struct probe *slots[1];
	void *hook_slots[1];
	uint64_t now;
	unsigned sends;
};

static int fz_send(struct probe_ctx *c, struct probe *pr, uint16_t seq, uint64_t deadline,
		   uint64_t *t0)
{
	struct fz *f = container_of(c, struct fz, c);

	(void)pr, (void)seq, (void)deadline;
	*t0 = f->now;
	/* Every seventh send fails, as a full buffer would. */
	return ++f->sends % 7 == 0 ? 105 /* ENOBUFS */ : 0;
}

static void fz_wake(struct probe_ctx *c, uint64_t wake)
{
	(void)c, (void)wake;
}

static uint64_t fz_now(struct probe_ctx *c)
{
	return container_of(c, struct fz, c)->now;
}

static const struct probe_io fz_io = { fz_send, fz_wake, fz_now };

static void check(const struct probe *pr)
{
	const struct stats_counts *r = &pr->stats.run.c;

	if (r->received + r->lost > r->sent || r->sent - r->received - r->lost != pr->chain.count)
		abort();
	for (int e = 0; e < VIEW_ICMP_COUNT_; e++)
		if (probe_icmp_errors(pr, (enum view_icmp_err)e) > r->errors)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char names[] = "t\0" "192.0.2.1";
	struct probe_opts opts = {
		.interval_ns = 10 * NSEC_PER_MSEC, .timeout_ns = 50 * NSEC_PER_MSEC,
		.payload_size = 56, .down_after = 2, .up_after = 2,
	};
	struct probe_sock sock = { .ident = 0x1234, .family = 4 };
	struct fz *f = calloc(1, sizeof *f);
	struct target *t = calloc(1, target_strings_at(1) + sizeof names);
	union inet_sa addr, other;
	struct probe *pr;
	size_t i = 0;

	if (!f || !t || !(sock.map = seqmap_new(20 * NSEC_PER_MSEC)))
		abort();
	memset(&addr, 0, sizeof addr);
	addr.in4.sin_family = AF_INET;
	addr.in4.sin_addr.s_addr = htonl(0xc0000201);
	other = addr;
	other.in4.sin_addr.s_addr = htonl(0xc0000209);
	memcpy((char *)t + target_strings_at(1), names, sizeof names);
	t->opts = &opts;
	t->n_probes = 1;
	probe_init(t, 0, 4, &addr);
	pr = &t->probes[0];
	pr->sock = &sock;
	pr->id = 0;
	f->now = 1000 * NSEC_PER_SEC;
	f->c.io = &fz_io;
	f->c.slots = f->slots;
	f->c.hook_slots = f->hook_slots;
	f->c.n_slots = 1;
	f->c.cookie = 0x0102030405060708ULL;
	f->slots[0] = pr;
	wheel_init(&f->c.wheel, NSEC_PER_MSEC, f->now);
	probe_send_at(&f->c, pr, f->now);

	while (i + 3 <= size) {
		uint8_t op = data[i];
		size_t len = (size_t)data[i + 1] << 8 | data[i + 2];
		const uint8_t *body = data + i + 3;
		uint16_t seq = seqmap_front(&pr->chain) >= 0 ? (uint16_t)seqmap_front(&pr->chain)
							    : (uint16_t)op;

		if (len > size - i - 3)
			len = size - i - 3;
		i += 3 + len;
		switch (op % 5) {
		case 0: {
			/* A private copy, exactly as long, so ASan sees overreads. */
			uint8_t *pkt = malloc(len ? len : 1);

			if (!pkt)
				abort();
			memcpy(pkt, body, len);
			probe_on_datagram(&f->c, &sock, pkt, len, op & 0x80 ? &other : &addr,
					  f->now + (uint64_t)(op >> 3) * NSEC_PER_MSEC);
			free(pkt);
			break;
		}
		case 1: {
			uint8_t dst[16] = { 192, 0, 2, (uint8_t)(op & 0x80 ? 9 : 1) };

			probe_on_error(&f->c, &sock, op & 0x40 ? 0x4321 : 0x1234, seq, dst,
				       op & 0x20 ? NULL : &other,
				       (enum icmp_reason)((op >> 3) % ICMP_REASON_COUNT_), len);
			break;
		}
		case 2:
			probe_on_tx_stamp(&f->c, &sock, seq, f->now - (uint64_t)(op >> 3) * 1000);
			break;
		case 3:
			f->now += (uint64_t)(op >> 3) * NSEC_PER_MSEC + len;
			probe_run(&f->c, f->now);
			break;
		default:
			probe_send_at(&f->c, pr, f->now);
			probe_run(&f->c, f->now);
			break;
		}
		check(pr);
	}
	probe_unlink(&f->c, pr);
	probe_fini(pr);
	seqmap_free(sock.map);
	free(t);
	free(f);
	return 0;
}
