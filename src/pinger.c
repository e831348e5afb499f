/* PLACEHOLDER: replaced by the module's real implementation.  Until then it
 * accepts configs with zero targets so the echo services can run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pinger.h"
struct pinger { int unused; };
struct pinger_plan { int unused; };
struct pinger *pinger_new(struct loop *l) { (void)l; return calloc(1, sizeof(struct pinger)); }
struct pinger_plan *pinger_prepare(struct pinger *p, const struct config *c, char *e, size_t el)
{
	(void)p;
	if (c->n_targets) { snprintf(e, el, "pinger not implemented yet"); return NULL; }
	return calloc(1, sizeof(struct pinger_plan));
}
void pinger_commit(struct pinger *p, struct pinger_plan *pl) { (void)p; free(pl); }
void pinger_abort(struct pinger_plan *pl) { free(pl); }
void pinger_log_summaries(struct pinger *p, const char *w) { (void)p; (void)w; }
void pinger_counts(const struct pinger *p, struct pinger_counts *o) { (void)p; memset(o, 0, sizeof *o); }
void pinger_stop(struct pinger *p) { (void)p; }
void pinger_free(struct pinger *p) { free(p); }
