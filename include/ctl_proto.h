/*
 * ctl_proto: the control socket's request line, pure (no syscalls).
 *
 *   request := VERSION SP COMMAND *(SP ARG) [CR] LF
 *
 * VERSION is a decimal number (this daemon speaks CTL_PROTO_VERSION);
 * COMMAND is [a-z][a-z0-9_-]*; an ARG is printable ASCII without spaces
 * (a target name, "--range=1h").  Runs of spaces or tabs separate words.
 * A line is at most CTL_REQ_MAX bytes including its LF; anything else is
 * refused with a reason, never guessed at.
 *
 * Replies are JSON, one object per line.  The first line always has "ok"
 * (true or false) and "version"; a refusal is that one line with "error"
 * (text for people) and "code" (for programs: "version", "syntax",
 * "too_long", "unknown_command", "usage", "permission", "not_found",
 * "busy", "failed").
 */
#ifndef BEACOND_CTL_PROTO_H
#define BEACOND_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_PROTO_VERSION 1
#define CTL_REQ_MAX 1024
#define CTL_ARGS_MAX 8
#define CTL_CMD_MAX 32

enum ctl_parse {
	CTL_PARSE_OK,
	CTL_PARSE_SYNTAX,        /* not "VERSION COMMAND [ARGS]" */
	CTL_PARSE_VERSION,       /* well formed, another version */
	CTL_PARSE_TOO_LONG,      /* no LF within CTL_REQ_MAX bytes */
};

struct ctl_req {
	unsigned long version;
	const char *cmd;
	size_t argc;
	const char *argv[CTL_ARGS_MAX];
	char buf[CTL_REQ_MAX + 1];   /* the words, NUL-separated */
};

/* Where the request line in the first n received bytes ends: the length
 * including its LF, 0 while no LF has arrived (and n < CTL_REQ_MAX), or
 * -1 when CTL_REQ_MAX bytes came without one. */
long ctl_req_complete(const char *data, size_t n);

/* Parse one line (len bytes, with or without its LF).  On CTL_PARSE_OK
 * *out holds the words; otherwise err says why (for the reply). */
enum ctl_parse ctl_req_parse(const char *line, size_t len, struct ctl_req *out,
			     char *err, size_t errlen);

/* The "code" of a refusal. */
const char *ctl_parse_code(enum ctl_parse r);

#endif
