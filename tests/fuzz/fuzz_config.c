/* libFuzzer target: a whole config text through inih and beacond's
 * validation.  Success and failure must both free everything (ASan/LSan),
 * and a failure must always produce a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy so ASan catches any read past the end; embedded
	 * NULs reach the parser, which must reject them with their line. */
	char *text = malloc(size ? size : 1);
	if (!text)
		abort();
	memcpy(text, data, size);

	struct config *cfg = NULL;
	char err[512] = "";
	if (config_parse_buffer(text, size, "fuzz.ini", &cfg, err, sizeof err) == 0) {
		if (!cfg)
			abort();
		for (size_t i = 0; i < cfg->n_targets; i++)
			if (!cfg->targets[i].name || !cfg->targets[i].host)
				abort();
		config_free(cfg);
	} else if (strncmp(err, "fuzz.ini", 8) != 0) {
		abort(); /* every error names the file */
	}
	free(text);
	return 0;
}
