/*
 * icmp_sock: one ICMP socket -- opening it (datagram first, raw as the
 * fallback, with a hint that names the fix), the raw sockets' filters (a
 * type filter and a BPF program on our ident), kernel transmit
 * timestamps, batched receive with the control messages parsed, and the
 * error queue.  It knows no targets: what it reads is reported through one
 * callback as events {datagram, queued ICMP error, transmit stamp}, with
 * times already on CLOCK_MONOTONIC.
 *
 * The receive buffers (struct icmp_rx) are shared by every socket of the
 * pinger (one batch is processed at a time) and sized for the largest
 * payload; icmp_rx_prepare() allocates a new set at prepare, so a reload
 * commit only swaps pointers.
 */
#ifndef BEACOND_ICMP_SOCK_H
#define BEACOND_ICMP_SOCK_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "icmp.h"
#include "loop.h"
#include "util.h"

/* recvmmsg() batch: up to ICMP_RX_MMSG datagrams per system call. */
#define ICMP_RX_MMSG 64
#define ICMP_RX_CTRL 192

/* What a socket is for: sockets are shared by every probe with an equal key. */
struct icmp_sock_key {
	uint8_t family;              /* 4 or 6 */
	uint8_t kind;                /* enum icmp_socket_kind requested */
	uint8_t ttl, tos;
	bool df;                     /* dont_fragment */
	bool has_source;
	union inet_sa source;
	char ifname[IF_NAMESIZE];
};
bool icmp_sock_key_equal(const struct icmp_sock_key *a, const struct icmp_sock_key *b);

/* The shared receive batch: n slots of slot bytes in buf. */
struct icmp_rx {
	uint8_t *buf;
	size_t slot, n;
	struct mmsghdr msgs[ICMP_RX_MMSG];
	struct iovec iov[ICMP_RX_MMSG];
	union inet_sa from[ICMP_RX_MMSG];
	char ctrl[ICMP_RX_MMSG][ICMP_RX_CTRL] __attribute__((aligned(8)));
};
/* A buffer for payloads up to max_payload, or NULL when rx already has the
 * right size (then *slot, *n are rx's); -1 when out of memory. */
int icmp_rx_prepare(const struct icmp_rx *rx, size_t max_payload, uint8_t **buf,
		    size_t *slot, size_t *n);
/* Install what icmp_rx_prepare made (buf NULL: nothing to do); never fails. */
void icmp_rx_install(struct icmp_rx *rx, uint8_t *buf, size_t slot, size_t n);

enum icmp_sock_ev {
	ICMP_EV_DATAGRAM,            /* buf/len from from, at rx_ns */
	ICMP_EV_TRUNCATED,           /* a datagram longer than the slot */
	ICMP_EV_ERROR,               /* a queued ICMP error about our request */
	ICMP_EV_ERROR_SHORT,         /* a queued error too short to read */
	ICMP_EV_TX_STAMP,            /* request seq left at tx_ns */
};

struct icmp_sock_event {
	enum icmp_sock_ev kind;
	const uint8_t *buf;
	size_t len;
	const union inet_sa *from;   /* the peer; for errors the router, or NULL */
	uint64_t rx_ns;
	/* ICMP_EV_ERROR: the request it quotes. */
	uint16_t ident, seq;
	uint8_t orig_dst[16];
	enum icmp_reason reason;
	uint32_t mtu;
	/* ICMP_EV_TX_STAMP (seq above). */
	uint64_t tx_ns;
};

struct icmp_sock;
typedef void (*icmp_sock_fn)(struct icmp_sock *s, const struct icmp_sock_event *ev);

struct icmp_tx_slot {
	uint32_t key;
	uint16_t seq;
};

struct icmp_sock {
	struct io io;
	struct icmp_sock_key key;
	bool raw;
	uint16_t ident;              /* dgram: the kernel's port; raw: ours */
	/* Transmit timestamps: the kernel numbers each send (OPT_ID); the
	 * ring maps that number back to our sequence number.  NULL when the
	 * kernel gives no transmit timestamps. */
	struct icmp_tx_slot *tx_ring;
	uint32_t tx_next_key;
	size_t rcvbuf;               /* SO_RCVBUF last asked for */
	struct icmp_rx *rx;
	icmp_sock_fn on_event;
};

/*
 * Kernel receive and transmit stamps are CLOCK_REALTIME; they are moved
 * to CLOCK_MONOTONIC with a pair of both clocks read right after the
 * receive call (once per batch: the offset does not move within it).  The
 * two clocks cannot be read at once: the wall clock is read between two
 * reads of the monotonic one and paired with their midpoint, so the pair
 * is off by at most half the gap.  A thread preempted in between (a busy
 * host stops a vCPU for milliseconds) would put the whole stall into every
 * RTT of the batch -- seen: 1.5 ms short in the 20 ms delay test -- so a
 * wide gap (over 20 us) is read again, up to four times, keeping the
 * tightest.  Pure given read(), which fills {mono, real, mono}.
 */
struct icmp_clock_pair {
	uint64_t mono, real;
};
void icmp_clock_pair_pick(struct icmp_clock_pair *c, void (*read)(void *arg, uint64_t v[3]),
			  void *arg);
/* A CLOCK_REALTIME time on the monotonic clock, or 0 when it cannot be
 * (0, or from the future: the clock was stepped back since). */
uint64_t icmp_clock_to_mono(uint64_t real_ns, const struct icmp_clock_pair *now);

/* Why an open failed: a missing family (no IPv6), missing permission, or
 * anything else. */
enum icmp_open_fail { ICMP_OPEN_FAIL_OTHER, ICMP_OPEN_FAIL_FAMILY, ICMP_OPEN_FAIL_PERM };

/* Open and configure s for k (raw sockets use raw_ident) and register it
 * with the loop (a socket nobody sends on receives nothing of ours, so this
 * is harmless in a reload's prepare; icmp_sock_close undoes it).  0, or -1
 * with the message in err. */
int icmp_sock_open(struct icmp_sock *s, struct loop *loop, const struct icmp_sock_key *k,
		   uint16_t raw_ident, struct icmp_rx *rx, icmp_sock_fn on_event,
		   char *err, size_t errlen, enum icmp_open_fail *why);
/* Send one request (seq for the transmit stamp).  0 or the errno. */
int icmp_sock_send(struct icmp_sock *s, const void *buf, size_t len, const union inet_sa *to,
		   uint16_t seq);
/* Ask for a receive buffer of want bytes (best effort). */
void icmp_sock_rcvbuf(struct icmp_sock *s, size_t want);
/* Close the fd; the caller frees s after the batch (loop_free_later). */
void icmp_sock_close(struct loop *loop, struct icmp_sock *s);
/* Free what open allocated (after close). */
void icmp_sock_release(struct icmp_sock *s);

#endif
