/*
 * labels: the per-target `labels = site=ams, rack=r12` value, validated
 * and normalised (pure; config uses it, the metrics renderer reads the
 * result).
 *
 * Rules: at most LABELS_MAX pairs "name=value" separated by commas,
 * blanks around names and values dropped; names are Prometheus label names
 * ([A-Za-z_][A-Za-z0-9_]*, at most 64 bytes), not starting with "__" and
 * none of the names beacond sets itself (target, family, le, reason, host,
 * address, socket, listener, state, version) nor Prometheus's job and
 * instance; each name once; values 1..256 bytes of valid UTF-8 without
 * control characters or commas (a comma separates pairs); at most
 * LABELS_LEN_MAX bytes once normalised.
 */
#ifndef BEACOND_LABELS_H
#define BEACOND_LABELS_H

#include <stdbool.h>
#include <stddef.h>

#define LABELS_MAX 16
#define LABEL_NAME_MAX 64
#define LABEL_VALUE_MAX 256
/* The normalised list, so one metric line always fits a stream record. */
#define LABELS_LEN_MAX 1024

/* Normalise s into "k=v,k=v" in out (outlen bytes; strlen(s) + 1 always
 * suffices).  Returns 0, or -1 with a reason in err. */
int labels_parse(const char *s, char *out, size_t outlen, char *err, size_t errlen);

/* True when s[0..len) is valid UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

/* Iterate over a normalised list: *pos starts at 0; fills name/value
 * spans and returns true while there is a pair. */
bool labels_next(const char *list, size_t *pos, const char **name, size_t *name_len,
		 const char **value, size_t *value_len);

#endif
