/*
 * pinger_plan: a reload of the pinger in two phases.
 *
 * pinger_prepare() works out the new set and reserves everything the
 * commit will need: new targets (one allocation each, with their RTT
 * histograms), references to shared settings, new sockets (opened and
 * already in the loop: harmless, nobody sends on them before commit, and
 * pinger_abort() closes them), the resolver, the new target array, room
 * for every probe id, the new summary groups, the receive buffer for the
 * largest payload and room in the loop's timer heap.  Any failure there
 * fails the reload whole.
 *
 * pinger_commit() cannot fail and allocates nothing: it runs the named
 * steps below, which only move pointers, link lists, arm timers into the
 * reserved room and free what the old set no longer uses.
 *
 * Targets are reconciled by name (and host/family): unchanged ones keep
 * their sockets, statistics and resolved addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pinger_int.h"
#include "send_sched.h"

struct resolved {
	uint32_t n;
	uint8_t family[2];           /* 0: auto name, family known once resolved */
	union inet_sa addr[2];       /* literals only */
	const char *missing[2];      /* why probe i has no address (both) */
	bool named;
	/* Sockets prepare opens: normally one per probe (sock_family[i] for
	 * probe i); an auto name gets both families' (index 0 = IPv4, 1 = IPv6),
	 * and picks one when its first answer arrives. */
	uint32_t n_socks;
	uint8_t sock_family[2];
};

struct plan_target {
	struct target *t;            /* new, or kept from the running set */
	bool kept;
	const struct probe_opts *opts;   /* kept targets: their new settings (a reference) */
	struct psock *socks[2];
	const char *degraded[2];     /* why probe i has no socket/address */
	char *degraded_msg[2];       /* owned copy when the reason is not static */
	uint64_t *hist;              /* kept targets: a histogram for new bounds */
};

struct pinger_plan {
	struct pinger *p;
	struct plan_target *v;
	size_t n;
	struct target **nt;          /* the new target array */
	struct psock *new_socks;
	/* A resolver for a changed dns_servers (or the first name); replaces
	 * the running one at commit. */
	struct resolver *resolver;
	char *dns_servers;
	struct group *new_groups;    /* summary intervals not running yet */
	uint8_t *rxbuf;              /* NULL: the running one fits */
	size_t rx_slot, rx_n;
	size_t n_new_probes;
	size_t n_named_before;       /* targets whose name is running already */
	/* The RTT histogram bounds; rtt_changed: they differ from the running
	 * ones, so kept targets get new (empty) histograms. */
	bool rtt_changed;
	uint32_t rtt_n;
	uint64_t rtt_le_ns[VIEW_RTT_BUCKETS_MAX];
};

/* ---- working out a target's probes -------------------------------------- */

/* A host name: only its probes' families, the addresses come from the
 * resolver inside the loop. */
static void resolve_named(const struct config_target *ct, int want, struct resolved *out)
{
	out->named = true;
	if (ct->family == FAMILY_BOTH) {
		out->n = out->n_socks = 2;
		out->family[0] = out->sock_family[0] = 4;
		out->family[1] = out->sock_family[1] = 6;
	} else if (want != AF_UNSPEC) {
		out->n = out->n_socks = 1;
		out->family[0] = out->sock_family[0] = want == AF_INET6 ? 6 : 4;
	} else {
		out->n = 1;
		out->n_socks = 2;
		out->sock_family[0] = 4;
		out->sock_family[1] = 6;
	}
}

/* An IP literal, converted at once (AI_NUMERICHOST: never DNS, never
 * blocking).  a4/a6 get the first address of each family; the family of
 * the very first one is returned (0: none). */
static int resolve_literal(const struct config_target *ct, int want, union inet_sa *a4,
			   union inet_sa *a6, bool got[2], char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *res = NULL;
	int rc, first_af = 0;

	hints.ai_family = want;
	rc = getaddrinfo(ct->host, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "[target %s] host \"%s\": %s", ct->name, ct->host,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET && !got[0] && ai->ai_addrlen >= sizeof a4->in4) {
			memset(a4, 0, sizeof *a4);
			memcpy(&a4->in4, ai->ai_addr, sizeof a4->in4);
			got[0] = true;
		} else if (ai->ai_family == AF_INET6 && !got[1] && ai->ai_addrlen >= sizeof a6->in6) {
			memset(a6, 0, sizeof *a6);
			memcpy(&a6->in6, ai->ai_addr, sizeof a6->in6);
			got[1] = true;
		} else {
			continue;
		}
		if (!first_af)
			first_af = ai->ai_family;
	}
	freeaddrinfo(res);
	if (!first_af)
		snprintf(err, errlen, "[target %s] host \"%s\": no address of the wanted family",
			 ct->name, ct->host);
	return first_af ? first_af : -1;
}

static int resolve_target(const struct config_target *ct, struct resolved *out, char *err,
			  size_t errlen)
{
	int want = AF_UNSPEC, first_af;
	bool got[2] = { false, false };
	union inet_sa a4, a6;

	memset(out, 0, sizeof *out);
	if (ct->family == FAMILY_4)
		want = AF_INET;
	else if (ct->family == FAMILY_6)
		want = AF_INET6;
	else if (ct->family == FAMILY_AUTO && ct->has_source)
		want = ct->source.u.sa.sa_family;
	if (!host_is_literal(ct->host)) {
		resolve_named(ct, want, out);
		return 0;
	}
	first_af = resolve_literal(ct, want, &a4, &a6, got, err, errlen);
	if (first_af < 0)
		return -1;
	if (ct->family == FAMILY_BOTH) {
		out->n = 2;
		out->family[0] = 4;
		out->family[1] = 6;
		memset(out->addr, 0, sizeof out->addr);
		out->addr[0].sa.sa_family = AF_INET;
		out->addr[1].sa.sa_family = AF_INET6;
		if (got[0])
			out->addr[0] = a4;
		else
			out->missing[0] = "the name has no IPv4 address";
		if (got[1])
			out->addr[1] = a6;
		else
			out->missing[1] = "the name has no IPv6 address";
	} else {
		out->n = 1;
		out->family[0] = first_af == AF_INET6 ? 6 : 4;
		out->addr[0] = first_af == AF_INET6 ? a6 : a4;
	}
	out->n_socks = out->n;
	memcpy(out->sock_family, out->family, sizeof out->family);
	return 0;
}

/* ---- targets ---------------------------------------------------------------- */

static void make_key(struct icmp_sock_key *k, const struct config_target *ct, uint8_t family,
		     enum icmp_socket_kind kind)
{
	memset(k, 0, sizeof *k);
	k->family = family;
	k->kind = (uint8_t)kind;
	k->ttl = (uint8_t)ct->opts.ttl;
	k->tos = (uint8_t)ct->opts.tos;
	k->df = ct->opts.dont_fragment;
	if (ct->has_source) {
		k->has_source = true;
		memcpy(&k->source, &ct->source.u, ct->source.u.sa.sa_family == AF_INET6
							? sizeof k->source.in6 : sizeof k->source.in4);
	}
	if (ct->interface)
		snprintf(k->ifname, sizeof k->ifname, "%s", ct->interface);
}

static struct psock *find_sock(struct psock *list, const struct icmp_sock_key *k)
{
	for (struct psock *s = list; s; s = s->next)
		if (icmp_sock_key_equal(&s->sock.key, k))
			return s;
	return NULL;
}

/* A zeroed RTT histogram for n_probes probes and rtt_n bounds; NULL (and
 * no error) when the histogram is off. */
static int hist_alloc(uint64_t **out, uint32_t n_probes, uint32_t rtt_n)
{
	*out = NULL;
	if (rtt_n == 0)
		return 0;
	*out = calloc((size_t)n_probes * (rtt_n + 1), sizeof **out);
	return *out ? 0 : -1;
}

static struct target *target_new(struct pinger *p, const struct config_target *ct,
				 const struct resolved *r, uint32_t rtt_n)
{
	/* One allocation: the target, its probes, the strings, then what only
	 * some targets have (DNS state, a source address). */
	size_t nl = strlen(ct->name) + 1, hl = strlen(ct->host) + 1;
	size_t il = ct->interface ? strlen(ct->interface) + 1 : 0;
	size_t ll = ct->labels ? strlen(ct->labels) + 1 : 0;
	size_t str_at = target_strings_at(r->n);
	size_t dns_at = (str_at + nl + hl + il + ll + 7) & ~(size_t)7;
	size_t src_at = dns_at + (r->named ? sizeof(struct target_dns) : 0);
	size_t size = src_at + (ct->has_source ? sizeof(union inet_sa) : 0);
	struct target *t = calloc(1, size);
	char *tail;

	if (!t)
		return NULL;
	t->n_probes = (uint8_t)r->n;
	t->flags = (uint8_t)((r->named ? TARGET_DNS : 0) | (ct->has_source ? TARGET_SOURCE : 0) |
			     (il ? TARGET_IFNAME : 0) | (ll ? TARGET_LABELS : 0));
	tail = (char *)t + str_at;
	memcpy(tail, ct->name, nl);
	memcpy(tail + nl, ct->host, hl);
	if (il)
		memcpy(tail + nl + hl, ct->interface, il);
	if (ll)
		memcpy(tail + nl + hl + il, ct->labels, ll);
	if (hist_alloc(&t->hist, r->n, rtt_n) < 0 || !(t->opts = opts_get(p, &ct->opts))) {
		free(t->hist);
		free(t);
		return NULL;
	}
	t->family_cfg = (uint8_t)ct->family;
	if (r->named) {
		struct target_dns *d = target_dns_of(t);

		d->t = t;
		d->p = p;
		timer_init(&d->timer, on_resolve_timer);
	}
	if (ct->has_source)
		memcpy((char *)t + src_at, &ct->source.u, sizeof(union inet_sa));
	for (uint32_t i = 0; i < r->n; i++)
		probe_init(t, (uint8_t)i, r->family[i], &r->addr[i]);
	return t;
}

static bool str_same(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0);
}

/* Can the running target old be kept for the new config entry? */
static bool target_same(const struct target *old, const struct config_target *ct,
			const struct resolved *r, struct psock *const *socks)
{
	if (strcmp(target_host(old), ct->host) != 0 || old->family_cfg != ct->family ||
	    (target_source(old) != NULL) != ct->has_source || old->n_probes != r->n)
		return false;
	if (ct->has_source && memcmp(target_source(old), &ct->source.u, sizeof(union inet_sa)) != 0)
		return false;
	/* Other labels are another metric series: the target starts afresh. */
	if (!str_same(target_ifname(old), ct->interface) || !str_same(target_labels(old), ct->labels))
		return false;
	if ((target_dns(old) != NULL) != r->named)
		return false;
	if (r->named && r->n_socks != r->n) {
		/* An auto name: the same candidate sockets, and a probe that
		 * resolved to a family without a socket is retried afresh. */
		const struct probe *pr = &old->probes[0];

		return target_dns_of(old)->cand[0] == socks[0] && target_dns_of(old)->cand[1] == socks[1] &&
		       (!probe_resolved(pr) || pr->sock != NULL);
	}
	for (uint32_t i = 0; i < r->n; i++) {
		const struct probe *pr = &old->probes[i];

		/* A degraded probe is retried from scratch on every reload.  A
		 * name's address is the resolver's business, not the config's. */
		if (pr->sock == NULL || pr->sock != &socks[i]->ps || pr->family != r->family[i] ||
		    (!r->named && !inet_sa_same_addr(&pr->addr, &r->addr[i])))
			return false;
	}
	return true;
}

/* ---- prepare ---------------------------------------------------------------- */

void pinger_abort(struct pinger_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n; i++) {
		if (!plan->v[i].kept)
			target_free(plan->p, plan->v[i].t);
		else
			opts_put(plan->p, plan->v[i].opts);
		free(plan->v[i].hist);
		free(plan->v[i].degraded_msg[0]);
		free(plan->v[i].degraded_msg[1]);
	}
	while (plan->new_socks) {
		struct psock *s = plan->new_socks;

		plan->new_socks = s->next;
		psock_close(plan->p, s);
	}
	while (plan->new_groups) {
		struct group *g = plan->new_groups;

		plan->new_groups = g->next;
		free(g);
	}
	resolver_free(plan->resolver);
	free(plan->dns_servers);
	free(plan->rxbuf);
	free(plan->nt);
	free(plan->v);
	free(plan);
}

/* Probe j's socket for key k: running, opened by this plan, or new.  A
 * family the host lacks (or, in auto mode, no permission for any ICMP
 * socket) degrades the probe instead of failing the reload. */
static int plan_socket(struct pinger_plan *plan, struct plan_target *pt, uint32_t j,
		       const struct icmp_sock_key *k, bool may_degrade, char *err, size_t errlen)
{
	struct pinger *p = plan->p;
	struct psock *s = find_sock(p->socks, k);
	enum icmp_open_fail why;
	char serr[384];

	if (!s)
		s = find_sock(plan->new_socks, k);
	if (!s && (s = psock_open(p, k, serr, sizeof serr, &why))) {
		s->next = plan->new_socks;
		plan->new_socks = s;
	}
	if (s) {
		pt->socks[j] = s;
		return 0;
	}
	if (why == ICMP_OPEN_FAIL_FAMILY || (why == ICMP_OPEN_FAIL_PERM && may_degrade)) {
		pt->degraded_msg[j] = strdup(serr);
		pt->degraded[j] = pt->degraded_msg[j] ? pt->degraded_msg[j] : "no ICMP socket";
		return 0;
	}
	snprintf(err, errlen, "%s", serr);
	return -1;
}

static int plan_target(struct pinger_plan *plan, const struct config *cfg, size_t i,
		       struct str_index *ix, char *err, size_t errlen)
{
	const struct config_target *ct = &cfg->targets[i];
	struct plan_target *pt = &plan->v[i];
	struct pinger *p = plan->p;
	struct resolved r;
	uint32_t *slot;
	struct target *old;

	if (resolve_target(ct, &r, err, errlen) < 0)
		return -1;
	for (uint32_t j = 0; j < r.n_socks; j++) {
		struct icmp_sock_key k;
		/* (An auto name only may need IPv6.) */
		bool may_degrade = cfg->icmp.socket == ICMP_SOCKET_AUTO ||
				   (r.n_socks != r.n && r.sock_family[j] == 6);
		char serr[400];

		if (r.missing[j]) {
			pt->degraded[j] = r.missing[j];
			continue;
		}
		make_key(&k, ct, r.sock_family[j], cfg->icmp.socket);
		if (plan_socket(plan, pt, j, &k, may_degrade, serr, sizeof serr) < 0) {
			snprintf(err, errlen, "[target %s] %s", ct->name, serr);
			return -1;
		}
	}
	slot = p->n_targets ? str_index_slot(ix, ct->name) : NULL;
	old = slot && *slot ? p->targets[*slot - 1] : NULL;
	plan->n_named_before += old != NULL;
	if (old && target_same(old, ct, &r, pt->socks)) {
		pt->t = old;
		pt->kept = true;
		pt->opts = opts_get(p, &ct->opts);
		if (!pt->opts || (plan->rtt_changed &&
				  hist_alloc(&pt->hist, old->n_probes, plan->rtt_n) < 0))
			goto oom;
		return 0;
	}
	pt->t = target_new(p, ct, &r, plan->rtt_n);
	if (!pt->t)
		goto oom;
	plan->n_new_probes += pt->t->n_probes;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* One resolver for all names, made when the first name appears or
 * dns_servers changes; a bad server list fails the whole plan. */
static int plan_resolver(struct pinger_plan *plan, const struct config *cfg, bool any_named,
			 char *err, size_t errlen)
{
	struct pinger *p = plan->p;
	const char *want = cfg->daemon.dns_servers, *have = p->dns_servers;
	bool differ = (want == NULL) != (have == NULL) || (want && strcmp(want, have) != 0);
	char rerr[256];

	if (!any_named || (p->resolver && !differ))
		return 0;
	plan->resolver = resolver_new(p->loop, want, RESOLVE_TIMEOUT_MS, RESOLVE_TRIES, rerr,
				      sizeof rerr);
	if (!plan->resolver) {
		snprintf(err, errlen, "[daemon] %s", rerr);
		return -1;
	}
	if (want && !(plan->dns_servers = strdup(want))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Room for every probe id the commit may hand out. */
static int reserve_slots(struct pinger *p, size_t n_new)
{
	size_t need = p->pc.n_slots + n_new, cap = p->cap_slots ? p->cap_slots : 64;
	struct probe **ns;
	uint32_t *nf;

	if (need > SEQMAP_MAX_PROBES)
		need = SEQMAP_MAX_PROBES;
	if (need <= p->cap_slots)
		return 0;
	while (cap < need)
		cap *= 2;
	if (p->pc.hook_slots) {
		/* calloc, not realloc and memset: slots of probes without a
		 * history are never written, so their pages are never touched. */
		void **hs = calloc(cap, sizeof *hs);

		if (!hs)
			return -1;
		memcpy(hs, p->pc.hook_slots, p->cap_slots * sizeof *hs);
		free(p->pc.hook_slots);
		p->pc.hook_slots = hs;
	}
	ns = realloc(p->pc.slots, cap * sizeof *ns);
	if (!ns)
		return -1;
	p->pc.slots = ns;
	nf = realloc(p->free_ids, cap * sizeof *nf);
	if (!nf)
		return -1;
	p->free_ids = nf;
	p->cap_slots = (uint32_t)cap;
	return 0;
}

static bool group_known(const struct group *list, uint64_t iv)
{
	for (const struct group *g = list; g; g = g->next)
		if (g->interval_ns == iv)
			return true;
	return false;
}

/* A summary group for every interval the new set has and none runs. */
static int reserve_groups(struct pinger_plan *plan, size_t *n_groups)
{
	for (size_t i = 0; i < plan->n; i++) {
		const struct plan_target *pt = &plan->v[i];
		uint64_t iv = (pt->kept ? pt->opts : pt->t->opts)->summary_interval_ns;
		struct group *g;

		if (iv == 0 || group_known(plan->p->groups, iv) || group_known(plan->new_groups, iv))
			continue;
		g = calloc(1, sizeof *g);
		if (!g)
			return -1;
		g->p = plan->p;
		g->interval_ns = iv;
		timer_init(&g->timer, on_group_timer);
		g->next = plan->new_groups;
		plan->new_groups = g;
		++*n_groups;
	}
	return 0;
}

/* Everything the commit needs beyond the targets and sockets. */
static int plan_reserve(struct pinger_plan *plan)
{
	struct pinger *p = plan->p;
	size_t max_payload = 56, n_groups = 0, n_timers = 1;

	for (size_t i = 0; i < plan->n; i++) {
		const struct plan_target *pt = &plan->v[i];
		const struct probe_opts *o = pt->kept ? pt->opts : pt->t->opts;

		if (o->payload_size > max_payload)
			max_payload = o->payload_size;
		if (target_dns(pt->t))
			n_timers++;
	}
	for (const struct group *g = p->groups; g; g = g->next)
		n_timers++;
	if (reserve_slots(p, plan->n_new_probes) < 0 || reserve_groups(plan, &n_groups) < 0 ||
	    icmp_rx_prepare(&p->rx, max_payload, &plan->rxbuf, &plan->rx_slot, &plan->rx_n) < 0)
		return -1;
	/* Every timer the pinger may arm at commit (more than it needs: those
	 * already armed are counted again). */
	return loop_timer_reserve(p->loop, n_timers + n_groups);
}

static const char *name_of_target(const void *ctx, uint32_t pos)
{
	const struct pinger *p = ctx;

	return target_name(p->targets[pos]);
}

static struct pinger_plan *plan_new(struct pinger *p, const struct config *cfg)
{
	struct pinger_plan *plan = calloc(1, sizeof *plan);

	if (!plan)
		return NULL;
	plan->p = p;
	if (cfg->n_targets && (!(plan->v = calloc(cfg->n_targets, sizeof *plan->v)) ||
			       !(plan->nt = calloc(cfg->n_targets, sizeof *plan->nt)))) {
		free(plan->v);
		free(plan);
		return NULL;
	}
	plan->rtt_n = cfg->icmp.n_rtt_buckets <= VIEW_RTT_BUCKETS_MAX ? cfg->icmp.n_rtt_buckets
								       : VIEW_RTT_BUCKETS_MAX;
	memcpy(plan->rtt_le_ns, cfg->icmp.rtt_buckets_ns, plan->rtt_n * sizeof plan->rtt_le_ns[0]);
	plan->rtt_changed = plan->rtt_n != p->pc.rtt_n ||
			    memcmp(plan->rtt_le_ns, p->pc.rtt_le_ns,
				   plan->rtt_n * sizeof plan->rtt_le_ns[0]) != 0;
	return plan;
}

struct pinger_plan *pinger_prepare(struct pinger *p, const struct config *cfg,
				   char *err, size_t errlen)
{
	struct pinger_plan *plan = plan_new(p, cfg);
	struct str_index ix;
	bool any_named = false;

	str_index_init(&ix, name_of_target, p);
	if (!plan || str_index_reserve(&ix, p->n_targets) < 0) {
		if (plan)
			pinger_abort(plan);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < p->n_targets; i++)
		*str_index_slot(&ix, target_name(p->targets[i])) = (uint32_t)i + 1;
	for (size_t i = 0; i < cfg->n_targets; i++) {
		plan->n = i + 1; /* so pinger_abort() frees what this entry holds */
		if (plan_target(plan, cfg, i, &ix, err, errlen) < 0)
			goto fail;
		if (target_dns(plan->v[i].t))
			any_named = true;
	}
	if (plan_resolver(plan, cfg, any_named, err, errlen) < 0)
		goto fail;
	if (plan_reserve(plan) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	str_index_free(&ix);
	return plan;
fail:
	str_index_free(&ix);
	pinger_abort(plan);
	return NULL;
}

/* ---- commit ------------------------------------------------------------------ */

/* Step: a new resolver (dns_servers changed): no lookup of the old one may
 * report any more; kept names look up again at once (commit_kept). */
static bool commit_resolver(struct pinger *p, struct pinger_plan *plan)
{
	if (!plan->resolver)
		return false;
	for (size_t i = 0; i < p->n_targets; i++)
		if (target_dns(p->targets[i]))
			resolver_cancel(&target_dns_of(p->targets[i])->rq);
	resolver_close(p->resolver);
	p->resolver = plan->resolver;
	plan->resolver = NULL;
	free(p->dns_servers);
	p->dns_servers = plan->dns_servers;
	plan->dns_servers = NULL;
	return true;
}

static bool slot_gone(uint32_t id, void *arg)
{
	struct pinger *p = arg;

	return id >= p->pc.n_slots || p->pc.slots[id] == NULL;
}

static void target_remove(struct pinger *p, struct target *t, uint64_t now)
{
	target_log_summaries(t, "removed", now);
	target_resolve_stop(p, t);
	for (int f = 0; target_dns(t) && f < 2; f++)
		if (target_dns_of(t)->cand[f])
			target_dns_of(t)->cand[f]->ps.refs--;
	for (uint32_t i = 0; i < t->n_probes; i++) {
		struct probe *pr = &t->probes[i];

		probe_unlink(&p->pc, pr);
		if (pr->id < p->pc.n_slots && p->pc.slots[pr->id] == pr)
			p->pc.slots[pr->id] = NULL;
		if (pr->sock)
			pr->sock->refs--;
	}
	target_free(p, t);
}

/* Step: drop the running targets the new set does not keep.  Requests in
 * flight for them must never match a probe that reuses their id; their
 * ids are free again. */
static void commit_drop_removed(struct pinger *p, struct pinger_plan *plan, uint64_t now)
{
	bool removed = false;

	for (size_t j = 0; j < plan->n; j++)
		if (plan->v[j].kept)
			plan->v[j].t->keep = true;
	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = p->targets[i];

		if (t->keep) {
			t->keep = false;
			continue;
		}
		target_remove(p, t, now);
		p->targets[i] = NULL;
		removed = true;
	}
	if (!removed)
		return;
	for (struct psock *s = p->socks; s; s = s->next)
		seqmap_forget(s->ps.map, slot_gone, p);
	p->n_free = 0;
	for (uint32_t id = 0; id < p->pc.n_slots; id++)
		if (p->pc.slots[id] == NULL)
			p->free_ids[p->n_free++] = id;
}

/* Step: new sockets join the running set; the send grid follows the new
 * set's total send rate. */
static void commit_sockets_and_grid(struct pinger *p, struct pinger_plan *plan)
{
	uint64_t rate_mhz = 0;

	while (plan->new_socks) {
		struct psock *s = plan->new_socks;

		plan->new_socks = s->next;
		s->next = p->socks;
		p->socks = s;
		log_socket(s);
	}
	for (size_t i = 0; i < plan->n; i++) {
		const struct plan_target *pt = &plan->v[i];
		const struct probe_opts *o = pt->kept ? pt->opts : pt->t->opts;

		rate_mhz += pt->t->n_probes * send_rate_mhz(o->interval_ns);
	}
	p->grid_ns = send_grid_ns(rate_mhz);
}

/* Step (each kept target): its new settings take effect now. */
static void commit_kept(struct pinger *p, struct plan_target *pt, bool new_resolver,
			uint64_t now, uint64_t *lookup_at)
{
	struct target *t = pt->t;
	uint64_t iv = pt->opts->interval_ns;

	opts_put(p, t->opts);
	t->opts = pt->opts;
	pt->opts = NULL;
	/* A name keeps its address and timers; it looks up now with a new
	 * server list, and a shorter resolve_interval takes effect now. */
	if (target_dns(t) && new_resolver) {
		target_resolve_later(p, t, *lookup_at);
		*lookup_at += RESOLVE_PACE_NS;
	} else if (target_dns(t) && timer_armed(&target_dns_of(t)->timer) &&
		   target_dns_of(t)->timer.deadline > now + t->opts->resolve_interval_ns) {
		target_resolve_later(p, t, now + t->opts->resolve_interval_ns);
	}
	for (uint32_t j = 0; j < t->n_probes; j++) {
		struct probe *pr = &t->probes[j];

		/* A shorter interval takes effect now, not after the old one,
		 * and so does a new timeout. */
		if (pr->send_due != PROBE_IDLE && pr->send_due > now + iv)
			pr->send_due = now + iv;
		probe_resched(&p->pc, pr);
	}
}

/* A probe id from the reserved room; false when all SEQMAP_MAX_PROBES are
 * taken. */
static bool slot_take(struct pinger *p, struct probe *pr)
{
	uint32_t id;

	if (p->n_free)
		id = p->free_ids[--p->n_free];
	else if (p->pc.n_slots < p->cap_slots)
		id = p->pc.n_slots++;
	else
		return false;
	p->pc.slots[id] = pr;
	pr->id = id;
	return true;
}

/* An auto name's candidate sockets (it picks one when it resolves). */
static void commit_candidates(struct target *t, struct plan_target *pt)
{
	for (int f = 0; f < 2; f++) {
		target_dns_of(t)->cand[f] = pt->socks[f];
		if (target_dns_of(t)->cand[f])
			target_dns_of(t)->cand[f]->ps.refs++;
	}
	pt->socks[0] = NULL;
	if (!target_dns_of(t)->cand[0] && !target_dns_of(t)->cand[1] && pt->degraded[0]) {
		struct logline *l = log_begin(LOG_ERR, "address");

		log_str(l, "target", target_name(t));
		log_str(l, "host", target_host(t));
		log_str(l, "status", "unavailable");
		log_str(l, "reason", pt->degraded[0]);
		log_end(l);
	}
	pt->degraded[0] = NULL;
}

/* A new probe starts: socket, id, its address line, its first send. */
static void commit_probe(struct pinger *p, struct plan_target *pt, uint32_t j, uint64_t now,
			 size_t k, size_t n_new)
{
	struct target *t = pt->t;
	struct probe *pr = &t->probes[j];
	uint64_t iv = t->opts->interval_ns;
	struct logline *l;

	pr->sock = pt->socks[j] ? &pt->socks[j]->ps : NULL;
	if (!slot_take(p, pr)) {
		pr->sock = NULL;
		pt->degraded[j] = "too many probes";
	}
	if (pr->sock)
		pr->sock->refs++;
	/* A name's address is logged when it resolves (event=resolved). */
	if (target_dns(t) && !pt->degraded[j])
		return;
	/* A literal host says nothing new: debug, so ten thousand literal
	 * targets do not flood the log at start. */
	l = probe_log(pr, pt->degraded[j] ? LOG_ERR
			  : host_is_literal(target_host(t)) ? LOG_DEBUG : LOG_INFO, "address");
	log_str(l, "host", target_host(t));
	if (pr->sock)
		log_str(l, "socket", probe_sock_kind(pr->sock));
	if (pt->degraded[j]) {
		log_str(l, "status", "unavailable");
		log_str(l, "reason", pt->degraded[j]);
	}
	log_end(l);
	/* Spread first pings evenly over the interval so many targets never
	 * fire in one burst.  (A name starts when it resolves.) */
	if (!p->pc.stopped && probe_resolved(pr)) {
		uint64_t at = now + (uint64_t)((unsigned __int128)k * iv / (n_new ? n_new : 1));

		probe_send_at(&p->pc, pr, probe_grid_up(p, pr, at));
	}
}

/* Step (each new target): it starts. */
static void commit_new(struct pinger *p, struct plan_target *pt, uint64_t now,
		       uint64_t *lookup_at, size_t *k, size_t n_new)
{
	struct target *t = pt->t;
	uint32_t wall_s = (uint32_t)(wall_ns() / NSEC_PER_SEC);

	t->window_start_ns = now;
	for (uint32_t j = 0; j < t->n_probes; j++)
		t->probes[j].state_since_s = wall_s;
	if (target_dns(t)) {
		/* Looked up from the loop, right after this commit (paced):
		 * nothing here waits for DNS. */
		target_resolve_later(p, t, *lookup_at);
		*lookup_at += RESOLVE_PACE_NS;
		if (t->family_cfg == FAMILY_AUTO && !target_source(t))
			commit_candidates(t, pt);
	}
	for (uint32_t j = 0; j < t->n_probes; j++)
		commit_probe(p, pt, j, now, (*k)++, n_new);
}

/* Step: hold times follow the longest timeout on each socket, receive
 * buffers the number of probes; sockets nobody uses any more are closed. */
static void commit_socket_upkeep(struct pinger *p)
{
	struct psock **sp = &p->socks;

	for (struct psock *s = p->socks; s; s = s->next)
		seqmap_set_hold(s->ps.map, 0);
	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = p->targets[i];
		uint64_t hold = t->opts->timeout_ns + PROBE_SEQ_HOLD_EXTRA_NS;

		for (uint32_t j = 0; j < t->n_probes; j++) {
			struct probe_sock *s = t->probes[j].sock;

			if (s && seqmap_hold(s->map) < hold)
				seqmap_set_hold(s->map, hold);
		}
	}
	while (*sp) {
		struct psock *s = *sp;

		if (s->ps.refs) {
			size_t want = s->ps.refs * RCVBUF_PER_PROBE;

			icmp_sock_rcvbuf(&s->sock, want < RCVBUF_MIN ? RCVBUF_MIN
						   : want > RCVBUF_MAX ? RCVBUF_MAX : want);
			sp = &s->next;
			continue;
		}
		*sp = s->next;
		psock_close(p, s);
	}
}

/* Step: the summary groups of the new set (the new ones were made at
 * prepare); groups no target uses any more go. */
static void commit_groups(struct pinger *p, struct pinger_plan *plan, uint64_t now)
{
	struct group **gp;

	while (plan->new_groups) {
		struct group *g = plan->new_groups;

		plan->new_groups = g->next;
		g->next = p->groups;
		p->groups = g;
		if (!p->pc.stopped)
			loop_timer_arm(p->loop, &g->timer, now + g->interval_ns);
	}
	for (struct group *g = p->groups; g; g = g->next)
		g->used = false;
	for (struct group *g = p->groups; g; g = g->next)
		for (size_t i = 0; i < p->n_targets && !g->used; i++)
			g->used = p->targets[i]->opts->summary_interval_ns == g->interval_ns;
	gp = &p->groups;
	while (*gp) {
		struct group *g = *gp;

		if (g->used) {
			gp = &g->next;
			continue;
		}
		*gp = g->next;
		loop_timer_cancel(p->loop, &g->timer);
		free(g);
	}
}

void pinger_last_commit(const struct pinger *p, size_t *added, size_t *removed)
{
	*added = p->last_added;
	*removed = p->last_removed;
}

void pinger_commit(struct pinger *p, struct pinger_plan *plan)
{
	uint64_t now = loop_now_refresh(p->loop), lookup_at = now;
	bool new_resolver = commit_resolver(p, plan);
	size_t k = 0;

	/* Names are unique on both sides, so what the new set does not name
	 * again was removed. */
	p->last_added = plan->n - plan->n_named_before;
	p->last_removed = p->n_targets - plan->n_named_before;
	commit_drop_removed(p, plan, now);
	commit_sockets_and_grid(p, plan);
	for (size_t i = 0; i < plan->n; i++) {
		struct plan_target *pt = &plan->v[i];

		plan->nt[i] = pt->t;
		if (pt->kept) {
			commit_kept(p, pt, new_resolver, now, &lookup_at);
			if (plan->rtt_changed) {
				free(pt->t->hist);
				pt->t->hist = pt->hist;
				pt->hist = NULL;
			}
		} else {
			commit_new(p, pt, now, &lookup_at, &k, plan->n_new_probes);
		}
	}
	view_renumber(p, plan->nt, plan->n, plan->rtt_changed, plan->rtt_n, plan->rtt_le_ns);
	free(p->targets);
	p->targets = plan->nt;
	p->n_targets = plan->n;
	plan->nt = NULL;
	commit_socket_upkeep(p);
	commit_groups(p, plan, now);
	view_socket_kinds(p);
	icmp_rx_install(&p->rx, plan->rxbuf, plan->rx_slot, plan->rx_n);
	plan->rxbuf = NULL;
	/* What is left in the plan is only its own bookkeeping. */
	for (size_t i = 0; i < plan->n; i++) {
		free(plan->v[i].degraded_msg[0]);
		free(plan->v[i].degraded_msg[1]);
	}
	free(plan->v);
	free(plan);
}
