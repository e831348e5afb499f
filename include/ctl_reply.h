/*
 * ctl_reply: the read-only control commands (status, targets, target NAME,
 * stats).  Each reads the daemon and the probes through view.h only and
 * writes JSON lines with json.h; `targets` is a resumable stream so that
 * 10 000 probes go out in chunks as the client drains them.
 *
 * Reply shapes (beaconctl(8) documents them for other clients):
 *   status   one object: {"ok":true,"version":1,"reply":"status",...}
 *   targets  a header {"ok":true,"version":1,"reply":"targets"}, one
 *            object per probe, then {"end":true,"probes":N,"complete":B}
 *            (complete is false when a reload cut the walk short)
 *   target   {"ok":true,...,"reply":"target","name":...,"probes":[...]};
 *            each probe also has "recent": {"newest_wall":UNIX_S,
 *            "rtt_ms":[...]} (the last outcomes, oldest first, null for a
 *            lost one) and "states": [{"at":UNIX_S,"from":S,"to":S},...]
 *            (oldest first), both null when the target has `history = no`
 *   stats    {"ok":true,...,"reply":"stats","tcp":{...},"udp":{...}}
 */
#ifndef BEACOND_CTL_REPLY_H
#define BEACOND_CTL_REPLY_H

#include <stddef.h>
#include <stdint.h>

struct ctl;
struct daemon;
struct jw;
struct view_probe;

int ctl_reply_register(struct ctl *c, const struct daemon *d);

/* One probe as a JSON object (detail adds settings, the window and the
 * errors by reason).  Pure; exposed for tests. */
void ctl_probe_json(struct jw *w, const struct view_probe *p, bool detail);

#endif
