/*
 * libFuzzer target: the history file loader.  The first byte picks whether
 * the checksum is checked (odd) or skipped (even, so the fuzzer reaches the
 * structure behind it); the rest is the file.  Besides "no crash, no
 * out-of-bounds read, no leak", a file that loads must encode back to a
 * file that loads to the same rounds, and must take new outcomes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const struct history *a, const struct history *b)
{
	for (unsigned k = 0; k < HISTORY_TIERS; k++) {
		uint64_t newest = history_newest(a, k);
		if (newest != history_newest(b, k))
			abort();
		if (newest == HISTORY_NONE)
			continue;
		uint64_t first = newest >= history_tier_len[k] ? newest - history_tier_len[k] : 0;
		for (uint64_t s = first; s <= newest; s++) {
			struct history_round ra, rb;
			bool ha = history_get(a, k, s, &ra), hb = history_get(b, k, s, &rb);
			if (ha != hb || (ha && memcmp(&ra, &rb, sizeof(ra)) != 0))
				abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool check = data[0] & 1;
	size_t len = size - 1;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	memcpy(buf, data + 1, len);

	struct history *h;
	struct history_ident id;
	char err[160];
	if (history_decode(buf, len, check, &h, &id, err, sizeof(err)) == 0) {
		size_t cap = history_encoded_max(h, &id);
		uint8_t *out = malloc(cap);
		if (!out)
			abort();
		size_t n = history_encode(h, &id, out, cap);
		struct history *g;
		struct history_ident id2;
		if (n == 0 || history_decode(out, n, true, &g, &id2, err, sizeof(err)) != 0)
			abort();
		same(h, g);
		/* New outcomes after the newest round go in. */
		uint64_t last = h->tier[0].last;
		if (last != HISTORY_NONE && last < UINT64_MAX / h->step_ns - 3) {
			uint64_t t = (last + 1) * h->step_ns;
			history_add(h, t, 1000000);
			history_add(h, t, UINT64_MAX);
			history_tick(h, t + h->step_ns, false);
		}
		history_free(g);
		free(out);
		history_free(h);
	} else if (h) {
		abort();
	}
	free(buf);
	return 0;
}
