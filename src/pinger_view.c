/*
 * pinger_view: include/view.h over the pinger's state.  Reads only: a
 * walk, a scrape or a `beaconctl targets` never changes a counter.
 *
 * A probe's view index is its position in the running target array
 * (target.first + j), so pinger_view_next() resumes from a cursor with a
 * binary search; a reload that changes the set or its order bumps the
 * generation, which ends older walks.
 */
#include <stdio.h>
#include <string.h>

#include "pinger_int.h"

void view_renumber(struct pinger *p, struct target *const *nt, size_t n, bool rtt_changed,
		   uint32_t rtt_n, const uint64_t *rtt_le_ns)
{
	bool same = n == p->n_targets && !rtt_changed;
	uint32_t k = 0;

	for (size_t i = 0; i < n; i++) {
		same = same && p->targets[i] == nt[i];
		nt[i]->first = k;
		k += nt[i]->n_probes;
	}
	if (!same)
		p->gen++;
	p->n_probes = k;
	if (rtt_changed) {
		p->pc.rtt_n = rtt_n;
		memcpy(p->pc.rtt_le_ns, rtt_le_ns, rtt_n * sizeof *rtt_le_ns);
	}
}

void view_socket_kinds(struct pinger *p)
{
	bool seen[2][2] = { { false, false }, { false, false } };
	size_t off = 0;

	p->socket_kinds[0] = '\0';
	p->any_tx_stamps = false;
	for (const struct psock *s = p->socks; s; s = s->next) {
		seen[s->ps.family == 6][s->ps.raw] = true;
		if (s->sock.tx_ring)
			p->any_tx_stamps = true;
	}
	for (int f = 0; f < 2; f++)
		for (int r = 0; r < 2; r++)
			if (seen[f][r] && off < sizeof p->socket_kinds)
				off += (size_t)snprintf(p->socket_kinds + off,
							sizeof p->socket_kinds - off, "%s%d:%s",
							off ? " " : "", f ? 6 : 4,
							r ? "raw" : "dgram");
}

const char *view_send_err_name(enum view_send_err e)
{
	static const char *const names[VIEW_SEND_COUNT_] = {
		"unreachable", "too_big", "no_buffer", "permission", "no_socket", "other",
	};

	return (unsigned)e < VIEW_SEND_COUNT_ ? names[e] : "other";
}

const char *view_icmp_err_name(enum view_icmp_err e)
{
	static const char *const names[VIEW_ICMP_COUNT_] = {
		"unreachable", "prohibited", "too_big", "time_exceeded", "other",
	};

	return (unsigned)e < VIEW_ICMP_COUNT_ ? names[e] : "other";
}

const char *view_ignored_name(enum view_ignored e)
{
	static const char *const names[VIEW_IGN_COUNT_] = {
		"decode", "unsolicited", "ident", "seq", "source", "cookie", "length",
	};

	return (unsigned)e < VIEW_IGN_COUNT_ ? names[e] : "decode";
}

static void view_fill(const struct pinger *p, const struct target *t, uint32_t j,
		      struct view_probe *out)
{
	const struct probe *pr = &t->probes[j];
	const struct probe_opts *o = t->opts;

	memset(out, 0, sizeof *out);
	out->target = target_name(t);
	out->host = target_host(t);
	out->labels = target_labels(t);
	out->family = pr->family;
	out->resolved = probe_resolved(pr);
	if (probe_resolved(pr))
		memcpy(&out->addr, &pr->addr, inet_sa_len(&pr->addr));
	out->socket = pr->sock ? probe_sock_kind(pr->sock) : "none";
	out->index = t->first + j;
	out->interval_ns = o->interval_ns;
	out->timeout_ns = o->timeout_ns;
	out->payload_size = o->payload_size;
	out->down_after = o->down_after;
	out->up_after = o->up_after;
	out->state = (enum health_state)pr->health.state;
	out->state_since_ns = (uint64_t)pr->state_since_s * NSEC_PER_SEC;
	out->state_changes = pr->state_changes;
	out->run = pr->stats.run.c;
	out->run_rtt = pr->stats.run.rtt;
	out->rtt_var_sum_ns = pr->rtt_var_sum_ns;
	for (int e = 0; e < VIEW_SEND_COUNT_; e++)
		out->send_errors[e] = probe_send_errors(pr, (enum view_send_err)e);
	for (int e = 0; e < VIEW_ICMP_COUNT_; e++)
		out->icmp_errors[e] = probe_icmp_errors(pr, (enum view_icmp_err)e);
	out->in_flight = (uint32_t)(out->run.sent - out->run.received - out->run.lost);
	out->last_rtt_ns = pr->stats.last_rtt_ns;
	out->rtt_hist = t->hist ? t->hist + (size_t)j * (p->pc.rtt_n + 1) : NULL;
	if (o->summary_interval_ns)
		stats_window(&pr->stats, &out->window);
	else
		out->window = pr->stats.run;
	out->window_start_ns = t->window_start_ns;
}

/* The target holding view index i: the last whose first index is <= i. */
static size_t view_find(const struct pinger *p, uint32_t i)
{
	size_t lo = 0, hi = p->n_targets;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->targets[mid]->first <= i)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

void pinger_view_begin(const struct pinger *p, struct view_cursor *c)
{
	c->gen = p ? p->gen : 0;
	c->next = 0;
}

bool pinger_view_next(const struct pinger *p, struct view_cursor *c, struct view_probe *out)
{
	const struct target *t;

	if (!p || c->gen != p->gen || c->next >= p->n_probes)
		return false;
	t = p->targets[view_find(p, c->next)];
	view_fill(p, t, c->next - t->first, out);
	c->next++;
	return true;
}

size_t pinger_view_target(const struct pinger *p, const char *name,
			  struct view_probe *out, size_t n)
{
	if (!p || !name)
		return 0;
	for (size_t i = 0; i < p->n_targets; i++) {
		const struct target *t = p->targets[i];

		if (strcmp(target_name(t), name) != 0)
			continue;
		for (uint32_t j = 0; j < t->n_probes && j < n; j++)
			view_fill(p, t, j, &out[j]);
		return t->n_probes;
	}
	return 0;
}

void pinger_view_global(const struct pinger *p, struct view_pinger *out)
{
	struct pinger_counts c;

	memset(out, 0, sizeof *out);
	if (!p)
		return;
	pinger_counts(p, &c);
	out->probes = c.probes;
	out->up = c.up;
	out->down = c.down;
	out->unknown = c.unknown;
	out->unresolved = c.unresolved;
	memcpy(out->ignored, p->pc.ignored, sizeof out->ignored);
	out->tx_stamped = p->pc.tx_stamped;
	out->socket_kinds = p->socket_kinds;
	out->timestamping = p->socks == NULL ? "none"
			    : p->any_tx_stamps ? "kernel-tx+rx" : "kernel-rx";
	out->late_n_buckets = LATENESS_BUCKETS;
	out->late_le_ns = lateness_bounds();
	out->late_counts = p->late.counts;
	out->late_sum_ns = p->late.sum_ns;
	out->late_count = p->late.n;
	out->late_max_ns = p->late.max_ns;
	out->rtt_bounds.n = p->pc.rtt_n;
	out->rtt_bounds.le_ns = p->pc.rtt_le_ns;
}
