/*
 * libFuzzer target: the control socket's request line.  The input is what
 * a local client sends; ctl_req_complete() finds the line the way the
 * daemon does, then ctl_req_parse() takes it apart.  Besides "no crash, no
 * read past the end" (ASan, on a private copy exactly as long as the
 * input), a parsed request must be printable words within the limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	struct ctl_req req;
	char err[256];

	if (!copy)
		abort();
	memcpy(copy, data, size);
	long n = ctl_req_complete(copy, size);
	size_t len = n > 0 ? (size_t)n : size < CTL_REQ_MAX ? size : CTL_REQ_MAX;
	enum ctl_parse r = ctl_req_parse(copy, len, &req, err, sizeof err);
	if (r == CTL_PARSE_OK) {
		if (req.version != CTL_PROTO_VERSION || !req.cmd || req.argc > CTL_ARGS_MAX ||
		    strlen(req.cmd) >= CTL_CMD_MAX || req.cmd[0] < 'a' || req.cmd[0] > 'z')
			abort();
		for (size_t i = 0; i < req.argc; i++)
			for (const char *p = req.argv[i]; *p; p++)
				if (*p < 0x21 || *p > 0x7e)
					abort();
	} else if (!memchr(err, '\0', sizeof err) || err[0] == '\0') {
		abort();
	}
	free(copy);
	return 0;
}
