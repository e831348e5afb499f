/* labels: per-target extra metric labels (see labels.h). */
#include <string.h>

#include "labels.h"
#include "util.h"

static const char *const reserved[] = {
	"target", "family", "le", "reason", "host", "address", "socket",
	"listener", "state", "version", "job", "instance",
};

bool utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* A label name of 1..LABEL_NAME_MAX bytes: Prometheus's syntax, not reserved, not given before. */
static int check_name(const char *name, size_t name_len, const char *const *names,
		      const size_t *name_lens, size_t count, char *err, size_t errlen)
{
	for (size_t i = 0; i < name_len; i++) {
		if (!name_char(name[i], i == 0)) {
			set_err(err, errlen, "\"%.*s\" is not a label name ([A-Za-z_][A-Za-z0-9_]*)",
				(int)name_len, name);
			return -1;
		}
	}
	if (name_len >= 2 && name[0] == '_' && name[1] == '_') {
		set_err(err, errlen, "\"%.*s\": names starting with __ are reserved",
			(int)name_len, name);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
		if (strlen(reserved[i]) == name_len && memcmp(reserved[i], name, name_len) == 0) {
			set_err(err, errlen, "\"%.*s\" is a label beacond or Prometheus sets itself",
				(int)name_len, name);
			return -1;
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (name_lens[i] == name_len && memcmp(names[i], name, name_len) == 0) {
			set_err(err, errlen, "label \"%.*s\" given twice", (int)name_len, name);
			return -1;
		}
	}
	if (count == LABELS_MAX) {
		set_err(err, errlen, "more than %d labels", LABELS_MAX);
		return -1;
	}
	return 0;
}

/* A label value: 1..LABEL_VALUE_MAX bytes of UTF-8 without control characters. */
static int check_value(const char *name, size_t name_len, const char *value,
		       size_t value_len, char *err, size_t errlen)
{
	if (value_len == 0 || value_len > LABEL_VALUE_MAX) {
		set_err(err, errlen, "value of label \"%.*s\" must be 1..%d bytes",
			(int)name_len, name, LABEL_VALUE_MAX);
		return -1;
	}
	for (size_t i = 0; i < value_len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c < 0x20 || c == 0x7f) {
			set_err(err, errlen, "value of label \"%.*s\" has a control character",
				(int)name_len, name);
			return -1;
		}
	}
	if (!utf8_valid(value, value_len)) {
		set_err(err, errlen, "value of label \"%.*s\" is not valid UTF-8",
			(int)name_len, name);
		return -1;
	}
	return 0;
}

int labels_parse(const char *s, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *names[LABELS_MAX];
	size_t name_lens[LABELS_MAX];
	size_t count = 0, used = 0;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	for (;;) {
		size_t n = strcspn(s, ",");
		const char *item = s;
		size_t item_len = n;
		trim(&item, &item_len);
		if (item_len == 0) {
			set_err(err, errlen, "empty label (expected name=value, name=value)");
			return -1;
		}
		const char *eq = memchr(item, '=', item_len);
		if (eq == NULL) {
			set_err(err, errlen, "\"%.*s\" is not name=value", (int)item_len, item);
			return -1;
		}
		const char *name = item, *value = eq + 1;
		size_t name_len = (size_t)(eq - item);
		size_t value_len = item_len - name_len - 1;
		trim(&name, &name_len);
		trim(&value, &value_len);
		if (name_len == 0 || name_len > LABEL_NAME_MAX) {
			set_err(err, errlen, "label name in \"%.*s\" must be 1..%d characters",
				(int)item_len, item, LABEL_NAME_MAX);
			return -1;
		}
		if (check_name(name, name_len, names, name_lens, count, err, errlen) < 0 ||
		    check_value(name, name_len, value, value_len, err, errlen) < 0)
			return -1;
		names[count] = name;
		name_lens[count] = name_len;
		count++;
		size_t need = (used ? 1 : 0) + name_len + 1 + value_len;
		if (used + need + 1 > outlen || used + need > LABELS_LEN_MAX) {
			set_err(err, errlen, "labels too long (at most %d bytes in all)",
				LABELS_LEN_MAX);
			return -1;
		}
		if (used)
			out[used++] = ',';
		memcpy(out + used, name, name_len);
		used += name_len;
		out[used++] = '=';
		memcpy(out + used, value, value_len);
		used += value_len;
		out[used] = '\0';
		if (s[n] == '\0')
			break;
		s += n + 1;
	}
	return 0;
}

bool labels_next(const char *list, size_t *pos, const char **name, size_t *name_len,
		 const char **value, size_t *value_len)
{
	if (list == NULL || list[*pos] == '\0')
		return false;
	const char *item = list + *pos;
	size_t n = strcspn(item, ",");
	const char *eq = memchr(item, '=', n);
	if (eq == NULL)
		return false;
	*name = item;
	*name_len = (size_t)(eq - item);
	*value = eq + 1;
	*value_len = n - *name_len - 1;
	*pos += n + (item[n] == ',' ? 1 : 0);
	return true;
}
