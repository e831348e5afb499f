/* PLACEHOLDER: replaced by the module's real implementation. */
#include <stdio.h>
#include "udp.h"
static struct udp_counters zero;
struct udp_service *udp_new(struct loop *l, uint8_t *b, size_t n) { (void)l; (void)b; (void)n; return 0; }
struct udp_plan *udp_prepare(struct udp_service *s, const struct config_udp *c, struct sd_listen_set *i, char *e, size_t el) { (void)s; (void)c; (void)i; snprintf(e, el, "udp not implemented"); return 0; }
void udp_commit(struct udp_service *s, struct udp_plan *p) { (void)s; (void)p; }
void udp_abort(struct udp_plan *p) { (void)p; }
void udp_stop(struct udp_service *s) { (void)s; }
void udp_free(struct udp_service *s) { (void)s; }
const struct udp_counters *udp_counters(const struct udp_service *s) { (void)s; return &zero; }
