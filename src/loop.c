/* PLACEHOLDER: replaced by the module's real implementation. */
#include <errno.h>
#include "loop.h"
struct loop *loop_new(void) { errno = ENOSYS; return 0; }
void loop_free(struct loop *l) { (void)l; }
int loop_add(struct loop *l, struct io *io, uint32_t e) { (void)l; (void)io; (void)e; errno = ENOSYS; return -1; }
int loop_mod(struct loop *l, struct io *io, uint32_t e) { (void)l; (void)io; (void)e; errno = ENOSYS; return -1; }
int loop_del(struct loop *l, struct io *io) { (void)l; io->fd = -1; return 0; }
int loop_timer_arm(struct loop *l, struct timer *t, uint64_t d) { (void)l; (void)t; (void)d; return -1; }
void loop_timer_cancel(struct loop *l, struct timer *t) { (void)l; (void)t; }
size_t loop_timer_count(const struct loop *l) { (void)l; return 0; }
uint64_t loop_now(const struct loop *l) { (void)l; return 0; }
uint64_t loop_now_refresh(struct loop *l) { (void)l; return 0; }
void loop_defer(struct loop *l, struct deferred *d) { (void)l; d->fn(d); }
int loop_signals(struct loop *l, signal_fn f, void *a) { (void)l; (void)f; (void)a; return -1; }
int loop_run(struct loop *l) { (void)l; return -1; }
void loop_stop(struct loop *l) { (void)l; }
