/* PLACEHOLDER: replaced by the module's real implementation. */
#include <stdio.h>
#include <string.h>
#include "pinger.h"
struct pinger *pinger_new(struct loop *l) { (void)l; return 0; }
struct pinger_plan *pinger_prepare(struct pinger *p, const struct config *c, char *e, size_t el) { (void)p; (void)c; snprintf(e, el, "pinger not implemented"); return 0; }
void pinger_commit(struct pinger *p, struct pinger_plan *pl) { (void)p; (void)pl; }
void pinger_abort(struct pinger_plan *pl) { (void)pl; }
void pinger_log_summaries(struct pinger *p, const char *w) { (void)p; (void)w; }
void pinger_counts(const struct pinger *p, struct pinger_counts *o) { (void)p; memset(o, 0, sizeof *o); }
void pinger_stop(struct pinger *p) { (void)p; }
void pinger_free(struct pinger *p) { (void)p; }
