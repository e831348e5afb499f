/* PLACEHOLDER: replaced by the module's real implementation. */
#include <stdio.h>
#include "tcp.h"
static struct tcp_counters zero;
struct tcp_service *tcp_new(struct loop *l, uint8_t *b, size_t n) { (void)l; (void)b; (void)n; return 0; }
struct tcp_plan *tcp_prepare(struct tcp_service *s, const struct config_tcp *c, struct sd_listen_set *i, char *e, size_t el) { (void)s; (void)c; (void)i; snprintf(e, el, "tcp not implemented"); return 0; }
void tcp_commit(struct tcp_service *s, struct tcp_plan *p) { (void)s; (void)p; }
void tcp_abort(struct tcp_plan *p) { (void)p; }
void tcp_stop_accepting(struct tcp_service *s) { (void)s; }
size_t tcp_active(const struct tcp_service *s) { (void)s; return 0; }
void tcp_close_all(struct tcp_service *s) { (void)s; }
void tcp_free(struct tcp_service *s) { (void)s; }
const struct tcp_counters *tcp_counters(const struct tcp_service *s) { (void)s; return &zero; }
