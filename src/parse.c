/* PLACEHOLDER: replaced by the module's real implementation. */
#include "parse.h"
int parse_duration(const char *s, uint64_t *ns) { (void)s; (void)ns; return -1; }
int parse_size(const char *s, uint64_t *b) { (void)s; (void)b; return -1; }
int parse_bool(const char *s, bool *v) { (void)s; (void)v; return -1; }
int parse_uint(const char *s, uint64_t a, uint64_t b, uint64_t *v) { (void)s; (void)a; (void)b; (void)v; return -1; }
int parse_ip(const char *s, struct endpoint *o) { (void)s; (void)o; return -1; }
int parse_endpoint(const char *s, struct endpoint *o) { (void)s; (void)o; return -1; }
int parse_endpoint_list(const char *s, struct endpoint **o, size_t *n, char *e, size_t el) { (void)s; (void)o; (void)n; (void)e; (void)el; return -1; }
int parse_cidr(const char *s, struct cidr *o) { (void)s; (void)o; return -1; }
int parse_cidr_list(const char *s, struct cidr **o, size_t *n, char *e, size_t el) { (void)s; (void)o; (void)n; (void)e; (void)el; return -1; }
bool parse_is_hostname(const char *s) { (void)s; return false; }
