/* Fuzz the metrics' untrusted-ish text paths: label validation (config
 * input), label escaping and the Accept-Encoding check (client input). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "render_metrics.h"
#include "web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	(void)web_accepts_gzip(s);

	char *out = malloc(size + 1);
	char err[256];
	if (out && labels_parse(s, out, size + 1, err, sizeof err) == 0) {
		/* A valid list normalises to itself and walks cleanly. */
		char *again = malloc(size + 1);
		if (again) {
			if (labels_parse(out, again, size + 1, err, sizeof err) != 0 ||
			    strcmp(out, again) != 0)
				abort();
			free(again);
		}
		size_t pos = 0, nl, vl;
		const char *n, *v;
		int pairs = 0;
		while (labels_next(out, &pos, &n, &nl, &v, &vl)) {
			if (nl == 0 || vl == 0 || !utf8_valid(v, vl))
				abort();
			pairs++;
		}
		if (pairs == 0 || pairs > LABELS_MAX)
			abort();
	}
	free(out);

	size_t cap = 2 * size;
	char *esc = malloc(cap + 1);
	if (esc) {
		size_t need = metrics_escape(esc, cap, s, size);
		if (need > cap || memchr(esc, '\n', need))
			abort();
		free(esc);
	}
	free(s);
	return 0;
}
