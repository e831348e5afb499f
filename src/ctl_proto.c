/*
 * ctl_proto: parsing the control socket's request line (see ctl_proto.h).
 * The bytes come from any local user who can connect, so every byte is
 * checked and nothing is read past len.
 */
#include <stdio.h>
#include <string.h>

#include "ctl_proto.h"

long ctl_req_complete(const char *data, size_t n)
{
	size_t lim = n < CTL_REQ_MAX ? n : CTL_REQ_MAX;
	const char *nl = memchr(data, '\n', lim);

	if (nl)
		return (long)(nl - data) + 1;
	return n >= CTL_REQ_MAX ? -1 : 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool cmd_char(char c, bool first)
{
	if (c >= 'a' && c <= 'z')
		return true;
	if (first)
		return false;
	return (c >= '0' && c <= '9') || c == '_' || c == '-';
}

const char *ctl_parse_code(enum ctl_parse r)
{
	switch (r) {
	case CTL_PARSE_OK:
		return "ok";
	case CTL_PARSE_VERSION:
		return "version";
	case CTL_PARSE_TOO_LONG:
		return "too_long";
	case CTL_PARSE_SYNTAX:
	default:
		return "syntax";
	}
}

enum ctl_parse ctl_req_parse(const char *line, size_t len, struct ctl_req *out,
			     char *err, size_t errlen)
{
	size_t nwords = 0, o = 0;
	const char *words[CTL_ARGS_MAX + 2];

	out->version = 0;
	out->cmd = NULL;
	out->argc = 0;
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len >= CTL_REQ_MAX) {
		snprintf(err, errlen, "request longer than %d bytes", CTL_REQ_MAX - 1);
		return CTL_PARSE_TOO_LONG;
	}
	for (size_t i = 0; i < len;) {
		if (is_space(line[i])) {
			i++;
			continue;
		}
		if (nwords == CTL_ARGS_MAX + 2) {
			snprintf(err, errlen, "too many arguments (at most %d)", CTL_ARGS_MAX);
			return CTL_PARSE_SYNTAX;
		}
		words[nwords++] = out->buf + o;
		while (i < len && !is_space(line[i])) {
			unsigned char c = (unsigned char)line[i];
			if (c < 0x21 || c > 0x7e) {
				snprintf(err, errlen,
					 "byte 0x%02x at offset %zu: requests are printable ASCII",
					 c, i);
				return CTL_PARSE_SYNTAX;
			}
			out->buf[o++] = (char)c;
			i++;
		}
		out->buf[o++] = '\0';
	}
	if (nwords < 2) {
		snprintf(err, errlen, "expected \"VERSION COMMAND [ARGS]\"");
		return CTL_PARSE_SYNTAX;
	}

	const char *v = words[0];
	unsigned long ver = 0;
	if (!*v || strlen(v) > 6) {
		snprintf(err, errlen, "the version is a number (this daemon speaks %d)",
			 CTL_PROTO_VERSION);
		return CTL_PARSE_SYNTAX;
	}
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9') {
			snprintf(err, errlen, "the version is a number (this daemon speaks %d)",
				 CTL_PROTO_VERSION);
			return CTL_PARSE_SYNTAX;
		}
		ver = ver * 10 + (unsigned long)(*p - '0');
	}
	out->version = ver;
	if (ver != CTL_PROTO_VERSION) {
		snprintf(err, errlen, "protocol version %lu is not supported (this daemon speaks %d)",
			 ver, CTL_PROTO_VERSION);
		return CTL_PARSE_VERSION;
	}

	const char *c = words[1];
	if (strlen(c) >= CTL_CMD_MAX) {
		snprintf(err, errlen, "command name longer than %d bytes", CTL_CMD_MAX - 1);
		return CTL_PARSE_SYNTAX;
	}
	for (size_t i = 0; c[i]; i++) {
		if (!cmd_char(c[i], i == 0)) {
			snprintf(err, errlen, "\"%s\" is not a command name", c);
			return CTL_PARSE_SYNTAX;
		}
	}
	out->cmd = c;
	for (size_t i = 2; i < nwords; i++)
		out->argv[out->argc++] = words[i];
	return CTL_PARSE_OK;
}
