/* PLACEHOLDER: replaced by the module's real implementation. */
#include <stdio.h>
#include <stdlib.h>
#include "config.h"
int config_load(const char *path, struct config **out, char *err, size_t errlen) { (void)out; snprintf(err, errlen, "%s: config not implemented", path); return -1; }
int config_parse_string(const char *text, const char *name, struct config **out, char *err, size_t errlen) { (void)text; (void)out; snprintf(err, errlen, "%s: config not implemented", name); return -1; }
void config_free(struct config *cfg) { free(cfg); }
