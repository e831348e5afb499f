/*
 * pinger: ICMP/ICMPv6 health pings to the configured targets: schedule,
 * sockets (datagram first, raw fallback), reply matching, statistics,
 * up/down state and the health log lines.  Two-phase configuration as in
 * tcp.h: targets are reconciled by name (and host/family), unchanged ones
 * keep their sockets, statistics and resolved addresses.
 *
 * pinger_prepare() reserves everything pinger_commit() needs (targets,
 * sockets, probe ids, summary groups, the receive buffer, timer room), so
 * the commit cannot fail and allocates nothing; new sockets are in the
 * loop from prepare on (nobody sends on them yet) and pinger_abort()
 * closes them.  The modules behind this header: include/pinger_int.h.
 *
 * Host names are resolved asynchronously inside the loop (resolver.h);
 * neither prepare nor commit waits for DNS, and an unresolvable name is
 * not an error: its probes stay `unresolved` (no sends) and are retried
 * with backoff.  IP literals are converted at prepare, without DNS.
 */
#ifndef BEACOND_PINGER_H
#define BEACOND_PINGER_H

#include <stddef.h>
#include "config.h"
#include "loop.h"

struct pinger;
struct pinger_plan;

struct pinger_counts {
	size_t probes;       /* (target, family) pairs being pinged */
	size_t up, down, unknown;
	/* Of unknown: probes whose host name has not resolved yet (they do
	 * not send, and are neither up nor down). */
	size_t unresolved;
};

struct pinger *pinger_new(struct loop *loop);
struct pinger_plan *pinger_prepare(struct pinger *p, const struct config *cfg,
				   char *err, size_t errlen);
void pinger_commit(struct pinger *p, struct pinger_plan *plan);
void pinger_abort(struct pinger_plan *plan);
/* How many targets the last commit added and removed, by name. */
void pinger_last_commit(const struct pinger *p, size_t *added, size_t *removed);

/* Log every probe's summary now (SIGUSR1, shutdown); why = "signal", "final". */
void pinger_log_summaries(struct pinger *p, const char *why);
void pinger_counts(const struct pinger *p, struct pinger_counts *out);
/* Stop sending; final summaries are the caller's to request. */
void pinger_stop(struct pinger *p);
void pinger_free(struct pinger *p);

#endif
