/* PLACEHOLDER: replaced by the module's real implementation. */
#include <stdio.h>
#include "log.h"
const char *log_level_name(enum log_level l) { (void)l; return "info"; }
int log_setup(enum log_level l, enum log_format f, const char *t, char *e, size_t el) { (void)l; (void)f; (void)t; (void)e; (void)el; return 0; }
int log_reopen(void) { return 0; }
void log_close(void) {}
void log_set_fd(int fd) { (void)fd; }
bool log_enabled(enum log_level l) { (void)l; return false; }
struct logline *log_begin(enum log_level l, const char *e) { (void)l; (void)e; return NULL; }
void log_str(struct logline *l, const char *k, const char *v) { (void)l; (void)k; (void)v; }
void log_int(struct logline *l, const char *k, int64_t v) { (void)l; (void)k; (void)v; }
void log_u64(struct logline *l, const char *k, uint64_t v) { (void)l; (void)k; (void)v; }
void log_fixed(struct logline *l, const char *k, uint64_t v, uint64_t s, int d) { (void)l; (void)k; (void)v; (void)s; (void)d; }
void log_double(struct logline *l, const char *k, double v, int d) { (void)l; (void)k; (void)v; (void)d; }
void log_bool(struct logline *l, const char *k, bool v) { (void)l; (void)k; (void)v; }
void log_addr(struct logline *l, const char *k, const struct sockaddr *sa) { (void)l; (void)k; (void)sa; }
void log_errno(struct logline *l, int e) { (void)l; (void)e; }
void log_strf(struct logline *l, const char *k, const char *f, ...) { (void)l; (void)k; (void)f; }
void log_end(struct logline *l) { (void)l; }
void log_msg(enum log_level l, const char *e, const char *f, ...) { (void)l; (void)e; (void)f; }
