/* PLACEHOLDER: replaced by the module's real implementation. */
#include "sd.h"
int sd_notify(const char *s) { (void)s; return 0; }
int sd_notifyf(const char *f, ...) { (void)f; return 0; }
uint64_t sd_watchdog_usec(void) { return 0; }
int sd_listen_collect(struct sd_listen_set *s, char *e, size_t el) { (void)e; (void)el; s->v = 0; s->n = 0; return 0; }
int sd_listen_take(struct sd_listen_set *s, int t, const struct endpoint *ep) { (void)s; (void)t; (void)ep; return -1; }
int sd_listen_take_any(struct sd_listen_set *s, int t, const char *n) { (void)s; (void)t; (void)n; return -1; }
void sd_listen_release(struct sd_listen_set *s) { (void)s; }
